"""Every fallback a profile documents does what its description says, for every serving engine.

For each engine and each signal it does not export, :data:`CHECKS` holds the check of that
signal's documented fallback (``DEFAULT_FALLBACKS`` or the profile's own), run through the real
path: the engine's batched queries answered by the Prometheus data fake with what the engine
exports (``tests/test_policy_fallbacks.snapshot_for``), ``collect``, the ``forecast`` policy. A
missing signal without a check fails, so a new promise in a profile needs a test before it ships.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from autoscaler.core.signals import SignalSnapshot
from autoscaler.engines.base import Signal
from autoscaler.engines.guards import memory_guard
from autoscaler.engines.promql import build_queries
from autoscaler.engines.registry import ENGINES, GPU_MEMORY
from autoscaler.policies.fallbacks import fill_demand
from autoscaler.policies.forecast import ForecastPolicy
from tests.test_policy_fallbacks import CTX, SERVING, snapshot_for


def _queue_field(snap: SignalSnapshot) -> str:
    """The queue-time field the engine fills: its p90, else its mean per request."""
    return "queue_time_p90_s" if snap.queue_time_p90_s is not None else "queue_time_mean_s"


def _latency(rec) -> list[str]:
    return [c.detail for c in rec.candidates if c.reason == "latency"]


def ttft_from_queue_time(engine: str) -> None:
    snap = snapshot_for(engine)
    assert snap.ttft_p90_s is None
    field = _queue_field(snap)
    assert getattr(snap, field) is not None, field
    # a queue is still there (a queue time over budget with the queue gone is the past)
    over = replace(snap, waiting=float(snap.replicas.ready), **{field: 2.0 * CTX.slo.ttft_s})
    assert _latency(ForecastPolicy(CTX).recommend(over)) == ["latency at 2.00x budget"]
    assert _latency(ForecastPolicy(CTX).recommend(snap)) == []


def tpot_is_no_guard_and_the_learner_learns_without_it(engine: str) -> None:
    snap = snapshot_for(engine)
    assert snap.tpot_p90_s is None
    policy = ForecastPolicy(CTX)
    for i in range(10):  # a steady fleet and load: observations count after two steady ticks
        policy.recommend(replace(snap, timestamp=snap.timestamp + 15.0 * i))
    assert policy.capacity.weight_.sum() > 0


def e2e_is_not_read(engine: str) -> None:
    snap = snapshot_for(engine)
    a = ForecastPolicy(CTX).recommend(snap)
    b = ForecastPolicy(CTX).recommend(replace(snap, e2e_p95_s=1e6, e2e_mean_s=1e6))
    assert a == b


def queue_time_falls_back_to_ttft(engine: str) -> None:
    snap = snapshot_for(engine)
    assert snap.queue_time_p90_s is None and snap.ttft_p90_s is not None
    over = replace(snap, ttft_p90_s=2.0 * CTX.slo.ttft_budget(snap.p90_prompt_tokens or 0.0))
    assert _latency(ForecastPolicy(CTX).recommend(over)) == ["latency at 2.00x budget"]


def prompt_size_from_rates_else_the_seed(engine: str) -> None:
    snap = snapshot_for(engine)
    assert snap.p90_prompt_tokens is None
    filled, used = fill_demand(snap, CTX)
    if snap.prompt_tokens_rate is not None:
        assert filled.mean_prompt_tokens == pytest.approx(
            snap.prompt_tokens_rate / (snap.request_rate or 1.0)
        )
    else:  # the seed, named through the token rate it came with
        assert filled.mean_prompt_tokens == pytest.approx(CTX.seed_mean_prompt_tokens)
        assert "prompt_tokens_rate = request rate x seed mean prompt tokens" in used
    assert filled.p90_prompt_tokens is None  # the TTFT budget: no per-prompt allowance


def token_rates_from_requests_times_the_seed(engine: str) -> None:
    snap = snapshot_for(engine)
    filled, used = fill_demand(snap, CTX)
    assert snap.request_rate is not None
    assert filled.prompt_tokens_rate == pytest.approx(
        snap.request_rate * CTX.seed_mean_prompt_tokens
    )
    assert filled.generation_tokens_rate == pytest.approx(
        snap.request_rate * CTX.seed_mean_output_tokens
    )
    assert "prompt_tokens_rate = request rate x seed mean prompt tokens" in used
    assert "prompt_tokens_rate = request rate x seed mean prompt tokens" in (
        ForecastPolicy(CTX).recommend(snap).fallbacks
    )


def preemptions_are_not_read(engine: str) -> None:
    snap = snapshot_for(engine)
    assert snap.preemption_rate is None
    a = ForecastPolicy(CTX).recommend(snap)
    assert a == ForecastPolicy(CTX).recommend(replace(snap, preemption_rate=50.0))


def gpu_memory_from_dcgm_joined_by_pod(engine: str) -> None:
    fields = {q.field for q in build_queries(ENGINES[engine], gpu_memory=GPU_MEMORY)}
    assert {"gpu_memory_usage", "gpu_memory_usage_max", "per_replica_gpu_memory_usage"} <= fields
    if memory_guard(ENGINES[engine]):
        ctx = replace(CTX, gpu_memory_guard=True)
        snap = replace(snapshot_for(engine), gpu_memory_usage_max=0.97, waiting=9.0,
                       waiting_growth_rate=0.5)  # fmt: skip
        details = [c.detail for c in ForecastPolicy(ctx).recommend(snap).candidates]
        assert any("GPU memory at 97%" in d for d in details)


def kv_usage_from_queue_and_gpu_memory(engine: str) -> None:
    snap = snapshot_for(engine)
    assert snap.kv_usage is None
    queued = replace(snap, waiting=33.0 * snap.replicas.ready)
    assert any(c.reason == "saturation" for c in ForecastPolicy(CTX).recommend(queued).candidates)
    gpu_memory_from_dcgm_joined_by_pod(engine)


def attainment_is_not_observed_and_the_learner_fits_p90s(engine: str) -> None:
    snap = snapshot_for(engine)
    assert not snap.tpot_buckets
    policy = ForecastPolicy(CTX)
    for i in range(10):  # a steady fleet and load: observations count after two steady ticks
        rec = policy.recommend(replace(snap, timestamp=snap.timestamp + 15.0 * i))
    assert policy.capacity.requests_.sum() == 0  # no attainment observed
    if policy.capacity.weight_.sum() > 0:  # an engine with some latency signal
        assert "(p90 latency)" in rec.candidates[0].detail


CHECKS: dict[Signal, Callable[[str], None]] = {
    Signal.TTFT: ttft_from_queue_time,
    Signal.TPOT: tpot_is_no_guard_and_the_learner_learns_without_it,
    Signal.E2E: e2e_is_not_read,
    Signal.QUEUE_TIME: queue_time_falls_back_to_ttft,
    Signal.PROMPT_TOKENS: prompt_size_from_rates_else_the_seed,
    Signal.PROMPT_TOKENS_RATE: token_rates_from_requests_times_the_seed,
    Signal.GENERATION_TOKENS_RATE: token_rates_from_requests_times_the_seed,
    Signal.PREEMPTIONS: preemptions_are_not_read,
    Signal.REQUEST_TPOT: attainment_is_not_observed_and_the_learner_fits_p90s,
    Signal.KV_USAGE: kv_usage_from_queue_and_gpu_memory,
    Signal.GPU_MEMORY_USED: gpu_memory_from_dcgm_joined_by_pod,
    Signal.GPU_MEMORY_FREE: gpu_memory_from_dcgm_joined_by_pod,
}
"""The check of each signal's documented fallback. Waiting, running and the request rate are
missing on no engine (the request rate's fallback is tested in test_policy_fallbacks.py)."""

CASES = [(e, s) for e in SERVING for s in sorted(ENGINES[e].missing)]


@pytest.mark.parametrize(("engine", "signal"), CASES, ids=[f"{e}-{s.value}" for e, s in CASES])
def test_each_missing_signal_gets_what_its_fallback_promises(engine, signal):
    assert signal in CHECKS, f"{engine}: no test exercises the {signal.value} fallback"
    CHECKS[signal](engine)


def test_every_engine_is_covered():
    assert set(SERVING) == {"sglang", "tgi", "triton_trtllm", "vllm", "vllm_v0"}
    assert len(CASES) >= 10

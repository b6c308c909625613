"""Each engine's missing signals get the documented fallback in the ``forecast`` policy.

Through the real path: the engine's own batched queries answered by the Prometheus data fake
with exactly the fields that engine exports, then ``collect``, then the policy.
"""

from __future__ import annotations

import pytest

from autoscaler.clients.fake_prometheus import FakePrometheus
from autoscaler.clients.prometheus import Sample
from autoscaler.config import WorkloadConfig
from autoscaler.core.signals import ReplicaCounts, SignalSnapshot
from autoscaler.core.slo import SloSpec
from autoscaler.engines.base import Signal
from autoscaler.engines.promql import build_queries
from autoscaler.engines.registry import ENGINES
from autoscaler.live.collection import collect, with_scraped_pods
from autoscaler.policies.base import PolicyContext
from autoscaler.policies.fallbacks import fill_demand
from autoscaler.policies.forecast import ForecastPolicy

NOW = 1_700_000_000.0
VALUES = {
    "request_rate": 10.0,
    "prompt_tokens_rate": 10_000.0,
    "generation_tokens_rate": 2_000.0,
    "preemption_rate": 0.0,
    "ttft_p90_s": 0.4,
    "tpot_p90_s": 0.03,
    "e2e_p95_s": 8.0,
    "queue_time_p90_s": 0.1,
    "queue_time_mean_s": 0.08,
    "e2e_mean_s": 6.0,
    "p90_prompt_tokens": 1800.0,
    "mean_prompt_tokens": 1000.0,
    "waiting": 0.0,
    "waiting_growth_rate": 0.0,
    "running": 20.0,
    "kv_usage": 0.3,
    "kv_usage_max": 0.4,
}
CTX = PolicyContext(slo=SloSpec(), max_replicas=20, replica_token_capacity=6000.0,
                    prefill_weight=1.0, decode_weight=7.0)  # fmt: skip
SERVING = sorted(name for name in ENGINES if name != "dcgm")


def snapshot_for(engine: str) -> SignalSnapshot:
    queries = build_queries(ENGINES[engine])
    labels = {"namespace": "llm", "workload": "w"}
    results: dict[str, list[Sample]] = {}
    for q in queries:
        if q.field.startswith("per_replica_"):
            results[q.promql] = [Sample({**labels, "pod": f"w-{i}"}, NOW, 1.0) for i in range(3)]
        elif q.field in VALUES:
            results[q.promql] = [Sample(labels, NOW, VALUES[q.field])]
    w = WorkloadConfig(namespace="llm", name="w", engine=engine, selector={"app": "w"})
    snap = collect(FakePrometheus(results=results), [w], now=NOW, staleness_s=45.0,
                   engines=ENGINES)["llm/w"]  # fmt: skip
    return with_scraped_pods(snap)


@pytest.mark.parametrize("engine", SERVING)
def test_every_serving_engine_gets_a_recommendation(engine):
    snap = snapshot_for(engine)
    assert not snap.stale
    rec = ForecastPolicy(CTX).recommend(snap)
    assert not rec.holds, rec.candidates
    assert rec.desired_replicas is not None and rec.desired_replicas >= 1
    missing = ENGINES[engine].missing
    token_fallbacks = [f for f in rec.fallbacks if f.startswith(("prompt_tokens_rate", "gen"))]
    expects = {Signal.PROMPT_TOKENS_RATE, Signal.GENERATION_TOKENS_RATE} & missing
    assert len(token_fallbacks) == len(expects)


def test_triton_demand_is_counted_in_requests_times_the_seed_sizes():
    snap = snapshot_for("triton_trtllm")
    assert snap.prompt_tokens_rate is None
    filled, used = fill_demand(snap, CTX)
    assert filled.prompt_tokens_rate == pytest.approx(10.0 * CTX.seed_mean_prompt_tokens)
    assert filled.generation_tokens_rate == pytest.approx(10.0 * CTX.seed_mean_output_tokens)
    assert any("seed mean prompt" in u for u in used)


def test_vllm_needs_no_fallback_for_demand():
    rec = ForecastPolicy(CTX).recommend(snapshot_for("vllm"))
    assert rec.fallbacks == ()


def test_mean_output_size_is_measured_from_the_rates_not_seeded():
    filled, used = fill_demand(snapshot_for("vllm"), CTX)
    assert filled.mean_output_tokens == pytest.approx(200.0)
    assert used == ()


def test_request_rate_from_generation_tokens_when_only_those_exist():
    snap = SignalSnapshot("llm/w", NOW, ReplicaCounts(1, 1, 0, 0, 0), generation_tokens_rate=424.0)
    filled, used = fill_demand(snap, CTX)
    assert filled.request_rate == pytest.approx(424.0 / CTX.seed_mean_output_tokens)
    assert used[0].startswith("request_rate")


def test_no_demand_signal_at_all_holds():
    snap = SignalSnapshot("llm/w", NOW, ReplicaCounts(1, 1, 0, 0, 0), waiting=3.0)
    rec = ForecastPolicy(CTX).recommend(snap)
    assert rec.holds

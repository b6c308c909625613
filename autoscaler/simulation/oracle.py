"""The clairvoyant plan, the per-replica capacity C* at the SLO, and the physical work bound.

Both are fixed procedures from DESIGN.md ("Oracle", "Work bound"), so every policy is compared
with the same yardsticks:

* **C\\*** is the largest token-work rate at which one replica, fed Poisson arrivals with the
  trace's own request mix, meets the SLO-attainment target; found by bisection in the simulator.
* **Oracle plan**: every minute, ``ceil(that minute's token work / C*)`` replicas, started with
  perfect foresight and zero start time. Its GPU-hours are ``oracle_gpu_hours``; the plan is also
  simulated and its SLO attainment reported.
* **Work bound**: the GPU time the trace's tokens need at the most efficient batching that still
  meets the TPOT SLO: prefill at its cheapest cost per token, decode at the largest batch within
  the TPOT SLO and the KV capacity. No policy can go below it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from autoscaler.core.recommendation import Candidate, Recommendation
from autoscaler.core.signals import SignalSnapshot
from autoscaler.core.slo import SloSpec
from autoscaler.errors import InputError
from autoscaler.hpa.spec import HpaSpec
from autoscaler.perf.capacity import decode_batch_at_slo, seed_capacity, work_weights
from autoscaler.perf.model import PerfProfile
from autoscaler.policies.base import Actuation
from autoscaler.simulation.engine import SimConfig, simulate
from autoscaler.simulation.lifecycle import LifecycleConfig
from autoscaler.simulation.results import requests_met
from autoscaler.traces.records import Trace

__all__ = [
    "INSTANT",
    "OraclePlan",
    "PlanPolicy",
    "decode_batch_at_slo",
    "feasible_on_idle_replica",
    "oracle_plan",
    "poisson_mix",
    "replica_capacity",
    "seed_capacity",
    "work_bound_gpu_hours",
    "work_weights",
]

INSTANT = LifecycleConfig(pull_s=0.0, init_s=0.0, provision_s=0.0)


def work_bound_gpu_hours(trace: Trace, profile: PerfProfile, slo: SloSpec) -> float:
    """GPU-hours the trace's tokens need at the most efficient batching within the TPOT SLO."""
    if trace.requests == 0:
        return 0.0
    prompts = trace.prompt_tokens.astype(np.float64)
    outputs = np.maximum(trace.output_tokens, 1).astype(np.float64)
    ok = prompts + outputs <= min(profile.max_context, profile.kv_capacity_tokens)
    prompts, outputs = prompts[ok], outputs[ok]
    base_per_token = profile.prefill_base_s / profile.max_batched_tokens
    prefill = float(
        np.sum(prompts * (profile.prefill_per_token_s + base_per_token))
        + np.sum(profile.prefill_attn_s * prompts * prompts)
    )
    mean_ctx = float(np.mean(prompts + outputs / 2.0)) if prompts.size else 1.0
    b = decode_batch_at_slo(profile, slo, mean_ctx)
    decode = float(np.sum(outputs - 1.0)) * profile.decode_step_s(b, b * mean_ctx) / b
    return (prefill + decode) * profile.tp / 3600.0


@dataclass(frozen=True, slots=True)
class OraclePlan:
    capacity: float
    """C*, token work per second one replica carries at the SLO."""
    replicas_per_minute: tuple[int, ...]
    gpu_hours: float

    def gpu_hours_between(self, start_s: float, end_s: float, tp: int) -> float:
        """The plan's GPU-hours over ``[start_s, end_s)`` (a warm-up's end to the trace's)."""
        total = 0.0
        for minute, replicas in enumerate(self.replicas_per_minute):
            lo, hi = max(start_s, 60.0 * minute), min(end_s, 60.0 * (minute + 1))
            if hi > lo:
                total += replicas * (hi - lo)
        return total * tp / 3600.0


class PlanPolicy:
    """A native policy that follows a fixed per-minute plan (the oracle, or a constant fleet)."""

    actuation: Actuation = "native"

    def __init__(self, name: str, per_minute: tuple[int, ...]) -> None:
        self.name = name
        self.per_minute = per_minute

    def hpa_spec(self) -> HpaSpec | None:
        return None

    def recommend(self, snapshot: SignalSnapshot) -> Recommendation:
        minute = min(int(snapshot.timestamp // 60), len(self.per_minute) - 1)
        want = self.per_minute[minute]
        return Recommendation(
            workload=snapshot.workload,
            timestamp=snapshot.timestamp,
            desired_replicas=want,
            winner="plan",
            candidates=(Candidate("plan", float(want), f"minute {minute}"),),
        )


def feasible_on_idle_replica(
    trace: Trace, profile: PerfProfile, slo: SloSpec
) -> npt.NDArray[np.bool_]:
    """Which requests can meet the SLO at all: they fit the context and KV capacity, and on an
    idle replica their chunked prefill meets the TTFT budget and a batch-of-one decode step
    meets the TPOT budget."""
    prompts = trace.prompt_tokens.astype(np.float64)
    outputs = np.maximum(trace.output_tokens, 1).astype(np.float64)
    fits = prompts + outputs <= min(profile.max_context, profile.kv_capacity_tokens)
    chunks = np.ceil(prompts / profile.max_batched_tokens)
    step_base = max(profile.prefill_base_s, profile.decode_base_s)
    idle_ttft = (
        chunks * step_base
        + profile.prefill_per_token_s * prompts
        + profile.prefill_attn_s * prompts * prompts
    )
    budget = slo.ttft_s + slo.ttft_per_1k_s * prompts / 1000.0
    decode_one = (
        profile.decode_base_s
        + profile.decode_per_seq_s
        + profile.decode_per_seq2_s
        + profile.decode_per_ctx_token_s * (prompts + outputs)
    )
    tpot_ok = (outputs <= 1) | (decode_one <= slo.tpot_s)
    return np.asarray(fits & (idle_ttft <= budget) & tpot_ok, dtype=np.bool_)


def poisson_mix(trace: Trace, rate: float, duration_s: float, seed: int) -> Trace:
    """Poisson arrivals at ``rate`` with (prompt, output) pairs drawn from ``trace``."""
    rng = np.random.default_rng(seed)
    n = max(1, int(rng.poisson(rate * duration_s)))
    arrivals = np.sort(rng.uniform(0.0, duration_s, n))
    pick = rng.integers(0, trace.requests, n)
    return Trace(
        path=f"poisson({trace.path})",
        format="synthetic",
        arrival_s=arrivals,
        prompt_tokens=trace.prompt_tokens[pick],
        output_tokens=trace.output_tokens[pick],
        duration_s=duration_s,
    )


def replica_capacity(
    trace: Trace,
    profile: PerfProfile,
    slo: SloSpec,
    weights: tuple[float, float],
    *,
    duration_s: float = 900.0,
    seed: int = 0,
    iterations: int = 14,
) -> float:
    """C*: bisection on the Poisson rate at which one replica still meets the attainment target.

    Requests that no replica count can serve within the SLO are excluded from the mix: those
    longer than the context or the KV capacity, and those that miss their TTFT or TPOT budget even
    on an idle replica (very long prompts: see :func:`feasible_on_idle_replica`). They still count
    as misses when runs are scored, for every policy alike; they just do not define capacity.
    """
    fits = feasible_on_idle_replica(trace, profile, slo)
    mix = replace(
        trace,
        arrival_s=trace.arrival_s[fits],
        prompt_tokens=trace.prompt_tokens[fits],
        output_tokens=trace.output_tokens[fits],
    )
    if mix.requests == 0:
        raise InputError(
            "no request of the trace can meet the SLO even on an idle replica; "
            "check --ttft-slo, --tpot-slo and the profile"
        )
    wp, wd = weights
    mean_work = float(np.mean(mix.prompt_tokens * wp + np.maximum(mix.output_tokens, 1) * wd))
    config = SimConfig(max_replicas=1, start_replicas=1, lifecycle=INSTANT, work_weights=weights)
    policy = PlanPolicy("one", (1,))

    def attains(rate: float) -> bool:
        sample = poisson_mix(mix, rate, duration_s, seed)
        out = simulate(sample, policy, profile=profile, config=config)
        return bool(requests_met(out, slo).mean() >= slo.attainment_target)

    lo, hi = 0.0, 1.0
    while attains(hi):
        lo, hi = hi, hi * 2.0
        if hi > 1e4:
            break
    for _ in range(iterations):
        mid = (lo + hi) / 2.0
        if attains(mid):
            lo = mid
        else:
            hi = mid
    return max(lo, 1e-6) * mean_work


def oracle_plan(trace: Trace, capacity: float, weights: tuple[float, float], tp: int) -> OraclePlan:
    """Per-minute replica counts ``ceil(work / C*)`` and their GPU-hours."""
    minutes = max(1, int(math.ceil(trace.duration_s / 60.0)))
    wp, wd = weights
    work = trace.prompt_tokens * wp + np.maximum(trace.output_tokens, 1) * wd
    idx = np.minimum((trace.arrival_s // 60.0).astype(np.int64), minutes - 1)
    per_minute_work = np.bincount(idx, weights=work, minlength=minutes)
    lengths = np.full(minutes, 60.0)
    lengths[-1] = max(1e-9, trace.duration_s - 60.0 * (minutes - 1)) if trace.duration_s else 60.0
    replicas = np.maximum(1, np.ceil(per_minute_work / lengths / capacity)).astype(np.int64)
    gpu_hours = float(np.sum(replicas * lengths)) * tp / 3600.0
    return OraclePlan(capacity, tuple(int(r) for r in replicas), gpu_hours)

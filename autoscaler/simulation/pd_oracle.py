"""The fleet oracle for two pools: the cheapest pair of per-minute plans that meets the SLO.

The aggregated fleet oracle (:mod:`~autoscaler.simulation.fleet_oracle`) bisects one fleet
capacity C so that ``ceil(work / C)`` per minute, simulated with zero start time, meets the
attainment target on the feasible requests. A disaggregated fleet has two capacities: prefill
``Cp`` in prompt tokens per second per replica and decode ``Cd`` in decode work per second per
replica, each pool's plan ``ceil(its minute's work / its capacity)``. Attainment falls as either
grows (a plan never gains replicas as its capacity grows), so the cheapest pair is found by
coordinate bisection with the same log-scale procedure as the aggregated one:

1. ``Cp`` with the decode pool sized generously (``Cd0 / 4``), so prefill alone decides;
2. ``Cd`` with that prefill plan;
3. ``Cp`` again with that decode plan (decode's own slack may let prefill carry more).

Each step only raises a capacity while the target holds, so the pair it ends on meets the
target and neither pool can shrink alone; that is the cheapest pair of this family of plans up
to the bisection's 0.5%. Not cached on disk (a run takes a few seconds on the families).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from autoscaler.core.slo import SloSpec
from autoscaler.perf.capacity import decode_batch_at_slo
from autoscaler.perf.model import PerfProfile
from autoscaler.simulation.disaggregated import PdConfig, PdRunOutput, simulate_pd
from autoscaler.simulation.fleet_oracle import _bisect
from autoscaler.simulation.oracle import INSTANT, OraclePlan, PlanPolicy, oracle_plan
from autoscaler.simulation.oracle import feasible_on_idle_replica as feasible_requests
from autoscaler.simulation.pd_replicas import DECODE_ROLE, PREFILL
from autoscaler.traces.records import Trace

GENEROUS = 4.0
"""How much below its seed the decode capacity is set while the prefill capacity is bisected."""


@dataclass(frozen=True, slots=True)
class PdOracle:
    """The two-pool yardstick of one trace (one seed)."""

    plans: dict[str, OraclePlan]
    attainment_feasible: float
    target_met: bool

    @property
    def gpu_hours(self) -> float:
        return sum(plan.gpu_hours for plan in self.plans.values())

    def gpu_hours_between(self, start_s: float, end_s: float, tp: int) -> float:
        return sum(p.gpu_hours_between(start_s, end_s, tp) for p in self.plans.values())


def role_weights(role: str, weights: tuple[float, float]) -> tuple[float, float]:
    """The work one pool does: prompt tokens for prefill, weighted decode tokens for decode."""
    return (weights[0], 0.0) if role == PREFILL else (0.0, weights[1])


def seed_capacities(
    profile: PerfProfile, slo: SloSpec, weights: tuple[float, float], mean_context: float
) -> dict[str, float]:
    """Per replica, at full use: prefill prompt tokens/s with a full token budget; decode work/s
    at the largest batch meeting the TPOT SLO at ``mean_context``."""
    budget = profile.max_batched_tokens
    prefill = budget / (profile.prefill_base_s + profile.prefill_chunk_s(0, budget))
    b = decode_batch_at_slo(profile, slo, mean_context)
    decode = b / profile.decode_step_s(b, b * mean_context)
    return {PREFILL: prefill * weights[0], DECODE_ROLE: decode * weights[1]}


def plan_config(
    plans: dict[str, OraclePlan],
    *,
    kv_bytes_per_token: int,
    link_gbps: float,
    weights: tuple[float, float],
    tick_s: float,
) -> PdConfig:
    """The config that replays ``plans`` with zero start time."""
    return PdConfig(
        max_replicas={r: max(p.replicas_per_minute) for r, p in plans.items()},
        start_replicas={r: p.replicas_per_minute[0] for r, p in plans.items()},
        kv_bytes_per_token=kv_bytes_per_token,
        link_gbps=link_gbps,
        tick_s=tick_s,
        lifecycle=INSTANT,
        work_weights=weights,
    )


def run_plans(
    trace: Trace, plans: dict[str, OraclePlan], profile: PerfProfile, config: PdConfig
) -> PdRunOutput:
    policies = {r: PlanPolicy("oracle", p.replicas_per_minute) for r, p in plans.items()}
    return simulate_pd(trace, policies, profile=profile, config=config)


def pd_met(out: PdRunOutput, slo: SloSpec) -> np.ndarray:
    """Per request, whether it met the SLO (rejected and unfinished ones did not)."""
    reqs = out.reqs
    ttft = reqs.column("first_token") - reqs.arrival_arr
    e2e = reqs.column("finished") - reqs.arrival_arr
    return np.asarray(slo.met(reqs.prompt_arr, reqs.output_arr, ttft, e2e), dtype=np.bool_)


def pd_oracle(
    trace: Trace,
    profile: PerfProfile,
    slo: SloSpec,
    weights: tuple[float, float],
    *,
    kv_bytes_per_token: int,
    link_gbps: float,
    tick_s: float = 15.0,
    progress: Callable[[float], None] | None = None,
) -> PdOracle:
    """Coordinate-bisect the two pools' capacities; see the module docstring."""
    feasible = feasible_requests(trace, profile, slo)
    mean_ctx = 1500.0
    if trace.requests:
        mean_ctx = float(np.mean(trace.prompt_tokens + trace.output_tokens / 2.0))
    seeds = seed_capacities(profile, slo, weights, mean_ctx)
    caps = {PREFILL: seeds[PREFILL], DECODE_ROLE: seeds[DECODE_ROLE] / GENEROUS}
    last = {"attainment": 0.0}
    calls = 0

    def plans_at(c: dict[str, float]) -> dict[str, OraclePlan]:
        return {r: oracle_plan(trace, c[r], role_weights(r, weights), profile.tp) for r in c}

    def attainment(role: str) -> Callable[[float], float]:
        def at(capacity: float) -> float:
            nonlocal calls
            plans = plans_at({**caps, role: capacity})
            config = plan_config(plans, kv_bytes_per_token=kv_bytes_per_token,
                                 link_gbps=link_gbps, weights=weights, tick_s=tick_s)  # fmt: skip
            met = pd_met(run_plans(trace, plans, profile, config), slo)
            calls += 1
            if progress is not None:
                progress(min(1.0, calls / 57.0))
            return float(met[feasible].mean()) if feasible.any() else 1.0

        return at

    target = slo.attainment_target
    met = True
    for role in (PREFILL, DECODE_ROLE, PREFILL):
        capacity, att, ok = _bisect(attainment(role), caps[role], target)
        caps[role] = capacity
        last["attainment"] = att
        met = ok
    return PdOracle(plans_at(caps), last["attainment"], met)

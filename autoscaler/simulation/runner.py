"""Runs several policies over seeds on one trace and assembles the ``simulate --json`` contract.

Per seed: the trace is rate-scaled with that seed, the yardsticks are computed once (token-work
weights, the single-replica C*, the fleet oracle's plan - :mod:`~autoscaler.simulation.fleet_oracle`
- and the work bound), every policy starts from the oracle's first-minute replica count (ready)
with the same SLO and replica cap, and two reference rows are simulated: ``oracle`` (the plan with
zero start time: its GPU-hours are ``oracle_gpu_hours``) and ``oracle-late`` (the same per-minute
counts, each requested at its minute through the run's own replica start-up: the best purely
reactive controller, which forecasting exists to beat). Figures are then averaged over seeds with
their spread; the yardstick's own numbers (C*, C, ``slo_ceiling``) go in ``yardstick``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from autoscaler.core.slo import SloSpec
from autoscaler.errors import InputError
from autoscaler.perf.model import PerfProfile
from autoscaler.policies.base import Policy, PolicyContext
from autoscaler.policies.registry import make_policy
from autoscaler.simulation.engine import RunOutput, SimConfig, simulate
from autoscaler.simulation.fleet_oracle import fleet_oracle
from autoscaler.simulation.gateway import GatewaySim
from autoscaler.simulation.lifecycle import LifecycleConfig
from autoscaler.simulation.oracle import (
    INSTANT,
    PlanPolicy,
    feasible_on_idle_replica,
    replica_capacity,
    seed_capacity,
    work_bound_gpu_hours,
    work_weights,
)
from autoscaler.simulation.prefetch import PrefetchSim
from autoscaler.simulation.results import mean_over_seeds, run_figures
from autoscaler.traces.records import Trace
from autoscaler.traces.scaling import scale_rate

ORACLE = "oracle"
ORACLE_LATE = "oracle-late"
REFERENCES = (ORACLE, ORACLE_LATE)
"""The reference rows every run reports besides its policies."""


@dataclass(frozen=True)
class RunRequest:
    """Everything ``simulate`` needs besides the trace."""

    policies: Sequence[str]
    profile: PerfProfile
    slo: SloSpec = field(default_factory=SloSpec)
    lifecycle: LifecycleConfig = field(default_factory=LifecycleConfig)
    seeds: int = 3
    rate_scale: float = 1.0
    max_replicas: int | None = None
    """Replica cap for every policy; default ``2 x`` the oracle's peak (at least peak + 4)."""
    capacity_seed_error: float = 0.0
    """Relative error injected into the policies' capacity seed (e.g. +0.3, -0.3)."""
    tick_s: float = 15.0
    prefetch: PrefetchSim | None = None
    """Prefetch planner and simulated pulls for every policy but the oracle (None: off)."""
    oracle_cache: Path | None = None
    """Where the fleet oracle's bisection is cached (None: computed every time)."""
    warmup_s: float | None = None
    """Warm-up before scoring (:attr:`SimConfig.warmup_s`); None: :func:`default_warmup_s`."""
    gateway: GatewaySim | None = None
    """An inference gateway in front of every row's fleet, the references' too: with flow
    control it changes where requests wait, so every row must run behind the same one."""

    def lead_s(self) -> float:
        """A cold start's duration: provisioning + pull + init."""
        return self.lifecycle.cold_s


def default_warmup_s(lead_s: float, duration_s: float) -> float:
    """max(600 s, 2 x the lead time): long enough that the first scoring minute sees a policy
    with ten minutes of history and a fleet that could have been re-planned twice; capped at
    half the trace (whole minutes), so a short trace keeps something to score."""
    want = max(600.0, 2.0 * lead_s)
    return float(min(want, 60.0 * math.floor(duration_s / 2.0 / 60.0)))


def resolve_warmup_s(requested: float | None, lead_s: float, duration_s: float) -> float:
    """The warm-up a run uses (``requested``, else :func:`default_warmup_s`); an error when it
    leaves nothing of the trace to score."""
    warmup = default_warmup_s(lead_s, duration_s) if requested is None else requested
    if warmup >= duration_s:
        raise InputError(
            f"a warm-up of {warmup:g}s leaves nothing of the {duration_s:g}s trace to "
            "score (--warmup-s 0 scores the whole run)"
        )
    return warmup


@dataclass
class SeedRun:
    seed: int
    trace: Trace
    outputs: dict[str, RunOutput]
    figures: dict[str, dict[str, float | int | None]]
    yardstick: dict[str, float | bool] = field(default_factory=dict)


Progress = Callable[[str, float], None]


def policy_context(
    req: RunRequest, weights: tuple[float, float], *, peak: int, cap: int
) -> PolicyContext:
    """What every policy of a run is built with: the same SLO, cap, weights and capacity seed."""
    return PolicyContext(
        slo=req.slo,
        max_replicas=cap,
        min_replicas=1,
        tick_s=req.tick_s,
        replica_token_capacity=seed_capacity(req.profile, req.slo)
        * (1.0 + req.capacity_seed_error),
        prefill_weight=weights[0],
        decode_weight=weights[1],
        gpus_per_replica=req.profile.tp,
        default_lead_time_s=req.lead_s(),
        profile=req.profile,
        peak_replicas=peak,
    )


def describe_request(req: RunRequest) -> dict[str, object]:
    """The ``profile``, ``slo`` and ``lifecycle`` objects of the ``simulate --json`` contract."""
    return {
        "profile": req.profile.describe(),
        "slo": {
            "ttft_s": req.slo.ttft_s,
            "ttft_per_1k_s": req.slo.ttft_per_1k_s,
            "tpot_s": req.slo.tpot_s,
            "attainment_target": req.slo.attainment_target,
        },
        "lifecycle": {
            "pull_s": req.lifecycle.pull_s,
            "init_s": req.lifecycle.init_s,
            "provision_s": req.lifecycle.provision_s,
            "prefetch": req.prefetch is not None,
            "gateway": "off" if req.gateway is None else req.gateway.describe(),
        },
    }


def run_seed(
    base: Trace,
    req: RunRequest,
    seed: int,
    progress: Progress | None = None,
    *,
    make: Callable[[str, PolicyContext], Policy] = make_policy,
) -> SeedRun:
    """All policies (and the oracle) on one seed of the rate-scaled trace. ``make`` builds each
    policy of ``req.policies`` from its name (a benchmark can pass variants the registry does
    not know, or wrap a policy to record what it saw)."""
    trace = scale_rate(base, req.rate_scale, seed=seed) if req.rate_scale != 1.0 else base
    profile, slo = req.profile, req.slo
    weights = work_weights(profile, slo)
    capacity = replica_capacity(trace, profile, slo, weights, seed=seed)
    yard = fleet_oracle(trace, profile, slo, weights, replica_capacity=capacity,
                        tick_s=req.tick_s, cache_dir=req.oracle_cache)  # fmt: skip
    plan = yard.plan
    warmup = resolve_warmup_s(req.warmup_s, req.lead_s(), trace.duration_s)
    scored = trace.arriving_from(warmup)
    bound = work_bound_gpu_hours(scored, profile, slo)
    oracle_hours = plan.gpu_hours_between(warmup, trace.duration_s, profile.tp)
    feasible = feasible_on_idle_replica(scored, profile, slo)
    ceiling = float(feasible.mean()) if scored.requests else 1.0
    peak = max(plan.replicas_per_minute)
    cap = req.max_replicas or max(2 * peak, peak + 4)
    start = plan.replicas_per_minute[0]
    ctx = policy_context(req, weights, peak=peak, cap=cap)
    outputs: dict[str, RunOutput] = {}
    figures: dict[str, dict[str, float | int | None]] = {}
    names = [*REFERENCES, *req.policies]
    for name in names:
        if name in REFERENCES:
            policy: Policy = PlanPolicy(name, plan.replicas_per_minute)
            lifecycle = INSTANT if name == ORACLE else req.lifecycle
        else:
            policy = make(name, ctx)
            lifecycle = req.lifecycle
        config = SimConfig(
            max_replicas=cap,
            min_replicas=1,
            start_replicas=start,
            tick_s=req.tick_s,
            lifecycle=lifecycle,
            work_weights=weights,
            prefetch=None if name in REFERENCES else req.prefetch,
            warmup_s=warmup,
            warmup_plan=plan.replicas_per_minute,
            gateway=req.gateway,
        )

        def report(frac: float, _name: str = name) -> None:
            if progress is not None:
                progress(_name, frac)

        out = simulate(trace, policy, profile=profile, config=config, progress=report)
        outputs[name] = out
        figures[name] = run_figures(
            out, slo, oracle_gpu_hours=oracle_hours, work_bound_gpu_hours=bound
        )
    yardstick: dict[str, float | bool] = {
        "replica_capacity": capacity,
        "fleet_capacity": plan.capacity,
        "slo_ceiling": ceiling,
        "warmup_s": warmup,
        "oracle_attainment_feasible": yard.attainment_feasible,
        "oracle_target_met": yard.target_met,
    }
    return SeedRun(seed, trace, outputs, figures, yardstick)


def run(base: Trace, req: RunRequest, progress: Progress | None = None) -> dict[str, object]:
    """Every policy over ``req.seeds`` seeds: the ``simulate --json`` object."""
    per_seed = [run_seed(base, req, seed, progress) for seed in range(req.seeds)]
    names = [*REFERENCES, *req.policies]
    policies = {name: mean_over_seeds([s.figures[name] for s in per_seed]) for name in names}
    yardstick: dict[str, object] = {
        key: round(float(np.mean([float(s.yardstick[key]) for s in per_seed])), 6)
        for key in ("replica_capacity", "fleet_capacity", "slo_ceiling",
                    "oracle_attainment_feasible", "warmup_s")
    }  # fmt: skip
    yardstick["oracle_target_met"] = all(bool(s.yardstick["oracle_target_met"]) for s in per_seed)
    first = per_seed[0].trace
    trace_info = dict(first.describe())
    trace_info["path"] = base.path
    trace_info["format"] = base.format
    return {
        "trace": trace_info,
        **describe_request(req),
        "seeds": req.seeds,
        "warmup_s": yardstick["warmup_s"],
        "yardstick": yardstick,
        "policies": policies,
    }

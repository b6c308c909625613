"""Runs policies on a disaggregated fleet over seeds: ``simulate --disaggregate``.

Per seed, as the aggregated runner does (:mod:`~autoscaler.simulation.runner`): the trace is
rate-scaled with the seed, the two-pool oracle (:mod:`~autoscaler.simulation.pd_oracle`) is
computed once, every policy's pools start from the oracle's first-minute counts and follow its
plan, ready at once, through the warm-up while the policies observe; the reference rows are
``oracle`` (the plans with zero start time) and ``oracle-late`` (the same counts through the
run's own start-up). The aggregated fleet oracle's GPU-hours over the same span are reported
next to them (``yardstick.aggregated_oracle_gpu_hours``), which is the comparison the issue
asks for: whether a disaggregated fleet under a policy beats the best aggregated plan.

Figures are the aggregated run's (:data:`~autoscaler.simulation.results.FIGURES`), with GPU-hours
of both pools, plus per pool: ``gpu_hours_prefill``, ``gpu_hours_decode``,
``max_replicas_prefill``, ``max_replicas_decode``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from autoscaler.core.slo import SloSpec
from autoscaler.perf.shapes import model_shape
from autoscaler.policies.base import Policy
from autoscaler.policies.roles import make_role_policies, role_contexts
from autoscaler.simulation.disaggregated import PdConfig, PdRunOutput, simulate_pd
from autoscaler.simulation.fleet_oracle import fleet_oracle
from autoscaler.simulation.oracle import (
    INSTANT,
    PlanPolicy,
    feasible_on_idle_replica,
    replica_capacity,
    work_bound_gpu_hours,
    work_weights,
)
from autoscaler.simulation.pd_compare import ratio_range
from autoscaler.simulation.pd_oracle import pd_met, pd_oracle
from autoscaler.simulation.pd_replicas import DEFAULT_LINK_GBPS, ROLES
from autoscaler.simulation.results import mean_over_seeds
from autoscaler.simulation.runner import (
    ORACLE,
    ORACLE_LATE,
    REFERENCES,
    RunRequest,
    describe_request,
    policy_context,
    resolve_warmup_s,
)
from autoscaler.traces.records import Trace
from autoscaler.traces.scaling import scale_rate

POOL_FIGURES = ("gpu_hours_prefill", "gpu_hours_decode", "max_replicas_prefill",
                "max_replicas_decode")  # fmt: skip


@dataclass(frozen=True)
class PdRequest:
    """The disaggregated part of a run: the link and whether to compute the aggregated oracle."""

    link_gbps: float = DEFAULT_LINK_GBPS
    aggregated_oracle: bool = True
    oracle_cache: Path | None = None
    make: Callable[[str], dict[str, Policy]] | None = field(default=None, compare=False)


def pd_figures(
    out: PdRunOutput, slo: SloSpec, *, oracle_gpu_hours: float, work_bound: float
) -> dict[str, float | int | None]:
    """Score one disaggregated run from its warm-up's end (both pools' GPU time)."""
    reqs = out.reqs
    scored = reqs.arrival_arr >= out.warmup_s
    ttft = (reqs.column("first_token") - reqs.arrival_arr)[scored]
    e2e = (reqs.column("finished") - reqs.arrival_arr)[scored]
    met = pd_met(out, slo)[scored]
    outputs = reqs.output_arr[scored]
    multi = outputs > 1
    tpot = (e2e[multi] - ttft[multi]) / (outputs[multi] - 1)
    hours = {
        r: f.gpu_seconds(out.duration_s, start=out.warmup_s) / 3600.0 for r, f in out.fleets.items()
    }

    def pct(values: np.ndarray, q: float) -> float | None:
        values = values[np.isfinite(values)]
        return float(np.percentile(values, q)) if values.size else None

    return {
        "slo_attainment": float(met.mean()) if met.size else 1.0,
        "gpu_hours": sum(hours.values()),
        "oracle_gpu_hours": oracle_gpu_hours,
        "work_bound_gpu_hours": work_bound,
        "cold_starts": sum(f.cold_starts for f in out.fleets.values()),
        "warm_starts": sum(f.warm_starts for f in out.fleets.values()),
        "requests": int(scored.sum()),
        "ttft_p50_s": pct(ttft, 50),
        "ttft_p90_s": pct(ttft, 90),
        "ttft_p99_s": pct(ttft, 99),
        "tpot_p90_s": pct(tpot, 90),
        "max_replicas": sum(out.max_replicas.values()),
        "replica_changes": sum(out.replica_changes.values()),
        "gpu_hours_prefill": hours["prefill"],
        "gpu_hours_decode": hours["decode"],
        "max_replicas_prefill": out.max_replicas["prefill"],
        "max_replicas_decode": out.max_replicas["decode"],
    }


def run_pd_seed(
    base: Trace, req: RunRequest, pd: PdRequest, seed: int
) -> tuple[dict[str, dict[str, float | int | None]], dict[str, float]]:
    """Every policy and both references on one seed: (figures per row, yardstick)."""
    trace = scale_rate(base, req.rate_scale, seed=seed) if req.rate_scale != 1.0 else base
    profile, slo = req.profile, req.slo
    weights = work_weights(profile, slo)
    kv_bytes = model_shape(profile.model).kv_bytes_per_token
    yard = pd_oracle(trace, profile, slo, weights, kv_bytes_per_token=kv_bytes,
                     link_gbps=pd.link_gbps, tick_s=req.tick_s)  # fmt: skip
    warmup = resolve_warmup_s(req.warmup_s, req.lead_s(), trace.duration_s)
    scored = trace.arriving_from(warmup)
    bound = work_bound_gpu_hours(scored, profile, slo)
    oracle_hours = yard.gpu_hours_between(warmup, trace.duration_s, profile.tp)
    plans = {r: yard.plans[r].replicas_per_minute for r in ROLES}
    peaks = {r: max(p) for r, p in plans.items()}
    caps = {r: req.max_replicas or max(2 * peaks[r], peaks[r] + 4) for r in ROLES}
    base_ctx = policy_context(req, weights, peak=sum(peaks.values()), cap=sum(caps.values()))
    contexts = role_contexts(base_ctx, profile, caps, req.capacity_seed_error)
    figures: dict[str, dict[str, float | int | None]] = {}
    for name in [*REFERENCES, *req.policies]:
        if name in REFERENCES:
            policies: dict[str, Policy] = {r: PlanPolicy(name, plans[r]) for r in ROLES}
            lifecycle = INSTANT if name == ORACLE else req.lifecycle
        else:
            policies = (pd.make or (lambda s: make_role_policies(s, contexts, profile)))(name)
            lifecycle = req.lifecycle
        config = PdConfig(
            max_replicas=caps,
            start_replicas={r: plans[r][0] for r in ROLES},
            kv_bytes_per_token=kv_bytes,
            link_gbps=pd.link_gbps,
            tick_s=req.tick_s,
            lifecycle=lifecycle,
            work_weights=weights,
            warmup_s=warmup,
            warmup_plan=plans,
        )
        out = simulate_pd(trace, policies, profile=profile, config=config)
        figures[name] = pd_figures(out, slo, oracle_gpu_hours=oracle_hours, work_bound=bound)
    feasible = feasible_on_idle_replica(scored, profile, slo)
    yardstick = {
        "slo_ceiling": float(feasible.mean()) if scored.requests else 1.0,
        "warmup_s": warmup,
        "oracle_attainment_feasible": yard.attainment_feasible,
        "oracle_target_met": float(yard.target_met),
        "prefill_capacity": yard.plans["prefill"].capacity,
        "decode_capacity": yard.plans["decode"].capacity,
        "prefill_decode_ratio_p10": ratio_range(yard)[0],
        "prefill_decode_ratio_p90": ratio_range(yard)[1],
    }
    if pd.aggregated_oracle:
        c_star = replica_capacity(trace, profile, slo, weights, seed=seed)
        agg = fleet_oracle(trace, profile, slo, weights, replica_capacity=c_star,
                           tick_s=req.tick_s, cache_dir=pd.oracle_cache)  # fmt: skip
        yardstick["aggregated_oracle_gpu_hours"] = agg.plan.gpu_hours_between(
            warmup, trace.duration_s, profile.tp
        )
    return figures, yardstick


def run_pd(base: Trace, req: RunRequest, pd: PdRequest) -> dict[str, object]:
    """Every policy over ``req.seeds`` seeds: the ``simulate --disaggregate --json`` object."""
    per_seed = [run_pd_seed(base, req, pd, seed) for seed in range(req.seeds)]
    names = [*REFERENCES, *req.policies]
    rows: dict[str, object] = {}
    for name in names:
        runs = [figs[name] for figs, _ in per_seed]
        row = mean_over_seeds(runs)
        for key in POOL_FIGURES:
            values = [float(r[key] or 0.0) for r in runs]
            row[key] = round(sum(values) / len(values), 6)
        rows[name] = row
    keys = sorted({k for _, y in per_seed for k in y})
    yardstick = {k: round(float(np.mean([y[k] for _, y in per_seed if k in y])), 6) for k in keys}
    return {
        "trace": {**base.describe(), "path": base.path, "format": base.format},
        **describe_request(req),
        "disaggregated": {"link_gbps": pd.link_gbps, "roles": list(ROLES)},
        "seeds": req.seeds,
        "yardstick": yardstick,
        "policies": rows,
        "references": [ORACLE, ORACLE_LATE],
    }

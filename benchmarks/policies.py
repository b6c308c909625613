"""Every policy (ours, each baseline's whole sweep, the oracle) on the shared traces, vs the goals.

Prints one table per trace and capacity-seed error with SLO attainment (the whole run and after
the warm-up), GPU-hours and GPU-hours / oracle, averaged over seeds (default 3), then whether
``forecast`` meets the goals (SLO attainment >= the target, GPU-hours <= 1.25 x oracle, no point
of a baseline's sweep at least as good on SLO attainment and at most as costly). Traces (issue
acceptance): ``azure2023_conv.csv`` at rate-scale 20, ``mooncake_synthetic_trace.jsonl`` at
rate-scale 1, and with ``--servegen`` the ServeGen language models over 14 days in fluid mode.

    .venv/bin/python benchmarks/policies.py [--seeds 3] [--quick] [--servegen [--servegen-days D]]
        [--capacity-seed-error E ...]

Yardsticks besides the oracle, for the request-level traces, where every policy starts with the
oracle's first-minute fleet and the trace may ramp faster than a replica starts:

* ``slo_after_warmup``: attainment of the requests arriving after the default lead time (the
  cold start) plus 10 minutes, i.e. once no policy is still paying for the starting fleet;
* ``oracle-lead``: the oracle's plan known in advance (each tick asks for the most the plan needs
  between now and one lead time ahead), through the shipped HPA behaviour and the real replica
  start-up, from the same starting fleet. No forecast can do better than knowing the plan, so its
  SLO attainment is what the starting fleet and the cold start leave reachable, and its GPU-hours
  the least that the HPA's scale-down window and the cold start allow at the oracle's capacity.

With seed errors other than 0 only the policies that read the capacity seed (``forecast`` and
``dynamo``, whose profile stand-in is derived from it) are run again; the other baselines' figures
do not depend on it and are taken from the run without error (``--rerun-all`` runs them anyway).
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np
from _common import emit, shared_or_exit

from autoscaler.hpa.behavior import SHIPPED_BEHAVIOR
from autoscaler.hpa.spec import ExternalMetricTarget, HpaSpec
from autoscaler.perf.profiles import get_profile
from autoscaler.policies.base import Actuation
from autoscaler.policies.forecast import DESIRED_METRIC
from autoscaler.policies.registry import expand_sweep, policy_names
from autoscaler.recommendation import Candidate, PublishedMetric, Recommendation
from autoscaler.signals import SignalSnapshot
from autoscaler.simulation.engine import RunOutput, SimConfig, simulate
from autoscaler.simulation.fluid_runner import run_fluid
from autoscaler.simulation.oracle import work_weights
from autoscaler.simulation.results import mean_over_seeds, run_figures
from autoscaler.simulation.runner import ORACLE, RunRequest, run_seed
from autoscaler.slo import SloSpec
from autoscaler.traces.readers import read_trace
from autoscaler.traces.records import Trace
from autoscaler.traces.servegen import read_rate_windows

SERVEGEN = "traces/servegen_aggregate_rate_10min.csv"
SERVEGEN_MODELS = ("m-large", "m-mid", "m-small")
CASES = (
    ("traces/azure2023_conv.csv", 20.0),
    # Any rate-scale gives Mooncake a peak far above 20 replicas: its 40k+-token prompts leave
    # one replica almost no room at the default SLO (C* is tiny; see the closing note).
    ("traces/mooncake_synthetic_trace.jsonl", 1.0),
)
OURS = "forecast"
LEAD = "oracle-lead"
SEED_DEPENDENT = ("forecast", "dynamo")
"""Policies that read ``PolicyContext.replica_token_capacity`` (the capacity seed)."""
COST_GOAL = 1.25
WARMUP_AFTER_LEAD_S = 600.0


class LeadPlan:
    """The oracle's per-minute plan, asked for one lead time ahead, through the shipped HPA."""

    name = LEAD
    actuation: Actuation = "hpa"

    def __init__(self, per_minute: Sequence[int], lead_s: float, max_replicas: int) -> None:
        self.per_minute = tuple(per_minute)
        self.lead_s = lead_s
        self.max_replicas = max_replicas

    def hpa_spec(self) -> HpaSpec:
        return HpaSpec(
            metrics=(ExternalMetricTarget(DESIRED_METRIC, "AverageValue", 1.0),),
            behavior=SHIPPED_BEHAVIOR,
            min_replicas=1,
            max_replicas=self.max_replicas,
        )

    def recommend(self, snapshot: SignalSnapshot) -> Recommendation:
        lead = snapshot.time_to_ready_s or self.lead_s
        last = len(self.per_minute) - 1
        first = min(int(snapshot.timestamp // 60), last)
        upto = min(int((snapshot.timestamp + lead) // 60), last)
        want = max(self.per_minute[first : upto + 1])
        return Recommendation(
            workload=snapshot.workload,
            timestamp=snapshot.timestamp,
            desired_replicas=want,
            winner="plan",
            candidates=(Candidate("plan", float(want), f"minutes {first}-{upto}"),),
            metrics=(PublishedMetric(DESIRED_METRIC, float(want)),),
        )


def attainment_after(out: RunOutput, slo: SloSpec, start_s: float) -> float | None:
    """SLO attainment of the requests arriving at or after ``start_s`` (None if there are none)."""
    reqs = out.reqs
    late = reqs.arrival_arr >= start_s
    if not late.any():
        return None
    ttft = reqs.column("first_token") - reqs.arrival_arr
    e2e = reqs.column("finished") - reqs.arrival_arr
    met = slo.met(reqs.prompt_arr, reqs.output_arr, ttft, e2e)
    return float(met[late].mean())


def plan_of(oracle: RunOutput) -> list[int]:
    """The oracle's per-minute plan, read back from its simulated run (its spec each minute)."""
    per_minute: dict[int, int] = {}
    for tick in oracle.timeline:
        per_minute.setdefault(int(tick.t // 60), tick.spec)
    return [per_minute[m] for m in sorted(per_minute)]


def lead_plan_run(
    trace: Trace, req: RunRequest, oracle: RunOutput, oracle_gpu_hours: float, bound: float
) -> tuple[dict[str, float | int | None], RunOutput]:
    plan = plan_of(oracle)
    peak = max(plan)
    cap = req.max_replicas or max(2 * peak, peak + 4)
    lc = req.lifecycle
    policy = LeadPlan(plan, lc.provision_s + lc.pull_s + lc.init_s, cap)
    config = SimConfig(
        max_replicas=cap,
        min_replicas=1,
        start_replicas=plan[0],
        tick_s=req.tick_s,
        lifecycle=lc,
        work_weights=work_weights(req.profile, req.slo),
    )
    out = simulate(trace, policy, profile=req.profile, config=config)
    figures = run_figures(
        out, req.slo, oracle_gpu_hours=oracle_gpu_hours, work_bound_gpu_hours=bound
    )
    return figures, out


def request_level(
    base: Trace, req: RunRequest, *, with_lead: bool
) -> tuple[dict[str, dict[str, object]], dict[str, object]]:
    """Figures per policy (mean over seeds), plus ``slo_after_warmup`` and, with ``with_lead``,
    the ``oracle-lead`` yardstick."""
    lc = req.lifecycle
    warm = lc.provision_s + lc.pull_s + lc.init_s + WARMUP_AFTER_LEAD_S
    runs: dict[str, list[dict[str, float | int | None]]] = {}
    after: dict[str, list[float]] = {}
    info: dict[str, object] = {}
    for seed in range(req.seeds):
        one = run_seed(base, req, seed)
        if not info:
            info = dict(one.trace.describe())
        oracle_figs = one.figures[ORACLE]
        outputs = dict(one.outputs)
        figures = dict(one.figures)
        if with_lead:
            figures[LEAD], outputs[LEAD] = lead_plan_run(
                one.trace,
                req,
                one.outputs[ORACLE],
                float(oracle_figs["oracle_gpu_hours"] or 0.0),
                float(oracle_figs["work_bound_gpu_hours"] or 0.0),
            )
        for name, out in outputs.items():
            runs.setdefault(name, []).append(figures[name])
            late = attainment_after(out, req.slo, warm)
            if late is not None:
                after.setdefault(name, []).append(late)
    merged: dict[str, dict[str, object]] = {}
    for name, figs in runs.items():
        mean = mean_over_seeds(figs)
        values = after.get(name, [])
        mean["slo_after_warmup"] = round(float(np.mean(values)), 6) if values else None
        merged[name] = mean
    info["warmup_s"] = warm
    return merged, info


def fluid(
    windows_path: str, model: str, req: RunRequest, days: float
) -> tuple[dict[str, dict[str, object]], dict[str, object]]:
    windows = read_rate_windows(windows_path, model)
    count = min(windows.n_windows, max(1, int(round(days * 86400 / windows.window_s))))
    result = run_fluid(windows.window_slice(0, count), req)
    policies = result["policies"]
    assert isinstance(policies, dict)
    info = result["trace"]
    assert isinstance(info, dict)
    # over days, the first minutes of a run are noise: the whole run is the after-warm-up figure
    for figs in policies.values():
        figs["slo_after_warmup"] = figs.get("slo_attainment")
    return policies, info


def goals(policies: Mapping[str, Mapping[str, object]], target: float) -> dict[str, object]:
    """Whether ours meets the goals on this table, and which baseline points dominate it."""
    ours = policies[OURS]
    slo, gpu, oracle = (
        float(ours["slo_attainment"]),  # type: ignore[arg-type]
        float(ours["gpu_hours"]),  # type: ignore[arg-type]
        float(ours["oracle_gpu_hours"]),  # type: ignore[arg-type]
    )
    dominated_by, tied_with = [], []
    for name, figs in policies.items():
        if name in (OURS, ORACLE, LEAD):
            continue
        other_slo = float(figs["slo_attainment"])  # type: ignore[arg-type]
        other_gpu = float(figs["gpu_hours"])  # type: ignore[arg-type]
        if math.isclose(other_slo, slo, abs_tol=1e-6) and math.isclose(
            other_gpu, gpu, rel_tol=1e-6
        ):
            tied_with.append(name)  # the same point: at least as good and as costly, not better
        elif other_slo >= slo and other_gpu <= gpu:
            dominated_by.append(name)
    return {
        "slo_attainment": slo,
        "slo_ok": slo >= target,
        "gpu_vs_oracle": round(gpu / oracle, 4) if oracle else None,
        "cost_ok": gpu <= COST_GOAL * oracle,
        "dominated_by": dominated_by,
        "tied_with": tied_with,
    }


def table(policies: Mapping[str, Mapping[str, object]], title: str) -> str:
    def pct(value: object) -> str:
        return f"{100 * float(value):.2f}%" if isinstance(value, int | float) else "-"

    lines = [
        f"### {title}\n",
        "| policy | SLO | SLO after warm-up | GPU-h | /oracle | cold starts | max replicas |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, figs in policies.items():
        gpu, oracle = figs.get("gpu_hours"), figs.get("oracle_gpu_hours")
        ratio = (
            f"{float(gpu) / float(oracle):.3f}"
            if isinstance(gpu, int | float) and isinstance(oracle, int | float) and oracle
            else "-"
        )
        label = f"**{name}**" if name == OURS else name
        lines.append(
            f"| {label} | {pct(figs.get('slo_attainment'))} | {pct(figs.get('slo_after_warmup'))} "
            f"| {float(gpu) if isinstance(gpu, int | float) else 0.0:.1f} | {ratio} "
            f"| {figs.get('cold_starts')} "
            f"| {figs.get('max_replicas')} |"
        )
    return "\n".join(lines)


def verdict(check: Mapping[str, object]) -> str:
    dominated, tied = check["dominated_by"], check["tied_with"]
    assert isinstance(dominated, list) and isinstance(tied, list)
    return (
        f"`forecast`: SLO goal {'met' if check['slo_ok'] else 'NOT met'}, "
        f"cost {check['gpu_vs_oracle']}x oracle ({'met' if check['cost_ok'] else 'NOT met'}), "
        + (f"dominated by {', '.join(dominated)}" if dominated else "dominated by no baseline")
        + (f"; the same point as {', '.join(tied)}" if tied else "")
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="default settings only, no sweeps")
    ap.add_argument(
        "--capacity-seed-error",
        type=float,
        action="append",
        help="relative error of the capacity seed; repeat for several (default: 0)",
    )
    ap.add_argument("--rerun-all", action="store_true", help="run every policy at every error")
    ap.add_argument(
        "--servegen",
        action="store_true",
        help="also the ServeGen language models, 14 days each, in fluid mode",
    )
    ap.add_argument("--servegen-days", type=float, default=14.0)
    ap.add_argument("--no-request-level", action="store_true", help="only the ServeGen models")
    args = ap.parse_args()
    errors = sorted(set(args.capacity_seed_error or [0.0]), key=lambda e: (e != 0.0, e))
    if errors[0] != 0.0 and not args.rerun_all:
        errors.insert(0, 0.0)  # the seed-independent baselines come from the run without error

    names = [OURS, *[n for n in policy_names() if n != OURS]]
    if not args.quick:
        names = [OURS, *expand_sweep([n for n in names if n != OURS])]
    base_req = RunRequest(policies=names, profile=get_profile())
    target = base_req.slo.attainment_target

    cases: list[tuple[str, object]] = []
    if not args.no_request_level:
        for rel, scale in CASES:
            cases.append((f"{rel.split('/')[-1]} x{scale:g}", (rel, scale)))
    if args.servegen:
        for model in SERVEGEN_MODELS:
            cases.append((f"servegen {model}, {args.servegen_days:g} days, fluid", model))

    payload: dict[str, object] = {}
    tables: list[str] = []
    for label, case in cases:
        by_error: dict[str, object] = {}
        reference: dict[str, dict[str, object]] = {}
        for error in errors:
            run_names = (
                names
                if error == 0.0 or args.rerun_all
                else [n for n in names if n.split("@")[0] in SEED_DEPENDENT]
            )
            t0 = time.perf_counter()
            if isinstance(case, tuple):
                rel, scale = case
                req = replace(
                    base_req,
                    policies=run_names,
                    seeds=args.seeds,
                    rate_scale=float(scale),
                    capacity_seed_error=error,
                )
                policies, info = request_level(
                    read_trace(shared_or_exit(str(rel))), req, with_lead=error == 0.0
                )
                seeds = args.seeds
            else:
                req = replace(base_req, policies=run_names, seeds=1, capacity_seed_error=error)
                policies, info = fluid(
                    str(shared_or_exit(SERVEGEN)), str(case), req, args.servegen_days
                )
                seeds = 1
            if error == 0.0:
                reference = dict(policies)
            else:
                policies = {**reference, **policies} if not args.rerun_all else policies
                policies.pop(LEAD, None)
            check = goals(policies, target)
            key = f"seed error {error:+.0%}"
            by_error[key] = {
                "trace": info,
                "seeds": seeds,
                "wall_s": round(time.perf_counter() - t0, 1),
                "policies": policies,
                "goals": check,
            }
            requests = info.get("requests")
            title = f"{label}, capacity {key} ({requests:,} requests, {seeds} seed(s))"
            tables.append(table(policies, title) + "\n\n" + verdict(check))
            print(tables[-1] + "\n", flush=True)
        payload[label] = by_error
    emit("policies", payload, "\n\n".join(tables))


if __name__ == "__main__":
    main()

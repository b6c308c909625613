"""Every policy (ours, each baseline's whole sweep, the oracle) on the shared traces, vs the goals.

Prints one table per trace and capacity-seed error with SLO attainment and GPU-hours (both
scored after the runner's warm-up, ``--warmup-s``) and GPU-hours / oracle, averaged over seeds
(default 3), then whether ``forecast`` meets the goals (SLO attainment >= the target, GPU-hours
<= 1.25 x oracle, no point of a baseline's sweep at least as good on SLO attainment and at most
as costly). Traces (issue acceptance): ``azure2023_conv.csv`` at rate-scale 20,
``mooncake_synthetic_trace.jsonl`` at rate-scale 1, and with ``--servegen`` the ServeGen
language models over 14 days in fluid mode.

    .venv/bin/python benchmarks/policies.py [--seeds 3] [--quick] [--servegen [--servegen-days D]]
        [--capacity-seed-error E ...]

A yardstick besides the runner's ``oracle`` and ``oracle-late``, for the request-level traces:

* ``oracle-lead``: the oracle's plan known in advance (each tick asks for the most the plan needs
  between now and one lead time ahead), through the shipped HPA behaviour and the real replica
  start-up, after the same warm-up. No forecast can do better than knowing the plan, so its
  SLO attainment is what the starting fleet and the cold start leave reachable, and its GPU-hours
  the least that the HPA's scale-down window and the cold start allow at the oracle's capacity.

With seed errors other than 0 only the policies that read the capacity seed (``forecast`` and
``dynamo``, whose profile stand-in is derived from it) are run again; the other baselines' figures
do not depend on it and are taken from the run without error (``--rerun-all`` runs them anyway).

``--families`` (issue 17, part 5): every workload family of :mod:`autoscaler.traces.families`
(one fresh trace per seed) plus the shared request-level traces above, each with ours
(``forecast`` at its default and over its ``@SETTING`` grid), every baseline's swept points and
the ``oracle`` / ``oracle-late`` reference rows from the runner, all scored after the runner's
warm-up (``--warmup-s``; default max(600 s, 2 x lead time), ``--warmup-s 0`` scores everything).
It prints one summary table (one row per workload: ours, GPU-h / oracle, the goals, whether a
baseline point dominates ours, ours against ``oracle-late``) and one detail table per workload
(ours, the grid, the references and each baseline's swept front). ``--leave-one-out`` also
picks, for each family, the ``forecast`` setting that meets the goals on the most other
workloads (ties: fewest GPU-hours) and reports how it does on the family left out.

    .venv/bin/python benchmarks/policies.py --families [--leave-one-out] [--seeds 3] [--quick]
        [--warmup-s S] [--jobs N] [--no-shared] [--only WORKLOAD ...]
        [--gateway off|arrivals|flow-control|flow-control-unobserved]

``--gateway`` (issue 22) puts every fleet, the references' too, behind a simulated inference
gateway (:mod:`autoscaler.simulation.gateway`): ``arrivals`` adds its request counter and token
sizes to what policies see (``forecast`` then reads demand as it arrives); ``flow-control`` also
holds requests at the gateway while the pool is saturated, where only its backlog gauge shows them;
``flow-control-unobserved`` holds them the same way but nobody scrapes the gateway (what an
autoscaler reading only the engines sees behind flow control).

``--quick``: four families cut to 20 minutes (a flash crowd at minute 12), one seed, baselines
at their default settings only (no sweep), no shared traces: a few minutes on two cores.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import replace

import numpy as np
from _common import emit, shared_or_exit

from autoscaler.core.recommendation import Candidate, PublishedMetric, Recommendation
from autoscaler.core.signals import SignalSnapshot
from autoscaler.core.wire_names import DESIRED_METRIC
from autoscaler.hpa.behavior import SHIPPED_BEHAVIOR
from autoscaler.hpa.spec import ExternalMetricTarget, HpaSpec
from autoscaler.perf.profiles import get_profile
from autoscaler.policies.base import Actuation
from autoscaler.policies.registry import POLICIES, expand_sweep, format_setting, policy_names
from autoscaler.simulation.engine import RunOutput, SimConfig, simulate
from autoscaler.simulation.fluid_runner import run_fluid
from autoscaler.simulation.gateway import GatewaySim
from autoscaler.simulation.oracle import work_weights
from autoscaler.simulation.results import mean_over_seeds, run_figures
from autoscaler.simulation.runner import ORACLE, ORACLE_LATE, REFERENCES, RunRequest, run_seed
from autoscaler.traces.families import FAMILIES, FlashCrowd
from autoscaler.traces.families import generate as generate_family
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


def plan_of(oracle: RunOutput) -> list[int]:
    """The oracle's per-minute plan, read back from its simulated run (its spec each minute)."""
    per_minute: dict[int, int] = {}
    for tick in oracle.timeline:
        per_minute.setdefault(int(tick.t // 60), tick.spec)
    return [per_minute[m] for m in sorted(per_minute)]


def lead_plan_run(
    trace: Trace,
    req: RunRequest,
    oracle: RunOutput,
    oracle_gpu_hours: float,
    bound: float,
    warmup_s: float,
) -> tuple[dict[str, float | int | None], RunOutput]:
    """The ``oracle-lead`` run, warmed up and scored like the runner's rows."""
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
        warmup_s=warmup_s,
        warmup_plan=tuple(plan),
    )
    out = simulate(trace, policy, profile=req.profile, config=config)
    figures = run_figures(
        out, req.slo, oracle_gpu_hours=oracle_gpu_hours, work_bound_gpu_hours=bound
    )
    return figures, out


def request_level(
    base: Trace, req: RunRequest, *, with_lead: bool
) -> tuple[dict[str, dict[str, object]], dict[str, object]]:
    """Figures per policy (mean over seeds, scored after the runner's warm-up) and, with
    ``with_lead``, the ``oracle-lead`` yardstick."""
    runs: dict[str, list[dict[str, float | int | None]]] = {}
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
                float(one.yardstick["warmup_s"]),
            )
        info["warmup_s"] = one.yardstick["warmup_s"]
        for name in outputs:
            runs.setdefault(name, []).append(figures[name])
    return {name: mean_over_seeds(figs) for name, figs in runs.items()}, info


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
        "| policy | SLO | GPU-h | /oracle | cold starts | max replicas |",
        "|---|---|---|---|---|---|",
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
            f"| {label} | {pct(figs.get('slo_attainment'))} "
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


# --- --families and --leave-one-out (issue 17, part 5) ----------------------------------------

FAMILY_COST_GOAL = 1.3
SLO_SLACK = 0.005
"""The goals of issue 17: SLO >= min(target, slo_ceiling) - 0.5 pt, GPU-h <= 1.3 x oracle."""
FORECAST_GRID = (0.6, 0.8, 1.2)
"""``forecast@SETTING`` points run besides the default when the registry has no sweep for ours."""
QUICK_FAMILIES = ("poisson-chat", "flash-x4-chat", "ramp-longctx", "sessions-multiturn")
QUICK_DURATION_S = 1200.0
BASELINE_ROWS = "baselines"


def forecast_grid() -> list[str]:
    """Ours at its default, then the registry's ``@SETTING`` sweep (or :data:`FORECAST_GRID`)."""
    sweep = POLICIES[OURS].sweep or FORECAST_GRID
    return [OURS, *expand_sweep([f"{OURS}@{format_setting(v)}" for v in sweep])]


Spec = tuple[str, str, float, float | None]
"""One workload of the families table: kind (``family`` or ``shared``), name (a family, or a file
under the shared data), rate scale, head (seconds kept, None: all)."""


def workload_specs(
    families: Sequence[str],
    *,
    shared: bool = True,
    head_s: float | None = None,
    only: Sequence[str] | None = None,
) -> dict[str, Spec]:
    """The workloads of the families table by label: the ``families``, then (``shared``) the
    shared traces of :data:`CASES`; ``only`` keeps those labels (an unknown one exits, listing
    the known). Used by every benchmark that runs the families."""
    specs: dict[str, Spec] = {name: ("family", name, 1.0, head_s) for name in families}
    if shared:
        for rel, scale in CASES:
            specs[f"{rel.split('/')[-1]} x{scale:g}"] = ("shared", rel, scale, None)
    if only:
        unknown = sorted(set(only) - set(specs))
        if unknown:
            raise SystemExit(f"--only: unknown workload(s) {unknown}; known: {sorted(specs)}")
        specs = {label: spec for label, spec in specs.items() if label in only}
    return specs


def workload_trace(spec: Spec, seed: int) -> Trace:
    """The trace of one workload and seed: a family drawn with the seed, or a shared file (the
    runner rate-scales that one with the seed)."""
    kind, name, _scale, head_s = spec
    if kind == "family":
        family = FAMILIES[name]
        if head_s is not None and head_s < family.duration_s:
            shape = family.shape
            if isinstance(shape, FlashCrowd):  # keep the crowd, after the warm-up
                shape = replace(shape, at_s=min(shape.at_s, 0.6 * head_s))
            family = replace(family, shape=shape, duration_s=head_s)
        return generate_family(family, seed)
    trace = read_trace(shared_or_exit(name))
    return trace.head(head_s) if head_s is not None else trace


def run_workload_seed(
    label: str, spec: tuple[str, str, float, float | None], req: RunRequest, seed: int
) -> tuple[str, int, dict[str, dict[str, float | int | None]], dict[str, float], float]:
    """One (workload, seed): every policy's figures and the yardstick (a process-pool task)."""
    t0 = time.perf_counter()
    trace = workload_trace(spec, seed)
    one = run_seed(trace, replace(req, rate_scale=spec[2]), seed)
    yard = {k: float(v) for k, v in one.yardstick.items()}
    yard["requests"] = float(one.trace.requests)
    return label, seed, one.figures, yard, time.perf_counter() - t0


def _f(figs: Mapping[str, object], key: str) -> float:
    value = figs.get(key)
    return float(value) if isinstance(value, int | float) else math.nan


def dominates(a: Mapping[str, object], b: Mapping[str, object]) -> bool:
    """``a`` has SLO >= ``b``'s and GPU-h <= ``b``'s, one of them strictly (ties within 1e-6)."""
    sa, sb, ga, gb = (_f(a, "slo_attainment"), _f(b, "slo_attainment"),
                      _f(a, "gpu_hours"), _f(b, "gpu_hours"))  # fmt: skip
    same_slo = math.isclose(sa, sb, abs_tol=1e-6)
    same_gpu = math.isclose(ga, gb, rel_tol=1e-6)
    return (sa >= sb or same_slo) and (ga <= gb or same_gpu) and not (same_slo and same_gpu)


def same_point(a: Mapping[str, object], b: Mapping[str, object]) -> bool:
    """Equal SLO and GPU-h (within 1e-6)."""
    return math.isclose(
        _f(a, "slo_attainment"), _f(b, "slo_attainment"), abs_tol=1e-6
    ) and math.isclose(_f(a, "gpu_hours"), _f(b, "gpu_hours"), rel_tol=1e-6)


def front(points: Mapping[str, Mapping[str, object]]) -> list[str]:
    """The names of the points no other point dominates (a policy's swept front), by GPU-h."""
    names: list[str] = []
    for n in points:
        if any(dominates(points[m], points[n]) for m in points):
            continue
        if any(same_point(points[n], points[m]) for m in names):
            continue  # the same point as one already kept (several settings can give it)
        names.append(n)
    return sorted(names, key=lambda n: _f(points[n], "gpu_hours"))


def family_goals(
    policies: Mapping[str, Mapping[str, object]], name: str, target: float, ceiling: float
) -> dict[str, object]:
    """Issue 17's goals for the point ``name`` on one workload."""
    figs, late = policies[name], policies[ORACLE_LATE]
    slo, gpu, oracle = (_f(figs, "slo_attainment"), _f(figs, "gpu_hours"),
                        _f(figs, "oracle_gpu_hours"))  # fmt: skip
    need = min(target, ceiling) - SLO_SLACK
    late_slo, late_gpu = _f(late, "slo_attainment"), _f(late, "gpu_hours")
    baselines = [n for n in policies if n.split("@")[0] != OURS and n not in REFERENCES]
    by = [n for n in baselines if dominates(policies[n], figs)]
    return {
        "slo_attainment": slo,
        "slo_needed": round(need, 6),
        "slo_ok": slo >= need,
        "gpu_vs_oracle": round(gpu / oracle, 4) if oracle else None,
        "cost_ok": bool(oracle) and gpu <= FAMILY_COST_GOAL * oracle,
        "dominated_by": by,
        "slo_vs_oracle_late_pt": round(100 * (slo - late_slo), 3),
        "gpu_vs_oracle_late": round(gpu / late_gpu, 4) if late_gpu else None,
        # better than oracle-late on one axis and no worse on the other
        "beats_oracle_late": dominates(figs, late),
        # where even oracle-late (the best reactive controller) misses the SLO needed, the goal
        # is more SLO than oracle-late at no more GPU-hours
        "oracle_late_misses": late_slo < need,
        "more_slo_than_late_for_less": slo > late_slo and gpu <= late_gpu,
    }


def met(check: Mapping[str, object]) -> bool:
    """All of the goals: SLO, cost, undominated (and oracle-late where SLO is out of reach)."""
    return bool(check["slo_ok"] and check["cost_ok"] and not check["dominated_by"])


def pct(value: float) -> str:
    return f"{100 * value:.2f}%" if math.isfinite(value) else "-"


def ratio(figs: Mapping[str, object]) -> str:
    gpu, oracle = _f(figs, "gpu_hours"), _f(figs, "oracle_gpu_hours")
    return f"{gpu / oracle:.2f}" if oracle and math.isfinite(gpu / oracle) else "-"


def shorten(names: Sequence[str], most: int = 3) -> str:
    if not names:
        return "none"
    return ", ".join(names[:most]) + (f" +{len(names) - most}" if len(names) > most else "")


def summary_table(results: Mapping[str, Mapping[str, object]]) -> str:
    lines = [
        "| workload | requests | SLO needed | ours SLO | ours GPU-h | ÷ oracle | oracle-late "
        "SLO / ÷ oracle | ours vs oracle-late | dominated by | goals |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, res in results.items():
        policies = res["policies"]
        check = res["goals"]
        assert isinstance(policies, dict) and isinstance(check, dict)
        ours, late = policies[OURS], policies[ORACLE_LATE]
        by = check["dominated_by"]
        assert isinstance(by, list)
        goals_text = ", ".join(
            f"{what} {'ok' if check[key] else 'NO'}"
            for what, key in (("SLO", "slo_ok"), ("cost", "cost_ok"))
        )
        if check["oracle_late_misses"] and not check["slo_ok"]:
            goals_text += (
                " (oracle-late misses too; more SLO than it at <= its GPU-h: "
                f"{'yes' if check['more_slo_than_late_for_less'] else 'no'})"
            )
        late_ratio = f"{float(check['gpu_vs_oracle_late'] or math.nan):.2f}"
        lines.append(
            f"| {label} | {res['requests']:,.0f} | {pct(float(check['slo_needed']))} "
            f"| {pct(_f(ours, 'slo_attainment'))} | {_f(ours, 'gpu_hours'):.1f} | {ratio(ours)} "
            f"| {pct(_f(late, 'slo_attainment'))} / {ratio(late)} "
            f"| {check['slo_vs_oracle_late_pt']:+.2f} pt, {late_ratio}x GPU-h"
            f"{' (better)' if check['beats_oracle_late'] else ''} "
            f"| {shorten(by)} "
            f"| {goals_text}, {'undominated' if not by else 'dominated'} |"
        )
    return "\n".join(lines)


def detail_table(label: str, res: Mapping[str, object]) -> str:
    policies = res["policies"]
    assert isinstance(policies, dict)
    ours = [n for n in policies if n.split("@")[0] == OURS]
    baselines: dict[str, dict[str, Mapping[str, object]]] = {}
    for n in policies:
        if n not in ours and n not in REFERENCES:
            baselines.setdefault(n.split("@")[0], {})[n] = policies[n]
    rows = [*ours, *REFERENCES, *[n for pts in baselines.values() for n in front(pts)]]
    lines = [
        f"#### {label}\n",
        "| policy | SLO | GPU-h | ÷ oracle | dominated by a baseline point |",
        "|---|---|---|---|---|",
    ]
    for name in rows:
        figs = policies[name]
        by = [
            n
            for n in policies
            if n.split("@")[0] != OURS and n not in REFERENCES and dominates(policies[n], figs)
        ]
        mark = "-" if name in REFERENCES or name.split("@")[0] != OURS else ("yes" if by else "no")
        shown = f"**{name}**" if name == OURS else name
        lines.append(
            f"| {shown} | {pct(_f(figs, 'slo_attainment'))} | {_f(figs, 'gpu_hours'):.2f} "
            f"| {ratio(figs)} | {mark} |"
        )
    return "\n".join(lines)


def points_of(res: Mapping[str, object]) -> Mapping[str, Mapping[str, object]]:
    policies = res["policies"]
    assert isinstance(policies, dict)
    return policies


def leave_one_out(
    results: Mapping[str, Mapping[str, object]], settings: Sequence[str], held: Sequence[str]
) -> list[dict[str, object]]:
    """For each held-out workload: the setting that meets the goals on the most other workloads
    (ties: fewest GPU-hours over them), and how it does on the one held out."""
    checks: dict[str, dict[str, dict[str, object]]] = {}
    for label, res in results.items():
        policies = res["policies"]
        assert isinstance(policies, dict)
        target, ceiling = float(res["target"]), float(res["slo_ceiling"])  # type: ignore[arg-type]
        checks[label] = {s: family_goals(policies, s, target, ceiling) for s in settings}
    rows = []
    for out in held:
        train = [w for w in results if w != out]

        def score(setting: str, _train: list[str] = train) -> tuple[int, float]:
            wins = sum(1 for w in _train if met(checks[w][setting]))
            gpu = math.fsum(_f(points_of(results[w])[setting], "gpu_hours") for w in _train)
            return -wins, gpu

        chosen = min(settings, key=score)
        check = checks[out][chosen]
        rows.append(
            {
                "held_out": out,
                "chosen": chosen,
                "goals_met_on_others": -score(chosen)[0],
                "others": len(train),
                "slo_attainment": check["slo_attainment"],
                "slo_needed": check["slo_needed"],
                "gpu_vs_oracle": check["gpu_vs_oracle"],
                "dominated_by": check["dominated_by"],
                "goals_met": met(check),
            }
        )
    return rows


def loo_table(rows: Sequence[Mapping[str, object]]) -> str:
    lines = [
        "| held-out family | setting chosen without it | goals met on the others | SLO (needed) "
        "| GPU-h ÷ oracle | dominated | goals met |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        by = r["dominated_by"]
        assert isinstance(by, list)
        lines.append(
            f"| {r['held_out']} | {r['chosen']} | {r['goals_met_on_others']}/{r['others']} "
            f"| {pct(float(r['slo_attainment']))} ({pct(float(r['slo_needed']))}) "  # type: ignore[arg-type]
            f"| {r['gpu_vs_oracle']} | {'yes' if by else 'no'} "
            f"| {'yes' if r['goals_met'] else 'NO'} |"
        )
    return "\n".join(lines)


def families_main(args: argparse.Namespace) -> None:
    grid = forecast_grid()
    baselines = [n for n in policy_names() if n != OURS]
    names = [*grid, *(baselines if args.quick else expand_sweep(baselines))]
    seeds = 1 if args.quick else args.seeds
    req = RunRequest(policies=names, profile=get_profile(), seeds=seeds)
    if args.warmup_s is not None:
        req = replace(req, warmup_s=args.warmup_s)
    if args.gateway != "off":
        gateway = GatewaySim(
            flow_control=args.gateway.startswith("flow-control"),
            observed=not args.gateway.endswith("-unobserved"),
        )
        req = replace(req, gateway=gateway)
    target = req.slo.attainment_target

    specs = workload_specs(
        QUICK_FAMILIES if args.quick else tuple(FAMILIES),
        shared=not (args.quick or args.no_shared),
        head_s=QUICK_DURATION_S if args.quick else None,
        only=args.only,
    )
    tasks = [(label, spec, seed) for label, spec in specs.items() for seed in range(seeds)]
    print(
        f"{len(tasks)} runs ({len(specs)} workloads x {seeds} seed(s)), {len(names)} policies "
        f"each + oracle, oracle-late; {args.jobs} process(es)",
        file=sys.stderr,
        flush=True,
    )
    per_seed: dict[str, dict[int, tuple[dict[str, dict[str, float | int | None]],
                                        dict[str, float]]]] = {}  # fmt: skip
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(run_workload_seed, label, spec, req, s) for label, spec, s in tasks]
        for done, fut in enumerate(as_completed(futures), 1):
            label, seed, figures, yard, wall = fut.result()
            per_seed.setdefault(label, {})[seed] = (figures, yard)
            print(
                f"[{done}/{len(tasks)}] {label} seed {seed}: {wall:.0f} s "
                f"(ours {pct(_f(figures[OURS], 'slo_attainment'))}, {ratio(figures[OURS])}x oracle;"
                f" {time.perf_counter() - t0:.0f} s so far)",
                file=sys.stderr,
                flush=True,
            )

    results: dict[str, dict[str, object]] = {}
    for label in specs:
        runs = [per_seed[label][s] for s in range(seeds)]
        policies = {
            n: mean_over_seeds([figs[n] for figs, _ in runs]) for n in [*REFERENCES, *names]
        }
        yard = {k: round(float(np.mean([y[k] for _, y in runs])), 6) for k in runs[0][1]}
        ceiling = yard.get("slo_ceiling", 1.0)
        results[label] = {
            "kind": specs[label][0],
            "why": FAMILIES[label].why if label in FAMILIES else "shared trace",
            "requests": yard.pop("requests"),
            "seeds": seeds,
            "target": target,
            "slo_ceiling": ceiling,
            "yardstick": yard,
            "policies": policies,
        }
        results[label]["goals"] = family_goals(policies, OURS, target, ceiling)
        results[label]["grid_goals"] = {s: family_goals(policies, s, target, ceiling) for s in grid}

    warm = {float(r["yardstick"]["warmup_s"]) for r in results.values()  # type: ignore[index]
            if "warmup_s" in r["yardstick"]}  # type: ignore[operator]  # fmt: skip
    behind = "" if args.gateway == "off" else f", behind a gateway ({args.gateway})"
    title = (
        f"### Workload families{' (quick)' if args.quick else ''}{behind}: ours (`forecast` "
        "defaults) "
        f"vs every baseline's sweep, {seeds} seed(s), scored after a warm-up of "
        f"{', '.join(f'{w:g}' for w in sorted(warm)) or '?'} s; goals: SLO >= min(target, "
        f"slo_ceiling) - 0.5 pt, GPU-h <= {FAMILY_COST_GOAL} x oracle, undominated\n"
    )
    parts = [title, summary_table(results), "", "#### Per workload: ours, the grid, the "
             "references and each baseline's swept front\n"]  # fmt: skip
    parts += [detail_table(label, res) + "\n" for label, res in results.items()]
    payload: dict[str, object] = {"settings_grid": grid, "workloads": results}
    if args.leave_one_out:
        held = [label for label in results if label in FAMILIES]
        rows = leave_one_out(results, grid, held)
        payload["leave_one_out"] = rows
        parts += [
            f"### Leave one family out: the `forecast` setting of {', '.join(grid)} that meets "
            "the goals on the most other workloads (ties: fewest GPU-hours), on the family held "
            "out\n",
            loo_table(rows),
        ]
    suffix = ("_quick" if args.quick else "") + ("_only" if args.only else "")
    suffix += "" if args.gateway == "off" else "_gateway_" + args.gateway.replace("-", "_")
    emit("policies_families" + suffix, payload, "\n".join(parts))


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
    ap.add_argument(
        "--families", action="store_true", help="the workload families + shared traces table"
    )
    ap.add_argument(
        "--leave-one-out",
        action="store_true",
        help="with --families (implied): choose forecast's setting without each family",
    )
    ap.add_argument(
        "--warmup-s", type=float, help="score requests after this (default: the runner's)"
    )
    ap.add_argument("--jobs", type=int, default=1, help="processes for --families runs")
    ap.add_argument("--no-shared", action="store_true", help="--families without shared traces")
    ap.add_argument(
        "--only", action="append", help="--families: only this workload (repeat for several)"
    )
    ap.add_argument(
        "--gateway",
        choices=("off", "arrivals", "flow-control", "flow-control-unobserved"),
        default="off",
        help="--families: every fleet behind an inference gateway whose metrics policies see "
        "(arrivals: request counter only; flow-control: plus the EPP's queue in front)",
    )
    args = ap.parse_args()
    if args.families or args.leave_one_out:
        families_main(args)
        return
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

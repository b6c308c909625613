"""Prefetch on vs off: warm scale-ups, time-to-ready, SLO attainment, GPU-hours, pull node-hours.

The policy is ours (``forecast``); each case runs it with prefetch off, with prefetch on at the
config defaults (``max_warm_nodes`` 4 and ``max_concurrent_per_pool`` 2, both growing to 10% of the
nodes running the workload: ``fleet_fraction`` 0.1), and with the fixed caps alone
(``fleet_fraction`` 0), which shows what the growth buys on fleets of hundreds of nodes. Everything
else is the simulator's default lifecycle (pull 180 s, init 60 s, 8-GPU nodes, 4 image slots), plus
other tenants' churn on idle nodes: a node running none of the workload's pods gets another image
every ``--churn`` seconds (default 600), so the workload's image is evicted after 40 idle minutes.

Cases (issue acceptance): ``azure2023_conv.csv`` at rate-scale 20 and
``mooncake_synthetic_trace.jsonl`` (request level, as benchmarks/policies.py runs them), and the
ServeGen language models, 14 days each, in fluid mode (``--no-servegen`` skips them: they take
minutes each).

Figures per run: ``scale_ups`` (pods scheduled after the start), ``warm_fraction`` (share of them
landing on a node that holds the image), ``warm_fraction_after_5min`` (request level: the same
for scale-ups created after the first 5 minutes, past the start-up ramp that no forecast has the
history to see), ``ttr_mean_s`` / ``ttr_p90_s`` (creation to ready, pods that became ready),
``slo_attainment``, ``gpu_hours``, ``prefetch_node_hours`` (node-hours our pulls ran; they hold
no GPU), ``pulls``. The goals column checks the issue's targets against
prefetch off: >= 90% warm, mean time-to-ready cut by >= 0.8 x the pull time, SLO attainment not
down, GPU-hours up by at most 2%.

    .venv/bin/python benchmarks/prefetch.py [--seeds 1] [--churn 600] [--no-servegen]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from _common import emit, shared_or_exit

from autoscaler.core.slo import SloSpec
from autoscaler.perf.profiles import get_profile
from autoscaler.policies.registry import make_policy
from autoscaler.simulation.engine import SimConfig, simulate
from autoscaler.simulation.fluid import fluid_figures, simulate_fluid
from autoscaler.simulation.fluid_model import build_replica_model
from autoscaler.simulation.fluid_runner import fluid_setup
from autoscaler.simulation.lifecycle import LifecycleConfig
from autoscaler.simulation.oracle import oracle_plan, replica_capacity, work_weights
from autoscaler.simulation.prefetch import PrefetchSim
from autoscaler.simulation.results import run_figures
from autoscaler.simulation.runner import RunRequest, policy_context
from autoscaler.traces.readers import read_trace
from autoscaler.traces.records import Trace
from autoscaler.traces.scaling import scale_rate
from autoscaler.traces.servegen import read_rate_windows
from cache.planner import PlannerSettings

POLICY = "forecast"
TRACES = (("traces/azure2023_conv.csv", 20.0), ("traces/mooncake_synthetic_trace.jsonl", 1.0))
SERVEGEN = "traces/servegen_aggregate_rate_10min.csv"
SERVEGEN_MODELS = ("m-large", "m-mid", "m-small")


@dataclass(frozen=True)
class Scenario:
    name: str
    prefetch: PrefetchSim | None


def scenarios(peak_replicas: int, tp: int, node_gpus: int) -> list[Scenario]:
    """Off; on with the shipped defaults (caps growing to 10% of the workload's nodes); on with
    the fixed caps alone (4 warm nodes, 2 pulls per pool: ``fleet_fraction`` 0)."""
    del peak_replicas, tp, node_gpus  # nothing is sized from the oracle's peak any more
    return [
        Scenario("off", None),
        Scenario("on (defaults)", PrefetchSim()),
        Scenario("on (fixed caps)", PrefetchSim(settings=PlannerSettings(fleet_fraction=0.0))),
    ]


def _ttr(values: list[float]) -> tuple[float | None, float | None]:
    arr = np.asarray([v for v in values if v > 0], dtype=np.float64)
    if arr.size == 0:
        return None, None
    return float(arr.mean()), float(np.percentile(arr, 90))


def _figures(
    warm: int,
    cold: int,
    ttr: list[float],
    slo: float,
    gpu_hours: float,
    pull_node_s: float,
    pulls: int,
    wall_s: float,
    warm_after_start: float | None = None,
) -> dict[str, Any]:
    mean, p90 = _ttr(ttr)
    ups = warm + cold
    return {
        "scale_ups": ups,
        "warm_starts": warm,
        "cold_starts": cold,
        "warm_fraction": warm / ups if ups else None,
        "warm_fraction_after_5min": warm_after_start,
        "ttr_mean_s": mean,
        "ttr_p90_s": p90,
        "slo_attainment": slo,
        "gpu_hours": gpu_hours,
        "prefetch_node_hours": pull_node_s / 3600.0,
        "pulls": pulls,
        "wall_s": round(wall_s, 1),
    }


def request_level(
    trace: Trace, scale: float, lifecycle: LifecycleConfig, seed: int
) -> dict[str, Any]:
    """One seed of a shared request trace: oracle set-up as runner.run_seed, then each scenario."""
    scaled = scale_rate(trace, scale, seed=seed) if scale != 1.0 else trace
    profile, slo = get_profile(), SloSpec()
    weights = work_weights(profile, slo)
    capacity = replica_capacity(scaled, profile, slo, weights, seed=seed)
    plan = oracle_plan(scaled, capacity, weights, profile.tp)
    peak = max(plan.replicas_per_minute)
    cap = max(2 * peak, peak + 4)
    req = RunRequest(policies=[POLICY], profile=profile, lifecycle=lifecycle)
    ctx = policy_context(req, weights, peak=peak, cap=cap)
    out: dict[str, Any] = {
        "requests": scaled.requests,
        "oracle_peak_replicas": peak,
    }
    for sc in scenarios(peak, profile.tp, lifecycle.node_gpus):
        t0 = time.perf_counter()
        config = SimConfig(
            max_replicas=cap,
            start_replicas=plan.replicas_per_minute[0],
            lifecycle=lifecycle,
            work_weights=weights,
            prefetch=sc.prefetch,
        )
        run = simulate(scaled, make_policy(POLICY, ctx), profile=profile, config=config)
        figs = run_figures(run, slo, oracle_gpu_hours=plan.gpu_hours, work_bound_gpu_hours=0.0)
        fleet = run.fleet
        ttr = [
            r.ready_at - r.created
            for r in fleet.records[config.start_replicas :]
            if r.ready_at is not None
        ]
        late = [r.warm for r in fleet.records[config.start_replicas :] if r.created >= 300.0]
        pf = run.prefetch
        out[sc.name] = _figures(
            fleet.warm_starts,
            fleet.cold_starts,
            ttr,
            float(figs["slo_attainment"] or 0.0),
            float(figs["gpu_hours"] or 0.0),
            pf.pull_seconds_until(run.duration_s) if pf is not None else 0.0,
            pf.pulls_started if pf is not None else 0,
            time.perf_counter() - t0,
            sum(late) / len(late) if late else None,
        )
    return out


def fluid(model_name: str, lifecycle: LifecycleConfig) -> dict[str, Any]:
    """One ServeGen model, 14 days, fluid mode (set-up as fluid_runner.run_fluid)."""
    windows = read_rate_windows(shared_or_exit(SERVEGEN), model_name)
    profile, slo = get_profile(), SloSpec()
    setup = fluid_setup(windows, profile, slo)
    rates, weights, per_window = setup.rates, setup.weights, setup.per_window
    prompts, outputs = setup.prompts, setup.outputs
    peak = int(per_window.max())
    cap = max(2 * peak, peak + 4)
    req = RunRequest(policies=[POLICY], profile=profile, lifecycle=lifecycle)
    ctx = policy_context(req, weights, peak=peak, cap=cap)
    model = build_replica_model(profile, slo, prompts, outputs)
    out: dict[str, Any] = {
        "oracle_peak_replicas": peak,
        "days": rates.size * windows.window_s / 86400,
    }
    for sc in scenarios(peak, profile.tp, lifecycle.node_gpus):
        t0 = time.perf_counter()
        config = SimConfig(
            max_replicas=cap,
            start_replicas=int(per_window[0]),
            lifecycle=lifecycle,
            work_weights=weights,
            prefetch=sc.prefetch,
        )
        run = simulate_fluid(
            rates, windows.window_s, make_policy(POLICY, ctx), profile=profile, config=config,
            slo=slo, model=model,
        )  # fmt: skip
        figs = fluid_figures(run, oracle_gpu_hours=0.0, work_bound_gpu_hours=0.0)
        pf = run.prefetch
        out[sc.name] = _figures(
            run.warm_starts,
            run.cold_starts,
            run.time_to_ready,
            float(figs["slo_attainment"] or 0.0),
            float(figs["gpu_hours"] or 0.0),
            pf.pull_seconds_until(run.duration_s) if pf is not None else 0.0,
            pf.pulls_started if pf is not None else 0,
            time.perf_counter() - t0,
        )
    return out


def goals(off: dict[str, Any], on: dict[str, Any], pull_s: float) -> str:
    """Which of the issue's four targets ``on`` meets against ``off``."""
    marks = []
    warm = on["warm_fraction"]
    marks.append(("warm>=90%", warm is not None and warm >= 0.9))
    cut = (
        off["ttr_mean_s"] - on["ttr_mean_s"]
        if off["ttr_mean_s"] is not None and on["ttr_mean_s"] is not None
        else None
    )
    marks.append(("TTR cut>=0.8 pull", cut is not None and cut >= 0.8 * pull_s))
    marks.append(("SLO not down", on["slo_attainment"] >= off["slo_attainment"] - 1e-9))
    marks.append(("GPU-h <=+2%", on["gpu_hours"] <= 1.02 * off["gpu_hours"]))
    return ", ".join(f"{name} {'yes' if ok else 'no'}" for name, ok in marks)


def _mean(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Figures averaged over seeds (None when a figure is missing in every seed)."""
    keys = runs[0].keys()
    out: dict[str, Any] = {}
    for key in keys:
        values = [r[key] for r in runs if r.get(key) is not None]
        out[key] = sum(values) / len(values) if values else None
    return out


def table(title: str, case: dict[str, Any], pull_s: float) -> str:
    lines = [
        f"**{title}**",
        "",
        "| prefetch | scale-ups | warm | warm after 5 min | TTR mean s | TTR p90 s | SLO | GPU-h | "
        "pull node-h | goals vs off |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    names = [k for k in case if isinstance(case[k], dict)]
    off = case["off"]
    for name in names:
        f = case[name]
        warm = "-" if f["warm_fraction"] is None else f"{100 * f['warm_fraction']:.1f}%"
        late = f.get("warm_fraction_after_5min")
        late_s = "-" if late is None else f"{100 * late:.1f}%"
        mean = "-" if f["ttr_mean_s"] is None else f"{f['ttr_mean_s']:.0f}"
        p90 = "-" if f["ttr_p90_s"] is None else f"{f['ttr_p90_s']:.0f}"
        label = name
        lines.append(
            f"| {label} | {f['scale_ups']:.0f} | {warm} | {late_s} | {mean} | {p90} | "
            f"{100 * f['slo_attainment']:.2f}% | {f['gpu_hours']:.1f} | "
            f"{f['prefetch_node_hours']:.1f} | "
            f"{'-' if name == 'off' else goals(off, f, pull_s)} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=1, help="seeds per request-level trace")
    ap.add_argument("--churn", type=float, default=600.0, help="seconds between other tenants' "
                    "images on an idle node (0: none)")  # fmt: skip
    ap.add_argument("--no-servegen", action="store_true", help="skip the 14-day fluid runs")
    args = ap.parse_args()
    lifecycle = LifecycleConfig(foreign_image_interval_s=args.churn)
    payload: dict[str, Any] = {
        "policy": POLICY,
        "lifecycle": {"pull_s": lifecycle.pull_s, "init_s": lifecycle.init_s,
                      "image_slots": lifecycle.image_slots, "churn_s": args.churn},
        "cases": {},
    }  # fmt: skip
    tables = []
    for rel, scale in TRACES:
        path = shared_or_exit(rel)
        trace = read_trace(path)
        per_seed = [request_level(trace, scale, lifecycle, seed) for seed in range(args.seeds)]
        case: dict[str, Any] = {"rate_scale": scale, "seeds": args.seeds}
        for key, value in per_seed[0].items():
            if isinstance(value, dict):
                case[key] = _mean([s[key] for s in per_seed])
            else:
                case[key] = [s[key] for s in per_seed] if args.seeds > 1 else value
        payload["cases"][path.name] = case
        tables.append(
            table(f"{path.name} x{scale:g}, {args.seeds} seed(s)", case, lifecycle.pull_s)
        )
    if not args.no_servegen:
        for name in SERVEGEN_MODELS:
            case = fluid(name, lifecycle)
            payload["cases"][f"servegen/{name}"] = case
            tables.append(table(f"ServeGen {name}, 14 days, fluid mode", case, lifecycle.pull_s))
    emit("prefetch", payload, "\n\n".join(tables))


if __name__ == "__main__":
    main()

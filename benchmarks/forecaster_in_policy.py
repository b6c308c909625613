"""The policy's forecaster, A/B: the shipped damped Holt against forecast-eval's selector.

``forecast-eval`` picks the online selector (without a known season: the adaptive Holt bank);
the policy runs ``default_forecaster()``, a damped Holt. This runs ``forecast`` with each, the
rest of the policy unchanged, on the demo's synthetic workload, Azure conv x20 and Mooncake, and
prints SLO attainment and GPU-hours against the fleet oracle (after the default warm-up), with
``oracle-late`` for reference. docs/policy.md quotes the result.

    .venv/bin/python benchmarks/forecaster_in_policy.py [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from _common import emit, shared_or_exit

import autoscaler.policies.forecast.decision as forecast_policy
from autoscaler.perf.profiles import get_profile
from autoscaler.simulation.fleet_oracle import default_cache_dir
from autoscaler.simulation.runner import ORACLE_LATE, RunRequest, run_seed
from autoscaler.traces.readers import read_trace
from autoscaler.traces.records import Trace
from autoscaler.traces.synthetic import SyntheticWorkload, generate
from forecasting.base import Forecaster
from forecasting.registry import make_forecaster


def workloads(seed: int) -> list[tuple[str, Trace, float]]:
    return [
        ("demo", generate(SyntheticWorkload(), seed=seed), 1.0),
        ("azure x20", read_trace(str(shared_or_exit("traces/azure2023_conv.csv"))), 20.0),
        ("mooncake", read_trace(str(shared_or_exit("traces/mooncake_synthetic_trace.jsonl"))), 1.0),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    shipped = forecast_policy.default_forecaster
    candidates: dict[str, Callable[[], Forecaster]] = {
        "damped-holt": shipped,
        "selector": lambda: make_forecaster("selector", horizon=16),
    }
    rows: list[dict[str, float | str]] = []
    try:
        for name, trace, scale in workloads(args.seed):
            for label, factory in candidates.items():
                print(f"{name}: forecast with {label} ...", file=sys.stderr, flush=True)
                forecast_policy.default_forecaster = factory  # the policy's one seam
                req = RunRequest(policies=["forecast"], profile=get_profile(), seeds=1,
                                 rate_scale=scale, oracle_cache=default_cache_dir())  # fmt: skip
                run = run_seed(trace, req, seed=args.seed)
                ours, late = run.figures["forecast"], run.figures[ORACLE_LATE]
                oracle_h = float(ours["oracle_gpu_hours"] or 0.0)
                rows.append({
                    "workload": name, "forecaster": label,
                    "slo_attainment": float(ours["slo_attainment"] or 0.0),
                    "gpu_hours": float(ours["gpu_hours"] or 0.0),
                    "gpu_hours_over_oracle": float(ours["gpu_hours"] or 0.0) / oracle_h,
                    "oracle_late_slo": float(late["slo_attainment"] or 0.0),
                })  # fmt: skip
    finally:
        forecast_policy.default_forecaster = shipped
    lines = ["| workload | forecaster | SLO | GPU-h | ÷ fleet oracle | oracle-late SLO |",
             "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for r in rows:
        lines.append(
            f"| {r['workload']} | {r['forecaster']} | {100 * float(r['slo_attainment']):.2f}% "
            f"| {float(r['gpu_hours']):.1f} | {float(r['gpu_hours_over_oracle']):.2f} "
            f"| {100 * float(r['oracle_late_slo']):.2f}% |"
        )
    emit("forecaster_in_policy", {"seed": args.seed, "rows": rows}, "\n".join(lines))


if __name__ == "__main__":
    main()

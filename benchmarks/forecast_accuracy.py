"""Forecast accuracy per trace and horizon: every model's MASE, WQL relative to the reference and
90% interval coverage, each with a 95% bootstrap interval over the backtest's windows.

Workloads (issue 4, acceptance): ``azure2023_conv.csv`` and ``mooncake_synthetic_trace.jsonl``
at a 15 s interval, as token work per second (what the ``forecast`` policy scales on) and as
requests per second, horizons 60 s, 240 s (the default lead time) and 300 s; the ServeGen language
models ``m-large``, ``m-mid`` and ``m-small`` at their 600 s windows, horizons of 1 and 3 windows.
Everything goes through :func:`autoscaler.offline.forecast_eval.forecast_eval`, i.e. the same
backtest as ``llm-autoscaler forecast-eval``: models fitted once and updated point by point, one
window per cutoff (step 1), 1,000 block-bootstrap replicates over cutoffs.

Two rows answer "how good is the selected model": ``selected`` is the candidate the online
selector used most often (its backtest row, as ``forecast-eval`` reports it), ``selector`` is the
selector itself, switches included (what production would have forecast). The goal table checks
the first and shows the second. Finally, ``forecast-eval`` over the whole 14-day ServeGen file is
timed end to end (a fresh process: imports, reading, every model on every workload).

    .venv/bin/python benchmarks/forecast_accuracy.py [--boot 1000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from typing import Any

from _common import ROOT, emit, shared_or_exit

from autoscaler.offline.forecast_eval import SELECTOR, forecast_eval
from autoscaler.offline.series import load_series

REQUEST_TRACES = ("traces/azure2023_conv.csv", "traces/mooncake_synthetic_trace.jsonl")
REQUEST_SERIES = ("token_work", "requests")
REQUEST_HORIZONS_S = (60.0, 240.0, 300.0)
SERVEGEN = "traces/servegen_aggregate_rate_10min.csv"
SERVEGEN_MODELS = ("m-large", "m-mid", "m-small")
SERVEGEN_HORIZONS_S = (600.0, 1800.0)
LEAD_TIME_S = 240.0
GOALS = {"azure2023_conv": 0.8, "mooncake_synthetic_trace": 1.0, "servegen": 0.8}
"""Goal for the selected model's WQL ratio at the lead-time horizon (issue 4)."""
COVERAGE_GOAL = (0.85, 0.95)
MIN_WINDOWS = 50


def _fmt(value: float | None, ci: list[float] | None, digits: int = 3) -> str:
    if value is None:
        return "-"
    text = f"{value:.{digits}f}"
    return text + (f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]" if ci else "")


def _run(
    label: str, series: dict[str, Any], interval: float, horizon: float, boot: int
) -> dict[str, Any]:
    t0 = time.perf_counter()
    result = forecast_eval(series, interval_s=interval, horizon_s=horizon, n_boot=boot)
    result["trace"] = label
    result["elapsed_s"] = round(time.perf_counter() - t0, 3)
    print(f"  {label} @ {horizon:g} s: {result['elapsed_s']} s", file=sys.stderr)
    return result


def _time_whole_servegen(path: str) -> float:
    cmd = [sys.executable, "-m", "autoscaler.cli", "forecast-eval", "--trace", path]
    cmd += ["--horizon", "600", "--json"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"forecast-eval on {path} failed: {proc.stderr.strip()}")
    return elapsed


def _goal_key(trace: str) -> str:
    return "servegen" if trace.startswith("servegen") else trace.split("/")[0]


def _is_lead(run: dict[str, Any], runs: list[dict[str, Any]]) -> bool:
    """The run at the lead time, or at the first horizon beyond it for coarser traces."""
    beyond = [x["horizon_steps"] * x["interval_s"] for x in runs if x["trace"] == run["trace"]]
    beyond = [h for h in beyond if h >= LEAD_TIME_S]
    return bool(beyond) and run["horizon_steps"] * run["interval_s"] == min(beyond)


def _goal_row(r: dict[str, Any]) -> str:
    key = _goal_key(r["trace"])
    sel = r["models"][r["selected"]]
    ci = r["confidence_intervals"][r["selected"]]
    online = r["models"].get(SELECTOR)
    ratio, cov = sel["wql_ratio"], sel["coverage_90"]
    problems = []
    if ratio is None or ratio > GOALS[key]:
        problems.append("WQL ratio")
    if cov is None or not COVERAGE_GOAL[0] <= cov <= COVERAGE_GOAL[1]:
        problems.append("coverage")
    if sel["windows"] < MIN_WINDOWS:
        problems.append(f"only {sel['windows']} windows")
    verdict = "met" if not problems else "NOT met: " + ", ".join(problems)
    if not problems and ci["wql_ratio"] is not None and ci["wql_ratio"][1] > GOALS[key]:
        verdict += " (the CI reaches above the goal)"
    return (
        f"| {r['trace']} | {r['horizon_s']:g} s | {r['selected']} "
        f"| {_fmt(ratio, ci['wql_ratio'])} "
        f"| {_fmt(online['wql_ratio'] if online else None, None)} | ≤ {GOALS[key]} "
        f"| {_fmt(cov, ci['coverage_90'], 2)} | {sel['windows']} | {verdict} |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--boot", type=int, default=1000, help="bootstrap replicates (default 1000)")
    args = ap.parse_args()

    runs: list[dict[str, Any]] = []
    for rel in REQUEST_TRACES:
        path = shared_or_exit(rel)
        name = rel.split("/")[-1].rsplit(".", 1)[0]
        for kind in REQUEST_SERIES:
            data = load_series(path, kind=kind)
            for horizon in REQUEST_HORIZONS_S:
                runs.append(
                    _run(f"{name}/{kind}", data.workloads, data.interval_s, horizon, args.boot)
                )
    sg_path = shared_or_exit(SERVEGEN)
    for model in SERVEGEN_MODELS:
        data = load_series(sg_path, servegen_model=model)
        for horizon in SERVEGEN_HORIZONS_S:
            runs.append(_run(f"servegen/{model}", data.workloads, 600.0, horizon, args.boot))
    whole_s = _time_whole_servegen(str(sg_path))

    lines = [
        "| trace | horizon | model | MASE | WQL / reference | coverage 90% | windows |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    goal_lines = [
        "| trace | horizon | selected | WQL / reference [95% CI] | selector (online) | goal "
        "| coverage 90% [95% CI] | windows | verdict |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in runs:
        order = sorted(
            r["models"], key=lambda n: (r["models"][n]["wql"] is None, r["models"][n]["wql"] or 0)
        )
        for name in order:
            f, ci = r["models"][name], r["confidence_intervals"][name]
            tags = [
                t for t, who in (("ref", r["reference"]), ("sel", r["selected"])) if who == name
            ]
            label = f"{name} ({', '.join(tags)})" if tags else name
            lines.append(
                f"| {r['trace']} | {r['horizon_s']:g} s | {label} | {_fmt(f['mase'], ci['mase'])} "
                f"| {_fmt(f['wql_ratio'], ci['wql_ratio'])} "
                f"| {_fmt(f['coverage_90'], ci['coverage_90'], 2)} | {f['windows']} |"
            )
        if _is_lead(r, runs):
            goal_lines.append(_goal_row(r))
    markdown = "\n".join(
        [
            "## Forecast accuracy (95% block-bootstrap intervals over cutoffs)",
            "",
            *lines,
            "",
            "## Goals at the lead-time horizon (240 s, or the first horizon beyond it)",
            "",
            *goal_lines,
            "",
            f"`forecast-eval` over the whole 14-day ServeGen file (all models, horizon 600 s, "
            f"fresh process): {whole_s:.1f} s",
        ]
    )
    payload = {"runs": runs, "servegen_whole_file_forecast_eval_s": round(whole_s, 2)}
    emit("forecast_accuracy", payload, markdown)


if __name__ == "__main__":
    main()

"""``llm-autoscaler forecast-eval``: backtest every forecaster on a trace's demand."""

from __future__ import annotations

import argparse
import json
import sys

from autoscaler.cli.flags import PROG, Subparsers, add_trace_flags
from autoscaler.errors import InputError


def add_parser(sub: Subparsers) -> None:
    fe = sub.add_parser(
        "forecast-eval",
        help="backtest every forecaster on a trace's demand and compare with the reference",
        description="Rolling-origin backtest of every forecaster on a trace's demand series: "
        "MASE, weighted quantile loss (also relative to the seasonal-naive or last-value "
        "reference) and 90%% interval coverage, with bootstrap confidence intervals.",
    )
    add_trace_flags(fe, "one model of a ServeGen file (default: all)")
    fe.add_argument(
        "--horizon", required=True, type=float, metavar="SECONDS", help="forecast horizon"
    )
    fe.add_argument(
        "--interval",
        type=float,
        default=None,
        metavar="SECONDS",
        help="series resolution (default 15 for request traces, 600 for ServeGen)",
    )
    fe.add_argument(
        "--series",
        default="requests",
        help="requests (default), prompt_tokens, decode_tokens or token_work (per second)",
    )
    fe.add_argument(
        "--windows", type=int, default=None, metavar="N", help="score the last N windows only"
    )
    fe.add_argument("--json", action="store_true", help="print the JSON contract instead")
    fe.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Backtest every forecaster on the trace's demand series (see offline.forecast_eval)."""
    import math

    from autoscaler.offline.forecast_eval import forecast_eval, format_table, horizon_steps
    from autoscaler.offline.series import SERIES_KINDS, load_series

    if args.series not in SERIES_KINDS:
        raise InputError(f"unknown --series {args.series!r}; known: {', '.join(SERIES_KINDS)}")
    if args.windows is not None and args.windows < 1:
        raise InputError(f"--windows must be >= 1, got {args.windows}")
    if not (math.isfinite(args.horizon) and args.horizon > 0):
        raise InputError(f"--horizon must be a positive number of seconds, got {args.horizon:g}")
    if args.interval is not None and not (math.isfinite(args.interval) and args.interval > 0):
        raise InputError(f"--interval must be a positive number of seconds, got {args.interval:g}")
    data = load_series(
        args.trace,
        args.format,
        interval_s=args.interval,
        kind=args.series,
        servegen_model=args.servegen_model,
    )
    steps = horizon_steps(args.horizon, data.interval_s)
    if not math.isclose(steps * data.interval_s, args.horizon):
        print(
            f"{PROG}: note: --horizon {args.horizon:g} s is not a whole number of "
            f"{data.interval_s:g} s intervals; using {steps} steps ({steps * data.interval_s:g} s)",
            file=sys.stderr,
        )
    result = forecast_eval(
        data.workloads,
        interval_s=data.interval_s,
        horizon_s=args.horizon,
        n_windows=args.windows,
    )
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    from rich import box
    from rich.console import Console
    from rich.table import Table

    rows = format_table(result)
    windows = sum(result["workloads"].values())
    table = Table(
        title=f"{data.path}\n{data.kind}/s every {data.interval_s:g} s, horizon "
        f"{result['horizon_s']:g} s, {windows} windows",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for j, label in enumerate(rows[0]):
        table.add_column(label, justify="left" if j == 0 else "right", no_wrap=True)
    for cells in rows[1:]:
        table.add_row(*cells)
    Console().print(table)
    how = {"selector_most_often": "the online selector's most frequent pick"}
    print(
        f"(ref) reference: {result['reference']}; (sel) selected: {result['selected']}, "
        f"{how.get(result['selected_by'], 'lowest WQL')}"
        + (f"; skipped: {', '.join(result['skipped'])}" if result.get("skipped") else "")
    )
    return 0

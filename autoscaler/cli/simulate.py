"""``llm-autoscaler simulate``: replay a trace on a simulated fleet under one or more policies."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from autoscaler.cli.flags import Subparsers, add_run_flags, add_trace_flags, positive
from autoscaler.cli.run_request import run_request
from autoscaler.cli.terminal import ProgressBar, print_table
from autoscaler.errors import InputError


def add_parser(sub: Subparsers) -> None:
    sim = sub.add_parser(
        "simulate",
        help="replay a request trace against a simulated fleet under one or more policies",
        description="Replay a request trace against a simulated fleet of model-server replicas "
        "and compare scaling policies (ours and the baselines) on SLO attainment and GPU-hours.",
    )
    add_trace_flags(sim, "model of a ServeGen rate file (simulated in fluid mode)")
    sim.add_argument(
        "--policy",
        action="append",
        default=None,
        metavar="NAME",
        help="policy, repeatable; NAME or NAME@SETTING (default: forecast)",
    )
    sim.add_argument(
        "--sweep", action="store_true", help="run each baseline's default sweep of its main setting"
    )
    sim.add_argument(
        "--rate-scale",
        type=positive("--rate-scale"),
        default=1.0,
        metavar="K",
        help="overlay K jittered copies of the trace (fractional K thins the last)",
    )
    sim.add_argument("--seeds", type=int, default=3, help="seeds to average over (default 3)")
    sim.add_argument(
        "--prefetch",
        choices=("on", "off"),
        default="off",
        help="pull the modelcar onto the nodes the planner picks ahead of scale-ups, with the "
        "live prefetch planner and its default limits (default off; docs/prefetch.md)",
    )
    sim.add_argument(
        "--disaggregate",
        action="store_true",
        help="a prefill pool and a decode pool, each scaled by its own instance of each policy "
        "(forecast, dynamo-pd, or any baseline per pool; docs/disaggregation.md)",
    )
    sim.add_argument(
        "--kv-link-gbps",
        type=positive("--kv-link-gbps"),
        default=400.0,
        metavar="GBPS",
        help="with --disaggregate: KV-transfer link per prefill replica (default 400 Gb/s)",
    )
    add_run_flags(sim)
    sim.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from autoscaler.policies.registry import expand_sweep, make_policy
    from autoscaler.traces.readers import detect_format, read_trace

    names = args.policy or ["forecast"]
    if args.disaggregate:
        from autoscaler.cli.disaggregate import simulate_disaggregated

        scale, seeds = args.rate_scale, args.seeds
        return simulate_disaggregated(args, names, lambda n: run_request(args, n, seeds, scale))
    if args.sweep:
        names = expand_sweep(names)
    # validate names before reading anything large
    from autoscaler.core.slo import SloSpec
    from autoscaler.policies.base import PolicyContext

    probe = PolicyContext(slo=SloSpec(), max_replicas=10, peak_replicas=1)
    for name in names:
        make_policy(name, probe)
    req = run_request(args, names, args.seeds, args.rate_scale)
    if args.prefetch == "on":
        from dataclasses import replace

        from autoscaler.simulation.prefetch import PrefetchSim

        req = replace(req, prefetch=PrefetchSim())
    fmt = args.format if args.format != "auto" else detect_format(args.trace)
    if fmt == "servegen":
        # multi-day rate-only traces run in fluid mode (DESIGN.md, "Traces")
        from autoscaler.simulation.fluid_runner import run_fluid
        from autoscaler.traces.servegen import list_models, read_rate_windows

        if args.servegen_model is None:
            raise InputError(
                f"{args.trace} is a ServeGen rate file: pick a model with --servegen-model "
                f"({', '.join(list_models(args.trace))})"
            )
        windows = read_rate_windows(args.trace, args.servegen_model)
        with ProgressBar(len(names) + 1) as progress:
            result = run_fluid(windows, req, progress)
    else:
        from autoscaler.simulation.runner import run

        trace = read_trace(args.trace, fmt, servegen_model=args.servegen_model)
        with ProgressBar((len(names) + 1) * args.seeds) as progress:
            result = run(trace, req, progress)
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        info: dict[str, Any] = result["trace"]  # type: ignore[assignment]
        warm = result.get("warmup_s")
        print_table(
            result,
            f"{info['path']} ({info['requests']} requests, rate-scale {info['rate_scale']}, "
            f"{result['seeds']} seed(s)"
            + (f", scored after a {warm:g}s warm-up" if isinstance(warm, float) and warm else "")
            + ")",
        )
    return 0

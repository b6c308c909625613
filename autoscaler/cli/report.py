"""``llm-autoscaler report``: a capacity report from a trace or Prometheus history."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from autoscaler.cli.flags import PROG, Subparsers, add_run_flags, positive
from autoscaler.cli.run_request import run_request
from autoscaler.cli.terminal import ProgressBar, print_table
from autoscaler.errors import InputError


def add_parser(sub: Subparsers) -> None:
    rep = sub.add_parser(
        "report",
        help="capacity report from a trace or Prometheus history: plots, settings, HPA/KEDA YAML",
        description="From a request trace or a workload's Prometheus history: demand and its "
        "forecast, forecast accuracy by horizon, the SLO-attainment vs GPU-hours curve of the "
        "forecast policy at several head-room settings against the baselines, recommended "
        "settings and ready-to-apply HPA and KEDA ScaledObject YAML. Writes report.html (one "
        "self-contained page), report.md, report.json, hpa.yaml, keda-scaledobject.yaml and "
        "plots/ into --out. See docs/report.md.",
    )
    source = rep.add_mutually_exclusive_group(required=True)
    source.add_argument("--trace", type=Path, help="trace file (any format simulate reads)")
    source.add_argument("--prometheus", metavar="URL", help="Prometheus base URL")
    rep.add_argument(
        "--format", default="auto", help="auto (default), azure, mooncake, burstgpt or servegen"
    )
    rep.add_argument("--servegen-model", default=None, help="model of a ServeGen rate file")
    rep.add_argument(
        "--workload",
        metavar="NS/NAME",
        default=None,
        help="the workload (Prometheus labels namespace and workload); names the manifests "
        "(default for a trace: default/llm)",
    )
    rep.add_argument("--start", metavar="T", help="with --prometheus: Unix s, RFC 3339, now-14d")
    rep.add_argument("--end", metavar="T", help="with --prometheus: Unix s, RFC 3339, now")
    rep.add_argument(
        "--step",
        type=positive("--step"),
        default=None,
        metavar="S",
        help="with --prometheus: seconds per point, whole minutes (default: 60, or coarser to "
        "stay under Prometheus' 11,000 points)",
    )
    rep.add_argument("--engine", default="vllm", help="the workload's engine (default vllm)")
    rep.add_argument(
        "--rate-window", default="1m", metavar="DURATION", help="PromQL rate window (default 1m)"
    )
    rep.add_argument("--out", required=True, type=Path, help="output directory")
    rep.add_argument(
        "--headroom",
        default=None,
        metavar="LIST",
        help="forecast settings to sweep, comma-separated (default 0.7,0.85,1,1.15,1.3; "
        "below 1 buys head-room)",
    )
    rep.add_argument(
        "--baseline",
        action="append",
        default=None,
        metavar="NAME",
        help="baseline to replay, repeatable, NAME or NAME@SETTING (default: every baseline at "
        "its default setting; 'none' for none)",
    )
    rep.add_argument("--seeds", type=int, default=1, help="seeds to average over (default 1)")
    rep.add_argument(
        "--disaggregation",
        action="store_true",
        help="also compare with a prefill/decode fleet (GPU-hours at the SLO, prefill:decode "
        "ratio, per-role manifests; a request trace only)",
    )
    rep.add_argument(
        "--rate-scale",
        type=positive("--rate-scale"),
        default=1.0,
        metavar="K",
        help="with --trace: what-if, K times the traffic (overlaid copies, or rates x K)",
    )
    add_run_flags(rep)
    rep.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Gather the history, then backtest, replay, recommend and write (offline.report)."""
    import logging
    import time

    from autoscaler.offline.plotting import require_matplotlib
    from autoscaler.offline.report import build, history, replay
    from autoscaler.simulation.oracle import work_weights

    require_matplotlib("the report's plots")
    began = time.perf_counter()
    # Prometheus retries and failed batch queries are logged; say them like the CLI's own lines
    logging.basicConfig(level=logging.WARNING, format=f"{PROG}: warning: %(message)s")
    if args.seeds < 1:
        raise InputError(f"--seeds must be >= 1, got {args.seeds}")
    try:
        headrooms = (
            list(replay.DEFAULT_HEADROOMS)
            if args.headroom is None
            else [float(x) for x in args.headroom.split(",") if x.strip()]
        )
    except ValueError:
        raise InputError(
            f"--headroom must be numbers separated by commas, got {args.headroom!r}"
        ) from None
    chosen = args.baseline if args.baseline is not None else replay.default_baselines()
    baselines = [b for b in chosen if b.strip().lower() != "none"]
    req = run_request(args, replay.policy_labels(headrooms, baselines), args.seeds, 1.0)
    weights = work_weights(req.profile, req.slo)
    prometheus_only = {"--start": args.start, "--end": args.end, "--step": args.step}
    if args.trace is not None:
        given = [flag for flag, value in prometheus_only.items() if value is not None]
        if given:
            raise InputError(f"{', '.join(given)}: only with --prometheus, not --trace")
        from autoscaler.traces.readers import detect_format

        workload = history.workload_config(args.workload or "default/llm", args.engine)
        fmt = args.format if args.format != "auto" else detect_format(args.trace)
        mode = "fluid" if fmt == "servegen" else "requests"
    else:
        needed = {"--workload": args.workload, "--start": args.start, "--end": args.end}
        missing = [flag for flag, value in needed.items() if value is None]
        if missing:
            raise InputError(f"--prometheus needs {', '.join(missing)}")
        if args.rate_scale != 1.0:
            raise InputError("--rate-scale: only with --trace")
        workload = history.workload_config(args.workload, args.engine)
        mode = "fluid"
    key = f"{workload.namespace}/{workload.name}"
    with ProgressBar(1 + build.step_count(mode, req)) as progress:
        progress("reading the history", 0.0)
        if args.trace is not None:
            hist = history.from_trace(
                args.trace,
                args.format,
                weights=weights,
                servegen_model=args.servegen_model,
                rate_scale=args.rate_scale,
                workload=key,
            )
        else:
            from autoscaler.clients.prometheus import PrometheusClient
            from autoscaler.engines.registry import GPU_MEMORY, get_engine
            from autoscaler.live.collection import collect_history

            now = time.time()
            with PrometheusClient(args.prometheus) as api:
                hist = history.from_prometheus(
                    api,
                    workload,
                    start=history.parse_time(args.start, now=now),
                    end=history.parse_time(args.end, now=now),
                    profile=get_engine(args.engine),
                    weights=weights,
                    collect=collect_history,
                    step=args.step,
                    window=args.rate_window,
                    url=args.prometheus,
                    gpu_memory=GPU_MEMORY,
                )
        progress("reading the history", 1.0)
        try:  # before the long part: a bad --out should not cost a replay
            args.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"--out {args.out}: cannot create the directory: {exc}") from None
        report = build.build_report(hist, req, progress=progress, disaggregated=args.disaggregation)
        files = build.write_report(report, args.out, progress=progress)
    if args.json:
        sys.stdout.write(files.json.read_text(encoding="utf-8"))
        return 0
    s = report.settings
    print_table(dict(report.simulation), f"{key}: SLO attainment and GPU-hours, replayed")
    print(
        f"recommended: {s.policy} (head-room {s.headroom:g}"
        + ("" if s.meets_target else ", target NOT met")
        + f"), min {s.min_replicas}, max {s.max_replicas} replicas, KEDA min "
        f"{s.keda_min_replicas}, prefetch {'on' if s.prefetch['enabled'] else 'off'}"
    )
    print(
        f"wrote {files.html}, {files.markdown}, {files.hpa}, {files.keda} and {files.json} "
        f"in {time.perf_counter() - began:.1f} s"
    )
    return 0

"""The ``llm-autoscaler`` command line.

Every subcommand validates its input first; an :class:`~autoscaler.errors.InputError` becomes one
line on stderr and exit code 2 (argparse uses 2 for usage errors too), never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from autoscaler.errors import InputError, LlmAutoscalerError

PROG = "llm-autoscaler"
_N = TypeVar("_N", int, float)


def _number(
    cast: Callable[[str], _N], ok: Callable[[_N], bool], need: str, kind: str = ""
) -> Callable[[str], _N]:
    """An argparse ``type``: ``cast`` the text, then ``ok`` or a message saying what it must be
    (argparse prefixes the flag; ``kind`` names it again where the message stands alone)."""
    noun = "an integer" if cast is int else "a number"
    prefix = f"{kind} " if kind else ""

    def parse(text: str) -> _N:
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{prefix}must be {noun}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"{prefix}must be {need}, got {text}")
        return value

    return parse


def _positive(kind: str) -> Callable[[str], float]:
    return _number(float, lambda v: v > 0, "> 0", kind)


_non_negative = _number(float, lambda v: v >= 0, ">= 0")


def _int_at_least(floor: int) -> Callable[[str], int]:
    return _number(int, lambda v: v >= floor, f">= {floor}")


def _add_trace_flags(p: argparse.ArgumentParser, servegen_help: str) -> None:
    """The trace flags every trace-reading subcommand shares."""
    p.add_argument("--trace", required=True, type=Path, help="trace file")
    p.add_argument(
        "--format", default="auto", help="auto (default), azure, mooncake, burstgpt or servegen"
    )
    p.add_argument("--servegen-model", default=None, help=servegen_help)


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("replica profile")
    g.add_argument("--model", default="llama2-70b", help="llama2-70b (default) or bloom-176b")
    g.add_argument("--gpu", default="h100", help="h100 (default) or a100")
    g.add_argument("--tp", type=int, default=4, help="tensor parallelism: 2, 4 or 8 (default 4)")
    g.add_argument(
        "--max-batched-tokens",
        type=_int_at_least(64),
        default=None,
        metavar="N",
        help="engine's token budget per step, vLLM's --max-num-batched-tokens (default 8192)",
    )
    g.add_argument(
        "--max-num-seqs",
        type=_int_at_least(1),
        default=None,
        metavar="N",
        help="engine's cap on running sequences, vLLM's --max-num-seqs (default 256)",
    )
    s = p.add_argument_group("SLO")
    s.add_argument(
        "--ttft-slo",
        type=_positive("--ttft-slo"),
        default=1.0,
        metavar="S",
        help="TTFT budget base, seconds (default 1.0)",
    )
    s.add_argument(
        "--ttft-slo-per-1k",
        type=_non_negative,
        default=0.2,
        metavar="S",
        help="extra TTFT budget per 1,000 prompt tokens (default 0.2)",
    )
    s.add_argument(
        "--tpot-slo",
        type=_positive("--tpot-slo"),
        default=0.1,
        metavar="S",
        help="time-per-output-token budget, seconds (default 0.1)",
    )
    s.add_argument(
        "--slo-target",
        type=_positive("--slo-target"),
        default=0.99,
        metavar="F",
        help="SLO-attainment target (default 0.99)",
    )
    lc = p.add_argument_group("replica start-up")
    lc.add_argument("--pull-s", type=_non_negative, default=180.0, help="image pull (default 180)")
    lc.add_argument("--init-s", type=_non_negative, default=60.0, help="engine init (default 60)")
    lc.add_argument(
        "--provision-s", type=_non_negative, default=0.0, help="node provisioning (default 0)"
    )
    p.add_argument(
        "--max-replicas",
        type=int,
        default=None,
        help="replica cap for every policy (default: 2x the oracle's peak)",
    )
    p.add_argument(
        "--capacity-seed-error",
        type=float,
        default=0.0,
        metavar="F",
        help="relative error injected into the policies' capacity seed, e.g. 0.3",
    )
    p.add_argument(
        "--warmup-s",
        type=_non_negative,
        default=None,
        metavar="S",
        help="seconds during which the fleet follows the oracle's plan (ready) while every "
        "policy only observes; figures score what comes after (default max(600, 2 x the "
        "lead time), at most half the trace; 0 scores the whole run from a cold start)",
    )
    p.add_argument(
        "--oracle-cache",
        default=None,
        metavar="DIR",
        help="where the fleet oracle's bisection is cached (default "
        "$XDG_CACHE_HOME/llm-autoscaler/fleet-oracle; 'off' computes it every run)",
    )
    p.add_argument("--json", action="store_true", help="print the JSON contract instead of a table")


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (what is wrong, and where to look), exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def version_text() -> str:
    """``llm-autoscaler X.Y.Z``, plus the source revision an image build baked in.

    The version is the installed distribution's (pyproject.toml's ``version``); the container
    image sets ``LLM_AUTOSCALER_REVISION`` to the git commit it was built from.
    """
    import os
    from importlib.metadata import PackageNotFoundError, version

    try:
        text = f"{PROG} {version('llm-autoscaler')}"
    except PackageNotFoundError:  # run from a source tree that was never installed
        text = f"{PROG} (not installed)"
    revision = os.environ.get("LLM_AUTOSCALER_REVISION", "").strip()
    return f"{text} (revision {revision})" if revision else text


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="SLO-aware, forecasting autoscaler for LLM inference fleets.",
    )
    parser.add_argument("--version", action="version", version=version_text())
    sub = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=_Parser
    )

    sim = sub.add_parser(
        "simulate",
        help="replay a request trace against a simulated fleet under one or more policies",
        description="Replay a request trace against a simulated fleet of model-server replicas "
        "and compare scaling policies (ours and the baselines) on SLO attainment and GPU-hours.",
    )
    _add_trace_flags(sim, "model of a ServeGen rate file (simulated in fluid mode)")
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
        type=_positive("--rate-scale"),
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
        type=_positive("--kv-link-gbps"),
        default=400.0,
        metavar="GBPS",
        help="with --disaggregate: KV-transfer link per prefill replica (default 400 Gb/s)",
    )
    _add_run_flags(sim)
    sim.set_defaults(func=_cmd_simulate)

    demo = sub.add_parser(
        "demo",
        help="run ours and every baseline on the embedded synthetic workload (no cluster)",
        description="The whole loop on an embedded synthetic workload: no cluster and no data "
        "files needed. Prints the comparison table and writes a PNG per run.",
    )
    demo.add_argument("--out", type=Path, default=Path("demo-output"), help="output directory")
    demo.add_argument("--seed", type=int, default=0, help="workload seed (default 0)")
    demo.add_argument("--rate-scale", type=_positive("--rate-scale"), default=1.0, metavar="K")
    _add_run_flags(demo)
    demo.set_defaults(func=_cmd_demo)

    vc = sub.add_parser(
        "validate-config",
        help="check a service configuration file and summarise it",
        description="Validate a service configuration (YAML): every problem is reported with "
        "the file and the field path; exit code 2 when the file is invalid.",
    )
    vc.add_argument("file", type=Path, help="configuration file (YAML)")
    vc.add_argument(
        "--skip-files",
        action="store_true",
        help="check only the YAML, not the files it names (TLS certificate and key); for a "
        "config whose files are mounted only in the pod",
    )
    vc.set_defaults(func=_cmd_validate_config)

    prof = sub.add_parser("profiles", help="list the replica performance profiles")
    prof.set_defaults(func=_cmd_profiles)

    fe = sub.add_parser(
        "forecast-eval",
        help="backtest every forecaster on a trace's demand and compare with the reference",
        description="Rolling-origin backtest of every forecaster on a trace's demand series: "
        "MASE, weighted quantile loss (also relative to the seasonal-naive or last-value "
        "reference) and 90%% interval coverage, with bootstrap confidence intervals.",
    )
    _add_trace_flags(fe, "one model of a ServeGen file (default: all)")
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
    fe.set_defaults(func=_cmd_forecast_eval)

    srv = sub.add_parser(
        "serve",
        help="run the control loop and serve its signals (HPA, KEDA, JSON, /metrics)",
        description="Every tick: query Prometheus, forecast, recommend, store. Serves the External "
        "Metrics API and /v1 JSON on HTTPS (ports.https, default 6443), /metrics /healthz /readyz "
        "on HTTP (ports.metrics, 9090) and the KEDA external scaler on gRPC (ports.grpc, 9443). "
        "Stale or missing data is answered with 503 / UNAVAILABLE, never a scale-down. SIGTERM "
        "or Ctrl-C shuts down cleanly. See docs/serve.md.",
    )
    srv.add_argument("--config", required=True, metavar="FILE", help="YAML config (see docs)")
    srv.add_argument("--host", default="0.0.0.0", help="bind address of all ports (0.0.0.0)")
    kube = srv.add_mutually_exclusive_group()
    kube.add_argument(
        "--kube-api", metavar="URL", help="Kubernetes API server URL (default: in-cluster)"
    )
    kube.add_argument("--kubeconfig", metavar="FILE", help="kubeconfig to reach the cluster")
    kube.add_argument(
        "--no-kubernetes",
        action="store_true",
        help="run without a cluster: replicas are the pods Prometheus scrapes, no shadow, no "
        "Events, no delegated auth (the API then needs --insecure-skip-auth)",
    )
    srv.add_argument(
        "--insecure-skip-auth",
        action="store_true",
        help="serve the HTTPS API without authentication/authorization (local trials only)",
    )
    srv.add_argument(
        "--backfill",
        default="1h",
        metavar="DURATION",
        help="Prometheus history replayed at start-up (PromQL duration, default 1h; 0s: none)",
    )
    srv.add_argument(
        "--shadow",
        action="store_true",
        help="shadow mode for every workload (overrides the config): compute and publish on "
        "/v1 next to the current HPA's decision; don't wire an HPA to it yet",
    )
    srv.add_argument(
        "--prefetch-dry-run",
        action="store_true",
        help="plan modelcar prefetches and log them, create no Job and set no label",
    )
    srv.add_argument(
        "--duration",
        type=_positive("--duration"),
        default=None,
        metavar="S",
        help="exit after S seconds (default: until SIGTERM or Ctrl-C)",
    )
    srv.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    srv.set_defaults(func=_cmd_serve)

    emu = sub.add_parser(
        "emulate",
        help="serve an emulated fleet's engine /metrics, replaying a trace in (scaled) real time",
        description="Replay a trace through the simulator's replica model on a fixed fleet of "
        "ready replicas, in real time or sped up, and serve each replica's /metrics in the "
        "engine's own text format: /metrics (all replicas, with namespace/workload/pod labels), "
        "/replica/I/metrics (one replica) and /targets (Prometheus http_sd). See docs/emulator.md.",
    )
    _add_trace_flags(emu, "model of a ServeGen rate file (expanded)")
    emu.add_argument("--replicas", required=True, type=int, metavar="N", help="fleet size")
    emu.add_argument("--port", required=True, type=int, metavar="P", help="TCP port (0: any)")
    emu.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    emu.add_argument(
        "--speed",
        type=_positive("--speed"),
        default=1.0,
        metavar="X",
        help="simulated seconds per wall-clock second (default 1: real time; 10: 10x faster)",
    )
    emu.add_argument(
        "--engine",
        default="vllm",
        help="metrics format to serve: sglang, tgi, triton_trtllm, vllm or vllm_v0 (default "
        "vllm); "
        "/dcgm/metrics serves dcgm-exporter's GPU memory beside it",
    )
    emu.add_argument(
        "--duration",
        type=_positive("--duration"),
        default=None,
        metavar="S",
        help="exit after S wall-clock seconds (default: serve until interrupted)",
    )
    emu.add_argument(
        "--workload", default="default/llm", help="NAMESPACE/NAME for the labels (default/llm)"
    )
    emu.add_argument(
        "--model-name", default="llama2-70b", help="model_name label (default llama2-70b)"
    )
    emu.add_argument(
        "--gateway",
        choices=("off", "arrivals", "flow-control"),
        default="off",
        help="put the fleet behind an inference gateway's endpoint picker and serve its metrics "
        "on /epp/metrics (flow-control: it also holds requests while no replica has room)",
    )
    emu.add_argument(
        "--pool", default="llm-pool", help="InferencePool name on the EPP's series (llm-pool)"
    )
    emu.add_argument(
        "--queue-depth-threshold",
        type=int,
        default=5,
        metavar="N",
        help="with --gateway flow-control: the EPP's queueDepthThreshold, waiting requests a "
        "replica may hold before the pool counts as saturated (default 5, the EPP's; 1 keeps "
        "nearly all queuing in the gateway)",
    )
    emu.set_defaults(func=_cmd_emulate)

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
        type=_positive("--step"),
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
        "--rate-scale",
        type=_positive("--rate-scale"),
        default=1.0,
        metavar="K",
        help="with --trace: what-if, K times the traffic (overlaid copies, or rates x K)",
    )
    _add_run_flags(rep)
    rep.set_defaults(func=_cmd_report)
    return parser


def _slo(args: argparse.Namespace) -> Any:
    from autoscaler.core.slo import SloSpec

    if not 0 < args.slo_target < 1:
        raise InputError(f"--slo-target must be between 0 and 1, got {args.slo_target}")
    return SloSpec(
        ttft_s=args.ttft_slo,
        ttft_per_1k_s=args.ttft_slo_per_1k,
        tpot_s=args.tpot_slo,
        attainment_target=args.slo_target,
    )


def _request(args: argparse.Namespace, policies: list[str], seeds: int, rate_scale: float) -> Any:
    from autoscaler.simulation.fleet import LifecycleConfig
    from autoscaler.simulation.runner import RunRequest

    if seeds < 1:
        raise InputError(f"--seeds must be >= 1, got {seeds}")
    if args.max_replicas is not None and args.max_replicas < 1:
        raise InputError(f"--max-replicas must be >= 1, got {args.max_replicas}")
    if not -0.9 <= args.capacity_seed_error <= 5:
        raise InputError("--capacity-seed-error must be between -0.9 and 5")
    return RunRequest(
        policies=policies,
        profile=_profile(args),
        slo=_slo(args),
        lifecycle=LifecycleConfig(
            pull_s=args.pull_s, init_s=args.init_s, provision_s=args.provision_s
        ),
        seeds=seeds,
        rate_scale=rate_scale,
        max_replicas=args.max_replicas,
        capacity_seed_error=args.capacity_seed_error,
        oracle_cache=_oracle_cache(getattr(args, "oracle_cache", None)),
        warmup_s=getattr(args, "warmup_s", None),
    )


def _profile(args: argparse.Namespace) -> Any:
    """The replica profile of ``--model/--gpu/--tp`` with the engine-setting flags applied."""
    from autoscaler.perf.profiles import get_profile, with_engine_settings

    tokens, seqs = args.max_batched_tokens, args.max_num_seqs
    profile = get_profile(args.model, args.gpu, args.tp)
    try:
        return with_engine_settings(profile, max_batched_tokens=tokens, max_num_seqs=seqs)
    except InputError:
        tokens = profile.max_batched_tokens if tokens is None else tokens
        seqs = profile.max_num_seqs if seqs is None else seqs
        raise InputError(
            f"--max-batched-tokens ({tokens}) must be >= --max-num-seqs ({seqs}): every running "
            "sequence takes one token of the step's budget"
        ) from None


def _oracle_cache(flag: str | None) -> Path | None:
    from autoscaler.simulation.fleet_oracle import default_cache_dir

    if flag == "off":
        return None
    return Path(flag) if flag else default_cache_dir()


class _Progress:
    """A rich progress bar on a terminal; silent otherwise (pipes, CI, ``--json`` consumers)."""

    def __init__(self, total_runs: int) -> None:
        self.enabled = sys.stderr.isatty()
        self.total = total_runs
        self.done = 0
        self.current: str | None = None
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.percentage:>3.0f}%"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._bar.__enter__()
            self._task = self._bar.add_task("simulating", total=self.total)
        return self

    def __call__(self, name: str, frac: float) -> None:
        if not self.enabled:
            return
        if frac >= 1.0 and name == self.current:
            self.done += 1
            self.current = None
        elif frac < 1.0:
            self.current = name
        self._bar.update(
            self._task, completed=self.done + (frac if frac < 1 else 0), description=name
        )

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)


def _print_table(result: dict[str, Any], title: str) -> None:
    from rich.console import Console

    from autoscaler.tables import rich_table

    console = Console()
    console.print(rich_table(result["policies"], title))
    # fluid mode refuses baselines it cannot reproduce within the agreement band: say which
    for name, why in (result.get("not_reported") or {}).items():
        console.print(f"not reported: {name}: {why}", soft_wrap=True)


def _cmd_simulate(args: argparse.Namespace) -> int:
    from autoscaler.policies.registry import expand_sweep, make_policy
    from autoscaler.traces.readers import detect_format, read_trace

    names = args.policy or ["forecast"]
    if args.disaggregate:
        from autoscaler.simulation.pd_cli import simulate_disaggregated

        scale = args.rate_scale
        return simulate_disaggregated(args, names, lambda n: _request(args, n, args.seeds, scale))
    if args.sweep:
        names = expand_sweep(names)
    # validate names before reading anything large
    from autoscaler.core.slo import SloSpec
    from autoscaler.policies.base import PolicyContext

    probe = PolicyContext(slo=SloSpec(), max_replicas=10, peak_replicas=1)
    for name in names:
        make_policy(name, probe)
    req = _request(args, names, args.seeds, args.rate_scale)
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
        with _Progress(len(names) + 1) as progress:
            result = run_fluid(windows, req, progress)
    else:
        from autoscaler.simulation.runner import run

        trace = read_trace(args.trace, fmt, servegen_model=args.servegen_model)
        with _Progress((len(names) + 1) * args.seeds) as progress:
            result = run(trace, req, progress)
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        info: dict[str, Any] = result["trace"]  # type: ignore[assignment]
        warm = result.get("warmup_s")
        _print_table(
            result,
            f"{info['path']} ({info['requests']} requests, rate-scale {info['rate_scale']}, "
            f"{result['seeds']} seed(s)"
            + (f", scored after a {warm:g}s warm-up" if isinstance(warm, float) and warm else "")
            + ")",
        )
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from autoscaler.plotting import plot_replicas, require_matplotlib

    require_matplotlib("demo's replicas.png")
    from autoscaler.policies.registry import policy_names
    from autoscaler.simulation.results import mean_over_seeds
    from autoscaler.simulation.runner import REFERENCES, run_seed
    from autoscaler.tables import markdown
    from autoscaler.traces.synthetic import SyntheticWorkload, generate

    workload = SyntheticWorkload()
    trace = generate(workload, seed=args.seed)
    names = ["forecast", *[n for n in policy_names() if n != "forecast"]]
    req = _request(args, names, 1, args.rate_scale)
    print(
        f"demo: synthetic workload, {trace.requests} requests over {trace.duration_s / 60:.0f} "
        f"min, profile {req.profile.key}; simulating {len(names)} policies, the oracle and "
        "oracle-late ...",
        file=sys.stderr,
    )
    with _Progress(len(names) + len(REFERENCES)) as progress:
        seed_run = run_seed(trace, req, seed=args.seed, progress=progress)
    policies = {n: mean_over_seeds([seed_run.figures[n]]) for n in [*REFERENCES, *names]}
    warmup = seed_run.yardstick["warmup_s"]
    result = {
        "trace": seed_run.trace.describe(),
        "warmup_s": warmup,
        "yardstick": seed_run.yardstick,
        "policies": policies,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    png = plot_replicas(
        seed_run.outputs, args.out / "replicas.png", "Replicas and demand per policy (demo)"
    )
    (args.out / "results.json").write_text(json.dumps(result, indent=2))
    (args.out / "results.md").write_text(markdown(policies, "demo: synthetic workload") + "\n")
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        title = f"demo: synthetic workload (1 seed, scored after a {warmup:g}s warm-up)"
        _print_table(result, title)
        print(f"wrote {png}, {args.out / 'results.json'} and {args.out / 'results.md'}")
    return 0


def _cmd_validate_config(args: argparse.Namespace) -> int:
    from autoscaler.config import describe, load_config

    config = load_config(args.file)
    service = config.service
    if not args.skip_files:
        from external_metrics.tls import check_service_files

        try:
            check_service_files(
                service.tls_cert_file, service.tls_key_file, service.keda_client_ca_file
            )
        except InputError as exc:
            raise InputError(
                f"{args.file}: {exc} (--skip-files checks only the YAML, e.g. where the "
                "files are mounted only in the pod)"
            ) from None
    print(describe(config))
    return 0


def _cmd_profiles(args: argparse.Namespace) -> int:
    from autoscaler.perf.profiles import available_profiles, get_profile

    for model, gpu, tp in available_profiles():
        p = get_profile(model, gpu, tp)
        print(f"{model:12s} {gpu:16s} tp{tp}  kv {p.kv_capacity_tokens:>9,d} tokens")
    return 0


def _cmd_forecast_eval(args: argparse.Namespace) -> int:
    """Backtest every forecaster on the trace's demand series (see autoscaler.forecast_eval)."""
    import math

    from autoscaler.forecast_eval import forecast_eval, format_table, horizon_steps
    from autoscaler.series import SERIES_KINDS, load_series

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


def _cmd_emulate(args: argparse.Namespace) -> int:
    """Serve the emulated fleet until interrupted, SIGTERM, or ``--duration`` (docs/emulator.md)."""
    import asyncio
    import signal
    import time

    from aiohttp import web

    from autoscaler.emulation import Emulator, EmulatorSettings, create_app
    from autoscaler.emulation.exposition import buckets_for
    from autoscaler.perf.profiles import get_profile
    from autoscaler.simulation.gateway import GatewaySim
    from autoscaler.traces.readers import read_trace

    if args.replicas < 1:
        raise InputError(f"--replicas must be >= 1, got {args.replicas}")
    if not 0 <= args.port <= 65535:
        raise InputError(f"--port must be between 0 and 65535, got {args.port}")
    settings = EmulatorSettings(
        engine=args.engine,
        model_name=args.model_name,
        workload=args.workload,
        speed=args.speed,
        created_unix=time.time(),
        pool=args.pool,
    )
    trace = read_trace(args.trace, args.format, servegen_model=args.servegen_model)
    if args.queue_depth_threshold < 1:
        raise InputError(f"--queue-depth-threshold must be >= 1, got {args.queue_depth_threshold}")
    gateway = (
        None
        if args.gateway == "off"
        else GatewaySim(
            flow_control=args.gateway == "flow-control",
            queue_depth_threshold=args.queue_depth_threshold,
        )
    )
    profile = get_profile()
    buckets = buckets_for(settings.engine, profile.max_context)
    emulator = Emulator(
        trace, replicas=args.replicas, profile=profile, buckets=buckets, gateway=gateway
    )

    async def serve() -> None:
        runner = web.AppRunner(create_app(emulator, settings), handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, args.host, args.port)
            try:
                await site.start()
            except OSError as exc:
                raise InputError(f"cannot listen on {args.host}:{args.port}: {exc}") from None
            host, port = runner.addresses[0][:2]
            print(
                f"{PROG}: emulating {args.replicas} {args.engine} replica(s) of {trace.path} "
                f"({trace.requests} requests, {trace.duration_s:g} s) at speed {args.speed:g} "
                f"on http://{host}:{port}/metrics",
                file=sys.stderr,
                flush=True,
            )
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGTERM, stop.set)
            try:
                await asyncio.wait_for(stop.wait(), timeout=args.duration)
            except TimeoutError:
                pass
            finally:
                loop.remove_signal_handler(signal.SIGTERM)
        finally:
            await runner.cleanup()

    asyncio.run(serve())
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    """Gather the history, then backtest, replay, recommend and write (autoscaler.report)."""
    import logging
    import time

    from autoscaler.plotting import require_matplotlib
    from autoscaler.report import build, history, replay
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
    req = _request(args, replay.policy_labels(headrooms, baselines), args.seeds, 1.0)
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
    with _Progress(1 + build.step_count(mode, req)) as progress:
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

            now = time.time()
            with PrometheusClient(args.prometheus) as api:
                hist = history.from_prometheus(
                    api,
                    workload,
                    start=history.parse_time(args.start, now=now),
                    end=history.parse_time(args.end, now=now),
                    profile=get_engine(args.engine),
                    weights=weights,
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
        report = build.build_report(hist, req, progress=progress)
        files = build.write_report(report, args.out, progress=progress)
    if args.json:
        sys.stdout.write(files.json.read_text(encoding="utf-8"))
        return 0
    s = report.settings
    _print_table(dict(report.simulation), f"{key}: SLO attainment and GPU-hours, replayed")
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


def _cmd_serve(args: argparse.Namespace) -> int:
    """Run the service until SIGTERM (external_metrics.assemble builds the parts)."""
    import logging

    from autoscaler.config import load_config, prom_duration_seconds
    from external_metrics.assemble import ServeOptions, serve

    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    config = load_config(args.config)
    try:
        backfill_s = prom_duration_seconds(args.backfill)
    except ValueError as exc:
        raise InputError(f"--backfill: {exc}") from None
    options = ServeOptions(
        host=args.host,
        kube_api=args.kube_api,
        kubeconfig=args.kubeconfig,
        use_kubernetes=not args.no_kubernetes,
        skip_auth=args.insecure_skip_auth,
        backfill_s=backfill_s,
        shadow=args.shadow,
        duration_s=args.duration,
        prefetch_dry_run=args.prefetch_dry_run,
    )
    try:
        return serve(config, options)
    except OSError as exc:  # a port in use, a host that does not resolve, a TLS file ssl refuses
        raise InputError(f"serve cannot start: {exc}") from exc


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except (InputError, LlmAutoscalerError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())

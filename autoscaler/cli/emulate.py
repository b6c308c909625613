"""``llm-autoscaler emulate``: serve an emulated fleet's engine /metrics."""

from __future__ import annotations

import argparse
import sys

from autoscaler.cli.flags import PROG, Subparsers, add_trace_flags, positive
from autoscaler.errors import InputError


def add_parser(sub: Subparsers) -> None:
    emu = sub.add_parser(
        "emulate",
        help="serve an emulated fleet's engine /metrics, replaying a trace in (scaled) real time",
        description="Replay a trace through the simulator's replica model on a fixed fleet of "
        "ready replicas, in real time or sped up, and serve each replica's /metrics in the "
        "engine's own text format: /metrics (all replicas, with namespace/workload/pod labels), "
        "/replica/I/metrics (one replica) and /targets (Prometheus http_sd). See docs/emulator.md.",
    )
    add_trace_flags(emu, "model of a ServeGen rate file (expanded)")
    emu.add_argument("--replicas", required=True, type=int, metavar="N", help="fleet size")
    emu.add_argument("--port", required=True, type=int, metavar="P", help="TCP port (0: any)")
    emu.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    emu.add_argument(
        "--speed",
        type=positive("--speed"),
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
        type=positive("--duration"),
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
    emu.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
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

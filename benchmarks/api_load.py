"""HTTPS API load: sustained requests per second and latency of the External Metrics API and /v1.

Setup: a store with 1,000 workloads (10 namespaces x 100, fresh recommendations), the HTTPS app
(``create_api_app``) with TLS on 127.0.0.1 in a child process, **auth off** (``auth=None``:
with auth on, a steady client hits the 10 s review cache, a dictionary lookup, and the reviews
themselves go to the API server, which this machine does not have). Debian's ``wrk`` drives
it over HTTPS with keep-alive connections, cycling through the workloads with the HPA's exact
request (path, ``labelSelector``, ``Accept: application/vnd.kubernetes.protobuf, */*``), or,
for target ``json``, ``GET /v1/workloads/{ns}/{name}`` (KEDA's metrics-api path). One
invocation measures every target x connection count given, one after the other, against the
same server.

wrk is closed-loop: every connection sends its next request as soon as the answer arrives, so
the server runs flat out and latency includes queueing behind the other connections. By
Little's law the mean latency is then about connections / throughput: 8 connections (already
more concurrency than an HPA controller plus an aggregator produce) wait behind few others,
but at 64 connections a p99 <= 20 ms needs roughly >= 4,300 requests/s from the server. The
server's CPU seconds come from ``/proc/<pid>/stat`` (user + system); CPU ms per request is the
figure least disturbed by other load on a shared machine.

Goal (issue "Serving"; issue 15 "Serving tail" adds the 64-connection run): every run
>= 1,000 req/s, p99 <= 20 ms, zero errors, on the 2-core machine.

``--processes N`` (N > 1) runs the service's own API processes (``service.api_processes``,
``autoscaler/cli/api_workers.py``): one process holds the store (and ticks, with ``--ticking``)
and N processes answer on one port through ``SO_REUSEPORT``, each from the copy of the store the
first sends after every write. Server CPU then counts every process of the group.

    .venv/bin/python benchmarks/api_load.py [--duration 60] [--connections 8,64]
        [--target metrics,json] [--processes 1] [--threads 1]

Needs ``wrk`` (``apt-get install -y wrk``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import ROOT, emit

from autoscaler.core.recommendation import Candidate, PublishedMetric, Recommendation
from autoscaler.core.signals import ReplicaCounts, SignalSnapshot
from autoscaler.live.store import RecommendationStore, WorkloadInfo

NAMESPACES = 10
METRICS = ("llm_desired_replicas", "llm_load_replicas", "llm_forecast_load_replicas")
HPA_ACCEPT = "application/vnd.kubernetes.protobuf, */*"


def workloads(n: int) -> list[WorkloadInfo]:
    return [
        WorkloadInfo(
            f"team-{i % NAMESPACES}",
            f"model-{i:04d}",
            {"workload": f"model-{i:04d}", "model": f"family-{i % 7}", "tier": "gold"},
        )
        for i in range(n)
    ]


def build_store(n: int) -> RecommendationStore:
    """1,000 fresh workloads; the staleness bound outlasts the run so every answer is a 200."""
    now = time.time()
    store = RecommendationStore(
        workloads(n), staleness_s=24 * 3600, clock=time.time, metric_names=METRICS
    )
    for i, info in enumerate(workloads(n)):
        load = 1.0 + (i % 13) * 0.37
        rec = Recommendation(
            workload=info.key,
            timestamp=now,
            desired_replicas=int(load) + 1,
            winner="forecast",
            candidates=(Candidate("forecast", load + 0.2, "p99 demand / capacity"),),
            metrics=(
                PublishedMetric(METRICS[0], float(int(load) + 1)),
                PublishedMetric(METRICS[1], load),
                PublishedMetric(METRICS[2], load + 0.2),
            ),
        )
        snap = SignalSnapshot(
            workload=info.key,
            timestamp=now,
            replicas=ReplicaCounts(spec=2, ready=2, starting=0, pending=0, terminating=0),
            request_rate=10.0 + i % 5,
        )
        store.put(rec, snap)
    return store


# --- the server (child process) -----------------------------------------------------------------


class Ticking:
    """``--ticking``: the control loop of ``serve`` ticking back to back in this process (a
    worker thread, as in the service) over ``n`` workloads, against ``loop_tick.py``'s
    Prometheus stand-in, writing the store the API answers from."""

    def __init__(self, n: int) -> None:
        from loop_tick import start_server
        from prometheus_client import CollectorRegistry

        from autoscaler.clients.prometheus import PrometheusClient
        from autoscaler.config import ServiceConfig, WorkloadConfig
        from autoscaler.core.wire_names import PUBLISHED_METRICS
        from autoscaler.engines.registry import ENGINES
        from autoscaler.live.loop import ControlLoop, workload_info
        from autoscaler.live.loop_metrics import LoopMetrics
        from autoscaler.live.store import RecommendationStore

        self.prometheus_server, url = start_server(n)
        config = ServiceConfig(
            service={"tick_budget_s": 14.9},  # whole ticks, as loop_tick.py measures them
            workloads=tuple(
                WorkloadConfig(namespace=ns, name=name, engine="vllm", selector={"app": name})
                for ns, name in tick_workload_names(n)
            ),
        )
        self.store = RecommendationStore(
            [workload_info(config, w, ENGINES[w.engine]) for w in config.workloads],
            staleness_s=24 * 3600,
            clock=time.time,
            metric_names=PUBLISHED_METRICS,
        )
        self.api = PrometheusClient(url, timeout_s=60.0)
        self.loop = ControlLoop(
            config,
            prometheus=self.api,
            store=self.store,
            engines=ENGINES,
            metrics=LoopMetrics(CollectorRegistry()),
        )
        self.durations: list[float] = []
        self.loop.tick()  # the API starts with answers, as after the service's first tick

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            report = await asyncio.to_thread(self.loop.tick)
            self.durations.append(report.duration_s)

    def close(self) -> dict[str, Any]:
        self.api.close()
        self.prometheus_server.kill()
        self.prometheus_server.wait()
        d = sorted(self.durations)
        return {
            "ticks": len(d),
            "tick_p50_ms": round(1e3 * d[len(d) // 2], 1) if d else None,
            "tick_max_ms": round(1e3 * d[-1], 1) if d else None,
        }


def tick_workload_names(n: int) -> list[tuple[str, str]]:
    from loop_tick import workload_names

    return workload_names(n)


def serve(n: int, *, api_processes: int, ticking: bool = False, loop: str = "auto") -> None:
    """Serve the store over TLS as the service does: in this process, or (``api_processes`` >
    1) from the service's API processes; with ``ticking``, while the control loop ticks
    (:class:`Ticking`)."""
    from autoscaler.cli import event_loop
    from autoscaler.cli.api_workers import ApiWorkers, WorkerSpec
    from external_metrics.app import create_api_app, start_https
    from external_metrics.self_signed import self_signed_pair
    from external_metrics.tls import server_ssl_context

    ticker = Ticking(n) if ticking else None
    store = ticker.store if ticker is not None else build_store(n)
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = self_signed_pair(("127.0.0.1", "localhost"))
        (Path(tmp) / "tls.crt").write_bytes(cert)
        (Path(tmp) / "tls.key").write_bytes(key)
        ctx = server_ssl_context(Path(tmp) / "tls.crt", Path(tmp) / "tls.key")

        async def main() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGTERM, stop.set)
            workers = None
            if api_processes == 1:
                runner, port = await start_https(
                    create_api_app(store, None), ctx, host="127.0.0.1", port=0
                )
            else:
                spec = WorkerSpec(
                    workloads=tuple(e.info for e in store.entries()),
                    staleness_s=store.staleness_s,
                    metric_names=store.metric_names,
                    cert_file=str(Path(tmp) / "tls.crt"),
                    key_file=str(Path(tmp) / "tls.key"),
                    kube=None,
                )
                workers = ApiWorkers(store, spec, api_processes)
                port = await workers.start("127.0.0.1", 0)
            print(f"READY {port}", flush=True)
            ticks = asyncio.create_task(ticker.run(stop)) if ticker is not None else None
            await stop.wait()
            if ticks is not None:
                await ticks
            if workers is not None:
                await workers.stop()
            else:
                await runner.cleanup()

        event_loop.run(main(), loop=loop)  # type: ignore[arg-type]
        if ticker is not None:
            print(f"TICKS {json.dumps(ticker.close())}", flush=True)


# --- the driver ---------------------------------------------------------------------------------

LUA = """
local paths = {%(paths)s}
local counter = 0
local thread_offset = 0
local next_offset = 0

setup = function(thread)
  thread:set("thread_offset", next_offset)
  next_offset = next_offset + 499
end

request = function()
  counter = counter + 1
  local path = paths[((counter + thread_offset) %% #paths) + 1]
  return wrk.format("GET", path, {["Accept"] = "%(accept)s"})
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%%d,"duration_us":%%d,"bytes":%%d,'
    .. '"errors":{"connect":%%d,"read":%%d,"write":%%d,"status":%%d,"timeout":%%d},'
    .. '"latency_us":{"mean":%%.1f,"p50":%%d,"p90":%%d,"p99":%%d,"p999":%%d,"max":%%d}}\\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max))
end
"""


def paths_for(target: str, n: int, ticking: bool = False) -> list[str]:
    names = tick_workload_names(n) if ticking else [(w.namespace, w.name) for w in workloads(n)]
    out = []
    for i, (namespace, name) in enumerate(names):
        if target == "metrics":
            metric = METRICS[i % len(METRICS)]
            out.append(
                f"/apis/external.metrics.k8s.io/v1beta1/namespaces/{namespace}/{metric}"
                f"?labelSelector=workload%3D{name}"
            )
        else:
            out.append(f"/v1/workloads/{namespace}/{name}")
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its live descendants (the API processes)."""
    total = 0.0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except FileNotFoundError:
            continue
        utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
        total += (utime + stime) / os.sysconf("SC_CLK_TCK")
        todo += [int(c) for c in children]
    return total


def run_wrk(
    wrk: str, url: str, script: Path, *, duration: int, threads: int, conns: int
) -> dict[str, Any]:
    cmd = [wrk, f"-t{threads}", f"-c{conns}", f"-d{duration}s", "--timeout", "2s",
           "-s", str(script), url]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    for line in proc.stdout.splitlines():
        if line.startswith("WRKJSON "):
            return dict(json.loads(line.removeprefix("WRKJSON ")))
    raise SystemExit(
        f"wrk produced no result (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    )


GOAL = {"requests_per_s": 1000, "p99_ms": 20, "errors": 0}


def comma_list(kind: type, allowed: tuple[str, ...] = ()) -> Any:
    """An argparse type for lists such as ``8,64`` or ``metrics,json``."""

    def parse(text: str) -> list[Any]:
        try:
            values = [kind(part.strip()) for part in text.split(",") if part.strip()]
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        if not values or any(allowed and v not in allowed for v in values):
            choices = ", ".join(allowed) if allowed else kind.__name__
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {choices}")
        return values

    return parse


def start_servers(
    workloads: int, processes: int, ticking: bool = False, loop: str = "auto"
) -> tuple[list[subprocess.Popen[str]], int]:
    """The server process (with ``processes`` > 1 it starts that many API processes) and its
    port."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, __file__, "--serve", "--workloads", str(workloads)]
    cmd += ["--event-loop", loop, "--processes", str(processes)]
    if ticking:
        cmd += ["--ticking"]
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    assert server.stdout is not None
    line = server.stdout.readline()
    if not line.startswith("READY "):
        stop_servers([server])
        raise SystemExit(f"server did not start: {line!r}")
    return [server], int(line.split()[1])


def stop_servers(servers: list[subprocess.Popen[str]]) -> dict[str, Any] | None:
    """Stop the servers; what a ticking server reports of its ticks (None: not ticking)."""
    for server in servers:
        server.send_signal(signal.SIGTERM)
    ticks = None
    for server in servers:
        try:
            out, _ = server.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            server.kill()
            continue
        for line in out.splitlines():
            if line.startswith("TICKS "):
                ticks = dict(json.loads(line.removeprefix("TICKS ")))
    return ticks


def measure(
    wrk: str,
    url: str,
    servers: list[subprocess.Popen[str]],
    *,
    target: str,
    workloads: int,
    duration: int,
    threads: int,
    conns: int,
    ticking: bool = False,
) -> dict[str, Any]:
    """One wrk run (after a 2 s warm-up on the same connections count) and the servers' CPU."""
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "cycle.lua"
        paths = paths_for(target, workloads, ticking)
        script.write_text(
            LUA % {"paths": ",".join(json.dumps(p) for p in paths), "accept": HPA_ACCEPT}
        )
        run_wrk(wrk, url, script, duration=2, threads=threads, conns=conns)
        cpu_before = sum(cpu_seconds(s.pid) for s in servers)
        result = run_wrk(wrk, url, script, duration=duration, threads=threads, conns=conns)
        cpu_used = sum(cpu_seconds(s.pid) for s in servers) - cpu_before
    seconds = result["duration_us"] / 1e6
    lat = {k: round(v / 1000, 3) for k, v in result["latency_us"].items()}
    errors = sum(result["errors"].values())
    rps = result["requests"] / seconds
    return {
        "target": target,
        "connections": conns,
        "duration_s": round(seconds, 2),
        "requests": result["requests"],
        "requests_per_s": round(rps, 1),
        "latency_ms": lat,
        "errors": result["errors"],
        "server_cpu_s": round(cpu_used, 2),
        "server_cpu_ms_per_request": round(1000 * cpu_used / max(1, result["requests"]), 4),
        "goal_met": rps >= GOAL["requests_per_s"] and lat["p99"] <= GOAL["p99_ms"] and not errors,
    }


def markdown_table(payload: dict[str, Any]) -> str:
    procs = payload["processes"]
    servers = "1 server process" if procs == 1 else f"{procs} API processes (api_processes)"
    lines = [
        f"HTTPS API load: {payload['workloads']} workloads, auth off, {servers}, "
        f"wrk -t{payload['wrk_threads']}, {payload['duration_s_per_run']} s per run; "
        "goal per run: >= 1,000 req/s, p99 <= 20 ms, 0 errors."
        + (
            f" While ticking back to back: {t['ticks']} ticks, p50 {t['tick_p50_ms']} ms, "
            f"max {t['tick_max_ms']} ms."
            if (t := payload.get("ticking"))
            else ""
        ),
        "",
        "| target | conns | req/s | p50 ms | p90 ms | p99 ms | p99.9 / max ms | errors "
        "| server CPU ms/req | goal met |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for run in payload["runs"]:
        lat = run["latency_ms"]
        lines.append(
            f"| {run['target']} | {run['connections']} | {run['requests_per_s']:,.0f} "
            f"| {lat['p50']:.2f} | {lat['p90']:.2f} | {lat['p99']:.2f} "
            f"| {lat['p999']:.2f} / {lat['max']:.2f} | {sum(run['errors'].values())} "
            f"| {run['server_cpu_ms_per_request']:.3f} | {'yes' if run['goal_met'] else 'no'} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=60, help="seconds of load per run")
    parser.add_argument("--workloads", type=int, default=1000)
    parser.add_argument(
        "--connections", type=comma_list(int), default=[8, 64], help="list, default 8,64"
    )
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument(
        "--target",
        type=comma_list(str, ("metrics", "json")),
        default=["metrics", "json"],
        help="metrics, json or both (default metrics,json)",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="API processes (service.api_processes)",
    )
    parser.add_argument(
        "--ticking",
        action="store_true",
        help="serve while the control loop ticks back to back over --workloads workloads "
        "(loop_tick.py's Prometheus stand-in)",
    )
    parser.add_argument(
        "--event-loop",
        choices=("auto", "asyncio", "uvloop"),
        default="auto",
        help="the server's event loop (default auto: uvloop where installed, as serve runs)",
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        loop = args.event_loop
        serve(args.workloads, api_processes=args.processes, ticking=args.ticking, loop=loop)
        return
    if args.processes < 1:
        parser.error("--processes must be >= 1")

    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    servers, port = start_servers(args.workloads, args.processes, args.ticking, args.event_loop)
    runs = []
    ticks = None
    try:
        for target in args.target:
            for conns in args.connections:
                run = measure(
                    wrk,
                    f"https://127.0.0.1:{port}",
                    servers,
                    target=target,
                    workloads=args.workloads,
                    duration=args.duration,
                    threads=args.threads,
                    conns=conns,
                    ticking=args.ticking,
                )
                runs.append(run)
    finally:
        ticks = stop_servers(servers)

    payload = {
        "workloads": args.workloads,
        "auth": "off",
        "processes": args.processes,
        "event_loop": args.event_loop,
        "wrk_threads": args.threads,
        "duration_s_per_run": args.duration,
        "goal": GOAL,
        "runs": runs,
        "goal_met": all(run["goal_met"] for run in runs),
        "ticking": ticks,
    }
    name = "api_load" if args.processes == 1 else f"api_load_{args.processes}proc"
    if args.ticking:
        name += "_ticking"
    emit(name, payload, markdown_table(payload))


if __name__ == "__main__":
    main()

"""HTTPS API load: sustained requests per second and latency of the External Metrics API.

Setup: a store with 1,000 workloads (10 namespaces x 100, fresh recommendations), the HTTPS app
(``create_api_app``) with TLS on 127.0.0.1 in a child process, **auth off** (``auth=None``:
with auth on, a steady client hits the 10 s review cache, a dictionary lookup, and the reviews
themselves go to the API server, which this machine does not have). Debian's ``wrk`` drives
it over HTTPS with keep-alive connections, cycling through the workloads with the HPA's exact
request (path, ``labelSelector``, ``Accept: application/vnd.kubernetes.protobuf, */*``).

wrk is closed-loop: every connection sends its next request as soon as the answer arrives, so
the server runs flat out and latency includes queueing behind the other connections. The
default of 8 connections is already more concurrency than an HPA controller plus an aggregator
produce. The server's CPU seconds come from ``/proc/<pid>/stat`` (user + system).

Goal (issue "Serving"): >= 1,000 req/s, p99 <= 20 ms, zero errors, on the 2-core machine.

    .venv/bin/python benchmarks/api_load.py [--duration 60] [--connections 8] [--target metrics]

``--target json`` drives ``GET /v1/workloads/{ns}/{name}`` instead (KEDA's metrics-api path).
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

from autoscaler.recommendation import Candidate, PublishedMetric, Recommendation
from autoscaler.signals import ReplicaCounts, SignalSnapshot
from autoscaler.store import RecommendationStore, WorkloadInfo

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


def serve(n: int) -> None:
    from external_metrics.app import create_api_app, start_https
    from external_metrics.self_signed import self_signed_pair
    from external_metrics.tls import server_ssl_context

    store = build_store(n)
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = self_signed_pair(("127.0.0.1", "localhost"))
        (Path(tmp) / "tls.crt").write_bytes(cert)
        (Path(tmp) / "tls.key").write_bytes(key)
        ctx = server_ssl_context(Path(tmp) / "tls.crt", Path(tmp) / "tls.key")

        async def main() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGTERM, stop.set)
            runner, port = await start_https(
                create_api_app(store, None), ctx, host="127.0.0.1", port=0
            )
            print(f"READY {port}", flush=True)
            await stop.wait()
            await runner.cleanup()

        asyncio.run(main())


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


def paths_for(target: str, n: int) -> list[str]:
    out = []
    for i, info in enumerate(workloads(n)):
        if target == "metrics":
            metric = METRICS[i % len(METRICS)]
            out.append(
                f"/apis/external.metrics.k8s.io/v1beta1/namespaces/{info.namespace}/{metric}"
                f"?labelSelector=workload%3D{info.name}"
            )
        else:
            out.append(f"/v1/workloads/{info.namespace}/{info.name}")
    return out


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=60, help="seconds of measured load")
    parser.add_argument("--workloads", type=int, default=1000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--target", choices=("metrics", "json"), default="metrics")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.workloads)
        return

    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--workloads", str(args.workloads)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        if not line.startswith("READY "):
            raise SystemExit(f"server did not start: {line!r}")
        url = f"https://127.0.0.1:{int(line.split()[1])}"
        with tempfile.TemporaryDirectory() as tmp:
            script = Path(tmp) / "cycle.lua"
            paths = paths_for(args.target, args.workloads)
            script.write_text(
                LUA % {"paths": ",".join(json.dumps(p) for p in paths), "accept": HPA_ACCEPT}
            )
            run_wrk(wrk, url, script, duration=2, threads=args.threads, conns=args.connections)
            cpu_before = cpu_seconds(server.pid)
            result = run_wrk(
                wrk,
                url,
                script,
                duration=args.duration,
                threads=args.threads,
                conns=args.connections,
            )
            cpu_used = cpu_seconds(server.pid) - cpu_before
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()

    seconds = result["duration_us"] / 1e6
    lat = {k: v / 1000 for k, v in result["latency_us"].items()}
    errors = sum(result["errors"].values())
    rps = result["requests"] / seconds
    payload = {
        "target": args.target,
        "workloads": args.workloads,
        "connections": args.connections,
        "wrk_threads": args.threads,
        "auth": "off",
        "duration_s": round(seconds, 2),
        "requests": result["requests"],
        "requests_per_s": round(rps, 1),
        "latency_ms": {k: round(v, 3) for k, v in lat.items()},
        "errors": result["errors"],
        "server_cpu_s": round(cpu_used, 2),
        "server_cpu_ms_per_request": round(1000 * cpu_used / max(1, result["requests"]), 4),
        "goal": {"requests_per_s": 1000, "p99_ms": 20, "errors": 0},
        "goal_met": rps >= 1000 and lat["p99"] <= 20 and errors == 0,
    }
    markdown = "\n".join(
        [
            f"| HTTPS API load ({args.target}, {args.workloads} workloads, "
            f"{args.connections} conns, auth off) | value | goal |",
            "| --- | --- | --- |",
            f"| sustained requests/s | {rps:,.0f} | >= 1,000 |",
            f"| latency p50 | {lat['p50']:.2f} ms | |",
            f"| latency p90 | {lat['p90']:.2f} ms | |",
            f"| latency p99 | {lat['p99']:.2f} ms | <= 20 ms |",
            f"| latency p99.9 / max | {lat['p999']:.2f} / {lat['max']:.2f} ms | |",
            f"| errors (connect/read/write/status/timeout) | {errors} | 0 |",
            f"| server CPU | {cpu_used:.1f} s over {seconds:.0f} s "
            f"({1000 * cpu_used / max(1, result['requests']):.3f} ms/request) | |",
            f"| goal met | {'yes' if payload['goal_met'] else 'no'} | |",
        ]
    )
    emit(f"api_load_{args.target}", payload, markdown)


if __name__ == "__main__":
    main()

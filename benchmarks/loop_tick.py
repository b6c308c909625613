"""Cost of one control-loop tick, end to end, as the number of workloads grows.

The loop runs with the real :class:`~autoscaler.clients.prometheus.PrometheusClient` against a
local HTTP server (127.0.0.1, a child process) that answers the engine's batched queries with
Prometheus JSON as Prometheus writes it: one series per workload (or per workload and pod, or per
workload and ``le``) with its whole label set, every vLLM query of the profile, two pods per
workload, full histograms (the profile's bucket bounds and ``+Inf``), sample timestamps at the
evaluation time the client asked for. So HTTP, decoding, snapshot assembly, the ``forecast``
policy, the store and the loop's metrics are all counted; Prometheus' own query time is not
(it depends on the cluster). Bodies are sent uncompressed (loopback).

Each size runs in a fresh process, so its peak RSS is its own. Per-stage times are medians
over the ticks: ``fetch`` (HTTP, the client waiting for bodies), ``decode`` (JSON to rows),
``snapshot`` (rows filed and freed, snapshots built), ``policy``, ``store``, ``metrics`` (the loop's
Prometheus metrics and the other per-workload edges).

    python benchmarks/loop_tick.py [--ticks 12] [--sizes 1000,10000,30000]
    python benchmarks/loop_tick.py --decoders [--sizes 10000]   # JSON decoders compared

Goals (issue 20): 10,000 workloads tick p99 <= 1 s and RSS <= 1 GiB; 1,000 p99 <= 150 ms.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from _common import ROOT, emit

from autoscaler.engines.promql import Query, build_queries
from autoscaler.engines.registry import ENGINES

NAMESPACES = 10
PODS = 2
START = 1_700_000_000.0
GOALS = {1000: {"tick_p99_ms": 150.0}, 10000: {"tick_p99_ms": 1000.0, "rss_mib": 1024.0}}


def workload_names(n: int) -> list[tuple[str, str]]:
    return [(f"team-{i % NAMESPACES}", f"model-{i:05d}") for i in range(n)]


# --- the Prometheus stand-in (child process) ----------------------------------------------------


def _bounds(field: str) -> tuple[float, ...]:
    profile = ENGINES["vllm"]
    series = {
        "ttft_buckets": profile.ttft,
        "prompt_buckets": profile.prompt_tokens,
        "tpot_buckets": profile.request_tpot,
    }[field]
    return (*series[0].buckets, math.inf)


def _value(field: str, i: int, pod: int = 0) -> float:
    """A plausible value of ``field`` for workload ``i`` (steady: the same every tick)."""
    rate = 2.0 + i % 17
    return {
        "request_rate": rate,
        "prompt_tokens_rate": rate * 1000.0,
        "generation_tokens_rate": rate * 200.0,
        "preemption_rate": 0.0,
        "ttft_p90_s": 0.35 + 0.01 * (i % 7),
        "tpot_p90_s": 0.03,
        "e2e_p95_s": 9.0,
        "queue_time_p90_s": 0.27,
        "p90_prompt_tokens": 1800.0,
        "mean_prompt_tokens": 1000.0,
        "waiting": float(i % 3),
        "waiting_growth_rate": 0.0,
        "per_replica_waiting": float((i + pod) % 2),
        "running": 20.0 + i % 11,
        "per_replica_running": 10.0 + (i + pod) % 6,
        "kv_usage": 0.3,
        "kv_usage_max": 0.35,
        "per_replica_kv_usage": 0.3 + 0.05 * pod,
    }[field]


def _fmt(v: float) -> str:
    return "+Inf" if math.isinf(v) else repr(v)


TIME = b"@T@"


def render_bodies(n: int) -> dict[str, bytes]:
    """Every query's answer, with :data:`TIME` where the evaluation time goes."""
    out: dict[str, bytes] = {}
    names = workload_names(n)
    for q in build_queries(ENGINES["vllm"]):
        rows: list[tuple[dict[str, str], str]] = []
        for i, (ns, name) in enumerate(names):
            base = {"namespace": ns, "workload": name}
            if q.field.startswith("per_replica_"):
                for p in range(PODS):
                    labels = {**base, "pod": f"{name}-7d9f8c6b5-{p:05d}"}
                    rows.append((labels, _fmt(_value(q.field, i, p))))
            elif q.field.endswith("_buckets"):
                bounds = _bounds(q.field)
                total = 60.0 * (2.0 + i % 17)
                for k, le in enumerate(bounds):
                    share = 1.0 if math.isinf(le) else 1.0 - math.exp(-(k + 1) / 4.0)
                    rows.append(({**base, "le": _fmt(le)}, _fmt(total * share / 60.0)))
            else:
                rows.append((base, _fmt(_value(q.field, i))))
        result = ",".join(
            '{"metric":' + json.dumps(labels, separators=(",", ":")) + f',"value":[@T@,"{v}"]}}'
            for labels, v in rows
        )
        head = '{"status":"success","data":{"resultType":"vector","result":['
        out[q.promql] = (head + result + "]}}").encode()
    return out


def serve(n: int) -> None:
    bodies = render_bodies(n)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            length = int(self.headers.get("Content-Length", "0"))
            form = urllib.parse.parse_qs(self.rfile.read(length).decode())
            template = bodies.get(form.get("query", [""])[0])
            if template is None:
                body = b'{"status":"success","data":{"resultType":"vector","result":[]}}'
            else:
                body = template.replace(TIME, form.get("time", [str(time.time())])[0].encode())
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"READY {server.server_address[1]}", flush=True)
    server.serve_forever()


def start_server(n: int) -> tuple[subprocess.Popen[str], str]:
    cmd = [sys.executable, __file__, "--serve", str(n)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("READY "):
        proc.kill()
        raise SystemExit(f"the Prometheus stand-in did not start: {line!r}")
    return proc, f"http://127.0.0.1:{line.split()[1]}"


# --- one size, measured in its own process ------------------------------------------------------


def decoders() -> dict[str, Callable[[bytes], Any]]:
    found: dict[str, Callable[[bytes], Any]] = {"json": json.loads}
    try:
        import orjson

        found["orjson"] = orjson.loads
    except ImportError:
        pass
    try:
        import msgspec

        found["msgspec"] = msgspec.json.decode
    except ImportError:
        pass
    return found


def measure(n: int, ticks: int, url: str) -> dict[str, Any]:
    from prometheus_client import CollectorRegistry

    from autoscaler.clients.prometheus import PrometheusClient
    from autoscaler.config import ServiceConfig, WorkloadConfig
    from autoscaler.live.loop import ControlLoop, workload_info
    from autoscaler.live.loop_metrics import LoopMetrics
    from autoscaler.live.store import RecommendationStore

    clock = [START]
    config = ServiceConfig(
        # the longest Prometheus budget a 15 s tick allows: a slower tick is measured whole
        # rather than cut short and held (what the service would do)
        service={"tick_budget_s": 14.9},
        workloads=tuple(
            WorkloadConfig(namespace=ns, name=name, engine="vllm", selector={"app": name})
            for ns, name in workload_names(n)
        ),
    )
    store = RecommendationStore(
        [workload_info(config, w) for w in config.workloads],
        staleness_s=config.service.effective_staleness_s,
        clock=lambda: clock[0],
    )
    rows: dict[str, list[float]] = {k: [] for k in ("tick", "fetch", "decode", "snapshot")}
    cpu: list[float] = []
    with PrometheusClient(url, timeout_s=60.0) as api:
        loop = ControlLoop(
            config,
            prometheus=api,
            store=store,
            engines=ENGINES,
            metrics=LoopMetrics(CollectorRegistry()),
            clock=lambda: clock[0],
        )
        held = 0
        for _ in range(ticks):
            before_fetch, before_decode = api.spent.fetch_s, api.spent.decode_s
            start, cpu_start = time.perf_counter(), time.process_time()
            report = loop.tick()
            rows["tick"].append(time.perf_counter() - start)
            cpu.append(time.process_time() - cpu_start)
            fetch = api.spent.fetch_s - before_fetch
            decode = api.spent.decode_s - before_decode
            rows["fetch"].append(fetch)
            rows["decode"].append(decode)
            rows["snapshot"].append(report.stages["collect"] - fetch - decode)
            for stage in ("policy", "store", "metrics"):
                rows.setdefault(stage, []).append(report.stages[stage])
            held += sum(1 for r in report.recommendations.values() if r.holds)
            if report.errors:
                raise SystemExit(f"tick errors: {report.errors[:3]}")
            clock[0] += config.service.tick_s
    ticks_s = sorted(rows["tick"])
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return {
        "workloads": n,
        "ticks": ticks,
        "queries_per_tick": loop.queries_per_tick(),
        "held_recommendations": held,
        "tick_p50_ms": round(1e3 * statistics.median(ticks_s), 1),
        "tick_p99_ms": round(1e3 * ticks_s[min(len(ticks_s) - 1, int(0.99 * len(ticks_s)))], 1),
        "stages_p50_ms": {
            k: round(1e3 * statistics.median(v), 1) for k, v in rows.items() if k != "tick"
        },
        "tick_cpu_p50_ms": round(1e3 * statistics.median(cpu), 1),
        "rss_mib": round(rss_mib, 1),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def measure_decoders(n: int, url: str) -> dict[str, Any]:
    """Each decoder over the same tick's bodies (the JSON step only, best of three)."""
    import requests

    from autoscaler.live.loop import gc_paused

    queries: list[Query] = build_queries(ENGINES["vllm"])
    bodies = [
        requests.post(f"{url}/api/v1/query", data={"query": q.promql, "time": repr(START)}).content
        for q in queries
    ]
    out: dict[str, Any] = {"workloads": n, "bytes": sum(len(b) for b in bodies)}
    for name, decode in decoders().items():
        best = math.inf
        for _ in range(3):
            with gc_paused():  # as in a tick
                start = time.perf_counter()
                decoded = [decode(body) for body in bodies]
                best = min(best, time.perf_counter() - start)
            del decoded
        out[f"{name}_ms"] = round(1e3 * best, 1)
    return out


def run_child(mode: str, n: int, ticks: int) -> dict[str, Any]:
    server, url = start_server(n)
    try:
        cmd = [sys.executable, __file__, mode, str(n), "--ticks", str(ticks), "--url", url]
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
        if done.returncode != 0:
            raise SystemExit(f"measuring {n} workloads failed:\n{done.stderr[-3000:]}")
        row = dict(json.loads(done.stdout.strip().splitlines()[-1]))
        print(json.dumps(row), file=sys.stderr, flush=True)  # each size as soon as it is done
        return row
    finally:
        server.kill()
        server.wait()


def markdown(rows: list[dict[str, Any]]) -> str:
    stages = ("fetch", "decode", "snapshot", "policy", "store", "metrics")
    head = "| workloads | tick p50 | tick p99 | CPU p50 | "
    head += " | ".join(stages) + " | RSS | held | load avg | goal |"
    md = [head, "|" + "---|" * (len(stages) + 8)]
    for r in rows:
        goal = GOALS.get(r["workloads"])
        met = "—"
        if goal is not None:
            ok = r["tick_p99_ms"] <= goal["tick_p99_ms"]
            ok = ok and r["rss_mib"] <= goal.get("rss_mib", math.inf)
            met = "met" if ok else "missed"
        md.append(
            f"| {r['workloads']:,} | {r['tick_p50_ms']:.0f} ms | {r['tick_p99_ms']:.0f} ms | "
            f"{r['tick_cpu_p50_ms']:.0f} ms | "
            + " | ".join(f"{r['stages_p50_ms'][s]:.0f}" for s in stages)
            + f" | {r['rss_mib']:.0f} MiB | {r['held_recommendations']} "
            + f"| {r['load_average_1m']:.1f} | {met} |"
        )
    md.append("")
    md.append(
        "Stage columns: median ms per tick. CPU: the measuring process' CPU time per tick (less "
        "disturbed by other load than wall time). RSS: peak of the measuring process. Load avg: "
        "the machine's 1-minute load when the size finished (2 cores: above 2, others compete). "
        "Held: recommendations that held over all ticks (a tick past its Prometheus budget holds)."
    )
    return "\n".join(md)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=12)
    parser.add_argument("--sizes", default="1000,10000,30000")
    parser.add_argument("--decoders", action="store_true", help="compare JSON decoders")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--measure", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--measure-decoders", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return 0
    if args.measure:
        print(json.dumps(measure(args.measure, args.ticks, args.url)))
        return 0
    if args.measure_decoders:
        print(json.dumps(measure_decoders(args.measure_decoders, args.url)))
        return 0
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.decoders:
        found = [run_child("--measure-decoders", n, 0) for n in sizes]
        names = [k for k in found[0] if k.endswith("_ms")]
        md = ["| workloads | MB per tick | " + " | ".join(names) + " |"]
        md.append("|" + "---|" * (len(names) + 2))
        md += [
            f"| {r['workloads']:,} | {r['bytes'] / 1e6:.0f} | "
            + " | ".join(f"{r[k]:.0f}" for k in names)
            + " |"
            for r in found
        ]
        emit("loop_tick_decoders", {"rows": found}, "\n".join(md))
        return 0
    rows = [run_child("--measure", n, args.ticks) for n in sizes]
    emit("loop_tick", {"goals": GOALS, "rows": rows}, markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

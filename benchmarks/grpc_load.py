"""KEDA external scaler under load: GetMetrics calls/s and latency over TLS, 1,000 workloads.

The server runs in a subprocess (as in production: its own interpreter and GIL), with TLS on and
a store of ``--workloads`` fresh workloads. This process is the load generator: ``--threads``
client threads over ``--channels`` TLS channels call ``GetMetrics`` back to back (closed loop),
each walking the workloads in turn, for ``--duration`` seconds after a short warm-up. Both share
the same machine, so the figure is what the whole box sustains, load generator included.

Reported: sustained calls/s, latency percentiles (ms), errors by status code, and the server's CPU
seconds over the measured window (from ``/proc/<pid>/stat``), also per 1,000 calls. The goal
(DESIGN: the KEDA scaler must never be the slow part of an HPA sync) is >= 1,000 calls/s with
p99 <= 20 ms and zero errors.

Run: ``.venv/bin/python benchmarks/grpc_load.py [--duration 60] [--threads 4]``. Prints JSON and
a Markdown table, and keeps both under ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from _common import emit
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from autoscaler.core.recommendation import PublishedMetric, Recommendation
from autoscaler.live.store import RecommendationStore, WorkloadInfo
from external_metrics.keda import externalscaler_pb2 as pb
from external_metrics.keda import externalscaler_pb2_grpc as pb_grpc
from external_metrics.keda.server import create_grpc_server

SERVICE_DNS = "llm-autoscaler.llm-system.svc"
WARMUP_S = 2.0
GOAL_CALLS_PER_S = 1000.0
GOAL_P99_MS = 20.0


def workload_names(n: int) -> list[tuple[str, str]]:
    return [(f"team-{i % 20}", f"model-{i}") for i in range(n)]


# -- the server (subprocess) ---------------------------------------------------------------------


def serve(args: argparse.Namespace) -> None:
    names = workload_names(args.workloads)
    store = RecommendationStore(
        [WorkloadInfo(ns, name) for ns, name in names], staleness_s=1e9, clock=time.time
    )
    for i, (ns, name) in enumerate(names):
        desired = i % 7
        store.put(
            Recommendation(
                f"{ns}/{name}",
                time.time(),
                desired,
                "forecast",
                metrics=(
                    PublishedMetric("llm_desired_replicas", float(desired)),
                    PublishedMetric("llm_load_replicas", desired * 0.8),
                    PublishedMetric("llm_forecast_load_replicas", desired * 0.9),
                ),
            )
        )
    tls = (Path(args.cert).read_bytes(), Path(args.key).read_bytes())
    server = create_grpc_server(store, "127.0.0.1:0", tls=tls, max_workers=args.max_workers)
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(f"PORT {server.port}", flush=True)
    stop.wait()
    server.stop(1.0).wait(5.0)


# -- certificates --------------------------------------------------------------------------------


def write_pki(directory: Path) -> bytes:
    """A CA and a server certificate for the Service name; returns the CA PEM."""
    now = dt.datetime.now(dt.UTC)

    def build(
        subject: str,
        issuer: x509.Name | None,
        key: ec.EllipticCurvePrivateKey,
        signer: ec.EllipticCurvePrivateKey,
        *,
        ca: bool,
    ) -> x509.Certificate:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer or name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            san = [x509.DNSName(SERVICE_DNS), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = build("bench-ca", None, ca_key, ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = build("llm-autoscaler", ca.subject, key, ca_key, ca=False)
    (directory / "tls.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "tls.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca.public_bytes(serialization.Encoding.PEM)


# -- the load generator --------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


class Worker(threading.Thread):
    def __init__(
        self,
        stub: Any,
        requests: list[pb.GetMetricsRequest],
        offset: int,
        start_at: int,
        end_at: int,
    ) -> None:
        super().__init__(daemon=True)
        self.stub, self.requests, self.offset = stub, requests, offset
        self.start_at, self.end_at = start_at, end_at
        self.latencies_ns: list[int] = []
        self.errors: Counter[str] = Counter()

    def run(self) -> None:
        i = self.offset
        n = len(self.requests)
        while True:
            t0 = time.perf_counter_ns()
            if t0 >= self.end_at:
                return
            try:
                self.stub.GetMetrics(self.requests[i % n], timeout=5.0)
                ok = True
            except grpc.RpcError as exc:
                ok = False
                code = exc.code() if isinstance(exc, grpc.Call) else None
                if t0 >= self.start_at:
                    self.errors[code.name if code else "UNKNOWN"] += 1
            t1 = time.perf_counter_ns()
            if ok and t0 >= self.start_at:
                self.latencies_ns.append(t1 - t0)
            i += 1


def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="grpc-load-") as tmp:
        directory = Path(tmp)
        ca_pem = write_pki(directory)
        child = subprocess.Popen(
            [sys.executable, __file__, "--serve", "--workloads", str(args.workloads),
             "--max-workers", str(args.max_workers), "--cert", str(directory / "tls.crt"),
             "--key", str(directory / "tls.key")],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert child.stdout is not None
            line = child.stdout.readline()
            if not line.startswith("PORT "):
                raise SystemExit(f"server did not start: {line!r}")
            port = int(line.split()[1])
            result = load(args, port, ca_pem, child.pid)
        finally:
            child.send_signal(signal.SIGTERM)
            child.wait(timeout=30)
    report(args, result)


def load(args: argparse.Namespace, port: int, ca_pem: bytes, server_pid: int) -> dict[str, Any]:
    credentials = grpc.ssl_channel_credentials(ca_pem)
    channels = [
        grpc.secure_channel(
            f"127.0.0.1:{port}",
            credentials,
            options=[
                ("grpc.ssl_target_name_override", SERVICE_DNS),
                ("grpc.use_local_subchannel_pool", 1),
            ],  # one connection per channel
        )  # fmt: skip
        for _ in range(args.channels)
    ]
    for channel in channels:
        grpc.channel_ready_future(channel).result(timeout=30)
    stubs = [pb_grpc.ExternalScalerStub(channel) for channel in channels]
    requests = [
        pb.GetMetricsRequest(
            scaledObjectRef=pb.ScaledObjectRef(
                name=f"{name}-so", namespace=ns, scalerMetadata={"workload": f"{ns}/{name}"}
            ),
            metricName="llm_desired_replicas",
        )
        for ns, name in workload_names(args.workloads)
    ]
    now = time.perf_counter_ns()
    start_at = now + int(WARMUP_S * 1e9)
    end_at = start_at + int(args.duration * 1e9)
    workers = [
        Worker(stubs[t % len(stubs)], requests, t * 97, start_at, end_at)
        for t in range(args.threads)
    ]
    for w in workers:
        w.start()
    while time.perf_counter_ns() < start_at:
        time.sleep(0.01)
    cpu0, client0, wall0 = cpu_seconds(server_pid), time.process_time(), time.perf_counter()
    for w in workers:
        w.join()
    cpu1, client1, wall1 = cpu_seconds(server_pid), time.process_time(), time.perf_counter()
    for channel in channels:
        channel.close()

    latencies = np.array([x for w in workers for x in w.latencies_ns], dtype=np.float64) / 1e6
    errors: Counter[str] = Counter()
    for w in workers:
        errors.update(w.errors)
    calls = int(latencies.size) + sum(errors.values())
    window = wall1 - wall0
    p50, p90, p99, p999 = (float(np.percentile(latencies, q)) for q in (50, 90, 99, 99.9))
    return {
        "calls": calls,
        "window_s": round(window, 2),
        "calls_per_s": round(calls / window, 1),
        "p50_ms": round(p50, 3),
        "p90_ms": round(p90, 3),
        "p99_ms": round(p99, 3),
        "p99_9_ms": round(p999, 3),
        "max_ms": round(float(latencies.max()), 3),
        "errors": dict(errors),
        "server_cpu_s": round(cpu1 - cpu0, 2),
        "server_cpu_ms_per_1k_calls": round(1000 * (cpu1 - cpu0) / max(calls, 1) * 1000, 1),
        "client_cpu_s": round(client1 - client0, 2),
    }


def report(args: argparse.Namespace, result: dict[str, Any]) -> None:
    goal_met = (
        result["calls_per_s"] >= GOAL_CALLS_PER_S
        and result["p99_ms"] <= GOAL_P99_MS
        and not result["errors"]
    )
    payload = {
        "benchmark": "grpc_load",
        "rpc": "GetMetrics",
        "tls": True,
        "workloads": args.workloads,
        "threads": args.threads,
        "channels": args.channels,
        "server_max_workers": args.max_workers,
        "duration_s": args.duration,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "grpcio": grpc.__version__,
        },  # fmt: skip
        "goal": {"calls_per_s": GOAL_CALLS_PER_S, "p99_ms": GOAL_P99_MS, "errors": 0},
        "goal_met": goal_met,
        **result,
    }
    errors = ", ".join(f"{k} {v}" for k, v in result["errors"].items()) or "0"
    rows = [
        ("sustained calls/s", f"{result['calls_per_s']:.0f}", f">= {GOAL_CALLS_PER_S:.0f}"),
        ("p50 latency (ms)", f"{result['p50_ms']:.2f}", ""),
        ("p90 latency (ms)", f"{result['p90_ms']:.2f}", ""),
        ("p99 latency (ms)", f"{result['p99_ms']:.2f}", f"<= {GOAL_P99_MS:.0f}"),
        ("p99.9 latency (ms)", f"{result['p99_9_ms']:.2f}", ""),
        ("errors", errors, "0"),
        ("calls", f"{result['calls']}", ""),
        ("server CPU s (window)", f"{result['server_cpu_s']:.1f}", ""),
        ("server CPU ms / 1k calls", f"{result['server_cpu_ms_per_1k_calls']:.0f}", ""),
        ("load-generator CPU s", f"{result['client_cpu_s']:.1f}", ""),
    ]
    markdown = "\n".join(
        [
            f"GetMetrics over TLS, {args.workloads} workloads, {args.threads} client threads on "
            f"{args.channels} channels, {result['window_s']:.0f} s, {os.cpu_count()} CPUs "
            f"(load generator on the same machine); goal met: {'yes' if goal_met else 'no'}",
            "",
            "| figure | value | goal |",
            "| --- | ---: | --- |",
            *(f"| {a} | {b} | {c} |" for a, b, c in rows),
        ]
    )
    emit("grpc_load", payload, markdown)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0, help="measured seconds")
    parser.add_argument("--workloads", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=4, help="client threads (closed loop)")
    parser.add_argument("--channels", type=int, default=2, help="TLS connections")
    parser.add_argument("--max-workers", type=int, default=16, help="server thread pool")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cert", help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args)
    else:
        run(args)


if __name__ == "__main__":
    main()

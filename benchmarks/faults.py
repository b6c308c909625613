"""Fault matrix: does any fault make ``serve`` publish a lower replica count, and how fast does
it recover?

The live stack of tests/test_prometheus_integration.py, with two workloads: two emulated vLLM
fleets at a steady rate (``llm`` and ``chat``), the Debian ``prometheus`` scraping them every
second, and ``serve`` (1 s ticks, 5 s rate window, its own TLS certificate) reading Prometheus
through a fault proxy in this process. A poller reads every published value five times a second
from the three ways out: ``/v1/workloads/{ns}/{name}``, the External Metrics API and KEDA's
``GetMetrics`` (gRPC over TLS).

For each fault: wait until both workloads are fresh and steady, take each one's published
desired count as its baseline, inject the fault for ``--fault-s`` seconds, lift it, and watch
until both are fresh again (winner neither a hold nor the incomplete-window guard) plus 10 s.
``lower`` counts published values below the baseline (the lowest value each workload published
over the 10 s before the fault) during that time; ``recovery_s`` is from
lifting the fault to the first fresh answer of both workloads. A ``control`` row does nothing,
to show what a steady fleet publishes without a fault.

    .venv/bin/python benchmarks/faults.py [--fault-s 10] [--only kill,slow]

Needs the Debian ``prometheus`` binary. Prints JSON and a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import requests
import urllib3
from _common import emit
from aiohttp import ClientError, ClientSession, web

from external_metrics.keda import externalscaler_pb2 as pb
from external_metrics.keda import externalscaler_pb2_grpc as pb_grpc
from external_metrics.self_signed import self_signed_pair
from tests.test_prometheus_integration import Proc, cli, free_port, step_trace

WORKLOADS = {"llm": 9.0, "chat": 15.0}  # steady requests per second of each fleet
METRIC = "llm_desired_replicas"


# -- the fault proxy between serve and Prometheus ----------------------------------------------


class FaultProxy:
    """Forwards Prometheus' HTTP API, or answers slowly, with garbage, or with rewritten values."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.mode = "pass"
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._ready = threading.Event()

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(runner.setup())
        self._loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        mode = self.mode
        if mode == "slow":
            await asyncio.sleep(3.0)
        if mode == "garbage":
            return web.Response(text="<html>upstream proxy error</html>", content_type="text/html")
        try:
            body = await request.read()
            async with ClientSession() as s:
                async with s.request(
                    request.method,
                    self.upstream + request.path_qs,
                    data=body,
                    headers={"Content-Type": request.headers.get("Content-Type", "")},
                ) as r:
                    payload = await r.read()
                    status = r.status
        except (OSError, ClientError):  # Prometheus is down: what a load balancer would say
            return web.Response(status=502, text="bad gateway")
        if mode in ("nan", "inf", "negative") and status == 200:
            payload = _rewrite(payload, mode)
        return web.Response(body=payload, status=status, content_type="application/json")


def _rewrite(payload: bytes, mode: str) -> bytes:
    doc = json.loads(payload)

    def bad(value: str) -> str:
        if mode == "nan":
            return "NaN"
        if mode == "inf":
            return "+Inf"
        return str(-abs(float(value)) - 1.0)

    for r in doc.get("data", {}).get("result", []):
        if "value" in r:
            r["value"][1] = bad(r["value"][1])
        for pair in r.get("values", []):
            pair[1] = bad(pair[1])
    return json.dumps(doc).encode()


# -- reading what is published -------------------------------------------------------------


@dataclass
class Reading:
    t: float
    source: str
    workload: str
    value: float | None
    fresh: bool
    winner: str = ""


@dataclass
class Poller:
    https: str
    grpc_port: int
    cert: Path
    readings: list[Reading] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        session = requests.Session()
        session.verify = False  # our own self-signed certificate; gRPC below checks it
        session.trust_env = False  # else a CA bundle from the environment overrides verify
        creds = grpc.ssl_channel_credentials(root_certificates=self.cert.read_bytes())
        channel = grpc.secure_channel(f"127.0.0.1:{self.grpc_port}", creds)
        stub = pb_grpc.ExternalScalerStub(channel)
        while not self.stop.is_set():
            for name in WORKLOADS:
                self.readings.extend(self._read(session, stub, name))
            time.sleep(0.2)

    def _read(self, session: requests.Session, stub: Any, name: str) -> list[Reading]:
        now = time.monotonic()
        out = []
        try:
            r = session.get(f"{self.https}/v1/workloads/default/{name}", timeout=2)
            rec = r.json().get("recommendation") or {} if r.status_code == 200 else {}
            fresh = r.status_code == 200 and rec.get("winner") not in (None, "hold")
            out.append(Reading(now, "v1", name, rec.get("desired_replicas") if fresh else None,
                               fresh, str(rec.get("winner", ""))))  # fmt: skip
        except (requests.RequestException, ValueError):
            out.append(Reading(now, "v1", name, None, False))
        try:
            url = (f"{self.https}/apis/external.metrics.k8s.io/v1beta1/namespaces/default/"
                   f"{METRIC}?labelSelector=workload%3D{name}")  # fmt: skip
            r = session.get(url, timeout=2)
            items = r.json().get("items", []) if r.status_code == 200 else []
            value = _quantity(items[0]["value"]) if items else None
            out.append(Reading(now, "external-metrics", name, value, value is not None))
        except (requests.RequestException, ValueError, KeyError):
            out.append(Reading(now, "external-metrics", name, None, False))
        try:
            ref = pb.ScaledObjectRef(name=name, namespace="default",
                                     scalerMetadata={"workload": f"default/{name}"})  # fmt: skip
            resp = stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=ref, metricName=METRIC),
                                   timeout=2)  # fmt: skip
            value = resp.metricValues[0].metricValueFloat
            out.append(Reading(now, "keda", name, value, True))
        except grpc.RpcError:
            out.append(Reading(now, "keda", name, None, False))
        return out


def _quantity(text: str) -> float:
    if text.endswith("m"):
        return float(text[:-1]) / 1000.0
    return float(text)


# -- the stack -----------------------------------------------------------------------------


class Stack:
    def __init__(self, tmp: Path, prometheus_binary: str) -> None:
        self.tmp = tmp
        self.emulators: dict[str, Proc] = {}
        targets = []
        for name, rps in WORKLOADS.items():
            trace = tmp / f"{name}.csv"
            step_trace(trace, low_rps=rps, high_rps=rps, step_at=0.0, end=3000.0)
            port = free_port()
            targets.append(f"'127.0.0.1:{port}'")
            self.emulators[name] = Proc(
                f"emulate-{name}",
                cli(
                    "emulate",
                    "--trace",
                    str(trace),
                    "--replicas",
                    "6",
                    "--port",
                    str(port),
                    "--workload",
                    f"default/{name}",
                ),  # fmt: skip
                tmp / f"emulate-{name}.log",
            )
        prom_port = free_port()
        (tmp / "prometheus.yml").write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: fleets\n    scrape_interval: 1s\n"
            f"    static_configs:\n      - targets: [{', '.join(targets)}]\n"
        )
        self.prometheus = Proc(
            "prometheus",
            [prometheus_binary, f"--config.file={tmp / 'prometheus.yml'}",
             f"--storage.tsdb.path={tmp / 'tsdb'}", f"--web.listen-address=127.0.0.1:{prom_port}"],
            tmp / "prometheus.log",
        )  # fmt: skip
        self.proxy = FaultProxy(f"http://127.0.0.1:{prom_port}")
        cert, key = self_signed_pair()
        self.cert, keyfile = tmp / "tls.crt", tmp / "tls.key"
        self.cert.write_bytes(cert)
        keyfile.write_bytes(key)
        self.https_port, self.grpc_port = free_port(), free_port()
        workloads = "".join(
            f"  - namespace: default\n    name: {n}\n    engine: vllm\n"
            f"    selector: {{app: {n}}}\n    max_replicas: 20\n"
            for n in WORKLOADS
        )
        (tmp / "serve.yaml").write_text(
            f"service:\n  prometheus_url: http://127.0.0.1:{self.proxy.port}\n  tick_s: 1\n"
            "  rate_window: 5s\n  scrape_interval_s: 1\n"
            f"  ports: {{https: {self.https_port}, metrics: {free_port()}, "
            f"grpc: {self.grpc_port}}}\n"
            f"  tls_cert_file: {self.cert}\n  tls_key_file: {keyfile}\n"
            f"workloads:\n{workloads}"
        )
        self.serve = self._serve()

    def _serve(self, backfill: str = "0s") -> Proc:
        return Proc(
            "serve",
            cli(
                "serve",
                "--config",
                str(self.tmp / "serve.yaml"),
                "--host",
                "127.0.0.1",
                "--no-kubernetes",
                "--insecure-skip-auth",
                "--backfill",
                backfill,
            ),  # fmt: skip
            self.tmp / "serve.log",
        )

    def start(self) -> None:
        for e in self.emulators.values():
            e.start()
        self.prometheus.start()
        self.proxy.start()
        self.serve.start()

    def restart_serve(self) -> None:
        self.serve.stop(signal.SIGKILL)
        self.serve = self._serve(backfill="2m")
        self.serve.start()

    def stop(self) -> None:
        for p in [self.serve, self.prometheus, *self.emulators.values()]:
            if p.alive():
                p.stop(signal.SIGKILL)


# -- the matrix ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    name: str
    start: Callable[[Stack], object]
    end: Callable[[Stack], object]


def _mode(mode: str) -> Callable[[Stack], None]:
    def set_mode(stack: Stack) -> None:
        stack.proxy.mode = mode

    return set_mode


FAULTS = [
    Fault("control (no fault)", lambda s: None, lambda s: None),
    Fault(
        "prometheus killed",
        lambda s: s.prometheus.stop(signal.SIGKILL),
        lambda s: s.prometheus.start(),
    ),  # fmt: skip
    Fault("prometheus slow (3 s)", _mode("slow"), _mode("pass")),
    Fault("garbage answers", _mode("garbage"), _mode("pass")),
    Fault("NaN samples", _mode("nan"), _mode("pass")),
    Fault("+Inf samples", _mode("inf"), _mode("pass")),
    Fault("negative samples", _mode("negative"), _mode("pass")),
    Fault(
        "one workload's targets gone",
        lambda s: s.emulators["chat"].stop(signal.SIGKILL),
        lambda s: s.emulators["chat"].start(),
    ),  # fmt: skip
    Fault(
        "serve restarted (SIGKILL, 2m backfill)",
        lambda s: s.serve.stop(signal.SIGKILL),
        lambda s: s.restart_serve(),
    ),  # fmt: skip
]


def steady(poller: Poller, since: float) -> dict[str, float] | None:
    """Each workload's published desired count if every source served it fresh and unguarded
    over the last 3 s (and the same value); otherwise None."""
    recent = [r for r in poller.readings if r.t >= since and r.t >= time.monotonic() - 3.0]
    out = {}
    for name in WORKLOADS:
        mine = [r for r in recent if r.workload == name]
        if not mine or not all(r.fresh for r in mine):
            return None
        if any(r.winner == "incomplete-window" for r in mine if r.source == "v1"):
            return None
        values = {
            round(float(r.value), 3) for r in mine if r.source == "v1" and r.value is not None
        }
        if len(values) != 1:
            return None
        out[name] = values.pop()
    return out


def run_fault(stack: Stack, poller: Poller, fault: Fault, fault_s: float) -> dict[str, Any]:
    began = time.monotonic()
    baseline = None
    while baseline is None:
        if time.monotonic() - began > 120:
            return {"fault": fault.name, "error": "never steady before the fault"}
        time.sleep(0.5)
        baseline = steady(poller, began)
    # the baseline: the lowest value each workload published over 10 s of steady data
    before = time.monotonic()
    time.sleep(10.0)
    pre = [r for r in poller.readings if r.t >= before]
    if not all(r.fresh for r in pre):
        return {"fault": fault.name, "error": "data went stale before the fault"}
    baseline = {n: min(float(r.value) for r in pre if r.workload == n and r.value is not None)
                for n in WORKLOADS}  # fmt: skip
    start = time.monotonic()
    fault.start(stack)
    time.sleep(fault_s)
    fault.end(stack)
    lifted = time.monotonic()
    recovered = None
    while time.monotonic() - lifted < 120:
        time.sleep(0.2)
        if recovered is None and steady(poller, lifted + 0.5) is not None:
            recovered = time.monotonic() - 3.0  # steady() looks back 3 s
        if recovered is not None and time.monotonic() > recovered + 13.0:
            break
    window = [r for r in poller.readings if start <= r.t <= time.monotonic()]
    lower = [r for r in window if r.value is not None and r.value < baseline[r.workload] - 1e-9]
    unavailable = [r for r in window if not r.fresh]
    return {
        "fault": fault.name,
        "baseline": baseline,
        "readings": len(window),
        "lower": len(lower),
        "lower_examples": [
            f"{r.source} {r.workload}={r.value:g} at {r.t - lifted:+.1f}s after the fault ended"
            for r in lower[:6]
        ],
        "unavailable_readings": len(unavailable),
        "guarded_readings": sum(1 for r in window if r.winner == "incomplete-window"),
        "recovery_s": None if recovered is None else round(max(0.0, recovered - lifted), 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fault-s", type=float, default=10.0, help="how long each fault lasts")
    parser.add_argument("--only", default="", help="comma-separated fault name prefixes")
    args = parser.parse_args()
    binary = shutil.which("prometheus")
    if binary is None:
        print("faults: needs the prometheus binary (apt-get install prometheus)", file=sys.stderr)
        return 2
    urllib3.disable_warnings()
    logging.getLogger("aiohttp").setLevel(logging.CRITICAL)  # the proxy's own client errors
    faults = [f for f in FAULTS if not args.only or
              any(f.name.startswith(p.strip()) for p in args.only.split(","))]  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack(Path(tmp), binary)
        poller = Poller(f"https://127.0.0.1:{stack.https_port}", stack.grpc_port, stack.cert)
        try:
            stack.start()
            poller.start()
            for fault in faults:
                print(f"faults: {fault.name} ...", file=sys.stderr, flush=True)
                rows.append(run_fault(stack, poller, fault, args.fault_s))
                print(f"faults:   {rows[-1]}", file=sys.stderr, flush=True)
        finally:
            poller.stop.set()
            stack.stop()
    lines = [
        f"Fault matrix ({args.fault_s:g} s faults; two steady fleets; /v1, External Metrics "
        "API and KEDA polled 5x a second)\n",
        "| fault | baseline (llm, chat) | readings | lower values published | unavailable "
        "| guarded | recovery s |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['fault']} | {r['error']} | | | | | |")
            continue
        b = r["baseline"]
        rec = "-" if r["recovery_s"] is None else f"{r['recovery_s']:.1f}"
        lines.append(
            f"| {r['fault']} | {b['llm']:g}, {b['chat']:g} | {r['readings']} | {r['lower']} | "
            f"{r['unavailable_readings']} | {r['guarded_readings']} | {rec} |"
        )
    emit("faults", {"fault_s": args.fault_s, "rows": rows}, "\n".join(lines))
    return 0 if all(r.get("lower", 1) == 0 for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())

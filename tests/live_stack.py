"""Processes and probes shared by the whole-loop tests (emulator -> real Prometheus -> serve).

Not a test module: ``test_prometheus_integration``, ``test_engines_whole_loop`` and
``test_gateway_integration`` start the same three processes and read the same endpoints.
Everything waits on conditions with deadlines; nothing asserts a duration.
"""

from __future__ import annotations

import json
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

WORKLOAD = {"namespace": "default", "workload": "llm"}


def wait_for(what: str, check: Callable[[], object], timeout: float = 90.0) -> object:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except (OSError, ValueError) as exc:  # not up yet
            last = exc
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def step_trace(path: Path, low_rps: float, high_rps: float, step_at: float, end: float) -> None:
    """An Azure-format trace: ``low_rps`` until ``step_at``, then ``high_rps`` (1000/100 tokens)."""
    lines = ["TIMESTAMP,ContextTokens,GeneratedTokens"]
    t = 0.0
    while t < end:
        rate = low_rps if t < step_at else high_rps
        whole = int(t)
        stamp = f"2023-11-16 18:{whole // 60:02d}:{whole % 60:02d}.{int((t % 1) * 1e6):06d}0"
        lines.append(f"{stamp},1000,100")
        t += 1.0 / rate
    path.write_text("\n".join(lines) + "\n")


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "autoscaler.cli", *args]


class Proc:
    def __init__(self, name: str, argv: list[str], log: Path) -> None:
        self.name, self.argv, self.log = name, argv, log
        self.p: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:  # the child keeps its own descriptor
            self.p = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.p is not None
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        return int(self.p.returncode)

    def alive(self) -> bool:
        return self.p is not None and self.p.poll() is None

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


def metric(url: str, name: str, labels: dict[str, str]) -> float | None:
    """One sample of a Prometheus text exposition (our /metrics), or None."""
    body = urllib.request.urlopen(url, timeout=5).read().decode()
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in body.splitlines():
        if line.startswith(name + "{"):
            lab, _, value = line.rpartition(" ")
            got = ",".join(sorted(lab[len(name) + 1 : -1].split(",")))
            if got == want:
                return float(value)
    return None


def prometheus_proc(binary: str, tmp_path: Path, port: int) -> Proc:
    """The Debian ``prometheus`` on 127.0.0.1 with ``tmp_path/prometheus.yml`` and its own TSDB."""
    return Proc(
        "prometheus",
        [
            binary,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        tmp_path / "prometheus.log",
    )


def serve_proc(tmp_path: Path) -> Proc:
    """``serve`` with ``tmp_path/serve.yaml``, no cluster, auth off, no backfill."""
    return Proc(
        "serve",
        cli("serve", "--config", str(tmp_path / "serve.yaml"), "--host", "127.0.0.1",
            "--no-kubernetes", "--insecure-skip-auth", "--backfill", "0s"),
        tmp_path / "serve.log",
    )  # fmt: skip


def api_get(url: str) -> tuple[int, Any]:
    """``(HTTP status, JSON body or None)`` of a GET on serve's HTTPS port."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # serve made itself a self-signed certificate
    try:
        with urllib.request.urlopen(url, timeout=5, context=ctx) as r:
            return int(r.status), json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), None


def api_status(url: str) -> int:
    return api_get(url)[0]


def api_json(url: str) -> dict[str, Any] | None:
    status, body = api_get(url)
    return body if status == 200 and isinstance(body, dict) else None


@contextmanager
def running(procs: Sequence[Proc]) -> Iterator[None]:
    """Start ``procs`` in order; on the way out kill whatever still runs (last started first)
    and print every log, so a failing test shows what each process said."""
    try:
        for p in procs:
            p.start()
        yield
    finally:
        for p in reversed(procs):
            if p.alive():
                p.stop(signal.SIGKILL)
        for p in procs:
            print(f"---- {p.name} log ----\n{p.tail()}")


@contextmanager
def prometheus_scraping(
    binary: str, tmp_path: Path, exposition: str | Callable[[], str]
) -> Iterator[str]:
    """The real Prometheus (1 s scrape, ``honor_labels``) scraping one exposition served on
    127.0.0.1: the URL of Prometheus. For PromQL that only the real engine can check (joins
    across exporters, kube-state-metrics' series). A callable ``exposition`` is called on every
    scrape (counters that grow, series that go away)."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from tests.ports import free_ports

    def render() -> bytes:
        return (exposition() if callable(exposition) else exposition).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            body = render()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    exporter = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=exporter.serve_forever, daemon=True).start()
    (port,) = free_ports(1)
    (tmp_path / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n"
        "scrape_configs:\n  - job_name: static\n    honor_labels: true\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{exporter.server_port}']\n"
    )
    try:
        with running([prometheus_proc(binary, tmp_path, port)]):
            yield f"http://127.0.0.1:{port}"
    finally:
        exporter.shutdown()
        exporter.server_close()

"""``llm-autoscaler serve``: bad input is one line and exit 2, before anything listens."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ports import free_ports


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "autoscaler.cli", "serve", *argv],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert len(errors) == 1, proc.stderr
    return errors[0]


def _config(tmp_path: Path, metrics_port: int | None = None) -> Path:
    path = tmp_path / "serve.yaml"
    https, grpc, metrics = free_ports(3)
    metrics = metrics_port or metrics
    path.write_text(
        "service:\n  prometheus_url: http://127.0.0.1:1\n"
        f"  ports: {{https: {https}, metrics: {metrics}, grpc: {grpc}}}\n"
        "workloads:\n  - {namespace: llm, name: a, engine: vllm, selector: {app: a}}\n"
    )
    return path


def test_a_missing_config_file_is_named(tmp_path):
    line = _error_line(_run("--config", str(tmp_path / "nope.yaml")))
    assert "nope.yaml" in line


def test_a_wrong_field_is_named(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("workloads:\n  - {namespace: llm, name: a, engine: vlm, selector: {a: b}}\n")
    proc = _run("--config", str(path))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "workloads[0].engine" in proc.stderr and "vlm" in proc.stderr


def test_no_kubernetes_without_skipping_auth_is_refused(tmp_path):
    line = _error_line(_run("--config", str(_config(tmp_path)), "--no-kubernetes"))
    assert "--insecure-skip-auth" in line


def test_a_bad_backfill_duration_is_named(tmp_path):
    line = _error_line(_run("--config", str(_config(tmp_path)), "--backfill", "an hour"))
    assert "--backfill" in line


def test_no_cluster_config_says_what_to_give(tmp_path):
    line = _error_line(_run("--config", str(_config(tmp_path))))
    assert "kubeconfig" in line


@pytest.mark.parametrize("flag", ["--kube-api", "--kubeconfig"])
def test_kubernetes_flags_are_mutually_exclusive(tmp_path, flag):
    proc = _run("--config", str(_config(tmp_path)), flag, "x", "--no-kubernetes")
    assert proc.returncode == 2 and "not allowed with" in proc.stderr


def test_a_port_in_use_is_a_clear_error(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = _run("--config", str(_config(tmp_path, port)), "--host", "127.0.0.1",
                    "--no-kubernetes", "--insecure-skip-auth", "--backfill", "0s")  # fmt: skip
    line = _error_line(proc)
    assert f"127.0.0.1:{port}" in line


def test_kube_state_metrics_as_the_replica_source_runs_without_a_cluster(tmp_path):
    path = _config(tmp_path)
    path.write_text(
        path.read_text().replace("service:\n", "service:\n  replica_source: kube-state-metrics\n")
    )
    proc = _run("--config", str(path), "--no-kubernetes", "--insecure-skip-auth",
                "--backfill", "0s", "--duration", "3")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "replica states from kube-state-metrics in Prometheus (10 more queries" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_api_processes_serve_the_api_and_stop_with_serve(tmp_path):
    """``service.api_processes: 2``: the HTTPS API answers from processes of its own, and
    SIGTERM to ``serve`` stops them too (no orphan keeps the port)."""
    import signal
    import time

    from tests.live_stack import api_get, wait_for

    path = _config(tmp_path)
    path.write_text(path.read_text().replace("service:\n", "service:\n  api_processes: 2\n"))
    https = int(path.read_text().split("https: ")[1].split(",")[0])
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "autoscaler.cli", "serve", "--config", str(path),
             "--host", "127.0.0.1", "--no-kubernetes", "--insecure-skip-auth",
             "--backfill", "0s"],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_for(
            "the workload list from an API process",
            lambda: api_get(f"https://127.0.0.1:{https}/v1/workloads")[0] == 200,
        )
        status, body = api_get(f"https://127.0.0.1:{https}/v1/workloads/llm/a")
        assert status == 503, body  # Prometheus is unreachable: no recommendation, fail static
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    text = log.read_text()
    assert code == 0, text
    assert "(2 API processes)" in text
    assert "Traceback" not in text
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", https), timeout=1).close()
        except OSError:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"port {https} still answers after serve stopped:\n{text}")

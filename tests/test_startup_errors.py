"""Every start-up error is one line and exit code 2, never a traceback: TLS files that are
missing, unreadable, not PEM or not a pair, a port already in use, a host that does not
resolve. ``validate-config`` finds the file problems offline, before a pod ever starts."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from external_metrics.self_signed import self_signed_pair
from tests.ports import free_ports


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "autoscaler.cli", *args],
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def one_line_error(done: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("llm-autoscaler: error: "), done.stderr
    for needle in needles:
        assert needle in last, last
    return last


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = self_signed_pair()
    (tmp_path / "tls.crt").write_bytes(cert)
    (tmp_path / "tls.key").write_bytes(key)
    return tmp_path / "tls.crt", tmp_path / "tls.key"


def write_config(tmp_path: Path, cert: Path, key: Path, grpc_port: int | None = None) -> Path:
    https, metrics, grpc = free_ports(3)
    grpc = grpc_port or grpc
    path = tmp_path / "serve.yaml"
    path.write_text(
        "service:\n  prometheus_url: http://127.0.0.1:9\n  tick_s: 1\n"
        f"  ports: {{https: {https}, metrics: {metrics}, grpc: {grpc}}}\n"
        f"  tls_cert_file: {cert}\n  tls_key_file: {key}\n"
        "workloads:\n  - namespace: default\n    name: llm\n    engine: vllm\n"
        "    selector: {app: llm}\n"
    )
    return path


def serve(config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return cli("serve", "--config", str(config), "--host", "127.0.0.1", "--no-kubernetes",
               "--insecure-skip-auth", "--backfill", "0s", "--duration", "20", *extra)  # fmt: skip


def garbage(path: Path) -> None:
    path.write_text("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")


@pytest.fixture(params=["missing cert", "missing key", "garbage cert", "garbage key",
                        "unreadable key", "key of another cert"])  # fmt: skip
def broken(request, pair, tmp_path) -> Iterator[tuple[Path, Path, tuple[str, ...]]]:
    cert, key = pair
    case = request.param
    if case == "missing cert":
        cert.unlink()
        yield cert, key, ("service.tls_cert_file", str(cert), "does not exist")
    elif case == "missing key":
        key.unlink()
        yield cert, key, ("service.tls_key_file", str(key), "does not exist")
    elif case == "garbage cert":
        garbage(cert)
        yield cert, key, ("service.tls_cert_file", "not a PEM certificate")
    elif case == "garbage key":
        key.write_text("hello\n")
        yield cert, key, ("service.tls_key_file", "not an unencrypted PEM private key")
    elif case == "unreadable key":
        key.unlink()
        key.mkdir()  # reading a directory fails even as root
        yield cert, key, ("service.tls_key_file", "cannot read")
    else:
        key.write_bytes(self_signed_pair()[1])
        yield cert, key, ("service.tls_key_file", "is not the key of the certificate")


def test_validate_config_finds_bad_tls_files_offline(tmp_path, broken):
    cert, key, needles = broken
    config = write_config(tmp_path, cert, key)
    one_line_error(cli("validate-config", str(config)), str(config), *needles)
    assert cli("validate-config", "--skip-files", str(config)).returncode == 0


def test_serve_refuses_bad_tls_files_in_one_line(tmp_path, broken):
    cert, key, needles = broken
    one_line_error(serve(write_config(tmp_path, cert, key)), *needles)


def test_validate_config_accepts_a_good_pair(tmp_path, pair):
    done = cli("validate-config", str(write_config(tmp_path, *pair)))
    assert done.returncode == 0, done.stderr


def test_serve_with_its_grpc_port_in_use_is_one_line(tmp_path, pair):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = int(taken.getsockname()[1])
        done = serve(write_config(tmp_path, *pair, grpc_port=port))
    one_line_error(done, "serve cannot start", str(port))


def test_serve_on_a_host_that_does_not_resolve_is_one_line(tmp_path, pair):
    config = write_config(tmp_path, *pair)
    done = cli("serve", "--config", str(config), "--host", "no-such-host.invalid",
               "--no-kubernetes", "--insecure-skip-auth", "--backfill", "0s")  # fmt: skip
    one_line_error(done, "no-such-host.invalid")

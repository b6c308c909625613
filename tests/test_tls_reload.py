"""A renewed serving certificate takes effect without a restart: HTTPS (aiohttp) and gRPC (KEDA).

Two certificate authorities, each with a serving certificate for 127.0.0.1, are generated in the
test. The server starts with A's pair in its files; the files are then overwritten with B's, as
cert-manager renews a Secret. New connections must then present B (a client trusting only B
connects, one trusting only A does not). Real TLS over 127.0.0.1 throughout.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import ssl
from pathlib import Path

import grpc
import pytest
from aiohttp import web
from cryptography import x509

from autoscaler.live.store import RecommendationStore
from external_metrics.keda.server import create_grpc_server
from external_metrics.service import _site
from external_metrics.tls import CertificateFiles, server_ssl_context
from tests.external_metrics_support import Pki, make_pki


@pytest.fixture
def two(tmp_path: Path) -> tuple[Pki, Pki, Path, Path]:
    a, b = make_pki(tmp_path / "a"), make_pki(tmp_path / "b")
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    shutil.copy(a.server_cert, cert)
    shutil.copy(a.server_key, key)
    return a, b, cert, key


def renew(pki: Pki, cert: Path, key: Path) -> None:
    """Replace both files at once, as the kubelet's atomic Secret update does."""
    for src, dst in ((pki.server_cert, cert), (pki.server_key, key)):
        tmp = dst.with_suffix(".new")
        shutil.copy(src, tmp)
        os.replace(tmp, dst)


def served_serial(port: int, ca: Path) -> str | None:
    """The served certificate's serial number as seen by a client trusting only ``ca``; None
    when the handshake fails."""
    ctx = ssl.create_default_context(cafile=str(ca))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                der = tls.getpeercert(binary_form=True)
    except ssl.SSLError:
        return None
    assert der is not None
    return str(x509.load_der_x509_certificate(der).serial_number)


def serial(path: Path) -> str:
    return str(x509.load_pem_x509_certificate(path.read_bytes()).serial_number)


def test_certificate_files_report_a_changed_matching_pair_once(two):
    a, b, cert, key = two
    files = CertificateFiles(cert, key)
    assert files.changed_pair() is None  # unchanged since construction
    shutil.copy(b.server_cert, cert)  # half-way: B's certificate with A's key
    os.utime(cert, ns=(1, 1))
    assert files.changed_pair() is None  # does not match: skipped, the old pair stays
    renew(b, cert, key)
    pair = files.changed_pair()
    assert pair is not None and pair[0] == b.server_cert.read_bytes()
    assert files.changed_pair() is None  # reported once


@pytest.mark.asyncio
async def test_https_serves_the_renewed_certificate_to_new_connections(two):
    a, b, cert, key = two
    ctx = server_ssl_context(cert, key)
    files = CertificateFiles(cert, key)

    async def ok(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", ok)
    runner, port = await _site(app, "127.0.0.1", 0, ctx, "test")
    try:
        first = await asyncio.to_thread(served_serial, port, a.server_ca)
        assert first == serial(a.server_cert)
        assert files.reload_into(ctx) is False  # nothing changed yet
        renew(b, cert, key)
        assert files.reload_into(ctx) is True
        assert await asyncio.to_thread(served_serial, port, b.server_ca) == serial(b.server_cert)
        assert await asyncio.to_thread(served_serial, port, a.server_ca) is None
    finally:
        await runner.cleanup()


def _ready(port: int, ca: Path) -> bool:
    creds = grpc.ssl_channel_credentials(ca.read_bytes())
    with grpc.secure_channel(f"127.0.0.1:{port}", creds) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=5)
        except grpc.FutureTimeoutError:
            return False
        return True


def test_grpc_serves_the_renewed_certificate_to_new_connections(two):
    a, b, cert, key = two
    server = create_grpc_server(
        RecommendationStore([], staleness_s=60.0, clock=lambda: 0.0),
        "127.0.0.1:0",
        tls=(cert.read_bytes(), key.read_bytes()),
        tls_files=CertificateFiles(cert, key),
    )
    server.start()
    try:
        assert _ready(server.port, a.server_ca)
        renew(b, cert, key)
        assert _ready(server.port, b.server_ca)
        assert not _ready(server.port, a.server_ca)
    finally:
        server.stop(None)

"""Test parts shared by tests/test_external_metrics_*.py: a PKI made in the test, a store with
a controllable clock, and the HTTPS app served on 127.0.0.1 (real TLS, ephemeral port)."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from autoscaler.core.recommendation import Candidate, PublishedMetric, Recommendation, hold
from autoscaler.core.signals import ReplicaCounts, SignalSnapshot
from autoscaler.live.store import RecommendationStore, WorkloadInfo
from external_metrics.app import start_https
from external_metrics.tls import server_ssl_context

DESIRED = "llm_desired_replicas"
LOAD = "llm_load_replicas"
FORECAST = "llm_forecast_load_replicas"
METRICS = (DESIRED, LOAD, FORECAST)
T0 = 1_760_000_000.0
"""A fixed wall-clock start (2025-10-09T08:53:20Z)."""

# --- PKI ----------------------------------------------------------------------------------------


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _ca(cn: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - datetime.timedelta(hours=1))
        .not_valid_after(_now() + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )  # fmt: skip
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _leaf(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    cn: str,
    *,
    server_hosts: tuple[str, ...] = (),
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    ca_cert, ca_key = ca
    key = _key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - datetime.timedelta(hours=1))
        .not_valid_after(_now() + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if server_hosts:
        sans: list[x509.GeneralName] = []
        for host in server_hosts:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                sans.append(x509.DNSName(host))
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        usage = ExtendedKeyUsageOID.SERVER_AUTH
    else:
        usage = ExtendedKeyUsageOID.CLIENT_AUTH
    builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _write_pair(
    directory: Path, stem: str, pair: tuple[x509.Certificate, ec.EllipticCurvePrivateKey]
) -> tuple[Path, Path]:
    cert, key = pair
    cert_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
    cert_path.write_bytes(_pem(cert))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@dataclass(frozen=True)
class Pki:
    """A serving CA + cert for 127.0.0.1, a requestheader CA, and client certificates."""

    server_ca: Path
    server_cert: Path
    server_key: Path
    proxy_ca_pem: str
    front_proxy: tuple[Path, Path]
    """CN front-proxy-client, signed by the requestheader CA (what kube-apiserver presents)."""
    other_cn: tuple[Path, Path]
    """Signed by the requestheader CA, but CN "intruder" (not an allowed name)."""
    rogue: tuple[Path, Path]
    """CN front-proxy-client, signed by a CA nobody trusts."""

    def client_context(self, cert: tuple[Path, Path] | None = None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.server_ca))
        if cert is not None:
            ctx.load_cert_chain(str(cert[0]), str(cert[1]))
        return ctx

    def server_context(self, *, verify_clients: bool) -> ssl.SSLContext:
        return server_ssl_context(
            self.server_cert,
            self.server_key,
            client_ca_pem=self.proxy_ca_pem if verify_clients else None,
        )


def make_pki(directory: Path) -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    server_ca = _ca("test-serving-ca")
    proxy_ca = _ca("test-front-proxy-ca")
    rogue_ca = _ca("test-front-proxy-ca")  # same name, different key: must not be trusted
    (directory / "server-ca.crt").write_bytes(_pem(server_ca[0]))
    server_cert, server_key = _write_pair(
        directory,
        "server",
        _leaf(server_ca, "llm-autoscaler.ns.svc", server_hosts=("127.0.0.1", "localhost")),
    )
    return Pki(
        server_ca=directory / "server-ca.crt",
        server_cert=server_cert,
        server_key=server_key,
        proxy_ca_pem=_pem(proxy_ca[0]).decode(),
        front_proxy=_write_pair(directory, "front-proxy", _leaf(proxy_ca, "front-proxy-client")),
        other_cn=_write_pair(directory, "intruder", _leaf(proxy_ca, "intruder")),
        rogue=_write_pair(directory, "rogue", _leaf(rogue_ca, "front-proxy-client")),
    )


# --- store --------------------------------------------------------------------------------------


class Clock:
    """Wall-clock seconds that only move when a test says so."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def snapshot(key: str, ts: float) -> SignalSnapshot:
    return SignalSnapshot(
        workload=key,
        timestamp=ts,
        replicas=ReplicaCounts(spec=3, ready=3, starting=0, pending=0, terminating=0),
        request_rate=12.5,
        ttft_p90_s=0.42,
        waiting=1.0,
        kv_usage=0.55,
        per_replica_waiting=(0.0, 1.0, 0.0),
        gpu_memory_usage=0.6,
        gpu_memory_usage_max=0.7,
        per_replica_gpu_memory_usage=(0.5, 0.6, 0.7),
    )


def recommendation(
    key: str,
    ts: float,
    *,
    desired: int = 3,
    load: float = 2.5,
    forecast: float = 2.75,
    metrics: Mapping[str, float] | None = None,
) -> Recommendation:
    published = (
        metrics if metrics is not None else {DESIRED: desired, LOAD: load, FORECAST: forecast}
    )
    return Recommendation(
        workload=key,
        timestamp=ts,
        desired_replicas=desired,
        winner="forecast",
        candidates=(
            Candidate("forecast", forecast, "p99 demand over 240 s / learned capacity"),
            Candidate("latency", 2.0, "TTFT p90 0.42 s within 1.0 s"),
        ),
        metrics=tuple(PublishedMetric(n, v) for n, v in published.items()),
        fallbacks=("mean_output_tokens = seed mean output tokens",),
    )


def make_store(
    workloads: list[WorkloadInfo],
    clock: Clock,
    *,
    staleness_s: float = 60.0,
    metric_names: tuple[str, ...] = METRICS,
) -> RecommendationStore:
    return RecommendationStore(
        workloads, staleness_s=staleness_s, clock=clock, metric_names=metric_names
    )


def put_fresh(store: RecommendationStore, key: str, **kwargs: object) -> None:
    now = store.clock()
    store.put(recommendation(key, now, **kwargs), snapshot(key, now))  # type: ignore[arg-type]


def put_hold(store: RecommendationStore, key: str, why: str) -> None:
    store.put(hold(key, store.clock(), why))


# --- serving ------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def serving(app: web.Application, ctx: ssl.SSLContext) -> AsyncIterator[str]:
    """Serve ``app`` over TLS on 127.0.0.1 (ephemeral port); yields the base URL."""
    runner, port = await start_https(app, ctx, host="127.0.0.1", port=0)
    try:
        yield f"https://127.0.0.1:{port}"
    finally:
        await runner.cleanup()

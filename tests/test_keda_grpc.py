"""The KEDA external scaler over real gRPC: a grpcio server on 127.0.0.1:0, the generated stubs.

Every wait has a deadline on an event or a message, never a sleep, and nothing asserts a duration.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import queue
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from autoscaler.core.recommendation import PublishedMetric, Recommendation, hold
from autoscaler.live.store import RecommendationStore, WorkloadInfo
from external_metrics.keda import externalscaler_pb2 as pb
from external_metrics.keda import externalscaler_pb2_grpc as pb_grpc
from external_metrics.keda.errors import BindError
from external_metrics.keda.server import ScalerServer, TlsConfigError, create_grpc_server
from tests.ports import free_ports

WAIT_S = 10.0
"""Deadline for anything we wait on; a healthy run never gets near it."""
STALENESS_S = 45.0
WORKLOADS = [WorkloadInfo("prod", "llama"), WorkloadInfo("prod", "mistral"),
             WorkloadInfo("staging", "llama")]  # fmt: skip


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class CountingStore(RecommendationStore):
    """A real store that also counts live subscriptions, so tests can wait for unsubscribe."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.live = 0
        self.changed = threading.Condition()

    def subscribe(self, listener: Callable[[str], None]) -> Callable[[], None]:
        unsubscribe = super().subscribe(listener)
        with self.changed:
            self.live += 1
            self.changed.notify_all()

        def counted() -> None:
            unsubscribe()
            with self.changed:
                self.live -= 1
                self.changed.notify_all()

        return counted

    def wait_live(self, n: int) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: self.live == n, timeout=WAIT_S)


def recommendation(
    workload: str = "prod/llama",
    *,
    desired: int = 2,
    load: float | None = None,
    forecast: float | None = None,
    ts: float = 1000.0,
) -> Recommendation:
    metrics = [PublishedMetric("llm_desired_replicas", float(desired))]
    if load is not None:
        metrics.append(PublishedMetric("llm_load_replicas", load))
    if forecast is not None:
        metrics.append(PublishedMetric("llm_forecast_load_replicas", forecast))
    return Recommendation(workload, ts, desired, "forecast", metrics=tuple(metrics))


def ref(
    metadata: dict[str, str], namespace: str = "prod", name: str = "llama-so"
) -> pb.ScaledObjectRef:
    return pb.ScaledObjectRef(name=name, namespace=namespace, scalerMetadata=metadata)


LLAMA = {"workload": "prod/llama", "scalerAddress": "llm-autoscaler.llm-system.svc:9443"}


@dataclass
class Scaler:
    store: CountingStore
    clock: Clock
    server: ScalerServer
    stub: pb_grpc.ExternalScalerStub
    channel: grpc.Channel


@pytest.fixture
def make_scaler() -> Iterator[Callable[..., Scaler]]:
    made: list[Scaler] = []

    def make(*, keepalive_s: float = 3600.0, clock: Callable[[], float] | None = None) -> Scaler:
        fake = Clock()
        store = CountingStore(WORKLOADS, staleness_s=STALENESS_S, clock=clock or fake)
        server = create_grpc_server(store, "127.0.0.1:0", tls=None, keepalive_s=keepalive_s)
        server.start()
        channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
        scaler = Scaler(store, fake, server, pb_grpc.ExternalScalerStub(channel), channel)
        made.append(scaler)
        return scaler

    yield make
    for scaler in made:
        scaler.channel.close()
        scaler.server.stop(None).wait(WAIT_S)


@pytest.fixture
def scaler(make_scaler: Callable[..., Scaler]) -> Scaler:
    return make_scaler()


def details(err: Any) -> str:
    """The status message of a failed call (grpc's RpcError is also a grpc.Call)."""
    return str(err.details() or "")


def rpc_error(call: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value


# -- GetMetricSpec -------------------------------------------------------------------------------


def test_metric_spec_is_the_replica_unit_metric_with_target_one(scaler):
    spec = scaler.stub.GetMetricSpec(ref(LLAMA), timeout=WAIT_S)
    assert [(s.metricName, s.targetSize, s.targetSizeFloat) for s in spec.metricSpecs] == [
        ("llm_desired_replicas", 1, 1.0)
    ]
    forecast = ref({"name": "llama", "metric": "llm_forecast_load_replicas"})
    spec = scaler.stub.GetMetricSpec(forecast, timeout=WAIT_S)
    assert [s.metricName for s in spec.metricSpecs] == ["llm_forecast_load_replicas"]


def test_metric_spec_does_not_need_fresh_data_but_a_known_workload(scaler):
    # no recommendation yet: KEDA can still build the HPA
    assert scaler.stub.GetMetricSpec(ref(LLAMA), timeout=WAIT_S).metricSpecs[0].targetSizeFloat == 1
    err = rpc_error(
        lambda: scaler.stub.GetMetricSpec(ref({"workload": "prod/nope"}), timeout=WAIT_S)
    )
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert "workload prod/nope is not configured" in details(err)


# -- GetMetrics ----------------------------------------------------------------------------------


def test_get_metrics_serves_the_float_value_and_a_rounded_int(scaler):
    scaler.store.put(recommendation(desired=3, load=2.5, forecast=2.4))
    got = scaler.stub.GetMetrics(
        pb.GetMetricsRequest(scaledObjectRef=ref(LLAMA), metricName="llm_desired_replicas"),
        timeout=WAIT_S,
    )
    assert [(v.metricName, v.metricValue, v.metricValueFloat) for v in got.metricValues] == [
        ("llm_desired_replicas", 3, 3.0)
    ]
    for metric, as_int, as_float in (("llm_load_replicas", 3, 2.5),
                                     ("llm_forecast_load_replicas", 2, 2.4)):  # fmt: skip
        got = scaler.stub.GetMetrics(
            pb.GetMetricsRequest(scaledObjectRef=ref(LLAMA), metricName=metric), timeout=WAIT_S
        )
        assert got.metricValues[0].metricName == metric
        assert got.metricValues[0].metricValue == as_int
        assert got.metricValues[0].metricValueFloat == pytest.approx(as_float)


def test_get_metrics_without_a_name_uses_the_trigger_metric(scaler):
    scaler.store.put(recommendation(desired=4, load=3.2))
    meta = {"name": "llama", "metric": "llm_load_replicas"}
    got = scaler.stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=ref(meta)), timeout=WAIT_S)
    assert got.metricValues[0].metricName == "llm_load_replicas"
    assert got.metricValues[0].metricValueFloat == pytest.approx(3.2)


def test_default_namespace_is_the_scaled_objects(scaler):
    scaler.store.put(recommendation("staging/llama", desired=5))
    scaler.store.put(recommendation("prod/llama", desired=1))
    got = scaler.stub.GetMetrics(
        pb.GetMetricsRequest(scaledObjectRef=ref({"workload": "llama"}, namespace="staging")),
        timeout=WAIT_S,
    )
    assert got.metricValues[0].metricValueFloat == 5.0


@pytest.mark.parametrize(
    ("metadata", "words"),
    [
        ({"scalerAddress": "svc:9443"}, "does not name the workload"),
        ({"workload": "prod/llama", "name": "llama"}, "names the workload twice"),
        (
            {"workload": "Prod/llama"},
            "scalerMetadata.workload: 'Prod' is not a Kubernetes namespace",
        ),
        (
            {"workload": "prod/llama", "metric": "cpu"},
            "scalerMetadata.metric: 'cpu' is not a metric",
        ),
    ],
)
def test_bad_metadata_is_invalid_argument_with_a_message(scaler, metadata, words):
    scaler.store.put(recommendation())
    calls = [
        lambda: scaler.stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=ref(metadata))),
        lambda: scaler.stub.GetMetricSpec(ref(metadata)),
        lambda: scaler.stub.IsActive(ref(metadata)),
    ]
    for call in calls:
        err = rpc_error(call)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert words in details(err)


def test_unknown_workload_or_metric_is_not_found(scaler):
    err = rpc_error(lambda: scaler.stub.IsActive(ref({"workload": "prod/nope"}), timeout=WAIT_S))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert "prod/nope" in details(err)

    scaler.store.put(recommendation(desired=2))  # publishes no forecast metric

    def get(metric: str) -> object:
        request = pb.GetMetricsRequest(scaledObjectRef=ref(LLAMA), metricName=metric)
        return scaler.stub.GetMetrics(request, timeout=WAIT_S)

    err = rpc_error(lambda: get("s0-cpu"))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert "'s0-cpu' is not published" in details(err)
    err = rpc_error(lambda: get("llm_forecast_load_replicas"))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert "does not publish llm_forecast_load_replicas" in details(err)


def test_fresh_stale_fresh_transitions(scaler):
    request = pb.GetMetricsRequest(scaledObjectRef=ref(LLAMA))

    def value() -> float:
        return float(
            scaler.stub.GetMetrics(request, timeout=WAIT_S).metricValues[0].metricValueFloat
        )

    err = rpc_error(value)  # no data yet
    assert err.code() == grpc.StatusCode.UNAVAILABLE
    assert "no recommendation yet" in details(err) and "fallback" in details(err)

    scaler.store.put(recommendation(desired=3))
    assert value() == 3.0
    assert scaler.stub.IsActive(ref(LLAMA), timeout=WAIT_S).result is True

    scaler.clock.now += STALENESS_S + 1  # the loop stopped writing: too old
    for call in (value, lambda: scaler.stub.IsActive(ref(LLAMA), timeout=WAIT_S)):
        err = rpc_error(call)
        assert err.code() == grpc.StatusCode.UNAVAILABLE
        assert "46 s old (limit 45 s)" in details(err)

    scaler.store.put(recommendation(desired=4))  # fresh again
    assert value() == 4.0

    scaler.store.put(hold("prod/llama", 1100.0, "prometheus unreachable"))  # a tick that held
    err = rpc_error(value)
    assert err.code() == grpc.StatusCode.UNAVAILABLE
    assert "held (prometheus unreachable)" in details(err)

    scaler.store.put(recommendation(desired=1))
    assert value() == 1.0


def test_other_workloads_are_unaffected_by_one_going_stale(scaler):
    scaler.store.put(recommendation("prod/llama", desired=3))
    scaler.store.put(recommendation("prod/mistral", desired=6))
    scaler.store.put(hold("prod/llama", 1001.0, "no samples"))
    mistral = pb.GetMetricsRequest(scaledObjectRef=ref({"name": "mistral"}))
    assert scaler.stub.GetMetrics(mistral, timeout=WAIT_S).metricValues[0].metricValueFloat == 6.0


def test_a_failure_inside_is_internal_without_details(make_scaler):
    def broken_clock() -> float:
        raise RuntimeError("secret-detail")

    scaler = make_scaler(clock=broken_clock)
    err = rpc_error(lambda: scaler.stub.IsActive(ref(LLAMA), timeout=WAIT_S))
    assert err.code() == grpc.StatusCode.INTERNAL
    assert "secret-detail" not in details(err)
    assert "IsActive: internal error" in details(err)


# -- IsActive ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("desired", "load", "forecast", "active"),
    [
        (2, 1.5, 1.8, True),
        (0, 0.0, 0.0, False),
        (0, 0.0, 0.4, True),  # the forecast wakes a scaled-to-zero workload before requests queue
        (0, 0.0, 0.001, False),  # below the epsilon: a decaying forecast does not pin it awake
    ],
)
def test_is_active_follows_desired_replicas_and_forecast(scaler, desired, load, forecast, active):
    scaler.store.put(recommendation(desired=desired, load=load, forecast=forecast))
    assert scaler.stub.IsActive(ref(LLAMA), timeout=WAIT_S).result is active


# -- StreamIsActive ------------------------------------------------------------------------------


class StreamReader:
    """Reads a server stream on a thread; ``next()`` waits (with a deadline) for a message."""

    END = object()

    def __init__(self, call: Any) -> None:
        self.call = call
        self.items: queue.SimpleQueue[object] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for message in self.call:
                self.items.put(message.result)
            self.items.put(self.END)
        except grpc.RpcError as exc:
            self.items.put(exc)

    def next(self) -> object:
        return self.items.get(timeout=WAIT_S)


def test_stream_sends_the_state_at_once_then_pushes_changes_only(scaler):
    scaler.store.put(recommendation(desired=0, load=0.0, forecast=0.0))
    reader = StreamReader(scaler.stub.StreamIsActive(ref(LLAMA)))
    assert reader.next() is False
    assert scaler.store.wait_live(1)

    scaler.store.put(recommendation(desired=0, load=0.0, forecast=0.6))  # forecast wakes it
    assert reader.next() is True
    scaler.store.put(recommendation(desired=1, load=0.2, forecast=0.6))  # still active: no push
    scaler.store.put(recommendation("prod/mistral", desired=0))  # another workload: no push
    scaler.store.put(recommendation(desired=0, load=0.0, forecast=0.0))
    assert reader.next() is False  # the next message is the change, not a repeat of True
    reader.call.cancel()


def test_stream_keepalive_resends_the_current_state(make_scaler):
    scaler = make_scaler(keepalive_s=0.05)
    scaler.store.put(recommendation(desired=2))
    reader = StreamReader(scaler.stub.StreamIsActive(ref(LLAMA)))
    assert [reader.next() for _ in range(4)] == [True, True, True, True]  # no store writes
    reader.call.cancel()


def test_client_cancel_ends_the_stream_and_unsubscribes(scaler):
    scaler.store.put(recommendation(desired=2))
    reader = StreamReader(scaler.stub.StreamIsActive(ref(LLAMA)))
    assert reader.next() is True
    assert scaler.store.wait_live(1)
    assert scaler.server.servicer.open_streams == 1
    reader.call.cancel()
    assert scaler.store.wait_live(0)
    ended = reader.next()
    assert isinstance(ended, grpc.RpcError) and ended.code() == grpc.StatusCode.CANCELLED
    scaler.store.put(recommendation(desired=0))  # the old listener is gone: nothing to wake


def test_server_stop_ends_streams_cleanly_and_unsubscribes(scaler):
    scaler.store.put(recommendation(desired=2))
    readers = [StreamReader(scaler.stub.StreamIsActive(ref(LLAMA))) for _ in range(3)]
    assert [r.next() for r in readers] == [True, True, True]
    assert scaler.store.wait_live(3)
    scaler.server.stop(WAIT_S)
    assert [r.next() for r in readers] == [StreamReader.END] * 3  # status OK: KEDA retries in 2 s
    assert scaler.store.wait_live(0)
    assert scaler.server.servicer.open_streams == 0


def test_stream_ends_unavailable_when_data_goes_stale(scaler):
    scaler.store.put(recommendation(desired=2))
    reader = StreamReader(scaler.stub.StreamIsActive(ref(LLAMA)))
    assert reader.next() is True
    scaler.store.put(hold("prod/llama", 1010.0, "scrape gap"))
    ended = reader.next()
    assert isinstance(ended, grpc.RpcError)
    assert ended.code() == grpc.StatusCode.UNAVAILABLE
    assert "held (scrape gap)" in details(ended)
    assert scaler.store.wait_live(0)


def test_stream_going_stale_by_age_is_seen_at_keepalive(make_scaler):
    scaler = make_scaler(keepalive_s=0.05)
    scaler.store.put(recommendation(desired=2))
    reader = StreamReader(scaler.stub.StreamIsActive(ref(LLAMA)))
    assert reader.next() is True
    scaler.clock.now += STALENESS_S + 5
    item = reader.next()
    while item is True:  # keep-alives sent before the clock moved
        item = reader.next()
    assert isinstance(item, grpc.RpcError) and item.code() == grpc.StatusCode.UNAVAILABLE
    assert scaler.store.wait_live(0)


@pytest.mark.parametrize(
    ("metadata", "put", "code"),
    [
        ({"workload": "prod/nope"}, True, grpc.StatusCode.NOT_FOUND),
        ({"scalerAddress": "svc:9443"}, True, grpc.StatusCode.INVALID_ARGUMENT),
        (LLAMA, False, grpc.StatusCode.UNAVAILABLE),  # no data yet: no made-up first state
    ],
)
def test_stream_errors_at_open_leave_no_subscription(scaler, metadata, put, code):
    if put:
        scaler.store.put(recommendation(desired=2))
    reader = StreamReader(scaler.stub.StreamIsActive(ref(metadata)))
    ended = reader.next()
    assert isinstance(ended, grpc.RpcError) and ended.code() == code
    assert scaler.store.wait_live(0)


# -- TLS -----------------------------------------------------------------------------------------

SERVICE_DNS = "llm-autoscaler.llm-system.svc"


@dataclass
class Pki:
    ca_pem: bytes
    server: tuple[bytes, bytes]
    client: tuple[bytes, bytes]
    other_ca_pem: bytes


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _ca(cn: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _leaf(
    ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, cn: str, *, server: bool
) -> tuple[bytes, bytes]:
    key = _key()
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(SERVICE_DNS), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
    else:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False
        )
    cert = builder.sign(ca_key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


@pytest.fixture(scope="module")
def pki() -> Pki:
    ca, ca_key = _ca("test-ca")
    other, _ = _ca("other-ca")
    return Pki(
        ca_pem=ca.public_bytes(serialization.Encoding.PEM),
        server=_leaf(ca, ca_key, "llm-autoscaler", server=True),
        client=_leaf(ca, ca_key, "keda-operator", server=False),
        other_ca_pem=other.public_bytes(serialization.Encoding.PEM),
    )


@pytest.fixture
def tls_server(pki: Pki) -> Iterator[tuple[RecommendationStore, ScalerServer]]:
    store = RecommendationStore(WORKLOADS, staleness_s=STALENESS_S, clock=Clock())
    server = create_grpc_server(store, "127.0.0.1:0", tls=pki.server, max_workers=4)
    server.start()
    yield store, server
    server.stop(None).wait(WAIT_S)


def _secure_stub(
    port: int, credentials: grpc.ChannelCredentials
) -> tuple[grpc.Channel, pb_grpc.ExternalScalerStub]:
    # KEDA dials the Service name; the certificate is checked for it (override: no DNS in tests)
    channel = grpc.secure_channel(
        f"127.0.0.1:{port}", credentials, options=[("grpc.ssl_target_name_override", SERVICE_DNS)]
    )
    return channel, pb_grpc.ExternalScalerStub(channel)


def test_tls_with_the_ca_serves(pki, tls_server):
    store, server = tls_server
    store.put(recommendation(desired=3))
    channel, stub = _secure_stub(server.port, grpc.ssl_channel_credentials(pki.ca_pem))
    with channel:
        got = stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=ref(LLAMA)), timeout=WAIT_S)
        assert got.metricValues[0].metricValueFloat == 3.0
        assert stub.IsActive(ref(LLAMA), timeout=WAIT_S).result is True


def test_tls_rejects_a_client_trusting_another_ca_and_plaintext(pki, tls_server):
    store, server = tls_server
    store.put(recommendation(desired=3))
    channel, stub = _secure_stub(server.port, grpc.ssl_channel_credentials(pki.other_ca_pem))
    with channel:
        err = rpc_error(lambda: stub.IsActive(ref(LLAMA), timeout=WAIT_S))
        assert err.code() == grpc.StatusCode.UNAVAILABLE
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as plain:
        err = rpc_error(
            lambda: pb_grpc.ExternalScalerStub(plain).IsActive(ref(LLAMA), timeout=WAIT_S)
        )
        assert err.code() == grpc.StatusCode.UNAVAILABLE


def test_mutual_tls_requires_a_client_certificate(pki):
    store = RecommendationStore(WORKLOADS, staleness_s=STALENESS_S, clock=Clock())
    store.put(recommendation(desired=2))
    server = create_grpc_server(store, "127.0.0.1:0", tls=pki.server, client_ca=pki.ca_pem)
    server.start()
    try:
        cert, key = pki.client
        with_cert = grpc.ssl_channel_credentials(
            pki.ca_pem, private_key=key, certificate_chain=cert
        )
        channel, stub = _secure_stub(server.port, with_cert)
        with channel:
            assert stub.IsActive(ref(LLAMA), timeout=WAIT_S).result is True
        channel, stub = _secure_stub(server.port, grpc.ssl_channel_credentials(pki.ca_pem))
        with channel:
            err = rpc_error(lambda: stub.IsActive(ref(LLAMA), timeout=WAIT_S))
            assert err.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        server.stop(None).wait(WAIT_S)


def test_unusable_tls_material_fails_at_start_with_a_message(pki):
    store = RecommendationStore(WORKLOADS, staleness_s=STALENESS_S, clock=Clock())
    cert, key = pki.server
    _, other_key = pki.client
    cases = [
        ((b"not a cert", key), None, "certificate is not PEM X.509"),
        ((cert, b"not a key"), None, "private key is not an unencrypted PEM key"),
        ((cert, other_key), None, "does not match the certificate"),
        ((cert, key), b"garbage", "client_ca is not PEM X.509"),
    ]
    for tls, client_ca, words in cases:
        with pytest.raises(TlsConfigError, match=words):
            create_grpc_server(store, "127.0.0.1:0", tls=tls, client_ca=client_ca)
    with pytest.raises(TlsConfigError, match="needs a serving certificate"):
        create_grpc_server(store, "127.0.0.1:0", tls=None, client_ca=pki.ca_pem)


def test_a_busy_port_is_a_bind_error(scaler):
    with pytest.raises(BindError, match=f"cannot listen on '127.0.0.1:{scaler.server.port}'"):
        create_grpc_server(scaler.store, f"127.0.0.1:{scaler.server.port}", tls=None)


@pytest.mark.parametrize("where", ["metadata", "request"])
def test_a_huge_metric_name_gets_a_bounded_status_message(scaler, where):
    """A 100 KB name echoed whole overflowed gRPC's trailer limit: the message is cut."""
    scaler.store.put(recommendation())
    huge = "m" * 100_000
    if where == "metadata":
        request = pb.GetMetricsRequest(scaledObjectRef=ref({**LLAMA, "metric": huge}))
        code = grpc.StatusCode.INVALID_ARGUMENT
    else:
        request = pb.GetMetricsRequest(scaledObjectRef=ref(LLAMA), metricName=huge)
        code = grpc.StatusCode.NOT_FOUND
    err = rpc_error(lambda: scaler.stub.GetMetrics(request, timeout=WAIT_S))
    assert err.code() == code
    assert "(100000 characters)" in details(err) and len(details(err)) < 1000


# -- mutual TLS through serve's config ------------------------------------------------------------


def _serve_with_keda_ca(
    tmp: Path, pki: Pki, *extra_config: str
) -> tuple[subprocess.Popen[str], int]:
    """``serve`` (no cluster, Prometheus unreachable: metric specs need no data) with the
    serving pair and ``keda_client_ca_file`` from ``pki``; returns the process and gRPC port."""
    (tmp / "tls.crt").write_bytes(pki.server[0])
    (tmp / "tls.key").write_bytes(pki.server[1])
    (tmp / "keda-ca.crt").write_bytes(pki.ca_pem)
    https, metrics, grpc_port = free_ports(3)
    config = tmp / "serve.yaml"
    config.write_text(
        "service:\n  prometheus_url: http://127.0.0.1:9\n  tick_s: 1\n"
        f"  ports: {{https: {https}, metrics: {metrics}, grpc: {grpc_port}}}\n"
        f"  tls_cert_file: {tmp / 'tls.crt'}\n  tls_key_file: {tmp / 'tls.key'}\n"
        f"  keda_client_ca_file: {tmp / 'keda-ca.crt'}\n" + "".join(extra_config)
        + "workloads:\n  - {namespace: prod, name: llama, engine: vllm, selector: {app: llama}}\n"
    )  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "autoscaler.cli", "serve", "--config", str(config),
         "--host", "127.0.0.1", "--no-kubernetes", "--insecure-skip-auth", "--backfill", "0s",
         "--duration", "60"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    return proc, grpc_port


def test_serve_requires_keda_client_certificates_from_the_configured_ca(pki, tmp_path):
    proc, port = _serve_with_keda_ca(tmp_path, pki, "  keda_require_client_cert: true\n")
    try:
        cert, key = pki.client
        ours = grpc.ssl_channel_credentials(pki.ca_pem, private_key=key, certificate_chain=cert)
        channel, stub = _secure_stub(port, ours)
        with channel:
            grpc.channel_ready_future(channel).result(timeout=60)  # serve is up
            spec = stub.GetMetricSpec(ref(LLAMA), timeout=WAIT_S)
            assert spec.metricSpecs[0].targetSize == 1
        channel, stub = _secure_stub(port, grpc.ssl_channel_credentials(pki.ca_pem))
        with channel:  # no client certificate: the handshake fails
            err = rpc_error(lambda: stub.GetMetricSpec(ref(LLAMA), timeout=WAIT_S))
            assert err.code() == grpc.StatusCode.UNAVAILABLE
        rogue, rogue_key = _ca("test-ca")  # same name as the real CA, another key
        cert, key = _leaf(rogue, rogue_key, "keda-operator", server=False)
        foreign = grpc.ssl_channel_credentials(pki.ca_pem, private_key=key, certificate_chain=cert)
        channel, stub = _secure_stub(port, foreign)
        with channel:
            err = rpc_error(lambda: stub.GetMetricSpec(ref(LLAMA), timeout=WAIT_S))
            assert err.code() == grpc.StatusCode.UNAVAILABLE
        assert proc.poll() is None
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=30)
    assert "client certificates signed by" in stderr


def _validate(tmp: Path, service_yaml: str) -> subprocess.CompletedProcess[str]:
    """``validate-config`` on a config with ``service_yaml`` and one workload."""
    config = tmp / "serve.yaml"
    config.write_text(
        f"service:\n{service_yaml}"
        "workloads:\n  - {namespace: prod, name: llama, engine: vllm, selector: {app: llama}}\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "autoscaler.cli", "validate-config", str(config)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr
    return done


def test_requiring_client_certificates_without_a_ca_is_a_config_error(tmp_path):
    done = _validate(tmp_path, "  keda_require_client_cert: true\n")
    assert "keda_require_client_cert" in done.stderr and "keda_client_ca_file" in done.stderr


def test_validate_config_checks_the_keda_ca_file(tmp_path):
    (tmp_path / "ca.crt").write_text("not a certificate\n")
    done = _validate(tmp_path, f"  keda_client_ca_file: {tmp_path / 'ca.crt'}\n")
    assert "service.keda_client_ca_file" in done.stderr and "not a PEM" in done.stderr

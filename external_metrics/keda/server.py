"""The gRPC server for the KEDA external scaler: one factory, TLS optional, nothing started.

``create_grpc_server(store, "0.0.0.0:9443", tls=(cert_pem, key_pem))`` binds the port and returns
a :class:`ScalerServer`, a ``grpc.Server`` that also knows the port it bound (so ``:0`` works in
tests and benchmarks) and ends push streams cleanly on ``stop``. The caller starts and stops it;
the store is the only thing it reads.

TLS: KEDA connects with TLS when the trigger sets ``enableTLS`` or its TriggerAuthentication gives
``caCert`` (and ``tlsClientCert``/``tlsClientKey`` for mutual TLS). Pass ``client_ca`` to require
client certificates signed by that CA. Certificates are checked here, at start-up, so a wrong file
fails with a message rather than at the first handshake.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent import futures
from typing import Any, Final, cast

import grpc
from cryptography import x509

from autoscaler.live.store import RecommendationStore
from external_metrics.keda import externalscaler_pb2_grpc as pb_grpc
from external_metrics.keda.errors import BindError
from external_metrics.keda.reading import DEFAULT_ACTIVATION_EPSILON
from external_metrics.keda.servicer import DEFAULT_KEEPALIVE_S, ExternalScalerServicer
from external_metrics.tls import CertificateFiles, check_pair

DEFAULT_MAX_WORKERS: Final = 16
"""Worker threads; every open ``external-push`` stream holds one of them."""

_OPTIONS: Final[list[tuple[str, int]]] = [
    # grpc enables SO_REUSEPORT by default: a second server on a busy port would silently share it.
    ("grpc.so_reuseport", 0),
]


class TlsConfigError(ValueError):
    """The serving certificate, key or client CA is not usable PEM, or the key does not match."""


class ScalerServer(grpc.Server):
    """A ``grpc.Server`` (delegating to grpc's own) plus ``port`` and ``servicer``."""

    def __init__(self, server: grpc.Server, *, port: int, servicer: ExternalScalerServicer) -> None:
        self._server = server
        self.port = port
        """The bound port (the real one when the address asked for ``:0``)."""
        self.servicer = servicer

    def add_generic_rpc_handlers(
        self, generic_rpc_handlers: Iterable[grpc.GenericRpcHandler]
    ) -> None:
        self._server.add_generic_rpc_handlers(generic_rpc_handlers)

    def add_registered_method_handlers(
        self, service_name: str, method_handlers: Mapping[str, grpc.RpcMethodHandler[Any, Any]]
    ) -> None:
        self._server.add_registered_method_handlers(service_name, method_handlers)

    def add_insecure_port(self, address: str) -> int:
        return self._server.add_insecure_port(address)

    def add_secure_port(self, address: str, server_credentials: grpc.ServerCredentials) -> int:
        return self._server.add_secure_port(address, server_credentials)

    def start(self) -> None:
        self._server.start()

    def stop(self, grace: float | None) -> threading.Event:
        """End push streams cleanly first, then stop grpc (cancelling what is left after grace)."""
        self.servicer.close()
        return self._server.stop(grace)

    def wait_for_termination(self, timeout: float | None = None) -> bool:
        return self._server.wait_for_termination(timeout)


def create_grpc_server(
    store: RecommendationStore,
    address: str,
    *,
    tls: tuple[bytes, bytes] | None,
    client_ca: bytes | None = None,
    tls_files: CertificateFiles | None = None,
    max_workers: int = DEFAULT_MAX_WORKERS,
    keepalive_s: float = DEFAULT_KEEPALIVE_S,
    activation_epsilon: float = DEFAULT_ACTIVATION_EPSILON,
    logger: logging.Logger | None = None,
) -> ScalerServer:
    """A bound, not yet started, server for ``externalscaler.ExternalScaler`` on ``address``.

    ``tls`` is ``(certificate_chain_pem, private_key_pem)``, or None for plaintext (only for
    tests or a mesh that terminates TLS). ``client_ca`` (PEM) turns on mutual TLS.
    ``tls_files`` (the files ``tls`` was read from) makes renewed certificates take effect
    without a restart.
    """
    if max_workers < 1:
        raise ValueError(f"max_workers must be at least 1, not {max_workers}")
    if client_ca is not None and tls is None:
        raise TlsConfigError("client_ca (mutual TLS) needs a serving certificate and key (tls)")
    servicer = ExternalScalerServicer(
        store, keepalive_s=keepalive_s, activation_epsilon=activation_epsilon, logger=logger
    )
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="keda-grpc"),
        options=_OPTIONS,
    )
    pb_grpc.add_ExternalScalerServicer_to_server(servicer, server)
    try:
        if tls is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, _credentials(tls, client_ca, tls_files))
    except RuntimeError as exc:  # grpc raises "Failed to bind to address ..."
        raise BindError(f"KEDA scaler: cannot listen on {address!r}: {exc}") from exc
    if port == 0:  # older grpc reports a failed bind as port 0
        raise BindError(f"KEDA scaler: cannot listen on {address!r}")
    return ScalerServer(server, port=port, servicer=servicer)


def _credentials(
    tls: tuple[bytes, bytes], client_ca: bytes | None, files: CertificateFiles | None = None
) -> grpc.ServerCredentials:
    """Server credentials; with ``files``, renewed certificates are picked up at the next
    handshake (grpc asks the fetcher before each one; it only stats the files)."""
    cert_pem, key_pem = tls
    try:
        check_pair(cert_pem, key_pem)
    except ValueError as exc:
        raise TlsConfigError(f"KEDA scaler TLS: {exc}") from None
    if client_ca is not None:
        try:
            x509.load_pem_x509_certificates(client_ca)
        except ValueError as exc:
            raise TlsConfigError(f"KEDA scaler TLS: client_ca is not PEM X.509: {exc}") from None
    if files is None:
        return grpc.ssl_server_credentials(
            [(key_pem, cert_pem)],
            root_certificates=client_ca,
            require_client_auth=client_ca is not None,
        )

    def fetch() -> grpc.ServerCertificateConfiguration | None:
        pair = files.changed_pair()
        if pair is None:
            return None
        return grpc.ssl_server_certificate_configuration(
            [(pair[1], pair[0])], root_certificates=client_ca
        )

    initial = grpc.ssl_server_certificate_configuration(
        [(key_pem, cert_pem)], root_certificates=client_ca
    )
    # grpc's stub says the fetcher never returns None; grpc itself documents None as "keep"
    fetcher = cast(Callable[[], grpc.ServerCertificateConfiguration], fetch)
    return grpc.dynamic_ssl_server_credentials(
        initial, fetcher, require_client_authentication=client_ca is not None
    )

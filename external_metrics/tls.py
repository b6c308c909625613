"""TLS for the HTTPS port: always on, TLS 1.2 or newer, optional client-certificate checks.

The kube-aggregator only speaks HTTPS to an APIService (it checks our serving certificate for
``<service>.<namespace>.svc`` against the APIService's ``caBundle``, or skips the check with
``insecureSkipTLSVerify``), and it proves it is the aggregator with a client certificate. So:

- :func:`server_ssl_context` builds the server context. With ``client_ca_pem`` (the
  requestheader CA from ``extension-apiserver-authentication``) client certificates are
  *optional* but, when sent, must chain to that CA or the handshake fails; a connection without
  one (a bearer-token client) still works. ``external_metrics.auth`` then checks the CN.

:class:`CertificateFiles` re-reads a renewed certificate (cert-manager) without a restart.

Without a configured certificate ``serve`` makes a self-signed one
(:mod:`external_metrics.self_signed`); the APIService must then say
``insecureSkipTLSVerify: true``. Production mounts a real one (cert-manager), see
``docs/external-metrics.md``.
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from autoscaler.errors import InputError

log = logging.getLogger(__name__)


def check_certificate_pair(cert_file: str | Path, key_file: str | Path) -> x509.Certificate:
    """The serving certificate, after checking offline what a TLS handshake would need.

    Both files exist and are readable, the certificate file starts with a PEM certificate, the
    key file holds an unencrypted PEM private key, and that key is the certificate's. Each
    failure is one :class:`InputError` naming the config field and the file — ``ssl`` itself
    would say only ``[SSL] PEM lib (_ssl.c:...)``. ``serve`` runs it before listening and
    ``validate-config`` runs it where the files are.
    """
    blobs = {}
    for field, path in (("tls_cert_file", cert_file), ("tls_key_file", key_file)):
        try:
            blobs[field] = Path(path).read_bytes()
        except FileNotFoundError:
            raise InputError(f"service.{field}: {path} does not exist") from None
        except OSError as exc:
            raise InputError(f"service.{field}: cannot read {path}: {exc.strerror}") from exc
    try:
        cert = x509.load_pem_x509_certificate(blobs["tls_cert_file"])
    except ValueError as exc:
        raise InputError(f"service.tls_cert_file: {cert_file} is not a PEM certificate") from exc
    try:
        key = serialization.load_pem_private_key(blobs["tls_key_file"], password=None)
    except (ValueError, TypeError) as exc:  # TypeError: the key is encrypted
        raise InputError(
            f"service.tls_key_file: {key_file} is not an unencrypted PEM private key"
        ) from exc
    fmt = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if key.public_key().public_bytes(der, fmt) != cert.public_key().public_bytes(der, fmt):
        raise InputError(
            f"service.tls_key_file: {key_file} is not the key of the certificate {cert_file}"
        )
    return cert


def read_ca_bundle(path: str | Path, field: str) -> bytes:
    """The PEM CA bundle at ``path`` (every block a certificate), or one :class:`InputError`
    naming the config ``field`` and the file - grpc would only refuse the handshake later."""
    try:
        pem = Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError(f"service.{field}: {path} does not exist") from None
    except OSError as exc:
        raise InputError(f"service.{field}: cannot read {path}: {exc.strerror}") from exc
    try:
        x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise InputError(f"service.{field}: {path} is not a PEM certificate bundle") from exc
    return pem


def check_service_files(
    tls_cert_file: str | None, tls_key_file: str | None, keda_client_ca_file: str | None
) -> None:
    """Every file the config names, checked as ``serve`` will read it (``validate-config``)."""
    if tls_cert_file and tls_key_file:
        check_certificate_pair(tls_cert_file, tls_key_file)
    if keda_client_ca_file:
        read_ca_bundle(keda_client_ca_file, "keda_client_ca_file")


def server_ssl_context(
    cert_file: str | Path,
    key_file: str | Path,
    *,
    client_ca_pem: str | None = None,
) -> ssl.SSLContext:
    """A server context: TLS >= 1.2, HTTP/1.1 ALPN, client certs verified against the CA given."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(certfile=str(cert_file), keyfile=str(key_file))
    ctx.set_alpn_protocols(["http/1.1"])
    if client_ca_pem:
        ctx.load_verify_locations(cadata=client_ca_pem)
        ctx.verify_mode = ssl.CERT_OPTIONAL
    else:
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class CertificateFiles:
    """The serving certificate and key files, re-read when they change on disk.

    cert-manager renews a certificate in place: the kubelet swaps the Secret volume's ``..data``
    symlink, so both files change at once without a restart. Each consumer (the HTTPS context,
    the gRPC credentials) keeps its own ``CertificateFiles`` and asks :meth:`changed_pair` when it
    may swap: the files' (inode, size, mtime) are compared, nothing is read while they are
    unchanged. A pair that does not load (half written, a key that does not match) is logged
    and skipped; the previous certificate keeps serving, and the next check tries again.
    """

    def __init__(self, cert_file: str | Path, key_file: str | Path) -> None:
        self.cert_file = Path(cert_file)
        self.key_file = Path(key_file)
        self._stamp = self._stat()

    def _stat(self) -> tuple[tuple[int, int, int], ...] | None:
        try:
            return tuple(
                (st.st_ino, st.st_size, st.st_mtime_ns)
                for st in (self.cert_file.stat(), self.key_file.stat())
            )
        except OSError:
            return None

    def changed_pair(self) -> tuple[bytes, bytes] | None:
        """``(certificate_pem, key_pem)`` when the files changed since the last good read and
        now hold a matching pair; None otherwise."""
        stamp = self._stat()
        if stamp is None or stamp == self._stamp:
            return None
        try:
            cert_pem, key_pem = self.cert_file.read_bytes(), self.key_file.read_bytes()
            check_pair(cert_pem, key_pem)
        except (OSError, ValueError) as exc:
            log.warning("TLS: %s / %s changed but cannot be used yet: %s",
                        self.cert_file, self.key_file, exc)  # fmt: skip
            return None
        self._stamp = stamp
        log.info("TLS: serving the renewed certificate from %s", self.cert_file)
        return cert_pem, key_pem

    def reload_into(self, ctx: ssl.SSLContext) -> bool:
        """Load a changed pair into ``ctx`` (new handshakes use it); True when it did."""
        if self.changed_pair() is None:
            return False
        ctx.load_cert_chain(certfile=str(self.cert_file), keyfile=str(self.key_file))
        return True


def check_pair(cert_pem: bytes, key_pem: bytes) -> None:
    """Raise ValueError unless ``cert_pem`` is PEM X.509 and ``key_pem`` its unencrypted key."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError as exc:
        raise ValueError(f"the certificate is not PEM X.509: {exc}") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"the private key is not an unencrypted PEM key: {exc}") from None
    if cert.public_key() != key.public_key():
        raise ValueError("the private key does not match the certificate")

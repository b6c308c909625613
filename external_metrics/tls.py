"""TLS for the HTTPS port: always on, TLS 1.2 or newer, optional client-certificate checks.

The kube-aggregator only speaks HTTPS to an APIService (it checks our serving certificate for
``<service>.<namespace>.svc`` against the APIService's ``caBundle``, or skips the check with
``insecureSkipTLSVerify``), and it proves it is the aggregator with a client certificate. So:

- :func:`server_ssl_context` builds the server context. With ``client_ca_pem`` (the
  requestheader CA from ``extension-apiserver-authentication``) client certificates are
  *optional* but, when sent, must chain to that CA or the handshake fails; a connection without
  one (a bearer-token client) still works. ``external_metrics.auth`` then checks the CN.

Without a configured certificate ``serve`` makes a self-signed one
(:mod:`external_metrics.self_signed`); the APIService must then say
``insecureSkipTLSVerify: true``. Production mounts a real one (cert-manager), see
``docs/external-metrics.md``.
"""

from __future__ import annotations

import ssl
from pathlib import Path


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

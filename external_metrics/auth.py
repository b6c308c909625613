"""Who is asking, and may they: delegated authentication and authorization for the HTTPS port.

Authentication, in this order (``k8s.io/apiserver``'s delegating chain, PROTOCOLS.md §1.5):

1. **Front proxy.** The kube-aggregator connects with a client certificate signed by the
   requestheader CA (``requestheader-client-ca-file`` of ConfigMap
   ``kube-system/extension-apiserver-authentication``) whose CN is in
   ``requestheader-allowed-names`` (empty list: any CN). The TLS layer (:mod:`external_metrics.tls`)
   verifies the chain; here we check the CN and only then read the user from the configured
   headers (``X-Remote-User``, every ``X-Remote-Group``, ``X-Remote-Extra-<key>``). On any other
   connection those headers are ignored: anyone could send them.
2. **Bearer token.** ``Authorization: Bearer ...`` is checked with a ``TokenReview``.
3. Otherwise: **401** Status. There are no anonymous requests and no unauthenticated paths on
   this server (health and ``/metrics`` are on the plain-HTTP port).

Authorization is a ``SubjectAccessReview`` for that user (**403** Status when not allowed):

- ``GET /apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/{metric}``: resource attributes
  group ``external.metrics.k8s.io``, version ``v1beta1``, resource = the metric name,
  namespace = ``ns``, verb **list** (no object name in the path, so Kubernetes' own request-info
  rules call it a list; the kube-apiserver already authorized the HPA with that verb before
  proxying, and the ClusterRoles adapters ship grant ``get, list, watch``);
- discovery (``/apis``, ``/apis/external.metrics.k8s.io[/v1beta1]``) and ``/openapi/...``:
  **no SubjectAccessReview**, authentication only. Kubernetes grants these paths to every
  authenticated user anyway (ClusterRole ``system:discovery``), they list metric names and not
  values, and the aggregator's own discovery and OpenAPI requests carry a bare user name with no
  groups (``system:kube-aggregator``, ``system:aggregator``) that a review could deny, which
  would mark the APIService unavailable for no gain;
- every other path (the JSON API's ``/v1/...``, unknown paths): non-resource attributes, the
  request path and the verb ``get`` (``HEAD`` too); ``/v1/*`` needs a ClusterRole with
  ``nonResourceURLs: ["/v1", "/v1/*"]``.

Answers are cached (:class:`TTLCache`, 10 s, bounded) per token hash and per (user, attributes);
failures to ask are never cached. A failed TokenReview is a 401, a failed SubjectAccessReview a
500 (as in Kubernetes): never a silent allow.

``AuthConfig(insecure_skip_auth=True)`` turns all of this off (``create_api_app(store, None)``)
for local runs and demos only; TLS stays on.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from autoscaler.errors import ExternalSystemError
from external_metrics.access import (
    AccessReviewResult,
    Attributes,
    NonResourceAttributes,
    RequestHeaderSettings,
    ResourceAttributes,
    Reviewer,
    TokenReviewResult,
    UserInfo,
)
from external_metrics.appkeys import USER
from external_metrics.metrics_api import GROUP, METRIC_ROUTE, VERSION
from external_metrics.status import StatusError
from external_metrics.ttl_cache import TTLCache

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """How the HTTPS port authenticates and authorizes (the ``serve`` flags)."""

    insecure_skip_auth: bool = False
    """Local runs and demos only: no client-cert, token or access checks at all."""
    cache_ttl_s: float = 10.0
    cache_size: int = 4096
    token_audiences: tuple[str, ...] = ()
    review_timeout_s: float = 5.0


class Authenticator:
    """Authenticates a request and authorizes it, with cached review answers."""

    def __init__(
        self,
        reviewer: Reviewer,
        requestheader: RequestHeaderSettings | None,
        *,
        cache_ttl_s: float = 10.0,
        cache_size: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.reviewer = reviewer
        self.requestheader = requestheader
        self._tokens: TTLCache[str, TokenReviewResult] = TTLCache(
            ttl_s=cache_ttl_s, max_size=cache_size, clock=clock
        )
        self._access: TTLCache[tuple[object, ...], AccessReviewResult] = TTLCache(
            ttl_s=cache_ttl_s, max_size=cache_size, clock=clock
        )

    @property
    def client_ca_pem(self) -> str | None:
        """The CA the TLS layer must verify client certificates against (None: no front proxy)."""
        return self.requestheader.client_ca_pem if self.requestheader is not None else None

    async def authenticate(self, request: web.Request) -> UserInfo:
        user = self.front_proxy_user(request)
        if user is not None:
            return user
        token = bearer_token(request.headers.get("Authorization", ""))
        if token is None:
            raise StatusError(
                401,
                "Unauthorized: send a bearer token, or come through the kube-aggregator "
                "with its front-proxy client certificate",
            )
        key = hashlib.sha256(token.encode()).hexdigest()
        result = self._tokens.get(key)
        if result is None:
            try:
                result = await asyncio.to_thread(self.reviewer.review_token, token)
            except ExternalSystemError as exc:
                log.warning("token review failed, answering 401: %s", exc)
                raise StatusError(
                    401, "Unauthorized: the bearer token could not be verified right now"
                ) from exc
            self._tokens.put(key, result)
        if not result.authenticated or result.user is None:
            raise StatusError(401, "Unauthorized: the bearer token is not valid")
        return result.user

    def front_proxy_user(self, request: web.Request) -> UserInfo | None:
        """The header identity, but only on a verified front-proxy connection."""
        settings = self.requestheader
        if settings is None:
            return None
        transport = request.transport
        cert = transport.get_extra_info("peercert") if transport is not None else None
        if not cert:
            return None  # no client certificate (or one the TLS layer did not verify)
        cn = common_name(cert)
        if settings.allowed_names and cn not in settings.allowed_names:
            log.info("client certificate CN %r is not an allowed front-proxy name", cn)
            return None
        return user_from_headers(request, settings)

    async def authorize(self, user: UserInfo, attributes: Attributes) -> None:
        key = (user.cache_key(), attributes)
        result = self._access.get(key)
        if result is None:
            try:
                result = await asyncio.to_thread(self.reviewer.review_access, user, attributes)
            except ExternalSystemError as exc:
                log.error("subject access review failed, answering 500: %s", exc)
                raise StatusError(
                    500, "Internal error: authorization could not be checked"
                ) from exc
            self._access.put(key, result)
        if not result.allowed:
            raise StatusError(403, forbidden_message(user, attributes, result.reason))


def bearer_token(authorization: str) -> str | None:
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def common_name(peercert: object) -> str:
    """The subject CN of ``ssl.SSLSocket.getpeercert()`` output (the last one, as Go reads it)."""
    cn = ""
    subject = peercert.get("subject", ()) if isinstance(peercert, dict) else ()
    for rdn in subject:
        for name, value in rdn:
            if name == "commonName":
                cn = value
    return cn


def user_from_headers(request: web.Request, settings: RequestHeaderSettings) -> UserInfo | None:
    """Read the user as ``k8s.io/apiserver``'s requestheader authenticator does."""
    username = next(
        (v for h in settings.username_headers if (v := request.headers.get(h, "").strip())), ""
    )
    if not username:
        return None
    uid = next((v for h in settings.uid_headers if (v := request.headers.get(h, "").strip())), "")
    groups = tuple(g for h in settings.group_headers for g in request.headers.getall(h, ()))
    extra: dict[str, list[str]] = {}
    prefixes = [p.lower() for p in settings.extra_headers_prefixes]
    for name in dict.fromkeys(request.headers.keys()):  # keys repeat for repeated headers
        lowered = name.lower()
        for prefix in prefixes:
            if lowered.startswith(prefix) and len(lowered) > len(prefix):
                key = urllib.parse.unquote(lowered[len(prefix) :])
                extra.setdefault(key, []).extend(request.headers.getall(name, ()))
                break
    return UserInfo(
        username=username,
        uid=uid,
        groups=groups,
        extra={k: tuple(v) for k, v in extra.items()},
    )


DISCOVERY_PATHS = frozenset({"/apis", f"/apis/{GROUP}", f"/apis/{GROUP}/{VERSION}"})


def request_attributes(request: web.Request) -> Attributes | None:
    """What a request does, in SubjectAccessReview terms; None: authentication suffices."""
    verb = "get" if request.method in ("GET", "HEAD") else request.method.lower()
    if verb == "get" and (
        request.path in DISCOVERY_PATHS
        or request.path == "/openapi"
        or request.path.startswith("/openapi/")
    ):
        return None
    route = request.match_info.route
    if route.resource is not None and route.resource.canonical == METRIC_ROUTE:
        return ResourceAttributes(
            verb="list" if verb == "get" else verb,
            group=GROUP,
            version=VERSION,
            resource=request.match_info["metric"],
            namespace=request.match_info["namespace"],
        )
    return NonResourceAttributes(path=request.path, verb=verb)


def forbidden_message(user: UserInfo, attributes: Attributes, reason: str) -> str:
    """Worded like the kube-apiserver's own 403, so it reads familiar in HPA events."""
    who = f'User "{user.username}"'
    if isinstance(attributes, ResourceAttributes):
        what = (
            f'cannot {attributes.verb} resource "{attributes.resource}" in API group '
            f'"{attributes.group}" in the namespace "{attributes.namespace}"'
        )
    else:
        what = f'cannot {attributes.verb} path "{attributes.path}"'
    return f"forbidden: {who} {what}" + (f": {reason}" if reason else "")


def auth_middleware(authenticator: Authenticator) -> Middleware:
    """Authenticate, then authorize, every request before its handler runs."""

    @web.middleware
    async def authenticate_and_authorize(
        request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        user = await authenticator.authenticate(request)
        request[USER] = user
        attributes = request_attributes(request)
        if attributes is not None:
            await authenticator.authorize(user, attributes)
        return await handler(request)

    return authenticate_and_authorize

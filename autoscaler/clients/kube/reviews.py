"""Delegated authentication and authorization against the Kubernetes API server.

An aggregated API server does not decide who may read it: it asks the cluster, the way
``k8s.io/apiserver``'s delegating authenticator and authorizer do (configure-aggregation-layer;
PROTOCOLS.md §1.5):

- :func:`review_token`: a ``TokenReview`` (``authentication.k8s.io/v1``) for a bearer token sent
  to us directly (not through the aggregator);
- :func:`review_access`: a ``SubjectAccessReview`` (``authorization.k8s.io/v1``) for a user and
  either resource attributes (a metric read) or non-resource attributes (a path);
- :func:`read_requestheader_settings`: the front-proxy settings the API server publishes in the
  ConfigMap ``kube-system/extension-apiserver-authentication`` (which CA signs the aggregator's
  client certificate, which CNs it may have, which headers carry the user).

The calls are synchronous (``kubernetes.client`` over urllib3) and take the ``ApiClient`` as an
argument; the aiohttp side runs them with ``asyncio.to_thread``. Results are plain frozen
dataclasses so the caller can cache them and never sees the client's models; replies are read
as raw JSON (``_preload_content=False``, as the rest of this package does), so a reply with an
unexpected shape is a clear error here rather than a model-validation traceback. A call that did
not produce an answer (connection refused, timeout, any non-2xx, a reply that is not a review)
raises the package's :class:`~autoscaler.clients.kube.KubernetesError` with the cause chained:
"could not ask" is not the same as "the answer was no".

RBAC this needs (shipped by ``deploy/``): ClusterRole ``system:auth-delegator`` (create
tokenreviews and subjectaccessreviews) and Role ``extension-apiserver-authentication-reader``
in ``kube-system`` (get the ConfigMap).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from kubernetes import client

from autoscaler.clients.kube import KubernetesError, kubernetes_error, read_json
from external_metrics.access import (
    AccessReviewResult,
    NonResourceAttributes,
    RequestHeaderSettings,
    ResourceAttributes,
    TokenReviewResult,
    UserInfo,
)

__all__ = [
    "AUTH_CONFIGMAP_NAME",
    "AUTH_CONFIGMAP_NAMESPACE",
    "AccessReviewResult",
    "KubeReviewer",
    "NonResourceAttributes",
    "RequestHeaderSettings",
    "ResourceAttributes",
    "TokenReviewResult",
    "UserInfo",
    "parse_requestheader_settings",
    "read_requestheader_settings",
    "review_access",
    "review_token",
]

AUTH_CONFIGMAP_NAMESPACE = "kube-system"
AUTH_CONFIGMAP_NAME = "extension-apiserver-authentication"
DEFAULT_TIMEOUT_S = 5.0


def review_token(
    api: client.ApiClient,
    token: str,
    *,
    audiences: tuple[str, ...] = (),
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> TokenReviewResult:
    """Ask the API server whom ``token`` belongs to (a ``TokenReview``)."""
    body = client.V1TokenReview(
        api_version="authentication.k8s.io/v1",
        kind="TokenReview",
        spec=client.V1TokenReviewSpec(token=token, audiences=list(audiences) or None),
    )
    operation = "create TokenReview"
    try:
        response = client.AuthenticationV1Api(api).create_token_review(
            body=body, _request_timeout=timeout_s, _preload_content=False
        )
    except Exception as exc:
        raise kubernetes_error(operation, exc, host=_host(api)) from exc
    status = _status(read_json(response, operation, host=_host(api)), operation, api)
    user = status.get("user")
    if not status.get("authenticated") or not isinstance(user, dict):
        return TokenReviewResult(authenticated=False, error=str(status.get("error") or ""))
    return TokenReviewResult(
        authenticated=True,
        user=UserInfo(
            username=str(user.get("username") or ""),
            uid=str(user.get("uid") or ""),
            groups=tuple(str(g) for g in user.get("groups") or ()),
            extra={str(k): tuple(str(x) for x in v) for k, v in (user.get("extra") or {}).items()},
        ),
        audiences=tuple(str(a) for a in status.get("audiences") or ()),
    )


def review_access(
    api: client.ApiClient,
    user: UserInfo,
    attributes: ResourceAttributes | NonResourceAttributes,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> AccessReviewResult:
    """Ask the API server whether ``user`` may do ``attributes`` (a ``SubjectAccessReview``)."""
    resource = non_resource = None
    if isinstance(attributes, ResourceAttributes):
        resource = client.V1ResourceAttributes(
            verb=attributes.verb,
            group=attributes.group,
            version=attributes.version,
            resource=attributes.resource,
            namespace=attributes.namespace or None,
            subresource=attributes.subresource or None,
            name=attributes.name or None,
        )
    else:
        non_resource = client.V1NonResourceAttributes(path=attributes.path, verb=attributes.verb)
    body = client.V1SubjectAccessReview(
        api_version="authorization.k8s.io/v1",
        kind="SubjectAccessReview",
        spec=client.V1SubjectAccessReviewSpec(
            user=user.username,
            uid=user.uid or None,
            groups=list(user.groups) or None,
            extra={k: list(v) for k, v in user.extra.items()} or None,
            resource_attributes=resource,
            non_resource_attributes=non_resource,
        ),
    )
    operation = "create SubjectAccessReview"
    try:
        response = client.AuthorizationV1Api(api).create_subject_access_review(
            body=body, _request_timeout=timeout_s, _preload_content=False
        )
    except Exception as exc:
        raise kubernetes_error(operation, exc, host=_host(api)) from exc
    status = _status(read_json(response, operation, host=_host(api)), operation, api)
    return AccessReviewResult(
        allowed=status.get("allowed") is True,
        denied=status.get("denied") is True,
        reason=str(status.get("reason") or ""),
        evaluation_error=str(status.get("evaluationError") or ""),
    )


def read_requestheader_settings(
    api: client.ApiClient,
    *,
    namespace: str = AUTH_CONFIGMAP_NAMESPACE,
    name: str = AUTH_CONFIGMAP_NAME,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> RequestHeaderSettings | None:
    """The front-proxy settings, or None when the cluster publishes no requestheader CA."""
    operation = f"read ConfigMap {namespace}/{name}"
    try:
        response = client.CoreV1Api(api).read_namespaced_config_map(
            name=name, namespace=namespace, _request_timeout=timeout_s, _preload_content=False
        )
    except Exception as exc:
        error = kubernetes_error(operation, exc, host=_host(api))
        if error.status in (401, 403):
            raise KubernetesError(
                operation,
                f"{error.problem} (the service account needs the Role "
                "extension-apiserver-authentication-reader in kube-system)",
                status=error.status,
                reason=error.reason,
                host=error.host,
            ) from exc
        raise error from exc
    data = read_json(response, operation, host=_host(api)).get("data") or {}
    if not isinstance(data, dict):
        raise KubernetesError(operation, "its data is not a map of strings", host=_host(api))
    return parse_requestheader_settings(
        {str(k): str(v) for k, v in data.items()}, source=f"ConfigMap {namespace}/{name}"
    )


def parse_requestheader_settings(
    data: Mapping[str, str], *, source: str = AUTH_CONFIGMAP_NAME
) -> RequestHeaderSettings | None:
    """Read the ConfigMap's keys (list values are JSON arrays of strings), pure.

    Without ``requestheader-client-ca-file`` the cluster has no front proxy configured and
    header identities must never be trusted, so the answer is None.
    """
    ca = data.get("requestheader-client-ca-file", "")
    if not ca.strip():
        return None
    if "-----BEGIN CERTIFICATE-----" not in ca:
        raise KubernetesError(
            f"read {source}", "requestheader-client-ca-file holds no PEM certificate"
        )
    defaults = RequestHeaderSettings(client_ca_pem=ca)

    def strings(key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        raw = data.get(key)
        if raw is None or not raw.strip():
            return default
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise KubernetesError(f"read {source}", f"{key} is not a JSON array: {exc}") from exc
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise KubernetesError(
                f"read {source}", f"{key} must be a JSON array of strings, got {raw!r}"
            )
        return tuple(value)

    return RequestHeaderSettings(
        client_ca_pem=ca,
        allowed_names=strings("requestheader-allowed-names", ()),
        username_headers=strings("requestheader-username-headers", defaults.username_headers),
        uid_headers=strings("requestheader-uid-headers", defaults.uid_headers),
        group_headers=strings("requestheader-group-headers", defaults.group_headers),
        extra_headers_prefixes=strings(
            "requestheader-extra-headers-prefix", defaults.extra_headers_prefixes
        ),
    )


class KubeReviewer:
    """The reviews bound to one ``ApiClient`` (what :class:`external_metrics.auth` calls)."""

    def __init__(
        self,
        api: client.ApiClient,
        *,
        audiences: tuple[str, ...] = (),
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.api = api
        self.audiences = audiences
        self.timeout_s = timeout_s

    def review_token(self, token: str) -> TokenReviewResult:
        return review_token(self.api, token, audiences=self.audiences, timeout_s=self.timeout_s)

    def review_access(
        self, user: UserInfo, attributes: ResourceAttributes | NonResourceAttributes
    ) -> AccessReviewResult:
        return review_access(self.api, user, attributes, timeout_s=self.timeout_s)


def _host(api: client.ApiClient) -> str | None:
    host = getattr(api.configuration, "host", None)
    return host if isinstance(host, str) else None


def _status(reply: dict[str, Any], operation: str, api: client.ApiClient) -> dict[str, Any]:
    """The ``status`` of a review reply; a reply without one did not answer the question."""
    status = reply.get("status")
    if not isinstance(status, dict):
        raise KubernetesError(operation, "the reply has no status", host=_host(api))
    return status

"""Who is asking and what they ask to do: the value types of delegated authn/authz.

:mod:`external_metrics.auth` decides with them; :mod:`autoscaler.clients.kube.reviews` fills them
from the API server's TokenReview, SubjectAccessReview and requestheader ConfigMap. They live here,
with the server that consumes them, so that the server names what it needs (the
:class:`Reviewer` protocol) and never imports the Kubernetes client: the client implements the
protocol (dependency inversion; ``tests/test_layout.py`` enforces the direction). Plain frozen
dataclasses, so the server can cache answers and never sees the client's models.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

__all__ = [
    "AccessReviewResult",
    "Attributes",
    "NonResourceAttributes",
    "RequestHeaderSettings",
    "ResourceAttributes",
    "Reviewer",
    "TokenReviewResult",
    "UserInfo",
]


@dataclass(frozen=True, slots=True)
class UserInfo:
    """``user.Info`` of the Kubernetes API: who a request is from."""

    username: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def cache_key(self) -> tuple[object, ...]:
        """A hashable identity (``extra`` is a mapping, so the dataclass itself is not)."""
        return (self.username, self.uid, self.groups, tuple(sorted(self.extra.items())))


@dataclass(frozen=True, slots=True)
class TokenReviewResult:
    authenticated: bool
    user: UserInfo | None = None
    audiences: tuple[str, ...] = ()
    error: str = ""


@dataclass(frozen=True, slots=True)
class ResourceAttributes:
    """What a resource request does (``authorization.k8s.io/v1`` ResourceAttributes)."""

    verb: str
    group: str
    version: str
    resource: str
    namespace: str = ""
    subresource: str = ""
    name: str = ""


@dataclass(frozen=True, slots=True)
class NonResourceAttributes:
    """A request for a path that is not a resource (discovery, OpenAPI, our ``/v1``)."""

    path: str
    verb: str


@dataclass(frozen=True, slots=True)
class AccessReviewResult:
    allowed: bool
    denied: bool = False
    reason: str = ""
    evaluation_error: str = ""


@dataclass(frozen=True, slots=True)
class RequestHeaderSettings:
    """The front-proxy (requestheader) part of ``extension-apiserver-authentication``."""

    client_ca_pem: str
    """PEM bundle of the CA(s) that sign the aggregator's client certificate."""
    allowed_names: tuple[str, ...] = ()
    """CNs the client certificate may carry; empty means any CN signed by the CA."""
    username_headers: tuple[str, ...] = ("X-Remote-User",)
    uid_headers: tuple[str, ...] = ()
    group_headers: tuple[str, ...] = ("X-Remote-Group",)
    extra_headers_prefixes: tuple[str, ...] = ("X-Remote-Extra-",)


Attributes = ResourceAttributes | NonResourceAttributes


class Reviewer(Protocol):
    """The two questions we ask the API server (``reviews.KubeReviewer`` answers them).

    A call that could not be answered raises an :class:`~autoscaler.errors.ExternalSystemError`
    (the client's ``KubernetesError``): "could not ask" is not "the answer was no".
    """

    def review_token(self, token: str) -> TokenReviewResult: ...

    def review_access(self, user: UserInfo, attributes: Attributes) -> AccessReviewResult: ...

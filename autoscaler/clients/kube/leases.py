"""``coordination.k8s.io/v1`` Leases: the record behind leader election (:mod:`cache.leader`).

Three calls, the ones client-go's ``resourcelock.LeaseLock`` makes: get, create, and update
(``PUT``) with the ``resourceVersion`` that was read. The API server refuses an update whose
``resourceVersion`` is not the current one with ``409 Conflict``, and a create of an existing
Lease with ``409 AlreadyExists``; both become :class:`LeaseConflict`, which means "someone else
wrote first: read again", never "failed". That optimistic concurrency is what makes two replicas
that try to take an expired Lease at the same moment end with exactly one leader.

RBAC: ``leases: get, create, update`` in the service's namespace.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes import client

from autoscaler.clients.kube import (
    DEFAULT_REQUEST_TIMEOUT,
    KubernetesError,
    kubernetes_error,
    read_json,
)

__all__ = ["LeaseClient", "LeaseConflict", "LeaseRecord", "format_micro_time"]


class LeaseConflict(KubernetesError):
    """Another writer changed (or created) the Lease first; read it again."""


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """The spec of a Lease, plus the ``resourceVersion`` it was read at."""

    holder: str | None
    duration_s: int | None
    acquire_time: str | None = None
    renew_time: str | None = None
    transitions: int = 0
    resource_version: str | None = None

    def spec(self) -> dict[str, Any]:
        body: dict[str, Any] = {"leaseTransitions": self.transitions}
        if self.holder is not None:
            body["holderIdentity"] = self.holder
        if self.duration_s is not None:
            body["leaseDurationSeconds"] = self.duration_s
        if self.acquire_time is not None:
            body["acquireTime"] = self.acquire_time
        if self.renew_time is not None:
            body["renewTime"] = self.renew_time
        return body


def format_micro_time(seconds: float) -> str:
    """A ``MicroTime`` (RFC 3339 with microseconds), as Lease timestamps are written."""
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _record(body: dict[str, Any]) -> LeaseRecord:
    spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
    assert isinstance(spec, dict)
    metadata = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
    assert isinstance(metadata, dict)
    holder = spec.get("holderIdentity")
    duration = spec.get("leaseDurationSeconds")
    transitions = spec.get("leaseTransitions")
    rv = metadata.get("resourceVersion")
    return LeaseRecord(
        holder=holder if isinstance(holder, str) and holder else None,
        duration_s=duration
        if isinstance(duration, int) and not isinstance(duration, bool)
        else None,
        acquire_time=spec.get("acquireTime") if isinstance(spec.get("acquireTime"), str) else None,
        renew_time=spec.get("renewTime") if isinstance(spec.get("renewTime"), str) else None,
        transitions=transitions if isinstance(transitions, int) and transitions >= 0 else 0,
        resource_version=rv if isinstance(rv, str) and rv else None,
    )


def _lease(body: dict[str, Any]) -> client.V1Lease:
    lease = client.V1Lease.from_dict(body)
    if lease is None:  # pragma: no cover - only for a None input
        raise ValueError("the Lease body did not validate")
    return lease


class LeaseClient:
    """Get, create and update one namespace's Leases. Thread-safe."""

    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        request_timeout: tuple[float, float] = DEFAULT_REQUEST_TIMEOUT,
    ) -> None:
        self._coordination = client.CoordinationV1Api(api_client)
        self._host: str | None = getattr(api_client.configuration, "host", None)
        self.request_timeout = request_timeout

    def get(self, namespace: str, name: str) -> LeaseRecord | None:
        operation = f"get lease {namespace}/{name}"
        try:
            response = self._coordination.read_namespaced_lease(
                name, namespace, _preload_content=False, _request_timeout=self.request_timeout
            )
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise kubernetes_error(operation, exc, host=self._host) from exc
        except Exception as exc:
            raise kubernetes_error(operation, exc, host=self._host) from exc
        return _record(read_json(response, operation, host=self._host))

    def create(self, namespace: str, name: str, record: LeaseRecord) -> LeaseRecord:
        operation = f"create lease {namespace}/{name}"
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": name, "namespace": namespace},
            "spec": record.spec(),
        }
        lease = _lease(body)
        return self._write(
            operation,
            lambda: self._coordination.create_namespaced_lease(
                namespace, lease, _preload_content=False, _request_timeout=self.request_timeout
            ),
        )

    def update(self, namespace: str, name: str, record: LeaseRecord) -> LeaseRecord:
        """Replace the Lease's spec, on condition it is still at ``record.resource_version``."""
        operation = f"update lease {namespace}/{name}"
        metadata: dict[str, Any] = {"name": name, "namespace": namespace}
        if record.resource_version is not None:
            metadata["resourceVersion"] = record.resource_version
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": record.spec(),
        }
        lease = _lease(body)
        return self._write(
            operation,
            lambda: self._coordination.replace_namespaced_lease(
                name,
                namespace,
                lease,
                _preload_content=False,
                _request_timeout=self.request_timeout,
            ),
        )

    def _write(self, operation: str, call: Callable[[], Any]) -> LeaseRecord:
        try:
            response = call()
        except client.ApiException as exc:
            error = kubernetes_error(operation, exc, host=self._host)
            if exc.status == 409:
                raise LeaseConflict(
                    operation, error.problem, status=409, reason=error.reason, host=self._host
                ) from exc
            raise error from exc
        except Exception as exc:
            raise kubernetes_error(operation, exc, host=self._host) from exc
        return _record(read_json(response, operation, host=self._host))

"""Prefetch Jobs (``batch/v1``) and the workload (Deployment or StatefulSet) they copy from and
belong to.

:class:`JobClient` is the executor's whole write path besides node labels and Events:

- :meth:`JobClient.create`: create a Job from a manifest dict
  (:func:`cache.prefetch_jobs.prefetch_job` builds it); ``409 AlreadyExists`` is not an error but
  ``False``: Job names are deterministic per (image, node), so a second reconcile of the same plan
  is a no-op, which is what makes the executor idempotent across ticks and across leader changes;
- :meth:`JobClient.list`: the Jobs in a namespace with the given labels (filtered here too, since
  a server or an emulator may return more than was asked for);
- :meth:`JobClient.delete`: delete a Job and its pod (``propagationPolicy: Background``); 404 is
  ``False``;
- :meth:`JobClient.read_workload`: the workload's Deployment or StatefulSet, raw: its ``uid``
  for the Jobs' owner reference (so deleting the workload deletes its prefetch Jobs) and its pod
  template, from which the Jobs take pull secrets, service account, tolerations and the
  placement rules the planner applies. None when it does not exist.

RBAC: ``jobs: create, delete, get, list, watch`` in the workloads' namespaces (watch is not used
today; listed so a Job informer can replace the per-tick list without a new role),
``deployments, statefulsets: get``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubernetes import client

from autoscaler.clients.kube import (
    DEFAULT_REQUEST_TIMEOUT,
    KubernetesError,
    api_host,
    call_json,
    format_selector,
    kubernetes_error,
    read_workload_call,
)

__all__ = ["JobClient"]


class JobClient:
    """Create, list and delete Jobs; read the workload's Deployment. Thread-safe."""

    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        request_timeout: tuple[float, float] = DEFAULT_REQUEST_TIMEOUT,
    ) -> None:
        self._batch = client.BatchV1Api(api_client)
        self._apps = client.AppsV1Api(api_client)
        self._custom = client.CustomObjectsApi(api_client)
        self._host = api_host(api_client)
        self.request_timeout = request_timeout

    def create(self, namespace: str, manifest: Mapping[str, Any]) -> bool:
        """Create the Job; False when a Job of that name already exists."""
        name = (manifest.get("metadata") or {}).get("name", "?")
        operation = f"create job {namespace}/{name}"
        try:
            body = client.V1Job.from_dict(dict(manifest))
            if body is None:  # pragma: no cover - only for a None input
                raise ValueError("the Job manifest did not validate")
        except Exception as exc:
            raise kubernetes_error(operation, exc, host=self._host) from exc
        created = call_json(
            operation,
            lambda: self._batch.create_namespaced_job(
                namespace, body, _preload_content=False, _request_timeout=self.request_timeout
            ),
            host=self._host,
            absent=(409,),
        )
        return created is not None

    def list(self, namespace: str, labels: Mapping[str, str]) -> list[dict[str, Any]]:
        """Jobs in ``namespace`` carrying all of ``labels``."""
        operation = f"list jobs in {namespace} with {format_selector(labels)}"
        answer = call_json(
            operation,
            lambda: self._batch.list_namespaced_job(
                namespace,
                label_selector=format_selector(labels),
                _preload_content=False,
                _request_timeout=self.request_timeout,
            ),
            host=self._host,
        )
        items = (answer or {}).get("items") or []
        if not isinstance(items, list):
            raise KubernetesError(operation, "items is not a list", host=self._host)
        out = []
        for item in items:
            if not isinstance(item, dict):
                continue
            have = (item.get("metadata") or {}).get("labels") or {}
            if all(have.get(k) == v for k, v in labels.items()):
                out.append(item)
        return out

    def delete(self, namespace: str, name: str) -> bool:
        """Delete the Job and (in the background) its pod; False when it was already gone."""
        operation = f"delete job {namespace}/{name}"
        deleted = call_json(
            operation,
            lambda: self._batch.delete_namespaced_job(
                name,
                namespace,
                propagation_policy="Background",
                _preload_content=False,
                _request_timeout=self.request_timeout,
            ),
            host=self._host,
            absent=(404,),
        )
        return deleted is not None

    def read_workload(
        self, namespace: str, name: str, kind: str = "Deployment"
    ) -> dict[str, Any] | None:
        """The workload (``kind``: Deployment, StatefulSet or LeaderWorkerSet) as a raw dict, or
        None when there is none."""
        if kind == "LeaderWorkerSet":
            api = self._custom
            return call_json(
                f"get leaderworkerset {namespace}/{name}",
                lambda: api.get_namespaced_custom_object(
                    "leaderworkerset.x-k8s.io",
                    "v1",
                    namespace,
                    "leaderworkersets",
                    name,
                    _preload_content=False,
                    _request_timeout=self.request_timeout,
                ),  # fmt: skip
                host=self._host,
                absent=(404,),
            )
        return call_json(
            f"get {kind.lower()} {namespace}/{name}",
            read_workload_call(self._apps, kind, namespace, name, self.request_timeout),
            host=self._host,
            absent=(404,),
        )

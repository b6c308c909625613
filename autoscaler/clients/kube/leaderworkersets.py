"""LeaderWorkerSet (``leaderworkerset.x-k8s.io/v1``) as a scale target: one replica = one group.

A model too large for one node runs as an LWS group: a leader pod and ``size - 1`` workers, one
engine across them. The group is the unit that scales, starts and fails together, so everything
the autoscaler counts in replicas is counted in groups here (the CRD's shape: kubernetes-sigs/lws
``config/crd/bases/leaderworkerset.x-k8s.io_leaderworkersets.yaml``):

* **scale subresource**: ``specReplicasPath .spec.replicas``, ``statusReplicasPath
  .status.replicas``, ``labelSelectorPath .status.hpaPodSelector`` (which selects the *leader*
  pods only, one per group): an HPA or KEDA scales groups through it, and :func:`read_scale` /
  :func:`patch_scale` read and write the same subresource;
* **group size**: ``spec.leaderWorkerTemplate.size`` (default 1: a leader alone);
* **pods**: labelled ``leaderworkerset.sigs.k8s.io/name``, ``/group-index`` and
  ``/worker-index`` (0 for the leader); the leader is ``<lws>-<group>``, workers
  ``<lws>-<group>-<worker>``;
* **readiness** is the group's: a group is ready when all ``size`` of its pods are Ready
  (:func:`group_states`); starting while any is not, and its lead time runs from the group's
  first pod's creation to its last pod's Ready transition;
* **GPU-hours** count every pod of every group (:func:`gpu_hours`).

The reading of pods into groups is pure (raw pod dicts in, :class:`GroupState` out); the I/O is
two small functions over the official client's ``CustomObjectsApi``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from kubernetes import client

from autoscaler.clients.kube import (
    DEFAULT_REQUEST_TIMEOUT,
    KubernetesError,
    api_host,
    call_json,
)
from autoscaler.core.replica_states import PodView, ReplicaState
from autoscaler.core.signals import ReplicaCounts

GROUP: Final = "leaderworkerset.x-k8s.io"
VERSION: Final = "v1"
PLURAL: Final = "leaderworkersets"
KIND: Final = "LeaderWorkerSet"
NAME_LABEL: Final = "leaderworkerset.sigs.k8s.io/name"
GROUP_INDEX_LABEL: Final = "leaderworkerset.sigs.k8s.io/group-index"
WORKER_INDEX_LABEL: Final = "leaderworkerset.sigs.k8s.io/worker-index"


@dataclass(frozen=True, slots=True)
class LwsScale:
    """What the scale subresource and the spec say about one LeaderWorkerSet."""

    name: str
    namespace: str
    spec_replicas: int
    """Groups asked for (``.spec.replicas``)."""
    status_replicas: int
    """Groups created (``.status.replicas``)."""
    ready_replicas: int
    """Groups ready (``.status.readyReplicas``)."""
    group_size: int
    """Pods per group (``.spec.leaderWorkerTemplate.size``)."""
    selector: str
    """The HPA's pod selector (``.status.hpaPodSelector``: leader pods only)."""


@dataclass(frozen=True, slots=True)
class GroupState:
    """One group as its pods show it."""

    index: int
    pods: int
    ready_pods: int
    created: float | None
    """Creation of the group's first pod (epoch seconds)."""
    ready_at: float | None
    """When its last pod became Ready, if all ``size`` are; None while starting."""
    nodes: tuple[str, ...]

    def ready(self, size: int) -> bool:
        return self.pods >= size and self.ready_pods >= size

    @property
    def lead_time_s(self) -> float | None:
        if self.created is None or self.ready_at is None:
            return None
        return max(0.0, self.ready_at - self.created)


def _int(value: object, where: str, default: int | None = None) -> int:
    if value is None and default is not None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise KubernetesError(f"read {where}", f"{value!r} is not a non-negative integer")
    return value


def parse_lws(obj: Mapping[str, Any]) -> LwsScale:
    """The scale-target view of a raw LeaderWorkerSet object; one clear error if malformed."""
    meta = obj.get("metadata") or {}
    name = str(meta.get("name", "?"))
    namespace = str(meta.get("namespace", "?"))
    where = f"leaderworkerset {namespace}/{name}"
    spec = obj.get("spec")
    if not isinstance(spec, Mapping):
        raise KubernetesError(f"read {where}", "it has no spec")
    template = spec.get("leaderWorkerTemplate")
    if not isinstance(template, Mapping):
        raise KubernetesError(f"read {where}", "spec.leaderWorkerTemplate is missing")
    size = _int(template.get("size"), f"{where} spec.leaderWorkerTemplate.size", default=1)
    if size < 1:
        raise KubernetesError(f"read {where}", "spec.leaderWorkerTemplate.size is below 1")
    status = obj.get("status") or {}
    return LwsScale(
        name=name,
        namespace=namespace,
        spec_replicas=_int(spec.get("replicas"), f"{where} spec.replicas", default=1),
        status_replicas=_int(status.get("replicas"), f"{where} status.replicas", default=0),
        ready_replicas=_int(status.get("readyReplicas"), f"{where} status.readyReplicas", 0),
        group_size=size,
        selector=str(status.get("hpaPodSelector") or ""),
    )


def read_lws(
    api_client: client.ApiClient,
    namespace: str,
    name: str,
    *,
    request_timeout: tuple[float, float] = DEFAULT_REQUEST_TIMEOUT,
) -> LwsScale | None:
    """GET the LeaderWorkerSet; None when it (or the LWS API) is not there (404)."""
    body = _call_lws(
        api_client,
        f"get leaderworkerset {namespace}/{name}",
        "get_namespaced_custom_object",
        namespace,
        name,
        request_timeout=request_timeout,
        absent=(404,),
    )
    return None if body is None else parse_lws(body)


def _call_lws(
    api_client: client.ApiClient,
    operation: str,
    method: str,
    namespace: str,
    name: str,
    *body: object,
    request_timeout: tuple[float, float],
    absent: tuple[int, ...] = (),
) -> dict[str, Any] | None:
    """One ``CustomObjectsApi`` call on a LeaderWorkerSet (or its scale subresource), its JSON
    answer read through :func:`call_json` (one error type, the operation named)."""
    api = client.CustomObjectsApi(api_client)
    call = getattr(api, method)
    return call_json(
        operation,
        lambda: call(
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
            *body,
            _preload_content=False,
            _request_timeout=request_timeout,
        ),  # fmt: skip
        host=api_host(api_client),
        absent=absent,
    )


def read_scale(
    api_client: client.ApiClient,
    namespace: str,
    name: str,
    *,
    request_timeout: tuple[float, float] = DEFAULT_REQUEST_TIMEOUT,
) -> tuple[int, int, str] | None:
    """The scale subresource as an HPA reads it: (spec replicas, status replicas, selector)."""
    operation = f"get leaderworkerset {namespace}/{name} scale"
    body = _call_lws(
        api_client,
        operation,
        "get_namespaced_custom_object_scale",
        namespace,
        name,
        request_timeout=request_timeout,
        absent=(404,),
    )
    if body is None:
        return None
    spec, status = body.get("spec") or {}, body.get("status") or {}
    return (
        _int(spec.get("replicas"), f"{operation} spec.replicas", default=0),
        _int(status.get("replicas"), f"{operation} status.replicas", default=0),
        str(status.get("selector") or ""),
    )


def patch_scale(
    api_client: client.ApiClient,
    namespace: str,
    name: str,
    groups: int,
    *,
    request_timeout: tuple[float, float] = DEFAULT_REQUEST_TIMEOUT,
) -> int:
    """Set the group count through the scale subresource (a native actuator's write); returns
    the count the API answered."""
    if groups < 0:
        raise ValueError(f"groups must be >= 0, got {groups}")
    operation = f"patch leaderworkerset {namespace}/{name} scale"
    body = _call_lws(
        api_client,
        operation,
        "patch_namespaced_custom_object_scale",
        namespace,
        name,
        {"spec": {"replicas": groups}},
        request_timeout=request_timeout,
    )
    assert body is not None
    return _int((body.get("spec") or {}).get("replicas"), f"{operation} spec.replicas", 0)


def list_group_pods(
    api_client: client.ApiClient,
    namespace: str,
    name: str,
    *,
    request_timeout: tuple[float, float] = DEFAULT_REQUEST_TIMEOUT,
) -> list[dict[str, Any]]:
    """Every pod of every group of ``name`` (leaders and workers: the HPA's selector would
    return leaders only), as raw dicts for :func:`group_states`."""
    core = client.CoreV1Api(api_client)
    operation = f"list pods of leaderworkerset {namespace}/{name}"
    body = call_json(
        operation,
        lambda: core.list_namespaced_pod(
            namespace,
            label_selector=f"{NAME_LABEL}={name}",
            _preload_content=False,
            _request_timeout=request_timeout,
        ),  # fmt: skip
        host=api_host(api_client),
    )
    items = (body or {}).get("items") or []
    if not isinstance(items, list):
        raise KubernetesError(operation, "items is not a list", host=api_host(api_client))
    return [item for item in items if isinstance(item, dict)]


# -- pods into groups (pure) ---------------------------------------------------------------------


def _time(value: object) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _ready_since(pod: Mapping[str, Any]) -> float | None:
    """When the pod's Ready condition turned True; None if it is not Ready."""
    for cond in (pod.get("status") or {}).get("conditions") or ():
        if isinstance(cond, Mapping) and cond.get("type") == "Ready":
            if cond.get("status") != "True":
                return None
            return _time(cond.get("lastTransitionTime")) or 0.0
    return None


def group_states(pods: Iterable[Mapping[str, Any]], lws_name: str) -> list[GroupState]:
    """The groups of ``lws_name`` from raw pod dicts (others' pods and deleted ones ignored)."""
    members: dict[int, list[Mapping[str, Any]]] = {}
    for pod in pods:
        meta = pod.get("metadata") or {}
        labels = meta.get("labels") or {}
        if labels.get(NAME_LABEL) != lws_name or meta.get("deletionTimestamp"):
            continue
        try:
            index = int(labels.get(GROUP_INDEX_LABEL, ""))
        except ValueError:
            continue  # hashed group identities are not numbered; counted by neither
        members.setdefault(index, []).append(pod)
    out: list[GroupState] = []
    for index in sorted(members):
        group = members[index]
        created = [t for t in (_time((p.get("metadata") or {}).get("creationTimestamp"))
                               for p in group) if t is not None]  # fmt: skip
        ready = [_ready_since(p) for p in group]
        ready_times = [t for t in ready if t is not None]
        nodes = tuple(
            sorted({str(n) for p in group if (n := (p.get("spec") or {}).get("nodeName"))})
        )
        out.append(
            GroupState(
                index=index,
                pods=len(group),
                ready_pods=len(ready_times),
                created=min(created) if created else None,
                ready_at=max(ready_times) if len(ready_times) == len(group) else None,
                nodes=nodes,
            )
        )
    return out


def view_groups(pods: Iterable[PodView], lws_name: str) -> list[GroupState]:
    """The groups of ``lws_name`` from the pod watch's parsed pods (as :func:`group_states`
    from raw ones; terminating pods left out, no node names: the watch does not keep them)."""
    members: dict[int, list[PodView]] = {}
    for pod in pods:
        if pod.labels.get(NAME_LABEL) != lws_name or pod.state is ReplicaState.TERMINATING:
            continue
        try:
            index = int(pod.labels.get(GROUP_INDEX_LABEL, ""))
        except ValueError:
            continue
        members.setdefault(index, []).append(pod)
    out: list[GroupState] = []
    for index in sorted(members):
        group = members[index]
        ready = [p.ready_at for p in group if p.state is ReplicaState.READY]
        ready_times = [t if t is not None else 0.0 for t in ready]
        out.append(
            GroupState(
                index=index,
                pods=len(group),
                ready_pods=len(ready_times),
                created=min(p.created_at for p in group),
                ready_at=max(ready_times) if len(ready_times) == len(group) else None,
                nodes=(),
            )
        )
    return out


def replica_counts(groups: list[GroupState], size: int, now: float) -> ReplicaCounts:
    """Replica states in groups: ready when all ``size`` pods are, else starting."""
    ready = [g for g in groups if g.ready(size)]
    starting = [g for g in groups if not g.ready(size)]
    ages = sorted((now - g.created for g in starting if g.created is not None), reverse=True)
    return ReplicaCounts(
        spec=len(groups),
        ready=len(ready),
        starting=len(starting),
        pending=0,
        terminating=0,
        oldest_unready_age_s=ages[0] if ages else 0.0,
        starting_ages_s=tuple(ages),
    )


def group_lead_times(groups: Iterable[GroupState], size: int) -> list[float]:
    """Creation-to-Ready of every ready group (the lead time's observations)."""
    return [t for g in groups if g.ready(size) and (t := g.lead_time_s) is not None]


def gpu_hours(groups: Iterable[GroupState], gpus_per_pod: int, now: float) -> float:
    """GPU-hours held so far by every pod of every group (from each group's creation)."""
    total = 0.0
    for g in groups:
        if g.created is not None:
            total += g.pods * gpus_per_pod * max(0.0, now - g.created)
    return total / 3600.0


def nodes_to_warm(groups_to_add: int, size: int, pods_per_node: int = 1) -> int:
    """Nodes a scale-up of ``groups_to_add`` groups lands on: every pod of a group runs on its
    own share of nodes, so the prefetcher must warm ``ceil(size / pods_per_node)`` nodes per
    group, not one per replica as for a single-pod engine."""
    if groups_to_add <= 0:
        return 0
    per_group = -(-size // max(1, pods_per_node))
    return groups_to_add * per_group

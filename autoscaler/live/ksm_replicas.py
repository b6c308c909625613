"""Replica states from kube-state-metrics series in Prometheus, instead of a pod watch.

For clusters where the service may not list and watch pods (or runs with ``--no-kubernetes``)
but Prometheus scrapes kube-state-metrics (KSM). Config ``service.replica_source:
kube-state-metrics``. The same states as the watch (:mod:`autoscaler.core.replica_states`), in the
same order:

1. phase ``Succeeded``/``Failed``: not a replica;
2. a deletion timestamp (``kube_pod_deletion_timestamp``, ``kube_pod_deleted`` before KSM 2.x
   renamed it): **terminating**;
3. phase ``Running`` and ``kube_pod_status_ready{condition="true"}`` 1: **ready**;
4. ``kube_pod_status_scheduled{condition="true"}`` not 1: **pending**;
5. otherwise **starting**.

A workload's pods are found by ownership, not by label (KSM exports pod labels only when they
are allowlisted): a Deployment's through ``kube_pod_owner`` (pod → ReplicaSet) and
``kube_replicaset_owner`` (ReplicaSet → Deployment), a StatefulSet's directly. Ages count from
``kube_pod_created``. The time to ready is ``kube_pod_status_ready_time`` − created where KSM
exports it; otherwise the first tick that saw the pod Ready stands in for the Ready time (one
tick of resolution), for pods first seen not Ready (a pod Ready before the service started has
no known Ready time and is not counted).

One refresh per tick runs the same 10 queries for every workload (the namespaces are a regex
matcher), so the query count does not grow with the workloads. A query that fails raises, and
the loop holds the workloads (fail static). No KSM series at all, or a workload with neither
pods nor a ``spec.replicas`` series, raises too, rather than reporting zero replicas: an
unscraped KSM must not look like an empty fleet.

Known limits: series lag by KSM's and Prometheus' scrape intervals (tens of seconds), and a
pod deleted in between is missed.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from autoscaler.clients.prometheus import PrometheusAPI, Sample
from autoscaler.config import WorkloadConfig
from autoscaler.core.replica_states import PodView, ReplicaState, TimeToReadyWindow, replica_counts
from autoscaler.core.signals import ReplicaCounts

__all__ = ["KubeStateMetricsReplicas", "KsmPod", "ksm_queries", "pods_by_workload"]

_FINISHED: Final = frozenset({"Succeeded", "Failed"})


def ksm_queries(namespaces: Iterable[str]) -> dict[str, str]:
    """The tick's queries by role; ``namespaces`` become one regex matcher."""
    ns = "|".join(sorted({re.escape(n) for n in namespaces}))
    sel = f'namespace=~"{ns}"'
    return {
        "owner": f"kube_pod_owner{{{sel}}}",
        "rs_owner": f'kube_replicaset_owner{{{sel},owner_kind="Deployment"}}',
        "phase": f"kube_pod_status_phase{{{sel}}} == 1",
        "ready": f'kube_pod_status_ready{{{sel},condition="true"}}',
        "scheduled": f'kube_pod_status_scheduled{{{sel},condition="true"}}',
        "created": f"kube_pod_created{{{sel}}}",
        "deleted": f"kube_pod_deletion_timestamp{{{sel}}} or kube_pod_deleted{{{sel}}}",
        "ready_time": f"kube_pod_status_ready_time{{{sel}}}",
        "deployment_spec": f"kube_deployment_spec_replicas{{{sel}}}",
        "statefulset_spec": f"kube_statefulset_replicas{{{sel}}}",
    }


@dataclass(frozen=True, slots=True)
class KsmPod:
    """One pod as KSM shows it: enough to classify it, and which workload owns it."""

    namespace: str
    name: str
    uid: str
    owner: tuple[str, str] | None
    """(kind, name) of the owning workload (Deployment or StatefulSet), None for neither."""
    phase: str
    ready: bool
    scheduled: bool
    deleting: bool
    created_at: float
    ready_at: float | None


def _by_pod(samples: Sequence[Sample]) -> dict[tuple[str, str], Sample]:
    out: dict[tuple[str, str], Sample] = {}
    for s in samples:
        ns, pod = s.labels.get("namespace"), s.labels.get("pod")
        if ns and pod:
            out[(ns, pod)] = s
    return out


def pods_by_workload(
    results: Mapping[str, Sequence[Sample]],
) -> dict[tuple[str, str, str], list[KsmPod]]:
    """Pure: the query results of :func:`ksm_queries` → pods per (namespace, kind, name).

    Pods without a creation time, finished pods and pods owned by something else are left out.
    """
    rs_to_deployment = {
        (s.labels.get("namespace", ""), s.labels.get("replicaset", "")): s.labels.get(
            "owner_name", ""
        )
        for s in results.get("rs_owner", ())
    }
    owners: dict[tuple[str, str], tuple[str, str]] = {}
    for s in results.get("owner", ()):
        ns, pod = s.labels.get("namespace", ""), s.labels.get("pod", "")
        kind, name = s.labels.get("owner_kind", ""), s.labels.get("owner_name", "")
        if kind == "ReplicaSet" and (ns, name) in rs_to_deployment:
            owners[(ns, pod)] = ("Deployment", rs_to_deployment[(ns, name)])
        elif kind == "StatefulSet":
            owners[(ns, pod)] = ("StatefulSet", name)
    phase = {k: s.labels.get("phase", "") for k, s in _by_pod(results.get("phase", ())).items()}
    ready = _by_pod(results.get("ready", ()))
    scheduled = _by_pod(results.get("scheduled", ()))
    deleted = _by_pod(results.get("deleted", ()))
    ready_time = _by_pod(results.get("ready_time", ()))
    out: dict[tuple[str, str, str], list[KsmPod]] = {}
    for (ns, pod), created in _by_pod(results.get("created", ())).items():
        owner = owners.get((ns, pod))
        p = phase.get((ns, pod), "Pending")
        if owner is None or p in _FINISHED or not math.isfinite(created.value):
            continue
        rt = ready_time.get((ns, pod))
        rt_value = rt.value if rt is not None and math.isfinite(rt.value) and rt.value > 0 else None
        is_ready = (ns, pod) in ready and ready[(ns, pod)].value == 1.0
        view = KsmPod(
            namespace=ns,
            name=pod,
            uid=created.labels.get("uid", ""),
            owner=owner,
            phase=p,
            ready=is_ready,
            scheduled=(ns, pod) in scheduled and scheduled[(ns, pod)].value == 1.0,
            deleting=(ns, pod) in deleted,
            created_at=created.value,
            ready_at=rt_value if is_ready else None,
        )
        out.setdefault((ns, owner[0], owner[1]), []).append(view)
    return out


def _state(pod: KsmPod) -> ReplicaState:
    if pod.deleting:
        return ReplicaState.TERMINATING
    if pod.phase == "Running" and pod.ready:
        return ReplicaState.READY
    if not pod.scheduled:
        return ReplicaState.PENDING
    return ReplicaState.STARTING


class KubeStateMetricsReplicas:
    """A :class:`~autoscaler.live.loop.ReplicaSource` reading kube-state-metrics through Prometheus.

    ``counts`` refreshes every workload at once the first time it is called for a new ``now``
    (the loop asks for every workload with the same tick time), so a tick costs 10 queries.
    """

    def __init__(
        self,
        prometheus: PrometheusAPI,
        workloads: Sequence[WorkloadConfig],
        *,
        time_to_ready_window: Callable[[], TimeToReadyWindow] = TimeToReadyWindow,
        budget_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.prometheus = prometheus
        self.budget_s = budget_s
        """Time a tick's queries may take, retries included (a share of the tick budget)."""
        self._clock = clock
        self._failed: tuple[float, Exception] | None = None
        self._workloads = {
            f"{w.namespace}/{w.name}": (w.namespace, w.kind, w.name) for w in workloads
        }
        self.queries = ksm_queries(w.namespace for w in workloads)
        self._at: float | None = None
        self._pods: dict[str, list[PodView]] = {}
        self._spec: dict[str, int] = {}
        self._problem: str | None = None
        self._first_ready: dict[str, float] = {}
        self._unready: set[str] = set()
        self._ttr = {key: time_to_ready_window() for key in self._workloads}

    def refresh(self, now: float) -> None:
        """Run the tick's queries and rebuild every workload's pods; raises on a failed query.

        With ``budget_s`` no query starts or retries past it (``PrometheusSlow``)."""
        self._at = None
        deadline = None if self.budget_s is None else self._clock() + self.budget_s
        results = {
            role: self.prometheus.query(q, at=now, deadline=deadline)
            for role, q in self.queries.items()
        }
        self._problem = (
            None
            if results["created"]
            else (
                "kube-state-metrics: no kube_pod_created series in the workloads' namespaces "
                "(is kube-state-metrics scraped?)"
            )
        )
        grouped = pods_by_workload(results)
        specs: dict[tuple[str, str, str], int] = {}
        for role, kind, label in (
            ("deployment_spec", "Deployment", "deployment"),
            ("statefulset_spec", "StatefulSet", "statefulset"),
        ):
            for s in results[role]:
                if math.isfinite(s.value) and s.value >= 0:
                    specs[(s.labels.get("namespace", ""), kind, s.labels.get(label, ""))] = int(
                        s.value
                    )
        self._pods, self._spec = {}, {}
        seen: set[str] = set()
        for key, ref in self._workloads.items():
            views = []
            for p in grouped.get(ref, ()):
                identity = p.uid or f"{p.namespace}/{p.name}@{p.created_at!r}"
                seen.add(identity)
                ready_at = p.ready_at
                if not p.ready:
                    self._unready.add(identity)
                elif ready_at is None and identity in self._unready:
                    # no ready-time series: the first tick that saw it Ready, for a pod seen
                    # before it was (one already Ready at start-up has no known Ready time)
                    ready_at = self._first_ready.setdefault(identity, now)
                view = PodView(p.namespace, p.name, p.uid, _state(p), p.created_at, ready_at)
                self._ttr[key].observe(view)
                views.append(view)
            self._pods[key] = views
            if ref in specs:
                self._spec[key] = specs[ref]
        self._first_ready = {k: v for k, v in self._first_ready.items() if k in seen}
        self._unready &= seen
        self._at = now

    def counts(self, key: str, now: float) -> ReplicaCounts:
        if key not in self._workloads:
            raise KeyError(f"workload {key} is not configured")
        if self._failed is not None and self._failed[0] == now:
            raise LookupError(f"kube-state-metrics: {self._failed[1]}")  # one try per tick
        if self._at != now:
            try:
                self.refresh(now)
            except Exception as exc:
                self._failed = (now, exc)
                raise LookupError(f"kube-state-metrics: {exc}") from exc
        if self._problem is not None:
            raise LookupError(self._problem)
        pods = self._pods.get(key, [])
        if not pods and key not in self._spec:
            _, kind, _ = self._workloads[key]
            raise LookupError(
                f"kube-state-metrics has neither pods nor spec.replicas of {kind} {key}"
            )
        return replica_counts(pods, now, spec=self._spec.get(key))

    def time_to_ready_s(self, key: str) -> float | None:
        window = self._ttr.get(key)
        return None if window is None else window.value()

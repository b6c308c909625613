"""The workload's existing autoscaler (shadow mode) and Events on the workload.

- :func:`read_current_autoscaler`: what the HPA that scales the workload decided
  (``status.currentReplicas`` / ``desiredReplicas``), so shadow mode can show ours next to it.
  KEDA is recognised through the HPA it generates (named ``keda-hpa-<scaledobject>`` unless the
  ScaledObject overrides it, and labelled ``scaledobject.keda.sh/name``), so no ScaledObject CRD
  needs to exist or be readable; the answer then names the ScaledObject, which is what the team
  edits. The choice among HPAs is pure (:func:`find_current_autoscaler`).
- :class:`EventRecorder`: core/v1 Events on the workload's Deployment or StatefulSet ("capacity
  unavailable", fail-static holds...), visible in ``kubectl describe``.

Event de-duplication bumps the count (as client-go's event correlator does), it does not drop:
an Event with the same (namespace, Deployment, reason) recorded within ``dedup_window_s``
(10 min) of the previous one is PATCHed with ``count + 1``, the new ``lastTimestamp`` and the
latest message, so ``kubectl`` shows "x7 over 12m" instead of seven lines or one stale line.
After a quiet window, or when the old Event is gone (Events expire after an hour by default),
a new Event is created. Hence RBAC ``events: create, patch``. Every service replica runs the
same loop and sees the same pods, so with ``leader`` given only the holder of the leader Lease
writes (the others return ``skipped``), and ``reportingInstance`` names the pod that did.

Both run synchronously on the ``kubernetes`` client; the asyncio loop calls them through
``asyncio.to_thread``. Failures never escape :meth:`EventRecorder.record` (they are logged and
returned as an :class:`EventOutcome`); :func:`read_current_autoscaler` raises only
:class:`~autoscaler.clients.kube.KubernetesError`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

from kubernetes import client

from autoscaler.clients.kube import (
    DEFAULT_REQUEST_TIMEOUT,
    WORKLOAD_KINDS,
    KubernetesError,
    kubernetes_error,
    read_json,
)
from autoscaler.core.current_autoscaler import CurrentAutoscaler

__all__ = [
    "CurrentAutoscalerReader",
    "EventOutcome",
    "EventRecorder",
    "EventType",
    "find_current_autoscaler",
    "read_current_autoscaler",
]

log = logging.getLogger(__name__)

_EVENT_API: dict[str, str] = {
    **{kind: "apps/v1" for kind in WORKLOAD_KINDS},
    "LeaderWorkerSet": "leaderworkerset.x-k8s.io/v1",
}
"""``apiVersion`` of the object an Event is about, by its kind."""

HPA_KIND: Final = "HorizontalPodAutoscaler"
KEDA_KIND: Final = "ScaledObject"
KEDA_LABEL: Final = "scaledobject.keda.sh/name"
KEDA_HPA_PREFIX: Final = "keda-hpa-"
_SCALED_KINDS: Final = frozenset({"Deployment", "StatefulSet"})
_MESSAGE_LIMIT: Final = 1024
"""Longest Event message we send (what client-go's recorder keeps, too)."""

EventType = Literal["Normal", "Warning"]


# -- the current autoscaler (shadow mode) ---------------------------------------------------------


def _replicas(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def _keda_owner(hpa: Mapping[str, Any]) -> str | None:
    """The ScaledObject behind a KEDA-generated HPA, or None for a plain HPA."""
    metadata = hpa.get("metadata") or {}
    labels = metadata.get("labels") or {}
    if isinstance(labels, Mapping) and isinstance(labels.get(KEDA_LABEL), str):
        return str(labels[KEDA_LABEL])
    for owner in metadata.get("ownerReferences") or []:
        if (
            isinstance(owner, Mapping)
            and owner.get("kind") == KEDA_KIND
            and str(owner.get("apiVersion", "")).startswith("keda.sh/")
            and isinstance(owner.get("name"), str)
        ):
            return str(owner["name"])
    name = metadata.get("name")
    if isinstance(name, str) and name.startswith(KEDA_HPA_PREFIX) and len(name) > 9:
        return name[len(KEDA_HPA_PREFIX) :]
    return None


def find_current_autoscaler(hpas: Iterable[object], workload_name: str) -> CurrentAutoscaler | None:
    """The autoscaler among ``hpas`` (raw autoscaling/v2 HPA dicts) that scales the workload.

    An HPA scales it when ``spec.scaleTargetRef`` names a Deployment or StatefulSet called
    ``workload_name``. Two HPAs on one target fight each other (the HPA controller reports
    ``AmbiguousSelector``); the first by name is used and the conflict is logged.
    """
    matches: list[tuple[str, Mapping[str, Any]]] = []
    for hpa in hpas:
        if not isinstance(hpa, Mapping):
            continue
        metadata = hpa.get("metadata")
        spec = hpa.get("spec")
        if not isinstance(metadata, Mapping) or not isinstance(spec, Mapping):
            continue
        target = spec.get("scaleTargetRef")
        name = metadata.get("name")
        if not isinstance(target, Mapping) or not isinstance(name, str):
            continue
        if target.get("kind") in _SCALED_KINDS and target.get("name") == workload_name:
            matches.append((name, hpa))
    if not matches:
        return None
    matches.sort(key=lambda pair: pair[0])
    if len(matches) > 1:
        log.warning(
            "HPAs %s all scale %s; reporting %s",
            ", ".join(name for name, _ in matches),
            workload_name,
            matches[0][0],
        )
    name, hpa = matches[0]
    status = hpa.get("status")
    status = status if isinstance(status, Mapping) else {}
    scaled_object = _keda_owner(hpa)
    return CurrentAutoscaler(
        kind=HPA_KIND if scaled_object is None else KEDA_KIND,
        name=name if scaled_object is None else scaled_object,
        current_replicas=_replicas(status.get("currentReplicas")),
        desired_replicas=_replicas(status.get("desiredReplicas")),
    )


def read_current_autoscaler(
    api_client: client.ApiClient,
    namespace: str,
    workload_name: str,
    *,
    request_timeout: tuple[float, float] = DEFAULT_REQUEST_TIMEOUT,
) -> CurrentAutoscaler | None:
    """What the workload's HPA (or KEDA's) decided; None when no autoscaler targets it.

    One list of the namespace's autoscaling/v2 HPAs (a namespace holds few). A 404 (the API
    group is not served) also means "none". Any other failure raises KubernetesError.
    """
    host = getattr(api_client.configuration, "host", None)
    operation = f"list horizontalpodautoscalers in {namespace}"
    try:
        response = client.AutoscalingV2Api(api_client).list_namespaced_horizontal_pod_autoscaler(
            namespace, _preload_content=False, _request_timeout=request_timeout
        )
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise kubernetes_error(operation, exc, host=host) from exc
    except Exception as exc:
        raise kubernetes_error(operation, exc, host=host) from exc
    items = read_json(response, operation, host=host).get("items") or []
    if not isinstance(items, list):
        raise KubernetesError(operation, "items is not a list", host=host)
    return find_current_autoscaler(items, workload_name)


class CurrentAutoscalerReader:
    """:func:`read_current_autoscaler` bound to a client: the loop's shadow source."""

    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        request_timeout: tuple[float, float] = DEFAULT_REQUEST_TIMEOUT,
    ) -> None:
        self._api = api_client
        self.request_timeout = request_timeout

    def current(self, namespace: str, name: str) -> CurrentAutoscaler | None:
        """What the autoscaler of ``namespace/name`` decided; raises KubernetesError."""
        return read_current_autoscaler(
            self._api, namespace, name, request_timeout=self.request_timeout
        )


# -- Events ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventOutcome:
    """What :meth:`EventRecorder.record` did."""

    action: Literal["created", "counted", "skipped", "failed"]
    """``created`` a new Event, ``counted`` (bumped an existing one), ``skipped`` (not the
    leader: another replica writes it), or ``failed``."""
    name: str | None = None
    """The Event object's name (None when nothing was written)."""
    count: int = 0
    error: KubernetesError | None = None

    @property
    def ok(self) -> bool:
        return self.action != "failed"


@dataclass(frozen=True, slots=True)
class _Recorded:
    name: str
    count: int
    last: float


def _release(response: object) -> None:
    """Hand a ``_preload_content=False`` response's connection back to the pool.

    The body (the object as stored) is not needed, but unread bytes would keep the connection
    from being re-used, so it is drained first.
    """
    for method in ("drain_conn", "release_conn"):
        step = getattr(response, method, None)
        if callable(step):
            step()


def _rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class EventRecorder:
    """Posts core/v1 Events about workloads (their Deployment or StatefulSet), de-duplicated by
    count.

    ``clock`` (Unix seconds) is injected for the window and the timestamps; ``instance`` is
    this replica's name (e.g. the pod name) for ``reportingInstance``; ``kinds`` maps a
    workload's ``namespace/name`` to its kind when it is not a Deployment, so the Event lands on
    the object ``kubectl describe`` shows. ``leader`` (e.g. ``LeaderElector.is_leader``) says
    whether this replica writes Events right now; None writes always (one replica). Thread-safe:
    one lock serialises records, so two threads cannot both create the Event for one key.
    """

    def __init__(
        self,
        api_client: client.ApiClient,
        component: str = "llm-autoscaler",
        *,
        instance: str | None = None,
        dedup_window_s: float = 600.0,
        clock: Callable[[], float] = time.time,
        request_timeout: tuple[float, float] = DEFAULT_REQUEST_TIMEOUT,
        kinds: Mapping[str, str] | None = None,
        leader: Callable[[], bool] | None = None,
    ) -> None:
        self._core = client.CoreV1Api(api_client)
        self.leader = leader
        self._host: str | None = getattr(api_client.configuration, "host", None)
        self.kinds: dict[str, str] = dict(kinds or {})
        for key, kind in self.kinds.items():
            if kind not in _EVENT_API:
                raise ValueError(f"workload {key}: kind {kind!r} is not one of {tuple(_EVENT_API)}")
        self.component = component
        self.instance = instance
        self.dedup_window_s = dedup_window_s
        self.clock = clock
        self.request_timeout = request_timeout
        self._lock = threading.Lock()
        self._recorded: dict[tuple[str, str, str], _Recorded] = {}

    def record(
        self,
        namespace: str,
        workload_name: str,
        reason: str,
        message: str,
        type: EventType = "Normal",
    ) -> EventOutcome:
        """Record ``reason``/``message`` on workload ``namespace/workload_name``.

        Never raises for API trouble: a failure is logged and returned (``action="failed"``
        with the :class:`KubernetesError`), because an Event is worth less than the tick that
        wanted to write it.
        """
        if type not in ("Normal", "Warning"):
            raise ValueError(f"event type must be Normal or Warning, got {type!r}")
        if not reason:
            raise ValueError("an Event needs a reason (UpperCamelCase, e.g. CapacityUnavailable)")
        if len(message) > _MESSAGE_LIMIT:
            message = message[: _MESSAGE_LIMIT - 3] + "..."
        if self.leader is not None and not self.leader():
            return EventOutcome("skipped")
        key = (namespace, workload_name, reason)
        with self._lock:
            now = self.clock()
            self._forget_older_than(now - self.dedup_window_s)
            previous = self._recorded.get(key)
            if previous is not None:
                outcome = self._bump(namespace, previous, message, now)
                if outcome is not None:
                    if outcome.ok:
                        self._recorded[key] = _Recorded(outcome.name or "", outcome.count, now)
                    return outcome
            outcome = self._create(namespace, workload_name, reason, message, type, now)
            if outcome.ok:
                self._recorded[key] = _Recorded(outcome.name or "", 1, now)
            return outcome

    def warn(self, namespace: str, name: str, reason: str, message: str) -> None:
        """A Warning Event on workload ``namespace/name`` (the loop's event sink); the
        outcome is logged by :meth:`record`, so a failure is not raised."""
        self.record(namespace, name, reason, message, "Warning")

    def _forget_older_than(self, cutoff: float) -> None:
        for key in [k for k, v in self._recorded.items() if v.last < cutoff]:
            del self._recorded[key]

    def _bump(
        self, namespace: str, previous: _Recorded, message: str, now: float
    ) -> EventOutcome | None:
        """PATCH the count up; None when the Event is gone and a new one should be created."""
        count = previous.count + 1
        operation = f"patch event {namespace}/{previous.name}"
        body = {"count": count, "lastTimestamp": _rfc3339(now), "message": message}
        try:
            response = self._core.patch_namespaced_event(
                previous.name,
                namespace,
                body,
                _preload_content=False,
                _request_timeout=self.request_timeout,
            )
            _release(response)
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            return self._failed(operation, exc)
        except Exception as exc:
            return self._failed(operation, exc)
        return EventOutcome("counted", previous.name, count)

    def _create(
        self,
        namespace: str,
        workload_name: str,
        reason: str,
        message: str,
        type: EventType,
        now: float,
    ) -> EventOutcome:
        # client-go's naming: the object's name and a unique hex suffix from the time.
        name = f"{workload_name}.{time.time_ns():x}"
        kind = self.kinds.get(f"{namespace}/{workload_name}", "Deployment")
        timestamp = _rfc3339(now)
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": {
                "apiVersion": _EVENT_API[kind],
                "kind": kind,
                "name": workload_name,
                "namespace": namespace,
            },
            "reason": reason,
            "message": message,
            "type": type,
            "count": 1,
            "firstTimestamp": timestamp,
            "lastTimestamp": timestamp,
            "source": {"component": self.component},
            "reportingComponent": self.component,
        }
        if self.instance:
            body["reportingInstance"] = self.instance
        operation = f"create event {reason} on {kind.lower()} {namespace}/{workload_name}"
        try:
            event = client.CoreV1Event.from_dict(body)
            if event is None:  # pragma: no cover - only for a None input
                raise ValueError("the Event body did not validate")
            response = self._core.create_namespaced_event(
                namespace, event, _preload_content=False, _request_timeout=self.request_timeout
            )
            _release(response)
        except Exception as exc:
            return self._failed(operation, exc)
        return EventOutcome("created", name, 1)

    def _failed(self, operation: str, exc: BaseException) -> EventOutcome:
        error = kubernetes_error(operation, exc, host=self._host)
        log.warning("%s; event not recorded", error)
        return EventOutcome("failed", error=error)

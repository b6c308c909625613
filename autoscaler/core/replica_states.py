"""Replica states of a workload from its pods, as the Kubernetes API shows them.

Pure: no Kubernetes client import. Everything works on the plain dicts the API returns (a watch
event's raw object, or ``ApiClient.sanitize_for_serialization(pod)``), with camelCase keys, so
the same code serves the live watcher (:mod:`autoscaler.clients.kube.pods`), tests and the
simulator.

A pod is in exactly one state, decided in this order:

1. ``Succeeded`` / ``Failed`` phase: finished, not a replica at all (ignored). A finished pod
   holds no GPU and serves nothing, whether or not it is also being deleted.
2. ``metadata.deletionTimestamp`` set: **terminating** (draining in-flight requests).
3. phase ``Running`` and condition ``Ready=True``: **ready** (serving).
4. no ``spec.nodeName``, or condition ``PodScheduled=False``: **pending** (waiting for a node
   or a free GPU).
5. anything else: **starting** (scheduled; pulling the image, loading the model).

Ages count from ``metadata.creationTimestamp``: a replica's lead time runs from the moment the
scale-up created it, pending time included, because that is the delay the forecast horizon has
to cover. (A pod that was Ready and dropped out of readiness therefore shows its full age; it is
rare for a model server and errs towards "capacity is not coming".)

Malformed objects (not a mapping, no name, a missing or unparseable creationTimestamp, a field
of the wrong type) are skipped with a logged warning by :func:`parse_pods`; a single
:class:`MalformedPodError` tells what and where when :func:`parse_pod` is called directly. A bad
Ready ``lastTransitionTime`` on an otherwise good pod only costs its time-to-ready observation:
the pod still counts, since under-counting ready replicas would scale up for nothing.
"""

from __future__ import annotations

import logging
import math
import statistics
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Final

from autoscaler.core.signals import ReplicaCounts

__all__ = [
    "DEFAULT_LEAD_TIME_S",
    "DEFAULT_PENDING_TIMEOUT_S",
    "DEFAULT_TIME_TO_READY_WINDOW",
    "MalformedPodError",
    "PodView",
    "ReplicaState",
    "TimeToReadyWindow",
    "lead_time_s",
    "over_pending_timeout",
    "parse_pod",
    "parse_pods",
    "parse_timestamp",
    "pod_state",
    "replica_counts",
    "selector_matches",
]

log = logging.getLogger(__name__)

DEFAULT_TIME_TO_READY_WINDOW: Final = 10
"""How many recent time-to-ready observations the lead time summarises (see TimeToReadyWindow).
The simulator keeps the same window and summary (:func:`lead_time_s`), so a benchmark's lead time
is the one ``serve`` would observe for the same starts."""

DEFAULT_LEAD_TIME_S: Final = 240.0
"""Lead time until a replica has been seen becoming ready: DESIGN.md's default cold start."""

DEFAULT_PENDING_TIMEOUT_S: Final = 600.0
"""How long a replica may be pending or starting before it stops counting as capacity on the way
(DESIGN.md: 10 min, e.g. no free GPU); ``service.pending_timeout_s`` overrides it live."""

_FINISHED_PHASES: Final = frozenset({"Succeeded", "Failed"})


class ReplicaState(Enum):
    """Where a replica is in its life (DESIGN.md, "Signals": state)."""

    READY = "ready"
    STARTING = "starting"
    PENDING = "pending"
    TERMINATING = "terminating"


class MalformedPodError(ValueError):
    """A pod object lacks a field this module needs, or has one of the wrong type or format.

    ``where`` names the pod (``namespace/name``, or ``<unnamed pod>``) and ``problem`` the field,
    so the warning in the log points at the object to look at.
    """

    def __init__(self, where: str, problem: str) -> None:
        self.where = where
        self.problem = problem
        super().__init__(f"pod {where}: {problem}")


@dataclass(frozen=True, slots=True)
class PodView:
    """The few facts of one live pod that replica counting needs, parsed once."""

    namespace: str
    name: str
    uid: str
    """``metadata.uid``; empty when the object has none (then identity falls back to the name
    and creation time)."""
    state: ReplicaState
    created_at: float
    """``metadata.creationTimestamp`` as Unix seconds."""
    ready_at: float | None = None
    """``lastTransitionTime`` of the ``Ready=True`` condition, as Unix seconds; None when the
    pod is not Ready or the time is missing or unreadable."""
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def identity(self) -> str:
        """Stable across updates of one pod, different for a re-created pod of the same name
        (StatefulSets re-use names)."""
        return self.uid or f"{self.key}@{self.created_at!r}"

    def age_s(self, now: float) -> float:
        """Seconds since creation, never negative (clock skew between us and the API server)."""
        return max(0.0, now - self.created_at)

    @property
    def time_to_ready_s(self) -> float | None:
        """Creation to Ready, or None when unknown or negative (skewed or edited timestamps)."""
        if self.ready_at is None or self.ready_at < self.created_at:
            return None
        return self.ready_at - self.created_at


def parse_timestamp(value: object) -> float:
    """Unix seconds of an RFC 3339 time as the API writes it (``2024-05-01T12:00:00Z``).

    Fractional seconds and numeric offsets are accepted; a time without an offset is taken as
    UTC (the API always writes UTC). ``ValueError`` for anything else.
    """
    if not isinstance(value, str) or not value:
        raise ValueError(f"{value!r} is not an RFC 3339 timestamp")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not an RFC 3339 timestamp") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    seconds = parsed.timestamp()
    if not math.isfinite(seconds):  # pragma: no cover - datetime cannot hold these
        raise ValueError(f"{value!r} is out of range")
    return seconds


def selector_matches(labels: Mapping[str, str], selector: Mapping[str, str]) -> bool:
    """Equality-based label selection: every ``key=value`` of ``selector`` is in ``labels``."""
    return all(labels.get(key) == value for key, value in selector.items())


def _mapping(obj: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise MalformedPodError(where, f"{key} is a {type(value).__name__}, not an object")
    return value


def _identify(obj: object) -> tuple[Mapping[str, Any], str, str]:
    """``(metadata, namespace, name)``, or MalformedPodError when the object cannot be named."""
    if not isinstance(obj, Mapping):
        raise MalformedPodError("<unnamed pod>", f"a {type(obj).__name__}, not an object")
    metadata = obj.get("metadata")
    if not isinstance(metadata, Mapping):
        raise MalformedPodError("<unnamed pod>", "metadata is missing or not an object")
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        raise MalformedPodError("<unnamed pod>", "metadata.name is missing")
    namespace = metadata.get("namespace", "")
    if not isinstance(namespace, str):
        raise MalformedPodError(name, "metadata.namespace is not a string")
    return metadata, namespace, name


def _conditions(status: Mapping[str, Any], where: str) -> dict[str, Mapping[str, Any]]:
    raw = status.get("conditions")
    if raw is None:
        return {}
    if not isinstance(raw, list):
        raise MalformedPodError(where, "status.conditions is not a list")
    found: dict[str, Mapping[str, Any]] = {}
    for i, condition in enumerate(raw):
        if not isinstance(condition, Mapping) or not isinstance(condition.get("type"), str):
            raise MalformedPodError(where, f"status.conditions[{i}] has no type")
        found[condition["type"]] = condition
    return found


def pod_state(obj: object) -> ReplicaState | None:
    """The state of one pod object; None for a finished (Succeeded/Failed) pod."""
    view = parse_pod(obj)
    return None if view is None else view.state


def parse_pod(obj: object) -> PodView | None:
    """The :class:`PodView` of one pod object; None for a finished pod.

    Raises :class:`MalformedPodError` when the object cannot be classified or dated.
    """
    metadata, namespace, name = _identify(obj)
    assert isinstance(obj, Mapping)  # checked by _identify; for the type checker
    where = f"{namespace}/{name}" if namespace else name
    spec = _mapping(obj, "spec", where)
    status = _mapping(obj, "status", where)
    phase = status.get("phase")
    if phase is not None and not isinstance(phase, str):
        raise MalformedPodError(where, "status.phase is not a string")
    try:
        created_at = parse_timestamp(metadata.get("creationTimestamp"))
    except ValueError as exc:
        raise MalformedPodError(where, f"metadata.creationTimestamp: {exc}") from exc
    labels = metadata.get("labels") or {}
    if not isinstance(labels, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
    ):
        raise MalformedPodError(where, "metadata.labels is not a string map")
    uid = metadata.get("uid") or ""
    if not isinstance(uid, str):
        raise MalformedPodError(where, "metadata.uid is not a string")
    conditions = _conditions(status, where)
    if phase in _FINISHED_PHASES:
        return None

    ready_condition = conditions.get("Ready", {})
    is_ready_condition = ready_condition.get("status") == "True"
    ready_at: float | None = None
    if is_ready_condition:
        try:
            ready_at = parse_timestamp(ready_condition.get("lastTransitionTime"))
        except ValueError as exc:
            log.warning("pod %s: no time to ready from its Ready condition: %s", where, exc)

    node_name = spec.get("nodeName")
    scheduled = conditions.get("PodScheduled", {}).get("status")
    if metadata.get("deletionTimestamp"):
        state = ReplicaState.TERMINATING
    elif phase == "Running" and is_ready_condition:
        state = ReplicaState.READY
    elif not node_name or scheduled == "False":
        state = ReplicaState.PENDING
    else:
        state = ReplicaState.STARTING
    return PodView(
        namespace=namespace,
        name=name,
        uid=uid,
        state=state,
        created_at=created_at,
        ready_at=ready_at,
        labels=dict(labels),
    )


def parse_pods(objs: Iterable[object]) -> list[PodView]:
    """The live pods among ``objs``: finished pods dropped, malformed ones logged and skipped."""
    views = []
    for obj in objs:
        try:
            view = parse_pod(obj)
        except MalformedPodError as exc:
            log.warning("skipping malformed %s", exc)
            continue
        if view is not None:
            views.append(view)
    return views


def _unready_oldest_first(pods: Iterable[PodView]) -> list[PodView]:
    unready = [p for p in pods if p.state in (ReplicaState.PENDING, ReplicaState.STARTING)]
    return sorted(unready, key=lambda p: (p.created_at, p.key))


def replica_counts(pods: Iterable[PodView], now: float, spec: int | None = None) -> ReplicaCounts:
    """Count a workload's live pods by state at ``now`` (Unix seconds).

    ``spec`` is the scale target's ``spec.replicas`` when known; without it the desired count is
    taken as ready + starting + pending (what exists and is not on its way out).
    """
    pods = list(pods)
    by_state = {state: 0 for state in ReplicaState}
    for pod in pods:
        by_state[pod.state] += 1
    ages = tuple(p.age_s(now) for p in _unready_oldest_first(pods))
    alive = by_state[ReplicaState.READY] + by_state[ReplicaState.STARTING]
    alive += by_state[ReplicaState.PENDING]
    return ReplicaCounts(
        spec=alive if spec is None else spec,
        ready=by_state[ReplicaState.READY],
        starting=by_state[ReplicaState.STARTING],
        pending=by_state[ReplicaState.PENDING],
        terminating=by_state[ReplicaState.TERMINATING],
        oldest_unready_age_s=ages[0] if ages else 0.0,
        starting_ages_s=ages,
    )


def over_pending_timeout(
    pods: Iterable[PodView], now: float, pending_timeout_s: float
) -> list[PodView]:
    """Pending or starting replicas older than ``pending_timeout_s``, oldest first.

    DESIGN.md: such replicas stop counting as capacity on the way (e.g. no free GPU), and the
    loop emits a "capacity unavailable" Event naming them.
    """
    return [p for p in _unready_oldest_first(pods) if p.age_s(now) > pending_timeout_s]


class TimeToReadyWindow:
    """The workload's lead time: the median creation-to-Ready time of its last ``size`` replicas.

    Why a median of the last 10: single replicas differ a lot for reasons that are not the
    workload's lead time — a warm node (modelcar already pulled) readies in a minute, a cold one
    in several, and one replica that waited 20 minutes for a GPU node would drag a mean far off.
    The median ignores up to 4 such outliers in 10, yet follows a lasting change (prefetch
    warming the nodes, a bigger image) within about 6 new replicas. Observations are ordered by
    when the replica turned Ready, so "last" means most recent even when a re-list delivers old
    pods in any order.

    Each pod is observed once, the first time it is seen Ready: a pod that flaps out of
    readiness and back would otherwise report its whole age again. The memory of observed pods
    is bounded (``memory`` identities, oldest forgotten first); a forgotten pod that is seen
    again can only re-enter if it is still among the ``size`` most recent, which a forgotten
    pod is not.

    Not thread-safe by itself; the watcher calls it under its own lock.
    """

    def __init__(self, size: int = DEFAULT_TIME_TO_READY_WINDOW, memory: int = 4096) -> None:
        if size < 1:
            raise ValueError(f"size must be at least 1, got {size}")
        self.size = size
        self.memory = max(memory, size)
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._window: list[tuple[float, float]] = []  # (ready_at, time_to_ready), by ready_at

    def observe(self, pod: PodView) -> float | None:
        """Record ``pod``'s time to ready if it is Ready and new; returns what was recorded."""
        ttr = pod.time_to_ready_s
        if ttr is None or pod.identity in self._seen:
            return None
        assert pod.ready_at is not None  # implied by ttr
        self._seen[pod.identity] = None
        while len(self._seen) > self.memory:
            self._seen.popitem(last=False)
        self._window.append((pod.ready_at, ttr))
        self._window.sort()
        del self._window[: -self.size]
        return ttr

    def observations(self) -> tuple[float, ...]:
        """The recorded times to ready, oldest Ready first."""
        return tuple(ttr for _, ttr in self._window)

    def value(self) -> float | None:
        """The median of the window, or None before any replica was seen turning Ready."""
        return lead_time_s(self.observations())


def lead_time_s(observations: Sequence[float]) -> float | None:
    """The robust summary of times to ready (their median); None for no observations."""
    if not observations:
        return None
    return float(statistics.median(observations))

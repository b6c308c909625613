"""Replica states of the scaled workloads, kept current by a list + watch of their pods.

:class:`PodWatcher` does what a client-go informer does, on the synchronous ``kubernetes``
client, in background threads:

- **list, then watch from the list's resourceVersion** (``allowWatchBookmarks`` on, so a quiet
  watch still advances its resourceVersion and a reconnect does not fall behind);
- a watch that **ends cleanly** (the server's ``timeoutSeconds``) is resumed from the last
  resourceVersion seen, without a list;
- **410 Gone** (resourceVersion too old: as an HTTP status or as an ``ERROR`` event) means
  re-list at once, then watch again;
- **any other failure** (connection refused or dropped, 5xx, 403, a broken stream) is logged,
  followed by a capped exponential back-off (0.5 s doubling to 30 s) and a re-list, because
  events may have been missed. The back-off starts over only once a watch has delivered
  events: a successful list alone proves little (RBAC may allow list but not watch);
- 410 again right after a fresh list is treated as a failure (back-off), not a hot loop;
- ``stop()`` returns promptly: it sets a flag every wait observes and shuts down the socket of
  the running watch (``Watch.stop()``), so a thread blocked on a silent stream wakes up. A
  plain request in flight ends within its read timeout; ``stop()`` waits at most
  ``stop_timeout_s`` for it.

**One watch per (namespace, label selector)**, shared by workloads that have the same pair. Not
one watch per namespace with a union of selectors: a label selector is an AND of requirements,
so a union can only be sent when the selectors differ in one key (``app in (a,b)``), not in
general (``app=a`` or ``tier=gpu,team=x``); watching the whole namespace instead would stream
every unrelated pod (batch jobs, other teams' services) through this process. A handful of
workloads means a handful of long-lived connections, which the API server handles well.
Objects are also checked against the selector here, because a server (or an emulator) may
return more than was asked for; a pod that stops matching is dropped like a deleted one.

The scale target's ``spec.replicas`` (the ``apps/v1`` Deployment or StatefulSet named like the
workload, ``WatchedWorkload.kind``) is read by one more thread every ``spec_interval_s``; a
missing one (404) means "unknown"
and :func:`~autoscaler.core.replica_states.replica_counts` falls back to the pods it sees.

A **LeaderWorkerSet** counts in groups (:mod:`.leaderworkersets`): that thread also reads its
group size; pods (leaders and workers: the selector must match both) are grouped by
``group-index``, a group is ready when all its pods are, and its lead time runs from creation to
its last pod's Ready. Until the size is read, counts are unknown (:class:`NotSyncedError`).

Accessors are thread-safe and cheap (no I/O): they read the cache under one lock. Before the
first list of a workload completes, :meth:`PodWatcher.synced` is False and :meth:`counts`
raises :class:`NotSyncedError` (never "zero replicas"), so a caller that treats it as missing
data holds (fail static). After that the cache keeps its last state across reconnects, as an
informer does.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

import urllib3
from kubernetes import client, watch

from autoscaler.clients.kube import (
    DEFAULT_REQUEST_TIMEOUT,
    WORKLOAD_KINDS,
    KubernetesError,
    format_selector,
    kubernetes_error,
    read_json,
    read_workload_call,
)
from autoscaler.clients.kube import leaderworkersets as lws
from autoscaler.core.replica_states import (
    DEFAULT_TIME_TO_READY_WINDOW,
    MalformedPodError,
    PodView,
    TimeToReadyWindow,
    lead_time_s,
    over_pending_timeout,
    parse_pod,
    replica_counts,
    selector_matches,
)
from autoscaler.core.signals import ReplicaCounts

__all__ = ["NotSyncedError", "PodWatcher", "WatchedWorkload"]

log = logging.getLogger(__name__)

WATCHED_KINDS: Final[tuple[str, ...]] = (*WORKLOAD_KINDS, lws.KIND)
"""The ``apps/v1`` kinds, and LeaderWorkerSet (one replica = one group of pods)."""
_GONE: Final = 410
_LIST_PAGE: Final = 500


@dataclass(frozen=True, slots=True)
class WatchedWorkload:
    """A workload whose pods are watched: ``key`` is ``namespace/name``, as in the store."""

    key: str
    namespace: str
    selector: Mapping[str, str]
    kind: str = "Deployment"
    """The kind whose ``spec.replicas`` is read (``WATCHED_KINDS``)."""

    def __post_init__(self) -> None:
        if self.kind not in WATCHED_KINDS:
            raise ValueError(
                f"workload {self.key}: kind {self.kind!r} is not one of {', '.join(WATCHED_KINDS)}"
            )
        namespace, sep, name = self.key.partition("/")
        if not sep or not name or namespace != self.namespace:
            raise ValueError(
                f"workload key {self.key!r} must be '<namespace>/<name>' with namespace "
                f"{self.namespace!r}"
            )
        if not self.selector:
            raise ValueError(f"workload {self.key}: an empty selector would select every pod")

    @property
    def name(self) -> str:
        """The workload's (and its Deployment's) name."""
        return self.key.partition("/")[2]


class NotSyncedError(KubernetesError):
    """Replica states were asked for before the workload's first list completed.

    Raised rather than answering zero replicas: "none seen yet" is not "none running", and a
    caller that treats the error as missing data holds (fail static) until the list is in.
    """


class _Relist(Exception):
    """The watch's resourceVersion is gone (410): list again before watching."""


@dataclass(eq=False)
class _Group:
    """One (namespace, selector) watch and the cache it fills."""

    namespace: str
    selector: Mapping[str, str]
    keys: list[str]
    time_to_ready: TimeToReadyWindow
    pods: dict[str, PodView] = field(default_factory=dict)
    synced: bool = False
    events: int = 0
    """Watch events received so far (bookmarks included): evidence that the watch works."""
    resource_version: str | None = None
    current_watch: watch.Watch | None = None
    thread: threading.Thread | None = None

    @property
    def label(self) -> str:
        return f"{self.namespace} [{format_selector(self.selector)}]"


class PodWatcher:
    """Pods of the given workloads, classified, counted and timed, from a list + watch.

    ``api_client`` is shared by the threads (urllib3's pool is thread-safe). The timing knobs
    are there for tests and for unusual clusters; the defaults follow client-go (watch timeout
    5 min, back-off capped at 30 s).
    """

    def __init__(
        self,
        api_client: client.ApiClient,
        workloads: Sequence[WatchedWorkload],
        *,
        watch_timeout_s: int = 300,
        request_timeout: tuple[float, float] = DEFAULT_REQUEST_TIMEOUT,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        spec_interval_s: float = 15.0,
        time_to_ready_window: int = DEFAULT_TIME_TO_READY_WINDOW,
        stop_timeout_s: float = 5.0,
    ) -> None:
        if watch_timeout_s < 1:
            raise ValueError(f"watch_timeout_s must be at least 1 s, got {watch_timeout_s}")
        self._api = api_client
        self._core = client.CoreV1Api(api_client)
        self._apps = client.AppsV1Api(api_client)
        self._host: str | None = getattr(api_client.configuration, "host", None)
        self.watch_timeout_s = watch_timeout_s
        self.request_timeout = request_timeout
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.spec_interval_s = spec_interval_s
        self.stop_timeout_s = stop_timeout_s

        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._started = False
        self._workloads: dict[str, WatchedWorkload] = {}
        self._group_of: dict[str, _Group] = {}
        self._groups: list[_Group] = []
        self._spec: dict[str, int | None] = {}
        self._size: dict[str, int] = {}
        """Group size of each LeaderWorkerSet target, as last read."""
        self._spec_error: dict[str, str] = {}
        self._spec_thread: threading.Thread | None = None
        by_pair: dict[tuple[str, frozenset[tuple[str, str]]], _Group] = {}
        for workload in workloads:
            if workload.key in self._workloads:
                raise ValueError(f"workload {workload.key} is listed twice")
            self._workloads[workload.key] = workload
            pair = (workload.namespace, frozenset(workload.selector.items()))
            group = by_pair.get(pair)
            if group is None:
                group = _Group(
                    namespace=workload.namespace,
                    selector=dict(workload.selector),
                    keys=[],
                    time_to_ready=TimeToReadyWindow(time_to_ready_window),
                )
                by_pair[pair] = group
                self._groups.append(group)
            group.keys.append(workload.key)
            self._group_of[workload.key] = group

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start one thread per watch and one for the Deployments' ``spec.replicas``."""
        with self._lock:
            if self._started:
                raise RuntimeError("PodWatcher.start() was already called")
            self._started = True
        for group in self._groups:
            group.thread = threading.Thread(
                target=self._run_group, args=(group,), name=f"pods {group.label}", daemon=True
            )
            group.thread.start()
        self._spec_thread = threading.Thread(
            target=self._run_specs, name="deployment replicas", daemon=True
        )
        self._spec_thread.start()

    def stop(self) -> None:
        """Stop every thread; returns within about ``stop_timeout_s`` even if one is stuck."""
        self._stopping.set()
        threads = [g.thread for g in self._groups] + [self._spec_thread]
        deadline = time.monotonic() + self.stop_timeout_s
        for thread in threads:
            while thread is not None and thread.is_alive() and time.monotonic() < deadline:
                # A watch that was just being opened when the flag was set only gets a socket
                # to shut down once its response has arrived, so keep poking until it exits.
                self._interrupt_watches()
                thread.join(0.05)
            if thread is not None and thread.is_alive():
                log.warning(
                    "thread %r did not stop within %.1f s", thread.name, self.stop_timeout_s
                )

    def __enter__(self) -> PodWatcher:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _interrupt_watches(self) -> None:
        with self._lock:
            watches = [g.current_watch for g in self._groups if g.current_watch is not None]
        for running in watches:
            running.stop()  # type: ignore[no-untyped-call]

    # -- accessors (thread-safe, no I/O) -----------------------------------------------------

    def keys(self) -> list[str]:
        return sorted(self._workloads)

    def synced(self, key: str) -> bool:
        """Whether the first list of ``key``'s pods has completed; KeyError for unknown keys."""
        group = self._group_of[key]
        with self._lock:
            return group.synced

    def pods(self, key: str) -> list[PodView]:
        """The live pods of ``key`` as last seen, sorted by name."""
        group = self._group_of[key]
        with self._lock:
            return sorted(group.pods.values(), key=lambda p: p.name)

    def counts(self, key: str, now: float) -> ReplicaCounts:
        """Replica states of ``key`` at ``now`` (Unix seconds).

        Raises :class:`NotSyncedError` until the first list of ``key``'s pods has completed,
        and KeyError for a workload it does not watch.
        """
        group = self._group_of[key]
        with self._lock:
            synced = group.synced
            pods = list(group.pods.values())
            spec = self._spec.get(key)
            size = self._size.get(key)
        if not synced:
            raise NotSyncedError(
                f"list pods {group.label}",
                "no complete list yet, replica states unknown",
                host=self._host,
            )
        workload = self._workloads[key]
        if workload.kind != lws.KIND:
            return replica_counts(pods, now, spec)
        if size is None:
            raise NotSyncedError(
                f"get leaderworkerset {key}",
                "group size not read yet, replica states unknown",
                host=self._host,
            )
        counts = lws.replica_counts(lws.view_groups(pods, workload.name), size, now)
        return counts if spec is None else replace(counts, spec=spec)

    def time_to_ready_s(self, key: str) -> float | None:
        """The observed lead time of ``key`` (median of recent replicas), None before any;
        for a LeaderWorkerSet, of its ready groups (creation to the last pod's Ready)."""
        group = self._group_of[key]
        workload = self._workloads[key]
        with self._lock:
            if workload.kind != lws.KIND:
                return group.time_to_ready.value()
            pods = list(group.pods.values())
            size = self._size.get(key)
        if size is None:
            return None
        return lead_time_s(lws.group_lead_times(lws.view_groups(pods, workload.name), size))

    def over_pending_timeout(self, key: str, now: float, pending_timeout_s: float) -> list[PodView]:
        """Unready replicas of ``key`` older than the pending timeout, oldest first."""
        return over_pending_timeout(self.pods(key), now, pending_timeout_s)

    def spec_replicas(self, key: str) -> int | None:
        """The Deployment's ``spec.replicas`` as last read; None when unknown or absent."""
        if key not in self._workloads:
            raise KeyError(key)
        with self._lock:
            return self._spec.get(key)

    # -- the watch thread --------------------------------------------------------------------

    def _run_group(self, group: _Group) -> None:
        """List, then watch, until stopped; see the module docstring for the recovery rules."""
        backoff = self.backoff_s
        need_list = True
        relists_in_a_row = 0
        while not self._stopping.is_set():
            with self._lock:
                events_before = group.events
            problem: str | None = None
            try:
                if need_list:
                    self._list(group)
                    need_list = False
                self._watch(group)
                backoff, relists_in_a_row = self.backoff_s, 0  # a clean end: all is well
                continue
            except _Relist:
                need_list = True
                relists_in_a_row += 1
            except Exception as exc:  # the thread must survive anything the stack raises
                if self._stopping.is_set():
                    break
                need_list = True
                operation = f"list/watch pods {group.label}"
                problem = str(kubernetes_error(operation, exc, host=self._host))
            with self._lock:
                delivered = group.events != events_before
            if delivered:
                # The watch had been working: this is a new incident, not a persisting one,
                # so the back-off starts over (a list alone proves little: a watch forbidden
                # by RBAC would otherwise be retried at the shortest interval forever).
                backoff, relists_in_a_row = self.backoff_s, min(relists_in_a_row, 1)
            if problem is None and relists_in_a_row <= 1:
                # The first re-list after a 410 is immediate, as an informer does.
                log.info("pods %s: resourceVersion expired, listing again", group.label)
                continue
            if problem is None:
                problem = f"pods {group.label}: 410 Gone again right after a fresh list"
            log.warning("%s; retrying in %.1f s", problem, backoff)
            if self._stopping.wait(backoff):
                break
            backoff = min(backoff * 2.0, self.max_backoff_s)

    def _list(self, group: _Group) -> None:
        """Replace the group's cache with a fresh list (paged) and mark it synced."""
        items: list[Any] = []
        resource_version: str | None = None
        continue_token: str | None = None
        operation = f"list pods {group.label}"
        while True:
            try:
                response = self._core.list_namespaced_pod(
                    group.namespace,
                    label_selector=format_selector(group.selector),
                    limit=_LIST_PAGE,
                    _continue=continue_token,
                    _preload_content=False,
                    _request_timeout=self.request_timeout,
                )
            except client.ApiException as exc:
                if exc.status == _GONE and continue_token is not None:
                    raise _Relist from exc  # the paging snapshot expired: start over
                raise
            page = read_json(response, operation, host=self._host)
            raw_items = page.get("items") or []
            if not isinstance(raw_items, list):
                raise KubernetesError(operation, "items is not a list", host=self._host)
            items.extend(raw_items)
            metadata = page.get("metadata")
            if not isinstance(metadata, dict):
                metadata = {}
            if resource_version is None:
                rv = metadata.get("resourceVersion")
                resource_version = rv if isinstance(rv, str) and rv else None
            token = metadata.get("continue")
            if not isinstance(token, str) or not token:
                break
            continue_token = token
        fresh = {}
        for obj in items:
            view = self._parse(group, obj)
            if view is not None:
                fresh[view.name] = view
        with self._lock:
            group.pods = fresh
            group.synced = True
            group.resource_version = resource_version
            for view in fresh.values():
                group.time_to_ready.observe(view)
        log.debug(
            "pods %s: listed %d live pods at resourceVersion %s",
            group.label,
            len(fresh),
            resource_version,
        )

    def _watch(self, group: _Group) -> None:
        """Stream events until the server ends the watch; raises on errors (410 -> _Relist)."""
        with self._lock:
            if self._stopping.is_set():
                return
            resource_version = group.resource_version
            running = watch.Watch()  # type: ignore[no-untyped-call]
            group.current_watch = running

        # A lambda on purpose: with no return annotation and no docstring to name a model, Watch
        # hands out the raw dicts instead of deserialising every event into a V1Pod (see the
        # package docstring for why raw dicts).
        list_pods = lambda **kwargs: self._core.list_namespaced_pod(group.namespace, **kwargs)  # noqa: E731

        # Without a resourceVersion (a server that sent none) the watch starts "now" and
        # replays the current objects as ADDED, which folds into the cache the same way.
        since = {} if resource_version is None else {"resource_version": resource_version}
        try:
            stream = running.stream(  # type: ignore[no-untyped-call]
                list_pods,
                label_selector=format_selector(group.selector),
                allow_watch_bookmarks=True,
                **since,
                timeout_seconds=self.watch_timeout_s,
                # A read timeout past the server-side one catches a connection that died
                # silently (no FIN): nothing, not even a bookmark, would arrive on it.
                _request_timeout=(self.request_timeout[0], self.watch_timeout_s + 30.0),
            )
            for event in stream:
                if self._stopping.is_set():
                    break
                self._apply(group, event)
        except client.ApiException as exc:
            if exc.status == _GONE:
                raise _Relist from exc
            raise
        except urllib3.exceptions.HTTPError:
            if self._stopping.is_set():
                return  # our own stop() shut the socket down
            raise
        finally:
            with self._lock:
                group.current_watch = None

    def _apply(self, group: _Group, event: Mapping[str, Any]) -> None:
        """Fold one watch event into the cache."""
        kind = event.get("type")
        obj = event.get("raw_object")
        with self._lock:
            group.events += 1
        if not isinstance(obj, Mapping):
            log.warning("pods %s: %s event without an object; ignored", group.label, kind)
            return
        metadata = obj.get("metadata")
        rv = metadata.get("resourceVersion") if isinstance(metadata, Mapping) else None
        name = metadata.get("name") if isinstance(metadata, Mapping) else None
        if kind == "BOOKMARK":
            pass
        elif kind in ("ADDED", "MODIFIED"):
            view = self._parse(group, obj)
            with self._lock:
                if view is not None:
                    group.pods[view.name] = view
                    group.time_to_ready.observe(view)
                elif isinstance(name, str):
                    group.pods.pop(name, None)  # finished, malformed or no longer selected
        elif kind == "DELETED":
            if isinstance(name, str):
                with self._lock:
                    group.pods.pop(name, None)
        else:
            log.warning("pods %s: unknown watch event type %r; ignored", group.label, kind)
            return
        if isinstance(rv, str) and rv:
            with self._lock:
                group.resource_version = rv

    def _parse(self, group: _Group, obj: object) -> PodView | None:
        """The live, selected pod in ``obj``, or None (finished, not selected, malformed)."""
        try:
            view = parse_pod(obj)
        except MalformedPodError as exc:
            log.warning("pods %s: skipping malformed %s", group.label, exc)
            return None
        if view is None or not selector_matches(view.labels, group.selector):
            return None
        return view

    # -- the Deployment replicas thread ------------------------------------------------------

    def _run_specs(self) -> None:
        while not self._stopping.is_set():
            for key in sorted(self._workloads):
                if self._stopping.is_set():
                    return
                self._read_spec(self._workloads[key])
            self._stopping.wait(self.spec_interval_s)

    def _read_spec(self, workload: WatchedWorkload) -> None:
        """Read the workload's ``spec.replicas``; keep the last value when the read fails."""
        operation = f"get {workload.kind.lower()} {workload.key}"
        if workload.kind == lws.KIND:
            self._read_lws(workload)
            return
        try:
            response = read_workload_call(
                self._apps, workload.kind, workload.namespace, workload.name, self.request_timeout
            )()
            body = read_json(response, operation, host=self._host)
        except client.ApiException as exc:
            if exc.status == 404:
                self._set_spec(workload.key, None, None)
            else:
                self._set_spec_error(
                    workload.key, kubernetes_error(operation, exc, host=self._host)
                )
            return
        except Exception as exc:  # the thread must survive anything the stack raises
            self._set_spec_error(workload.key, kubernetes_error(operation, exc, host=self._host))
            return
        spec = body.get("spec")
        replicas = spec.get("replicas") if isinstance(spec, dict) else None
        if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
            self._set_spec(workload.key, None, f"{operation}: no usable spec.replicas")
        else:
            self._set_spec(workload.key, replicas, None)

    def _read_lws(self, workload: WatchedWorkload) -> None:
        """A LeaderWorkerSet's ``spec.replicas`` (groups) and group size."""
        try:
            target = lws.read_lws(
                self._api, workload.namespace, workload.name, request_timeout=self.request_timeout
            )
        except Exception as exc:  # the thread must survive anything the stack raises
            where = f"get leaderworkerset {workload.key}"
            error = exc if isinstance(exc, KubernetesError) else kubernetes_error(where, exc)
            self._set_spec_error(workload.key, error)
            return
        if target is not None:
            with self._lock:
                self._size[workload.key] = target.group_size
        self._set_spec(workload.key, None if target is None else target.spec_replicas, None)

    def _set_spec(self, key: str, replicas: int | None, problem: str | None) -> None:
        with self._lock:
            self._spec[key] = replicas
            previous = self._spec_error.pop(key, None)
        if problem is not None:
            self._log_spec_problem(key, problem, previous)
        elif previous is not None:
            log.info("workload %s: readable again", key)

    def _set_spec_error(self, key: str, error: KubernetesError) -> None:
        with self._lock:
            previous = self._spec_error.get(key)
        self._log_spec_problem(key, str(error), previous)

    def _log_spec_problem(self, key: str, problem: str, previous: str | None) -> None:
        # Logged when the problem changes, not every interval: a missing RBAC verb would
        # otherwise write the same line every 15 s per workload.
        if problem != previous:
            log.warning("%s; keeping the last known spec.replicas", problem)
        with self._lock:
            self._spec_error[key] = problem

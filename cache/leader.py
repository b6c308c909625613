"""Leader election on a ``coordination.k8s.io/v1`` Lease: only one replica prefetches.

Service replicas are active-active for everything they *serve* (each computes the same
recommendations), but the prefetch executor *acts* on the cluster, and two actors would create
Jobs and flip node labels twice. So it runs only on the replica holding the Lease; the others keep
serving metrics and APIs and take over when the holder stops renewing.

The algorithm is client-go's ``leaderelection`` (``tryAcquireOrRenew``), one step per call:

1. read the Lease; if there is none, create it naming us (a 409 means another replica was
   faster: not leader);
2. if the record changed since we last looked, remember *when we saw it change*, on our own
   monotonic clock. Expiry is judged from that moment plus the holder's
   ``leaseDurationSeconds``, never from the ``renewTime`` written by another machine, so clock
   skew between replicas cannot make two leaders;
3. someone else holds an unexpired Lease: not leader;
4. otherwise (ours, expired, or released) write it naming us with the ``resourceVersion`` we
   read: the API server's optimistic concurrency lets exactly one of several racing replicas
   win; the others get 409 and stay followers.

A leader that cannot renew for ``renew_deadline_s`` (shorter than the lease duration) stops
acting *before* anyone else may take over: :meth:`LeaderElector.is_leader` turns False on our own
clock, so there is no window with two actors as long as clocks run at the same rate.

:meth:`LeaderElector.step` is what tests drive with a fake clock; :meth:`start` runs it every
``retry_period_s`` in a daemon thread, and :meth:`stop` releases the Lease (holder cleared, as
client-go's ``ReleaseOnCancel``) so a successor does not wait for the expiry.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from prometheus_client import CollectorRegistry, Gauge

from autoscaler.clients.kube.leases import LeaseConflict, LeaseRecord, format_micro_time
from autoscaler.errors import ExternalSystemError

__all__ = ["LeaderElector", "LeaseStore"]

log = logging.getLogger(__name__)


class LeaseStore(Protocol):
    """Lease get/create/update (:class:`autoscaler.clients.kube.leases.LeaseClient` live)."""

    def get(self, namespace: str, name: str) -> LeaseRecord | None: ...

    def create(self, namespace: str, name: str, record: LeaseRecord) -> LeaseRecord: ...

    def update(self, namespace: str, name: str, record: LeaseRecord) -> LeaseRecord: ...


def _same(a: LeaseRecord | None, b: LeaseRecord | None) -> bool:
    """Whether two reads show the same record (ignoring how timestamps were formatted)."""
    if a is None or b is None:
        return a is b
    if a.resource_version is not None and b.resource_version is not None:
        return a.resource_version == b.resource_version
    return (a.holder, a.renew_time, a.transitions) == (b.holder, b.renew_time, b.transitions)


class LeaderElector:
    """Acquire, renew and lose a Lease; ``is_leader()`` says whether to act right now."""

    def __init__(
        self,
        leases: LeaseStore,
        *,
        namespace: str,
        name: str,
        identity: str,
        lease_duration_s: int = 15,
        renew_deadline_s: float = 10.0,
        retry_period_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        registry: CollectorRegistry | None = None,
    ) -> None:
        if not identity:
            raise ValueError("leader election needs a non-empty identity (e.g. the pod name)")
        if not 0 < renew_deadline_s < lease_duration_s:
            raise ValueError("renew_deadline_s must be positive and shorter than lease_duration_s")
        self.leases = leases
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lease_duration_s = lease_duration_s
        self.renew_deadline_s = renew_deadline_s
        self.retry_period_s = retry_period_s
        self.clock = clock
        self.wall_clock = wall_clock
        self._lock = threading.Lock()
        self._observed: LeaseRecord | None = None
        self._observed_at = 0.0
        self._renewed_at: float | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._gauge = (
            Gauge(
                "llm_autoscaler_leader",
                "1 while this replica holds the leader Lease (it writes prefetch Jobs and Events).",
                ["lease"],
                registry=registry,
            )
            if registry is not None
            else None
        )

    # -- state -----------------------------------------------------------------------------------

    def is_leader(self) -> bool:
        """True while we hold the Lease and renewed it within ``renew_deadline_s``."""
        with self._lock:
            return (
                self._renewed_at is not None
                and self.clock() - self._renewed_at < self.renew_deadline_s
            )

    @property
    def holder(self) -> str | None:
        """Who held the Lease at our last read (None when nobody, or not read yet)."""
        with self._lock:
            return self._observed.holder if self._observed is not None else None

    # -- one election step -----------------------------------------------------------------------

    def step(self) -> bool:
        """One try to acquire or renew; returns :meth:`is_leader` afterwards. Never raises for
        API trouble (it is logged; a leader that keeps failing loses at the renew deadline)."""
        try:
            self._try_acquire_or_renew()
        except ExternalSystemError as exc:
            log.warning("lease %s/%s: %s", self.namespace, self.name, exc)
        leader = self.is_leader()
        if self._gauge is not None:
            self._gauge.labels(f"{self.namespace}/{self.name}").set(1.0 if leader else 0.0)
        return leader

    def _try_acquire_or_renew(self) -> None:
        now = self.clock()
        stamp = format_micro_time(self.wall_clock())
        current = self.leases.get(self.namespace, self.name)
        if current is None:
            mine = LeaseRecord(self.identity, self.lease_duration_s, stamp, stamp, 0)
            try:
                written = self.leases.create(self.namespace, self.name, mine)
            except LeaseConflict:
                return
            self._won(written, now, previous=None)
            return
        with self._lock:
            if not _same(current, self._observed):
                self._observed, self._observed_at = current, now
            observed_at = self._observed_at
        held_by_other = current.holder is not None and current.holder != self.identity
        duration = current.duration_s if current.duration_s is not None else self.lease_duration_s
        if held_by_other and now < observed_at + duration:
            with self._lock:
                self._renewed_at = None
            return
        ours = current.holder == self.identity
        mine = LeaseRecord(
            holder=self.identity,
            duration_s=self.lease_duration_s,
            acquire_time=current.acquire_time if ours and current.acquire_time else stamp,
            renew_time=stamp,
            transitions=current.transitions if ours else current.transitions + 1,
            resource_version=current.resource_version,
        )
        try:
            written = self.leases.update(self.namespace, self.name, mine)
        except LeaseConflict:
            with self._lock:
                self._renewed_at = None
            return
        self._won(written, now, previous=current.holder)

    def _won(self, written: LeaseRecord, now: float, previous: str | None) -> None:
        with self._lock:
            was_leader = self._renewed_at is not None
            self._observed, self._observed_at = written, now
            self._renewed_at = now
        if not was_leader:
            log.info(
                "lease %s/%s: %s is now the leader (previous holder: %s)",
                self.namespace,
                self.name,
                self.identity,
                previous or "none",
            )

    def release(self) -> None:
        """Give the Lease up if we hold it, so a successor need not wait for the expiry."""
        with self._lock:
            held = self._renewed_at is not None
            observed = self._observed
            self._renewed_at = None
        if not held or observed is None or observed.holder != self.identity:
            return
        stamp = format_micro_time(self.wall_clock())
        released = LeaseRecord(
            holder=None,
            duration_s=1,
            acquire_time=observed.acquire_time,
            renew_time=stamp,
            transitions=observed.transitions,
            resource_version=observed.resource_version,
        )
        try:
            self.leases.update(self.namespace, self.name, released)
        except ExternalSystemError as exc:
            log.info(
                "lease %s/%s: not released (%s); it will expire", self.namespace, self.name, exc
            )
        if self._gauge is not None:
            self._gauge.labels(f"{self.namespace}/{self.name}").set(0.0)

    # -- background thread -----------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("LeaderElector.start() was already called")
        self._thread = threading.Thread(target=self._run, name="leader election", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self.release()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.step()
            except Exception:  # the thread must survive anything; the next step retries
                log.exception("lease %s/%s: election step failed", self.namespace, self.name)
            self._stopping.wait(self.retry_period_s)

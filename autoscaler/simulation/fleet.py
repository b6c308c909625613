"""The request-level fleet: the workload's pods with their servers, and the router.

The pods' lifecycle, the node pool, the scheduler and the scale-down ranking are
:mod:`autoscaler.simulation.lifecycle`'s (the fluid simulator uses the same one); this module
adds what only request-level replay has: a :class:`~autoscaler.simulation.replica.Replica`
per ready pod, draining that ends when its last in-flight request does, lifecycle timers handed
to the engine's event heap (``pending_events``), and the least-outstanding-work router.
Not-ready pods go away at once on a scale-down; ready ones drain.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from autoscaler.perf.model import PerfProfile
from autoscaler.simulation.lifecycle import (
    DRAINING,
    GONE,
    PENDING,
    READY,
    STARTING,
    LifecycleConfig,
    Pod,
    PodLifecycle,
    deletion_rank,
)
from autoscaler.simulation.replica import Replica, ReplicaSink
from autoscaler.simulation.requests import RequestTable

__all__ = ["Fleet", "ReplicaRecord"]


@dataclass(slots=True)
class ReplicaRecord(Pod):
    """One pod of the workload and, once ready, its server."""

    server: Replica | None = None


class Fleet:
    """The workload's pods on a fixed pool of GPU nodes, plus the least-outstanding-work router."""

    def __init__(
        self,
        *,
        profile: PerfProfile,
        lifecycle: LifecycleConfig,
        num_nodes: int,
        reqs: RequestTable,
    ) -> None:
        self.profile = profile
        self.lifecycle = lifecycle
        self.gpus_per_replica = profile.tp
        self.pods = PodLifecycle(lifecycle, num_nodes, profile.tp)
        """The node pool and the start-up of every pod (shared with the fluid simulator)."""
        self.reqs = reqs
        self.records: list[ReplicaRecord] = []
        self.load: list[float] = []
        self.sink = ReplicaSink(self.load)
        self.routable: list[int] = []
        self.backlog: deque[int] = deque()
        """Requests that arrived while no replica was ready (the gateway holds them)."""
        self.dispatched = 0
        """Requests routed to a replica so far: what a gateway's request counter counts."""
        self.retired_gen_tokens = 0
        self.retired_prompt_tokens = 0
        self.pending_events: list[tuple[float, int]] = []
        """(time, slot) lifecycle transitions the engine must schedule."""

    # -- views -----------------------------------------------------------------------------
    @property
    def cold_starts(self) -> int:
        return self.pods.cold_starts

    @property
    def warm_starts(self) -> int:
        return self.pods.warm_starts

    @property
    def time_to_ready(self) -> deque[float]:
        """The latest times to ready: the window ``serve`` summarises (``lead_time_s``)."""
        return self.pods.time_to_ready

    def live(self) -> list[ReplicaRecord]:
        """Pods that count towards ``spec.replicas`` (not draining, not gone)."""
        return [r for r in self.records if r.phase not in (DRAINING, GONE)]

    def count(self, phase: str) -> int:
        return sum(1 for r in self.records if r.phase == phase)

    def servers(self) -> list[Replica]:
        """Replicas that hold requests (ready or draining)."""
        return [
            r.server for r in self.records if r.server is not None and r.phase in (READY, DRAINING)
        ]

    # -- scaling ---------------------------------------------------------------------------
    def scale_to(self, desired: int, now: float, *, instant: bool = False) -> None:
        """Create or delete pods to reach ``desired``; ``instant`` pods are ready at once and
        count no start (the warm-up, where the fleet follows the oracle's plan)."""
        live = self.live()
        if desired > len(live):
            for _ in range(desired - len(live)):
                self._create(now, instant)
        elif desired < len(live):
            victims = sorted(live, key=deletion_rank)[: len(live) - desired]
            for rec in victims:
                self._delete(rec, now)

    def create_ready(self, now: float) -> None:
        """A replica that is already serving at ``now`` (the run's starting fleet)."""
        rec = self._create(now, instant=True)
        if rec.phase != READY:
            raise RuntimeError("node pool too small for the starting fleet")

    def _create(self, now: float, instant: bool = False) -> ReplicaRecord:
        slot = len(self.records)
        rec = ReplicaRecord(slot=slot, created=now, phase=PENDING)
        self.records.append(rec)
        self.load.append(float("inf"))
        self._try_schedule(rec, now, instant)
        return rec

    def expire_images(self, now: float) -> None:
        """Other tenants' images evict ours from nodes idle for ``image_slots`` arrivals."""
        self.pods.expire_images(now)

    def _try_schedule(self, rec: ReplicaRecord, now: float, instant: bool = False) -> bool:
        if not self.pods.schedule(rec, now, instant):
            return False
        if rec.phase == READY:
            self._become_ready(rec, now)
        else:
            self.pending_events.append((rec.until, rec.slot))
        return True

    def prefetch_done(self, node: int, now: float) -> None:
        """A prefetch pull on ``node`` finished: the image is in its cache (and just used)."""
        self.pods.prefetch_done(node, now)

    def advance(self, slot: int, now: float) -> None:
        """A lifecycle timer of ``slot`` fired at ``now``."""
        rec = self.records[slot]
        if rec.until != now or rec.phase not in STARTING:
            return  # the pod was deleted meanwhile, or this timer is outdated
        if self.pods.fire(rec):
            self._become_ready(rec, now)
        else:
            self.pending_events.append((rec.until, rec.slot))

    def _become_ready(self, rec: ReplicaRecord, now: float) -> None:
        """``rec`` just became ready: it gets a server and takes requests."""
        rec.server = Replica(rec.slot, self.profile, self.reqs, self.sink)
        self.load[rec.slot] = 0.0
        self.routable.append(rec.slot)

    def _delete(self, rec: ReplicaRecord, now: float) -> None:
        if rec.phase == READY:
            rec.phase = DRAINING
            self.routable.remove(rec.slot)
            self.load[rec.slot] = float("inf")
            if rec.server is not None and not rec.server.busy():
                self._gone(rec, now)
        else:
            self._gone(rec, now)

    def maybe_finish_drain(self, slot: int, now: float) -> None:
        rec = self.records[slot]
        if rec.phase == DRAINING and rec.server is not None and not rec.server.busy():
            self._gone(rec, now)

    def _gone(self, rec: ReplicaRecord, now: float) -> None:
        rec.phase = GONE
        rec.deleted_at = now
        if rec.server is not None:
            self.retired_gen_tokens += rec.server.gen_tokens
            self.retired_prompt_tokens += rec.server.prompt_tokens
        if rec.node is not None:
            self.pods.release(rec.node, now)
            rec.node = None
            waiting = [r for r in self.records if r.phase == PENDING]
            for started in self.pods.schedule_waiting(waiting, now):
                self._become_ready(started, now)
            for other in waiting:
                if other.phase in STARTING:
                    self.pending_events.append((other.until, other.slot))

    # -- routing ---------------------------------------------------------------------------
    def route(self) -> Replica | None:
        """Least outstanding work among ready replicas; None when none is ready."""
        routable = self.routable
        if not routable:
            return None
        if len(routable) == 1:
            slot = routable[0]
        else:
            slot = min(routable, key=self.load.__getitem__)
        server = self.records[slot].server
        assert server is not None
        return server

    # -- accounting ------------------------------------------------------------------------
    def gpu_seconds(self, end: float, start: float = 0.0) -> float:
        """GPU time the workload's pods held between ``start`` and ``end``."""
        total = 0.0
        for rec in self.records:
            stop = end if rec.deleted_at is None else min(rec.deleted_at, end)
            begin = max(rec.created, start)
            if stop > begin:
                total += stop - begin
        return total * self.gpus_per_replica

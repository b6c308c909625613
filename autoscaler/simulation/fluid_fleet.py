"""The fluid simulator's pods: the shared lifecycle, without request state.

The start-up of a pod, the node pool, the scheduler and the scale-down ranking are
:mod:`autoscaler.simulation.lifecycle`'s, as in the request-level
:class:`~autoscaler.simulation.fleet.Fleet`. What differs is only what the fluid mode cannot
know: a ready pod holds no requests, so a deleted one drains for the expected time its batch
takes to finish (the caller passes ``drain_s``) and is charged its GPU time up to then; and time
advances by ticks, so :meth:`FluidFleet.advance` fires every timer due by then, in order.

Ready pods are kept in the order they became ready (the ReplicaSet deletes the most recently
ready first); not-ready pods separately, so a tick costs O(not-ready pods), not O(pods).
"""

from __future__ import annotations

import math

from autoscaler.core.signals import ReplicaCounts
from autoscaler.simulation.lifecycle import (
    PENDING,
    READY,
    STARTING,
    LifecycleConfig,
    Pod,
    PodLifecycle,
    deletion_rank,
)
from autoscaler.simulation.prefetch import SimPrefetcher


class FluidFleet:
    """The workload's pods in a fluid run, and the GPU time they hold."""

    def __init__(
        self,
        lifecycle: LifecycleConfig,
        gpus_per_replica: int,
        num_nodes: int,
        prefetcher: SimPrefetcher | None = None,
    ) -> None:
        self.tp = gpus_per_replica
        self.pods = PodLifecycle(lifecycle, num_nodes, gpus_per_replica)
        """The node pool and the start-up of every pod (shared with the request-level fleet)."""
        self.prefetcher = prefetcher
        """The prefetch planner's simulated pulls (``--prefetch on``), as in the engine."""
        if prefetcher is not None:
            self.pods.prefetch_until = prefetcher.pull_until
        self.ready: list[Pod] = []
        self.unready: list[Pod] = []
        self.draining: list[tuple[float, int]] = []
        """(end of drain, node) of deleted ready pods still finishing requests."""
        self.next_slot = 0
        self.gpu_seconds = 0.0

    def create(self, now: float, instant: bool = False) -> None:
        pod = Pod(self.next_slot, now, PENDING)
        self.next_slot += 1
        if not self.pods.schedule(pod, now, instant) and instant:
            raise RuntimeError("node pool too small for the starting fleet")
        (self.ready if pod.phase == READY else self.unready).append(pod)

    def next_event(self) -> float:
        """When the next lifecycle timer fires (a start-up phase, a drain, a prefetch pull)."""
        t = math.inf
        for pod in self.unready:
            if pod.phase != PENDING and pod.until < t:
                t = pod.until
        for end, _ in self.draining:
            if end < t:
                t = end
        if self.prefetcher is not None:
            for end in self.prefetcher.pull_until.values():
                if end < t:
                    t = end
        return t

    def advance(self, now: float) -> None:
        """Fire every lifecycle timer due at or before ``now``."""
        prefetcher = self.prefetcher
        if prefetcher is not None and prefetcher.pull_until:
            for node, end in sorted(prefetcher.pull_until.items(), key=lambda kv: kv[1]):
                if end <= now and prefetcher.finish(node, end):
                    self.pods.prefetch_done(node, end)
        if self.draining and any(end <= now for end, _ in self.draining):
            keep = []
            for end, node in sorted(self.draining):
                if end <= now:
                    self._free(node, end)
                else:
                    keep.append((end, node))
            self.draining = keep
        if not self.unready:
            return
        became: list[Pod] = []
        for pod in self.unready:
            while pod.phase in STARTING and pod.until <= now:
                if self.pods.fire(pod):
                    became.append(pod)
        if became:
            became.sort(key=lambda p: (p.ready_at, p.slot))
            self.ready.extend(became)
            self.unready = [p for p in self.unready if p.phase != READY]

    def _free(self, node: int, now: float) -> None:
        """A pod's GPUs on ``node`` are free: pending pods take them, oldest first."""
        self.pods.release(node, now)
        self.pods.schedule_waiting(self.unready, now)
        if any(p.phase == READY for p in self.unready):
            self.ready.extend(p for p in self.unready if p.phase == READY)
            self.unready = [p for p in self.unready if p.phase != READY]

    def scale_to(self, desired: int, now: float, drain_s: float, end_s: float) -> None:
        """Create or delete pods to reach ``desired``; deleted ready pods drain for ``drain_s``
        and every pod is charged its GPU time up to ``end_s`` at most (the run's end)."""
        n = len(self.ready) + len(self.unready)
        if desired > n:
            for _ in range(desired - n):
                self.create(now)
            return
        excess = n - desired
        if excess <= 0:
            return
        # unscheduled first, then not ready (newest first), then the most recently ready
        victims = sorted(self.unready, key=deletion_rank)[:excess]
        if victims:
            gone = {id(v) for v in victims}
            self.unready = [p for p in self.unready if id(p) not in gone]
        for pod in victims:
            self.gpu_seconds += (min(now, end_s) - pod.created) * self.tp
            if pod.node is not None:
                self._free(pod.node, now)
        for _ in range(excess - len(victims)):
            pod = self.ready.pop()
            assert pod.node is not None
            if drain_s > 0:
                end = now + drain_s
                self.gpu_seconds += (min(end, end_s) - pod.created) * self.tp
                self.draining.append((end, pod.node))
            else:
                self.gpu_seconds += (min(now, end_s) - pod.created) * self.tp
                self._free(pod.node, now)

    def counts(self, now: float) -> ReplicaCounts:
        pending = 0
        ages: list[float] = []
        for pod in self.unready:
            if pod.phase == PENDING:
                pending += 1
            ages.append(now - pod.created)
        ages.sort(reverse=True)
        ready = len(self.ready)
        starting = len(self.unready) - pending
        return ReplicaCounts(
            spec=ready + starting + pending,
            ready=ready,
            starting=starting,
            pending=pending,
            terminating=len(self.draining),
            oldest_unready_age_s=ages[0] if ages else 0.0,
            starting_ages_s=tuple(ages),
        )

    def live(self) -> int:
        """Pods that count towards ``spec.replicas`` (not draining)."""
        return len(self.ready) + len(self.unready)

    def close(self, end_s: float) -> None:
        """The run ended: charge the pods still there up to ``end_s``."""
        for pod in (*self.ready, *self.unready):
            self.gpu_seconds += max(0.0, end_s - pod.created) * self.tp
        self.ready, self.unready = [], []

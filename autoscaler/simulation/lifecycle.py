"""The pod lifecycle on a fixed pool of GPU nodes: one definition for both simulators.

The event-driven fleet (:class:`~autoscaler.simulation.fleet.Fleet`, request-level) and the
fluid fleet (:class:`~autoscaler.simulation.fluid_fleet.FluidFleet`, rate-level) differ in what
a ready pod does (serve requests, or carry a share of a rate) and in how time advances (timers
on an event heap, or every timer due by a tick). What a pod goes through before it is ready,
where it lands and which one goes first on a scale-down must not differ: the two simulators are
compared with each other (``tests/test_fluid_agreement.py``), so both call this module.

Lifecycle of a pod (DESIGN.md, "Replica lifecycle"): created -> pending (no node with enough
free GPUs) -> provisioning (optional, ``provision_s``) -> image pull (``pull_s``, skipped on a node
that already holds the modelcar image) -> engine init (``init_s``) -> ready -> draining (deleted:
finishes its in-flight requests, gets no new ones) -> gone.

Scheduling model: kube-scheduler scores feasible nodes; we use the sum of NodeResourcesFit's
default ``LeastAllocated`` score (free GPU fraction x 100) and ImageLocality (100 when the node
holds the image, which a 100+ GB modelcar saturates). ImageLocality is only a score: a warm node
wins over an empty cold node unless it is more than full by the same margin. Ties go to the lowest
node index, which keeps runs deterministic. Nodes are kept in heaps by (holds the image, free
GPUs), so a pick costs O(distinct node states), not O(nodes): fluid runs have thousands.

Node image caches: a simulated run has one workload image, so a node either holds it or not; a
cache of ``image_slots`` images keeps it once pulled (``image_slots == 0``: never), until other
tenants' churn (``foreign_image_interval_s``) evicts it from a node idle for ``image_slots``
arrivals of theirs (LRU).

Prefetch (``autoscaler.simulation.prefetch``): a pull the planner started on a node lives in
``prefetch_until`` (node -> end, the planner's own dict); a pod scheduled there meanwhile joins
it (containerd fetches one reference once) and waits only for its rest; :meth:`prefetch_done`
puts the image in the node's cache when it ends.

Scale-down follows the ReplicaSet's ranking (``controller.ActivePodsWithRanks``,
:func:`deletion_rank`): unscheduled pods first, then not-ready ones (newest first), then ready
ones with the most recent Ready time.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from heapq import heappop, heappush
from typing import TypeVar

from autoscaler.core.replica_states import DEFAULT_TIME_TO_READY_WINDOW

PENDING = "pending"
PROVISIONING = "provisioning"
PULLING = "pulling"
INITIALIZING = "initializing"
READY = "ready"
DRAINING = "draining"
GONE = "gone"

UNREADY_ORDER = {PENDING: 0, PROVISIONING: 1, PULLING: 2, INITIALIZING: 3}
"""Not-ready phases, in the order a scale-down removes them (earliest phase first)."""
STARTING = (PROVISIONING, PULLING, INITIALIZING)
"""Phases that end on a timer."""


@dataclass(frozen=True, slots=True)
class LifecycleConfig:
    """Start-up times and the node pool. Defaults: DESIGN.md (pull 180 s, init 60 s)."""

    pull_s: float = 180.0
    init_s: float = 60.0
    provision_s: float = 0.0
    node_gpus: int = 8
    image_slots: int = 4
    """How many modelcar images a node's disk keeps (LRU beyond that)."""
    foreign_image_interval_s: float = 0.0
    """Other tenants' churn: a node running none of the workload's pods gets another image
    every this many seconds, so the workload's image, unused, is evicted (LRU) after
    ``image_slots`` of them. 0: no other tenants (a visited node stays warm for good)."""

    @property
    def cold_s(self) -> float:
        """A cold start: provisioning + image pull + engine init (the lead time a scale-up
        waits when no node holds the image; the simulator's and the report's one definition)."""
        return self.provision_s + self.pull_s + self.init_s

    @property
    def warm_s(self) -> float:
        """A start on a node that already holds the image: no pull."""
        return self.provision_s + self.init_s


@dataclass(slots=True)
class Pod:
    """One pod of the workload, from creation to deletion."""

    slot: int
    created: float
    phase: str = PENDING
    node: int | None = None
    """Node index while the pod holds GPUs there (None: unscheduled, or its GPUs released)."""
    until: float = 0.0
    """When the current start-up phase's timer fires."""
    ready_at: float | None = None
    deleted_at: float | None = None
    warm: bool = False
    """Scheduled onto a node that already held the image (no pull)."""


P = TypeVar("P", bound=Pod)


def deletion_rank(pod: Pod) -> tuple[int, float, int]:
    """Sort key of a scale-down: the lowest goes first (see the module docstring)."""
    if pod.phase in UNREADY_ORDER:
        return (UNREADY_ORDER[pod.phase], -pod.created, -pod.slot)
    return (10, -(pod.ready_at or 0.0), -pod.slot)


class PodLifecycle:
    """The node pool and every pod transition before ready; the caller owns its pods' lists.

    Counts cold and warm starts and the times to ready (the window ``serve`` summarises as
    ``lead_time_s``, and every start for the figures). Methods that make a pod ready set its
    phase to READY and ``ready_at``; what a ready pod then does is the caller's."""

    def __init__(self, config: LifecycleConfig, num_nodes: int, gpus_per_replica: int) -> None:
        self.config = config
        self.gpus_per_replica = gpus_per_replica
        self.used = [0] * num_nodes
        """GPUs the workload's pods hold on each node."""
        self.warm = [False] * num_nodes
        """Whether each node's image cache holds the workload's image."""
        self.idle_since: list[float | None] = [None] * num_nodes
        """When the image was last used on a node running none of the pods (churn model)."""
        self.prefetch_until: dict[int, float] = {}
        """Prefetch pulls running now: node index -> when they end (shared with the planner)."""
        self.cold_starts = 0
        self.warm_starts = 0
        self.time_to_ready: deque[float] = deque(maxlen=DEFAULT_TIME_TO_READY_WINDOW)
        """The latest times to ready: the window ``serve`` summarises (``lead_time_s``)."""
        self.started: list[float] = []
        """Time to ready of every pod that became ready (not the starting fleet)."""
        self._heaps: dict[tuple[bool, int], list[int]] = {}
        for node in range(num_nodes):
            self._touch(node)

    @property
    def num_nodes(self) -> int:
        return len(self.used)

    # -- nodes -----------------------------------------------------------------------------
    def _touch(self, node: int) -> None:
        key = (self.warm[node], self.config.node_gpus - self.used[node])
        heappush(self._heaps.setdefault(key, []), node)

    def _store_image(self, node: int) -> None:
        if self.config.image_slots > 0 and not self.warm[node]:
            self.warm[node] = True
            self._touch(node)

    def pick(self) -> int | None:
        """kube-scheduler's choice: LeastAllocated + ImageLocality, lowest index; None: no node
        has room."""
        gpus, need = self.config.node_gpus, self.gpus_per_replica
        best, best_score = -1, -1.0
        for (warm, free), heap in self._heaps.items():
            if free < need:
                continue
            # lazy deletion: entries whose node changed state since they were pushed
            while heap and (self.warm[heap[0]], gpus - self.used[heap[0]]) != (warm, free):
                heappop(heap)
            if not heap:
                continue
            score = 100.0 * (free - need) / gpus + (100.0 if warm else 0.0)
            if score > best_score or (score == best_score and heap[0] < best):
                best, best_score = heap[0], score
        return None if best < 0 else best

    def expire_images(self, now: float) -> None:
        """Other tenants' images evict ours from nodes idle for ``image_slots`` arrivals."""
        interval = self.config.foreign_image_interval_s
        if interval <= 0:
            return
        horizon = self.config.image_slots * interval
        for node, since in enumerate(self.idle_since):
            if since is not None and now - since >= horizon and self.warm[node]:
                self.warm[node] = False
                self._touch(node)

    def prefetch_done(self, node: int, now: float) -> None:
        """A prefetch pull on ``node`` finished: the image is in its cache (and just used)."""
        self._store_image(node)
        if self.used[node] == 0:
            self.idle_since[node] = now

    def pods_on(self) -> dict[int, int]:
        """Node index -> the workload's pods on it (nodes with none left out)."""
        gpr = self.gpus_per_replica
        return {node: used // gpr for node, used in enumerate(self.used) if used}

    def _pull_end(self, node: int, now: float) -> float:
        """When a pull started at ``now`` on ``node`` ends: at the running prefetch's end if any."""
        end = now + self.config.pull_s
        joined = self.prefetch_until.get(node)
        return joined if joined is not None and now <= joined < end else end

    # -- pods ------------------------------------------------------------------------------
    def schedule(self, pod: Pod, now: float, instant: bool = False) -> bool:
        """Place a pending ``pod`` and start its first phase; False when no node has room.

        ``instant`` pods are ready at once and count no start (a run's starting fleet, the
        warm-up where the fleet follows the oracle's plan)."""
        self.expire_images(now)
        node = self.pick()
        if node is None:
            return False
        self.used[node] += self.gpus_per_replica
        self.idle_since[node] = None
        pod.node = node
        pod.warm = self.warm[node]
        if instant:
            self._store_image(node)
            self._touch(node)
            pod.phase, pod.ready_at = READY, now
            return True
        self._touch(node)
        if pod.warm:
            self.warm_starts += 1
        else:
            self.cold_starts += 1
        cfg = self.config
        if cfg.provision_s > 0:
            pod.phase, pod.until = PROVISIONING, now + cfg.provision_s
        elif not pod.warm and cfg.pull_s > 0:
            pod.phase, pod.until = PULLING, self._pull_end(node, now)
        elif cfg.init_s > 0:
            pod.phase, pod.until = INITIALIZING, now + cfg.init_s
        else:
            self._ready(pod, now)
        return True

    def fire(self, pod: Pod) -> bool:
        """The timer of ``pod``'s current start-up phase fired (at ``pod.until``): enter the next
        phase. True when the pod is now ready."""
        now = pod.until
        cfg = self.config
        assert pod.node is not None and pod.phase in STARTING
        if pod.phase == PULLING:
            self._store_image(pod.node)
        if pod.phase == PROVISIONING and not pod.warm and cfg.pull_s > 0:
            pod.phase, pod.until = PULLING, self._pull_end(pod.node, now)
        elif pod.phase in (PROVISIONING, PULLING) and cfg.init_s > 0:
            pod.phase, pod.until = INITIALIZING, now + cfg.init_s
        else:
            self._ready(pod, now)
            return True
        return False

    def _ready(self, pod: Pod, now: float) -> None:
        pod.phase, pod.ready_at = READY, now
        self.time_to_ready.append(now - pod.created)
        self.started.append(now - pod.created)

    def release(self, node: int, now: float) -> None:
        """A pod on ``node`` gives its GPUs back (deleted before ready, or its drain ended)."""
        self.used[node] -= self.gpus_per_replica
        if self.used[node] == 0:
            self.idle_since[node] = now
        self._touch(node)

    def schedule_waiting(self, pods: Sequence[P], now: float) -> list[P]:
        """Place pending pods, oldest first, until one does not fit (GPUs were freed); returns
        the ones that became ready at once (a lifecycle without start-up times)."""
        became: list[P] = []
        for pod in pods:
            if pod.phase != PENDING:
                continue
            if not self.schedule(pod, now):
                break
            if pod.phase == READY:
                became.append(pod)
        return became

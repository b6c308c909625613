"""Nodes, replica lifecycle, scheduling and routing of a simulated fleet.

Lifecycle of a replica (DESIGN.md, "Replica lifecycle"): created -> pending (no node with enough
free GPUs) -> provisioning (optional, ``provision_s``) -> image pull (``pull_s``, skipped on a node
that already holds the modelcar image) -> engine init (``init_s``) -> ready -> draining (deleted:
finishes its in-flight requests, gets no new ones) -> gone.

Scheduling model: kube-scheduler scores feasible nodes; we use the sum of NodeResourcesFit's
default ``LeastAllocated`` score (free GPU fraction x 100) and ImageLocality (100 when the node
holds the image, which a 100+ GB modelcar saturates). ImageLocality is only a score: a warm node
wins over an empty cold node unless it is more than full by the same margin. Ties go to the lowest
node index, which keeps runs deterministic.

Prefetch (``autoscaler.simulation.prefetch``): a pull the planner started on a node lives in
``prefetch_until`` (node -> end); a replica scheduled there meanwhile joins it (containerd fetches
one reference once) and waits only for its rest; :meth:`Fleet.prefetch_done` puts the image in
the node's cache when it ends.

Scale-down follows the ReplicaSet's ranking (``controller.ActivePodsWithRanks``): unscheduled
pods first, then not-ready ones (newest first), then ready ones with the most recent Ready time.
Not-ready pods go away at once; ready ones drain.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from autoscaler.perf.model import PerfProfile
from autoscaler.replica_states import DEFAULT_TIME_TO_READY_WINDOW
from autoscaler.simulation.replica import Replica, ReplicaSink
from autoscaler.simulation.requests import RequestTable

PENDING = "pending"
PROVISIONING = "provisioning"
PULLING = "pulling"
INITIALIZING = "initializing"
READY = "ready"
DRAINING = "draining"
GONE = "gone"

_UNREADY_ORDER = {PENDING: 0, PROVISIONING: 1, PULLING: 2, INITIALIZING: 3}


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


@dataclass(slots=True)
class Node:
    index: int
    gpus: int
    used: int = 0
    images: deque[str] = field(default_factory=deque)
    idle_since: float | None = None
    """When the workload's image was last used here while no pod of it runs (churn model)."""

    def holds(self, image: str) -> bool:
        return image in self.images

    def store(self, image: str, slots: int) -> None:
        if image in self.images:
            self.images.remove(image)
        self.images.append(image)
        while len(self.images) > slots:
            self.images.popleft()


@dataclass(slots=True)
class ReplicaRecord:
    """One pod of the workload, from creation to deletion."""

    slot: int
    created: float
    phase: str
    node: int | None = None
    phase_until: float = 0.0
    ready_at: float | None = None
    deleted_at: float | None = None
    warm: bool = False
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
        image: str = "modelcar",
    ) -> None:
        self.profile = profile
        self.lifecycle = lifecycle
        self.gpus_per_replica = profile.tp
        self.nodes = [Node(i, lifecycle.node_gpus) for i in range(num_nodes)]
        self.reqs = reqs
        self.image = image
        self.records: list[ReplicaRecord] = []
        self.load: list[float] = []
        self.sink = ReplicaSink(self.load)
        self.routable: list[int] = []
        self.backlog: deque[int] = deque()
        """Requests that arrived while no replica was ready (the gateway holds them)."""
        self.dispatched = 0
        """Requests routed to a replica so far: what a gateway's request counter counts."""
        self.cold_starts = 0
        self.warm_starts = 0
        self.retired_gen_tokens = 0
        self.retired_prompt_tokens = 0
        self.time_to_ready: deque[float] = deque(maxlen=DEFAULT_TIME_TO_READY_WINDOW)
        """The latest times to ready: the window ``serve`` summarises (``lead_time_s``)."""
        self.pending_events: list[tuple[float, int]] = []
        """(time, slot) lifecycle transitions the engine must schedule."""
        self.prefetch_until: dict[int, float] = {}
        """Prefetch pulls running now: node index -> when they end (shared with the planner)."""

    # -- views -----------------------------------------------------------------------------
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
            victims = sorted(live, key=self._deletion_rank)[: len(live) - desired]
            for rec in victims:
                self._delete(rec, now)

    def create_ready(self, now: float) -> None:
        """A replica that is already serving at ``now`` (the run's starting fleet)."""
        rec = self._create(now, instant=True)
        if rec.phase != READY:
            raise RuntimeError("node pool too small for the starting fleet")

    @staticmethod
    def _deletion_rank(rec: ReplicaRecord) -> tuple[int, float, int]:
        if rec.phase in _UNREADY_ORDER:
            return (_UNREADY_ORDER[rec.phase], -rec.created, -rec.slot)
        return (10, -(rec.ready_at or 0.0), -rec.slot)

    def _create(self, now: float, instant: bool = False) -> ReplicaRecord:
        slot = len(self.records)
        rec = ReplicaRecord(slot=slot, created=now, phase=PENDING)
        self.records.append(rec)
        self.load.append(float("inf"))
        self._try_schedule(rec, now, instant)
        return rec

    def expire_images(self, now: float) -> None:
        """Other tenants' images evict ours from nodes idle for ``image_slots`` arrivals."""
        interval = self.lifecycle.foreign_image_interval_s
        if interval <= 0:
            return
        horizon = self.lifecycle.image_slots * interval
        for node in self.nodes:
            since = node.idle_since
            if since is not None and now - since >= horizon and self.image in node.images:
                node.images.remove(self.image)

    def _pick_node(self) -> Node | None:
        need = self.gpus_per_replica
        best: Node | None = None
        best_score = -1.0
        for node in self.nodes:
            free = node.gpus - node.used
            if free < need:
                continue
            score = 100.0 * (free - need) / node.gpus + (100.0 if node.holds(self.image) else 0.0)
            if score > best_score:
                best, best_score = node, score
        return best

    def _try_schedule(self, rec: ReplicaRecord, now: float, instant: bool = False) -> bool:
        self.expire_images(now)
        node = self._pick_node()
        if node is None:
            return False
        node.used += self.gpus_per_replica
        node.idle_since = None
        rec.node = node.index
        rec.warm = node.holds(self.image)
        if instant:
            node.store(self.image, self.lifecycle.image_slots)
            self._become_ready(rec, now, count_start=False)
            return True
        if rec.warm:
            self.warm_starts += 1
        else:
            self.cold_starts += 1
        lc = self.lifecycle
        if lc.provision_s > 0:
            self._enter(rec, PROVISIONING, now + lc.provision_s)
        elif not rec.warm and lc.pull_s > 0:
            self._enter(rec, PULLING, self._pull_end(node.index, now))
        elif lc.init_s > 0:
            self._enter(rec, INITIALIZING, now + lc.init_s)
        else:
            self._become_ready(rec, now)
        return True

    def _pull_end(self, node: int, now: float) -> float:
        """When a pull started at ``now`` on ``node`` ends: at the running prefetch's end if any."""
        end = now + self.lifecycle.pull_s
        joined = self.prefetch_until.get(node)
        return joined if joined is not None and now <= joined < end else end

    def prefetch_done(self, node: int, now: float) -> None:
        """A prefetch pull on ``node`` finished: the image is in its cache (and just used)."""
        target = self.nodes[node]
        target.store(self.image, self.lifecycle.image_slots)
        if target.used == 0:
            target.idle_since = now

    def _enter(self, rec: ReplicaRecord, phase: str, until: float) -> None:
        rec.phase = phase
        rec.phase_until = until
        self.pending_events.append((until, rec.slot))

    def advance(self, slot: int, now: float) -> None:
        """A lifecycle timer of ``slot`` fired at ``now``."""
        rec = self.records[slot]
        if rec.phase_until != now or rec.phase not in _UNREADY_ORDER:
            return  # the pod was deleted meanwhile, or this timer is outdated
        lc = self.lifecycle
        if rec.phase == PROVISIONING and not rec.warm and lc.pull_s > 0:
            assert rec.node is not None
            self._enter(rec, PULLING, self._pull_end(rec.node, now))
        elif rec.phase in (PROVISIONING, PULLING) and lc.init_s > 0:
            if rec.phase == PULLING:
                self._mark_warm(rec)
            self._enter(rec, INITIALIZING, now + lc.init_s)
        else:
            if rec.phase == PULLING:
                self._mark_warm(rec)
            self._become_ready(rec, now)

    def _mark_warm(self, rec: ReplicaRecord) -> None:
        if rec.node is not None:
            self.nodes[rec.node].store(self.image, self.lifecycle.image_slots)

    def _become_ready(self, rec: ReplicaRecord, now: float, count_start: bool = True) -> None:
        rec.phase = READY
        rec.ready_at = now
        if count_start:
            self.time_to_ready.append(now - rec.created)
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
            node = self.nodes[rec.node]
            node.used -= self.gpus_per_replica
            if node.used == 0:
                node.idle_since = now
            rec.node = None
            for other in self.records:
                if other.phase == PENDING and self._try_schedule(other, now):
                    continue
                if other.phase == PENDING:
                    break

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

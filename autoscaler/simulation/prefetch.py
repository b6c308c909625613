"""Prefetch in the simulator: the live planner (:func:`cache.planner.plan_prefetch`) driving
simulated pulls on the simulated node pool.

What is modelled (``docs/prefetch.md``, "In the simulator"):

- **The same planner, the same inputs.** Each tick, after the policy's recommendation reached
  the fleet, the demand is :func:`cache.planner.demand_from` of the recommendation's desired
  replicas and its published ``llm_forecast_load_replicas`` and ``llm_load_replicas``, exactly
  as live; the inventory is
  built from the simulated nodes (GPUs in use, whether the node holds the image, its disk) and
  the workload's pods on each node.
- **A simulated executor.** A planned pull occupies no GPU and takes the lifecycle's
  ``pull_s``; at its end the node holds the image. Like the live executor, a node whose pull
  just finished counts as warm at once (``known_warm``). A replica scheduled onto a node while
  our pull is still running joins it (containerd fetches a reference once) and waits only for
  the rest of it; it still counts as a cold start.
- **Node image caches with a capacity**: ``LifecycleConfig.image_slots`` images per node,
  LRU beyond that (:mod:`autoscaler.simulation.lifecycle`); the planner sees the node's
  disk as that many images' worth (``on_disk_factor`` x size each) under the GC threshold, so it
  plans a pull only where the cache has room. A simulated run has one workload image, so the
  cache never evicts it.
- **ImageLocality is only a score**: the simulated scheduler (``lifecycle.py``) adds 100 to a node
  that holds the image, on top of NodeResourcesFit's LeastAllocated (0 to 100 x the free GPU
  fraction after placement). A warm node with room therefore beats any cold one, but a warm node
  without room is not a candidate at all; which is why prefetch must keep warm *room*, not just
  warm nodes. The ``llm-autoscaler.io/warm-<hash>`` label the live executor sets (and the
  example workload prefers) is not scored separately: with ImageLocality saturated by a
  140 GB image it would not change any choice here. ``status.images`` lag is not modelled
  either; the Job-success path the planner uses live does not depend on it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from autoscaler.core.recommendation import Recommendation
from autoscaler.core.wire_names import FORECAST_METRIC, LOAD_METRIC
from cache.inventory import Inventory, NodeImage, NodeState, parse_image_ref
from cache.placement import Placement
from cache.planner import (
    Demand,
    PlannerSettings,
    WorkloadShape,
    demand_from,
    plan_prefetch,
    recent_rise,
    target_room,
)

__all__ = ["PrefetchSim", "SimPrefetcher", "published"]

SIM_IMAGE = "registry.example.com/models/simulated@sha256:" + "0" * 64
POOL_LABEL = {"cloud.google.com/gke-nodepool": "gpu"}
RISE_WINDOW_S = 3600.0


@dataclass(frozen=True, slots=True)
class PrefetchSim:
    """Prefetch settings of a simulated run (the live defaults unless given)."""

    settings: PlannerSettings = field(default_factory=PlannerSettings)
    image_gb: float = 140.0
    """The modelcar's size: a 70B model in 16 bits (only the disk-room check uses it)."""
    label_grace_s: float = 300.0


def published(rec: Recommendation, name: str) -> float | None:
    """A metric the policy published (e.g. ``llm_forecast_load_replicas``), if it did."""
    for metric in rec.metrics:
        if metric.name == name:
            return metric.value
    return None


class SimPrefetcher:
    """Plans with :func:`cache.planner.plan_prefetch` and tracks the simulated pulls."""

    def __init__(
        self,
        config: PrefetchSim,
        *,
        num_nodes: int,
        node_gpus: int,
        gpus_per_replica: int,
        pull_s: float,
        image_slots: int,
        min_replicas: int,
        max_replicas: int,
    ) -> None:
        self.config = config
        self.pull_s = pull_s
        self.min_replicas = min_replicas
        self.max_replicas = max_replicas
        self.node_gpus = node_gpus
        self.names = [f"node-{i:03d}" for i in range(num_nodes)]
        self._index = {name: i for i, name in enumerate(self.names)}
        self.image = parse_image_ref(SIM_IMAGE)
        size = int(config.image_gb * 1e9)
        settings = config.settings
        disk = (
            size
            * settings.on_disk_factor
            * image_slots
            / (settings.gc_high_threshold_percent / 100)
        )
        self._disk = int(disk) + 1
        self._shape = WorkloadShape(Placement(), gpus_per_replica, self.image, size)
        self._warm_entry = (NodeImage((SIM_IMAGE,), size),)
        self.pull_until: dict[int, float] = {}
        self.finished_at: dict[int, float] = {}
        self.pulls_started = 0
        self.pull_node_seconds = 0.0
        self._fleet_nodes = 0
        self._nodes: dict[tuple[int, int, bool], NodeState] = {}
        self.history: deque[tuple[float, int]] = deque()
        """(tick, the workload's pods on nodes) over the last hour, for the recent rise."""

    def plan(
        self,
        now: float,
        rec: Recommendation,
        *,
        used: Sequence[int],
        warm: Sequence[bool],
        pods_on: Mapping[int, int],
    ) -> list[tuple[int, float]]:
        """New pulls as ``(node index, done at)``; none while the policy holds."""
        current = sum(pods_on.values())
        self.history.append((now, current))
        while self.history and self.history[0][0] < now - RISE_WINDOW_S:
            self.history.popleft()
        demand = demand_from(
            None if rec.holds else rec.desired_replicas,
            published(rec, FORECAST_METRIC),
            published(rec, LOAD_METRIC),
            current,
            min_replicas=self.min_replicas,
            max_replicas=self.max_replicas,
            rise=recent_rise(self.history, now, span_s=self.pull_s, window_s=RISE_WINDOW_S),
        )
        if demand is None:
            return []
        self._fleet_nodes = sum(1 for n in pods_on.values() if n > 0)
        grace = self.config.label_grace_s
        for i in [i for i, t in self.finished_at.items() if now - t >= grace]:
            del self.finished_at[i]
        if self._no_pull_possible(demand, used, warm):
            return []
        nodes = tuple(self._node(i, used[i], warm[i]) for i in range(len(self.names)))
        plan = plan_prefetch(
            demand,
            self._shape,
            Inventory(nodes),
            settings=self.config.settings,
            replicas_on_node={self.names[i]: n for i, n in pods_on.items()},
            pulling=[self.names[i] for i in self.pull_until],
            known_warm=[self.names[i] for i in self.finished_at],
        )
        started = []
        for pull in plan.pulls:
            i = self._index[pull.node]
            self.pull_until[i] = now + self.pull_s
            self.pulls_started += 1
            started.append((i, now + self.pull_s))
        return started

    def _node(self, i: int, used: int, warm: bool) -> NodeState:
        """The node as the inventory would show it (reused while it does not change)."""
        key = (i, used, warm)
        node = self._nodes.get(key)
        if node is None:
            node = NodeState(
                name=self.names[i],
                labels=POOL_LABEL,
                gpus_allocatable=self.node_gpus,
                gpus_requested=used,
                images=self._warm_entry if warm else (),
                disk_capacity_bytes=self._disk,
            )
            self._nodes[key] = node
        return node

    def _no_pull_possible(self, demand: Demand, used: Sequence[int], warm: Sequence[bool]) -> bool:
        """True when the planner would certainly start no pull: its own early exits (enough warm
        room, the warm-node cap, the pool's concurrency) on the simulated pool, where every node
        is eligible and in one pool. Only a shortcut: it skips building an inventory of every
        node on the ticks where nothing can happen (most of them), which keeps multi-day fluid
        runs of thousands of nodes fast; it never changes a decision."""
        cfg = self.config.settings
        max_warm, max_flight = cfg.caps(self._fleet_nodes)
        if len(self.pull_until) >= max_flight:
            return True
        gpr = self._shape.gpus_per_replica
        room = spare = 0
        gpus = self.node_gpus
        pulling, fresh = self.pull_until, self.finished_at
        for i, u in enumerate(used):
            if warm[i] or i in pulling or i in fresh:
                room += (gpus - u) // gpr
                if u == 0:
                    spare += 1
        return room >= target_room(demand, cfg) or spare >= max_warm

    def finish(self, node: int, now: float) -> bool:
        """The pull on ``node`` ends at ``now``; False for an outdated timer."""
        if self.pull_until.get(node) != now:
            return False
        del self.pull_until[node]
        self.finished_at[node] = now
        self.pull_node_seconds += self.pull_s
        return True

    def pull_seconds_until(self, end: float) -> float:
        """Node-seconds spent pulling up to ``end`` (pulls still running count so far)."""
        running = sum(max(0.0, self.pull_s - (until - end)) for until in self.pull_until.values())
        return self.pull_node_seconds + running

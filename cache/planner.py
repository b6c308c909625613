"""The prefetch planner (pure): which nodes to pull the modelcar onto, how many, and when to stop.

Inputs are plain values: the replicas the forecast says are needed within the lead time, the
replicas there are now, the workload's shape (placement rules, GPUs per replica, image and its
size), the :class:`~cache.inventory.Inventory`, where our pulls are already running, and the
settings. The output is a :class:`Plan` with its reasons; the same function runs live
(:mod:`cache.prefetcher`) and in the simulator, so the benchmark measures what production does.

**How many.** A replica starts warm only if, when it is created, some node it may use holds the
image and has its GPUs free. The HPA scales up the moment the forecast asks for more, so pulling
*then* is too late: the planner keeps *warm room* ahead of need, counted in replicas::

    target room = max(0, need - current) + max(spare_replicas, ceil(growth), recent rise)

- ``need`` = max(desired replicas, ceil(forecast)): what the policy wants within the lead time
  (replicas not yet on a node count as not there: they still need room);
- ``growth`` = forecast - load, both in replicas (the policy's published
  ``llm_forecast_load_replicas`` and ``llm_load_replicas``): how far the upper forecast quantile
  sits above today's load, i.e. how much the load may rise within one lead time. A pull takes
  most of a lead time, so this is the room the *next* scale-ups will want by the time a pull
  started now is done; it grows on a ramp and with a volatile load, and shrinks to
  ``spare_replicas`` on a flat one;
- ``recent rise`` = the largest rise of the workload's replicas within one pull time over the
  last hour (:func:`recent_rise`, from the caller's history): a workload that scales in steps
  (traffic arriving in bursts, a rate that moves window by window) repeats them, and a smooth
  forecast does not see a step coming;
- warm room = free GPUs // GPUs per replica, summed over eligible nodes that hold the image or
  are pulling it.

When the room reaches the target the planner stops (status ``enough``).

**Which nodes.** Eligible: Ready, schedulable, passing the workload's nodeSelector, required node
affinity and taints (:mod:`cache.placement`), with room for the replica's GPUs, with disk room,
and without the image (or the image's presence unknown: a full ``status.images`` list, see
:func:`~cache.inventory.image_presence`, is skipped rather than guessed). Candidates are ranked
as kube-scheduler's default profile would rank them for the *next* replica once the warm nodes are
full, so the nodes warmed first are the ones cold replicas would otherwise land on:

- NodeResourcesFit ``LeastAllocated`` on GPUs (weight 1): 100 x free GPUs after the replica /
  allocatable GPUs. The default profile scores CPU and memory; on GPU nodes the GPU request
  dominates which node fills first, and the simulator scores the same way;
- NodeAffinity (weight 2): the matched preferred terms' weights, normalised to 0-100 over the
  candidates;
- TaintToleration (weight 3): fewer untolerated ``PreferNoSchedule`` taints score higher;
- ImageLocality (weight 1) is 0 for every candidate (none holds the image), so it does not rank
  them; it is why a warm node *wins* over a cold one, and only as a score (PREFETCH.md §4), hence
  the warm label the workload can prefer.

Ties go to the node name, so a plan is deterministic.

**Never.** More warm spare nodes (eligible nodes holding or pulling the image while running none of
the workload's pods) than ``max_warm_nodes``; more pulls in flight in one node pool than
``max_concurrent_per_pool`` (both grow to ``fleet_fraction`` of the nodes running the workload's
pods when that is more; pulls are network- and disk-heavy, and a pool shares its uplink); a node
without room for ``on_disk_factor`` x the image size (containerd keeps the compressed blob and the
unpacked layers) under the kubelet's ``imageGCHighThresholdPercent`` (85%): past it, GC would start
deleting images, perhaps this one.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from cache.inventory import ImageRef, Inventory, NodeState, Presence, image_presence
from cache.placement import Placement

__all__ = [
    "DEFAULT_POOL_LABELS",
    "Demand",
    "Plan",
    "PlannedPull",
    "PlannerSettings",
    "WorkloadShape",
    "disk_room",
    "node_pool",
    "demand_from",
    "plan_prefetch",
    "recent_rise",
    "target_room",
]

DEFAULT_POOL_LABELS: Final[tuple[str, ...]] = (
    "cloud.google.com/gke-nodepool",
    "eks.amazonaws.com/nodegroup",
    "karpenter.sh/nodepool",
    "kubernetes.azure.com/agentpool",
    "node.kubernetes.io/instance-type",
)
"""Node labels naming a node's pool, first present wins (managed pools, Karpenter, then type)."""
DEFAULT_POOL: Final = "default"

PlanStatus = Literal["pull", "enough", "capped", "no-eligible-node", "no-image-size"]


@dataclass(frozen=True, slots=True)
class PlannerSettings:
    max_warm_nodes: int = 4
    """Most warm spare nodes (holding or pulling the image, running none of its pods)."""
    max_concurrent_per_pool: int = 2
    """Most prefetch pulls running at once in one node pool."""
    spare_replicas: int = 1
    """Warm room kept beyond the forecast need, in replicas."""
    gc_high_threshold_percent: float = 85.0
    """The kubelet's ``imageGCHighThresholdPercent``: disk use the pull must stay below."""
    on_disk_factor: float = 2.0
    """Disk an image takes per byte of ``sizeBytes``: 2 with containerd's default (blob kept
    next to the unpacked layers); 1 with ``discard_unpacked_layers`` (kubespray, Talos)."""
    pool_label_keys: tuple[str, ...] = DEFAULT_POOL_LABELS
    fleet_fraction: float = 0.1
    """Both caps grow with the workload to this fraction of the nodes running its pods (the
    absolute caps are floors): a fleet of 400 nodes scales up by tens of nodes at a time, which
    four warm nodes and two pulls cannot cover, and its pools have that many more uplinks.
    0 keeps the absolute caps."""

    def __post_init__(self) -> None:
        if self.max_warm_nodes < 0 or self.max_concurrent_per_pool < 1 or self.spare_replicas < 0:
            raise ValueError(
                "max_warm_nodes and spare_replicas must be >= 0, max_concurrent_per_pool >= 1"
            )
        if not 0.0 <= self.fleet_fraction <= 1.0:
            raise ValueError("fleet_fraction must be in [0, 1]")
        if not 0 < self.gc_high_threshold_percent <= 100 or self.on_disk_factor <= 0:
            raise ValueError("gc_high_threshold_percent must be in (0, 100], on_disk_factor > 0")

    def caps(self, fleet_nodes: int) -> tuple[int, int]:
        """(warm spare nodes, pulls per pool) allowed for a workload on ``fleet_nodes`` nodes."""
        scaled = math.ceil(self.fleet_fraction * max(0, fleet_nodes) - 1e-9)
        return max(self.max_warm_nodes, scaled), max(self.max_concurrent_per_pool, scaled)


@dataclass(frozen=True, slots=True)
class Demand:
    replicas_needed: int
    """Replicas the forecast needs within the lead time (desired, or the forecast if higher)."""
    current_replicas: int
    """The workload's replicas that sit on a node now."""
    growth_replicas: float = 0.0
    """How much the load may rise within one lead time (forecast - load), in replicas."""
    recent_rise: int = 0
    """The largest rise of the workload's replicas within one pull time over the last hour
    (:func:`recent_rise`): the size of the scale-ups this workload makes at once."""


@dataclass(frozen=True, slots=True)
class WorkloadShape:
    placement: Placement
    gpus_per_replica: int
    image: ImageRef
    image_size_bytes: int | None
    """``sizeBytes`` of the image (config, or as a node reports it); None when unknown."""


@dataclass(frozen=True, slots=True)
class PlannedPull:
    node: str
    pool: str
    score: float
    room_replicas: int
    """Replicas of this workload that fit on the node's free GPUs now."""


@dataclass(frozen=True, slots=True)
class Plan:
    status: PlanStatus
    pulls: tuple[PlannedPull, ...] = ()
    warm_nodes: tuple[str, ...] = ()
    """Eligible nodes that hold the image (per ``status.images`` or a fresh Job success)."""
    pulling_nodes: tuple[str, ...] = ()
    warm_room_replicas: int = 0
    target_room_replicas: int = 0
    spare_warm_nodes: int = 0
    reasons: tuple[str, ...] = ()
    skipped: Mapping[str, str] = field(default_factory=dict)
    """Nodes that are not candidates, with why (for logs and the no-eligible-node Event)."""

    @property
    def summary(self) -> str:
        return "; ".join(self.reasons)


def demand_from(
    desired: int | None,
    forecast_replicas: float | None,
    load_replicas: float | None,
    current: int,
    *,
    min_replicas: int = 0,
    max_replicas: int | None = None,
    rise: int = 0,
) -> Demand | None:
    """The :class:`Demand` of a recommendation; None when the policy holds (fail static).

    ``desired``: its desired replicas; ``forecast_replicas`` / ``load_replicas``: its published
    ``llm_forecast_load_replicas`` / ``llm_load_replicas`` (None when it publishes none: then the
    need is the desired count and the growth 0); ``current``: the workload's pods on nodes. The
    live prefetcher and the simulator both take their demand from here.
    """
    if desired is None:
        return None
    need = desired
    forecast_ok = forecast_replicas is not None and math.isfinite(forecast_replicas)
    if forecast_ok:
        assert forecast_replicas is not None
        need = max(need, int(math.ceil(forecast_replicas - 1e-9)))
    if max_replicas is not None:
        need = min(max_replicas, need)
    need = max(min_replicas, need)
    growth = 0.0
    if forecast_ok and load_replicas is not None and math.isfinite(load_replicas):
        assert forecast_replicas is not None
        growth = max(0.0, forecast_replicas - load_replicas)
        if max_replicas is not None:
            growth = min(growth, float(max(0, max_replicas - current)))
    return Demand(need, current, growth, max(0, rise))


def node_pool(node: NodeState, keys: tuple[str, ...] = DEFAULT_POOL_LABELS) -> str:
    for key in keys:
        value = node.labels.get(key)
        if value:
            return value
    return DEFAULT_POOL


def disk_room(node: NodeState, size_bytes: int, settings: PlannerSettings) -> str | None:
    """Why ``node`` has no room for the image under the GC threshold; None when it has."""
    capacity = node.disk_capacity_bytes
    if capacity is None or capacity <= 0:
        return "no ephemeral-storage capacity reported"
    used = settings.on_disk_factor * node.image_bytes
    need = settings.on_disk_factor * size_bytes
    limit = capacity * settings.gc_high_threshold_percent / 100.0
    if used + need > limit:
        return (
            f"no disk room: images {used / 1e9:.0f} GB + this one {need / 1e9:.0f} GB "
            f"> {settings.gc_high_threshold_percent:g}% of {capacity / 1e9:.0f} GB"
        )
    return None


def _fit_score(node: NodeState, gpus: int) -> float:
    if node.gpus_allocatable <= 0:
        return 0.0
    return 100.0 * (node.gpus_free - gpus) / node.gpus_allocatable


def _summarise_skips(skipped: Mapping[str, str]) -> str:
    """``3 untolerated taint (e.g. nvidia.com/gpu=present:NoSchedule), 1 not Ready``."""
    counts: dict[str, int] = {}
    example: dict[str, str] = {}
    for why in skipped.values():
        head, _, detail = why.partition(": ")
        counts[head] = counts.get(head, 0) + 1
        example.setdefault(head, detail)
    parts = []
    for head, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        detail = example[head]
        parts.append(f"{n} {head}" + (f" (e.g. {detail})" if detail else ""))
    return ", ".join(parts)


def _no_candidate_detail(
    skipped: Mapping[str, str], warm: list[str], pulling: list[str], room: int, target: int
) -> str:
    """Why no node is left to pull onto: the skipped nodes' reasons, and the nodes that already
    hold or are pulling the image (they are not candidates, but they are not missing either)."""
    parts = [_summarise_skips(skipped)] if skipped else []
    if warm or pulling:
        parts.append(
            f"{len(warm)} already hold the image and {len(pulling)} are pulling it, with room "
            f"for {room} of the {target} replicas"
        )
    return ", ".join(parts) if parts else "the cluster has no nodes"


def plan_prefetch(
    demand: Demand,
    shape: WorkloadShape,
    inventory: Inventory,
    *,
    settings: PlannerSettings,
    replicas_on_node: Mapping[str, int] | None = None,
    pulling: Collection[str] = (),
    known_warm: Collection[str] = (),
    exclude: Mapping[str, str] | None = None,
) -> Plan:
    """Plan prefetch pulls for one workload (see the module docstring for the rules).

    ``replicas_on_node``: the workload's pods per node; ``pulling``: nodes where our pull is
    running; ``known_warm``: nodes where our pull succeeded recently (``status.images`` lags);
    ``exclude``: nodes not to use now, with why (e.g. a pull failed there minutes ago).
    """
    on_node = replicas_on_node or {}
    exclude = exclude or {}
    gpr = max(1, shape.gpus_per_replica)
    size = shape.image_size_bytes
    target = target_room(demand, settings)

    warm: list[str] = []
    in_flight: list[str] = []
    room = 0
    spare_warm = 0
    flight_per_pool: dict[str, int] = {}
    candidates: list[tuple[NodeState, str]] = []
    skipped: dict[str, str] = {}
    pulling_set, known_set = set(pulling), set(known_warm)
    max_warm, max_flight = settings.caps(sum(1 for n in on_node.values() if n > 0))

    for node in inventory.nodes:
        pool = node_pool(node, settings.pool_label_keys)
        if node.name in pulling_set:
            flight_per_pool[pool] = flight_per_pool.get(pool, 0) + 1
        why = _ineligible(node, shape)
        if why is not None:
            skipped[node.name] = why
            continue
        presence = image_presence(node, shape.image, size)
        holds = presence is Presence.PRESENT or node.name in known_set
        if holds or node.name in pulling_set:
            (warm if holds else in_flight).append(node.name)
            room += node.gpus_free // gpr
            if on_node.get(node.name, 0) == 0:
                spare_warm += 1
            continue
        if node.gpus_free < gpr:
            skipped[node.name] = f"no free GPUs: {node.gpus_free} free, {gpr} per replica"
            continue
        if presence is Presence.UNKNOWN:
            skipped[node.name] = "image list full: cannot tell whether the image is there"
            continue
        if node.name in exclude:
            skipped[node.name] = f"excluded: {exclude[node.name]}"
            continue
        if size is not None:
            no_room = disk_room(node, size, settings)
            if no_room is not None:
                skipped[node.name] = no_room
                continue
        candidates.append((node, pool))

    def done(status: PlanStatus, *reasons: str, pulls: tuple[PlannedPull, ...] = ()) -> Plan:
        return Plan(
            status=status,
            pulls=pulls,
            warm_nodes=tuple(warm),
            pulling_nodes=tuple(in_flight),
            warm_room_replicas=room,
            target_room_replicas=target,
            spare_warm_nodes=spare_warm,
            reasons=reasons,
            skipped=skipped,
        )

    head = (
        f"need {demand.replicas_needed} replicas (have {demand.current_replicas}): "
        f"warm room {room} of {target} replicas on {len(warm)} warm + {len(in_flight)} pulling "
        "nodes"
    )
    if room >= target:
        return done("enough", f"{head}: enough")
    if size is None:
        return done(
            "no-image-size",
            head,
            "image size unknown (set image_size_gb, or wait until a node reports it)",
        )
    if not candidates:
        detail = _no_candidate_detail(skipped, warm, in_flight, room, target)
        return done("no-eligible-node", head, f"no eligible node for {shape.image.text}: {detail}")
    budget = max_warm - spare_warm
    if budget <= 0:
        return done(
            "capped",
            head,
            f"at the cap: {spare_warm} warm spare nodes (max_warm_nodes {max_warm})",
        )

    ranked = _rank(candidates, shape, gpr)
    chosen: list[PlannedPull] = []
    pool_full: set[str] = set()
    for node, pool, score in ranked:
        if room >= target or len(chosen) >= budget:
            break
        if flight_per_pool.get(pool, 0) >= max_flight:
            pool_full.add(pool)
            continue
        flight_per_pool[pool] = flight_per_pool.get(pool, 0) + 1
        fits = node.gpus_free // gpr
        chosen.append(PlannedPull(node.name, pool, round(score, 3), fits))
        room += fits
    reasons = [head]
    if chosen:
        reasons.append(
            "pull on "
            + ", ".join(f"{p.node} (score {p.score:g}, room {p.room_replicas})" for p in chosen)
        )
    if room < target and len(chosen) >= budget:
        reasons.append(f"stopped at max_warm_nodes {max_warm}")
    if pool_full:
        reasons.append(
            f"pools at max_concurrent_per_pool {max_flight}: " + ", ".join(sorted(pool_full))
        )
    # ``room`` now includes the chosen pulls; the plan reports the room before them
    room -= sum(p.room_replicas for p in chosen)
    return done("pull" if chosen else "capped", *reasons, pulls=tuple(chosen))


def target_room(demand: Demand, settings: PlannerSettings) -> int:
    """Warm room to keep, in replicas: what the need adds now, plus the next scale-up's worth
    (the forecast's growth, the recent scale-ups' size, or ``spare_replicas``, the largest)."""
    growth = demand.growth_replicas
    ahead = math.ceil(growth - 1e-9) if math.isfinite(growth) and growth > 0 else 0
    more = max(0, demand.replicas_needed - demand.current_replicas)
    return more + max(settings.spare_replicas, ahead, demand.recent_rise)


def recent_rise(
    history: Sequence[tuple[float, int]], now: float, *, span_s: float, window_s: float = 3600.0
) -> int:
    """The largest rise of a replica count within ``span_s`` over the last ``window_s``.

    ``history`` is ``(time, replicas)`` in time order (one sample per tick is enough). A
    workload that scales up in steps (a rate trace's windows, a batch of traffic arriving at
    the hour) repeats them, and a forecast that is smooth does not see a step coming; keeping
    that much room ahead covers the next one. Falls to 0 after an hour without rises.
    """
    best = 0
    lows: list[tuple[float, int]] = []  # increasing counts, for the minimum over the span
    for t, n in history:
        if t < now - window_s:
            continue
        while lows and lows[-1][1] >= n:
            lows.pop()
        lows.append((t, n))
        while lows and lows[0][0] < t - span_s:
            lows.pop(0)
        best = max(best, n - lows[0][1])
    return best


def _ineligible(node: NodeState, shape: WorkloadShape) -> str | None:
    if not node.ready:
        return "not Ready"
    if node.unschedulable:
        return "unschedulable (cordoned)"
    if node.gpus_allocatable < shape.gpus_per_replica:
        return f"too few GPUs: {node.gpus_allocatable} allocatable"
    return shape.placement.rejects(node)


def _rank(
    candidates: list[tuple[NodeState, str]], shape: WorkloadShape, gpr: int
) -> list[tuple[NodeState, str, float]]:
    """Candidates by the scheduler's score for the workload's next pod, best first."""
    placement = shape.placement
    weights = [placement.preferred_weight(n) for n, _ in candidates]
    max_weight = max(weights) if weights else 0
    soft = [placement.intolerable_soft_taints(n) for n, _ in candidates]
    max_soft = max(soft) if soft else 0
    scored = []
    for (node, pool), weight, taints in zip(candidates, weights, soft, strict=True):
        affinity = 100.0 * weight / max_weight if max_weight > 0 else 0.0
        toleration = 100.0 * (max_soft - taints) / max_soft if max_soft > 0 else 100.0
        score = _fit_score(node, gpr) + 2.0 * affinity + 3.0 * toleration
        scored.append((node, pool, score))
    scored.sort(key=lambda item: (-item[2], item[0].name))
    return scored

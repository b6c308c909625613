"""The event loop of a disaggregated run: a prefill pool and a decode pool, each scaled by its
own policy.

A request arrives at the prefill pool's router (least outstanding prompt work), is prefilled by a
:class:`~autoscaler.simulation.pd_replicas.PrefillReplica`, its KV leaves over that replica's
link, and at the transfer's end it is routed to the decode pool (least outstanding decode work),
where it waits until its final context fits in a decode replica's KV. Requests arriving while a
pool has no ready replica wait at that pool's router, as at the aggregated fleet's gateway.

Each pool is a :class:`~autoscaler.simulation.pd_replicas.PoolFleet` with the aggregated fleet's
lifecycle (pull, init, drain, the ReplicaSet's scale-down order) on its own node pool, scraped
by its own :class:`~autoscaler.simulation.observation.PrometheusView` every tick. Its policy sees
only that pool's snapshot, as a per-role scale target would live (one ``llm_desired_replicas``
per role); policies that publish external metrics go through their own HPA emulation.

Per-request figures (TTFT to the first token the client gets, TPOT, the SLO) are read from the
run's main :class:`~autoscaler.simulation.requests.RequestTable`; the prefill pool writes its
engine-side times into a second table (``prefill_reqs``) that only its view reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from heapq import heappush

from autoscaler.core.replica_states import DEFAULT_PENDING_TIMEOUT_S
from autoscaler.hpa.controller import HpaController
from autoscaler.perf.model import PerfProfile
from autoscaler.policies.base import Policy
from autoscaler.simulation.engine import TickRecord, _decide
from autoscaler.simulation.lifecycle import LifecycleConfig
from autoscaler.simulation.observation import PrometheusView
from autoscaler.simulation.pd_replicas import (
    DECODE_ROLE,
    PREFILL,
    ROLES,
    PoolFleet,
    PrefillReplica,
    transfer_s_per_token,
)
from autoscaler.simulation.replica import Replica
from autoscaler.simulation.requests import RequestTable, arrivals_and_events
from autoscaler.traces.records import Trace

STEP = 0
LIFECYCLE = 1
TRANSFER = 2
TICK = 3


@dataclass(frozen=True, slots=True)
class PdConfig:
    """A disaggregated run's settings besides the trace, the policies and the profile."""

    max_replicas: Mapping[str, int]
    start_replicas: Mapping[str, int]
    kv_bytes_per_token: int
    link_gbps: float
    min_replicas: int = 1
    tick_s: float = 15.0
    rate_window_s: float = 60.0
    pending_timeout_s: float = DEFAULT_PENDING_TIMEOUT_S
    lifecycle: LifecycleConfig = field(default_factory=LifecycleConfig)
    drain_grace_s: float = 1800.0
    work_weights: tuple[float, float] = (1.0, 1.0)
    workload: str = "default/llm"
    warmup_s: float = 0.0
    warmup_plan: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    """Per role, replicas per minute during the warm-up (the two-pool oracle's plan)."""


@dataclass
class PdRunOutput:
    """Raw outcome of one disaggregated run."""

    reqs: RequestTable
    prefill_reqs: RequestTable
    fleets: dict[str, PoolFleet]
    duration_s: float
    timeline: dict[str, list[TickRecord]]
    replica_changes: dict[str, int]
    max_replicas: dict[str, int]
    warmup_s: float = 0.0


def simulate_pd(
    trace: Trace,
    policies: Mapping[str, Policy],
    *,
    profile: PerfProfile,
    config: PdConfig,
) -> PdRunOutput:
    """Replay ``trace`` against a prefill and a decode pool scaled by ``policies[role]``."""
    wp, wd = config.work_weights
    reqs = RequestTable(trace, (0.0, wd))
    prefill_reqs = RequestTable(trace, (wp, 0.0))
    xfer = transfer_s_per_token(config.kv_bytes_per_token, config.link_gbps)
    fleets: dict[str, PoolFleet] = {}
    views: dict[str, PrometheusView] = {}
    hpas: dict[str, HpaController | None] = {}
    for role in ROLES:
        nodes = -(-config.max_replicas[role] * profile.tp // config.lifecycle.node_gpus)
        fleet = PoolFleet(
            role=role,
            profile=profile,
            lifecycle=config.lifecycle,
            num_nodes=nodes,
            reqs=prefill_reqs if role == PREFILL else reqs,
            xfer_s_per_token=xfer,
        )
        fleets[role] = fleet
        views[role] = PrometheusView(
            prefill_reqs if role == PREFILL else reqs,
            fleet,
            workload=f"{config.workload}-{role}",
            rate_window_s=config.rate_window_s,
            scrape_s=config.tick_s,
            pending_timeout_s=config.pending_timeout_s,
        )
        policy = policies[role]
        spec = policy.hpa_spec() if policy.actuation == "hpa" else None
        hpas[role] = HpaController(spec, sync_period_s=config.tick_s) if spec else None
        for _ in range(config.start_replicas[role]):
            fleet.create_ready(0.0)
    prefill, decode = fleets[PREFILL], fleets[DECODE_ROLE]
    specs = {role: config.start_replicas[role] for role in ROLES}
    changes = {role: 0 for role in ROLES}
    timeline: dict[str, list[TickRecord]] = {role: [] for role in ROLES}
    warmup = config.warmup_s if config.warmup_plan else 0.0
    max_live = {role: (specs[role] if warmup <= 0 else 0) for role in ROLES}
    role_of = {PREFILL: 0, DECODE_ROLE: 1}
    by_index = (prefill, decode)

    heap: list[tuple[float, int, int, int, int, int]] = []
    seq = 0
    heappush(heap, (0.0, seq, TICK, 0, -1, 0))
    duration = trace.duration_s
    limit = min(profile.max_context, profile.kv_capacity_tokens)
    end_limit = duration + config.drain_grace_s

    def push_step(role: int, server: Replica, end: float | None) -> None:
        nonlocal seq
        if end is not None:
            seq += 1
            heappush(heap, (end, seq, STEP, role, server.slot, server.version))

    def assign(fleet: PoolFleet, rid: int, now: float) -> None:
        server = fleet.route()
        if server is None:
            fleet.backlog.append(rid)
            return
        fleet.dispatched += 1
        fleet.load[server.slot] += fleet.reqs.work[rid]
        push_step(role_of[fleet.role], server, server.enqueue(rid, now))

    def settle(fleet: PoolFleet, now: float) -> None:
        nonlocal seq
        role = role_of[fleet.role]
        for when, slot in fleet.pending_events:
            seq += 1
            heappush(heap, (when, seq, LIFECYCLE, role, slot, 0))
        fleet.pending_events.clear()
        while fleet.backlog and fleet.routable:
            assign(fleet, fleet.backlog.popleft(), now)

    def handoffs() -> None:
        nonlocal seq
        started = prefill.pd_sink.handoffs
        for when, rid, slot in started:
            seq += 1
            heappush(heap, (when, seq, TRANSFER, 0, slot, rid))
        started.clear()

    for now, rid, event in arrivals_and_events(reqs, limit, heap):
        if event is None:
            assign(prefill, rid, now)
            continue
        _, _, kind, pool, slot, extra = event
        if now > end_limit:
            break
        if kind == STEP:
            fleet = by_index[pool]
            rec = fleet.records[slot]
            srv = rec.server
            if srv is None or srv.version != extra:
                continue
            push_step(pool, srv, srv.step_end(now))
            if pool == 0:
                handoffs()
            if rec.phase == "draining":
                fleet.maybe_finish_drain(slot, now)
                settle(fleet, now)
        elif kind == TRANSFER:
            rid = extra
            rec = prefill.records[slot]
            srv = rec.server
            if isinstance(srv, PrefillReplica):
                push_step(0, srv, srv.transfer_done(rid, now))
                if rec.phase == "draining":
                    prefill.maybe_finish_drain(slot, now)
                    settle(prefill, now)
            if reqs.output[rid] <= 1:
                reqs.first_token[rid] = now
                reqs.finished[rid] = now
            else:
                assign(decode, rid, now)
        elif kind == LIFECYCLE:
            fleet = by_index[pool]
            fleet.advance(slot, now)
            settle(fleet, now)
        else:
            warming = now < warmup
            for name in ROLES:
                fleet = fleets[name]
                view = views[name]
                view.scrape(now)
                snapshot = view.snapshot(now)
                rec_ = policies[name].recommend(snapshot)
                desired = _decide(rec_, hpas[name], now, specs[name],
                                  snapshot.replicas.spec, snapshot.replicas.ready)  # fmt: skip
                if warming:
                    plan = config.warmup_plan[name]
                    desired = plan[min(int(now // 60), len(plan) - 1)]
                desired = max(config.min_replicas, min(config.max_replicas[name], desired))
                if desired != specs[name]:
                    changes[name] += 0 if warming else 1
                    specs[name] = desired
                fleet.scale_to(desired, now, instant=warming)
                settle(fleet, now)
                if not warming:
                    max_live[name] = max(max_live[name], desired)
                timeline[name].append(TickRecord.of(now, desired, snapshot, rec_.winner, (wp, wd)))
            if now + config.tick_s <= duration:
                seq += 1
                heappush(heap, (now + config.tick_s, seq, TICK, 0, -1, 0))
    return PdRunOutput(
        reqs=reqs,
        prefill_reqs=prefill_reqs,
        fleets=fleets,
        duration_s=duration,
        timeline=timeline,
        replica_changes=changes,
        max_replicas=max_live,
        warmup_s=warmup,
    )

"""The event loop of one simulated run: trace arrivals, replica steps, lifecycle timers, ticks.

Each tick (15 s) the fleet is scraped, a :class:`~autoscaler.core.signals.SignalSnapshot` is
built from the scrapes alone, the policy recommends, and the recommendation reaches the fleet the
way it would in a cluster: through the HPA emulation for policies that publish external metrics,
or directly for policies with their own controller (``kpa``, ``apa``, ``dynamo``,
``static-peak``).
With ``SimConfig.prefetch`` set, the prefetch planner then runs on the same recommendation and
its pulls end as events of their own (:mod:`autoscaler.simulation.prefetch`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from heapq import heappush

from autoscaler.core.recommendation import Recommendation
from autoscaler.core.replica_states import DEFAULT_PENDING_TIMEOUT_S
from autoscaler.core.signals import SignalSnapshot
from autoscaler.hpa.controller import HpaController
from autoscaler.perf.model import PerfProfile
from autoscaler.policies.base import Policy
from autoscaler.simulation.fleet import Fleet
from autoscaler.simulation.gateway import GatewaySim
from autoscaler.simulation.lifecycle import LifecycleConfig
from autoscaler.simulation.observation import PrometheusView
from autoscaler.simulation.prefetch import PrefetchSim, SimPrefetcher
from autoscaler.simulation.replica import Replica
from autoscaler.simulation.requests import RequestTable, arrivals_and_events
from autoscaler.traces.records import Trace

STEP = 0
LIFECYCLE = 1
TICK = 2
PREFETCH = 3


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Everything about a run that is not the trace, the policy or the replica profile."""

    max_replicas: int
    min_replicas: int = 1
    start_replicas: int = 1
    tick_s: float = 15.0
    rate_window_s: float = 60.0
    pending_timeout_s: float = DEFAULT_PENDING_TIMEOUT_S
    num_nodes: int | None = None
    """Size of the fixed node pool; default: enough GPUs for ``max_replicas`` replicas."""
    lifecycle: LifecycleConfig = field(default_factory=LifecycleConfig)
    drain_grace_s: float = 1800.0
    """How long after the trace ends in-flight requests may still finish."""
    work_weights: tuple[float, float] = (1.0, 1.0)
    """(prefill, decode) weights of one token of work, for the router and the timeline."""
    workload: str = "default/llm"
    prefetch: PrefetchSim | None = None
    """Run the prefetch planner and simulated pulls (``--prefetch on``); None: off."""
    warmup_s: float = 0.0
    """Until then the fleet follows ``warmup_plan`` (replicas ready at once) while the policy
    only observes, as in shadow mode: a run then starts like an autoscaler taking over a
    service that is already running, not cold at the trace's first second."""
    warmup_plan: tuple[int, ...] = ()
    """Replicas per minute during the warm-up (the oracle's plan)."""
    gateway: GatewaySim | None = None
    """An inference gateway in front of the fleet (arrival counters, optionally flow control);
    None: none, policies see the engines' metrics only."""


@dataclass(frozen=True, slots=True)
class TickRecord:
    """One tick of the run, for plots and reports."""

    t: float
    spec: int
    ready: int
    starting: int
    pending: int
    winner: str
    observed_request_rate: float | None
    observed_work_rate: float | None

    @classmethod
    def of(
        cls,
        now: float,
        spec: int,
        snapshot: SignalSnapshot,
        winner: str,
        work_weights: tuple[float, float],
    ) -> TickRecord:
        """The record of a tick, from what the policy saw (both simulators use it)."""
        prompt, gen = snapshot.prompt_tokens_rate, snapshot.generation_tokens_rate
        work = (
            prompt * work_weights[0] + gen * work_weights[1]
            if prompt is not None and gen is not None
            else None
        )
        return cls(
            t=now,
            spec=spec,
            ready=snapshot.replicas.ready,
            starting=snapshot.replicas.starting,
            pending=snapshot.replicas.pending,
            winner=winner,
            observed_request_rate=snapshot.request_rate,
            observed_work_rate=work,
        )


@dataclass
class RunOutput:
    """Raw outcome of one run; :mod:`autoscaler.simulation.results` turns it into figures."""

    reqs: RequestTable
    fleet: Fleet
    duration_s: float
    timeline: list[TickRecord]
    replica_changes: int
    max_replicas: int
    prefetch: SimPrefetcher | None = None
    warmup_s: float = 0.0
    """Figures score what happens from here on (requests arriving, GPU time, starts)."""


def simulate(
    trace: Trace,
    policy: Policy,
    *,
    profile: PerfProfile,
    config: SimConfig,
    progress: Callable[[float], None] | None = None,
) -> RunOutput:
    """Replay ``trace`` against a fleet scaled by ``policy``; deterministic for given inputs."""
    reqs = RequestTable(trace, config.work_weights)
    tp = profile.tp
    nodes = config.num_nodes or -(-config.max_replicas * tp // config.lifecycle.node_gpus)
    fleet = Fleet(profile=profile, lifecycle=config.lifecycle, num_nodes=nodes, reqs=reqs)
    prefetcher = _prefetcher(config, nodes, tp)
    if prefetcher is not None:
        fleet.pods.prefetch_until = prefetcher.pull_until
    view = PrometheusView(
        reqs,
        fleet,
        workload=config.workload,
        rate_window_s=config.rate_window_s,
        scrape_s=config.tick_s,
        pending_timeout_s=config.pending_timeout_s,
        gateway=config.gateway,
    )
    gw = config.gateway if config.gateway is not None and config.gateway.flow_control else None
    spec_hpa = policy.hpa_spec() if policy.actuation == "hpa" else None
    hpa = HpaController(spec_hpa, sync_period_s=config.tick_s) if spec_hpa is not None else None

    for _ in range(config.start_replicas):
        fleet.create_ready(0.0)
    spec = config.start_replicas

    heap: list[tuple[float, int, int, int, int]] = []
    seq = 0
    heappush(heap, (0.0, seq, TICK, -1, 0))
    duration = trace.duration_s
    limit = min(profile.max_context, profile.kv_capacity_tokens)
    work = reqs.work
    load = fleet.load
    records = fleet.records
    timeline: list[TickRecord] = []
    changes = 0
    warmup = config.warmup_s if config.warmup_plan else 0.0
    max_live = spec if warmup <= 0 else 0
    end_limit = duration + config.drain_grace_s
    next_progress = 0.0

    def assign(rid: int, now: float, server: Replica | None = None) -> None:
        nonlocal seq
        server = server or fleet.route()
        if server is None:
            fleet.backlog.append(rid)
            return
        fleet.dispatched += 1
        load[server.slot] += work[rid]
        end = server.enqueue(rid, now)
        if end is not None:
            seq += 1
            heappush(heap, (end, seq, STEP, server.slot, server.version))

    def settle(now: float) -> None:
        """Schedule lifecycle timers the fleet queued and route held requests."""
        nonlocal seq
        for when, slot in fleet.pending_events:
            seq += 1
            heappush(heap, (when, seq, LIFECYCLE, slot, 0))
        fleet.pending_events.clear()
        release(now)

    def release(now: float) -> None:
        """Let held requests through, oldest first, while a replica is ready and (with flow
        control) the pool has room."""
        backlog = fleet.backlog
        while backlog and fleet.routable:
            server = None if gw is None else gw.pick(fleet)
            if gw is not None and server is None:
                return  # flow control: the pool is saturated, the rest keeps waiting
            assign(backlog.popleft(), now, server)

    for now, rid, event in arrivals_and_events(reqs, limit, heap):
        if event is None:
            server = None
            if gw is not None:
                server = None if fleet.backlog else gw.pick(fleet)
                if server is None:
                    fleet.backlog.append(rid)  # flow control: wait at the gateway, in order
                    continue
            assign(rid, now, server)
            continue
        _, _, kind, slot, version = event
        if now > end_limit:
            break
        if kind == STEP:
            rec = records[slot]
            srv = rec.server
            if srv is None or srv.version != version:
                continue
            end = srv.step_end(now)
            if end is not None:
                seq += 1
                heappush(heap, (end, seq, STEP, slot, srv.version))
            elif rec.phase == "draining":
                fleet.maybe_finish_drain(slot, now)
                settle(now)
            if gw is not None and fleet.backlog:
                release(now)
        elif kind == LIFECYCLE:
            fleet.advance(slot, now)
            settle(now)
        elif kind == PREFETCH:
            if prefetcher is not None and prefetcher.finish(slot, now):
                fleet.prefetch_done(slot, now)
        else:
            view.scrape(now)
            snapshot = view.snapshot(now)
            rec_ = policy.recommend(snapshot)
            desired = _decide(rec_, hpa, now, spec, snapshot.replicas.spec, snapshot.replicas.ready)
            warming = now < warmup
            if warming:  # the policy (and its HPA) observed; the plan acts
                desired = config.warmup_plan[min(int(now // 60), len(config.warmup_plan) - 1)]
            desired = max(config.min_replicas, min(config.max_replicas, desired))
            if desired != spec:
                changes += 0 if warming else 1
                spec = desired
            fleet.scale_to(spec, now, instant=warming)
            settle(now)
            if prefetcher is not None:
                fleet.expire_images(now)
                pods = fleet.pods
                pulls = prefetcher.plan(
                    now, rec_, used=pods.used, warm=pods.warm, pods_on=pods.pods_on()
                )
                for node_index, until in pulls:
                    seq += 1
                    heappush(heap, (until, seq, PREFETCH, node_index, 0))
            if not warming:
                max_live = max(max_live, spec)
            timeline.append(TickRecord.of(now, spec, snapshot, rec_.winner, config.work_weights))
            if now + config.tick_s <= duration:
                seq += 1
                heappush(heap, (now + config.tick_s, seq, TICK, -1, 0))
            if progress is not None and now >= next_progress:
                progress(min(1.0, now / duration) if duration > 0 else 1.0)
                next_progress = now + 300.0
    if progress is not None:
        progress(1.0)
    return RunOutput(
        reqs=reqs,
        fleet=fleet,
        duration_s=duration,
        timeline=timeline,
        replica_changes=changes,
        max_replicas=max_live,
        prefetch=prefetcher,
        warmup_s=warmup,
    )


def _prefetcher(config: SimConfig, num_nodes: int, tp: int) -> SimPrefetcher | None:
    """The run's simulated prefetcher, or None when prefetch is off."""
    if config.prefetch is None:
        return None
    lc = config.lifecycle
    return SimPrefetcher(
        config.prefetch,
        num_nodes=num_nodes,
        node_gpus=lc.node_gpus,
        gpus_per_replica=tp,
        pull_s=lc.pull_s,
        image_slots=lc.image_slots,
        min_replicas=config.min_replicas,
        max_replicas=config.max_replicas,
    )


def _decide(
    rec: Recommendation,
    hpa: HpaController | None,
    now: float,
    spec: int,
    status_replicas: int,
    ready: int,
) -> int:
    """Turn a recommendation into the workload's next ``spec.replicas``."""
    if hpa is None:
        return spec if rec.desired_replicas is None else rec.desired_replicas
    values: dict[str, float | None] = {m.name: None for m in hpa.spec.metrics}
    for metric in rec.metrics:
        values[metric.name] = metric.value
    decision = hpa.sync(
        now=now,
        spec_replicas=spec,
        status_replicas=status_replicas,
        ready_pods=ready,
        metric_values=values,
    )
    return decision.desired_replicas

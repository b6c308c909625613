"""The control loop of ``serve``: every tick, collect → forecast → policy → store.

One :class:`ControlLoop` owns one policy object per configured workload (the policy holds the
forecaster and the learned capacity, so its state must live as long as the service) and writes
the :class:`~autoscaler.live.store.RecommendationStore` that every server reads. Everything it talks
to is passed in: the Prometheus API, the replica-state source (the Kubernetes watch), the shadow
source (the workload's current HPA), the event sink, the clock and the metrics registry. That is
what lets the integration test run it against a real Prometheus and the unit tests against the
in-memory fake with the very same code.

A tick never raises: a Prometheus outage becomes stale snapshots, the policy holds (fail static),
the store marks the workloads stale and the APIs answer 503; an unexpected error in one
workload's policy holds that workload only. The tick runs in a worker thread (the Prometheus and
Kubernetes clients are synchronous); :meth:`run` schedules ticks on the asyncio loop on a fixed
grid, so a slow tick delays the next one but never stacks them.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol

from autoscaler.clients.prometheus import PrometheusAPI
from autoscaler.config import ServiceConfig, WorkloadConfig
from autoscaler.core.current_autoscaler import CurrentAutoscaler
from autoscaler.core.recommendation import Recommendation, hold
from autoscaler.core.replica_states import DEFAULT_LEAD_TIME_S
from autoscaler.core.signals import ReplicaCounts, SignalSnapshot
from autoscaler.core.wire_names import DESIRED_METRIC
from autoscaler.engines.base import EngineProfile
from autoscaler.engines.guards import guards_of, memory_guard
from autoscaler.engines.promql import build_fleet_queries
from autoscaler.live.collection import (
    collect,
    collect_history,
    scraped_pods,
    with_scraped_pods,
    workload_key,
)
from autoscaler.live.completeness import default_coverage, raise_to_floor
from autoscaler.live.loop_metrics import LoopMetrics
from autoscaler.live.roles import with_output_mean
from autoscaler.live.store import RecommendationStore, WorkloadInfo
from autoscaler.perf.capacity import seed_capacity, work_weights
from autoscaler.perf.profiles import get_profile
from autoscaler.policies.base import Policy, PolicyContext
from autoscaler.policies.forecast import ForecastPolicy
from autoscaler.policies.forecast.batch import ForecastBatch
from autoscaler.policies.role_forecast import RoleForecastPolicy
from autoscaler.policies.roles import role_context

log = logging.getLogger(__name__)

_SAME_POD_S = 2.0
"""Creation times (tick time minus age) of one pod seen at two ticks differ by rounding only."""


class ReplicaSource(Protocol):
    """Replica states of a workload (the Kubernetes pod watch)."""

    def counts(self, key: str, now: float) -> ReplicaCounts: ...

    def time_to_ready_s(self, key: str) -> float | None: ...


class ShadowSource(Protocol):
    """What the workload's current autoscaler decided (its HPA status), for shadow mode."""

    def current(self, namespace: str, name: str) -> CurrentAutoscaler | None: ...


class Actuator(Protocol):
    """Something that acts on a workload's fresh recommendation (the modelcar prefetcher).

    Called in the tick's worker thread after the store is written, only for workloads whose
    config enables it; it must not raise for API trouble (the prefetcher reports instead).
    """

    def reconcile(
        self,
        workload: WorkloadConfig,
        recommendation: Recommendation | None,
        forecast_replicas: float | None,
        now: float,
    ) -> object: ...


class EventSink(Protocol):
    """Kubernetes Events about a workload (e.g. capacity unavailable)."""

    def warn(self, namespace: str, name: str, reason: str, message: str) -> None: ...


def workload_info(
    config: ServiceConfig, workload: WorkloadConfig, engine: EngineProfile | None = None
) -> WorkloadInfo:
    """How servers find and label a workload: ``metricLabels`` are its namespace and name;
    with its ``engine`` profile, which guards are live on it (shown on ``/v1``)."""
    guards = guards_of(engine) if engine is not None else {}
    labels = {"namespace": workload.namespace, "workload": workload.name}
    if workload.role is not None and workload.group is not None:
        # a role target: selected as the declaring workload's role (``role=prefill``)
        labels = {**labels, "workload": workload.group, "role": workload.role}
    return WorkloadInfo(
        namespace=workload.namespace,
        name=workload.name,
        labels=labels,
        shadow=config.shadow(workload),
        engine=workload.engine,
        guards={g.value: reads for g, reads in guards.items()},
    )


def workload_context(
    config: ServiceConfig, workload: WorkloadConfig, engine: EngineProfile | None = None
) -> PolicyContext:
    """The policy context of a live workload: its SLO, bounds, profile seed and token weights
    (a role target's: its role's weights and seed, :func:`autoscaler.policies.roles.role_context`).

    The same functions as the simulator's (``autoscaler.perf.capacity``), so the seed a benchmark
    judged is the seed production starts from; ``capacity_seed`` in the config overrides it.
    The ``engine`` profile decides whether the memory-pressure guard is live.
    """
    profile = get_profile(workload.profile.model, workload.profile.gpu, workload.profile.tp)
    slo = workload.slo.to_spec()
    wp, wd = work_weights(profile, slo)
    seed = workload.capacity_seed or seed_capacity(profile, slo)
    base = PolicyContext(
        slo=slo,
        max_replicas=workload.max_replicas,
        min_replicas=workload.min_replicas,
        tick_s=config.service.tick_s,
        replica_token_capacity=seed,
        prefill_weight=wp,
        decode_weight=wd,
        gpus_per_replica=workload.profile.tp,
        default_lead_time_s=DEFAULT_LEAD_TIME_S,
        pending_timeout_s=config.service.pending_timeout_s,
        gpu_memory_guard=engine is not None and memory_guard(engine),
        profile=profile,
    )
    return base if workload.role is None else role_context(base, profile, workload.role)


def role_policy(ctx: PolicyContext, role: str) -> Policy:
    """Ours for one pool of a disaggregated workload (the simulator's, unchanged)."""
    assert ctx.profile is not None  # workload_context always sets it
    return RoleForecastPolicy(ctx, role, ctx.profile)


@dataclass(frozen=True, slots=True)
class TickReport:
    """What one tick did (logged, and returned for tests)."""

    timestamp: float
    duration_s: float
    recommendations: Mapping[str, Recommendation]
    queries: int
    errors: tuple[str, ...] = ()
    stages: Mapping[str, float] = field(default_factory=dict)
    """Seconds per stage: ``collect`` (Prometheus HTTP, decoding, snapshots), ``policy``,
    ``store`` and ``metrics`` (metrics, Events, shadow and prefetch: the per-workload edges)."""


@dataclass
class _Health:
    started: float
    last_tick_end: float = -math.inf
    ticks: int = 0
    backfilled: bool = False
    errors: list[str] = field(default_factory=list)
    degraded: str | None = None
    """Why the last tick held for want of Prometheus (None: it did not)."""


class ControlLoop:
    """collect → policy → store, once per tick, for every configured workload."""

    def __init__(
        self,
        config: ServiceConfig,
        *,
        prometheus: PrometheusAPI,
        store: RecommendationStore,
        engines: Mapping[str, EngineProfile],
        metrics: LoopMetrics,
        replicas: ReplicaSource | None = None,
        shadow: ShadowSource | None = None,
        events: EventSink | None = None,
        prefetcher: Actuator | None = None,
        clock: Callable[[], float] = time.time,
        policy_factory: Callable[[PolicyContext], Policy] = ForecastPolicy,
        role_policy_factory: Callable[[PolicyContext, str], Policy] = role_policy,
        gpu_memory: EngineProfile | None = None,
    ) -> None:
        self.config = config
        self.gpu_memory = gpu_memory
        """The profile exporting GPU memory (dcgm-exporter), joined to every engine's replicas."""
        self.prometheus = prometheus
        self.store = store
        self.engines = engines
        self.metrics = metrics
        self.replicas = replicas
        self.shadow = shadow
        self.events = events
        self.prefetcher = prefetcher
        self.clock = clock
        self.targets = config.targets
        """The scale targets: the workloads, a workload with roles as one target per role."""
        self.policies: dict[str, Policy] = {}
        for w in self.targets:
            ctx = workload_context(config, w, engines.get(w.engine))
            key = workload_key(w.namespace, w.name)
            self.policies[key] = (
                policy_factory(ctx) if w.role is None else role_policy_factory(ctx, w.role)
            )
        self._workloads = {workload_key(w.namespace, w.name): w for w in self.targets}
        aggregated = {k: p for k, p in self.policies.items() if self._workloads[k].role is None}
        self.batch = (
            ForecastBatch(aggregated)  # type: ignore[arg-type]
            if ForecastBatch.supports(aggregated)
            else None
        )
        """The aggregated workloads' ``forecast`` policies with one array forecast (None: other
        policies, each run on its own); role targets always run on their own."""
        self._stuck_reported: dict[str, tuple[float, ...]] = {}
        """Per workload, the creation times of the stuck replicas its last Event counted."""
        # the config is fixed for the loop's life, so the query set is built once, not per tick
        profile_of = {k: engines[w.engine] for k, w in self._workloads.items()}
        fleet = build_fleet_queries(
            profile_of, window=config.service.rate_window, gpu_memory=gpu_memory
        )
        self._queries_per_tick = sum(len(q) for q in fleet.values())
        self.health = _Health(started=clock())
        service = config.service
        self.coverage = default_coverage(
            service.rate_window_s, service.scrape_interval_s, service.tick_s
        )
        self._published: dict[str, int] = {}
        """The last desired count published per workload: the floor while a window is partial."""

    # -- one tick ------------------------------------------------------------------------

    def queries_per_tick(self) -> int:
        """The number of PromQL queries a tick sends: by engine, not by workload."""
        return self._queries_per_tick

    def tick(self) -> TickReport:
        """One control-loop step; never raises (a failure holds the workloads it touches).

        The cyclic garbage collector is paused for the tick: decoding a 10,000-workload tick
        allocates about a million objects that all live until the tick ends, and each of the
        collections that allocation set off walked all of them again (a third of the decode
        time in ``benchmarks/loop_tick.py``). A tick makes no cycles worth collecting early;
        the collector runs again as soon as it ends.
        """
        with gc_paused():
            return self._tick()

    def _tick(self) -> TickReport:
        start = time.perf_counter()
        now = self.clock()
        # one budget for the tick's Prometheus time: replica states (kube-state-metrics) and
        # collection share it, so a slow Prometheus never stretches a tick past it
        deadline = time.monotonic() + self.config.service.effective_tick_budget_s
        errors: list[str] = []
        counts: dict[str, ReplicaCounts] = {}
        if self.replicas is not None:
            for key in self._workloads:
                try:
                    counts[key] = self.replicas.counts(key, now)
                except Exception as exc:  # the watch is another thread's state; never crash
                    errors.append(f"{key}: replica states unavailable: {exc}")
        service = self.config.service
        prometheus_problems: list[str] = []
        snapshots = collect(
            self.prometheus,
            self.targets,
            now=now,
            staleness_s=service.effective_staleness_s,
            engines=self.engines,
            replicas=counts,
            window=service.rate_window,
            extra_matchers=service.query_matchers,
            deadline=deadline,
            problems=prometheus_problems,
            gpu_memory=self.gpu_memory,
        )
        prepared: dict[str, SignalSnapshot] = {}
        for key, snap in snapshots.items():
            if self.replicas is None:
                snap = with_scraped_pods(snap)
            elif key not in counts:
                snap = replace(snap, stale=True)
            if self._workloads[key].role is not None:
                snap = with_output_mean(snap)
            prepared[key] = self._with_lead_time(key, snap)
        collected = time.perf_counter()
        recs: dict[str, Recommendation] = {}
        raw = self._recommend_all(prepared, errors)
        for key, snap in prepared.items():
            self.coverage.observe(key, now, fresh=not snap.stale, pods=scraped_pods(snap))
            rec = no_scale_down_on_partial_scrape(raw[key], snap)
            if rec.holds and prometheus_problems:  # say why: name Prometheus and the query
                rec = hold(key, now, f"{prometheus_problems[0]}; holding (fail static)")
            rec = self._no_scale_down_until_complete(key, rec, snap, now)
            if rec.desired_replicas is not None:
                self._published[key] = rec.desired_replicas
            recs[key] = rec
        decided = time.perf_counter()
        # one swap: readers see the whole previous tick or the whole new one, never a mix
        self.store.put_many([(rec, prepared[key]) for key, rec in recs.items()])
        stored = time.perf_counter()
        currents: dict[str, CurrentAutoscaler | None] = {}
        for key, rec in recs.items():
            snap = prepared[key]
            self.metrics.observe_recommendation(rec, snap.data_age_s)
            self.metrics.observe_rejected(key, snap.rejected)
            self.metrics.observe_signals(snap)
            self._report_pending_timeout(key, snap)
            if self.shadow is not None and self.store.get(key).info.shadow:
                currents[key] = self._observe_shadow(key, rec, errors)
            self._prefetch(key, rec, now, errors)
        if currents:
            self.store.set_current_many(currents)
        observed = time.perf_counter()
        stages = {
            "collect": collected - start,
            "policy": decided - collected,
            "store": stored - decided,
            "metrics": observed - stored,
        }
        duration = time.perf_counter() - start
        queries = self.queries_per_tick()
        self.metrics.tick_seconds.observe(duration)
        self.metrics.queries.inc(queries)
        held = bool(prometheus_problems) and any(r.holds for r in recs.values())
        self.metrics.ticks.labels("held" if held else "error" if errors else "ok").inc()
        self.metrics.last_tick.set(now)
        self.health.ticks += 1
        self.health.last_tick_end = self.clock()
        self.health.errors = errors
        self.health.degraded = prometheus_problems[0] if held else None
        for e in errors:
            log.warning("tick: %s", e)
        return TickReport(now, duration, recs, queries, tuple(errors), stages)

    def _no_scale_down_until_complete(
        self, key: str, rec: Recommendation, snap: SignalSnapshot, now: float
    ) -> Recommendation:
        """Nothing lower than already published (or than the fleet) until the window is whole."""
        covered = self.coverage.covered_s(key, now)
        if covered >= self.coverage.required_s:
            return rec
        floor = max(self._published.get(key, 0), snap.replicas.spec)
        why = (
            f"rate window not covered since data resumed ({covered:.0f}s of "
            f"{self.coverage.required_s:.0f}s): no scale-down below {floor}"
        )
        return raise_to_floor(
            rec, floor, winner="incomplete-window", why=why, metric=DESIRED_METRIC
        )

    def _with_lead_time(self, key: str, snap: SignalSnapshot) -> SignalSnapshot:
        if self.replicas is None or snap.time_to_ready_s is not None:
            return snap
        try:
            ttr = self.replicas.time_to_ready_s(key)
        except Exception:  # same reason as in tick(): another thread's state
            return snap
        return snap if ttr is None else replace(snap, time_to_ready_s=ttr)

    def _recommend_all(
        self, snapshots: Mapping[str, SignalSnapshot], errors: list[str]
    ) -> dict[str, Recommendation]:
        """Every workload's policy on its snapshot: at once where the policies allow it."""
        if self.batch is None:
            return {key: self._recommend(key, snap, errors) for key, snap in snapshots.items()}
        batched = {k: s for k, s in snapshots.items() if k in self.batch.policies}
        out = self.batch.recommend(batched, errors)
        for key, snap in snapshots.items():
            if key not in out:
                out[key] = self._recommend(key, snap, errors)
        return {key: out[key] for key in snapshots}

    def _recommend(self, key: str, snap: SignalSnapshot, errors: list[str]) -> Recommendation:
        try:
            return self.policies[key].recommend(snap)
        except Exception as exc:  # a policy bug must not take the other workloads down
            log.exception("policy failed for %s", key)
            errors.append(f"{key}: policy failed: {exc}")
            return hold(key, snap.timestamp, f"policy error: {exc}")

    def _report_pending_timeout(self, key: str, snap: SignalSnapshot) -> None:
        """One aggregated ``CapacityUnavailable`` Event per workload, posted again only when a
        replica that was not stuck before becomes stuck (the message carries the count).

        A replica is identified by its creation time (the tick's time minus its age, within
        ``_SAME_POD_S`` for rounding). The message depends only on the count and the timeout,
        so service replicas that see the same pods write the same text, and the recorder's
        stable Event name turns their posts into one Event (see ``EventRecorder``).
        """
        timeout = self.config.service.pending_timeout_s
        stuck = tuple(
            sorted(snap.timestamp - a for a in snap.replicas.starting_ages_s if a > timeout)
        )
        before = self._stuck_reported.get(key, ())
        if not stuck:
            self._stuck_reported.pop(key, None)
            return
        new = [c for c in stuck if all(abs(c - b) > _SAME_POD_S for b in before)]
        self._stuck_reported[key] = stuck
        if not new or self.events is None:
            return
        ns, _, name = key.partition("/")
        message = (
            f"{len(stuck)} replica(s) not ready after {timeout:.0f}s (no free GPU or node?): "
            "they no longer count as capacity on the way, and the desired count does not "
            "replace them"
        )
        try:
            self.events.warn(ns, name, "CapacityUnavailable", message)
            self.metrics.events.labels("CapacityUnavailable").inc()
        except Exception as exc:  # Events are best effort
            log.warning("could not emit an Event for %s: %s", key, exc)

    def _prefetch(self, key: str, rec: Recommendation, now: float, errors: list[str]) -> None:
        workload = self._workloads[key]
        if self.prefetcher is None or not workload.prefetch.enabled or rec.holds:
            return  # never act on stale data: a held tick plans nothing
        try:
            self.prefetcher.reconcile(workload, rec, None, now)
        except Exception as exc:  # prefetch is an optimisation; the tick must go on
            errors.append(f"{key}: prefetch failed: {exc}")

    def _observe_shadow(
        self, key: str, rec: Recommendation, errors: list[str]
    ) -> CurrentAutoscaler | None:
        """What the workload's current autoscaler decided (stored by the caller, with the
        tick's others), and the difference to ours as a metric."""
        assert self.shadow is not None
        ns, _, name = key.partition("/")
        try:
            current = self.shadow.current(ns, name)
        except Exception as exc:  # the API server may be down; shadow data is informative only
            errors.append(f"{key}: current autoscaler unavailable: {exc}")
            current = None
        theirs = None if current is None else current.desired_replicas
        ours = rec.desired_replicas
        diff = None if theirs is None or ours is None else float(ours - theirs)
        self.metrics.observe_shadow(key, diff)
        return current

    # -- start-up backfill -----------------------------------------------------------------

    def backfill(self, lookback_s: float) -> int:
        """Replay the last ``lookback_s`` of Prometheus history through the policies.

        The forecaster and the capacity learner then start where a service that had been running
        would be (DESIGN.md: "a restart loses nothing"). The recommendations of the history are
        not stored (they are not current); the first live tick is. Returns the number of steps
        replayed; a Prometheus that is down backfills nothing and the loop still starts.
        """
        service = self.config.service
        end = self.clock()
        start = end - lookback_s
        history = collect_history(
            self.prometheus,
            self.targets,
            start=start,
            end=end - service.tick_s,
            step=service.tick_s,
            engines=self.engines,
            window=service.rate_window,
            extra_matchers=service.query_matchers,
            gpu_memory=self.gpu_memory,
        )
        replayed = 0
        for _, snapshots in history:
            if not any(not s.stale for s in snapshots.values()):
                continue
            replayed += 1
            fresh = {
                k: with_output_mean(s) if self._workloads[k].role is not None else s
                for k, s in snapshots.items()
                if not s.stale
            }
            self._recommend_all(fresh, [])
        # Where the history runs up to now without a hole, the first live tick's window is whole.
        for t, snapshots in history:
            for key, snap in snapshots.items():
                self.coverage.observe(key, t, fresh=not snap.stale, pods=scraped_pods(snap))
        self.health.backfilled = True
        log.info("backfilled %d steps over the last %.0fs", replayed, lookback_s)
        return replayed

    # -- scheduling ------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Tick every ``tick_s`` on a fixed grid until ``stop`` is set."""
        period = self.config.service.tick_s
        next_at = time.monotonic()
        while not stop.is_set():
            report = await asyncio.to_thread(self.tick)
            log.info(
                "tick %d: %s in %.3fs",
                self.health.ticks,
                ", ".join(f"{k}={_short(r)}" for k, r in report.recommendations.items()),
                report.duration_s,
            )
            next_at += period
            delay = next_at - time.monotonic()
            if delay < 0:  # a tick overran: skip the missed slots rather than bunching ticks
                next_at = time.monotonic()
                delay = 0.0
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay)
            except TimeoutError:
                pass

    def alive(self) -> bool:
        """Liveness: a tick finished within three periods (Prometheus being down is not death)."""
        since = self.clock() - max(self.health.last_tick_end, self.health.started)
        return since <= 3.0 * self.config.service.tick_s + 30.0

    def ready(self) -> bool:
        """Readiness: backfill done and one tick stored, so the servers have answers to give."""
        return self.health.backfilled and self.health.ticks > 0

    def degraded(self) -> str | None:
        """Why the service holds right now (Prometheus down or slow), or None. Not a reason to
        leave the Service: every replica would hold alike, and the APIs' 503s already tell the
        HPA and KEDA to keep their counts; the probe's body says it for a person."""
        return self.health.degraded


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside the block (unless it was off already)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _short(rec: Recommendation) -> str:
    if rec.holds:
        return "hold"
    return f"{rec.desired_replicas}({rec.winner})"


def no_scale_down_on_partial_scrape(rec: Recommendation, snap: SignalSnapshot) -> Recommendation:
    """Hold the fleet up when Prometheus sees fewer replicas than the pod watch calls ready.

    A replica whose scrape fails drops out of the fleet-wide sums, so demand reads low and the
    policy would remove replicas because data is missing. While fewer pods report a per-replica
    gauge than are ready, a recommendation below the current ``spec`` is raised to it (scaling
    up stays allowed: missing data only biases demand down). A pod that just turned Ready and
    was not scraped yet costs at most a tick without scale-down.
    """
    if rec.desired_replicas is None:
        return rec
    reporting = scraped_pods(snap)
    ready, spec = snap.replicas.ready, snap.replicas.spec
    if reporting == 0 or reporting >= ready:
        return rec
    why = f"{ready - reporting} of {ready} ready replicas not scraped: no scale-down below {spec}"
    return raise_to_floor(rec, spec, winner="partial-scrape", why=why, metric=DESIRED_METRIC)

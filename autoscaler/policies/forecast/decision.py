"""The ``forecast`` policy's decision for one workload: demand, forecast, band, capacity, and the
candidates (see the package docstring, :mod:`autoscaler.policies.forecast`)."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from autoscaler.core.attainment import observed_attainment
from autoscaler.core.recommendation import Candidate, PublishedMetric, Recommendation, hold
from autoscaler.core.signals import SignalSnapshot
from autoscaler.core.wire_names import DESIRED_METRIC, FORECAST_METRIC, LOAD_METRIC
from autoscaler.hpa.behavior import SHIPPED_BEHAVIOR
from autoscaler.hpa.spec import ExternalMetricTarget, HpaSpec
from autoscaler.policies.base import Actuation, PolicyContext
from autoscaler.policies.fallbacks import fill_demand
from autoscaler.policies.forecast.band import RelativeBand, band_quantile_for
from autoscaler.policies.forecast.capacity import CapacityLearner
from autoscaler.policies.forecast.demand import ARRIVALS, Demand, DemandEstimator
from autoscaler.policies.forecast.mix import MixScale
from forecasting.base import Forecaster
from forecasting.holt import DampedHolt


def held_ticks(tick_s: float) -> int:
    """Ticks of the shipped HPA scale-down window (300 s: 20 ticks of 15 s): how long the fleet
    stays sized for a demand it has seen (:class:`RelativeBand`'s ``hold_ticks``)."""
    window = SHIPPED_BEHAVIOR.scale_down.stabilization_window_s
    return max(0, round(window / tick_s)) if tick_s > 0 else 0


def default_forecaster() -> Forecaster:
    """The forecaster the policy runs on token-work demand (1-minute means, one per tick).

    Built here and nowhere else (``benchmarks/forecaster_in_policy.py`` swaps it on this
    module); :mod:`autoscaler.policies.forecast.batch` runs the same model on arrays.
    """
    return DampedHolt()


@dataclass(frozen=True, slots=True)
class Step:
    """What :meth:`ForecastPolicy.prepare` worked out for a tick, for its ``decide``."""

    snap: SignalSnapshot
    fallbacks: tuple[str, ...]
    demand: Demand
    smoothed: float
    """The demand the forecaster sees this tick (the mean of the last four)."""
    ready: int
    ratio: float | None
    censored: bool
    capacity: float
    lead: float
    horizon: int
    """Ticks ahead the forecast is read at (the lead time over the tick)."""


NO_GPU_MEMORY = (
    "gpu_memory: no dcgm-exporter rows joined to this workload's pods; memory-pressure guard idle"
)
"""The fallback named when the memory-pressure guard is live but has no GPU memory to read."""


class ForecastPolicy:
    """Our policy; publishes replica-unit metrics to an HPA (``AverageValue`` target 1).

    ``band_quantile`` and ``min_headroom`` size the forecast band: the demand planned for is the
    forecaster's point path (its highest value over the lead time, never below the smoothed or
    the latest 1-minute demand) times the larger of the ``band_quantile`` of recent relative
    errors (:class:`RelativeBand`) and ``min_headroom``.

    * The quantile comes from the SLO-attainment target, ``q = 1 - 2**-nines`` with
      ``nines = -log10(1 - target)``: 0.5 at 0.9, 0.75 at the default 0.99, 0.875 at 0.999
      (:func:`band_quantile_for`): each nine more of attainment halves the share of forecasts
      allowed to fall short. Far looser than the target itself, because a forecast that falls
      short does not fail the SLO: what the HPA reads is held at the highest value of the last
      5 minutes on the way down (the shipped scale-down window), so the fleet already covers
      the worst of some twenty forecasts; shortfalls within ``min_headroom`` are absorbed; and
      an under-provisioned minute fails only part of its requests. Measured on
      ``azure2023_conv`` x20 after the warm-up, capacity fixed at the seed and no minimum
      head-room: q0.5 / 0.75 / 0.9 gave 99.55% / 99.71% / 99.79% SLO attainment at 1.31x /
      1.37x / 1.43x the oracle's GPU-hours (the old rule, q = the target, planned for 0.99).
    * ``min_headroom`` keeps the plan at least 20% below the learned capacity limit. The limit
      is an estimate from p90 latencies whose relation to the 99% target differs between
      workloads (see :class:`CapacityLearner`), and demand that is smooth at the minute scale
      gives a band near 1, which would plan the fleet *at* that estimate: on the ServeGen rates
      (fluid mode) that left SLO attainment at 98.6-98.9%.
    """

    name = "forecast"
    actuation: Actuation = "hpa"

    steady_load_tolerance = 1.25
    """Load per replica may vary this much (max/min) over the rate window and still count as
    one steady state for the capacity learner."""
    steady_ticks = 2
    """Consecutive steady ticks before an observation counts (TPOT is observed at completion)."""

    def __init__(
        self,
        ctx: PolicyContext,
        setting: float | None = None,
        *,
        band_quantile: float | None = None,
        min_headroom: float = 1.2,
        learner_options: Mapping[str, float] | None = None,
    ) -> None:
        self.ctx = ctx
        self.headroom = 1.0 if setting is None else setting
        self.band_quantile = (
            band_quantile_for(ctx.slo.attainment_target) if band_quantile is None else band_quantile
        )
        self.min_headroom = min_headroom
        self.forecaster = default_forecaster()
        self.capacity = CapacityLearner(
            ctx.replica_token_capacity,
            attainment_target=ctx.slo.attainment_target,
            **(learner_options or {}),
        )
        self.band = RelativeBand(hold_ticks=held_ticks(ctx.tick_s))
        self._demand: deque[float] = deque(maxlen=4)
        """The forecaster sees demand averaged over 4 samples (1 min of 15 s ticks): short
        bursts are absorbed by queues within the TTFT budget, and the band stays meaningful."""
        self._ready_history: deque[int] = deque(maxlen=5)
        self._load_history: deque[float] = deque(maxlen=5)
        self._overloaded: deque[bool] = deque(maxlen=4)
        self._steady_run = 0
        self.demand_estimator = DemandEstimator(ctx)
        self.mix = MixScale(ctx)

    def hpa_spec(self) -> HpaSpec:
        return HpaSpec(
            metrics=(ExternalMetricTarget(DESIRED_METRIC, "AverageValue", 1.0),),
            behavior=SHIPPED_BEHAVIOR,
            min_replicas=self.ctx.min_replicas,
            max_replicas=self.ctx.max_replicas,
        )

    def _latency_ratio(self, snap: SignalSnapshot) -> float | None:
        """Worst of TTFT and queue time p90 (else its mean) over budget: what the ``latency``
        guard acts on."""
        slo = self.ctx.slo
        ratios: list[float] = []
        if snap.ttft_p90_s is not None:
            ratios.append(snap.ttft_p90_s / slo.ttft_budget(snap.p90_prompt_tokens or 0.0))
        if snap.queue_time_p90_s is not None:
            # queue time is part of TTFT; vLLM's first queue bucket is 0.3 s, so an idle queue
            # already reads ~0.27 s at p90 and a tighter budget would look half-used forever
            ratios.append(snap.queue_time_p90_s / slo.ttft_s)
        elif snap.queue_time_mean_s is not None:
            # an engine without histograms (Triton): the mean, which sits below the tail
            ratios.append(snap.queue_time_mean_s / slo.ttft_s)
        # TPOT is observed when a request finishes, after the load that shaped it, so it would
        # blame the current fleet for a past overload; TTFT and queue time are not.
        return max(ratios) if ratios else None

    def _learning_ratio(self, snap: SignalSnapshot, ratio: float | None) -> float | None:
        """The ratio the capacity learner sees: TPOT too, valid once fleet and load are steady
        (TPOT is what reaches its budget first as the decode batch grows)."""
        if snap.tpot_p90_s is None:
            return ratio
        tpot = snap.tpot_p90_s / self.ctx.slo.tpot_s
        return tpot if ratio is None else max(ratio, tpot)

    def recommend(self, snapshot: SignalSnapshot) -> Recommendation:
        step = self.prepare(snapshot)
        if isinstance(step, Recommendation):
            return step
        self.forecaster.update([step.smoothed])
        path = self.forecaster.predict(step.horizon, [0.5])[:, 0]
        return self.decide(step, float(path.max()), float(path[-1]))

    def prepare(self, snapshot: SignalSnapshot) -> Step | Recommendation:
        """Everything of a tick before the forecast: demand, band scoring, capacity learning.

        A hold is returned as it is. Otherwise the caller feeds ``step.smoothed`` to the
        forecaster, asks it for the point path over ``step.horizon`` ticks and hands the path's
        highest and last values to :meth:`decide`: :meth:`recommend` with this policy's own
        forecaster, :class:`~autoscaler.policies.forecast.batch.ForecastBatch` with one array
        model for every workload of the loop.
        """
        if snapshot.stale:
            return hold(snapshot.workload, snapshot.timestamp, "stale data: holding (fail static)")
        snap, fallbacks = fill_demand(snapshot, self.ctx)
        if snap.prompt_tokens_rate is None or snap.generation_tokens_rate is None:
            return hold(snap.workload, snap.timestamp, "no demand data yet: holding")
        ctx = self.ctx
        d = self.demand_estimator.estimate(snap, recently_overloaded=any(self._overloaded))
        self._demand.append(d.demand)
        smoothed = sum(self._demand) / len(self._demand)

        ready = snap.replicas.ready
        ratio = self._latency_ratio(snap)
        # Under overload (and for a minute after) the demand estimate is censored: completions
        # saturate, and the queue growth it leans on misses what the queue could not show.
        # Such minutes neither score nor make forecasts for the band, and teach no capacity.
        self._overloaded.append(ratio is not None and ratio > 1.0)
        censored = any(self._overloaded)
        self.band.observe(smoothed, censored)
        system_growth = (d.growth + d.gateway_growth) * d.mean_work + d.in_flight
        capacity = self._learn_capacity(snap, ready, d.served, system_growth, ratio, censored)
        capacity *= self.headroom

        lead = snap.time_to_ready_s or ctx.default_lead_time_s
        horizon = max(1, int(math.ceil(lead / ctx.tick_s)))
        return Step(snap, fallbacks, d, smoothed, ready, ratio, censored, capacity, lead, horizon)

    def decide(self, step: Step, path_max: float, path_last: float) -> Recommendation:
        """The candidates and the recommendation, given the forecaster's point path over
        ``step.horizon`` ticks (its highest and its last value)."""
        ctx = self.ctx
        snap, fallbacks, d = step.snap, step.fallbacks, step.demand
        demand, source, mean_work = d.demand, d.source, d.mean_work
        growth, gateway_backlog, gateway_growth = d.growth, d.gateway_backlog, d.gateway_growth
        smoothed, ready, ratio, censored = step.smoothed, step.ready, step.ratio, step.censored
        capacity, lead, horizon = step.capacity, step.lead, step.horizon
        self.band.forecast(horizon, path_last, censored)
        band = max(self.min_headroom, self.band.factor(self.band_quantile))
        # never below the latest 1-minute rate: the smoothed series lags a step up by a minute,
        # and a replica ordered a minute late serves a minute late
        point = max(path_max, smoothed, demand)
        upper = point * band
        backlog = self._backlog_replicas(snap, mean_work, capacity, lead, gateway_backlog)
        held = " (the gateway's backlog included)" if gateway_backlog > 0 else ""
        candidates = [
            Candidate(
                "forecast",
                upper / capacity + backlog,
                f"demand {upper:.0f} work/s over {lead:.0f}s "
                f"(band x{upper / point if point > 0 else band:.2f}, {source}), "
                f"capacity {capacity:.0f} ({self.capacity.basis_}"
                + (f", mix x{self.mix.scale:.2f}" if self.mix.scale is not None else "")
                + ")"
                + (f", {backlog:.1f} replicas busy with a queue{held}" if backlog >= 0.05 else ""),
            )
        ]
        # Latency is observed at first token: while a backlog drains, the requests served now
        # waited minutes, and the ready count that is already draining it would be blamed.
        # With arrivals known, a queue that shrank over the window has just drained (the
        # histograms still hold the requests that waited in it) even when it is empty by now;
        # without them, an empty queue whose queue time alone was over the budget is the past
        # too (a slow prefill with no queue still counts).
        queued = (snap.waiting or 0.0) + gateway_backlog
        shrinking = growth + gateway_growth < 0
        draining = shrinking and (queued > 0 or source == ARRIVALS)
        queue_gone = (
            snap.waiting is not None
            and queued <= 0
            and (snap.queue_time_p90_s or 0.0) > self.ctx.slo.ttft_s
        )
        if ratio is not None and ratio > 1.0 and ready > 0 and not (draining or queue_gone):
            wanted = ready * min(1.5, ratio)
            on_the_way = snap.replicas.spec - ready
            # replicas already starting are the answer to this latency: scaling the ready count
            # again each tick until they land compounds (a x4 crowd ran a fleet of 23 to 36)
            latency = (
                min(wanted, max(float(snap.replicas.spec), ready)) if on_the_way > 0 else wanted
            )
            candidates.append(Candidate("latency", latency, f"latency at {ratio:.2f}x budget"))
        waiting_per_replica = queued / max(ready, 1)
        saturated = (snap.kv_usage is not None and snap.kv_usage > 0.9) or waiting_per_replica > 32
        pressed = self._memory_pressure(snap)
        if (saturated or pressed) and not draining:
            why = ["KV or queue saturated"] if saturated else []
            why += [pressed] if pressed else []
            candidates.append(
                Candidate("saturation", ready + max(1.0, 0.1 * ready), "; ".join(why))
            )
        if ctx.gpu_memory_guard and snap.gpu_memory_usage_max is None:
            fallbacks = (*fallbacks, NO_GPU_MEMORY)
        best = max(candidates, key=lambda c: c.replicas)
        desired = int(math.ceil(best.replicas - 1e-9))
        stuck = sum(1 for age in snap.replicas.starting_ages_s if age > ctx.pending_timeout_s)
        if stuck:
            best = Candidate(
                best.reason,
                best.replicas,
                f"{best.detail}; capacity unavailable: {stuck} replica(s) not ready after "
                f"{ctx.pending_timeout_s:.0f}s (not added to the desired count)",
            )
            candidates = [best if c.reason == best.reason else c for c in candidates]
        desired = max(ctx.min_replicas, min(ctx.max_replicas, desired))
        return Recommendation(
            workload=snap.workload,
            timestamp=snap.timestamp,
            desired_replicas=desired,
            winner=best.reason,
            candidates=tuple(candidates),
            metrics=(
                PublishedMetric(DESIRED_METRIC, float(desired)),
                PublishedMetric(LOAD_METRIC, demand / capacity),
                PublishedMetric(FORECAST_METRIC, upper / capacity),
            ),
            fallbacks=fallbacks,
        )

    def _memory_pressure(self, snap: SignalSnapshot) -> str | None:
        """Why the memory-pressure guard fires (None: it does not, or it is not live)."""
        ctx = self.ctx
        usage = snap.gpu_memory_usage_max
        if not ctx.gpu_memory_guard or usage is None or usage < ctx.gpu_memory_pressure:
            return None
        waiting = snap.waiting or 0.0
        ready = max(snap.replicas.ready, 1)
        if waiting < ready or (snap.waiting_growth_rate or 0.0) <= 0.0:
            return None
        limit = ctx.gpu_memory_pressure
        pressed = sum(1 for u in snap.per_replica_gpu_memory_usage if u >= limit) or 1
        return (
            f"GPU memory at {usage:.0%} on the fullest replica ({pressed} replica(s) at or above "
            f"{limit:.0%}) with {waiting:.0f} request(s) waiting, the queue growing"
        )

    def _learn_capacity(
        self,
        snap: SignalSnapshot,
        ready: int,
        served: float,
        system_growth_work: float,
        ratio: float | None,
        censored: bool,
    ) -> float:
        """Feed the capacity learner when load and latency describe one steady state.

        Latency histograms and rates cover the last rate window; while the ready count moved in
        it, the load per replica swung, or the work in the system (queued, or running: a batch can
        grow for a minute before any request queues) grew or drained, load and latency do not
        describe the same state (a replica filling its batch looks fast; one draining a backlog
        looks slow).
        """
        scale = self.mix.update(snap)
        # the learner counts in the seed mix's units: what it learns (a multiple of the
        # profile's capacity) carries over when the mix moves
        served, system_growth_work = served / scale, system_growth_work / scale
        load = served / ready if ready > 0 else 0.0
        self._ready_history.append(ready)
        self._load_history.append(load)
        steady = (
            len(self._ready_history) == self._ready_history.maxlen
            and max(self._ready_history) <= 1.05 * min(self._ready_history) + 1e-9
            and max(self._load_history) <= self.steady_load_tolerance * min(self._load_history)
            and abs(system_growth_work) <= 0.02 * served
        )
        self._steady_run = self._steady_run + 1 if steady else 0
        if ready > 0 and self._steady_run >= self.steady_ticks and not censored:
            # counted per tick, not per window: each request is in several overlapping windows
            seen = observed_attainment(snap, self.ctx.slo, self.ctx.tick_s)
            return scale * self.capacity.observe(
                load,
                self._learning_ratio(snap, ratio),
                None if seen is None else seen.miss,
                0.0 if seen is None else seen.requests,
            )
        return scale * self.capacity.capacity_

    @staticmethod
    def _backlog_replicas(
        snap: SignalSnapshot, mean_work: float, capacity: float, lead: float, shared: float = 0.0
    ) -> float:
        """Replicas that will still be busy with their queue when new ones could be ready.

        A request waits at the replica it was routed to, so one replica's queue is drained by that
        replica alone while new arrivals go to the others. A queue that drains within the lead
        time needs no replacement (replicas ordered now arrive after it is gone); one that
        outlasts it keeps its replica from new arrivals for that much longer, up to a whole
        replica. Without per-replica gauges the fleet's queue is spread evenly. A ``shared``
        queue (the gateway's, drained by every ready replica) is spread evenly on top: where it
        would have waited without flow control.
        """
        ready = snap.replicas.ready
        per = snap.per_replica_waiting
        if not per:
            total = snap.waiting or 0.0
            per = (total / ready,) * ready if ready > 0 and total > 0 else ()
        if shared > 0 and ready > 0:
            per = tuple(w + shared / ready for w in (per or (0.0,) * ready))
        window = max(60.0, lead)
        return float(
            sum(min(1.0, max(0.0, w * mean_work / capacity - lead) / window) for w in per if w > 0)
        )

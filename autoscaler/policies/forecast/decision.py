"""``forecast``: our policy. Token-work demand, forecast over the lead time, learned capacity.

Desired replicas = max of these candidates (each keeps its reason; the winner is reported):

* ``forecast``: token-work demand over the lead time (observed time-to-ready, else the context's
  default) - the forecaster's point path times a band calibrated on the policy's own recent
  forecast errors (:class:`RelativeBand`) at a quantile set by the SLO-attainment target
  (:func:`band_quantile_for`), at least ``min_headroom`` - divided by the learned per-replica
  capacity, plus the replicas whose queue outlasts the lead time;
* ``latency``: when observed TTFT p90 or queue time p90 (its mean per request on an engine
  without histograms: Triton) exceed their budgets, the ready count scaled by the worst ratio
  (capped at 1.5x per tick);
* ``saturation``: KV-cache usage above 90% or more than ``max_num_seqs`` waiting per replica
  adds one step of 10% (at least one replica); so does GPU memory pressure where the engine's
  GPU memory is not one exported KV pool (``PolicyContext.gpu_memory_guard``: TGI, Triton): the
  fullest replica's GPU memory (dcgm-exporter) at or above ``gpu_memory_pressure`` while the
  queue builds (at least one request waiting per ready replica, and growing over the rate
  window). A full GPU with an empty or draining queue serves what it is sent; and a request or
  two waiting for the next prefill step is how every engine's queue looks under load, which on
  an engine whose memory is full from the start (TGI) would add a replica every tick.

Demand is counted in token work (prefill tokens + weighted decode tokens) and estimated as the
work served plus the growth of the work in the system (queued, and running requests' remaining
decode), because completions saturate under overload and overshoot while a backlog drains.
Where an inference gateway fronts the fleet (``WorkloadConfig.gateway``, snapshot fields
``gateway_*``), demand is the token work *arriving* instead: the requests the gateway let through
plus the growth of its flow-control backlog, at its mean request size; the backlog itself counts
as queue (spread over the ready replicas' queues, where it would have waited without flow
control, and in the saturation guard). The ``forecast`` candidate's detail says which demand
source it used.
Minutes under overload are censored: they neither calibrate the band nor teach capacity. The
desired count is the fleet the demand needs, so replicas pending or starting are capacity on the
way by construction. Past the pending timeout (``PolicyContext.pending_timeout_s``, e.g. no free
GPU) they are reported - the winning reason says capacity is unavailable, and the loop posts an
Event - but never added to the desired count: replacements for pods the cluster cannot place
cannot be placed either, each round of them would time out in turn, and the fleet would climb to
its maximum and never scale down (12 stuck pods at a load of one replica took it 3 -> 20). A
scale-down below the current count still happens when the load falls, and the ReplicaSet then
removes unscheduled pods first. Stale or missing data -> hold (fail static).

Capacity is learned online (:class:`CapacityLearner`) from (load per replica, SLO attainment)
pairs observed while the fleet and its load were steady (the share of requests within the
budgets, read from the TTFT and per-request TPOT buckets; p90 latency ratios where an engine lacks
them): an isotonic (scikit-learn) fit against load says where the misses reach what the target
allows, and the capacity rises
above the engine profile's seed (``PolicyContext.replica_token_capacity``) only as far as loads
observed with latency comfortably within budget allow. ``setting`` scales the learned capacity
(default 1.0: below 1 buys head-room, above 1 trusts a replica with more).

The forecaster is built in one place, :func:`default_forecaster`.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping

import numpy as np
from sklearn.isotonic import isotonic_regression  # type: ignore[import-untyped]

from autoscaler.core.attainment import observed_attainment
from autoscaler.core.recommendation import Candidate, PublishedMetric, Recommendation, hold
from autoscaler.core.signals import SignalSnapshot
from autoscaler.core.wire_names import DESIRED_METRIC, FORECAST_METRIC, LOAD_METRIC
from autoscaler.hpa.behavior import SHIPPED_BEHAVIOR
from autoscaler.hpa.spec import ExternalMetricTarget, HpaSpec
from autoscaler.policies.base import Actuation, PolicyContext
from autoscaler.policies.fallbacks import fill_demand
from forecasting.base import Forecaster
from forecasting.holt import DampedHolt

NO_GPU_MEMORY = (
    "gpu_memory: no dcgm-exporter rows joined to this workload's pods; memory-pressure guard idle"
)
"""The fallback named when the memory-pressure guard is live but has no GPU memory to read."""


def default_forecaster() -> Forecaster:
    """The forecaster the policy runs on token-work demand (1-minute means, one per tick)."""
    return DampedHolt()


def band_quantile_for(attainment_target: float) -> float:
    """The forecast band's quantile for an SLO-attainment target: ``1 - 2**-nines``, where
    ``nines = -log10(1 - target)`` (0.99 -> 0.75), within [0.5, 0.99] (see ForecastPolicy)."""
    miss = min(max(1.0 - attainment_target, 1e-9), 0.1)
    nines = -math.log10(miss)
    return float(min(0.99, max(0.5, 1.0 - 2.0**-nines)))


class CapacityLearner:
    """Per-replica token-work capacity at the SLO, learned from what was observed.

    Observations are steady (load per replica, latency) pairs, kept in bins of load (2.5% wide,
    on a log scale around the seed) as exponentially weighted means that fade over ``memory``
    observations (12 h of 15 s ticks), so a changed workload is relearned. Two statistics, the
    first once ``min_evidence`` requests were observed (a 1% tail cannot be estimated from a few
    hundred requests; a p90 can), the second until then and where the engine lacks the
    histograms:

    * **Observed attainment** (``miss``: the share of the window's requests outside the TTFT or
      TPOT budget, read from the histogram buckets by :mod:`autoscaler.core.attainment`), weighted
      by the requests it covers. The SLO's own statistic: the limit is the load where the
      fitted miss share reaches what the attainment target allows (``1 - attainment_target``)
      on top of the misses no capacity removes. Those are the misses that do not fall with load
      (a prompt whose prefill alone outlasts its budget): the fitted share at the lowest load
      observed, credited once the observations span ``1 + trust_margin`` in load (so one narrow
      band of overloaded windows cannot pass for a floor; misses that capacity causes rise
      with load, and the isotonic fit shows the rise).
    * **p90 latency ratios** (the worst observed p90 over its budget: TTFT, queue time, TPOT),
      for engines without the two histograms. ``target_ratio`` is the p90 ratio taken to mark
      the limit: p90 at 75% of its budget. It was read off the simulator on the shared traces
      (TPOT p90 at 0.73 of its budget at C*), and it is wrong where the tail is not the p90's
      shape (issue 17: a replica at 11% busy passes the p90 test while 1.75% of its requests
      miss TPOT behind long prefill chunks); the attainment statistic replaces it where the
      engine exports the histograms.

    An isotonic (monotone) fit of the statistic against load pools noisy windows and cannot
    invent a dip the data do not show; beyond twice the budget (or a miss share of 1) a value
    only says "over", so one overload cannot outweigh hours of steady observations.

    * **Rising above the seed needs evidence.** Provisioning above demand keeps the load per
      replica below capacity, so a load *at* capacity is rarely observed. The capacity probes
      upward by ``probe_step`` per observation while the window is comfortably within the SLO
      (fewer than ``comfortable_share`` of the allowed misses, half by default: the window
      would still be within the target with as many misses again; without histograms: p90
      ratio below ``probe_below``)
      at a load of at least ``probe_near`` x the capacity, never past the fitted limit and never
      beyond ``1 + trust_margin`` x the largest load observed within the target (or the seed,
      whichever is more). The margin must exceed the policy's head-room, or the probe could
      never raise the capacity past the loads the head-room lets it see (a seed 30% low would
      then stay low).
    * **Falling needs no patience, but a fit.** A window over the target at a load of at least
      half the capacity lowers the capacity to the fitted limit at once. The fit includes that
      window: alone (or with only worse windows at lower loads) it puts the limit below the
      load that broke, by at most 20%; pooled with steady windows within the target at that
      load and above, it may leave no limit at all, and then nothing drops (one slow window
      among nine cut the capacity 25% for a whole run before the fit was pooled).
    * Bounded to [``floor``, ``ceiling``] x the seed, so a broken signal cannot run away.
    """

    def __init__(
        self,
        seed: float,
        target_ratio: float = 0.75,
        probe_below: float = 0.55,
        probe_near: float = 0.6,
        probe_step: float = 0.01,
        trust_margin: float = 0.5,
        memory: float = 2880.0,
        floor: float = 0.2,
        ceiling: float = 5.0,
        attainment_target: float = 0.99,
        comfortable_share: float = 0.5,
    ) -> None:
        self.seed = seed
        self.target_ratio = target_ratio
        self.probe_below = probe_below
        self.probe_near = probe_near
        self.probe_step = probe_step
        self.trust_margin = trust_margin
        self.memory = memory
        self.floor = floor
        self.ceiling = ceiling
        self.allowed_miss = max(1.0 - attainment_target, 1e-6)
        self.comfortable_share = comfortable_share
        p = self.allowed_miss
        self.min_evidence = 1.96**2 * (1.0 - p) / (p * 0.5**2)
        """Requests at and above a load before its misses may set a limit: the sample that
        estimates a miss share of ``1 - attainment_target`` within +-50% at 95% confidence
        (binomial: z^2 (1 - p) / (p r^2); 1,521 at 99%). One burst window of a few hundred
        requests (3.5% missed at 441) once cut a capacity to a third, for good."""
        self.capacity_ = seed
        self.limit_ = math.inf
        """Load at which the fitted statistic crosses its target (inf: not seen)."""
        self.trusted_ = seed
        """Largest load observed with the fitted statistic within the target (at least the
        seed)."""
        self.miss_floor_ = 0.0
        """Misses credited as independent of load (see the class docstring)."""
        self.basis_ = "seed"
        """What the capacity was last learned from: ``seed`` (nothing yet), ``attainment`` or
        ``p90 latency`` (shown in the recommendation's reason)."""
        self._log_lo = math.log(max(seed, 1e-9) * floor / 2.0)
        self._step = math.log(1.025)
        n = int(math.ceil((math.log(ceiling * 2.0) - math.log(floor / 2.0)) / self._step)) + 1
        self.centers_ = np.exp(self._log_lo + self._step * (np.arange(n) + 0.5))
        self.weight_ = np.zeros(n)
        self.ratio_ = np.zeros(n)
        self.requests_ = np.zeros(n)
        self.miss_ = np.zeros(n)
        self._dirty = False

    def _bin(self, load: float) -> int:
        i = int((math.log(load) - self._log_lo) / self._step)
        return min(max(i, 0), self.weight_.size - 1)

    def _record(self, load: float, ratio: float) -> None:
        self.weight_ *= 1.0 - 1.0 / self.memory
        i = self._bin(load)
        w = self.weight_[i] + 1.0
        self.ratio_[i] += (min(ratio, 2.0) - self.ratio_[i]) / w
        self.weight_[i] = w
        self._dirty = True

    def _record_miss(self, load: float, miss: float, requests: float) -> None:
        self.requests_ *= 1.0 - 1.0 / self.memory
        i = self._bin(load)
        n = self.requests_[i] + requests
        self.miss_[i] += (min(max(miss, 0.0), 1.0) - self.miss_[i]) * requests / n
        self.requests_[i] = n
        self._dirty = True

    def _fit(self, by_attainment: bool) -> None:
        """Isotonic fit over bins with data; updates ``limit_``, ``trusted_``, ``miss_floor_``."""
        self._dirty = False
        if by_attainment:
            seen = self.requests_ > 0.5
            values, weights = self.miss_[seen], self.requests_[seen]
        else:
            seen = self.weight_ > 0.05
            values, weights = self.ratio_[seen], self.weight_[seen]
        if not seen.any():
            self.limit_, self.trusted_ = math.inf, self.seed
            return
        x = self.centers_[seen]
        fitted = np.asarray(isotonic_regression(values, sample_weight=weights), dtype=float)
        if by_attainment:
            spans = float(x[-1]) >= (1.0 + self.trust_margin) * float(x[0])
            self.miss_floor_ = float(fitted[0]) if spans else 0.0
            target = self.miss_floor_ + self.allowed_miss
        else:
            target = self.target_ratio
        over = np.flatnonzero(fitted > target + 1e-12)
        if by_attainment and over.size and weights[over[0] :].sum() < self.min_evidence:
            over = over[:0]  # not enough requests at those loads yet to say they miss
        if over.size == 0:
            self.limit_ = math.inf
            within = np.flatnonzero(fitted <= target + 1e-12)
            self.trusted_ = max(self.seed, float(x[within[-1]]) if within.size else 0.0)
            return
        k = int(over[0])
        if k == 0:
            # every load seen is over the target: the limit is below the lowest one
            shrink = 0.8 if by_attainment else max(0.8, target / float(fitted[0]))
            self.limit_ = float(x[0]) * shrink
            self.trusted_ = self.seed
            return
        x0, x1, y0, y1 = float(x[k - 1]), float(x[k]), float(fitted[k - 1]), float(fitted[k])
        self.limit_ = x0 + (x1 - x0) * (target - y0) / max(y1 - y0, 1e-12)
        self.trusted_ = max(self.seed, x0)

    def observe(
        self,
        load_per_replica: float,
        latency_ratio: float | None,
        miss: float | None = None,
        requests: float = 0.0,
    ) -> float:
        """Fold in one steady observation and return the capacity.

        ``miss`` is the window's estimated share of requests outside the SLO over ``requests``
        requests (None: the engine's histograms are missing, and ``latency_ratio``, the worst
        observed p90 over its budget, is used instead; None too: nothing is learned).
        """
        if not load_per_replica > 0:
            return self.capacity_
        has_miss = miss is not None and requests > 0 and math.isfinite(miss)
        has_ratio = latency_ratio is not None and math.isfinite(latency_ratio)
        if has_miss:
            assert miss is not None
            self._record_miss(load_per_replica, miss, requests)
        if has_ratio:
            assert latency_ratio is not None
            self._record(load_per_replica, latency_ratio)
        # the SLO's own statistic once enough requests were seen to estimate a 1% tail; the
        # p90s (robust with few requests) until then
        by_attainment = has_miss and float(self.requests_.sum()) >= self.min_evidence
        if by_attainment:
            assert miss is not None
            self.basis_ = "attainment"
            over = miss > self.miss_floor_ + self.allowed_miss
            comfortable = miss < self.miss_floor_ + self.comfortable_share * self.allowed_miss
        elif has_ratio:
            assert latency_ratio is not None
            self.basis_ = "p90 latency"
            over = latency_ratio > self.target_ratio
            comfortable = latency_ratio < self.probe_below
        else:
            return self.capacity_
        near = load_per_replica >= self.probe_near * self.capacity_
        if over and load_per_replica >= 0.5 * self.capacity_:
            # the fit pools this window with every other at similar loads: when they keep the
            # fitted statistic within the target (no finite limit), one bad window is a burst
            # the head-room absorbs, not a smaller replica
            self._fit(by_attainment)
            self.capacity_ = min(self.capacity_, self.limit_)
        elif comfortable and near:
            if self._dirty:
                self._fit(by_attainment)
            bound = min(self.limit_, (1.0 + self.trust_margin) * self.trusted_)
            if self.capacity_ < bound:
                self.capacity_ = min(bound, self.capacity_ * (1.0 + self.probe_step))
        self.capacity_ = min(self.ceiling * self.seed, max(self.floor * self.seed, self.capacity_))
        return self.capacity_


class RelativeBand:
    """How far above its point forecast demand turned out, at the lead time: the band's width.

    Every tick's point forecast for ``horizon`` ticks ahead is kept until that tick arrives and
    then scored as ``actual / forecast``; the band is the ``q`` quantile of the last ``window``
    ratios (split-conformal prediction on relative errors). Relative, so it follows the level at
    once (a fleet ten times larger has the same band); an empirical quantile, so a transient
    moves it by one sample's rank, not by its size; and it measures the whole forecast as the
    policy uses it, whichever forecaster made it. Until ``min_scored`` ratios exist the ``prior``
    holds: the first forecasts of a workload are scored against a history that barely started.
    """

    def __init__(self, window: int = 240, min_scored: int = 4, prior: float = 1.1) -> None:
        self.window = window
        self.min_scored = min_scored
        self.prior = prior
        self._tick = 0
        self._pending: deque[tuple[int, float]] = deque()
        self._log_ratios: deque[float] = deque(maxlen=window)

    @property
    def scored(self) -> int:
        return len(self._log_ratios)

    def observe(self, actual: float, censored: bool = False) -> None:
        """Advance one tick and score the forecasts made for it against ``actual``. A
        ``censored`` actual (demand measured under overload, when completions saturate and the
        estimate leans on queue growth) scores nothing."""
        self._tick += 1
        while self._pending and self._pending[0][0] <= self._tick:
            due, point = self._pending.popleft()
            if due == self._tick and point > 0 and actual > 0 and not censored:
                self._log_ratios.append(math.log(actual / point))

    def forecast(self, horizon: int, point: float, censored: bool = False) -> None:
        """Remember the point forecast made now for ``horizon`` ticks ahead. Forecasts made from
        a history shorter than their horizon are not scored: they extrapolate from a start-up,
        and would hold the band wide for a whole window afterwards."""
        if self._tick < horizon or censored:
            return
        due = self._tick + max(1, horizon)
        if self._pending and self._pending[-1][0] > due:
            return  # the lead shrank: keep the queue ordered, skip this one
        self._pending.append((due, point))

    def factor(self, q: float) -> float:
        """Upper band as a multiple of the point forecast."""
        if len(self._log_ratios) < self.min_scored:
            return self.prior
        return math.exp(float(np.quantile(np.fromiter(self._log_ratios, float), q)))


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
        self.band = RelativeBand()
        self._demand: deque[float] = deque(maxlen=4)
        """The forecaster sees demand averaged over 4 samples (1 min of 15 s ticks): short
        bursts are absorbed by queues within the TTFT budget, and the band stays meaningful."""
        self._ready_history: deque[int] = deque(maxlen=5)
        self._load_history: deque[float] = deque(maxlen=5)
        self._running: deque[tuple[float, float]] = deque(maxlen=5)
        self._overloaded: deque[bool] = deque(maxlen=4)
        self._steady_run = 0
        self._work_per_request: float | None = None
        """Mean token work per request behind a gateway (:meth:`_request_work`)."""

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
        if snapshot.stale:
            return hold(snapshot.workload, snapshot.timestamp, "stale data: holding (fail static)")
        snap, fallbacks = fill_demand(snapshot, self.ctx)
        if snap.prompt_tokens_rate is None or snap.generation_tokens_rate is None:
            return hold(snap.workload, snap.timestamp, "no demand data yet: holding")
        ctx = self.ctx
        wp, wd = ctx.prefill_weight, ctx.decode_weight
        mean_work = (snap.mean_prompt_tokens or 0.0) * wp + (snap.mean_output_tokens or 0.0) * wd
        # arrivals = work served + growth of the work still in the system; signed, because while
        # a backlog drains the fleet serves more than arrives. Waiting requests hold all their
        # work; running ones have prefilled and, on average, half their output still to decode.
        growth = snap.waiting_growth_rate or 0.0
        served = snap.prompt_tokens_rate * wp + snap.generation_tokens_rate * wd
        in_flight = self._running_growth(snap) * 0.5 * (snap.mean_output_tokens or 0.0) * wd
        demand = max(0.0, served + growth * mean_work + in_flight)
        source = "served work + queue growth"
        # Where an inference gateway fronts the fleet, demand is read where it arrives: the
        # requests it let through plus its backlog's growth, at the gateway's mean request
        # size. It does not saturate with the fleet, and with flow control on it sees the
        # requests the gateway holds back, which no engine queue shows.
        arrivals = snap.arrival_requests_per_s()
        gateway_work = self._request_work(snap)
        if arrivals is not None and gateway_work is not None:
            demand = arrivals * gateway_work
            source = "arrivals at the gateway"
        gateway_backlog = snap.gateway_backlog or 0.0
        gateway_growth = snap.gateway_backlog_growth_rate or 0.0
        if gateway_work is not None:
            mean_work = gateway_work
        self._demand.append(demand)
        smoothed = sum(self._demand) / len(self._demand)
        self.forecaster.update([smoothed])

        ready = snap.replicas.ready
        ratio = self._latency_ratio(snap)
        # Under overload (and for a minute after) the demand estimate is censored: completions
        # saturate, and the queue growth it leans on misses what the queue could not show.
        # Such minutes neither score nor make forecasts for the band, and teach no capacity.
        self._overloaded.append(ratio is not None and ratio > 1.0)
        censored = any(self._overloaded)
        self.band.observe(smoothed, censored)
        system_growth = (growth + gateway_growth) * mean_work + in_flight
        capacity = self._learn_capacity(snap, ready, served, system_growth, ratio, censored)
        capacity *= self.headroom

        lead = snap.time_to_ready_s or ctx.default_lead_time_s
        horizon = max(1, int(math.ceil(lead / ctx.tick_s)))
        path = self.forecaster.predict(horizon, [0.5])[:, 0]
        self.band.forecast(horizon, float(path[-1]), censored)
        band = max(self.min_headroom, self.band.factor(self.band_quantile))
        # never below the latest 1-minute rate: the smoothed series lags a step up by a minute,
        # and a replica ordered a minute late serves a minute late
        point = max(float(path.max()), smoothed, demand)
        upper = point * band
        backlog = self._backlog_replicas(snap, mean_work, capacity, lead, gateway_backlog)
        held = " (the gateway's backlog included)" if gateway_backlog > 0 else ""
        candidates = [
            Candidate(
                "forecast",
                upper / capacity + backlog,
                f"demand {upper:.0f} work/s over {lead:.0f}s "
                f"(band x{upper / point if point > 0 else band:.2f}, {source}), "
                f"capacity {capacity:.0f} ({self.capacity.basis_})"
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
        draining = shrinking and (queued > 0 or source == "arrivals at the gateway")
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
            return self.capacity.observe(
                load,
                self._learning_ratio(snap, ratio),
                None if seen is None else seen.miss,
                0.0 if seen is None else seen.requests,
            )
        return self.capacity.capacity_

    def _request_work(self, snap: SignalSnapshot) -> float | None:
        """Token work of a mean request as the gateway's token histograms size it (the engines'
        means where the gateway has none yet); None without a gateway or any size.

        The histograms are observed when responses end, so under overload (or while the
        gateway holds requests back) they size the requests that got through, the short ones
        first: a crowd of the usual requests would read as one of smaller ones. The size is
        therefore a 1-minute mean (``alpha`` 1/4 per 15 s tick) that moves only while nothing
        is held and latency is within budget, and holds its last value otherwise.
        """
        if snap.gateway_request_rate is None:
            return None
        prompt = snap.gateway_mean_prompt_tokens
        output = snap.gateway_mean_output_tokens
        if prompt is None or output is None:
            prompt, output = snap.mean_prompt_tokens, snap.mean_output_tokens
        if prompt is None or output is None:
            return self._work_per_request
        work = prompt * self.ctx.prefill_weight + output * self.ctx.decode_weight
        calm = not any(self._overloaded) and not (snap.gateway_backlog or 0.0) > 0
        if self._work_per_request is None:
            self._work_per_request = work
        elif calm:
            self._work_per_request += 0.25 * (work - self._work_per_request)
        return self._work_per_request

    def _running_growth(self, snap: SignalSnapshot) -> float:
        """d(running requests)/dt over the rate window, from this policy's own past snapshots."""
        if snap.running is None:
            return 0.0
        history = self._running
        history.append((snap.timestamp, snap.running))
        (t0, r0), (t1, r1) = history[0], history[-1]
        return (r1 - r0) / (t1 - t0) if t1 > t0 else 0.0

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

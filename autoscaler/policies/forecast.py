"""``forecast``: our policy. Token-work demand, forecast over the lead time, learned capacity.

Desired replicas = max of these candidates (each keeps its reason; the winner is reported):

* ``forecast``: the upper quantile (the SLO-attainment target, default 0.99) of token-work demand
  over the lead time (observed time-to-ready, else the context's default), divided by the learned
  per-replica capacity, plus the replicas needed to drain the current queue within a minute;
* ``latency``: when observed TTFT p90, queue time p90 or TPOT p90 exceed their budgets, the ready
  count scaled by the worst ratio (capped at 1.5x per tick);
* ``saturation``: KV-cache usage above 90% or more than ``max_num_seqs`` waiting per replica
  adds one step of 10% (at least one replica);
* ``current``: never below the ready count while latency is over budget.

Demand is counted in token work (prefill tokens + weighted decode tokens) and estimated as
completions plus queue growth, because completions saturate under overload. Replicas that are
pending or starting count as capacity on the way, until the pending timeout (10 min), after which
they are added back as missing. Stale or missing data -> hold (fail static).

Capacity is learned online from (load per replica, latency) observations: it drops to the load at
which latency was observed over budget, and rises only to loads actually observed with latency
comfortably within budget, so it is never trusted beyond what was seen. The seed comes from the
engine profile (``PolicyContext.replica_token_capacity``); ``setting`` scales the head-room
(capacity multiplier, default 1.0).
"""

from __future__ import annotations

import math
from collections import deque

from autoscaler.hpa.behavior import SHIPPED_BEHAVIOR
from autoscaler.hpa.spec import ExternalMetricTarget, HpaSpec
from autoscaler.policies.base import Actuation, PolicyContext
from autoscaler.policies.fallbacks import fill_demand
from autoscaler.recommendation import Candidate, PublishedMetric, Recommendation, hold
from autoscaler.signals import SignalSnapshot
from forecasting.base import Forecaster
from forecasting.holt import DampedHolt

DESIRED_METRIC = "llm_desired_replicas"
LOAD_METRIC = "llm_load_replicas"
FORECAST_METRIC = "llm_forecast_load_replicas"


def default_forecaster() -> Forecaster:
    """The forecaster the policy runs on token-work demand (1-minute means, one per tick).

    One place, so the report, the notebooks and the policy always use the same model.
    """
    return DampedHolt()


class CapacityLearner:
    """Per-replica token-work capacity at the SLO, learned from what was observed.

    * latency over budget (ratio > 1) at a load near capacity: capacity drops to 95% of the load
      at which it broke (never compounding tick after tick of the same overload);
    * latency far inside its budget (ratio < ``explore_below``) at a load of at least half the
      capacity: capacity rises by ``explore_step`` per tick. Provisioning at an upper demand
      quantile keeps the load per replica well below capacity, so waiting to *observe* a load at
      capacity would never happen; a slow, bounded probe does, and the first latency breach
      pulls it back. Latency stays flat until a replica saturates, so the probe must be slow
      (0.5% per tick) to leave the breach time to show before the fleet is far past capacity;
    * bounded to [0.3, ``ceiling``] x the seed, so a broken signal cannot run away.
    """

    def __init__(
        self,
        seed: float,
        explore_below: float = 0.35,
        explore_step: float = 0.005,
        ceiling: float = 1.5,
    ) -> None:
        self.seed = seed
        self.explore_below = explore_below
        self.explore_step = explore_step
        self.ceiling = ceiling
        self.capacity_ = seed

    def observe(self, load_per_replica: float, latency_ratio: float | None) -> float:
        """``latency_ratio`` is the worst observed/budget ratio (None when unknown)."""
        if latency_ratio is None or load_per_replica <= 0:
            return self.capacity_
        if latency_ratio > 1.0 and load_per_replica >= 0.5 * self.capacity_:
            self.capacity_ = min(self.capacity_, 0.9 * load_per_replica)
        elif latency_ratio < self.explore_below and load_per_replica >= 0.5 * self.capacity_:
            self.capacity_ = max(self.capacity_ * (1.0 + self.explore_step), load_per_replica)
        self.capacity_ = min(self.ceiling * self.seed, max(0.3 * self.seed, self.capacity_))
        return self.capacity_


class ForecastPolicy:
    """Our policy; publishes replica-unit metrics to an HPA (``AverageValue`` target 1)."""

    name = "forecast"
    actuation: Actuation = "hpa"

    def __init__(self, ctx: PolicyContext, setting: float | None = None) -> None:
        self.ctx = ctx
        self.headroom = 1.0 if setting is None else setting
        self.forecaster = default_forecaster()
        self.capacity = CapacityLearner(ctx.replica_token_capacity)
        self._ready_history: deque[int] = deque(maxlen=5)
        self._demand: deque[float] = deque(maxlen=4)
        """The forecaster sees demand averaged over 4 samples (1 min of 15 s ticks): short
        bursts are absorbed by queues within the TTFT budget, and the band stays meaningful."""

    def hpa_spec(self) -> HpaSpec:
        return HpaSpec(
            metrics=(ExternalMetricTarget(DESIRED_METRIC, "AverageValue", 1.0),),
            behavior=SHIPPED_BEHAVIOR,
            min_replicas=self.ctx.min_replicas,
            max_replicas=self.ctx.max_replicas,
        )

    def _latency_ratio(self, snap: SignalSnapshot) -> float | None:
        slo = self.ctx.slo
        ratios: list[float] = []
        if snap.ttft_p90_s is not None:
            ratios.append(snap.ttft_p90_s / slo.ttft_budget(snap.p90_prompt_tokens or 0.0))
        if snap.queue_time_p90_s is not None:
            # queue time is part of TTFT; vLLM's first queue bucket is 0.3 s, so an idle queue
            # already reads ~0.27 s at p90 and a tighter budget would look half-used forever
            ratios.append(snap.queue_time_p90_s / slo.ttft_s)
        # TPOT is observed when a request finishes, minutes after the load that shaped it, so
        # it would blame the current fleet for a past overload; TTFT and queue time are not.
        return max(ratios) if ratios else None

    def recommend(self, snapshot: SignalSnapshot) -> Recommendation:
        if snapshot.stale:
            return hold(snapshot.workload, snapshot.timestamp, "stale data: holding (fail static)")
        snap, fallbacks = fill_demand(snapshot, self.ctx)
        if snap.prompt_tokens_rate is None or snap.generation_tokens_rate is None:
            return hold(snap.workload, snap.timestamp, "no demand data yet: holding")
        ctx = self.ctx
        wp, wd = ctx.prefill_weight, ctx.decode_weight
        mean_work = (snap.mean_prompt_tokens or 0.0) * wp + (snap.mean_output_tokens or 0.0) * wd
        # arrivals = completions + queue growth; the growth is signed, because while a queue
        # drains, completions exceed arrivals and would otherwise look like new demand
        growth = snap.waiting_growth_rate or 0.0
        served = snap.prompt_tokens_rate * wp + snap.generation_tokens_rate * wd
        demand = max(0.0, served + growth * mean_work)
        self._demand.append(demand)
        self.forecaster.update([sum(self._demand) / len(self._demand)])

        ready = snap.replicas.ready
        ratio = self._latency_ratio(snap)
        self._ready_history.append(ready)
        # Latency histograms and rates cover the last rate window; while the ready count moved
        # in that window, load per replica and latency do not describe the same fleet.
        stable = (
            len(self._ready_history) >= 5
            and max(self._ready_history) <= 1.05 * min(self._ready_history) + 1e-9
        )
        if ready > 0 and stable:
            capacity = self.capacity.observe(served / ready, ratio)
        else:
            capacity = self.capacity.capacity_
        capacity *= self.headroom

        lead = snap.time_to_ready_s or ctx.default_lead_time_s
        horizon = max(1, int(math.ceil(lead / ctx.tick_s)))
        q = min(0.999, max(0.5, ctx.slo.attainment_target))
        upper = float(self.forecaster.predict(horizon, [q])[:, 0].max())
        upper = max(upper, demand)
        # the queue must be drained by the replicas that exist when new ones could arrive
        backlog = (snap.waiting or 0.0) * mean_work / max(60.0, lead)
        need_forecast = (upper + backlog) / capacity
        candidates = [
            Candidate(
                "forecast",
                need_forecast,
                f"q{q:g} demand {upper:.0f} work/s over {lead:.0f}s, capacity {capacity:.0f}",
            )
        ]
        # Latency is observed at first token: while a backlog drains, the requests served now
        # waited minutes, and the ready count that is already draining it would be blamed.
        draining = growth < 0 and (snap.waiting or 0.0) > 0
        if ratio is not None and ratio > 1.0 and ready > 0 and not draining:
            candidates.append(
                Candidate("latency", ready * min(1.5, ratio), f"latency at {ratio:.2f}x budget")
            )
        waiting_per_replica = (snap.waiting or 0.0) / max(ready, 1)
        if (snap.kv_usage is not None and snap.kv_usage > 0.9) or waiting_per_replica > 32:
            candidates.append(
                Candidate("saturation", ready + max(1.0, 0.1 * ready), "KV or queue saturated")
            )
        timed_out = sum(1 for age in snap.replicas.starting_ages_s if age > 600.0)
        best = max(candidates, key=lambda c: c.replicas)
        desired = int(math.ceil(best.replicas - 1e-9)) + timed_out
        desired = max(ctx.min_replicas, min(ctx.max_replicas, desired))
        load_replicas = demand / capacity
        return Recommendation(
            workload=snap.workload,
            timestamp=snap.timestamp,
            desired_replicas=desired,
            winner=best.reason,
            candidates=tuple(candidates),
            metrics=(
                PublishedMetric(DESIRED_METRIC, float(desired)),
                PublishedMetric(LOAD_METRIC, load_replicas),
                PublishedMetric(FORECAST_METRIC, upper / capacity),
            ),
            fallbacks=fallbacks,
        )

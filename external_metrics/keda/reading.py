"""What the scaler answers for one workload, read from its store entry.

Pure: an :class:`~autoscaler.live.store.Entry` and the time go in, a value or a :mod:`.errors`
exception comes out; no gRPC, no clock. The servers never compute signals (DESIGN.md, "Data
flow"): everything here is a lookup in the control loop's last recommendation, plus the one
judgement that belongs to the KEDA contract, *activation*.

Activation (KEDA's 0 <-> 1 phase) follows the forecast, not only the present: a workload is
active when the policy wants replicas, or when the current or forecast load (in replica units) is
above a small epsilon. So a scaled-to-zero workload is woken when the forecast says demand is
coming within the lead time, before the first request has to queue. Stale or missing data is never
answered with a guess: it raises :class:`~.errors.NotFresh` and KEDA applies its fallback.
"""

from __future__ import annotations

import math
from typing import Final

from autoscaler.core.recommendation import Recommendation
from autoscaler.core.wire_names import (
    DESIRED_METRIC,
    FORECAST_METRIC,
    LOAD_METRIC,
    PUBLISHED_METRICS,
)
from autoscaler.live.store import Entry, Freshness
from external_metrics.keda.errors import NotFresh, UnknownMetric

REPLICA_UNIT_METRICS: Final[tuple[str, ...]] = PUBLISHED_METRICS
"""Metrics already in replica units: KEDA gets target 1 for them (AverageValue pass-through)."""
DEFAULT_METRIC: Final = DESIRED_METRIC
DEFAULT_ACTIVATION_EPSILON: Final = 0.01
"""Load below a hundredth of a replica's capacity counts as none (forecasts decay, never hit 0)."""
REPLICA_UNIT_TARGET: Final = 1.0
ACTIVITY_METRICS: Final[tuple[str, ...]] = (LOAD_METRIC, FORECAST_METRIC)
"""Besides desired replicas > 0, any of these above the epsilon makes a workload active."""


def fresh_recommendation(entry: Entry, *, now: float, staleness_s: float) -> Recommendation:
    """The recommendation to serve, or :class:`NotFresh` saying why there is none."""
    workload = entry.info.key
    freshness = entry.freshness(now, staleness_s)
    if freshness is Freshness.FRESH and entry.last_good is not None:
        return entry.last_good
    if freshness is Freshness.NO_DATA or entry.last_good is None:
        why = "has no recommendation yet (the service just started, or has had no data)"
    elif entry.latest is not None and entry.latest.holds:
        held = "; ".join(c.detail for c in entry.latest.candidates if c.detail)
        why = f"is stale: the last control-loop tick held ({held or 'no reason given'})"
    else:
        why = (
            f"is stale: its last good recommendation is {entry.age_s(now):.0f} s old "
            f"(limit {staleness_s:.0f} s)"
        )
    raise NotFresh(
        f"workload {workload} {why}; no value is served, KEDA applies its fallback",
        workload=workload,
    )


def metric_value(rec: Recommendation, metric: str) -> float:
    """The published value of ``metric``; never a default when it is missing or not finite."""
    for published in rec.metrics:
        if published.name == metric:
            if not math.isfinite(published.value):
                raise NotFresh(
                    f"workload {rec.workload}: {metric} is {published.value} (not a number); "
                    "no value is served, KEDA applies its fallback",
                    workload=rec.workload,
                )
            return published.value
    names = ", ".join(m.name for m in rec.metrics) or "none"
    raise UnknownMetric(
        f"workload {rec.workload} does not publish {metric} (its policy publishes: {names})",
        metric=metric,
    )


def is_active(rec: Recommendation, *, epsilon: float = DEFAULT_ACTIVATION_EPSILON) -> bool:
    """Active when the policy wants replicas or the current/forecast load exceeds ``epsilon``.

    ``rec`` must be fresh (see :func:`fresh_recommendation`). Metrics the policy does not publish
    are simply not considered; a non-finite one does not make the workload active.
    """
    if rec.desired_replicas is not None and rec.desired_replicas > 0:
        return True
    return any(
        m.name in ACTIVITY_METRICS and math.isfinite(m.value) and m.value > epsilon
        for m in rec.metrics
    )

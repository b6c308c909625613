"""kube-controller-manager's HorizontalPodAutoscaler, for External metrics, one sync at a time.

The simulator scales every HPA-based policy (ours and the ``hpa-*`` baselines) through this class,
so what a policy publishes meets the same arithmetic, stabilization and rate limits as in a
cluster. Each step follows upstream ``pkg/controller/podautoscaler`` (kubernetes/kubernetes):

``replica_calculator.go``
    ``GetExternalMetricReplicas`` (target ``Value``) and ``GetExternalPerPodMetricReplicas``
    (target ``AverageValue``), with the per-direction ``Tolerances.isWithin``.
``horizontal.go``
    ``reconcileAutoscaler`` (the min/max/zero guards), ``computeReplicasForMetrics`` (max over
    metrics; what a failed metric blocks), ``normalizeDesiredReplicasWithBehaviors``:
    ``stabilizeRecommendationWithBehaviors``, ``convertDesiredReplicasWithBehaviorRate``,
    ``calculateScale{Up,Down}Limit...``, ``storeScaleEvent`` and ``markScaleEventsOutdated``.

Upstream quirks kept on purpose, because a cluster has them too:

- Numbers are read as ``Quantity.MilliValue()`` (milli-units, rounded up), as the HPA reads the
  External Metrics API.
- A ``Value`` target multiplies by the *ready* pod count: with pods that exist but none ready,
  it proposes 0. With no pods at all (``status_replicas == 0`` and ``ready_pods == 0``) while
  ``spec_replicas > 0`` the metric fails ("no pods returned by selector").
- ``AverageValue`` with ``status_replicas == 0`` divides by zero in float64: the ratio is +Inf
  (or NaN for zero usage), never within tolerance, so the proposal is ``ceil(usage/target)``.
- The first sync records the current count as a recommendation: the scale-down window holds
  the count for one window after the controller starts.
- Percent policies count from the replicas at the *start* of the period (current minus what
  was added plus what was removed within it); scale-up rounds up, scale-down truncates. From
  zero replicas a Percent policy allows nothing; a Pods policy still allows ``value`` pods, so
  the default behaviour goes 0 -> 4, while ``selectPolicy: Min`` over both stays at 0.
- Windows and periods compare strictly (``time.After``): an event exactly ``period`` seconds
  old no longer counts, so ``Pods 4 / 15 s`` synced every 15 s adds 4 per sync.

Time is whatever the caller passes as ``now`` (seconds, non-decreasing); nothing assumes a
fixed cadence. ``sync_period_s`` only records the cadence the caller intends (upstream it drives
the work queue, not the algorithm). The legacy path for an HPA without ``behavior`` is not
emulated: :class:`~autoscaler.hpa.spec.HpaSpec` always carries one (use
:data:`DEFAULT_K8S_BEHAVIOR` for the API defaults).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from autoscaler.errors import InputError
from autoscaler.hpa.spec import (
    ExternalMetricTarget,
    HpaBehavior,
    HpaScalingPolicy,
    HpaScalingRules,
    HpaSpec,
)

__all__ = [
    "DEFAULT_K8S_BEHAVIOR",
    "HpaController",
    "HpaDecision",
    "HpaReason",
    "Tolerances",
    "external_metric_replicas",
    "milli_value",
    "validate_spec",
]

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1

DEFAULT_K8S_BEHAVIOR = HpaBehavior(
    scale_up=HpaScalingRules(
        stabilization_window_s=0,
        policies=(HpaScalingPolicy("Percent", 100, 15), HpaScalingPolicy("Pods", 4, 15)),
        select_policy="Max",
    ),
    scale_down=HpaScalingRules(
        stabilization_window_s=300,
        policies=(HpaScalingPolicy("Percent", 100, 15),),
        select_policy="Max",
    ),
)
"""What the API server fills in for ``behavior`` fields left unset (``pkg/apis/autoscaling/v2/
defaults.go``; the 300 s is ``--horizontal-pod-autoscaler-downscale-stabilization``)."""

HpaReason = Literal[
    "ScaleUp",
    "ScaleDown",
    "WithinTolerance",
    "Steady",
    "ScaleUpStabilized",
    "ScaleDownStabilized",
    "LimitedByPolicy",
    "TooManyReplicas",
    "TooFewReplicas",
    "AboveMaxReplicas",
    "BelowMinReplicas",
    "FailedGetExternalMetric",
    "ScalingDisabled",
]
"""Why a sync ended where it did, most specific first:

- ``FailedGetExternalMetric``: every metric failed, or some failed and the rest proposed a
  scale-down; the count is held (upstream ``ScalingActive=False``).
- ``ScalingDisabled``: the target sits at 0 replicas and ``minReplicas > 0`` (someone scaled it
  to zero by hand; upstream leaves it alone).
- ``AboveMaxReplicas`` / ``BelowMinReplicas``: the current count is outside the bounds and is
  set to the bound directly, with no metrics read.
- ``LimitedByPolicy``: a rate-limit policy (or ``selectPolicy: Disabled``) cut the change
  (upstream ``ScaleUpLimit`` / ``ScaleDownLimit``).
- ``TooManyReplicas`` / ``TooFewReplicas``: the change was clamped to max/min replicas.
- ``ScaleUpStabilized`` / ``ScaleDownStabilized``: a stabilization window held it back.
- ``ScaleUp`` / ``ScaleDown``: the full proposal was applied.
- ``WithinTolerance``: the deciding metric's ratio was within tolerance.
- ``Steady``: the proposal equals the current count for another reason.
"""


@dataclass(frozen=True, slots=True)
class HpaDecision:
    """The outcome of one sync: the count the HPA writes to the scale target, and why."""

    desired_replicas: int
    reason: HpaReason
    per_metric: dict[str, int | None]
    """Each metric's proposal; None when its value could not be read. Empty when no metric was
    read (``ScalingDisabled``, ``AboveMaxReplicas``, ``BelowMinReplicas``)."""
    able_to_scale: bool
    """False when the HPA could not act on its metrics (failed metrics, scaling disabled)."""
    current_replicas: int = 0
    """``spec.replicas`` of the scale target when the sync started."""
    proposed_replicas: int | None = None
    """Max over metrics before stabilization and limits (upstream ``prenormalizedDesired``)."""
    stabilized_replicas: int | None = None
    """After the stabilization windows, before rate limits and min/max."""

    @property
    def rescaled(self) -> bool:
        """True when this sync changes the target's replica count."""
        return self.desired_replicas != self.current_replicas


@dataclass(frozen=True, slots=True)
class Tolerances:
    """``replica_calculator.go`` ``Tolerances``: a ratio in [1 - down, 1 + up] means "no change"."""

    scale_down: float
    scale_up: float

    def is_within(self, ratio: float) -> bool:
        """False for NaN, as in Go."""
        return (1.0 - self.scale_down) <= ratio <= (1.0 + self.scale_up)

    @classmethod
    def for_behavior(cls, behavior: HpaBehavior, default: float) -> Tolerances:
        """Per-direction ``behavior.*.tolerance`` (gate ``HPAConfigurableTolerance``), else the
        controller-wide ``--horizontal-pod-autoscaler-tolerance``."""
        down = behavior.scale_down.tolerance
        up = behavior.scale_up.tolerance
        return cls(
            scale_down=default if down is None else down,
            scale_up=default if up is None else up,
        )


def milli_value(value: float) -> int:
    """``Quantity.MilliValue()``: milli-units, rounded up.

    Float noise below a millionth of a milli-unit is dropped first, so ``1.1`` reads as 1100 and
    not 1101 (a server emitting milli-Quantities would have printed "1100m"). Capped at the
    int64 range, as a Quantity is.
    """
    milli = value * 1000.0
    if milli >= INT64_MAX:
        return INT64_MAX  # upstream caps the summed usage at MaxInt64
    if milli <= -INT64_MAX:
        return -INT64_MAX
    return math.ceil(round(milli, 6))


def _ceil_int32(x: float) -> int:
    """``int32(math.Ceil(x))`` with the upstream cap at MaxInt32."""
    if x > INT32_MAX:
        return INT32_MAX
    return math.ceil(x)


def external_metric_replicas(
    target: ExternalMetricTarget,
    usage: float,
    *,
    spec_replicas: int,
    status_replicas: int,
    ready_pods: int,
    tolerances: Tolerances,
) -> tuple[int, bool] | None:
    """One External metric's proposal: ``(replicas, held_by_tolerance)``, or None on failure.

    ``usage`` is the sum of every series the metric's selector matches. ``Value`` follows
    ``GetExternalMetricReplicas`` + ``getUsageRatioReplicaCount`` (current = ``spec_replicas``),
    ``AverageValue`` follows ``GetExternalPerPodMetricReplicas`` (``status_replicas``).
    """
    if not math.isfinite(usage):
        return None
    usage_m = milli_value(usage)
    target_m = milli_value(target.target_value)
    if target.target_type == "Value":
        ratio = usage_m / target_m
        if spec_replicas == 0:
            # Scale from zero: no tolerance, no pod count.
            return _ceil_int32(ratio), False
        if tolerances.is_within(ratio):
            return spec_replicas, True
        if status_replicas == 0 and ready_pods == 0:
            return None  # "no pods returned by selector while calculating replica count"
        return _ceil_int32(ratio * ready_pods), False
    # AverageValue
    denominator = float(target_m) * float(status_replicas)
    if denominator == 0.0:
        ratio = math.nan if usage_m == 0 else math.copysign(math.inf, usage_m)
    else:
        ratio = usage_m / denominator
    if tolerances.is_within(ratio):
        return status_replicas, True
    return _ceil_int32(usage_m / target_m), False


def validate_spec(spec: HpaSpec) -> None:
    """What the API server's validation (``pkg/apis/autoscaling/validation``) would reject.

    Raises :class:`~autoscaler.errors.InputError`. ``minReplicas: 0`` is accepted: every metric
    here is External, which is what ``HPAScaleToZero`` requires. Empty ``policies`` are accepted
    only with ``selectPolicy: Disabled`` (upstream would fill in defaults; we want them explicit).
    """
    if not spec.metrics:
        raise InputError("an HPA needs at least one metric")
    if spec.min_replicas < 0:
        raise InputError(f"minReplicas must be >= 0, got {spec.min_replicas}")
    if spec.max_replicas < 1 or spec.max_replicas < spec.min_replicas:
        raise InputError(
            f"maxReplicas must be >= 1 and >= minReplicas, got {spec.max_replicas} "
            f"(minReplicas {spec.min_replicas})"
        )
    names = [m.name for m in spec.metrics]
    if len(set(names)) != len(names):
        raise InputError(f"metric names must be unique, got {names}")
    for metric in spec.metrics:
        if not (math.isfinite(metric.target_value) and metric.target_value > 0):
            raise InputError(f"metric {metric.name!r}: target must be > 0")
        if metric.target_type not in ("Value", "AverageValue"):
            raise InputError(f"metric {metric.name!r}: unknown target type {metric.target_type}")
    for direction, rules in (
        ("scaleUp", spec.behavior.scale_up),
        ("scaleDown", spec.behavior.scale_down),
    ):
        if not 0 <= rules.stabilization_window_s <= 3600:
            raise InputError(f"{direction}.stabilizationWindowSeconds must be in [0, 3600]")
        if rules.select_policy not in ("Max", "Min", "Disabled"):
            raise InputError(f"{direction}.selectPolicy must be Max, Min or Disabled")
        if not rules.policies and rules.select_policy != "Disabled":
            raise InputError(f"{direction}.policies must not be empty")
        if rules.tolerance is not None and not rules.tolerance >= 0:
            raise InputError(f"{direction}.tolerance must be >= 0")
        for policy in rules.policies:
            if policy.type not in ("Pods", "Percent"):
                raise InputError(f"{direction}: unknown policy type {policy.type}")
            if policy.value <= 0:
                raise InputError(f"{direction}: policy value must be > 0")
            if not 0 < policy.period_s <= 1800:
                raise InputError(f"{direction}: periodSeconds must be in (0, 1800]")


@dataclass(slots=True)
class _Recommendation:
    replicas: int
    at: float


@dataclass(slots=True)
class _ScaleEvent:
    change: int
    """Absolute number of replicas added (scale-up list) or removed (scale-down list)."""
    at: float
    outdated: bool = False


def _changed_in_period(period_s: int, events: list[_ScaleEvent], now: float) -> int:
    """``getReplicasChangePerPeriod``: replicas changed by events strictly inside the period."""
    cutoff = now - period_s
    return sum(e.change for e in events if e.at > cutoff)


def _replicas_at_period_start(
    period_s: int,
    current: int,
    up_events: list[_ScaleEvent],
    down_events: list[_ScaleEvent],
    now: float,
) -> int:
    """Replicas at the start of a policy's period: rate limits count from there."""
    added = _changed_in_period(period_s, up_events, now)
    removed = _changed_in_period(period_s, down_events, now)
    return current - added + removed


def _policy_limit(
    current: int,
    up_events: list[_ScaleEvent],
    down_events: list[_ScaleEvent],
    rules: HpaScalingRules,
    now: float,
    *,
    up: bool,
) -> int:
    """``calculateScaleUpLimitWithScalingRules`` (``up``: the most replicas the policies allow
    now) and ``calculateScaleDownLimitWithBehaviors`` (the fewest): one walk over the policies,
    which differ in the direction of each policy's change, its rounding and which policy
    "Max"/"Min" selects."""
    if rules.select_policy == "Disabled":
        return current
    if up:
        pick = min if rules.select_policy == "Min" else max
    else:
        # For a scale-down the smallest change ("Min") is the highest floor.
        pick = max if rules.select_policy == "Min" else min
    result: int | None = None
    for policy in rules.policies:
        start = _replicas_at_period_start(policy.period_s, current, up_events, down_events, now)
        if policy.type == "Pods":
            proposed = start + policy.value if up else start - policy.value
        elif up:
            # Rounded up, or a small fleet could never grow.
            proposed = math.ceil(float(start) * (1.0 + float(policy.value) / 100.0))
        else:
            # Go's int32(float64) truncates toward zero.
            proposed = math.trunc(float(start) * (1.0 - float(policy.value) / 100.0))
        result = proposed if result is None else pick(result, proposed)
    return current if result is None else result


def _longest_period(rules: HpaScalingRules) -> int:
    return max((p.period_s for p in rules.policies), default=0)


@dataclass(slots=True)
class _History:
    """Per-HPA state upstream keeps in maps keyed by the HPA: recommendations and scale events."""

    recommendations: list[_Recommendation] = field(default_factory=list)
    started: bool = False
    scale_up_events: list[_ScaleEvent] = field(default_factory=list)
    scale_down_events: list[_ScaleEvent] = field(default_factory=list)


class HpaController:
    """One HPA object, synced by the caller every ``sync_period_s``.

    ``sync`` reads the scale target's counts and the metric values as they are at ``now`` and
    returns the count the HPA writes. State kept between syncs: the unstabilized
    recommendations (stabilization windows) and the scale events (rate-limit policies); the
    controller assumes that the count it returns is applied, as a successful ``Scale`` update is.

    Example::

        hpa = HpaController(spec)
        decision = hpa.sync(now=t, spec_replicas=4, status_replicas=4, ready_pods=3,
                            metric_values={"llm_desired_replicas": 6.0})
    """

    __slots__ = ("spec", "tolerance", "sync_period_s", "_tolerances", "_history", "_last_now")

    def __init__(
        self, spec: HpaSpec, *, tolerance: float = 0.1, sync_period_s: float = 15.0
    ) -> None:
        validate_spec(spec)
        if not (math.isfinite(tolerance) and tolerance >= 0):
            raise InputError(f"tolerance must be >= 0, got {tolerance}")
        if not (math.isfinite(sync_period_s) and sync_period_s > 0):
            raise InputError(f"sync_period_s must be > 0, got {sync_period_s}")
        self.spec = spec
        self.tolerance = tolerance
        self.sync_period_s = sync_period_s
        self._tolerances = Tolerances.for_behavior(spec.behavior, tolerance)
        self._history = _History()
        self._last_now: float | None = None

    def sync(
        self,
        *,
        now: float,
        spec_replicas: int,
        status_replicas: int,
        ready_pods: int,
        metric_values: Mapping[str, float | None],
    ) -> HpaDecision:
        """One ``reconcileAutoscaler`` pass.

        Args:
            now: seconds on any clock, never earlier than the previous call.
            spec_replicas: the scale target's ``spec.replicas`` ("current replicas").
            status_replicas: its ``status.replicas`` (pods that exist, ready or not).
            ready_pods: Running and Ready pods of its selector (``Value`` targets only).
            metric_values: each metric's summed value; None, NaN or a missing name means the
                External Metrics API answered with an error.
        """
        if self._last_now is not None and now < self._last_now:
            raise ValueError(f"time went backwards: {now} < {self._last_now}")
        if min(spec_replicas, status_replicas, ready_pods) < 0:
            raise ValueError("replica counts must be >= 0")
        self._last_now = now
        history = self._history
        spec = self.spec
        current = spec_replicas
        if not history.started:
            # recordInitialRecommendation
            history.started = True
            history.recommendations.append(_Recommendation(current, now))

        if current == 0 and spec.min_replicas != 0:
            return HpaDecision(0, "ScalingDisabled", {}, False, current_replicas=current)
        if current > spec.max_replicas:
            return self._apply_bound(now, current, spec.max_replicas, "AboveMaxReplicas")
        if current < spec.min_replicas:
            return self._apply_bound(now, current, spec.min_replicas, "BelowMinReplicas")

        per_metric: dict[str, int | None] = {}
        proposal = 0
        held = False
        failed = 0
        for metric in spec.metrics:
            value = metric_values.get(metric.name)
            result = (
                None
                if value is None
                else external_metric_replicas(
                    metric,
                    value,
                    spec_replicas=spec_replicas,
                    status_replicas=status_replicas,
                    ready_pods=ready_pods,
                    tolerances=self._tolerances,
                )
            )
            if result is None:
                per_metric[metric.name] = None
                failed += 1
                continue
            replicas, within = result
            per_metric[metric.name] = replicas
            # computeReplicasForMetrics: "replicas == 0 || proposal > replicas".
            if proposal == 0 or replicas > proposal:
                proposal, held = replicas, within
        if failed == len(spec.metrics) or (failed > 0 and proposal < spec_replicas):
            return HpaDecision(
                current, "FailedGetExternalMetric", per_metric, False, current_replicas=current
            )

        prenormalized = max(proposal, 0)
        stabilized, stabilize_reason = self._stabilize(now, current, prenormalized)
        desired, limit_reason = self._limit(now, current, stabilized)
        if desired != current:
            self._store_scale_event(now, current, desired)

        reason: HpaReason
        if desired != stabilized and limit_reason is not None:
            reason = limit_reason
        elif stabilized != prenormalized:
            reason = stabilize_reason
        elif desired > current:
            reason = "ScaleUp"
        elif desired < current:
            reason = "ScaleDown"
        elif held:
            reason = "WithinTolerance"
        else:
            reason = "Steady"
        return HpaDecision(
            desired,
            reason,
            per_metric,
            True,
            current_replicas=current,
            proposed_replicas=prenormalized,
            stabilized_replicas=stabilized,
        )

    def _apply_bound(self, now: float, current: int, bound: int, reason: HpaReason) -> HpaDecision:
        """Current count outside [min, max]: upstream sets the bound without reading metrics."""
        self._store_scale_event(now, current, bound)
        return HpaDecision(bound, reason, {}, True, current_replicas=current)

    def _stabilize(self, now: float, current: int, desired: int) -> tuple[int, HpaReason]:
        """``stabilizeRecommendationWithBehaviors``: keep ``current`` unless every recommendation
        in the scale-up window is above it (then their min) or every one in the scale-down
        window is below it (then their max); record ``desired``."""
        behavior = self.spec.behavior
        recommendations = self._history.recommendations
        up_cutoff = now - behavior.scale_up.stabilization_window_s
        down_cutoff = now - behavior.scale_down.stabilization_window_s
        up_recommendation = desired
        down_recommendation = desired
        old_index: int | None = None
        for i, rec in enumerate(recommendations):
            if rec.at > up_cutoff:
                up_recommendation = min(rec.replicas, up_recommendation)
            if rec.at > down_cutoff:
                down_recommendation = max(rec.replicas, down_recommendation)
            if rec.at < up_cutoff and rec.at < down_cutoff:
                old_index = i
        recommendation = current
        if recommendation < up_recommendation:
            recommendation = up_recommendation
        if recommendation > down_recommendation:
            recommendation = down_recommendation
        # Reuse one expired slot (the last one found), as upstream does, or append.
        if old_index is not None:
            recommendations[old_index] = _Recommendation(desired, now)
        else:
            recommendations.append(_Recommendation(desired, now))
        reason: HpaReason = "ScaleUpStabilized" if desired >= current else "ScaleDownStabilized"
        return recommendation, reason

    def _limit(self, now: float, current: int, desired: int) -> tuple[int, HpaReason | None]:
        """``convertDesiredReplicasWithBehaviorRate``: rate-limit policies, then min/max."""
        spec = self.spec
        history = self._history
        allowed: int
        reason: HpaReason
        if desired > current:
            limit = _policy_limit(
                current,
                history.scale_up_events,
                history.scale_down_events,
                spec.behavior.scale_up,
                now,
                up=True,
            )
            limit = max(limit, current)  # never "scale up" below the current count
            if spec.max_replicas > limit:
                allowed, reason = limit, "LimitedByPolicy"
            else:
                allowed, reason = spec.max_replicas, "TooManyReplicas"
            if desired > allowed:
                return allowed, reason
        elif desired < current:
            floor = _policy_limit(
                current,
                history.scale_up_events,
                history.scale_down_events,
                spec.behavior.scale_down,
                now,
                up=False,
            )
            floor = min(floor, current)
            if spec.min_replicas < floor:
                allowed, reason = floor, "LimitedByPolicy"
            else:
                allowed, reason = spec.min_replicas, "TooFewReplicas"
            if desired < allowed:
                return allowed, reason
        return desired, None

    def _store_scale_event(self, now: float, previous: int, new: int) -> None:
        """``storeScaleEvent``: reuse one slot older than the direction's longest policy period
        (``markScaleEventsOutdated``), or append."""
        behavior = self.spec.behavior
        if new > previous:
            events, rules, change = self._history.scale_up_events, behavior.scale_up, new - previous
        else:
            events, rules, change = (
                self._history.scale_down_events,
                behavior.scale_down,
                previous - new,
            )
        cutoff = now - _longest_period(rules)
        old_index: int | None = None
        for i, event in enumerate(events):
            if event.at < cutoff:
                event.outdated = True
            if event.outdated:
                old_index = i
        if old_index is not None:
            events[old_index] = _ScaleEvent(change, now)
        else:
            events.append(_ScaleEvent(change, now))

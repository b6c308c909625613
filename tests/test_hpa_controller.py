"""HpaController against upstream ``replica_calculator.go`` / ``horizontal.go`` semantics.

Table-driven: one row per case, named for the rule it pins. Times are the ``now`` values passed
to ``sync``; nothing here measures wall-clock time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import pytest

from autoscaler.core.recommendation import TargetType
from autoscaler.errors import InputError
from autoscaler.hpa.behavior import SHIPPED_BEHAVIOR
from autoscaler.hpa.controller import (
    DEFAULT_K8S_BEHAVIOR,
    HpaController,
    HpaDecision,
    Tolerances,
    milli_value,
)
from autoscaler.hpa.spec import (
    ExternalMetricTarget,
    HpaBehavior,
    HpaScalingPolicy,
    HpaScalingRules,
    HpaSpec,
    SelectPolicy,
)

# No windows and no effective rate limit: isolates the replica arithmetic from behaviour.
FREE = HpaBehavior(
    scale_up=HpaScalingRules(0, (HpaScalingPolicy("Pods", 1000, 15),)),
    scale_down=HpaScalingRules(0, (HpaScalingPolicy("Percent", 100, 15),)),
)


def pods(value: int, period: int = 15) -> HpaScalingPolicy:
    return HpaScalingPolicy("Pods", value, period)


def percent(value: int, period: int = 15) -> HpaScalingPolicy:
    return HpaScalingPolicy("Percent", value, period)


def make_spec(
    target_type: TargetType = "AverageValue",
    target: float = 1.0,
    *,
    behavior: HpaBehavior = FREE,
    min_replicas: int = 1,
    max_replicas: int = 100,
    names: Sequence[str] = ("m",),
) -> HpaSpec:
    return HpaSpec(
        metrics=tuple(ExternalMetricTarget(n, target_type, target) for n in names),
        behavior=behavior,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
    )


def run(
    hpa: HpaController,
    start: int,
    usages: Sequence[float | None],
    *,
    step: float = 15.0,
    name: str = "m",
) -> list[HpaDecision]:
    """Sync once per usage, ``step`` apart; pods appear and become ready at once."""
    replicas = start
    decisions = []
    for i, usage in enumerate(usages):
        decision = hpa.sync(
            now=i * step,
            spec_replicas=replicas,
            status_replicas=replicas,
            ready_pods=replicas,
            metric_values={name: usage},
        )
        replicas = decision.desired_replicas
        decisions.append(decision)
    return decisions


def counts(decisions: Sequence[HpaDecision]) -> list[int]:
    return [d.desired_replicas for d in decisions]


# --- one sync: the replica calculator --------------------------------------------------------


@dataclass(frozen=True)
class Calc:
    name: str
    target_type: TargetType
    target: float
    usage: float
    spec: int
    status: int
    ready: int
    expected: int
    reason: str
    min_replicas: int = 1
    max_replicas: int = 100
    tolerance: float = 0.1
    up_tolerance: float | None = None
    down_tolerance: float | None = None


# fmt: off
CALCS = [
    # AverageValue: ratio = usage / (target * status); outside tolerance -> ceil(usage / target).
    Calc("avg inside tolerance above", "AverageValue", 1, 10.9, 10, 10, 10, 10, "WithinTolerance"),
    Calc("avg upper edge is inside", "AverageValue", 1, 11.0, 10, 10, 10, 10, "WithinTolerance"),
    Calc("avg just above edge", "AverageValue", 1, 11.1, 10, 10, 10, 12, "ScaleUp"),
    Calc("avg lower edge is inside", "AverageValue", 1, 9.0, 10, 10, 10, 10, "WithinTolerance"),
    Calc("avg just below edge", "AverageValue", 1, 8.9, 10, 10, 10, 9, "ScaleDown"),
    Calc("avg total over target", "AverageValue", 5, 30, 2, 2, 2, 6, "ScaleUp"),
    Calc("avg ignores ready count", "AverageValue", 5, 30, 2, 2, 0, 6, "ScaleUp"),
    # status 0 (pods not created yet): ratio is +Inf in float64, so no tolerance applies.
    Calc("avg status 0 skips tolerance", "AverageValue", 5, 5.2, 3, 0, 0, 2, "ScaleDown"),
    Calc("avg status 0 zero usage", "AverageValue", 5, 0, 3, 0, 0, 0, "ScaleDown", 0),
    Calc("avg scale to zero", "AverageValue", 1, 0, 2, 2, 2, 0, "ScaleDown", 0),
    Calc("avg scale from zero", "AverageValue", 1, 2.5, 0, 0, 0, 3, "ScaleUp", 0),
    Calc("avg stays at zero", "AverageValue", 1, 0, 0, 0, 0, 0, "Steady", 0),
    # Value: ratio = usage / target; outside tolerance -> ceil(ratio * readyPods).
    Calc("value times ready pods", "Value", 10, 30, 4, 4, 2, 6, "ScaleUp"),
    Calc("value inside tolerance", "Value", 10, 10.5, 4, 4, 2, 4, "WithinTolerance"),
    Calc("value upper edge is inside", "Value", 10, 11, 4, 4, 4, 4, "WithinTolerance"),
    Calc("value just below edge", "Value", 10, 8.9, 10, 10, 10, 9, "ScaleDown"),
    Calc("value rounds up to current", "Value", 10, 8.9, 4, 4, 4, 4, "Steady"),
    Calc("value no ready pods proposes 0", "Value", 10, 30, 3, 3, 0, 1, "TooFewReplicas"),
    Calc("value from zero skips tolerance", "Value", 10, 10.5, 0, 0, 0, 2, "ScaleUp", 0),
    Calc("value from zero, zero usage", "Value", 10, 0, 0, 0, 0, 0, "Steady", 0),
    # Tolerance per direction (behavior.*.tolerance) and the controller-wide flag.
    Calc("up tolerance 0", "AverageValue", 1, 10.5, 10, 10, 10, 11, "ScaleUp", up_tolerance=0),
    Calc("down tolerance 0.5", "AverageValue", 1, 6, 10, 10, 10, 10, "WithinTolerance",
         down_tolerance=0.5),
    Calc("down tolerance 0.5 edge", "AverageValue", 1, 4.9, 10, 10, 10, 5, "ScaleDown",
         down_tolerance=0.5),
    Calc("global tolerance 0.2", "AverageValue", 1, 11.5, 10, 10, 10, 10, "WithinTolerance",
         tolerance=0.2),
    # Milli-units: 1.1 / (0.1 * 10) is 1.1000000000000003 in floats but exactly 1.1 in milli.
    Calc("milli-units, not float noise", "AverageValue", 0.1, 1.1, 10, 10, 10, 10,
         "WithinTolerance"),
    # Bounds.
    Calc("clamped to max", "AverageValue", 1, 500, 10, 10, 10, 20, "TooManyReplicas",
         max_replicas=20),
    Calc("clamped to min", "AverageValue", 1, 0, 5, 5, 5, 2, "TooFewReplicas", 2),
]
# fmt: on


@pytest.mark.parametrize("case", CALCS, ids=lambda c: c.name)
def test_replica_calculation(case: Calc) -> None:
    behavior = HpaBehavior(
        scale_up=replace(FREE.scale_up, tolerance=case.up_tolerance),
        scale_down=replace(FREE.scale_down, tolerance=case.down_tolerance),
    )
    spec = make_spec(
        case.target_type,
        case.target,
        behavior=behavior,
        min_replicas=case.min_replicas,
        max_replicas=case.max_replicas,
    )
    hpa = HpaController(spec, tolerance=case.tolerance)
    decision = hpa.sync(
        now=0.0,
        spec_replicas=case.spec,
        status_replicas=case.status,
        ready_pods=case.ready,
        metric_values={"m": case.usage},
    )
    assert (decision.desired_replicas, decision.reason) == (case.expected, case.reason)
    assert decision.able_to_scale


def test_observed_on_v1_26_no_ready_pods_average_value() -> None:
    """PROTOCOLS.md §1.7: no ready pods, AverageValue usage 30, target 5 -> 6 replicas, with the
    default behaviour (2 -> 6 is within +4 pods per 15 s)."""
    hpa = HpaController(make_spec("AverageValue", 5, behavior=DEFAULT_K8S_BEHAVIOR))
    decision = hpa.sync(
        now=0.0, spec_replicas=2, status_replicas=2, ready_pods=0, metric_values={"m": 30.0}
    )
    assert decision.desired_replicas == 6
    assert decision.per_metric == {"m": 6}


def test_value_target_with_no_pods_fails_like_an_empty_pod_list() -> None:
    hpa = HpaController(make_spec("Value", 10))
    decision = hpa.sync(
        now=0.0, spec_replicas=3, status_replicas=0, ready_pods=0, metric_values={"m": 30.0}
    )
    assert decision == HpaDecision(3, "FailedGetExternalMetric", {"m": None}, False, 3)


@pytest.mark.parametrize(
    ("spec_replicas", "max_replicas", "min_replicas", "expected", "reason", "able"),
    [
        (25, 20, 1, 20, "AboveMaxReplicas", True),
        (1, 20, 2, 2, "BelowMinReplicas", True),
        (0, 20, 1, 0, "ScalingDisabled", False),
    ],
)
def test_guards_before_metrics_are_read(
    spec_replicas: int,
    max_replicas: int,
    min_replicas: int,
    expected: int,
    reason: str,
    able: bool,
) -> None:
    spec = make_spec(min_replicas=min_replicas, max_replicas=max_replicas)
    decision = HpaController(spec).sync(
        now=0.0,
        spec_replicas=spec_replicas,
        status_replicas=spec_replicas,
        ready_pods=spec_replicas,
        metric_values={"m": 1000.0},
    )
    assert (decision.desired_replicas, decision.reason, decision.able_to_scale) == (
        expected,
        reason,
        able,
    )
    assert decision.per_metric == {}


# --- several metrics and failures ------------------------------------------------------------


@dataclass(frozen=True)
class Multi:
    name: str
    values: Mapping[str, float | None]
    expected: int
    reason: str
    able: bool
    per_metric: Mapping[str, int | None]


# fmt: off
MULTIS = [
    Multi("max over metrics", {"a": 3, "b": 7}, 7, "ScaleUp", True, {"a": 3, "b": 7}),
    Multi("all fail holds", {"a": None, "b": None}, 5, "FailedGetExternalMetric", False,
          {"a": None, "b": None}),
    Multi("missing and NaN are failures", {"a": math.nan}, 5, "FailedGetExternalMetric", False,
          {"a": None, "b": None}),
    Multi("partial failure blocks scale-down", {"a": None, "b": 2}, 5,
          "FailedGetExternalMetric", False, {"a": None, "b": 2}),
    Multi("partial failure allows scale-up", {"a": None, "b": 9}, 9, "ScaleUp", True,
          {"a": None, "b": 9}),
    Multi("partial failure allows holding", {"a": None, "b": 5}, 5, "WithinTolerance", True,
          {"a": None, "b": 5}),
]
# fmt: on


@pytest.mark.parametrize("case", MULTIS, ids=lambda c: c.name)
def test_several_metrics(case: Multi) -> None:
    hpa = HpaController(make_spec(names=("a", "b")))
    decision = hpa.sync(
        now=0.0, spec_replicas=5, status_replicas=5, ready_pods=5, metric_values=case.values
    )
    assert decision.desired_replicas == case.expected
    assert decision.reason == case.reason
    assert decision.able_to_scale is case.able
    assert decision.per_metric == case.per_metric


def test_failed_sync_records_no_recommendation() -> None:
    """A failed sync returns before normalization: it neither holds nor releases a window."""
    hpa = HpaController(make_spec(behavior=DEFAULT_K8S_BEHAVIOR))
    assert counts(run(hpa, 10, [None] * 21 + [2.0])) == [10] * 21 + [2]


# --- stabilization windows -------------------------------------------------------------------


def test_scale_down_window_holds_the_max_for_300_s_then_drops() -> None:
    hpa = HpaController(make_spec(behavior=DEFAULT_K8S_BEHAVIOR))
    decisions = run(hpa, 10, [10.0] + [2.0] * 25)
    # t = 15 .. 285: the recommendation of 10 recorded at t = 0 is inside the window.
    assert counts(decisions[:20]) == [10] * 20
    assert {d.reason for d in decisions[1:20]} == {"ScaleDownStabilized"}
    # t = 300: it is exactly 300 s old, outside the window (strict comparison).
    assert counts(decisions[20:]) == [2] * 6
    assert decisions[20].reason == "ScaleDown"


def test_scale_down_window_follows_the_last_spike() -> None:
    hpa = HpaController(make_spec(behavior=DEFAULT_K8S_BEHAVIOR))
    # 4, spike to 8 at t = 60, back to 4 from t = 75.
    decisions = run(hpa, 4, [4.0] * 4 + [8.0] + [4.0] * 22)
    replicas = counts(decisions)
    assert replicas[4] == 8
    assert replicas[5:24] == [8] * 19  # t = 75 .. 345
    assert replicas[24] == 4  # t = 360 = 60 + 300


def test_first_sync_records_current_replicas() -> None:
    """recordInitialRecommendation: right after start the down window holds the current count."""
    hpa = HpaController(make_spec(behavior=DEFAULT_K8S_BEHAVIOR))
    decision = run(hpa, 10, [2.0])[0]
    assert (decision.desired_replicas, decision.reason) == (10, "ScaleDownStabilized")


def test_scale_up_window_takes_the_min() -> None:
    behavior = replace(FREE, scale_up=HpaScalingRules(60, (pods(1000),)))
    decisions = run(HpaController(make_spec(behavior=behavior)), 2, [10.0] * 6)
    assert counts(decisions) == [2, 2, 2, 2, 10, 10]
    assert decisions[0].reason == "ScaleUpStabilized"


# --- rate-limit policies ---------------------------------------------------------------------


def up_only(*policies: HpaScalingPolicy, select: SelectPolicy = "Max") -> HpaBehavior:
    return replace(FREE, scale_up=HpaScalingRules(0, policies, select))


def down_only(
    *policies: HpaScalingPolicy, select: SelectPolicy = "Max", window: int = 0
) -> HpaBehavior:
    return replace(FREE, scale_down=HpaScalingRules(window, policies, select))


@pytest.mark.parametrize(
    ("behavior", "start", "usage", "expected"),
    [
        pytest.param(up_only(percent(100)), 2, 100.0, [4, 8, 16, 32, 64], id="percent 100/15s"),
        pytest.param(up_only(pods(4)), 2, 100.0, [6, 10, 14, 18, 22], id="pods 4/15s"),
        pytest.param(up_only(percent(100), pods(4)), 2, 100.0, [6, 12, 24, 48, 96], id="max"),
        pytest.param(
            up_only(percent(100), pods(4), select="Min"), 2, 100.0, [4, 8, 12, 16, 20], id="min"
        ),
        pytest.param(up_only(pods(4, 60)), 2, 100.0, [6, 6, 6, 6, 10], id="pods 4/60s"),
        pytest.param(up_only(percent(100, 60)), 2, 100.0, [4, 4, 4, 4, 8], id="percent 100/60s"),
        pytest.param(
            down_only(percent(10, 60), pods(1, 60)),
            20,
            2.0,
            [18, 18, 18, 18, 16],
            id="down 10%|1 pod/60s max",
        ),
        pytest.param(
            down_only(percent(10, 60), pods(1, 60), select="Min"),
            20,
            2.0,
            [19, 19, 19, 19, 18],
            id="down 10%|1 pod/60s min",
        ),
        pytest.param(down_only(percent(50)), 20, 2.0, [10, 5, 2, 2, 2], id="down 50%/15s"),
        pytest.param(up_only(percent(100), select="Disabled"), 2, 100.0, [2] * 5, id="up off"),
        pytest.param(down_only(percent(100), select="Disabled"), 10, 2.0, [10] * 5, id="down off"),
    ],
)
def test_rate_limits(behavior: HpaBehavior, start: int, usage: float, expected: list[int]) -> None:
    decisions = run(HpaController(make_spec(behavior=behavior)), start, [usage] * 5)
    assert counts(decisions) == expected
    assert decisions[0].reason == "LimitedByPolicy"


def test_disabled_policy_needs_no_policies() -> None:
    behavior = replace(FREE, scale_down=HpaScalingRules(0, (), "Disabled"))
    decisions = run(HpaController(make_spec(behavior=behavior)), 10, [2.0] * 3)
    assert counts(decisions) == [10, 10, 10]


def test_percent_counts_from_the_start_of_the_period() -> None:
    """Replicas removed inside the period raise the base a Percent scale-up multiplies."""
    behavior = HpaBehavior(
        scale_up=HpaScalingRules(0, (percent(100, 60),)),
        scale_down=HpaScalingRules(0, (pods(1),)),
    )
    decisions = run(HpaController(make_spec(behavior=behavior)), 4, [3.0, 100.0, 100.0])
    # 4 -> 3, then the period started at 4: ceil(4 * 2) = 8; then 8 was added: stays.
    assert counts(decisions) == [3, 8, 8]


def test_bound_correction_counts_as_a_scale_event() -> None:
    """Setting max directly stores a scale-down event that the scale-down policy then sees."""
    behavior = down_only(pods(1, 60))
    hpa = HpaController(make_spec(behavior=behavior, max_replicas=20))
    decisions = run(hpa, 30, [2.0] * 6)
    # t = 0: 30 -> 20 counts as 10 removed, so until t = 60 the period "started" at 30.
    assert counts(decisions) == [20, 20, 20, 20, 19, 19]
    assert decisions[0].reason == "AboveMaxReplicas"


# --- scale from and to zero (HPAScaleToZero) ------------------------------------------------


def test_default_behavior_scales_from_zero_by_the_pods_policy() -> None:
    hpa = HpaController(make_spec(behavior=DEFAULT_K8S_BEHAVIOR, min_replicas=0))
    assert counts(run(hpa, 0, [10.0] * 4)) == [4, 8, 10, 10]


def test_min_select_never_leaves_zero() -> None:
    """Percent of 0 is 0, and Min picks it: the real controller stays at zero too."""
    behavior = up_only(percent(100), pods(4), select="Min")
    hpa = HpaController(make_spec(behavior=behavior, min_replicas=0))
    decisions = run(hpa, 0, [10.0] * 4)
    assert counts(decisions) == [0, 0, 0, 0]
    assert decisions[0].reason == "LimitedByPolicy"


def test_shipped_behavior_scales_to_zero_and_back() -> None:
    hpa = HpaController(make_spec(behavior=SHIPPED_BEHAVIOR, min_replicas=0))
    replicas = counts(run(hpa, 1, [0.0] * 21 + [3.0] * 2))
    assert replicas[19] == 1 and replicas[20] == 0  # the window ends at t = 300
    assert replicas[21:] == [3, 3]


# --- time ------------------------------------------------------------------------------------


def test_irregular_sync_times() -> None:
    """Only ``now`` matters: a sync 1000 s later sees every window and period expired."""
    hpa = HpaController(make_spec(behavior=DEFAULT_K8S_BEHAVIOR))
    base = {"spec_replicas": 10, "status_replicas": 10, "ready_pods": 10}
    assert hpa.sync(now=0.0, metric_values={"m": 2.0}, **base).desired_replicas == 10
    assert hpa.sync(now=0.5, metric_values={"m": 2.0}, **base).desired_replicas == 10
    assert hpa.sync(now=1000.0, metric_values={"m": 2.0}, **base).desired_replicas == 2


def test_time_must_not_go_backwards() -> None:
    hpa = HpaController(make_spec())
    hpa.sync(now=10.0, spec_replicas=1, status_replicas=1, ready_pods=1, metric_values={"m": 1})
    with pytest.raises(ValueError, match="backwards"):
        hpa.sync(now=5.0, spec_replicas=1, status_replicas=1, ready_pods=1, metric_values={})


# --- validation and helpers ------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param(replace(make_spec(), metrics=()), id="no metrics"),
        pytest.param(make_spec(min_replicas=5, max_replicas=4), id="max < min"),
        pytest.param(make_spec(max_replicas=0, min_replicas=0), id="max 0"),
        pytest.param(make_spec(min_replicas=-1), id="min < 0"),
        pytest.param(make_spec(target=0.0), id="target 0"),
        pytest.param(make_spec(names=("a", "a")), id="duplicate names"),
        pytest.param(make_spec(behavior=up_only()), id="no policies"),
        pytest.param(make_spec(behavior=up_only(pods(1, 0))), id="period 0"),
        pytest.param(make_spec(behavior=up_only(pods(1, 1801))), id="period 1801"),
        pytest.param(make_spec(behavior=up_only(pods(0))), id="value 0"),
        pytest.param(make_spec(behavior=down_only(pods(1), window=3601)), id="window 3601"),
        pytest.param(
            make_spec(behavior=replace(FREE, scale_up=replace(FREE.scale_up, tolerance=-0.1))),
            id="negative tolerance",
        ),
    ],
)
def test_invalid_specs_are_rejected(spec: HpaSpec) -> None:
    with pytest.raises(InputError):
        HpaController(spec)


def test_shipped_and_default_behaviors_are_valid() -> None:
    for behavior in (SHIPPED_BEHAVIOR, DEFAULT_K8S_BEHAVIOR):
        HpaController(make_spec(behavior=behavior, min_replicas=0))


@pytest.mark.parametrize(
    ("value", "milli"),
    [(1.1, 1100), (0.3, 300), (0.0001, 1), (2.0, 2000), (-0.5, -500), (1e300, 2**63 - 1)],
)
def test_milli_value_rounds_up_like_quantity(value: float, milli: int) -> None:
    assert milli_value(value) == milli


def test_tolerances_reject_nan_like_go() -> None:
    assert not Tolerances(0.1, 0.1).is_within(math.nan)
    assert Tolerances(0.5, 0.0).is_within(0.5)
    assert not Tolerances(0.5, 0.0).is_within(1.0000001)

"""Properties of HpaController over generated specs, behaviours and observations.

Hypothesis runs without a deadline: the properties are about counts, never about speed.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.hpa.controller import HpaController
from autoscaler.hpa.spec import (
    ExternalMetricTarget,
    HpaBehavior,
    HpaScalingPolicy,
    HpaScalingRules,
    HpaSpec,
)

policies = st.builds(
    HpaScalingPolicy,
    type=st.sampled_from(["Pods", "Percent"]),
    value=st.integers(1, 200),
    period_s=st.integers(1, 120),
)
rules = st.builds(
    HpaScalingRules,
    stabilization_window_s=st.sampled_from([0, 15, 60, 300]),
    policies=st.lists(policies, min_size=1, max_size=3).map(tuple),
    select_policy=st.sampled_from(["Max", "Min"]),
    tolerance=st.none() | st.sampled_from([0.0, 0.05, 0.2]),
)
behaviors = st.builds(HpaBehavior, scale_up=rules, scale_down=rules)
targets = st.builds(
    ExternalMetricTarget,
    name=st.just("m"),
    target_type=st.sampled_from(["Value", "AverageValue"]),
    target_value=st.sampled_from([0.5, 1.0, 2.5, 10.0]),
)


@st.composite
def specs(draw: st.DrawFn) -> HpaSpec:
    min_replicas = draw(st.integers(0, 5))
    max_replicas = draw(st.integers(max(min_replicas, 1), 40))
    return HpaSpec(
        metrics=(draw(targets),),
        behavior=draw(behaviors),
        min_replicas=min_replicas,
        max_replicas=max_replicas,
    )


@dataclass(frozen=True)
class Observation:
    gap_s: float
    spec: int
    status: int
    ready: int
    usage: float | None


@st.composite
def observations(draw: st.DrawFn) -> Observation:
    status = draw(st.integers(0, 60))
    return Observation(
        gap_s=draw(st.sampled_from([0.0, 1.0, 15.0, 15.0, 15.0, 60.0, 400.0])),
        spec=draw(st.integers(0, 60)),
        status=status,
        ready=draw(st.integers(0, status)),
        usage=draw(st.none() | st.floats(0, 1000, allow_nan=False)),
    )


@settings(max_examples=150, deadline=None)
@given(spec=specs(), seen=st.lists(observations(), min_size=1, max_size=40))
def test_desired_stays_within_bounds(spec: HpaSpec, seen: list[Observation]) -> None:
    hpa = HpaController(spec)
    now = 0.0
    for obs in seen:
        now += obs.gap_s
        decision = hpa.sync(
            now=now,
            spec_replicas=obs.spec,
            status_replicas=obs.status,
            ready_pods=obs.ready,
            metric_values={"m": obs.usage},
        )
        if decision.reason == "ScalingDisabled":
            # Scaled to zero by hand with minReplicas > 0: upstream leaves it alone.
            assert obs.spec == 0 < spec.min_replicas and decision.desired_replicas == 0
            continue
        assert spec.min_replicas <= decision.desired_replicas <= spec.max_replicas
        if not decision.able_to_scale:
            assert decision.desired_replicas == obs.spec


@settings(max_examples=100, deadline=None)
@given(
    spec=specs(),
    usage=st.floats(0, 200, allow_nan=False),
    start=st.integers(0, 40),
)
def test_constant_metric_converges_and_stays(spec: HpaSpec, usage: float, start: int) -> None:
    """Pods appear ready at once; after enough syncs the count no longer moves."""
    hpa = HpaController(spec)
    replicas = max(start, spec.min_replicas, 1)
    history = []
    for i in range(700):
        decision = hpa.sync(
            now=i * 15.0,
            spec_replicas=replicas,
            status_replicas=replicas,
            ready_pods=replicas,
            metric_values={"m": usage},
        )
        replicas = decision.desired_replicas
        history.append(replicas)
    settled = history[-100:]
    assert settled == [settled[0]] * len(settled), history
    assert spec.min_replicas <= settled[0] <= spec.max_replicas

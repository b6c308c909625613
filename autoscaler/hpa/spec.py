"""Declarative HPA types, mirroring ``autoscaling/v2`` field by field.

Kept free of logic so that the simulator, the report and ``deploy/`` render the same objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from autoscaler.core.recommendation import TargetType

PolicyType = Literal["Pods", "Percent"]
SelectPolicy = Literal["Max", "Min", "Disabled"]


@dataclass(frozen=True, slots=True)
class HpaScalingPolicy:
    """``behavior.scaleUp/scaleDown.policies[]``: at most ``value`` pods (or percent) per period."""

    type: PolicyType
    value: int
    period_s: int


@dataclass(frozen=True, slots=True)
class HpaScalingRules:
    """``behavior.scaleUp`` or ``behavior.scaleDown``."""

    stabilization_window_s: int
    policies: tuple[HpaScalingPolicy, ...]
    select_policy: SelectPolicy = "Max"
    tolerance: float | None = None
    """Per-direction tolerance (gate ``HPAConfigurableTolerance``, v1.33+); None = global 0.1."""


@dataclass(frozen=True, slots=True)
class HpaBehavior:
    """``spec.behavior``."""

    scale_up: HpaScalingRules
    scale_down: HpaScalingRules


@dataclass(frozen=True, slots=True)
class ExternalMetricTarget:
    """One ``type: External`` entry of ``spec.metrics``."""

    name: str
    target_type: TargetType
    target_value: float
    selector: tuple[tuple[str, str], ...] = ()
    """``metric.selector.matchLabels`` as (label, value) pairs; the HPA sums every series it
    matches, so it must name exactly one workload when the server serves several."""


@dataclass(frozen=True, slots=True)
class HpaSpec:
    """What a policy that publishes to an HPA asks the HPA to do with its metrics."""

    metrics: tuple[ExternalMetricTarget, ...]
    behavior: HpaBehavior
    min_replicas: int = 1
    max_replicas: int = 100

"""The HPA ``behavior`` this project ships, and its ``autoscaling/v2`` wire form.

:data:`SHIPPED_BEHAVIOR` is the single definition: ``deploy/hpa/`` is rendered from it
(``python -m autoscaler.hpa.render``) and the simulator runs every HPA-based policy through
:class:`~autoscaler.hpa.controller.HpaController` with it, so a benchmark measures the manifest
that users apply. A test compares the committed YAML with a fresh render.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from autoscaler.hpa.spec import HpaBehavior, HpaScalingPolicy, HpaScalingRules

__all__ = ["SHIPPED_BEHAVIOR", "behavior_to_dict", "quantity", "rules_to_dict"]

SHIPPED_BEHAVIOR = HpaBehavior(
    scale_up=HpaScalingRules(
        stabilization_window_s=0,
        policies=(HpaScalingPolicy("Percent", 100, 15), HpaScalingPolicy("Pods", 4, 15)),
        select_policy="Max",
        tolerance=0.0,
    ),
    scale_down=HpaScalingRules(
        stabilization_window_s=300,
        policies=(HpaScalingPolicy("Percent", 10, 60), HpaScalingPolicy("Pods", 1, 60)),
        select_policy="Max",
        tolerance=0.0,
    ),
)
"""Fast up, slow down, because an LLM replica takes minutes to become ready.

Scale-up: no window, and per 15 s sync at most double or +4 pods, whichever is more (the
Kubernetes default). What the HPA reads is already a replica count that the policy computed from
a forecast over the cold-start lead time and that counts replicas already starting; a window or
a tighter rate would only add delay on top of the image pull and engine init (about 4 min:
DESIGN.md pull 180 s + init 60 s). 1 -> 5 -> 10 -> 20 takes three syncs (30 s).

Scale-down: a 300 s window (the highest recommendation of the last 5 min wins), then at most
10 % or 1 pod per 60 s, whichever is more. Removing a replica that is needed again costs a
cold start of SLO misses; keeping it a minute longer costs one replica-minute of GPU. The window
is longer than a cold start, so a lull shorter than a restart never sheds capacity, and the rate
spreads a drop over minutes (20 -> 2 takes 12 min once the window has passed). ``Pods 1`` states the
floor explicitly: Percent truncates, which already removes at least one pod at any size, but the
manifest should not rely on that rounding.

``tolerance`` is 0 in both directions. What the HPA reads is already a replica count (or a load
in replica units) with an ``AverageValue`` target of 1, so the default 10 % tolerance would swallow
every +1 or -1 step at 10 or more replicas (measured in the simulator: ``hpa-kv``'s one-replica
steps never reached the Deployment, and ours could not add fewer than 10 % at a time). Stability
comes from the windows and rate limits above, not from a dead band.

The per-HPA ``tolerance`` field is newer than the oldest Kubernetes ``deploy/`` supports
(:data:`autoscaler.kubernetes_support.HPA_TOLERANCE`: in the API from 1.33, gate
``HPAConfigurableTolerance`` on by default from 1.35; an older API server rejects the object). So
the manifests leave it out unless asked (``render_hpa(..., tolerance=True)``, the kustomize
component ``hpa-tolerance``, Helm ``autoscaling.tolerance.enabled``), and without it the
cluster-wide tolerance (10 % by default) applies: the simulator runs this behaviour with
tolerance 0, which is what a cluster gets with the opt-in (docs/deploy.md).
"""


def quantity(value: float) -> str:
    """A ``resource.Quantity`` string: an integer, else milli (``"1500m"``), micro or nano units.

    Decimal parsing of ``repr(value)`` keeps ``0.1`` exact (``"100m"``). Raises ValueError for a
    value finer than a nano-unit or not finite, which no Quantity can hold.
    """
    if not math.isfinite(value):
        raise ValueError(f"not a Quantity: {value!r}")
    exact = Decimal(repr(float(value)))
    for suffix, exponent in (("", 0), ("m", 3), ("u", 6), ("n", 9)):
        scaled = exact.scaleb(exponent)
        if scaled == scaled.to_integral_value():
            return f"{int(scaled)}{suffix}"
    raise ValueError(f"{value!r} is finer than a nano-unit; no Quantity holds it exactly")


def rules_to_dict(rules: HpaScalingRules, *, tolerance: bool = True) -> dict[str, Any]:
    """``behavior.scaleUp`` / ``scaleDown`` as ``autoscaling/v2`` JSON.

    Empty ``policies`` are omitted (the API server fills in the defaults, which only matters
    with ``selectPolicy: Disabled``); ``tolerance`` appears only when set, and never with
    ``tolerance=False`` (for API servers older than the field, see :data:`SHIPPED_BEHAVIOR`).
    """
    out: dict[str, Any] = {"stabilizationWindowSeconds": rules.stabilization_window_s}
    if rules.policies:
        out["policies"] = [
            {"type": p.type, "value": p.value, "periodSeconds": p.period_s} for p in rules.policies
        ]
    out["selectPolicy"] = rules.select_policy
    if tolerance and rules.tolerance is not None:
        out["tolerance"] = quantity(rules.tolerance)
    return out


def behavior_to_dict(behavior: HpaBehavior, *, tolerance: bool = True) -> dict[str, Any]:
    """``spec.behavior`` as ``autoscaling/v2`` JSON, field names exactly as the API spells them;
    ``tolerance=False`` leaves out the per-direction tolerance (valid on every supported
    Kubernetes minor; the cluster-wide tolerance then applies)."""
    return {
        "scaleUp": rules_to_dict(behavior.scale_up, tolerance=tolerance),
        "scaleDown": rules_to_dict(behavior.scale_down, tolerance=tolerance),
    }

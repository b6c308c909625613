"""``hpa-queue``: a plain HPA on waiting requests per replica, as GKE's guidance recommends.

The policy itself computes nothing clever: it publishes the fleet's total waiting requests and lets
the (emulated) HPA divide by the ``AverageValue`` target. Keeping the arithmetic in the HPA, not
here, is the point: this baseline is what a team gets from the documented recipe, with the same
behaviour (stabilisation, rate policies, tolerance) that ``deploy/`` ships for every HPA policy.
"""

from __future__ import annotations

import math

from autoscaler.core.recommendation import Candidate, PublishedMetric, Recommendation, hold
from autoscaler.core.signals import SignalSnapshot
from autoscaler.hpa.behavior import SHIPPED_BEHAVIOR
from autoscaler.hpa.spec import ExternalMetricTarget, HpaSpec
from autoscaler.policies.base import Actuation, PolicyContext

METRIC_NAME = "num_requests_waiting"
"""The published series: vLLM's ``vllm:num_requests_waiting`` summed over the workload's pods."""

DEFAULT_TARGET = 3.0
"""GKE: "start with a queue size threshold of 3-5"; 3 is the low (latency-leaning) end."""


class HpaQueuePolicy:
    """HPA ``AverageValue`` on waiting (queued) requests per replica.

    Source: GKE best practices, "Autoscaling for LLM inference workloads with GPUs"
    (cloud.google.com/kubernetes-engine/docs/best-practices/machine-learning/inference/autoscaling):
    scale on the model server's queue size with an ``AverageValue`` target, start at 3-5; GPU
    utilisation and memory are not recommended because vLLM preallocates. HPA semantics from
    kubernetes/kubernetes ``pkg/controller/podautoscaler/replica_calculator.go``
    (``GetExternalPerPodMetricReplicas``): with an ``AverageValue`` target ``T`` the HPA wants
    ``ceil(total / T)`` replicas when ``total / (T * replicas)`` is outside the 0.1 tolerance.

    Setting: ``T``, waiting requests per replica (default 3; swept 1, 2, 3, 5, 8). The published
    value is the *total* over the workload, which is what an External metric with ``AverageValue``
    expects (the HPA divides by the replica count itself).

    GKE's example uses a ``Pods`` metric; we publish the same sum as an ``External`` metric,
    because our HPA emulation serves every policy through the External Metrics API. Both give
    ``ceil(total / T)``; the one difference is that for a ``Pods`` metric the HPA counts pods
    without a sample (still starting) as carrying 0 when it scales up, which damps scale-up
    while new replicas start (see ``docs/baselines.md``).
    """

    name: str = "hpa-queue"
    actuation: Actuation = "hpa"

    def __init__(self, ctx: PolicyContext, setting: float | None = None) -> None:
        self.ctx = ctx
        self.setting: float = DEFAULT_TARGET if setting is None else float(setting)

    def hpa_spec(self) -> HpaSpec:
        """One External metric with ``AverageValue`` = the setting, and the shipped behaviour."""
        return HpaSpec(
            metrics=(ExternalMetricTarget(METRIC_NAME, "AverageValue", self.setting),),
            behavior=SHIPPED_BEHAVIOR,
            min_replicas=self.ctx.min_replicas,
            max_replicas=self.ctx.max_replicas,
        )

    def recommend(self, snapshot: SignalSnapshot) -> Recommendation:
        """Publish total waiting requests; ``desired_replicas`` is what the HPA would compute.

        The HPA emulation decides the actual count (tolerance, stabilisation, rate policies); the
        desired count given here is only ``ceil(total / T)`` clamped to the bounds, for reports.
        """
        if snapshot.stale:
            return hold(snapshot.workload, snapshot.timestamp, "stale data: the HPA holds")
        if snapshot.waiting is None:
            return hold(
                snapshot.workload,
                snapshot.timestamp,
                "no waiting-requests gauge for this engine: nothing to publish, the HPA holds",
            )
        total = max(0.0, snapshot.waiting)
        raw = math.ceil(total / self.setting)
        desired = min(self.ctx.max_replicas, max(self.ctx.min_replicas, raw))
        candidate = Candidate(
            "queue",
            float(raw),
            f"{total:g} waiting / target {self.setting:g} per replica = {raw}",
        )
        return Recommendation(
            workload=snapshot.workload,
            timestamp=snapshot.timestamp,
            desired_replicas=desired,
            winner="queue",
            candidates=(candidate,),
            metrics=(PublishedMetric(METRIC_NAME, total),),
        )

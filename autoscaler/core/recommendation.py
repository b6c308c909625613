"""What a policy returns: desired replicas, the metrics it publishes, and why.

Every candidate keeps its reason so the recommendation can say which one won (DESIGN.md,
"Scaling policy"). ``desired_replicas is None`` means *hold*: the data was stale or missing and
the policy fails static (the APIs answer 503, the HPA keeps its count).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

TargetType = Literal["Value", "AverageValue"]


@dataclass(frozen=True, slots=True)
class Candidate:
    """One way of computing the replica need, e.g. ``forecast``, ``latency``, ``queue``, ``kv``."""

    reason: str
    replicas: float
    detail: str = ""


@dataclass(frozen=True, slots=True)
class PublishedMetric:
    """An external metric value as the External Metrics API / KEDA would serve it to an HPA."""

    name: str
    value: float


@dataclass(frozen=True, slots=True)
class Recommendation:
    """A policy's output for one workload at one tick."""

    workload: str
    timestamp: float
    desired_replicas: int | None
    winner: str
    candidates: tuple[Candidate, ...] = ()
    metrics: tuple[PublishedMetric, ...] = ()
    stale: bool = False
    fallbacks: tuple[str, ...] = ()
    """Engine fallbacks the policy used for signals the engine does not export."""

    @property
    def holds(self) -> bool:
        """True when the policy declined to act (fail static)."""
        return self.desired_replicas is None


def hold(workload: str, timestamp: float, why: str) -> Recommendation:
    """The fail-static answer: no desired count, no published metric, a reason."""
    return Recommendation(
        workload=workload,
        timestamp=timestamp,
        desired_replicas=None,
        winner="hold",
        candidates=(Candidate("hold", float("nan"), why),),
        metrics=(),
        stale=True,
    )

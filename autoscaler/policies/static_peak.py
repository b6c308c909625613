"""``static-peak``: no autoscaling, the fleet sized for the trace's peak all the time.

The reference point every autoscaler has to beat on GPU-hours (and should match on SLO
attainment): what a team runs when it provisions for the busiest minute and never scales.
"""

from __future__ import annotations

from autoscaler.core.recommendation import Candidate, Recommendation, hold
from autoscaler.core.signals import SignalSnapshot
from autoscaler.errors import InputError
from autoscaler.policies.base import Actuation, PolicyContext


class StaticPeakPolicy:
    """A constant replica count: ``ctx.peak_replicas`` (from the oracle), else ``max_replicas``.

    Source: none; this is the "provision for peak" practice (a Deployment with a fixed
    ``replicas``). No setting and no sweep: the count comes from the run (the oracle's replicas
    at the trace's busiest minute). ``setting`` is accepted for the common constructor shape and
    must be None.
    """

    name: str = "static-peak"
    actuation: Actuation = "native"

    def __init__(self, ctx: PolicyContext, setting: float | None = None) -> None:
        if setting is not None:
            raise InputError(f"static-peak takes no setting (got {setting:g})")
        self.ctx = ctx
        self.setting: float | None = None
        peak = ctx.peak_replicas if ctx.peak_replicas is not None else ctx.max_replicas
        self.replicas: int = min(ctx.max_replicas, max(ctx.min_replicas, peak))
        self._why = (
            f"peak replicas {ctx.peak_replicas}"
            if ctx.peak_replicas is not None
            else f"no peak given: max_replicas {ctx.max_replicas}"
        )

    def hpa_spec(self) -> None:
        """Native: a fixed ``spec.replicas``, no autoscaler object."""
        return None

    def recommend(self, snapshot: SignalSnapshot) -> Recommendation:
        """The same count on every tick; stale data holds like every other policy."""
        if snapshot.stale:
            return hold(snapshot.workload, snapshot.timestamp, "stale data: keep the count")
        return Recommendation(
            workload=snapshot.workload,
            timestamp=snapshot.timestamp,
            desired_replicas=self.replicas,
            winner="static-peak",
            candidates=(Candidate("static-peak", float(self.replicas), self._why),),
        )

"""``hpa-kv``: llm-d's Workload Variant Autoscaler (WVA) saturation scaling, behind an HPA.

WVA looks at each replica's KV-cache usage and queue length, keeps the replicas that are not
saturated, and asks whether their *average spare capacity* is still above a trigger. If not, it
adds one replica; if removing one replica would still leave enough spare capacity, it removes
one; otherwise it stays. It publishes that count as ``wva_desired_replicas`` and a
prometheus-adapter or KEDA rule passes it through to an HPA with ``AverageValue`` 1, so the HPA's
own behaviour still applies on top. We emulate exactly that chain.

Only one replica is added or removed per WVA cycle (60 s), and never while replicas are still
starting: WVA's "cascade scaling prevention", because a new 70B replica takes minutes to report
metrics and the saturation it was added for would otherwise trigger another scale-up.

The HPA (or KEDA) is meant as a pass-through of WVA's count, so its tolerance is 0
in both directions (``behavior.scale{Up,Down}.tolerance``, gate ``HPAConfigurableTolerance``).
With the cluster default of 10 % an ``AverageValue`` 1 target ignores ``n + 1`` against ``n``
whenever ``n >= 10`` (22 / 21 = 1.048): WVA's one-replica steps would never reach the
Deployment, and a fleet of ten or more replicas would never scale up however long its queue.
"""

from __future__ import annotations

from dataclasses import dataclass

from autoscaler.core.recommendation import Candidate, PublishedMetric, Recommendation, hold
from autoscaler.core.signals import SignalSnapshot
from autoscaler.hpa.behavior import SHIPPED_BEHAVIOR
from autoscaler.hpa.spec import ExternalMetricTarget, HpaSpec
from autoscaler.policies.base import Actuation, PolicyContext

METRIC_NAME = "wva_desired_replicas"
"""What WVA emits; the HPA reads it with ``AverageValue`` 1 (pass-through)."""

DEFAULT_KV_CACHE_THRESHOLD = 0.80
QUEUE_LENGTH_THRESHOLD = 5.0
KV_SPARE_TRIGGER = 0.10
QUEUE_SPARE_TRIGGER = 3.0
RECONCILE_INTERVAL_S = 60.0
"""WVA's optimisation loop interval (``GLOBAL_OPT_INTERVAL``, "typically every 60s")."""

PASS_THROUGH_BEHAVIOR = SHIPPED_BEHAVIOR
"""WVA's count passes straight through: the shipped behaviour has tolerance 0 both ways."""


@dataclass(frozen=True, slots=True)
class SaturationAnalysis:
    """The outcome of WVA's spare-capacity model over the replicas that report metrics."""

    replicas: int
    non_saturated: int
    avg_spare_kv: float
    avg_spare_queue: float
    scale_up: bool
    scale_down_safe: bool
    reason: str


def analyze_saturation(
    kv: tuple[float, ...],
    queue: tuple[float, ...],
    kv_threshold: float,
    queue_threshold: float = QUEUE_LENGTH_THRESHOLD,
    kv_trigger: float = KV_SPARE_TRIGGER,
    queue_trigger: float = QUEUE_SPARE_TRIGGER,
) -> SaturationAnalysis:
    """WVA's saturation analysis over per-replica KV usage (0..1) and queue lengths.

    A replica is non-saturated when ``kv < kv_threshold and queue < queue_threshold``. Spare
    capacity is averaged over non-saturated replicas only. Scale up when either average spare is
    below its trigger (or when every replica is saturated). Scale down is safe when, with the
    non-saturated replicas' total load spread over one replica fewer, both spares stay at or above
    their triggers and at least two non-saturated replicas exist.
    """
    pairs = [
        (k, q) for k, q in zip(kv, queue, strict=True) if k < kv_threshold and q < queue_threshold
    ]
    n = len(pairs)
    if n == 0:
        return SaturationAnalysis(
            replicas=len(kv),
            non_saturated=0,
            avg_spare_kv=0.0,
            avg_spare_queue=0.0,
            scale_up=True,
            scale_down_safe=False,
            reason="every replica is saturated",
        )
    total_kv = sum(k for k, _ in pairs)
    total_queue = sum(q for _, q in pairs)
    spare_kv = kv_threshold - total_kv / n
    spare_queue = queue_threshold - total_queue / n
    scale_up = spare_kv < kv_trigger or spare_queue < queue_trigger
    if scale_up:
        reason = f"{'KV' if spare_kv < kv_trigger else 'queue'} spare capacity low"
    else:
        reason = "spare capacity above triggers"
    safe = False
    if n >= 2:
        after_kv = kv_threshold - total_kv / (n - 1)
        after_queue = queue_threshold - total_queue / (n - 1)
        safe = after_kv >= kv_trigger and after_queue >= queue_trigger
    return SaturationAnalysis(
        replicas=len(kv),
        non_saturated=n,
        avg_spare_kv=spare_kv,
        avg_spare_queue=spare_queue,
        scale_up=scale_up,
        scale_down_safe=safe and not scale_up,
        reason=reason,
    )


class HpaKvPolicy:
    """KV-cache and queue saturation scaling as llm-d's WVA does it, served to an HPA.

    Source: llm-d/llm-d-workload-variant-autoscaler ``docs/saturation-analyzer.md`` and
    ``docs/saturation-scaling-config.md`` (ConfigMap ``capacity-scaling-config``:
    kvCacheThreshold 0.80, queueLengthThreshold 5, kvSpareTrigger 0.10, queueSpareTrigger 3),
    code in ``internal/saturation/analyzer.go``; metric pass-through in
    ``docs/integrations/hpa-integration.md``.

    Setting: ``kvCacheThreshold`` (default 0.80; swept 0.6, 0.7, 0.8, 0.9), the KV usage at which
    a replica counts as saturated. Must stay above kvSpareTrigger (WVA validates the same).

    Targets (as WVA's ``CalculateCapacityTargets`` with one variant): scale-up -> ready + 1, but
    not while replicas are pending or starting; safe scale-down -> ready - 1; otherwise keep the
    current count. Recomputed every 60 s; the last value stays published in between, as a
    Prometheus gauge would.
    """

    name: str = "hpa-kv"
    actuation: Actuation = "hpa"

    def __init__(self, ctx: PolicyContext, setting: float | None = None) -> None:
        self.ctx = ctx
        self.setting: float = DEFAULT_KV_CACHE_THRESHOLD if setting is None else float(setting)
        self._last_cycle_ts: float | None = None
        self._last: Recommendation | None = None

    def hpa_spec(self) -> HpaSpec:
        """``wva_desired_replicas`` with ``AverageValue`` 1: the HPA wants exactly that count.

        Tolerance 0 (see :data:`PASS_THROUGH_BEHAVIOR`): with the default 0.1 the HPA reads
        ``(ready + 1) / ready`` as within tolerance from ten replicas on and never scales.
        """
        return HpaSpec(
            metrics=(ExternalMetricTarget(METRIC_NAME, "AverageValue", 1.0),),
            behavior=PASS_THROUGH_BEHAVIOR,
            min_replicas=self.ctx.min_replicas,
            max_replicas=self.ctx.max_replicas,
        )

    def recommend(self, snapshot: SignalSnapshot) -> Recommendation:
        """Run a WVA cycle every 60 s; in between, republish the last cycle's value."""
        if snapshot.stale:
            return hold(snapshot.workload, snapshot.timestamp, "stale data: the HPA holds")
        due = (
            self._last is None
            or self._last_cycle_ts is None
            or snapshot.timestamp - self._last_cycle_ts >= RECONCILE_INTERVAL_S - 1e-9
        )
        if not due and self._last is not None:
            return Recommendation(
                workload=snapshot.workload,
                timestamp=snapshot.timestamp,
                desired_replicas=self._last.desired_replicas,
                winner=self._last.winner,
                candidates=self._last.candidates,
                metrics=self._last.metrics,
            )
        rec = self._cycle(snapshot)
        if not rec.holds:
            self._last = rec
            self._last_cycle_ts = snapshot.timestamp
        return rec

    def _per_replica(
        self, snapshot: SignalSnapshot
    ) -> tuple[tuple[float, ...], tuple[float, ...], str] | None:
        """Per-replica (KV, queue) as ``sum by (pod)`` gives them, else the fleet means."""
        kv = snapshot.per_replica_kv_usage
        queue = snapshot.per_replica_waiting
        if kv and len(kv) == len(queue):
            return kv, queue, "per-replica gauges"
        ready = snapshot.replicas.ready
        if snapshot.kv_usage is None or snapshot.waiting is None or ready <= 0:
            return None
        mean_queue = snapshot.waiting / ready
        return (
            (snapshot.kv_usage,) * ready,
            (mean_queue,) * ready,
            "fallback: fleet means spread evenly over ready replicas",
        )

    def _cycle(self, snapshot: SignalSnapshot) -> Recommendation:
        data = self._per_replica(snapshot)
        if data is None:
            return hold(
                snapshot.workload,
                snapshot.timestamp,
                "no KV-cache usage or queue length for ready replicas: nothing to publish",
            )
        kv, queue, source = data
        analysis = analyze_saturation(kv, queue, self.setting)
        counts = snapshot.replicas
        ready = analysis.replicas
        in_flight = max(counts.pending + counts.starting, counts.spec - counts.ready, 0)
        keep = max(counts.spec, ready)
        if analysis.scale_up and in_flight > 0:
            target, winner = keep, "pending-guard"
            why = f"{analysis.reason}; {in_flight} replica(s) pending/starting: scale-up skipped"
        elif analysis.scale_up:
            target, winner = ready + 1, "saturation-up"
            why = f"{analysis.reason}: ready {ready} + 1"
        elif analysis.scale_down_safe:
            target, winner = ready - 1, "saturation-down"
            why = f"{analysis.reason}; one replica fewer keeps spare above triggers: ready - 1"
        else:
            target, winner = keep, "saturation-hold"
            why = f"{analysis.reason}: no capacity action"
        desired = min(self.ctx.max_replicas, max(self.ctx.min_replicas, target))
        spare = (
            f"avg spare KV {analysis.avg_spare_kv:.3f} (trigger {KV_SPARE_TRIGGER:g}, threshold "
            f"{self.setting:g}), avg spare queue {analysis.avg_spare_queue:.2f} (trigger "
            f"{QUEUE_SPARE_TRIGGER:g}, threshold {QUEUE_LENGTH_THRESHOLD:g}) over "
            f"{analysis.non_saturated}/{ready} non-saturated replicas"
        )
        candidates = (Candidate(winner, float(target), f"{why}; {spare}; {source}"),)
        return Recommendation(
            workload=snapshot.workload,
            timestamp=snapshot.timestamp,
            desired_replicas=desired,
            winner=winner,
            candidates=candidates,
            metrics=(PublishedMetric(METRIC_NAME, float(desired)),),
        )

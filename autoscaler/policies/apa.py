"""``apa``: AIBrix's Advanced Pod Autoscaler on vLLM's KV-cache usage.

APA is proportional control with a dead band: ``ceil(N * current / target)`` when the per-pod
metric leaves ``[1 - 0.1, 1 + 0.1] x target``, at most doubling or halving per step, and with a
300 s cooldown on scale-down. AIBrix scrapes the pods itself and acts on the Deployment, so this
is a native policy. The metric and target follow AIBrix's own APA sample
(``kv_cache_usage_perc`` at 0.5): KV usage is what an LLM server fills as load grows, unlike GPU
utilisation, which vLLM keeps high regardless.
"""

from __future__ import annotations

import math
from collections import deque

from autoscaler.core.recommendation import Candidate, Recommendation, hold
from autoscaler.core.signals import SignalSnapshot
from autoscaler.policies.base import Actuation, PolicyContext

DEFAULT_TARGET = 0.5
"""``targetValue`` of ``kv_cache_usage_perc`` in ``samples/autoscaling/apa.yaml``."""

OBSERVE_WINDOW_S = 180.0
"""``observeWindowSeconds`` default (``DefaultStableWindowDuration``): the metric is averaged
over it; the sample overrides it to 30 s with ``apa.autoscaling.aibrix.ai/window``."""
UP_TOLERANCE = 0.1
DOWN_TOLERANCE = 0.1
MAX_SCALE_UP_RATE = 2.0
MAX_SCALE_DOWN_RATE = 2.0
SCALE_UP_COOLDOWN_S = 0.0
SCALE_DOWN_COOLDOWN_S = 300.0


class ApaPolicy:
    """AIBrix APA on mean KV-cache usage per ready replica.

    Source: vllm-project/aibrix ``pkg/controller/podautoscaler/algorithm/apa.go``
    (``computeTargetReplicas``), defaults in ``pkg/controller/podautoscaler/context/context.go``
    (``NewBaseScalingContext``: max scale-up/down rate 2, up/down fluctuation tolerance 0.1,
    cooldown up 0 s / down 300 s), pending-replica guard in
    ``pkg/controller/podautoscaler/autoscaler.go`` (``applyPendingReplicaGuard``), cooldown in
    ``podautoscaler_controller.go`` (``stabilizeRecommendation``); metric and target from
    ``samples/autoscaling/apa.yaml``.

    Setting: the target KV-cache usage per replica, 0..1 (default 0.5; swept 0.3 .. 0.8).

    Per tick, with ``N`` the Deployment's replicas and ``u`` the windowed mean KV usage:
    ratio ``u / target`` above ``1 + 0.1`` -> ``min(ceil(N * ratio), ceil(2 N))``; below
    ``1 - 0.1`` -> ``max(ceil(N * ratio), floor(N / 2))``; else ``N``. While replicas are still
    starting, a scale-up counts them as carrying no load and a scale-down as carrying the target
    (AIBrix's pending-replica guard). A scale-down then goes no lower than the highest
    recommendation of the last 300 s.
    """

    name: str = "apa"
    actuation: Actuation = "native"

    def __init__(self, ctx: PolicyContext, setting: float | None = None) -> None:
        self.ctx = ctx
        self.setting: float = DEFAULT_TARGET if setting is None else float(setting)
        self._samples: deque[tuple[float, float]] = deque()
        self._recommendations: deque[tuple[float, int]] = deque()

    def hpa_spec(self) -> None:
        """Native: AIBrix's controller sets the Deployment's scale itself."""
        return None

    def recommend(self, snapshot: SignalSnapshot) -> Recommendation:
        """One APA reconcile on this tick's KV-usage sample."""
        if snapshot.stale:
            return hold(snapshot.workload, snapshot.timestamp, "stale data: keep the count")
        if snapshot.kv_usage is None:
            return hold(
                snapshot.workload,
                snapshot.timestamp,
                "no KV-cache usage gauge: APA's metric fetch fails, no scaling",
            )
        now = snapshot.timestamp
        self._samples.append((now, snapshot.kv_usage))
        while self._samples and self._samples[0][0] <= now - OBSERVE_WINDOW_S:
            self._samples.popleft()
        usage = sum(v for _, v in self._samples) / len(self._samples)

        counts = snapshot.replicas
        current = counts.spec
        if current <= 0:
            desired = min(self.ctx.max_replicas, self.ctx.min_replicas)
            return Recommendation(
                workload=snapshot.workload,
                timestamp=now,
                desired_replicas=desired,
                winner="boundary-check",
                candidates=(Candidate("boundary-check", float(desired), "0 replicas: to min"),),
            )

        ratio = usage / self.setting
        if ratio > 1.0 + UP_TOLERANCE:
            proposed = min(math.ceil(current * ratio), math.ceil(MAX_SCALE_UP_RATE * current))
            apa = Candidate(
                "apa",
                float(proposed),
                f"KV {usage:.3f} / target {self.setting:g} = {ratio:.2f} > {1 + UP_TOLERANCE:g}: "
                f"ceil({current} x {ratio:.2f}), at most x{MAX_SCALE_UP_RATE:g}",
            )
        elif ratio < 1.0 - DOWN_TOLERANCE:
            proposed = max(math.ceil(current * ratio), math.floor(current / MAX_SCALE_DOWN_RATE))
            apa = Candidate(
                "apa",
                float(proposed),
                f"KV {usage:.3f} / target {self.setting:g} = {ratio:.2f} < {1 - DOWN_TOLERANCE:g}: "
                f"ceil({current} x {ratio:.2f}), at least /{MAX_SCALE_DOWN_RATE:g}",
            )
        else:
            proposed = current
            apa = Candidate(
                "apa",
                float(current),
                f"KV {usage:.3f} / target {self.setting:g} = {ratio:.2f} within tolerance",
            )
        candidates = [apa]
        winner = "apa"

        ready = min(max(counts.ready, 0), current)
        unready = current - ready
        if unready > 0 and counts.pending + counts.starting > 0 and proposed != current:
            if proposed > current:
                guarded = math.ceil(ready * usage / self.setting)
                guarded = min(max(guarded, current), proposed)
                why = f"{unready} starting replica(s) counted as carrying no load"
            else:
                guarded = math.ceil((usage * ready + self.setting * unready) / self.setting)
                guarded = max(min(guarded, current), proposed)
                why = f"{unready} starting replica(s) counted at the target"
            if guarded != proposed:
                proposed = guarded
                winner = "pending-guard"
                candidates.append(Candidate(winner, float(guarded), why))

        stabilized = self._stabilize(now, proposed, current)
        if stabilized != proposed:
            winner = "scale-down-cooldown"
            candidates.append(
                Candidate(
                    winner,
                    float(stabilized),
                    f"highest recommendation of the last {SCALE_DOWN_COOLDOWN_S:g} s",
                )
            )
        desired = min(self.ctx.max_replicas, max(self.ctx.min_replicas, stabilized))
        return Recommendation(
            workload=snapshot.workload,
            timestamp=now,
            desired_replicas=desired,
            winner=winner,
            candidates=tuple(candidates),
        )

    def _stabilize(self, now: float, recommendation: int, current: int) -> int:
        """Cooldown windows: scale-up within 0 s (immediate), scale-down within 300 s.

        AIBrix keeps a history of recommendations and picks from the window of the direction it
        moves in. Its controller comments say the cooldown "prevents rapid scale-downs", i.e.
        HPA's stabilisation: a scale-down goes only as low as the *highest* recommendation seen
        in the window. (The controller code at the time of writing selects the lowest, which
        would make the down cooldown a no-op; we emulate the documented intent, see
        docs/baselines.md.)
        """
        self._recommendations.append((now, recommendation))
        horizon = max(SCALE_UP_COOLDOWN_S, SCALE_DOWN_COOLDOWN_S)
        while self._recommendations and self._recommendations[0][0] <= now - horizon:
            self._recommendations.popleft()
        if recommendation > current:
            window = [r for t, r in self._recommendations if t > now - SCALE_UP_COOLDOWN_S]
            return max(window, default=recommendation)
        if recommendation < current:
            window = [r for t, r in self._recommendations if t > now - SCALE_DOWN_COOLDOWN_S]
            return min(current, max(window, default=recommendation))
        return current

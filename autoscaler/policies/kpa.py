"""``kpa``: the Knative Pod Autoscaler's stable/panic algorithm on in-flight requests.

Knative scales on concurrency: requests in flight per pod, averaged over a 60 s *stable* window,
and over a short *panic* window to react to bursts. When the panic window wants at least twice the
ready pods, the autoscaler panics: it takes the larger of the two answers and refuses to scale
down until a whole stable window has passed without crossing the threshold again. It acts on the
Deployment itself (no HPA), with its own rate limits.

For an LLM replica "in flight" is what the engine holds, running plus waiting, the quantity
Knative's queue-proxy would count for the pod. Knative's default target (100 per pod, tuned for
web requests) means nothing for a batched GPU server, so the per-replica target is the swept
setting.
"""

from __future__ import annotations

import math
from collections import deque

from autoscaler.core.recommendation import Candidate, Recommendation, hold
from autoscaler.core.signals import SignalSnapshot
from autoscaler.policies.base import Actuation, PolicyContext

DEFAULT_CONCURRENCY_TARGET = 32.0
"""Per-replica concurrency target (``container-concurrency-target-default`` in Knative, 100)."""

STABLE_WINDOW_S = 60.0
PANIC_WINDOW_S = 6.0
"""``panic-window-percentage`` 10 % of the stable window. With 15 s ticks it holds only the
latest sample, so panic reacts to the newest scrape alone."""
PANIC_THRESHOLD = 2.0
"""``panic-threshold-percentage`` 200 %: panic when the panic window wants 2x the ready pods."""
TARGET_UTILIZATION = 0.70
"""``container-concurrency-target-percentage`` 70 %: the effective target is 0.7 x the setting."""
MAX_SCALE_UP_RATE = 1000.0
MAX_SCALE_DOWN_RATE = 2.0


class KpaPolicy:
    """Knative KPA (stable 60 s / panic 6 s windows) on running + waiting requests.

    Source: knative/serving ``pkg/autoscaler/scaling/autoscaler.go`` (``Scale``), defaults from
    ``config/core/configmaps/autoscaler.yaml`` and ``pkg/autoscaler/config/config.go``: stable
    window 60 s, panic window 10 % (6 s), panic threshold 200 %, target utilisation 70 %, max
    scale-up rate 1000, max scale-down rate 2, scale-down delay 0; scale to zero disabled here
    (the run's ``min_replicas`` is the floor).

    Setting: the per-replica concurrency target (default 32; swept 8, 16, 32, 64, 128). The
    effective target is 70 % of it, as in Knative.

    Per tick: ``dspc = ceil(stable / target)``, ``dppc = ceil(panic / target)``, each kept within
    ``[floor(ready / 2), ceil(1000 * ready)]``; panic starts when ``dppc / ready >= 2``, is
    extended every tick it holds, and ends once a full stable window has passed since it last
    held. In panic the count only rises (``max(dspc, dppc)``, never below the panic maximum).
    Like a freshly started Knative autoscaler, we start in panic when more than one replica is
    ready, so a restart (or the run's start) does not scale down on an empty history.
    """

    name: str = "kpa"
    actuation: Actuation = "native"

    def __init__(self, ctx: PolicyContext, setting: float | None = None) -> None:
        self.ctx = ctx
        self.setting: float = DEFAULT_CONCURRENCY_TARGET if setting is None else float(setting)
        self.target: float = self.setting * TARGET_UTILIZATION
        self._samples: deque[tuple[float, float]] = deque()
        self._started = False
        self._panic_time: float | None = None
        self._max_panic_pods = 0

    def hpa_spec(self) -> None:
        """Native: Knative drives the Deployment's scale itself."""
        return None

    @property
    def in_panic(self) -> bool:
        """Whether the last tick left the autoscaler in panic mode."""
        return self._panic_time is not None

    def recommend(self, snapshot: SignalSnapshot) -> Recommendation:
        """One Knative ``Scale`` call on this tick's concurrency sample."""
        if snapshot.stale:
            return hold(snapshot.workload, snapshot.timestamp, "stale data: keep the count")
        if snapshot.running is None and snapshot.waiting is None:
            return hold(
                snapshot.workload,
                snapshot.timestamp,
                "no running/waiting gauges: no concurrency to scale on",
            )
        now = snapshot.timestamp
        ready_pods = snapshot.replicas.ready
        if not self._started:
            self._started = True
            if ready_pods > 1:
                self._panic_time = now
                self._max_panic_pods = ready_pods
        concurrency = max(0.0, (snapshot.running or 0.0) + (snapshot.waiting or 0.0))
        self._samples.append((now, concurrency))
        while self._samples and self._samples[0][0] <= now - STABLE_WINDOW_S:
            self._samples.popleft()
        stable = _window_mean(self._samples, now - STABLE_WINDOW_S)
        panic = _window_mean(self._samples, now - PANIC_WINDOW_S)

        ready = float(max(1, ready_pods))
        max_up = math.ceil(MAX_SCALE_UP_RATE * ready)
        max_down = math.floor(ready / MAX_SCALE_DOWN_RATE)
        dspc = math.ceil(stable / self.target)
        dppc = math.ceil(panic / self.target)
        desired_stable = int(min(max(dspc, max_down), max_up))
        desired_panic = int(min(max(dppc, max_down), max_up))

        over = dppc / ready >= PANIC_THRESHOLD
        if over:
            self._panic_time = now
        elif self._panic_time is not None and self._panic_time + STABLE_WINDOW_S < now:
            self._panic_time = None
            self._max_panic_pods = 0

        desired = desired_stable
        winner = "stable"
        held: Candidate | None = None
        if self._panic_time is not None:
            desired = max(desired_stable, desired_panic)
            winner = "panic" if desired_panic >= desired_stable else "stable"
            if desired > self._max_panic_pods:
                self._max_panic_pods = desired
            elif desired < self._max_panic_pods:
                winner = "panic-no-scale-down"
                held = Candidate(
                    winner,
                    float(self._max_panic_pods),
                    f"in panic: no scale-down below the panic maximum {self._max_panic_pods}",
                )
            desired = self._max_panic_pods
        clamped = min(self.ctx.max_replicas, max(self.ctx.min_replicas, desired))
        mode = "panic" if self._panic_time is not None else "stable"
        candidates = (
            Candidate(
                "stable",
                float(desired_stable),
                f"{mode} mode; concurrency {stable:.1f} over {STABLE_WINDOW_S:g} s / target "
                f"{self.target:g} = {dspc}, kept in [{max_down}, {max_up}]",
            ),
            Candidate(
                "panic",
                float(desired_panic),
                f"concurrency {panic:.1f} over {PANIC_WINDOW_S:g} s (latest sample) / target "
                f"{self.target:g} = {dppc}; {dppc / ready:.2f}x ready "
                f"({'over' if over else 'under'} {PANIC_THRESHOLD:g}x)",
            ),
        ) + ((held,) if held is not None else ())
        return Recommendation(
            workload=snapshot.workload,
            timestamp=snapshot.timestamp,
            desired_replicas=clamped,
            winner=winner,
            candidates=candidates,
        )


def _window_mean(samples: deque[tuple[float, float]], after: float) -> float:
    """Mean of the samples newer than ``after``; the newest one if the window holds none.

    Knative averages per-second buckets over the window; with one scrape per tick the samples in
    the window are the buckets we have. A panic window shorter than the tick still holds the
    latest sample, as the newest bucket would.
    """
    values = [v for t, v in samples if t > after]
    if not values:
        values = [samples[-1][1]]
    return sum(values) / len(values)

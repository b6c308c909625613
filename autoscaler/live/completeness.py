"""Is a workload's rate window covered by data? Fail static until it is.

Freshness (the newest sample's age, :mod:`autoscaler.live.collection`) is not enough. After a
Prometheus outage, or a target whose scrapes failed, ``rate(x[w])`` is computed from the few
samples since data came back: a fleet serving 5.7 req/s read 0.34 req/s for a minute after a
gap, and the policy published scale-downs from it. A rate is whole only once a full window
(plus one scrape interval, so the window's first sample is in) has passed with data flowing.

:class:`WindowCoverage` follows, per workload, since when the data has been continuously fresh:
a stale tick, a silence longer than ``max_gap_s`` between fresh ticks, or a change in the number
of pods reporting (a target that came back has a partial window; targets that vanish leave
``rate()`` summing series that are going stale — in a live test a fleet whose scrapes all
failed still read a lower demand for three seconds before it went stale) starts the clock
again.
:func:`raise_to_floor` is how a guard keeps a recommendation from going below a floor; the loop
uses it so that, while the window is not covered, nothing lower than what was already published
(or than the current replica count) is published. Scaling up stays allowed: missing data only
biases demand down.

Pure state and decisions, no I/O: the loop feeds it the ticks (and the start-up backfill's
history, so a restart with Prometheus' history intact is complete at once).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from autoscaler.core.recommendation import Candidate, PublishedMetric, Recommendation

__all__ = ["WindowCoverage", "default_coverage", "raise_to_floor"]


@dataclass
class WindowCoverage:
    """Per workload: how many seconds of uninterrupted fresh data lie behind ``now``."""

    required_s: float
    """The span a rate needs to be whole: the rate window plus one scrape interval."""
    max_gap_s: float
    """Two fresh observations further apart than this have a hole between them."""
    _run_start: dict[str, float] = field(default_factory=dict)
    _last_fresh: dict[str, float] = field(default_factory=dict)
    _pods: dict[str, int] = field(default_factory=dict)

    def observe(self, key: str, now: float, *, fresh: bool, pods: int) -> None:
        """Record one tick of ``key``: whether its data was fresh and how many pods reported."""
        if not fresh:
            self._run_start.pop(key, None)
            self._last_fresh.pop(key, None)
            return
        last = self._last_fresh.get(key)
        pods_changed = pods != self._pods.get(key, pods)
        if last is None or now - last > self.max_gap_s or now < last or pods_changed:
            self._run_start[key] = now
        self._last_fresh[key] = now
        self._pods[key] = pods

    def covered_s(self, key: str, now: float) -> float:
        """Seconds of complete data behind ``now`` (0 when the data is not flowing)."""
        start = self._run_start.get(key)
        return 0.0 if start is None else max(0.0, now - start)

    def complete(self, key: str, now: float) -> bool:
        """True when a whole rate window of uninterrupted data lies behind ``now``."""
        return self.covered_s(key, now) >= self.required_s


def raise_to_floor(
    rec: Recommendation, floor: int, *, winner: str, why: str, metric: str
) -> Recommendation:
    """``rec`` with its desired count (and the published ``metric``) raised to ``floor``.

    A hold, or a recommendation already at or above ``floor``, is returned unchanged. The guard
    that raised it becomes the winner, and its reason joins the candidates so ``/v1`` says why.
    """
    if rec.desired_replicas is None or rec.desired_replicas >= floor:
        return rec
    return replace(
        rec,
        desired_replicas=floor,
        winner=winner,
        candidates=(*rec.candidates, Candidate(winner, float(floor), why)),
        metrics=tuple(
            PublishedMetric(m.name, float(floor)) if m.name == metric else m for m in rec.metrics
        ),
    )


def default_coverage(
    rate_window_s: float, scrape_interval_s: float, tick_s: float
) -> WindowCoverage:
    """The coverage a ``serve`` loop keeps: a window plus a scrape; a gap is two missed ticks."""
    return WindowCoverage(
        required_s=rate_window_s + scrape_interval_s,
        max_gap_s=2.0 * tick_s + scrape_interval_s,
    )

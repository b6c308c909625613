"""The forecast band of the ``forecast`` policy: how far above its point forecast demand came."""

from __future__ import annotations

import math
from collections import deque

import numpy as np


def band_quantile_for(attainment_target: float) -> float:
    """The forecast band's quantile for an SLO-attainment target: ``1 - 2**-nines``, where
    ``nines = -log10(1 - target)`` (0.99 -> 0.75), within [0.5, 0.99] (see ForecastPolicy)."""
    miss = min(max(1.0 - attainment_target, 1e-9), 0.1)
    nines = -math.log10(miss)
    return float(min(0.99, max(0.5, 1.0 - 2.0**-nines)))


class RelativeBand:
    """How far above its point forecast demand turned out, at the lead time: the band's width.

    Every tick's point forecast for ``horizon`` ticks ahead is kept until that tick arrives and
    then scored as ``actual / forecast``; the band is the ``q`` quantile of the last ``window``
    ratios (split-conformal prediction on relative errors). Relative, so it follows the level at
    once (a fleet ten times larger has the same band); an empirical quantile, so a transient
    moves it by one sample's rank, not by its size; and it measures the whole forecast as the
    policy uses it, whichever forecaster made it. Until ``min_scored`` ratios exist the ``prior``
    holds: the first forecasts of a workload are scored against a history that barely started.

    A forecast is scored against what the fleet held when it was made, not the point alone: the
    larger of the point and the highest demand of the last ``hold_ticks`` ticks. The HPA keeps
    the highest recommendation of its scale-down window (5 minutes, 20 ticks, shipped), so
    demand that returns within the window to a level seen in it finds the fleet still sized for
    it. A shortfall against the point alone would widen the band for a burst the hold already
    covers, and the band would then be applied on top of the hold. Bursts every few minutes
    made that the largest cost measured: 3.6x the fleet oracle's GPU-hours on the RAG family, 2.7x
    with the held level, at the same SLO. ``hold_ticks`` 0 scores the point alone.
    """

    def __init__(
        self, window: int = 240, min_scored: int = 4, prior: float = 1.1, hold_ticks: int = 0
    ) -> None:
        self.window = window
        self.min_scored = min_scored
        self.prior = prior
        self.hold_ticks = hold_ticks
        self._tick = 0
        self._pending: deque[tuple[int, float]] = deque()
        self._log_ratios: deque[float] = deque(maxlen=window)
        self._recent: deque[float] = deque(maxlen=max(1, hold_ticks))

    @property
    def scored(self) -> int:
        return len(self._log_ratios)

    def observe(self, actual: float, censored: bool = False) -> None:
        """Advance one tick and score the forecasts made for it against ``actual``. A
        ``censored`` actual (demand measured under overload, when completions saturate and the
        estimate leans on queue growth) scores nothing."""
        self._tick += 1
        while self._pending and self._pending[0][0] <= self._tick:
            due, point = self._pending.popleft()
            if due == self._tick and point > 0 and actual > 0 and not censored:
                self._log_ratios.append(math.log(actual / point))
        if self.hold_ticks and actual > 0 and math.isfinite(actual):
            self._recent.append(actual)

    def forecast(self, horizon: int, point: float, censored: bool = False) -> None:
        """Remember the point forecast made now for ``horizon`` ticks ahead. Forecasts made from
        a history shorter than their horizon are not scored: they extrapolate from a start-up,
        and would hold the band wide for a whole window afterwards."""
        if self._tick < horizon or censored:
            return
        due = self._tick + max(1, horizon)
        if self._pending and self._pending[-1][0] > due:
            return  # the lead shrank: keep the queue ordered, skip this one
        held = max(self._recent) if self.hold_ticks and self._recent else 0.0
        self._pending.append((due, max(point, held)))

    def factor(self, q: float) -> float:
        """Upper band as a multiple of the point forecast."""
        if len(self._log_ratios) < self.min_scored:
            return self.prior
        return math.exp(float(np.quantile(np.fromiter(self._log_ratios, float), q)))

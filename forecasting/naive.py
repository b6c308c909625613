"""The reference forecasters: last value (naive) and seasonal naive, with empirical bands.

Both are the yardsticks of the backtest (MASE scales by the seasonal-naive error; weighted
quantile loss is reported relative to them), so they are deliberately simple and exact:
``fit(y[:k]).update(y[k:])`` predicts exactly what ``fit(y)`` predicts.
"""

from __future__ import annotations

from collections import deque

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from forecasting.base import FloatArray, Forecaster


class LastValue(Forecaster):
    """Naive forecast: the last observed value, banded by past ``h``-step changes.

    The quantile ``q`` at step ``h`` is ``y_t + Q_q(y_{i} - y_{i-h})`` over the last ``window``
    finite points: the empirical distribution of how much the series moved in ``h`` steps.
    Steps longer than the history reuse the longest step seen.

    * ``update``: O(1) per point (appends to a bounded deque); gaps are dropped, so a step means
      "one observed point" here.
    * ``predict``: O(horizon x window) in one vectorised quantile call.
    """

    def __init__(self, window: int = 500) -> None:
        self.window = window

    def _reset(self) -> None:
        self.values_: deque[float] = deque(maxlen=max(2, int(self.window)))

    def _update(self, y: FloatArray) -> None:
        self.values_.extend(y[~np.isnan(y)].tolist())

    def _change_quantiles(self, horizon: int, quantiles: FloatArray) -> FloatArray:
        """``(horizon, len(quantiles))`` quantiles of the h-step changes, h = 1..horizon."""
        v = np.fromiter(self.values_, dtype=np.float64, count=len(self.values_))
        out = np.zeros((horizon, quantiles.size))
        top = min(horizon, v.size - 1)
        if top < 1:
            return out
        length = v.size - top  # the same number of changes for every step, for one call
        windows = sliding_window_view(v, length)  # (top + 1, length); row j starts at j
        changes = windows[top] - windows[top - 1 :: -1][:top]  # row h-1: h-step changes
        out[:top] = np.quantile(changes, quantiles, axis=1).T
        out[top:] = out[top - 1]
        return out

    def _predict(self, horizon: int, quantiles: FloatArray) -> FloatArray:
        return self.values_[-1] + self._change_quantiles(horizon, quantiles)

    def _point_path(self, horizon: int) -> FloatArray:
        """The value it repeats (the band's median adds the median change)."""
        return np.full(horizon, self.values_[-1])

    def _point_step(self, step: int) -> float:
        return float(self.values_[-1])


class SeasonalNaive(Forecaster):
    """Seasonal naive: the value one season ago, banded by the seasonal differences.

    Step ``h`` forecasts ``y_{t+h-kS}`` (``k`` the smallest whole number of seasons that reaches
    back into the past) plus the empirical quantiles of ``y_i - y_{i-S}`` over the last ``window``
    pairs where both points were observed. With fewer than ``season_length`` points seen (or no
    season at all), it is ``LastValue``; while fewer than ``MIN_RESIDUALS`` seasonal differences
    exist, the band comes from the naive ``h``-step changes. Steps beyond one season reuse the
    one-season band (an approximation: the true error grows with ``k``).

    Gaps keep their place: the season is counted in steps, observed or not. A gap at the base
    point ``t+h-kS`` falls back to the last observed value.

    * ``update``: O(1) per point (a numpy ring of one season, a deque of differences).
    * ``predict``: O(horizon + window).
    """

    MIN_RESIDUALS = 10

    def __init__(self, season_length: int | None = 144, window: int = 500) -> None:
        self.season_length = season_length
        self.window = window

    def _reset(self) -> None:
        self.naive_ = LastValue(window=self.window)
        self.naive_.fit([])
        season = int(self.season_length or 0)
        self.season_ = season
        self.ring_ = np.full(max(season, 1), np.nan)  # ring_[i % S] holds y_i
        self.t_ = 0  # points seen, gaps included: the phase of the next point
        self.residuals_: deque[float] = deque(maxlen=max(1, int(self.window)))

    def _update(self, y: FloatArray) -> None:
        self.naive_.update(y)
        s = self.season_
        if s <= 0:
            self.t_ += y.size
            return
        for value in y.tolist():
            slot = self.t_ % s
            before = self.ring_[slot]  # y_{t-S}, or NaN (a gap, or not seen yet)
            if value == value and before == before:
                self.residuals_.append(value - before)
            self.ring_[slot] = value
            self.t_ += 1

    def _seasonal(self) -> bool:
        return self.season_ > 0 and self.t_ >= self.season_

    def _base(self, horizon: int) -> FloatArray:
        s = self.season_
        steps = np.arange(horizon)  # step h = k + 1 uses y_{t+1+(k % S) - S}
        base = self.ring_[(self.t_ + steps % s) % s]
        last = self.naive_.values_[-1] if self.naive_.values_ else 0.0
        return np.where(np.isnan(base), last, base)

    def _band(self, horizon: int, quantiles: FloatArray) -> FloatArray:
        if len(self.residuals_) < self.MIN_RESIDUALS:
            return self.naive_._change_quantiles(horizon, quantiles)
        r = np.fromiter(self.residuals_, dtype=np.float64, count=len(self.residuals_))
        return np.tile(np.quantile(r, quantiles), (horizon, 1))

    def _predict(self, horizon: int, quantiles: FloatArray) -> FloatArray:
        if not self._seasonal():
            return self.naive_._predict(horizon, quantiles)
        return self._base(horizon)[:, None] + self._band(horizon, quantiles)

    def _point_path(self, horizon: int) -> FloatArray:
        """The values it repeats from a season ago (the last value before one season)."""
        if not self._seasonal():
            return self.naive_._point_path(horizon)
        return self._base(horizon)

    def _point_step(self, step: int) -> float:
        if not self._seasonal():
            return self.naive_._point_step(step)
        s = self.season_
        base = float(self.ring_[(self.t_ + (step - 1) % s) % s])
        return base if base == base else float(self.naive_.values_[-1])

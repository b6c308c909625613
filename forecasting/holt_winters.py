"""Additive Holt-Winters: level, damped trend and a daily season, with empirical error bands.

``season_length`` is in steps: 144 for 10-minute windows, 5760 for 15 s ticks. The recursion
(Hyndman & Athanasopoulos, *Forecasting: Principles and Practice*, §8.3, damped additive)::

    level_t  = alpha (y_t - s_{t-S}) + (1 - alpha) (level_{t-1} + phi trend_{t-1})
    trend_t  = beta (level_t - level_{t-1}) + (1 - beta) phi trend_{t-1}
    s_t      = gamma (y_t - level_t) + (1 - gamma) s_{t-S}
    yhat_t+h = level_t + (phi + ... + phi^h) trend_t + s_{t+h-S k}

Initialisation happens online, so that ``fit`` and ``update`` agree exactly: until two whole
seasons have been seen the model is a damped Holt (seasonal terms 0) and keeps the raw points;
at the end of the second season, the seasonal profile is the mean of the two seasons' deviations
from their own means (smoothed over ``S // 96`` neighbouring steps, about 15 minutes of a day, so
that a 15 s profile is not one noisy sample per step), the level is the second season's mean
carried to its end, the trend the change of the seasons' means per step; the raw points are
then dropped. Without a season (``season_length`` None or < 2) it stays a damped Holt.

Gaps keep their place: the level moves along the damped trend, the seasonal term is not updated.

The band is empirical per horizon (``forecasting._errors.HorizonErrors``): quantiles of the last
``error_window`` errors of the forecasts made ``h`` steps earlier.

* ``update``: O(max_horizon) per point (plus one O(S) initialisation at the end of the second
  season). ``fit(y[:k]).update(y[k:])`` predicts exactly what ``fit(y)`` predicts.
"""

from __future__ import annotations

import numpy as np

from forecasting._errors import HorizonErrors
from forecasting.base import FloatArray, Forecaster


class HoltWinters(Forecaster):
    """Additive Holt-Winters with a damped trend and empirical per-horizon error quantiles."""

    def __init__(
        self,
        season_length: int | None = 144,
        alpha: float = 0.3,
        beta: float = 0.05,
        gamma: float = 0.1,
        phi: float = 0.9,
        error_window: int = 200,
        max_horizon: int = 40,
    ) -> None:
        self.season_length = season_length
        self.alpha = alpha
        self.beta = beta
        self.gamma = gamma
        self.phi = phi
        self.error_window = error_window
        self.max_horizon = max_horizon

    def _reset(self) -> None:
        s = int(self.season_length or 0)
        self.season_ = s if s >= 2 else 0
        self.level_: float | None = None
        self.trend_ = 0.0
        self.seasonal_ = np.zeros(max(self.season_, 1))  # seasonal_[i % S] for step i
        self.initialised_ = False  # the seasonal profile has been estimated
        self.warmup_: list[float] = []  # raw points of the first two seasons
        self.t_ = 0  # steps seen, gaps included
        h = max(1, int(self.max_horizon))
        self.damp_ = np.cumsum(self.phi ** np.arange(1, h + 1))
        self.errors_ = HorizonErrors(h, int(self.error_window))

    def _season_at(self, steps: FloatArray | np.ndarray) -> FloatArray:
        """Seasonal terms for absolute step indices (zeros before initialisation)."""
        if not self.initialised_:
            return np.zeros(len(steps))
        return np.asarray(self.seasonal_[np.asarray(steps, dtype=np.int64) % self.season_])

    def _path(self) -> FloatArray:
        """Point forecasts for steps 1..max_horizon after the last step seen."""
        assert self.level_ is not None
        h = self.damp_.size
        steps = self.t_ - 1 + np.arange(1, h + 1)
        return self.level_ + self.damp_ * self.trend_ + self._season_at(steps)

    def _initialise(self) -> None:
        s = self.season_
        raw = np.asarray(self.warmup_[-2 * s :], dtype=np.float64)
        first, second = raw[:s], raw[s:]
        m1 = float(np.nanmean(first)) if np.any(~np.isnan(first)) else np.nan
        m2 = float(np.nanmean(second)) if np.any(~np.isnan(second)) else np.nan
        if np.isnan(m1) or np.isnan(m2):
            self.warmup_ = []  # a whole season missing: no profile, stay a damped Holt
            return
        dev = np.vstack([first - m1, second - m2])
        ok = ~np.isnan(dev)
        counts = ok.sum(axis=0)
        profile = np.where(
            counts > 0, np.where(ok, dev, 0.0).sum(axis=0) / np.maximum(counts, 1), 0.0
        )
        width = max(1, s // 96)
        if width > 1:  # circular moving average over ~15 minutes of the day
            padded = np.concatenate([profile[-width:], profile, profile[:width]])
            kernel = np.ones(2 * width + 1) / (2 * width + 1)
            profile = np.convolve(padded, kernel, mode="same")[width:-width]
        profile -= profile.mean()
        # raw[j] is step t_ - 2S + j; the profile slot of step i is i % S
        start = self.t_ - 2 * s
        self.seasonal_ = np.empty(s)
        self.seasonal_[(start + np.arange(s)) % s] = profile
        self.trend_ = (m2 - m1) / s
        self.level_ = m2 + self.trend_ * (s - 1) / 2.0
        self.initialised_ = True
        self.warmup_ = []

    def _update(self, y: FloatArray) -> None:
        alpha, beta, gamma, phi = self.alpha, self.beta, self.gamma, self.phi
        s = self.season_
        for value in y.tolist():
            if self.level_ is None:
                if value == value:
                    self.level_ = value
                    if s and not self.initialised_:
                        self.warmup_.append(value)
                    self.t_ += 1
                    self.errors_.push(self._path())
                else:
                    self.t_ += 1
                continue
            self.errors_.observe(value)
            slot = self.t_ % s if s else 0
            season = float(self.seasonal_[slot]) if self.initialised_ else 0.0
            if value == value:
                level = alpha * (value - season) + (1 - alpha) * (self.level_ + phi * self.trend_)
                self.trend_ = beta * (level - self.level_) + (1 - beta) * phi * self.trend_
                self.level_ = level
                if self.initialised_:
                    self.seasonal_[slot] = gamma * (value - level) + (1 - gamma) * season
            else:
                self.level_ = self.level_ + phi * self.trend_
                self.trend_ = phi * self.trend_
            self.t_ += 1
            if s and not self.initialised_:
                self.warmup_.append(value)
                if len(self.warmup_) >= 2 * s:
                    self._initialise()
            self.errors_.push(self._path())

    def _means(self, horizon: int) -> FloatArray:
        assert self.level_ is not None
        steps = np.arange(1, horizon + 1)
        # the same prefix sums as damp_ (one cumsum, sequential): cached up to max_horizon
        damp = self.damp_[:horizon] if horizon <= self.damp_.size else np.cumsum(self.phi**steps)
        return self.level_ + damp * self.trend_ + self._season_at(self.t_ - 1 + steps)

    def _predict(self, horizon: int, quantiles: FloatArray) -> FloatArray:
        return self._means(horizon)[:, None] + self.errors_.quantiles(horizon, quantiles)

    def _point_path(self, horizon: int) -> FloatArray:
        return self._means(horizon)

    def _point_step(self, step: int) -> float:
        assert self.level_ is not None
        phi = self.phi
        damp = phi * (1 - phi**step) / (1 - phi) if phi != 1 else float(step)
        season = 0.0
        if self.initialised_:
            season = float(self.seasonal_[(self.t_ - 1 + step) % self.season_])
        return float(self.level_ + damp * self.trend_ + season)

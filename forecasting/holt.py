"""Damped-trend exponential smoothing (Holt) with an empirical error band.

The first forecaster behind the estimator API of STYLE.md §4 (``forecasting.base``), and the one
the ``forecast`` policy runs by default.

The band is empirical per horizon: every point forecast made is kept for ``max_horizon`` steps
and its absolute error at each step ``h`` feeds an exponentially weighted mean absolute error,
turned into a Gaussian sigma (x 1.2533): absolute rather than squared errors, so one transient
(a start-up overload, an outage) weighs in linearly and does not widen the band for an hour.
A ``sqrt(h)`` rule would assume a random walk; demand sampled as 1-minute rates is mostly
mean-reverting noise around a level, for which that rule doubles the band at a 4-minute lead.
Steps beyond what has been observed use the widest observed spread. Quantiles are normal around
the point forecast.

* ``update``: O(max_horizon) per point, vectorised (no refit of the history per tick). Gaps are
  dropped: a step means "one observed point".
* ``fit(y[:k]).update(y[k:])`` predicts exactly what ``fit(y)`` predicts.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

from forecasting.base import FloatArray, Forecaster

_NORMAL = NormalDist()


def normal_z(quantiles: FloatArray) -> FloatArray:
    """Standard normal quantiles of ``quantiles`` (clamped away from 0 and 1)."""
    return np.array([_NORMAL.inv_cdf(min(max(float(q), 1e-6), 1 - 1e-6)) for q in quantiles])


_MAE_TO_SIGMA = math.sqrt(math.pi / 2.0)
"""sigma / mean absolute deviation of a normal distribution."""


class DampedHolt(Forecaster):
    """Level + damped trend; per-horizon error variance tracked by exponential smoothing."""

    def __init__(
        self,
        alpha: float = 0.5,
        beta: float = 0.1,
        phi: float = 0.9,
        error_alpha: float = 0.1,
        max_horizon: int = 40,
    ) -> None:
        self.alpha = alpha
        self.beta = beta
        self.phi = phi
        self.error_alpha = error_alpha
        self.max_horizon = max_horizon

    def _reset(self) -> None:
        h = max(1, int(self.max_horizon))
        self.level_: float | None = None
        self.trend_ = 0.0
        self.err_mae_ = np.zeros(h)
        self.err_n_ = np.zeros(h, dtype=np.int64)
        self.damp_ = np.cumsum(self.phi ** np.arange(1, h + 1))
        self.paths_ = np.zeros((h, h))  # ring of point-forecast paths; row head_ is the newest
        self.head_ = -1
        self.n_paths_ = 0
        self.steps_ = np.arange(h)

    def _push_path(self) -> None:
        assert self.level_ is not None
        h = self.steps_.size
        self.head_ = (self.head_ + 1) % h
        self.paths_[self.head_] = self.level_ + self.damp_ * self.trend_
        self.n_paths_ += 1

    def _score(self, y: float) -> None:
        """Errors of the forecasts made 1, 2, ... steps ago at their step for now."""
        h = self.steps_.size
        ages = self.steps_[: min(self.n_paths_, h)]
        err = np.abs(y - self.paths_[(self.head_ - ages) % h, ages])
        # robust: absolute, not squared, errors, so one transient (an outage, a start-up
        # overload) weighs in linearly and is forgotten within minutes instead of widening the
        # band for an hour
        n = self.err_n_[ages] + 1
        self.err_n_[ages] = n
        w = np.maximum(self.error_alpha, 1.0 / n)
        self.err_mae_[ages] = (1 - w) * self.err_mae_[ages] + w * err

    def _update(self, y: FloatArray) -> None:
        alpha, beta, phi = self.alpha, self.beta, self.phi
        for value in y[~np.isnan(y)].tolist():
            if self.level_ is None:
                self.level_ = value
                self._push_path()
                continue
            self._score(value)
            forecast = self.level_ + phi * self.trend_
            level = alpha * value + (1 - alpha) * forecast
            self.trend_ = beta * (level - self.level_) + (1 - beta) * phi * self.trend_
            self.level_ = level
            self._push_path()

    def _spreads(self, horizon: int) -> FloatArray:
        seen = self.err_n_ > 0
        sigma = _MAE_TO_SIGMA * self.err_mae_
        widest = float(sigma[seen].max()) if seen.any() else 0.0
        out = np.full(horizon, widest)
        top = min(horizon, self.steps_.size)
        out[:top] = np.where(seen[:top], sigma[:top], widest)
        return out

    def _means(self, horizon: int) -> FloatArray:
        assert self.level_ is not None
        damp = np.cumsum(self.phi ** np.arange(1, horizon + 1))
        return self.level_ + damp * self.trend_

    def _predict(self, horizon: int, quantiles: FloatArray) -> FloatArray:
        z = normal_z(quantiles)
        return self._means(horizon)[:, None] + self._spreads(horizon)[:, None] * z[None, :]

    def _point_path(self, horizon: int) -> FloatArray:
        return self._means(horizon)

    def _point_step(self, step: int) -> float:
        assert self.level_ is not None
        damp = self.phi * (1 - self.phi**step) / (1 - self.phi) if self.phi != 1 else step
        return float(self.level_ + damp * self.trend_)

"""Damped-trend exponential smoothing (Holt) with an empirical error band.

The first forecaster behind the estimator API of STYLE.md §4: hyper-parameters only in
``__init__``, ``fit(y) -> self``, ``update(y_new) -> self`` in O(max_horizon) per point (no refit
of the history per tick), ``predict(horizon, quantiles)`` returning non-decreasing quantiles per
step, learned state in attributes ending in ``_``.

The band is empirical per horizon: every point forecast made is kept for ``max_horizon`` steps
and its error at each step ``h`` feeds an exponentially weighted variance for that ``h`` (errors
clipped at 3 sigma, so one transient does not widen the band for an hour). A ``sqrt(h)`` rule
would assume a random walk; demand sampled as 1-minute rates is mostly mean-reverting noise
around a level, for which that rule doubles the band at a 4-minute lead. Steps beyond what has
been observed use the widest observed spread.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np
import numpy.typing as npt


class DampedHolt:
    """Level + damped trend; one-step error variance tracked by exponential smoothing."""

    def __init__(
        self,
        alpha: float = 0.5,
        beta: float = 0.1,
        phi: float = 0.9,
        error_alpha: float = 0.05,
        max_horizon: int = 40,
    ) -> None:
        self.alpha = alpha
        self.beta = beta
        self.phi = phi
        self.error_alpha = error_alpha
        self.max_horizon = max_horizon

    def get_params(self) -> dict[str, float]:
        return {
            "alpha": self.alpha,
            "beta": self.beta,
            "phi": self.phi,
            "error_alpha": self.error_alpha,
            "max_horizon": self.max_horizon,
        }

    def _reset(self) -> None:
        self.level_: float | None = None
        self.trend_ = 0.0
        self.n_ = 0
        self.err_var_ = np.zeros(self.max_horizon)
        self.err_n_ = np.zeros(self.max_horizon, dtype=np.int64)
        self.pending_: deque[npt.NDArray[np.float64]] = deque(maxlen=self.max_horizon)

    def fit(self, y: Sequence[float] | npt.NDArray[np.float64]) -> DampedHolt:
        """Reset and absorb ``y``; NaN points (gaps) are skipped."""
        self._reset()
        return self.update(y)

    def _paths(self) -> npt.NDArray[np.float64]:
        """Point forecasts for steps 1..max_horizon from the current state."""
        assert self.level_ is not None
        damp = np.cumsum(self.phi ** np.arange(1, self.max_horizon + 1))
        return np.asarray(self.level_ + damp * self.trend_, dtype=np.float64)

    def update(self, y_new: Sequence[float] | npt.NDArray[np.float64]) -> DampedHolt:
        """Absorb new points; O(max_horizon) each, independent of the history's length."""
        if not hasattr(self, "n_"):
            self._reset()
        for raw in np.asarray(y_new, dtype=np.float64).ravel():
            y = float(raw)
            if not math.isfinite(y):
                continue
            if self.level_ is None:
                self.level_ = y
                self.n_ = 1
                self.pending_.appendleft(self._paths())
                continue
            # errors of the forecasts made 1, 2, ... steps ago at their step for now
            for age, path in enumerate(self.pending_):
                err = y - float(path[age])
                if self.err_n_[age] >= 3:
                    # robust: one transient (an outage, a start-up overload) must not widen
                    # the band for the next hour; clip at 3 sigma of what was seen so far
                    bound = 3.0 * math.sqrt(self.err_var_[age])
                    err = min(max(err, -bound), bound)
                self.err_n_[age] += 1
                w = max(self.error_alpha, 1.0 / float(self.err_n_[age]))
                self.err_var_[age] = (1 - w) * self.err_var_[age] + w * err * err
            forecast = self.level_ + self.phi * self.trend_
            level = self.alpha * y + (1 - self.alpha) * forecast
            self.trend_ = (
                self.beta * (level - self.level_) + (1 - self.beta) * self.phi * self.trend_
            )
            self.level_ = level
            self.n_ += 1
            self.pending_.appendleft(self._paths())
        return self

    def predict(self, horizon: int, quantiles: Sequence[float]) -> npt.NDArray[np.float64]:
        """Array of shape (horizon, len(quantiles)); rows are steps 1..horizon, columns are
        non-decreasing in the quantile; values are floored at 0 (demand is never negative)."""
        qs = sorted(quantiles)
        out = np.zeros((horizon, len(qs)))
        if self.level_ is None or horizon <= 0:
            return out
        z = [NormalDist().inv_cdf(min(max(q, 1e-6), 1 - 1e-6)) for q in qs]
        seen = self.err_n_ > 0
        widest = float(np.sqrt(self.err_var_[seen].max())) if seen.any() else 0.0
        damp = 0.0
        for h in range(1, horizon + 1):
            damp += self.phi**h
            mean = self.level_ + damp * self.trend_
            k = h - 1
            spread = math.sqrt(self.err_var_[k]) if k < self.max_horizon and seen[k] else widest
            out[h - 1] = [max(0.0, mean + zq * spread) for zq in z]
        return out

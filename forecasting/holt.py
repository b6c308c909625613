"""Damped-trend exponential smoothing (Holt) with an empirical error band.

The first forecaster behind the estimator API of STYLE.md §4: hyper-parameters only in
``__init__``, ``fit(y) -> self``, ``update(y_new) -> self`` in O(1) per point (no refit of the
history per tick), ``predict(horizon, quantiles)`` returning non-decreasing quantiles per step,
learned state in attributes ending in ``_``. The band assumes Gaussian one-step errors whose
spread grows with ``sqrt(h)``; the Forecasting issue replaces it with calibrated quantiles.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np
import numpy.typing as npt


class DampedHolt:
    """Level + damped trend; one-step error variance tracked by exponential smoothing."""

    def __init__(
        self, alpha: float = 0.5, beta: float = 0.1, phi: float = 0.9, error_alpha: float = 0.1
    ) -> None:
        self.alpha = alpha
        self.beta = beta
        self.phi = phi
        self.error_alpha = error_alpha

    def get_params(self) -> dict[str, float]:
        return {
            "alpha": self.alpha,
            "beta": self.beta,
            "phi": self.phi,
            "error_alpha": self.error_alpha,
        }

    def fit(self, y: Sequence[float] | npt.NDArray[np.float64]) -> DampedHolt:
        """Reset and absorb ``y``; NaN points (gaps) are skipped."""
        self.level_: float | None = None
        self.trend_ = 0.0
        self.err_var_ = 0.0
        self.n_ = 0
        return self.update(y)

    def update(self, y_new: Sequence[float] | npt.NDArray[np.float64]) -> DampedHolt:
        """Absorb new points in O(1) each."""
        if not hasattr(self, "n_"):
            self.level_ = None
            self.trend_ = 0.0
            self.err_var_ = 0.0
            self.n_ = 0
        for raw in np.asarray(y_new, dtype=np.float64).ravel():
            y = float(raw)
            if not math.isfinite(y):
                continue
            if self.level_ is None:
                self.level_ = y
                self.n_ = 1
                continue
            forecast = self.level_ + self.phi * self.trend_
            err = y - forecast
            w = max(self.error_alpha, 1.0 / (self.n_ + 1))
            self.err_var_ = (1 - w) * self.err_var_ + w * err * err
            level = self.alpha * y + (1 - self.alpha) * forecast
            self.trend_ = self.beta * (level - self.level_) + (1 - self.beta) * self.phi * self.trend_
            self.level_ = level
            self.n_ += 1
        return self

    def predict(self, horizon: int, quantiles: Sequence[float]) -> npt.NDArray[np.float64]:
        """Array of shape (horizon, len(quantiles)); rows are steps 1..horizon, columns are
        non-decreasing in the quantile; values are floored at 0 (demand is never negative)."""
        qs = sorted(quantiles)
        out = np.zeros((horizon, len(qs)))
        if self.level_ is None or horizon <= 0:
            return out
        sigma = math.sqrt(max(self.err_var_, 0.0))
        z = [NormalDist().inv_cdf(min(max(q, 1e-6), 1 - 1e-6)) for q in qs]
        damp = 0.0
        for h in range(1, horizon + 1):
            damp += self.phi**h
            mean = self.level_ + damp * self.trend_
            spread = sigma * math.sqrt(h)
            out[h - 1] = [max(0.0, mean + zq * spread) for zq in z]
        return out

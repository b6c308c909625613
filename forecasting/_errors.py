"""Empirical per-horizon forecast errors, tracked online in O(max_horizon) per point.

Every point forecast path a model makes is kept for ``max_horizon`` steps; when a point arrives,
the path made ``k`` steps earlier is scored at its step ``k``, and the error goes into a ring of
the last ``window`` errors for that step. Quantiles of those rings give the band: empirical (a
demand spike skews it upwards, as it should) and per horizon (mean-reverting noise does not widen
like ``sqrt(h)``). All of it is vectorised: no Python loop over the pending paths.
"""

from __future__ import annotations

import numpy as np

from forecasting.base import FloatArray

MIN_ERRORS = 5
"""A step's ring is used once it holds this many errors; before that, the nearest shorter step's."""


class HorizonErrors:
    """Pending point-forecast paths and rings of their errors, one ring per step ahead."""

    def __init__(self, max_horizon: int, window: int) -> None:
        self.max_horizon = max(1, int(max_horizon))
        self.window = max(1, int(window))
        h = self.max_horizon
        self.paths = np.full((h, h), np.nan)  # ring of paths; row head is the newest
        self.head = -1
        self.n_paths = 0
        self.errors = np.zeros((h, self.window))
        self.counts = np.zeros(h, dtype=np.int64)
        self._steps = np.arange(h)

    def observe(self, y: float) -> None:
        """Score the pending paths against the point that just arrived (``NaN`` = gap)."""
        h = self.max_horizon
        valid = min(self.n_paths, h)
        if valid == 0 or np.isnan(y):
            return
        ages = self._steps[:valid]
        rows = (self.head - ages) % h
        predicted = self.paths[rows, ages]
        ok = ~np.isnan(predicted)
        ages = ages[ok]
        self.errors[ages, self.counts[ages] % self.window] = y - predicted[ok]
        self.counts[ages] += 1

    def push(self, path: FloatArray) -> None:
        """Remember the point forecasts for steps ``1..max_horizon`` made just now."""
        self.head = (self.head + 1) % self.max_horizon
        self.paths[self.head] = path
        self.n_paths += 1

    def _source_step(self, k: int) -> int:
        """The step whose errors stand in for step ``k`` (0-based): ``k`` or a shorter one."""
        usable = np.flatnonzero(self.counts[: k + 1] >= MIN_ERRORS)
        if usable.size:
            return int(usable[-1])
        seen = np.flatnonzero(self.counts[: k + 1] > 0)
        return int(seen[-1]) if seen.size else -1

    def step_quantiles(self, k: int, quantiles: FloatArray) -> FloatArray:
        """Error quantiles at step ``k + 1`` (zeros when nothing was scored yet)."""
        src = self._source_step(min(k, self.max_horizon - 1))
        if src < 0:
            return np.zeros(quantiles.size)
        n = min(int(self.counts[src]), self.window)
        return np.asarray(np.quantile(self.errors[src, :n], quantiles), dtype=np.float64)

    def quantiles(self, horizon: int, quantiles: FloatArray) -> FloatArray:
        """Error quantiles for steps ``1..horizon``: shape ``(horizon, len(quantiles))``."""
        out = np.zeros((horizon, quantiles.size))
        top = min(horizon, self.max_horizon)
        if int(self.counts[:top].min()) >= self.window:  # the steady state: one call
            out[:top] = np.quantile(self.errors[:top], quantiles, axis=1).T
        else:
            for k in range(top):
                out[k] = self.step_quantiles(k, quantiles)
        if horizon > top:
            out[top:] = out[top - 1]
        return out

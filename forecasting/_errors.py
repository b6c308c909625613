"""Per-horizon forecast errors, tracked online in O(max_horizon) per point.

Every point forecast path a model makes is kept for ``max_horizon`` steps; when a point arrives,
the path made ``k`` steps earlier is scored at its step ``k``. Two trackers:

* :class:`HorizonErrors` keeps a ring of the last ``window`` errors for each step; quantiles of
  those rings give an empirical band (a demand spike skews it upwards): Holt-Winters' band.
* :class:`HorizonMae` keeps only an exponentially weighted mean absolute error per step (O(h)
  memory instead of O(h x window)), turned into a normal band: the adaptive Holt's and the
  selector's. On the shared traces it beat the empirical quantiles, which a few hundred errors
  pin down poorly in the tails.

Both are per horizon: mean-reverting noise does not widen like ``sqrt(h)``, and a model's band
follows what its forecasts actually missed by at each step. All of it is vectorised: no Python
loop over the pending paths.
"""

from __future__ import annotations

import math

import numpy as np

from forecasting.base import FloatArray

MAE_TO_SIGMA = math.sqrt(math.pi / 2.0)
"""sigma / mean absolute deviation of a normal distribution."""

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


class HorizonMae:
    """Pending point-forecast paths and an exponentially weighted mean absolute error per step.

    The weight of a new error at step ``k`` is ``max(error_alpha, 1 / n_k)``: a plain mean over
    the first ``1 / error_alpha`` errors (no arbitrary starting value), then exponential
    forgetting. Absolute rather than squared errors, so one transient (an outage, a start-up
    overload) weighs in linearly and does not widen the band for an hour.

    Every ``push`` is one step: path ``p`` (the ``p``-th pushed) forecasts steps ``p + 1 ..
    p + max_horizon``, and ``observe`` scores the step that comes next. The forecasts are stored
    by *target*: row ``s % max_horizon`` holds, in column ``a``, the forecast made ``a + 1``
    steps before step ``s``, so scoring a step reads one contiguous row and a push writes one
    precomputed diagonal (``np.put``): the cheapest layout for the per-tick path.
    """

    def __init__(self, max_horizon: int, error_alpha: float) -> None:
        self.max_horizon = max(1, int(max_horizon))
        self.error_alpha = float(error_alpha)
        h = self.max_horizon
        self.pending = np.zeros((h, h))
        self.n_paths = 0
        self.mae = np.zeros(h)
        self.counts = np.zeros(h, dtype=np.int64)
        self._diagonal = np.arange(h) * (h + 1)  # flat indices of (a, a)
        self._size = h * h
        # from this count on, every step's weight is error_alpha (counts need no more updates)
        self._steady_from = max(1, math.ceil(1.0 / self.error_alpha)) if self.error_alpha > 0 else 0
        self._steady = False

    def observe(self, y: float) -> None:
        """Score the pending forecasts of the step that just arrived (a gap is skipped)."""
        h = self.max_horizon
        if self.n_paths == 0 or y != y:
            return
        row = self.pending[self.n_paths % h]
        if self._steady:
            err = np.abs(y - row)
            err -= self.mae
            err *= self.error_alpha
            self.mae += err
            return
        valid = min(self.n_paths, h)
        err = np.abs(y - row[:valid])
        n = self.counts[:valid] + 1
        self.counts[:valid] = n
        w = np.maximum(self.error_alpha, 1.0 / n)
        self.mae[:valid] += w * (err - self.mae[:valid])
        if valid == h and self._steady_from and int(n[-1]) + 1 >= self._steady_from:
            self._steady = True  # n is smallest at the last step; error_alpha from now on

    def push(self, path: FloatArray) -> None:
        """Remember the point forecasts for steps ``1..max_horizon`` made just now."""
        h = self.max_horizon
        shift = ((self.n_paths + 1) % h) * h
        np.put(self.pending, (self._diagonal + shift) % self._size, path)
        self.n_paths += 1

    def sigmas(self, horizon: int) -> FloatArray:
        """Normal sigmas for steps ``1..horizon`` (unseen steps and beyond: the widest seen)."""
        seen = self.counts > 0
        sigma = MAE_TO_SIGMA * self.mae
        widest = float(sigma[seen].max()) if seen.any() else 0.0
        out = np.full(horizon, widest)
        top = min(horizon, self.max_horizon)
        out[:top] = np.where(seen[:top], sigma[:top], widest)
        return out

"""Online model selection per workload by each candidate's recent error at the lead time.

``OnlineSelector`` runs every candidate on the same series. After each point it records every
candidate's *point* forecast ``horizon`` steps ahead (``Forecaster._point_step``: the smoothed
level and trend, the value a naive model repeats; O(1) for every model here); when that step
arrives, the recorded forecasts are scored by their absolute error. Nothing is re-forecast or
re-backtested per tick: scoring is O(candidates). A candidate's loss is its weighted absolute
percentage error over the last ``window`` scored steps (sum of absolute errors over the sum of
``|actual|``: the weighted quantile loss at the median).

The forecast is the chosen candidates' point path (``Forecaster._point_path``) with the
selector's own band:

* ``combine="best"`` (default): the candidate with the lowest loss (ties to the earlier one;
  before any score, the first); ``combine="inverse-loss"``: the average of every candidate's path
  weighted by ``1 / loss**2`` (inverse variance, Bates & Granger 1969). The inverse-variance
  weights assume independent errors; candidates fed the same series are strongly correlated, so
  on the shared traces the average leans too much on the weaker ones and "best" does better.
* The band is normal around that path, with a sigma per step from the exponentially weighted
  mean absolute error of the selector's *own* past paths at that step
  (``forecasting._errors.HorizonMae``). It describes what was actually forecast, switches
  included, and a candidate with a poorly calibrated band of its own (the naive models' bands
  come from a few hundred differences) cannot lend it to the selection.

``selected_`` names the winner (or ``"inverse-loss"``), ``losses_`` the recent loss of each
candidate, ``weights_`` the weight of each in the forecast.

``fit(y)`` fits the candidates on ``y`` except its last points, then feeds those one by one as
``update`` would: ``2 * window + max_horizon + horizon`` of them, so that every loss and choice
still in a window at the end comes from identical forecasts, plus as many as the band's
exponential weights need to forget their start below 1e-12.

* ``update``: per point, every candidate's ``update`` plus one ``_point_step`` each, one
  ``_point_path`` of the chosen candidate(s), and O(candidates x window + max_horizon) numpy work.
* ``fit(y[:k]).update(y[k:])`` predicts what ``fit(y)`` predicts, up to rounding, when every
  candidate promises it (``promises_exact_update``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from forecasting._errors import HorizonMae
from forecasting.base import FloatArray, Forecaster
from forecasting.holt import normal_z

COMBINES = ("best", "inverse-loss")


class OnlineSelector(Forecaster):
    """Picks, per workload, the candidate with the lowest recent error at the lead time."""

    def __init__(
        self,
        candidates: Sequence[tuple[str, Forecaster]],
        window: int = 288,
        horizon: int = 16,
        combine: str = "best",
        error_alpha: float = 0.05,
        max_horizon: int = 40,
    ) -> None:
        self.candidates = candidates
        self.window = window
        self.horizon = horizon
        self.combine = combine
        self.error_alpha = error_alpha
        self.max_horizon = max_horizon

    def promises_exact_update(self) -> bool:
        return all(model.promises_exact_update() for _, model in self.candidates)

    def _reset(self) -> None:
        if self.combine not in COMBINES:
            raise ValueError(f"unknown combine {self.combine!r}; known: {', '.join(COMBINES)}")
        if not self.candidates:
            raise ValueError("OnlineSelector needs at least one candidate")
        self.names_ = [name for name, _ in self.candidates]
        if len(set(self.names_)) != len(self.names_):
            raise ValueError(f"candidate names must be unique, got {self.names_}")
        self.models_ = [model for _, model in self.candidates]
        for model in self.models_:
            model.fit([])
        self.h_ = max(1, int(self.horizon))
        self.w_ = max(1, int(self.window))
        self.big_h_ = max(int(self.max_horizon), self.h_)
        n = len(self.models_)
        self.pending_ = np.zeros((self.h_, n))  # slot i % h: made after step i, for step i + h
        self.pending_ok_ = np.zeros(self.h_, dtype=bool)
        self.abs_errors_ = np.zeros((self.w_, n))  # ring by step; 0 where nothing was scored
        self.abs_actual_ = np.zeros(self.w_)
        self.scored_ = np.zeros(self.w_, dtype=bool)
        self.m_ = 0  # steps seen, gaps included
        self.weights_ = np.zeros(n)
        self.weights_[0] = 1.0
        self.selected_ = self.names_[0] if self.combine == "best" else "inverse-loss"
        self.best_ = 0
        self.band_ = HorizonMae(self.big_h_, float(self.error_alpha))

    def _stream_length(self) -> int:
        """Points ``fit`` feeds one by one: see the module's docstring."""
        alpha = float(self.error_alpha)
        forget = math.ceil(math.log(1e-12) / math.log(1.0 - alpha)) if 0 < alpha < 1 else 0
        return 2 * self.w_ + self.big_h_ + self.h_ + forget

    def _fit(self, y: FloatArray) -> None:
        head = max(0, y.size - self._stream_length())
        for model in self.models_:
            model.fit(y[:head])
        self.m_ = head
        if head:
            self._after_step()
        self._update(y[head:])

    def _score(self, value: float) -> bool:
        """Score the forecasts due at this step; whether anything changed in the window."""
        slot, ring = self.m_ % self.h_, self.m_ % self.w_
        if not self.pending_ok_[slot] or value != value:
            if not self.scored_[ring]:
                return False
            self.abs_errors_[ring] = 0.0
            self.abs_actual_[ring] = 0.0
            self.scored_[ring] = False
            return True
        self.abs_errors_[ring] = np.abs(value - self.pending_[slot])
        self.abs_actual_[ring] = abs(value)
        self.scored_[ring] = True
        return True

    @property
    def losses_(self) -> dict[str, float]:
        """Each candidate's loss over the window (empty before anything was scored)."""
        if not self.scored_.any():
            return {}
        sums = self.abs_errors_.sum(axis=0)
        total = float(self.abs_actual_.sum())
        loss = sums / total if total > 0 else sums
        return dict(zip(self.names_, loss.tolist(), strict=True))

    def _select(self) -> None:
        # the losses share their denominator, so the sums rank and weigh the candidates alike
        sums = self.abs_errors_.sum(axis=0)
        if self.combine == "best":
            best = int(np.argmin(sums))
            if best != self.best_:
                self.weights_ = np.zeros(sums.size)
                self.weights_[best] = 1.0
                self.selected_ = self.names_[best]
                self.best_ = best
            return
        top = float(sums.max())
        if not 0.0 < top < np.inf:  # nobody missed (a constant series): equal weights
            self.weights_ = np.full(sums.size, 1.0 / sums.size)
            return
        rel = sums / top
        inv = 1.0 / (rel * rel + 1e-18)
        self.weights_ = inv / inv.sum()

    def _point_path(self, horizon: int) -> FloatArray:
        out = np.zeros(horizon)
        for weight, model in zip(self.weights_.tolist(), self.models_, strict=True):
            if weight > 0.0 and model.n_finite_:
                out += weight * model._point_path(horizon)
        return out

    def _after_step(self) -> None:
        """Record the candidates' forecasts ``h_`` steps after step ``m_ - 1`` and the path."""
        slot = (self.m_ - 1) % self.h_
        row = self.pending_[slot]
        for c, model in enumerate(self.models_):
            row[c] = model._point_step(self.h_) if model.n_finite_ else 0.0
        self.pending_ok_[slot] = True
        self.band_.push(self._point_path(self.big_h_))

    def _update(self, y: FloatArray) -> None:
        for value in y.tolist():
            if self._score(value):
                self._select()
            self.band_.observe(value)
            point = np.array([value])
            for model in self.models_:
                model.update(point)
            self.m_ += 1
            self._after_step()

    def _predict(self, horizon: int, quantiles: FloatArray) -> FloatArray:
        means = self._point_path(horizon)
        return means[:, None] + self.band_.sigmas(horizon)[:, None] * normal_z(quantiles)[None, :]

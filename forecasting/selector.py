"""Online model selection per workload by each candidate's recent weighted quantile loss.

``OnlineSelector`` runs every candidate on the same series. After each point it asks every
candidate for its quantiles ``horizon`` steps ahead; when that step arrives, the forecast is
scored by its pinball losses. The score of a candidate is its weighted quantile loss over the last
``window`` steps (``forecasting.metrics.weighted_quantile_loss``: pinball losses summed over the
window and the quantiles, times 2, divided by the sum of ``|actual|`` and by the number of
quantiles). ``predict`` returns the forecast of the candidate with the lowest loss
(``combine="best"``, the default; ties go to the earlier candidate, and before any score exists,
to the first) or, with ``combine="inverse-loss"``, the average of all candidates' quantiles
weighted by ``1 / loss`` (an average of non-decreasing rows is non-decreasing).
``selected_`` names the winner (or ``"inverse-loss"``), ``losses_`` the recent loss of each.

``fit(y)`` fits the candidates on ``y`` except its last ``window + horizon`` points, then feeds
those one by one as ``update`` would, so that a full window is scored right away without asking
the candidates for a forecast at every point of a long history.

* ``update``: per point, every candidate's ``update`` plus one forecast at ``horizon``
  (``Forecaster._predict_step``), plus O(candidates x quantiles).
* ``fit(y[:k]).update(y[k:])`` predicts what ``fit(y)`` predicts when every candidate promises it
  (``promises_exact_update``): the last ``window`` steps are scored from identical forecasts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from forecasting.base import FloatArray, Forecaster, check_quantiles, finish

METRICS = ("wql",)
COMBINES = ("best", "inverse-loss")


class OnlineSelector(Forecaster):
    """Picks, per workload, the candidate with the lowest recent weighted quantile loss."""

    def __init__(
        self,
        candidates: Sequence[tuple[str, Forecaster]],
        window: int = 96,
        metric: str = "wql",
        horizon: int = 16,
        quantiles: tuple[float, ...] = (0.1, 0.5, 0.9),
        combine: str = "best",
    ) -> None:
        self.candidates = candidates
        self.window = window
        self.metric = metric
        self.horizon = horizon
        self.quantiles = quantiles
        self.combine = combine

    def promises_exact_update(self) -> bool:
        return all(model.promises_exact_update() for _, model in self.candidates)

    def _reset(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"unknown metric {self.metric!r}; known: {', '.join(METRICS)}")
        if self.combine not in COMBINES:
            raise ValueError(f"unknown combine {self.combine!r}; known: {', '.join(COMBINES)}")
        if not self.candidates:
            raise ValueError("OnlineSelector needs at least one candidate")
        self.names_ = [name for name, _ in self.candidates]
        if len(set(self.names_)) != len(self.names_):
            raise ValueError(f"candidate names must be unique, got {self.names_}")
        self.models_ = [model for _, model in self.candidates]
        self.h_ = max(1, int(self.horizon))
        self.w_ = max(1, int(self.window))
        self.q_ = check_quantiles(self.quantiles)
        n = len(self.models_)
        self.pending_ = np.zeros((self.h_, n, self.q_.size))  # slot i % h: made after step i
        self.pending_ok_ = np.zeros(self.h_, dtype=bool)
        self.scores_ = np.full((self.w_, n), np.nan)  # pinball sums, ring by step
        self.actual_abs_ = np.full(self.w_, np.nan)
        self.m_ = 0  # steps seen, gaps included
        self.selected_ = self.names_[0]
        self.losses_: dict[str, float] = {}

    def _fit(self, y: FloatArray) -> None:
        head = max(0, y.size - (self.w_ + self.h_))
        for model in self.models_:
            model.fit(y[:head])
        self.m_ = head
        if head:
            self._forecast()
        self._update(y[head:])

    def _forecast(self) -> None:
        """Every candidate's quantiles ``h_`` steps after step ``m_ - 1``."""
        slot = (self.m_ - 1) % self.h_
        for c, model in enumerate(self.models_):
            if model.n_finite_:
                row = model._predict_step(self.h_, self.q_)
                self.pending_[slot, c] = finish(np.asarray(row)[None, :])[0]
            else:
                self.pending_[slot, c] = 0.0
        self.pending_ok_[slot] = True

    def _score(self, value: float) -> None:
        slot, ring = self.m_ % self.h_, self.m_ % self.w_
        if not self.pending_ok_[slot] or value != value:
            self.scores_[ring] = np.nan
            self.actual_abs_[ring] = np.nan
            return
        diff = value - self.pending_[slot]  # (candidates, quantiles)
        pinball = np.maximum(self.q_ * diff, (self.q_ - 1.0) * diff)
        self.scores_[ring] = pinball.sum(axis=1)
        self.actual_abs_[ring] = abs(value)

    def _update(self, y: FloatArray) -> None:
        for value in y.tolist():
            self._score(value)
            point = np.array([value])
            for model in self.models_:
                model.update(point)
            self.m_ += 1
            self._forecast()
        self._select()

    def _select(self) -> None:
        scored = ~np.isnan(self.actual_abs_)
        if not scored.any():
            self.losses_ = {}
            self.selected_ = self.names_[0] if self.combine == "best" else "inverse-loss"
            return
        total = float(np.sum(self.actual_abs_[scored]))
        sums = np.sum(self.scores_[scored], axis=0)
        wql = 2.0 * sums / (self.q_.size * total) if total > 0 else sums
        self.losses_ = dict(zip(self.names_, wql.tolist(), strict=True))
        self.weights_ = self._weights(wql)
        if self.combine == "best":
            self.selected_ = self.names_[int(np.argmin(wql))]
        else:
            self.selected_ = "inverse-loss"

    @staticmethod
    def _weights(loss: FloatArray) -> FloatArray:
        eps = 1e-9 * (1.0 + float(np.max(loss)))
        w = 1.0 / (loss + eps)
        return np.asarray(w / w.sum(), dtype=np.float64)

    def _predict(self, horizon: int, quantiles: FloatArray) -> FloatArray:
        if self.combine == "best" or not self.losses_:
            chosen = self.names_.index(self.selected_) if self.selected_ in self.names_ else 0
            return self.models_[chosen].predict(horizon, quantiles)
        out = np.zeros((horizon, quantiles.size))
        for weight, model in zip(self.weights_.tolist(), self.models_, strict=True):
            out += weight * model.predict(horizon, quantiles)
        return out

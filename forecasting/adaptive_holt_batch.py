"""``AdaptiveHolt`` for many workloads at once: one row per workload, every step vectorised.

Why: a Python object per workload pays numpy's per-call overhead (~0.5 µs) some forty times per
tick, ~20-40 µs per workload whatever the arithmetic; at 10,000 workloads that is most of a core
for a few hundred kilobytes of numbers. Here each of those forty calls works on all workloads'
arrays at once, so a tick costs about a microsecond per workload (see
``benchmarks/forecaster_update_cost.py``).

Same model, same numbers: row ``i`` forecasts what ``AdaptiveHolt(**same_params).fit(Y[i])``
forecasts, up to rounding (a tested property), gaps included; the estimator API is the same with
a leading workload axis: ``fit(Y)`` with ``Y`` of shape ``(n_workloads, n_points)``,
``update(Y_new)`` with ``(n_workloads,)`` (one tick) or ``(n_workloads, n_points)``, and
``predict(horizon, quantiles)`` of shape ``(n_workloads, horizon, len(quantiles))``. A gap
(``NaN``) in a row leaves that row's state untouched, exactly as the scalar model drops it. The
set of workloads is fixed at ``fit``: a workload that appears later is fitted on its own history
(the scalar model, or a batch of the newcomers).

Memory per workload: ``horizon x members`` pending member forecasts, and for the band the
combined level and trend of the last ``max_horizon`` points (a path is ``level + damp x trend``,
so two numbers stand for its ``max_horizon``): about 3 KiB with the defaults.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from forecasting._errors import MAE_TO_SIGMA
from forecasting.adaptive_holt import HoltBankSettings
from forecasting.base import FloatArray, check_quantiles
from forecasting.holt import normal_z


class AdaptiveHoltBatch(HoltBankSettings):
    """The adaptive Holt bank (``forecasting.adaptive_holt``) over a fixed set of workloads."""

    def get_params(self) -> dict[str, Any]:
        """The constructor's keyword arguments (those of ``AdaptiveHolt``)."""
        names = inspect.signature(HoltBankSettings.__init__).parameters
        return {name: getattr(self, name) for name in names if name != "self"}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "n_obs_")

    # -- state ---------------------------------------------------------------------------

    def _reset(self, n_workloads: int) -> None:
        self._set_members()
        k = self.member_alpha_.size
        w = n_workloads
        self.h_ = max(1, int(self.horizon))
        big_h = self.big_h_ = max(int(self.max_horizon), self.h_)
        phi = float(self.phi)
        self.damp_ = np.cumsum(phi ** np.arange(1, big_h + 1))
        self.damp_h_ = float(np.sum(phi ** np.arange(1, self.h_ + 1)))
        self.level_ = np.zeros((w, k))
        self.trend_ = np.zeros((w, k))
        self.pending_ = np.zeros((w, self.h_, k))  # [i, j % h]: member forecasts of point j + h
        self.n_obs_ = np.zeros(w, dtype=np.int64)
        self.loss_ = np.zeros((w, k))
        self.n_scored_ = np.zeros(w, dtype=np.int64)
        self.weights_ = np.zeros((w, k))
        self.weights_[:, 0] = 1.0
        # the band, as forecasting._errors.HorizonMae with a leading workload axis; a combined
        # path is level + damp * trend, so two numbers per past point stand for it, in a ring
        # written twice (slots j and j + H) so that the last H are one contiguous slice
        self.band_level_ = np.zeros((w, 2 * big_h))
        self.band_trend_ = np.zeros((w, 2 * big_h))
        self.band_mae_ = np.zeros((w, big_h))
        self.band_counts_ = np.zeros((w, big_h), dtype=np.int64)
        self._rows = np.arange(w)
        self._ages_back = (big_h - 1) - np.arange(big_h)  # age a sits H - 1 - a after the start
        self._all_steady = False  # see _steady: once true, it stays true

    @property
    def n_workloads(self) -> int:
        return int(self.n_obs_.size)

    # -- public API ------------------------------------------------------------------------

    def fit(self, y: npt.ArrayLike) -> Self:
        """Forget all state and learn from ``y`` of shape ``(n_workloads, n_points)``."""
        arr = np.array(y, dtype=np.float64)
        if arr.ndim != 2:
            raise ValueError(
                f"fit takes a 2-D array (n_workloads, n_points), got shape {arr.shape}"
            )
        arr[~np.isfinite(arr)] = np.nan
        self._reset(arr.shape[0])
        for column in arr.T:
            self._step(column)
        return self

    def update(self, y_new: npt.ArrayLike) -> Self:
        """Absorb one tick ``(n_workloads,)`` or several ``(n_workloads, n_points)``."""
        arr = np.array(y_new, dtype=np.float64)
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2:
            raise ValueError(
                f"update takes (n_workloads,) or (n_workloads, n_points), got shape {arr.shape}"
            )
        if not self.is_fitted:
            return self.fit(arr)
        if arr.shape[0] != self.n_workloads:
            raise ValueError(
                f"update got {arr.shape[0]} workloads, the batch was fitted on {self.n_workloads}"
            )
        arr[~np.isfinite(arr)] = np.nan
        for column in arr.T:
            self._step(column)
        return self

    def predict(self, horizon: int, quantiles: Sequence[float] | FloatArray) -> FloatArray:
        """``(n_workloads, horizon, len(quantiles))``: per row what ``AdaptiveHolt`` predicts."""
        if isinstance(horizon, bool) or int(horizon) != horizon or horizon < 0:
            raise ValueError(f"horizon must be a non-negative integer, got {horizon!r}")
        horizon = int(horizon)
        qs = check_quantiles(quantiles)
        if not self.is_fitted:
            return np.zeros((0, horizon, qs.size))
        out = np.zeros((self.n_workloads, horizon, qs.size))
        if horizon == 0 or qs.size == 0:
            return out
        if horizon <= self.damp_.size:
            damp = self.damp_[:horizon]
        else:
            damp = np.cumsum(float(self.phi) ** np.arange(1, horizon + 1))
        level = np.einsum("wk,wk->w", self.weights_, self.level_)
        trend = np.einsum("wk,wk->w", self.weights_, self.trend_)
        means = level[:, None] + damp[None, :] * trend[:, None]
        out = means[:, :, None] + self._sigmas(horizon)[:, :, None] * normal_z(qs)[None, None, :]
        out = np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)
        out = np.maximum(out, 0.0)
        out.sort(axis=2)
        out[self.n_obs_ == 0] = 0.0
        return np.asarray(out, dtype=np.float64)

    # -- one tick ----------------------------------------------------------------------------

    def _sigmas(self, horizon: int) -> FloatArray:
        seen = self.band_counts_ > 0
        sigma = MAE_TO_SIGMA * self.band_mae_
        widest = np.where(seen, sigma, -np.inf).max(axis=1)
        widest = np.where(np.isfinite(widest), widest, 0.0)
        out = np.repeat(widest[:, None], horizon, axis=1)
        top = min(horizon, self.big_h_)
        out[:, :top] = np.where(seen[:, :top], sigma[:, :top], widest[:, None])
        return np.asarray(out, dtype=np.float64)

    def _weigh(self, loss: FloatArray) -> FloatArray:
        """Member weights for rows of member losses (``AdaptiveHolt._weigh`` per row)."""
        if self.combine == "best":
            weights = np.zeros_like(loss)
            weights[np.arange(loss.shape[0]), np.argmin(loss, axis=1)] = 1.0
            return weights
        top = loss.max(axis=1, keepdims=True)
        flat = ~((top > 0.0) & (top < np.inf))[:, 0]  # nothing missed yet: equal weights
        inv = loss / np.where(flat[:, None], 1.0, top)
        inv += 1e-9
        np.power(inv, -float(self.power), out=inv)
        inv /= inv.sum(axis=1, keepdims=True)
        inv[flat] = 1.0 / loss.shape[1]
        return np.asarray(inv, dtype=np.float64)

    def _steady_rows(self) -> npt.NDArray[np.bool_]:
        """Rows past their warm-up: every member scored at every tick, every band step weighted
        ``error_alpha`` (``HorizonMae``'s steady state). A row never leaves it."""
        alpha = float(self.error_alpha)
        if not alpha > 0:
            return np.zeros(self.n_workloads, dtype=bool)
        old_enough = self.n_obs_ >= max(self.h_, self.big_h_)
        return np.asarray(old_enough & (self.band_counts_[:, -1] + 1 >= 1.0 / alpha))

    def _step(self, x: FloatArray) -> None:
        """Absorb one point per workload (``NaN``: that workload has no point this tick).

        Rows past their warm-up take the short arithmetic (no masks); the others, the general
        one. With every row observed and steady (the usual tick), no row is gathered at all.
        """
        obs = ~np.isnan(x)
        if obs.all():
            if not self._all_steady:
                self._all_steady = bool(self._steady_rows().all())
            if self._all_steady:
                self._advance(slice(None), x, steady=True)
                return
        if not obs.any():
            return
        steady = obs & self._steady_rows()
        for rows, is_steady in ((steady, True), (obs & ~steady, False)):
            if rows.any():
                ids = np.flatnonzero(rows)
                self._advance(ids, x[ids], steady=is_steady)

    def _advance(self, ids: slice | npt.NDArray[np.intp], x: FloatArray, *, steady: bool) -> None:
        """Absorb ``x`` (all observed) into rows ``ids``: ``AdaptiveHolt._update`` per row."""
        pairs = self._rows if isinstance(ids, slice) else ids  # for (row, slot) indexing
        h, big_h = self.h_, self.big_h_
        n_obs, n_scored = self.n_obs_[ids], self.n_scored_[ids]
        level, trend = self.level_[ids], self.trend_[ids]
        loss, weights, mae = self.loss_[ids], self.weights_[ids], self.band_mae_[ids]
        xc = x[:, None]
        slot = n_obs % h
        first = n_obs == 0
        scored = n_obs >= h  # the members' forecasts made h points ago are due now
        if steady or scored.any():
            n_scored = n_scored + scored
            err = np.abs(xc - self.pending_[pairs, slot])
            err -= loss
            err *= 1.0 / np.minimum(np.maximum(n_scored, 1), max(1, int(self.window)))[:, None]
            if steady:
                loss = loss + err
                weights = self._weigh(loss)
            else:
                loss = np.where(scored[:, None], loss + err, loss)
                weights = np.where(scored[:, None], self._weigh(loss), weights)

        # the band: score the combined paths made 1..H points ago
        due = self._due_paths(ids, n_obs)
        if steady:
            err = np.abs(xc - due)
            err -= mae
            err *= float(self.error_alpha)
            mae = mae + err
        else:
            valid = np.arange(big_h)[None, :] < np.minimum(n_obs, big_h)[:, None]
            upd = ~first[:, None] & valid
            counts = self.band_counts_[ids] + upd
            w = np.maximum(float(self.error_alpha), 1.0 / np.maximum(counts, 1))
            mae = np.where(upd, mae + w * (np.abs(xc - due) - mae), mae)
            self.band_counts_[ids] = counts

        # the members' recursions
        new_level = trend * float(self.phi)
        new_level += level
        new_level += self.member_alpha_ * (xc - new_level)  # forecast + alpha (y - forecast)
        trend = self.member_beta_ * (new_level - level) + self.trend_carry_ * trend
        level = new_level
        if not steady and first.any():
            level = np.where(first[:, None], xc, level)
            trend = np.where(first[:, None], 0.0, trend)
        self.pending_[pairs, slot] = self.damp_h_ * trend + level

        # remember the combined path (as its level and trend) for the band
        wl = np.einsum("wk,wk->w", weights, level)
        wt = np.einsum("wk,wk->w", weights, trend)
        ring = n_obs % big_h
        for store, value in ((self.band_level_, wl), (self.band_trend_, wt)):
            store[pairs, ring] = value
            store[pairs, ring + big_h] = value

        self.n_obs_[ids] = n_obs + 1
        self.n_scored_[ids] = n_scored
        self.level_[ids], self.trend_[ids] = level, trend
        self.loss_[ids], self.weights_[ids], self.band_mae_[ids] = loss, weights, mae

    def _due_paths(
        self, ids: slice | npt.NDArray[np.intp], n_obs: npt.NDArray[np.int64]
    ) -> FloatArray:
        """Rows ``ids`` x ``H``: column ``a``, the combined forecast made ``a + 1`` points ago
        for the point arriving now (meaningless where no such forecast was made yet)."""
        big_h = self.big_h_
        start = (n_obs - big_h) % big_h  # ring slot of the oldest of the last H paths
        index = start[:, None] + self._ages_back[None, :]
        level = np.take_along_axis(self.band_level_[ids], index, axis=1)
        trend = np.take_along_axis(self.band_trend_[ids], index, axis=1)
        return np.asarray(self.damp_[None, :] * trend + level, dtype=np.float64)

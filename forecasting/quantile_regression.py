"""Direct multi-horizon linear quantile regression on lagged features (scikit-learn).

For every horizon bucket ``h`` in ``horizons`` and every quantile level in ``levels``, one
``sklearn.linear_model.QuantileRegressor(quantile=level, alpha=0, solver="highs")`` maps the
features known at step ``t`` to ``y_{t+h}``. Features: the last points (``lags``), rolling means
(``windows``) and, with a season, the value one season before the target step (``y_{t+h-S}``,
once the buffer holds it) and two harmonics of the target's time of day. Series are divided by
their mean absolute value before fitting (the fit is scale-free; the numbers stay well
conditioned).

Prediction is a dot product per bucket (no scikit-learn call per tick). Steps between buckets
are interpolated linearly in ``h`` (beyond the last bucket: the last bucket). Requested quantiles
are interpolated between the fitted levels in normal-score space, and extrapolated beyond the
outermost two; each bucket's level predictions are sorted first, so the result is monotone.

* ``update`` appends to a bounded buffer (the last ``max_train_size`` training rows plus the
  look-back) in O(1) per point and refits only when ``refit_every`` steps have arrived since the
  last fit (at most once per ``update`` call), or as soon as enough rows exist for a first fit.
  So ``fit(y[:k]).update(y[k:])`` does NOT predict what ``fit(y)`` predicts (``EXACT_UPDATE``
  is False): the models are fitted at different points.
* A fit costs ``len(horizons) x len(levels)`` linear programs of at most ``max_train_size`` rows
  (about 0.5 s with the registry's defaults, so ~0.8 ms amortised per step at
  ``refit_every=720``: see ``benchmarks/forecaster_update_cost.py``). Until the first fit
  succeeds, the forecast is ``LastValue``'s.
"""

from __future__ import annotations

import warnings
from collections import deque

import numpy as np
from sklearn.linear_model import QuantileRegressor  # type: ignore[import-untyped]

from forecasting.base import FloatArray, Forecaster
from forecasting.holt import normal_z
from forecasting.naive import LastValue


def _ffill(a: FloatArray) -> FloatArray:
    """Forward-fill gaps; leading gaps take the first observed value."""
    idx = np.where(np.isnan(a), 0, np.arange(a.size))
    np.maximum.accumulate(idx, out=idx)
    out = a[idx]
    if np.isnan(out[0]):
        first = np.flatnonzero(~np.isnan(a))
        out = np.where(np.isnan(out), a[first[0]] if first.size else 0.0, out)
    return out


class QuantileRegression(Forecaster):
    """Linear quantile regression per horizon bucket and quantile level, refitted periodically."""

    EXACT_UPDATE = False

    def __init__(
        self,
        season_length: int | None = None,
        lags: tuple[int, ...] = (0, 1, 2),
        windows: tuple[int, ...] = (4, 16, 64),
        horizons: tuple[int, ...] = (1, 4, 16, 40),
        levels: tuple[float, ...] = (0.05, 0.25, 0.5, 0.75, 0.95, 0.99),
        max_train_size: int = 300,
        min_train_size: int = 30,
        refit_every: int = 720,
    ) -> None:
        self.season_length = season_length
        self.lags = lags
        self.windows = windows
        self.horizons = horizons
        self.levels = levels
        self.max_train_size = max_train_size
        self.min_train_size = min_train_size
        self.refit_every = refit_every

    # -- state ---------------------------------------------------------------------------

    def _lookback(self) -> int:
        return max([*(lag + 1 for lag in self.lags), *self.windows, 1])

    def _reset(self) -> None:
        s = int(self.season_length or 0)
        self.season_ = s if s >= 2 else 0
        self.horizons_ = np.array(sorted({max(1, int(h)) for h in self.horizons}))
        self.levels_ = np.array(sorted(set(self.levels)), dtype=np.float64)
        self.level_z_ = normal_z(self.levels_)
        cap = int(self.max_train_size) + self._lookback() + int(self.horizons_.max()) + self.season_
        self.buffer_: deque[float] = deque(maxlen=cap)  # raw points, gaps included
        self.t_ = 0  # steps seen, gaps included
        self.since_fit_ = 0
        self.naive_ = LastValue()
        self.naive_._reset()
        self.coef_: FloatArray | None = None  # (buckets, levels, features)
        self.intercept_: FloatArray | None = None  # (buckets, levels)
        self.scale_ = 1.0
        self.use_season_ = False

    # -- features ------------------------------------------------------------------------

    def _features(self, a: FloatArray, ends: np.ndarray, h: int, first_step: int) -> FloatArray:
        """Rows of features known at buffer positions ``ends`` for the target ``ends + h``.

        ``a`` is the forward-filled, scaled buffer; ``first_step`` the step index of ``a[0]``.
        """
        cols = [a[ends - lag] for lag in self.lags]
        csum = np.concatenate([[0.0], np.cumsum(a)])
        for w in self.windows:
            lo = np.maximum(ends + 1 - w, 0)
            cols.append((csum[ends + 1] - csum[lo]) / (ends + 1 - lo))
        if self.use_season_:
            s = self.season_
            back = s * -(-h // s)  # whole seasons reaching back into the past
            cols.append(a[ends + h - back])
            phase = 2 * np.pi * ((first_step + ends + h) % s) / s
            cols += [np.sin(phase), np.cos(phase), np.sin(2 * phase), np.cos(2 * phase)]
        return np.column_stack(cols)

    # -- fitting -------------------------------------------------------------------------

    def _refit(self) -> None:
        self.since_fit_ = 0
        raw = np.fromiter(self.buffer_, dtype=np.float64, count=len(self.buffer_))
        finite = raw[~np.isnan(raw)]
        if finite.size == 0:
            return
        scale = float(np.mean(np.abs(finite))) or 1.0
        a = _ffill(raw) / scale
        y = raw / scale
        first_step = self.t_ - raw.size
        look = self._lookback() - 1
        hmax = int(self.horizons_.max())
        s = self.season_
        self.use_season_ = bool(s) and raw.size >= s + look + hmax + self.min_train_size
        coefs, intercepts = [], []
        for h in self.horizons_.tolist():
            start = max(look, s * -(-h // s) - h) if self.use_season_ else look
            ends = np.arange(start, raw.size - h)
            ends = ends[~np.isnan(y[ends + h])][-int(self.max_train_size) :]
            if ends.size < self.min_train_size:
                return
            X = self._features(a, ends, h, first_step)
            target = y[ends + h]
            c = np.zeros((self.levels_.size, X.shape[1]))
            b = np.zeros(self.levels_.size)
            for j, q in enumerate(self.levels_.tolist()):
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        model = QuantileRegressor(quantile=q, alpha=0.0, solver="highs")
                        model.fit(X, target)
                except (ValueError, ArithmeticError):
                    return
                c[j] = model.coef_
                b[j] = model.intercept_
            coefs.append(c)
            intercepts.append(b)
        self.coef_ = np.asarray(coefs)
        self.intercept_ = np.asarray(intercepts)
        self.scale_ = scale

    def _fit(self, y: FloatArray) -> None:
        self._absorb(y)
        self._refit()

    def _absorb(self, y: FloatArray) -> None:
        self.naive_._update(y)
        self.buffer_.extend(y.tolist())
        self.t_ += y.size
        self.since_fit_ += y.size

    def _update(self, y: FloatArray) -> None:
        self._absorb(y)
        if self.since_fit_ >= self.refit_every or (
            self.coef_ is None
            and len(self.buffer_)
            >= self._lookback() + int(self.horizons_.max()) + self.min_train_size
            and self.since_fit_ >= self.min_train_size
        ):
            self._refit()

    # -- prediction ----------------------------------------------------------------------

    def _bucket_levels(self) -> FloatArray:
        """Sorted level predictions per bucket at the last step: ``(buckets, levels)``."""
        assert self.coef_ is not None and self.intercept_ is not None
        raw = np.fromiter(self.buffer_, dtype=np.float64, count=len(self.buffer_))
        a = _ffill(raw) / self.scale_
        first_step = self.t_ - raw.size
        end = np.array([raw.size - 1])
        out = np.empty((self.horizons_.size, self.levels_.size))
        for i, h in enumerate(self.horizons_.tolist()):
            x = self._features(a, end, h, first_step)[0]
            out[i] = self.coef_[i] @ x + self.intercept_[i]
        return np.sort(out, axis=1) * self.scale_

    def _to_quantiles(self, values: FloatArray, quantiles: FloatArray) -> FloatArray:
        """Interpolate ``(rows, levels)`` to ``(rows, quantiles)`` in normal-score space."""
        lz, qz = self.level_z_, normal_z(quantiles)
        if lz.size == 1:
            return np.repeat(values, qz.size, axis=1)
        out = np.empty((values.shape[0], qz.size))
        for i, row in enumerate(values):
            inner = np.interp(qz, lz, row)
            lo_slope = (row[1] - row[0]) / (lz[1] - lz[0])
            hi_slope = (row[-1] - row[-2]) / (lz[-1] - lz[-2])
            inner = np.where(qz < lz[0], row[0] + (qz - lz[0]) * lo_slope, inner)
            out[i] = np.where(qz > lz[-1], row[-1] + (qz - lz[-1]) * hi_slope, inner)
        return out

    def _predict(self, horizon: int, quantiles: FloatArray) -> FloatArray:
        if self.coef_ is None:
            return self.naive_._predict(horizon, quantiles)
        per_bucket = self._to_quantiles(self._bucket_levels(), quantiles)
        steps = np.arange(1, horizon + 1)
        hs = self.horizons_.astype(np.float64)
        return np.column_stack(
            [np.interp(steps, hs, per_bucket[:, j]) for j in range(quantiles.size)]
        )

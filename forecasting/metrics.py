"""Forecast accuracy: MASE, weighted quantile loss and interval coverage.

Gaps (``NaN`` in ``actual``) are left out of every sum. Definitions:

* ``mase`` (Hyndman & Koehler 2006): mean absolute error of the forecast divided by the mean
  absolute error of the in-sample seasonal-naive forecast ``y_t - y_{t-season}`` (``season=1``:
  naive). A perfect forecast scores 0; the in-sample naive scores about 1.
* ``weighted_quantile_loss`` (GluonTS ``MeanWeightedQuantileLoss``, the AWS Forecast "wQL"): for
  each quantile ``q``, ``2 * sum(pinball_q) / sum(|actual|)`` with
  ``pinball_q = max(q (y - f), (q - 1) (y - f))``; averaged over the quantiles. At ``q = 0.5`` it
  is the weighted absolute percentage error.
* ``interval_coverage``: the share of actuals with ``lo <= actual <= hi``.

Degenerate denominators (an all-zero actual, a constant in-sample series) give ``inf`` when the
numerator is positive and 0 when it is 0 too, never NaN; no observed actual at all gives NaN.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

ArrayLike = Sequence[float] | npt.NDArray[np.floating[Any]] | npt.NDArray[np.integer[Any]]


def _ratio(num: float, den: float) -> float:
    if den > 0:
        return num / den
    return 0.0 if num == 0 else float("inf")


def _1d(x: ArrayLike | Sequence[Sequence[float]]) -> npt.NDArray[np.float64]:
    return np.asarray(x, dtype=np.float64).ravel()


def mase(actual: ArrayLike, forecast: ArrayLike, insample: ArrayLike, season: int = 1) -> float:
    """Mean absolute scaled error of ``forecast`` against ``actual``, scaled on ``insample``."""
    y, f = _1d(actual), _1d(forecast)
    if y.shape != f.shape:
        raise ValueError(f"actual {y.shape} and forecast {f.shape} differ in shape")
    if season < 1:
        raise ValueError(f"season must be >= 1, got {season}")
    ok = np.isfinite(y) & np.isfinite(f)
    if not ok.any():
        return float("nan")
    x = _1d(insample)
    diffs = np.abs(x[season:] - x[:-season]) if x.size > season else np.array([])
    diffs = diffs[np.isfinite(diffs)]
    scale = float(diffs.mean()) if diffs.size else 0.0
    return _ratio(float(np.abs(y[ok] - f[ok]).mean()), scale)


def pinball_loss(
    actual: ArrayLike, quantile_forecasts: ArrayLike | Sequence[Sequence[float]], quantile: float
) -> npt.NDArray[np.float64]:
    """Element-wise pinball (quantile) loss of one quantile's forecasts."""
    diff = _1d(actual) - _1d(quantile_forecasts)
    return np.asarray(np.maximum(quantile * diff, (quantile - 1.0) * diff), dtype=np.float64)


def weighted_quantile_loss(
    actual: ArrayLike,
    quantile_forecasts: ArrayLike | Sequence[Sequence[float]],
    quantiles: Sequence[float],
) -> float:
    """Mean over ``quantiles`` of ``2 * sum(pinball) / sum(|actual|)``.

    ``quantile_forecasts`` has shape ``(len(actual), len(quantiles))``: column ``j`` forecasts
    quantile ``quantiles[j]`` (a 1-D array is accepted for a single quantile).
    """
    y = _1d(actual)
    f = np.asarray(quantile_forecasts, dtype=np.float64)
    if f.ndim == 1:
        f = f[:, None]
    qs = list(quantiles)
    if f.shape != (y.size, len(qs)):
        raise ValueError(f"quantile_forecasts {f.shape} should be {(y.size, len(qs))}")
    ok = np.isfinite(y) & np.all(np.isfinite(f), axis=1)
    if not ok.any() or not qs:
        return float("nan")
    den = float(np.abs(y[ok]).sum())
    losses = [
        _ratio(2.0 * float(pinball_loss(y[ok], f[ok, j], q).sum()), den) for j, q in enumerate(qs)
    ]
    return float(np.mean(losses))


def interval_coverage(actual: ArrayLike, lo: ArrayLike, hi: ArrayLike) -> float:
    """Share of observed ``actual`` values inside ``[lo, hi]`` (NaN when none is observed)."""
    y, a, b = _1d(actual), _1d(lo), _1d(hi)
    if not (y.shape == a.shape == b.shape):
        raise ValueError(f"actual {y.shape}, lo {a.shape} and hi {b.shape} differ in shape")
    ok = np.isfinite(y) & np.isfinite(a) & np.isfinite(b)
    if not ok.any():
        return float("nan")
    inside = (a[ok] <= y[ok]) & (y[ok] <= b[ok])
    return float(inside.mean())

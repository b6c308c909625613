"""The estimator API every forecaster follows (STYLE.md §4), and ``clone``.

A forecaster is a scikit-learn-style estimator for one univariate demand series sampled at a
fixed step:

* ``__init__`` only stores keyword hyper-parameters (no logic, not even validation);
* ``fit(y) -> self`` forgets everything and learns from ``y``;
* ``update(y_new) -> self`` absorbs new points at a small cost per point (O(1) or O(window),
  never a refit of the whole history per tick); before any ``fit`` it behaves like ``fit``;
* ``predict(horizon, quantiles)`` returns an array of shape ``(horizon, len(quantiles))``: row
  ``k`` is step ``k + 1`` after the last point seen, columns are the quantiles in ascending order,
  non-decreasing along each row, finite and ``>= 0`` (demand is never negative);
* learned state lives in attributes ending in ``_``; ``get_params()`` returns the constructor's
  arguments, so ``clone(model)`` rebuilds an unfitted copy (one per backtest window).

The public methods validate and convert, then call the private ``_reset``/``_fit``/``_update``/
``_predict`` that a model implements. ``NaN`` (and ``inf``) marks a gap: a missing sample, never
propagated to the output. The private methods receive the gaps as ``NaN`` so that seasonal models
can keep their phase; models without a phase simply drop them.

``EXACT_UPDATE`` says whether a model promises ``fit(y[:k]).update(y[k:])`` to predict exactly
what ``fit(y)`` predicts (the contract test checks it where promised).
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar, Self, TypeVar

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
SeriesLike = Sequence[float] | npt.NDArray[np.floating[Any]] | npt.NDArray[np.integer[Any]]

_F = TypeVar("_F", bound="Forecaster")


def as_series(y: SeriesLike) -> FloatArray:
    """A 1-D float64 copy of ``y`` with every non-finite value replaced by ``NaN`` (a gap)."""
    arr = np.array(y, dtype=np.float64).ravel()
    arr[~np.isfinite(arr)] = np.nan
    return arr


def check_quantiles(quantiles: Sequence[float] | FloatArray) -> FloatArray:
    """Quantile levels, sorted ascending; each must lie strictly between 0 and 1."""
    qs = np.sort(np.asarray(list(quantiles), dtype=np.float64))
    if qs.size and not (np.all(qs > 0.0) and np.all(qs < 1.0)):
        raise ValueError(f"quantiles must lie strictly between 0 and 1, got {list(quantiles)}")
    return qs


def finish(out: FloatArray) -> FloatArray:
    """Make a raw forecast honour the contract: finite, ``>= 0``, non-decreasing per row."""
    out = np.nan_to_num(np.asarray(out, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    out = np.maximum(out, 0.0)
    if out.shape[1] > 1:
        out = np.sort(out, axis=1)
    return out


class Forecaster(ABC):
    """Base class: public validation around the private ``_reset/_fit/_update/_predict``.

    Subclasses implement ``_reset`` (create empty learned state), ``_update`` (absorb points,
    ``NaN`` = gap) and ``_predict`` (raw forecast for ascending quantiles, called only once some
    finite point has been seen and ``horizon >= 1``). ``_fit`` defaults to ``_reset`` then
    ``_update``, which makes fit and update agree exactly.
    """

    EXACT_UPDATE: ClassVar[bool] = True
    """``fit(y[:k]).update(y[k:])`` predicts what ``fit(y)`` predicts (up to rounding)."""

    def promises_exact_update(self) -> bool:
        """Whether ``fit(y[:k]).update(y[k:])`` predicts what ``fit(y)`` predicts."""
        return self.EXACT_UPDATE

    # -- parameters ------------------------------------------------------------------------

    def get_params(self) -> dict[str, Any]:
        """The constructor's keyword arguments, read back from the attributes of that name."""
        names = [
            p.name
            for p in inspect.signature(type(self).__init__).parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        return {name: getattr(self, name) for name in names}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # -- public API ------------------------------------------------------------------------

    def fit(self, y: SeriesLike) -> Self:
        """Forget all state and learn from ``y`` (``NaN`` = gap). Returns ``self``."""
        series = as_series(y)
        self._reset()
        self.n_seen_ = 0
        self.n_finite_ = 0
        self._fit(series)
        self.n_seen_ = int(series.size)
        self.n_finite_ = int(np.count_nonzero(~np.isnan(series)))
        return self

    def update(self, y_new: SeriesLike) -> Self:
        """Absorb new points (``NaN`` = gap); the same as ``fit`` before any fit."""
        if not self.is_fitted:
            return self.fit(y_new)
        series = as_series(y_new)
        if series.size:
            self._update(series)
            self.n_seen_ += int(series.size)
            self.n_finite_ += int(np.count_nonzero(~np.isnan(series)))
        return self

    def predict(self, horizon: int, quantiles: Sequence[float] | FloatArray) -> FloatArray:
        """Quantile forecasts for steps ``1..horizon``: shape ``(horizon, len(quantiles))``.

        Columns follow the quantiles sorted ascending and never decrease along a row; values
        are finite and ``>= 0``. With no finite point seen yet, every value is 0.
        """
        if isinstance(horizon, bool) or int(horizon) != horizon or horizon < 0:
            raise ValueError(f"horizon must be a non-negative integer, got {horizon!r}")
        horizon = int(horizon)
        qs = check_quantiles(quantiles)
        if horizon == 0 or qs.size == 0 or not self.is_fitted or self.n_finite_ == 0:
            return np.zeros((horizon, qs.size))
        out = self._predict(horizon, qs)
        if out.shape != (horizon, qs.size):
            raise AssertionError(
                f"{type(self).__name__}._predict returned {out.shape}, "
                f"expected {(horizon, qs.size)}"
            )
        return finish(out)

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "n_seen_")

    # -- what a model implements -----------------------------------------------------------

    @abstractmethod
    def _reset(self) -> None:
        """Create empty learned state (attributes ending in ``_``)."""

    def _fit(self, y: FloatArray) -> None:
        """Learn from the whole series; by default the same as absorbing it point by point."""
        self._update(y)

    @abstractmethod
    def _update(self, y: FloatArray) -> None:
        """Absorb points in order; ``NaN`` is a gap."""

    @abstractmethod
    def _predict(self, horizon: int, quantiles: FloatArray) -> FloatArray:
        """Raw ``(horizon, len(quantiles))`` forecast; ``finish`` cleans it up afterwards."""

    def _point_path(self, horizon: int) -> FloatArray:
        """The central point forecast for steps ``1..horizon`` (raw, before ``finish``).

        What an online selector scores and combines, every tick, so models override it with
        something cheap: the smoothed level and trend, the value a naive model repeats. The
        default is the median column of ``_predict``. Called only once a finite point was seen.
        """
        path = self._predict(horizon, np.array([0.5]))[:, 0]
        return np.asarray(path, dtype=np.float64)

    def _point_step(self, step: int) -> float:
        """The central point forecast at one step ahead only (``_point_path(step)[-1]``)."""
        return float(self._point_path(step)[-1])


def clone(model: _F) -> _F:
    """An unfitted copy with the same hyper-parameters (nested forecasters cloned too)."""
    params: dict[str, Any] = {}
    for name, value in model.get_params().items():
        params[name] = _clone_param(value)
    return type(model)(**params)


def _clone_param(value: Any) -> Any:
    if isinstance(value, Forecaster):
        return clone(value)
    if isinstance(value, tuple | list):
        items = [_clone_param(v) for v in value]
        return tuple(items) if isinstance(value, tuple) else items
    return value

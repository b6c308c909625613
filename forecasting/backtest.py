"""One rolling-origin backtest for every forecaster, and its accuracy figures.

:func:`cross_validation` is statsforecast's ``cross_validation`` on numpy: for each cutoff a model
is trained on the points up to and including the cutoff and forecasts the next ``h`` points. It
is the only way forecasts are judged in this project (``forecast-eval``, the benchmarks, the
notebooks), so the rules that keep a backtest honest live in one place:

* **Only the past.** A model receives *copies* of ``y[: cutoff + 1]`` (never a view, whose
  ``.base`` would expose the whole series), and one clone per workload, so nothing learned on one
  series leaks into another.
* **As in production.** With ``refit=False`` a model is fitted once, at the first cutoff, and then
  only ``update``-d with the points between cutoffs, which is exactly what the live loop does each
  tick; ``refit=True`` (or every ``k``-th window with ``refit=k``) fits from scratch instead.
* **Gaps stay gaps.** NaN in the series are handed to the models (they must cope) and rows whose
  actual is NaN are dropped from every figure.

:func:`evaluate` turns the long table into per-model MASE (of the median, scaled by the in-sample
seasonal-naive error at each cutoff), weighted quantile loss (WQL), WQL relative to a reference
model on the same windows, and 90% interval coverage, with bootstrap confidence intervals. The
bootstrap resamples *cutoffs* (all workloads' windows at a cutoff move together, since a burst
hits them at once) in circular blocks: with ``step < h`` consecutive windows share most of their
actuals, and resampling them one by one would report intervals several times too narrow.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from forecasting.base import Forecaster as BaseForecaster
from forecasting.base import clone

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

DEFAULT_QUANTILES: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95)
"""Enough quantiles for a WQL that weighs both tails and the 90% interval (0.05 .. 0.95)."""
SINGLE_WORKLOAD = "series"
"""The workload name given to a bare array passed to :func:`cross_validation`."""


class ForecasterLike(Protocol):
    """What the backtest needs of a model (STYLE.md lesson 7); every
    :class:`forecasting.base.Forecaster` has it, and so may a test's spy."""

    def fit(self, y: FloatArray) -> Any: ...

    def update(self, y_new: FloatArray) -> Any: ...

    def predict(self, horizon: int, quantiles: Sequence[float]) -> FloatArray: ...

    def get_params(self) -> Mapping[str, Any]: ...


def _clone(model: ForecasterLike) -> ForecasterLike:
    """An unfitted copy with the same hyper-parameters: :func:`forecasting.base.clone` for the
    project's forecasters (it clones nested ones too), the sklearn rule
    ``type(model)(**get_params())`` for any other object that follows the protocol."""
    if isinstance(model, BaseForecaster):
        return clone(model)
    copy: ForecasterLike = type(model)(**model.get_params())
    return copy


@dataclass(frozen=True)
class CVTable:
    """The long table of a backtest: one row per (workload, cutoff, model, step).

    ``cutoff`` is the index of the last point the model saw (statsforecast's convention) and
    ``ts = cutoff + step`` the index of the forecast point; ``forecast[:, j]`` is the forecast
    of ``quantiles[j]`` (ascending). :meth:`columns` gives the flat column view.
    """

    quantiles: tuple[float, ...]
    workload: npt.NDArray[np.str_]
    cutoff: IntArray
    step: IntArray
    ts: IntArray
    model: npt.NDArray[np.str_]
    forecast: FloatArray
    actual: FloatArray
    horizon: int = 1
    models: tuple[str, ...] = field(default=())

    def __len__(self) -> int:
        return int(self.cutoff.shape[0])

    @staticmethod
    def quantile_name(q: float) -> str:
        """Column name of a quantile: ``q0.05``, ``q0.5``."""
        return f"q{q:g}"

    def quantile(self, q: float) -> FloatArray:
        """The forecast column of quantile ``q`` (KeyError when it was not forecast)."""
        for j, have in enumerate(self.quantiles):
            if math.isclose(have, q, abs_tol=1e-12):
                return np.asarray(self.forecast[:, j], dtype=np.float64)
        raise KeyError(f"quantile {q} not in the table's {self.quantiles}")

    def columns(self) -> dict[str, npt.NDArray[Any]]:
        """workload, cutoff, step, ts, model, one ``q<level>`` per quantile, actual."""
        out: dict[str, npt.NDArray[Any]] = {
            "workload": self.workload,
            "cutoff": self.cutoff,
            "step": self.step,
            "ts": self.ts,
            "model": self.model,
        }
        for j, q in enumerate(self.quantiles):
            out[self.quantile_name(q)] = self.forecast[:, j]
        out["actual"] = self.actual
        return out


def cutoffs_for(n: int, *, h: int, n_windows: int | None, step: int, min_train: int) -> IntArray:
    """Cutoffs (last training index) of the windows of a series of length ``n``, ascending.

    As statsforecast: the last window ends at the series' end and earlier ones are ``step``
    apart; windows whose training part would be shorter than ``min_train`` are dropped, and
    ``n_windows=None`` keeps every window that fits.
    """
    last = n - h - 1
    first_allowed = min_train - 1
    if last < first_allowed:
        return np.zeros(0, dtype=np.int64)
    count = (last - first_allowed) // step + 1
    if n_windows is not None:
        count = min(count, n_windows)
    return np.asarray(last - step * np.arange(count)[::-1], dtype=np.int64)


def _validate(h: int, n_windows: int | None, step: int, refit: bool | int, min_train: int) -> int:
    """Check the window arguments; return the refit period (0 = never refit)."""
    if h < 1:
        raise ValueError(f"h must be >= 1, got {h}")
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    if n_windows is not None and n_windows < 1:
        raise ValueError(f"n_windows must be >= 1 or None, got {n_windows}")
    if min_train < 1:
        raise ValueError(f"min_train must be >= 1, got {min_train}")
    if isinstance(refit, bool):
        return 1 if refit else 0
    if refit < 1:
        raise ValueError(f"refit must be a bool or an int >= 1, got {refit}")
    return int(refit)


def cross_validation(
    series: Mapping[str, npt.ArrayLike] | npt.ArrayLike,
    models: Mapping[str, ForecasterLike],
    *,
    h: int,
    n_windows: int | None = None,
    step: int = 1,
    refit: bool | int = False,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
    min_train: int = 1,
    on_predict: Callable[[str, str, int, ForecasterLike], None] | None = None,
) -> CVTable:
    """Rolling-origin backtest of ``models`` on every workload of ``series``.

    ``series`` is ``{workload: values}`` or one array (workload ``"series"``). For each workload
    and model a fresh clone is trained on ``y[: cutoff + 1]`` and asked for ``h`` steps of
    ``quantiles`` at each cutoff of :func:`cutoffs_for`. ``refit``: ``False`` fits once and then
    ``update``-s (production behaviour), ``True`` refits at every window, an int ``k`` refits at
    every ``k``-th window and updates in between.

    ``on_predict(workload, model_name, cutoff, model)`` is called after each forecast, to record
    a model's own state (e.g. which candidate an online selector used) without the table having
    to know about it.

    Raises ValueError for bad arguments, a workload too short for one window, or a model whose
    forecast does not have shape ``(h, len(quantiles))``.
    """
    period = _validate(h, n_windows, step, refit, min_train)
    qs = tuple(sorted(float(q) for q in quantiles))
    if not qs or any(not 0 < q < 1 for q in qs) or len(set(qs)) != len(qs):
        raise ValueError(f"quantiles must be distinct and in (0, 1), got {tuple(quantiles)}")
    if not models:
        raise ValueError("no models to backtest")
    if isinstance(series, Mapping):
        named = {str(k): np.asarray(v, dtype=np.float64).ravel() for k, v in series.items()}
    else:
        named = {SINGLE_WORKLOAD: np.asarray(series, dtype=np.float64).ravel()}
    if not named:
        raise ValueError("no series to backtest")

    parts: dict[str, list[npt.NDArray[Any]]] = {
        k: [] for k in ("workload", "cutoff", "step", "model", "forecast", "actual")
    }
    steps = np.arange(1, h + 1, dtype=np.int64)
    for workload, y in named.items():
        cuts = cutoffs_for(y.size, h=h, n_windows=n_windows, step=step, min_train=min_train)
        if cuts.size == 0:
            raise ValueError(
                f"workload {workload!r} has {y.size} points: too short for one window of "
                f"h={h} after min_train={min_train}"
            )
        for name, prototype in models.items():
            model = _clone(prototype)
            seen = 0  # points the model has absorbed: y[:seen]
            for k, cut in enumerate(cuts):
                end = int(cut) + 1
                if period and k % period == 0 or k == 0:
                    model.fit(np.array(y[:end], copy=True))
                else:
                    model.update(np.array(y[seen:end], copy=True))
                seen = end
                pred = np.asarray(model.predict(h, qs), dtype=np.float64)
                if pred.shape != (h, len(qs)):
                    raise ValueError(
                        f"model {name!r} returned a forecast of shape {pred.shape}, "
                        f"expected {(h, len(qs))}"
                    )
                if on_predict is not None:
                    on_predict(workload, name, int(cut), model)
                parts["forecast"].append(pred)
                parts["cutoff"].append(np.full(h, cut, dtype=np.int64))
                parts["step"].append(steps)
                parts["actual"].append(y[end : end + h])
            rows = cuts.size * h
            parts["workload"].append(np.full(rows, workload))
            parts["model"].append(np.full(rows, name))
    cutoff = np.concatenate(parts["cutoff"])
    step_col = np.concatenate(parts["step"])
    return CVTable(
        quantiles=qs,
        workload=np.concatenate(parts["workload"]),
        cutoff=cutoff,
        step=step_col,
        ts=cutoff + step_col,
        model=np.concatenate(parts["model"]),
        forecast=np.vstack(parts["forecast"]),
        actual=np.concatenate(parts["actual"]).astype(np.float64),
        horizon=h,
        models=tuple(models),
    )


# ---------------------------------------------------------------------------------------------
# evaluation


@dataclass(frozen=True)
class ModelScore:
    """One model's accuracy over a backtest; a figure is None when it is undefined (e.g. no
    0.05/0.95 quantiles for coverage, or actuals that are all zero for WQL).

    ``ci`` holds ``(low, high)`` bootstrap bounds per figure at ``confidence``.
    """

    mase: float | None
    wql: float | None
    wql_ratio: float | None
    coverage_90: float | None
    windows: int
    ci: dict[str, tuple[float, float] | None]

    def contract(self) -> dict[str, float | int | None]:
        """The five figures of the ``forecast-eval`` JSON contract."""
        return {
            "mase": self.mase,
            "wql": self.wql,
            "wql_ratio": self.wql_ratio,
            "coverage_90": self.coverage_90,
            "windows": self.windows,
        }


def _lag_mean(y: FloatArray, lag: int) -> FloatArray:
    """``out[c]``: mean ``|y[t] - y[t - lag]|`` over ``lag <= t <= c``, NaN pairs skipped."""
    out = np.full(y.size, np.nan)
    if y.size <= lag:
        return out
    d = np.abs(y[lag:] - y[:-lag])
    ok = np.isfinite(d)
    sums = np.cumsum(np.where(ok, d, 0.0))
    counts = np.cumsum(ok)
    np.divide(sums, counts, out=out[lag:], where=counts > 0)
    return out


def seasonal_scale(y: FloatArray, season: int) -> FloatArray:
    """``scale[c]``: the in-sample mean absolute error of the seasonal naive forecast on
    ``y[: c + 1]``, the yardstick MASE divides by for a model trained up to cutoff ``c``.

    Before the training part holds more than one season (or where every seasonal pair is a gap)
    the naive (lag 1) error stands in: a seasonal naive has nothing to repeat yet. NaN where no
    pair of points exists at all.
    """
    y = np.asarray(y, dtype=np.float64)
    naive = _lag_mean(y, 1)
    if season <= 1:
        return naive
    seasonal = _lag_mean(y, season)
    use = (np.arange(y.size) >= season) & np.isfinite(seasonal)
    return np.asarray(np.where(use, seasonal, naive), dtype=np.float64)


def _block_weights(
    n_clusters: int, n_boot: int, block: int, rng: np.random.Generator
) -> npt.NDArray[np.float64]:
    """(n_boot, n_clusters) resampling counts of a circular block bootstrap."""
    block = max(1, min(block, n_clusters))
    n_blocks = -(-n_clusters // block)
    starts = rng.integers(0, n_clusters, size=(n_boot, n_blocks))
    picks = (starts[:, :, None] + np.arange(block)).reshape(n_boot, -1)[:, :n_clusters]
    picks %= n_clusters
    flat = picks + (np.arange(n_boot) * n_clusters)[:, None]
    counts = np.bincount(flat.ravel(), minlength=n_boot * n_clusters)
    return np.asarray(counts.reshape(n_boot, n_clusters), dtype=np.float64)


def _ratio(num: FloatArray, den: FloatArray) -> FloatArray:
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _interval(samples: FloatArray, confidence: float) -> tuple[float, float] | None:
    finite = samples[np.isfinite(samples)]
    if finite.size < max(10, samples.size // 2):
        return None
    tail = (1.0 - confidence) / 2.0 * 100.0
    lo, hi = np.percentile(finite, [tail, 100.0 - tail])
    return float(lo), float(hi)


def _scalar(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def evaluate(
    table: CVTable,
    series: Mapping[str, npt.ArrayLike] | npt.ArrayLike,
    *,
    reference: str | Mapping[str, str],
    season_length: int | Mapping[str, int] = 1,
    n_boot: int = 1000,
    confidence: float = 0.95,
    block: int | None = None,
    seed: int = 0,
) -> dict[str, ModelScore]:
    """Per-model accuracy of a :func:`cross_validation` table.

    * ``mase``: mean over windows of the median's mean absolute error divided by the in-sample
      seasonal-naive error at the window's cutoff (:func:`seasonal_scale`, ``season_length``
      per workload; 1 means naive). Windows whose scale is 0 (a constant past) are left out.
    * ``wql``: ``mean_q 2 * sum(pinball_q) / sum(|actual|)`` over every row with an actual.
    * ``wql_ratio``: the model's summed quantile loss over the reference's on the same rows;
      ``reference`` is one model name or one per workload.
    * ``coverage_90``: share of actuals within [q0.05, q0.95] (None without those quantiles).
    * ``windows``: (workload, cutoff) windows with at least one actual.

    Confidence intervals: ``n_boot`` replicates (seeded) of a circular block bootstrap over
    cutoffs, ``block`` cutoffs long (default: as many as it takes to span ``h`` points, so
    overlapping windows are resampled together); every model is scored on the same replicate
    (a paired bootstrap, so the ratio's interval is not inflated by independent draws).
    """
    if isinstance(series, Mapping):
        named = {str(k): np.asarray(v, dtype=np.float64).ravel() for k, v in series.items()}
    else:
        named = {SINGLE_WORKLOAD: np.asarray(series, dtype=np.float64).ravel()}
    if len(table) == 0:
        raise ValueError("the backtest table is empty")
    models = table.models or tuple(dict.fromkeys(table.model.tolist()))
    ref_of = (
        {w: reference for w in np.unique(table.workload).tolist()}
        if isinstance(reference, str)
        else dict(reference)
    )
    for w, ref in ref_of.items():
        if ref not in models:
            raise ValueError(f"reference model {ref!r} (workload {w!r}) is not in the table")

    # window ids shared by all models: (workload, cutoff)
    wl_names, wl_code = np.unique(table.workload, return_inverse=True)
    span = int(table.cutoff.max()) + 1
    key = wl_code.astype(np.int64) * span + table.cutoff
    win_keys, wid = np.unique(key, return_inverse=True)
    n_win = win_keys.size
    win_workload = wl_names[win_keys // span]
    win_cutoff = win_keys % span
    clusters, cluster_of_win = np.unique(win_cutoff, return_inverse=True)
    n_cl = clusters.size

    # in-sample scale at each window's cutoff
    scale = np.full(n_win, np.nan)
    for w in wl_names.tolist():
        if w not in named:
            raise ValueError(f"workload {w!r} of the table is missing from the series")
        season = season_length if isinstance(season_length, int) else season_length.get(w, 1)
        in_sample = seasonal_scale(named[w], int(season))
        mine = win_workload == w
        scale[mine] = in_sample[win_cutoff[mine]]

    valid = np.isfinite(table.actual)
    y = np.where(valid, table.actual, 0.0)
    qs = np.asarray(table.quantiles)
    diff = y[:, None] - table.forecast
    pinball = np.maximum(qs * diff, (qs - 1.0) * diff).sum(axis=1) * 2.0
    row_loss = np.where(valid, pinball, 0.0)
    row_abs = np.where(valid, np.abs(y), 0.0)
    has_median = any(math.isclose(q, 0.5) for q in table.quantiles)
    row_ae = np.where(valid, np.abs(y - table.quantile(0.5)), 0.0) if has_median else None
    has_interval = all(any(math.isclose(q, want) for q in table.quantiles) for want in (0.05, 0.95))
    row_cov = (
        np.where(valid & (table.quantile(0.05) <= y) & (y <= table.quantile(0.95)), 1.0, 0.0)
        if has_interval
        else None
    )

    def per_window(values: FloatArray, rows: npt.NDArray[np.bool_]) -> FloatArray:
        return np.bincount(wid[rows], weights=values[rows], minlength=n_win).astype(np.float64)

    def per_cluster(values: FloatArray) -> FloatArray:
        return np.bincount(cluster_of_win, weights=values, minlength=n_cl).astype(np.float64)

    sums: dict[str, dict[str, FloatArray]] = {}
    for name in models:
        rows = table.model == name
        n_obs = per_window(valid.astype(np.float64), rows)
        stats = {
            "loss": per_cluster(per_window(row_loss, rows)),
            "abs": per_cluster(per_window(row_abs, rows)),
            "obs": per_cluster(n_obs),
            "windows": per_cluster((n_obs > 0).astype(np.float64)),
            "win_loss": per_window(row_loss, rows),
        }
        if row_ae is not None:
            win_mase = _ratio(_ratio(per_window(row_ae, rows), n_obs), scale)
            ok = np.isfinite(win_mase)
            stats["mase_sum"] = per_cluster(np.where(ok, win_mase, 0.0))
            stats["mase_n"] = per_cluster(ok.astype(np.float64))
        if row_cov is not None:
            stats["cov"] = per_cluster(per_window(row_cov, rows))
        sums[name] = stats
    # reference loss per window follows the window's workload
    ref_win_loss = np.zeros(n_win)
    for w, ref in ref_of.items():
        mine = win_workload == w
        ref_win_loss[mine] = sums[ref]["win_loss"][mine]
    ref_loss = per_cluster(ref_win_loss)

    if block is None:
        spacing = float(np.median(np.diff(clusters))) if n_cl > 1 else 1.0
        block = max(1, math.ceil(table.horizon / max(spacing, 1.0)))
    rng = np.random.default_rng(seed)
    weights = np.vstack([np.ones(n_cl), _block_weights(n_cl, n_boot, block, rng)])
    n_q = len(table.quantiles)

    out: dict[str, ModelScore] = {}
    for name in models:
        s = sums[name]
        figures: dict[str, FloatArray] = {
            "wql": _ratio(weights @ s["loss"], n_q * (weights @ s["abs"])),
            "wql_ratio": _ratio(weights @ s["loss"], weights @ ref_loss),
        }
        if "mase_sum" in s:
            figures["mase"] = _ratio(weights @ s["mase_sum"], weights @ s["mase_n"])
        if "cov" in s:
            figures["coverage_90"] = _ratio(weights @ s["cov"], weights @ s["obs"])
        point = {k: _scalar(float(v[0])) for k, v in figures.items()}
        ci = {
            k: _interval(figures[k][1:], confidence) if k in figures else None
            for k in ("mase", "wql", "wql_ratio", "coverage_90")
        }
        out[name] = ModelScore(
            mase=point.get("mase"),
            wql=point["wql"],
            wql_ratio=point["wql_ratio"],
            coverage_90=point.get("coverage_90"),
            windows=int(s["windows"].sum()),
            ci=ci,
        )
    return out


__all__ = [
    "DEFAULT_QUANTILES",
    "CVTable",
    "ForecasterLike",
    "ModelScore",
    "cross_validation",
    "cutoffs_for",
    "evaluate",
    "seasonal_scale",
]

"""``forecast-eval``: how well each forecaster predicts a workload's demand, against a reference.

A pure function over demand series (:mod:`autoscaler.offline.series` makes them from traces), so the
CLI, the benchmarks and the notebooks compute the same numbers: one rolling-origin backtest
(:func:`forecasting.backtest.cross_validation`, every model fitted once and then ``update``-d
point by point, as the live loop does) and :func:`forecasting.backtest.evaluate`.

Choices, and why:

* **Reference.** The seasonal naive with a daily season, the usual yardstick for demand that
  follows the clock; where a workload holds fewer than two seasons it has never seen a day
  repeat, so the reference (and every model's season) falls back to the last value. The JSON's
  ``reference`` names the reference of the workloads; when they differ (ServeGen mixes 14-day
  and 1-day models) ``reference_by_workload`` lists them, and ``wql_ratio`` compares each window
  with the reference of its own workload.
* **Selected model.** The candidate the online ``selector`` forecasts with at the most cutoffs
  (``selected_by: "selector_most_often"``, shares in ``selector_picks``; a tie goes to the lower
  backtest WQL): what production would run, chosen only from the past. Without the selector
  among the models, the model with the lowest backtest WQL (``selected_by: "lowest_wql"``), a
  choice made in hindsight. The ``selector`` row itself scores the online choice as it was made,
  switches included.
* **Horizon.** Forecasts are made per interval, so a horizon that is not a whole number of
  intervals is rounded *up* (a replica must be ready by then; forecasting less far would be
  optimistic); ``horizon_steps`` and ``horizon_s`` say what was used.
* **Warm-up.** The first cutoff leaves two seasons of history to seasonal workloads and
  ``max(h, 12)`` points (three minutes at a 15 s scrape, enough for a level and a spread) to the
  others; every window after it is scored (step 1), or the last ``n_windows``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from autoscaler.errors import InputError, UnknownNameError
from forecasting.backtest import (
    DEFAULT_QUANTILES,
    CVTable,
    ForecasterLike,
    cross_validation,
    cutoffs_for,
    evaluate,
)
from forecasting.registry import forecaster_names, make_forecaster

DAY_S = 86_400.0
MIN_TRAIN_POINTS = 12
"""Shortest history of a non-seasonal workload before its first scored forecast."""
SEASONAL_REFERENCE = "seasonal-naive"
NAIVE_REFERENCE = "last-value"
SELECTOR = "selector"
CONTRACT_FIGURES = ("mase", "wql", "wql_ratio", "coverage_90", "windows")


def horizon_steps(horizon_s: float, interval_s: float) -> int:
    """Whole intervals covering ``horizon_s`` (rounded up). Raises :class:`InputError` for a
    horizon or interval that is not a positive number of seconds."""
    if not (math.isfinite(interval_s) and interval_s > 0):
        raise InputError(f"the interval must be a positive number of seconds, got {interval_s}")
    if not (math.isfinite(horizon_s) and horizon_s > 0):
        raise InputError(f"the horizon must be a positive number of seconds, got {horizon_s}")
    return max(1, math.ceil(horizon_s / interval_s - 1e-9))


def _models_for(names: Sequence[str], season: int | None, h: int) -> dict[str, ForecasterLike]:
    known = forecaster_names()
    out: dict[str, ForecasterLike] = {}
    for name in names:
        if name not in known:
            raise UnknownNameError("forecaster", name, known)
        out[name] = make_forecaster(name, season_length=season, horizon=h)
    return out


def _concat(tables: Sequence[CVTable]) -> CVTable:
    first = tables[0]
    if len(tables) == 1:
        return first
    return CVTable(
        quantiles=first.quantiles,
        workload=np.concatenate([t.workload for t in tables]),
        cutoff=np.concatenate([t.cutoff for t in tables]),
        step=np.concatenate([t.step for t in tables]),
        ts=np.concatenate([t.ts for t in tables]),
        model=np.concatenate([t.model for t in tables]),
        forecast=np.vstack([t.forecast for t in tables]),
        actual=np.concatenate([t.actual for t in tables]),
        horizon=first.horizon,
        models=first.models,
    )


def _rounded(x: float | None) -> float | None:
    return None if x is None else round(x, 6)


def forecast_eval(
    series_by_workload: Mapping[str, npt.ArrayLike],
    *,
    interval_s: float,
    horizon_s: float,
    season_length: int | None = None,
    models: Sequence[str] | Mapping[str, ForecasterLike] | None = None,
    reference: str | None = None,
    n_windows: int | None = None,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Backtest ``models`` on every workload and return the ``forecast-eval`` JSON object.

    ``{"reference", "selected", "models": {NAME: {"mase", "wql", "wql_ratio", "coverage_90",
    "windows"}}}`` as DESIGN.md fixes it, plus ``selected_by`` (and ``selector_picks``),
    ``reference_by_workload`` (when workloads differ), ``horizon_s``/``horizon_steps``/
    ``interval_s``/``season_length``, ``workloads`` (windows scored per workload), ``skipped``
    (workloads too short, with why), ``bootstrap`` (its settings) and ``confidence_intervals``
    (bootstrap bounds per model and figure, see
    :func:`forecasting.backtest.evaluate`).

    ``season_length`` is in points (default: one day of intervals). ``models`` is a list of
    registry names (default: all of them, built per workload with that workload's season) or
    ready-made forecasters (used as given for every workload). ``reference`` defaults to the
    seasonal naive, or the last value for a workload shorter than two seasons.

    Raises :class:`InputError` for a bad horizon or interval, unknown model names, a reference
    that is not among the models, or when no workload is long enough for one window.
    """
    h = horizon_steps(horizon_s, interval_s)
    season = season_length if season_length is not None else round(DAY_S / interval_s)
    if season < 1:
        raise InputError(f"the season must be at least one point, got {season}")
    if n_windows is not None and n_windows < 1:
        raise InputError(f"the number of windows must be >= 1, got {n_windows}")
    named = {str(k): np.asarray(v, dtype=np.float64).ravel() for k, v in series_by_workload.items()}
    if not named:
        raise InputError("no workload to evaluate")

    given = isinstance(models, Mapping)
    names: list[str] = list(models) if models is not None else forecaster_names()
    if not names:
        raise InputError("no forecaster to evaluate")

    groups: dict[bool, dict[str, npt.NDArray[np.float64]]] = {True: {}, False: {}}
    skipped: dict[str, str] = {}
    min_train_of = {True: 2 * season, False: max(h, MIN_TRAIN_POINTS)}
    for workload, y in named.items():
        seasonal = season > 1 and y.size >= 2 * season
        cuts = cutoffs_for(
            y.size, h=h, n_windows=n_windows, step=1, min_train=min_train_of[seasonal]
        )
        if cuts.size == 0:
            skipped[workload] = (
                f"{y.size} points: too short for a {h}-step window after "
                f"{min_train_of[seasonal]} points of history"
            )
            continue
        groups[seasonal][workload] = y
    if not groups[True] and not groups[False]:
        detail = "; ".join(f"{w}: {why}" for w, why in skipped.items())
        raise InputError(f"no workload is long enough to evaluate ({detail})")

    picks: Counter[str] = Counter()

    def record_pick(workload: str, name: str, cutoff: int, model: ForecasterLike) -> None:
        """Count which candidate the online selector forecasts with at each cutoff."""
        if name == SELECTOR:
            choice = getattr(model, "selected_", None)
            if isinstance(choice, str):
                picks[choice] += 1

    ref_of: dict[str, str] = {}
    tables: list[CVTable] = []
    for seasonal, members in groups.items():
        if not members:
            continue
        if given:
            assert isinstance(models, Mapping)
            group_models: dict[str, ForecasterLike] = dict(models)
        else:
            group_models = _models_for(names, season if seasonal else None, h)
        default_ref = SEASONAL_REFERENCE if seasonal else NAIVE_REFERENCE
        ref = reference if reference is not None else default_ref
        if ref not in group_models:
            raise InputError(
                f"the reference model {ref!r} is not among the models evaluated "
                f"({', '.join(group_models)})"
            )
        ref_of.update({w: ref for w in members})
        tables.append(
            cross_validation(
                members,
                group_models,
                h=h,
                n_windows=n_windows,
                step=1,
                refit=False,
                quantiles=quantiles,
                min_train=min_train_of[seasonal],
                on_predict=record_pick,
            )
        )
    table = _concat(tables)
    seasons = {w: (season if w in groups[True] else 1) for w in ref_of}
    scores = evaluate(
        table, named, reference=ref_of, season_length=seasons, n_boot=n_boot, seed=seed
    )

    refs = sorted(set(ref_of.values()))
    main_ref = SEASONAL_REFERENCE if SEASONAL_REFERENCE in refs else refs[0]
    ranked = sorted((s.wql if s.wql is not None else math.inf, name) for name, s in scores.items())
    wql_rank = {name: i for i, (_, name) in enumerate(ranked)}
    if picks:
        # the selector's favourite; a tie goes to the candidate with the lower backtest WQL
        selected = min(picks, key=lambda n: (-picks[n], wql_rank.get(n, len(wql_rank)), n))
        selected_by = "selector_most_often"
    else:
        selected, selected_by = ranked[0][1], "lowest_wql"
    windows_per_workload = {
        w: int(np.unique(table.cutoff[table.workload == w]).size) for w in ref_of
    }
    result: dict[str, Any] = {
        "reference": main_ref,
        "selected": selected,
        "models": {
            name: {k: (_rounded(v) if k != "windows" else v) for k, v in s.contract().items()}
            for name, s in scores.items()
        },
        "selected_by": selected_by,
        "interval_s": interval_s,
        "horizon_s": h * interval_s,
        "horizon_steps": h,
        "season_length": season,
        "workloads": windows_per_workload,
        "confidence_intervals": {
            name: {
                k: (None if v is None else [round(v[0], 6), round(v[1], 6)])
                for k, v in s.ci.items()
            }
            for name, s in scores.items()
        },
        "bootstrap": {"replicates": n_boot, "confidence": 0.95, "seed": seed, "over": "cutoffs"},
    }
    if picks:
        total = sum(picks.values())
        result["selector_picks"] = {n: round(c / total, 4) for n, c in picks.most_common()}
    if len(refs) > 1:
        result["reference_by_workload"] = ref_of
    if skipped:
        result["skipped"] = skipped
    return result


def format_table(result: Mapping[str, Any]) -> list[list[str]]:
    """Rows (header first) of the human-readable ``forecast-eval`` table, best WQL first.

    Point figures for every model, and the 95% bootstrap interval of the two figures a choice
    rests on (WQL relative to the reference, 90% coverage); the JSON has all the intervals and
    the window counts. Names are tagged ``(ref)`` and ``(sel)``; it fits 80 columns.
    """

    def num(value: float | None, digits: int) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    def span(ci: Sequence[float] | None, digits: int) -> str:
        return "-" if ci is None else f"{ci[0]:.{digits}f}-{ci[1]:.{digits}f}"

    rows = [["model", "MASE", "WQL", "WQL/ref", "95% CI", "cov90", "95% CI"]]
    figures: Mapping[str, Mapping[str, Any]] = result["models"]
    cis: Mapping[str, Mapping[str, Any]] = result.get("confidence_intervals", {})
    order = sorted(figures, key=lambda n: (figures[n]["wql"] is None, figures[n]["wql"] or 0, n))
    for name in order:
        f = figures[name]
        ci = cis.get(name, {})
        marks = [tag for tag, m in (("ref", "reference"), ("sel", "selected")) if result[m] == name]
        rows.append(
            [
                f"{name} ({', '.join(marks)})" if marks else name,
                num(f["mase"], 3),
                num(f["wql"], 4),
                num(f["wql_ratio"], 3),
                span(ci.get("wql_ratio"), 2),
                num(f["coverage_90"], 2),
                span(ci.get("coverage_90"), 2),
            ]
        )
    return rows

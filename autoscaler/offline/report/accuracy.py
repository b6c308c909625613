"""How well the policy's forecaster predicts this workload's demand, horizon by horizon.

One rolling-origin backtest (:func:`forecasting.backtest.cross_validation`, fitted once and then
updated point by point, as the live loop does) of the ``forecast`` policy's own forecaster
(:func:`autoscaler.policies.forecast.default_forecaster`) and of the reference that
``forecast-eval`` uses (:mod:`autoscaler.offline.forecast_eval`: the daily seasonal naive when the
history holds two days, else the last value), out to twice the cold-start lead time. Each horizon is
then scored on its own rows with :func:`forecasting.backtest.evaluate`, so the table says how the
error grows with the horizon: what a shorter lead time (a warm node, a prefetched image) buys.

The backtest also yields the forecast *as the policy would have used it*: the quantiles made one
lead time before each point, plotted over the demand.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from autoscaler.errors import InputError
from autoscaler.offline.forecast_eval import (
    DAY_S,
    MIN_TRAIN_POINTS,
    NAIVE_REFERENCE,
    SEASONAL_REFERENCE,
    horizon_steps,
)
from forecasting.backtest import CVTable, ForecasterLike, cross_validation, evaluate
from forecasting.registry import make_forecaster

FloatArray = npt.NDArray[np.float64]

POLICY_MODEL = "policy"
"""The name the policy's forecaster goes by in the tables."""
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
"""Enough for a WQL over both tails and the 90% interval the plot draws."""
MIN_MAX_STEPS = 6
"""Score at least this many horizons, even when the lead time is under one interval."""
BOOTSTRAP = 200
"""Bootstrap replicates per horizon (the report shows the intervals at the lead time only)."""


@dataclass(frozen=True)
class HorizonScore:
    """One horizon's figures per model (``wql``, ``wql_ratio``, ``coverage_90``, ``mase``;
    None where undefined) and, per model, the 95% bootstrap interval of the WQL."""

    steps: int
    horizon_s: float
    figures: Mapping[str, Mapping[str, float | None]]
    wql_ci: Mapping[str, tuple[float, float] | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Accuracy:
    """The backtest's outcome: scores by horizon and the lead-time forecast path.

    ``path_index`` are the demand indices that were forecast one lead time ahead;
    ``path[:, j]`` is quantile ``QUANTILES[j]`` of the policy's forecaster for them.
    """

    interval_s: float
    lead_time_s: float
    lead_steps: int
    reference: str
    season_length: int
    models: tuple[str, ...]
    by_horizon: tuple[HorizonScore, ...]
    path_index: npt.NDArray[np.int64]
    path: FloatArray
    windows: int

    def at(self, steps: int) -> HorizonScore:
        """The score at ``steps`` intervals ahead (clamped to the horizons scored)."""
        steps = min(max(1, steps), len(self.by_horizon))
        return self.by_horizon[steps - 1]

    def to_json(self) -> dict[str, object]:
        return {
            "interval_s": self.interval_s,
            "lead_time_s": self.lead_time_s,
            "lead_steps": self.lead_steps,
            "reference": self.reference,
            "season_length": self.season_length,
            "models": list(self.models),
            "windows": self.windows,
            "by_horizon": [
                {
                    "steps": h.steps,
                    "horizon_s": h.horizon_s,
                    "models": {
                        m: {k: _round(v) for k, v in figs.items()} for m, figs in h.figures.items()
                    },
                }
                for h in self.by_horizon
            ],
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _rows(table: CVTable, keep: npt.NDArray[np.bool_]) -> CVTable:
    """The rows of ``table`` where ``keep`` holds (a horizon's own table)."""
    return CVTable(
        quantiles=table.quantiles,
        workload=table.workload[keep],
        cutoff=table.cutoff[keep],
        step=table.step[keep],
        ts=table.ts[keep],
        model=table.model[keep],
        forecast=table.forecast[keep],
        actual=table.actual[keep],
        horizon=1,
        models=table.models,
    )


def backtest(
    demand: npt.ArrayLike,
    *,
    interval_s: float,
    lead_time_s: float,
    policy_forecaster: ForecasterLike,
    max_steps: int | None = None,
    seed: int = 0,
) -> Accuracy:
    """Backtest ``policy_forecaster`` and the reference on ``demand`` (one value per interval).

    Horizons 1 .. ``max_steps`` (default: twice the lead time in intervals, at least
    :data:`MIN_MAX_STEPS`). Raises :class:`InputError` when the history is too short for one
    window (it needs a dozen intervals beyond the longest horizon, or two days when seasonal).
    """
    y = np.asarray(demand, dtype=np.float64).ravel()
    lead_steps = horizon_steps(lead_time_s, interval_s)
    h = max_steps if max_steps is not None else max(2 * lead_steps, MIN_MAX_STEPS)
    season = round(DAY_S / interval_s)
    seasonal = season > 1 and y.size >= 2 * season
    min_train = 2 * season if seasonal else max(h, MIN_TRAIN_POINTS)
    if y.size < min_train + h or not np.isfinite(y).any():
        raise InputError(
            f"the history has {y.size} intervals of {interval_s:g} s: too short to backtest a "
            f"{h}-interval horizon after {min_train} intervals of warm-up "
            f"(at least {(min_train + h) * interval_s / 60:.0f} minutes are needed)"
        )
    reference = SEASONAL_REFERENCE if seasonal else NAIVE_REFERENCE
    models: dict[str, ForecasterLike] = {
        POLICY_MODEL: policy_forecaster,
        reference: make_forecaster(reference, season_length=season if seasonal else None),
    }
    table = cross_validation(
        {"workload": y}, models, h=h, step=1, refit=False, quantiles=QUANTILES, min_train=min_train
    )
    seasons = season if seasonal else 1
    scores: list[HorizonScore] = []
    for step in range(1, h + 1):
        part = _rows(table, table.step == step)
        if not np.isfinite(part.actual).any():
            continue
        # consecutive cutoffs' errors at one horizon are correlated over about ``step`` points
        result = evaluate(
            part,
            {"workload": y},
            reference=reference,
            season_length=seasons,
            n_boot=BOOTSTRAP,
            block=step,
            seed=seed,
        )
        scores.append(
            HorizonScore(
                steps=step,
                horizon_s=step * interval_s,
                figures={
                    name: {
                        "wql": s.wql,
                        "wql_ratio": s.wql_ratio,
                        "coverage_90": s.coverage_90,
                        "mase": s.mase,
                    }
                    for name, s in result.items()
                },
                wql_ci={name: s.ci.get("wql") for name, s in result.items()},
            )
        )
    if not scores:
        raise InputError("the history has no demand to score a forecast against (all gaps)")
    mine = (table.model == POLICY_MODEL) & (table.step == min(lead_steps, h))
    order = np.argsort(table.ts[mine], kind="stable")
    path = np.column_stack([table.quantile(q)[mine][order] for q in QUANTILES])
    return Accuracy(
        interval_s=interval_s,
        lead_time_s=lead_time_s,
        lead_steps=lead_steps,
        reference=reference,
        season_length=season if seasonal else 1,
        models=tuple(models),
        by_horizon=tuple(scores),
        path_index=np.asarray(table.ts[mine][order], dtype=np.int64),
        path=np.asarray(path, dtype=np.float64),
        windows=int(np.unique(table.cutoff).size),
    )

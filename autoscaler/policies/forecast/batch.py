"""The ``forecast`` policy for every workload of a loop at once, the forecast as array operations.

Per workload, the policy's tick is :meth:`ForecastPolicy.prepare` (demand, band scoring, capacity
learning), the forecaster (one update, one point path over the lead time) and
:meth:`ForecastPolicy.decide` (candidates). The forecaster was the largest share of a tick's policy
time (two thirds of it in a profile at 2,000 workloads: a few dozen small numpy calls per workload
and tick), and it is the part that is the same arithmetic for every workload, so
:class:`ForecastBatch` runs it once for all of them on arrays (:class:`HoltBatch`). What each
workload sees is exactly what its own :class:`~forecasting.holt.DampedHolt` would give: the same
float operations in the same order (``tests/test_forecast_batch.py`` checks recommendations equal
to the single-workload path on random inputs, stale and missing data included).

The policy asks the forecaster for its median only, where Holt's error band vanishes (``z = 0``),
so the array model keeps level and trend and no error history. Once a batch runs a workload, its
forecast state lives here; the policy object's own ``forecaster`` stays as it was handed over.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from autoscaler.core.recommendation import Recommendation, hold
from autoscaler.core.signals import SignalSnapshot
from autoscaler.policies.base import Policy
from autoscaler.policies.forecast.decision import ForecastPolicy, Step
from forecasting.holt import DampedHolt

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class HoltBatch:
    """:class:`~forecasting.holt.DampedHolt`'s level and trend for ``n`` series, median path only.

    ``level`` is NaN until a series saw its first finite point (its path is then all zeros, as
    ``DampedHolt.predict`` answers before any point).
    """

    def __init__(self, n: int, *, alpha: float = 0.5, beta: float = 0.1, phi: float = 0.9) -> None:
        self.alpha, self.beta, self.phi = alpha, beta, phi
        self.level: FloatArray = np.full(n, np.nan)
        self.trend: FloatArray = np.zeros(n)

    @classmethod
    def of(cls, models: list[DampedHolt]) -> HoltBatch:
        """The batch that continues these models (same parameters; fitted or not)."""
        first = models[0] if models else DampedHolt()
        batch = cls(len(models), alpha=first.alpha, beta=first.beta, phi=first.phi)
        for i, m in enumerate(models):
            if getattr(m, "level_", None) is not None:
                batch.level[i] = m.level_
                batch.trend[i] = m.trend_
        return batch

    def update(self, rows: IntArray, values: FloatArray) -> None:
        """One point for each of ``rows`` (a non-finite value is a gap, as in ``DampedHolt``)."""
        keep = np.isfinite(values)
        rows, y = rows[keep], values[keep]
        level, trend = self.level[rows], self.trend[rows]
        first = np.isnan(level)
        alpha, beta, phi = self.alpha, self.beta, self.phi
        # DampedHolt._update, term for term
        forecast = level + phi * trend
        new_level = alpha * y + (1 - alpha) * forecast
        new_trend = beta * (new_level - level) + (1 - beta) * phi * trend
        self.level[rows] = np.where(first, y, new_level)
        self.trend[rows] = np.where(first, trend, new_trend)

    def path_max_last(self, rows: IntArray, horizons: IntArray) -> tuple[FloatArray, FloatArray]:
        """Per row, the highest and the last value of the median path over its horizon."""
        if rows.size == 0:
            return np.zeros(0), np.zeros(0)
        top = int(horizons.max())
        damp = np.cumsum(self.phi ** np.arange(1, top + 1))  # as DampedHolt._means
        level = self.level[rows]
        fitted = ~np.isnan(level)
        means = level[:, None] + damp[None, :] * self.trend[rows][:, None]
        # forecasting.base.finish: finite and >= 0; no finite point yet: zeros
        means = np.maximum(np.nan_to_num(means, nan=0.0, posinf=0.0, neginf=0.0), 0.0)
        means[~fitted] = 0.0
        within = np.arange(top)[None, :] < horizons[:, None]
        highest = np.where(within, means, -np.inf).max(axis=1)
        last = means[np.arange(rows.size), horizons - 1]
        return highest, last


class ForecastBatch:
    """Every workload's :class:`ForecastPolicy`, their forecasts run as one :class:`HoltBatch`."""

    def __init__(self, policies: Mapping[str, ForecastPolicy]) -> None:
        self.policies = dict(policies)
        self.index = {key: i for i, key in enumerate(self.policies)}
        models = [p.forecaster for p in self.policies.values()]
        assert all(isinstance(m, DampedHolt) for m in models)
        self.holt = HoltBatch.of(models)  # type: ignore[arg-type]

    @staticmethod
    def supports(policies: Mapping[str, Policy]) -> bool:
        """Whether every policy is a :class:`ForecastPolicy` on one shared Holt configuration
        (another forecaster, or another policy, runs one workload at a time)."""
        models = [getattr(p, "forecaster", None) for p in policies.values()]
        if not policies or not all(type(p) is ForecastPolicy for p in policies.values()):
            return False
        if not all(type(m) is DampedHolt for m in models):
            return False
        params = {(m.alpha, m.beta, m.phi) for m in models}  # type: ignore[union-attr]
        return len(params) == 1

    def recommend(
        self, snapshots: Mapping[str, SignalSnapshot], errors: list[str]
    ) -> dict[str, Recommendation]:
        """One tick for the workloads in ``snapshots``: what each policy's ``recommend`` gives.

        A policy that raises holds its workload only (``errors`` says which and why), as the
        loop does for a single policy.
        """
        out: dict[str, Recommendation] = {}
        steps: dict[str, Step] = {}
        for key, snap in snapshots.items():
            try:
                step = self.policies[key].prepare(snap)
            except Exception as exc:  # a policy bug must not take the other workloads down
                out[key] = _failed(key, snap, exc, errors)
                continue
            if isinstance(step, Recommendation):
                out[key] = step
            else:
                steps[key] = step
        rows = np.fromiter((self.index[k] for k in steps), dtype=np.int64, count=len(steps))
        values = np.fromiter((s.smoothed for s in steps.values()), np.float64, len(steps))
        horizons = np.fromiter((s.horizon for s in steps.values()), np.int64, len(steps))
        self.holt.update(rows, values)
        highest, last = self.holt.path_max_last(rows, horizons)
        for (key, step), hi, lo in zip(steps.items(), highest.tolist(), last.tolist(), strict=True):
            try:
                out[key] = self.policies[key].decide(step, hi, lo)
            except Exception as exc:
                out[key] = _failed(key, snapshots[key], exc, errors)
        return {key: out[key] for key in snapshots}


def _failed(key: str, snap: SignalSnapshot, exc: Exception, errors: list[str]) -> Recommendation:
    log.exception("policy failed for %s", key)
    errors.append(f"{key}: policy failed: {exc}")
    return hold(key, snap.timestamp, f"policy error: {exc}")

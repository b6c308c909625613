"""The forecasters by name: one alphabetical table of factories with their defaults.

``make_forecaster(name, season_length=..., horizon=...)`` builds an unfitted forecaster;
``season_length`` is the daily season in steps (None when unknown or irrelevant: the seasonal
models then behave as their non-seasonal counterparts), ``horizon`` the lead time in steps the
forecast will mostly be read at (the selector and the adaptive Holt score their candidates and
members there; the quantile regression puts a horizon bucket there). An unknown name raises
``ValueError`` listing the known ones (the CLI turns it into its own error; ``forecasting``
imports nothing from ``autoscaler``).

Adding a forecaster: a module with a ``Forecaster`` subclass, a row below, and nothing else:
the contract test (``tests/test_forecasters_contract.py``) runs every name in this table.
"""

from __future__ import annotations

from collections.abc import Callable

from forecasting.adaptive_holt import AdaptiveHolt
from forecasting.base import Forecaster
from forecasting.holt import DampedHolt
from forecasting.holt_winters import HoltWinters
from forecasting.naive import LastValue, SeasonalNaive
from forecasting.quantile_regression import QuantileRegression
from forecasting.selector import OnlineSelector

DEFAULT_HORIZON = 16
"""Steps ahead when no horizon is given: the default 240 s lead time at 15 s ticks."""

Factory = Callable[[int | None, int], Forecaster]


def _max_horizon(horizon: int) -> int:
    return max(40, horizon)


def _adaptive_holt(season_length: int | None, horizon: int) -> Forecaster:
    return AdaptiveHolt(horizon=horizon, max_horizon=_max_horizon(horizon))


def _holt(season_length: int | None, horizon: int) -> Forecaster:
    return DampedHolt(max_horizon=_max_horizon(horizon))


def _holt_winters(season_length: int | None, horizon: int) -> Forecaster:
    return HoltWinters(season_length=season_length, max_horizon=_max_horizon(horizon))


def _last_value(season_length: int | None, horizon: int) -> Forecaster:
    return LastValue()


def _quantile_regression(season_length: int | None, horizon: int) -> Forecaster:
    buckets = tuple(sorted({1, 4, 16, 40, horizon}))
    return QuantileRegression(season_length=season_length, horizons=buckets)


def _seasonal_naive(season_length: int | None, horizon: int) -> Forecaster:
    return SeasonalNaive(season_length=season_length)


def _selector(season_length: int | None, horizon: int) -> Forecaster:
    # Only candidates that earned their place on the shared traces (benchmarks/
    # forecast_accuracy.py): the adaptive Holt bank already spans fast (alpha 0.8) to slow
    # smoothing, and adding "holt" or "last-value" only added switching noise (WQL ratio up by
    # 0.01-0.02 on Azure token work at 240 s); Holt-Winters is the one structurally different
    # model, and on ServeGen m-small at 3 windows switching to it on some days helps (0.510
    # instead of the bank's 0.515). The quantile regression is left out for its cost (a refit
    # is ~0.5 s, ~0.5-0.8 ms a tick amortised) and because it never beat the bank.
    names = ["adaptive-holt"]
    if season_length:
        names.append("holt-winters")
    return OnlineSelector(
        candidates=tuple((name, _FACTORIES[name](season_length, horizon)) for name in names),
        horizon=horizon,
        max_horizon=_max_horizon(horizon),
    )


_FACTORIES: dict[str, Factory] = {
    "adaptive-holt": _adaptive_holt,
    "holt": _holt,
    "holt-winters": _holt_winters,
    "last-value": _last_value,
    "quantile-regression": _quantile_regression,
    "seasonal-naive": _seasonal_naive,
    "selector": _selector,
}


def forecaster_names() -> list[str]:
    """Every registered name, alphabetically."""
    return sorted(_FACTORIES)


def make_forecaster(
    name: str, *, season_length: int | None = None, horizon: int | None = None
) -> Forecaster:
    """A new, unfitted forecaster registered as ``name``."""
    try:
        factory = _FACTORIES[name]
    except KeyError:
        known = ", ".join(forecaster_names())
        raise ValueError(f"unknown forecaster {name!r}; known: {known}") from None
    if season_length is not None and season_length < 2:
        season_length = None
    return factory(season_length, max(1, int(horizon or DEFAULT_HORIZON)))

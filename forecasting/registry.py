"""The forecasters by name: one alphabetical table of factories with their defaults.

``make_forecaster(name, season_length=..., horizon=...)`` builds an unfitted forecaster;
``season_length`` is the daily season in steps (None when unknown or irrelevant: the seasonal
models then behave as their non-seasonal counterparts), ``horizon`` the lead time in steps the
forecast will mostly be read at (the selector scores its candidates there; the quantile
regression puts a horizon bucket there). An unknown name raises ``ValueError`` listing the known
ones (the CLI turns it into its own error; ``forecasting`` imports nothing from ``autoscaler``).

Adding a forecaster: a module with a ``Forecaster`` subclass, a row below, and nothing else:
the contract test (``tests/test_forecasters_contract.py``) runs every name in this table.
"""

from __future__ import annotations

from collections.abc import Callable

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
    names = ["holt", "last-value", "quantile-regression"]
    if season_length:
        names += ["holt-winters", "seasonal-naive"]
    return OnlineSelector(
        candidates=tuple((name, _FACTORIES[name](season_length, horizon)) for name in names),
        horizon=horizon,
    )


_FACTORIES: dict[str, Factory] = {
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

"""One contract, every registered forecaster (STYLE.md lessons 7-8; cf. statsforecast's
``assert_class`` and scikit-learn's ``parametrize_with_checks``)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forecasting.base import Forecaster, clone
from forecasting.registry import forecaster_names, make_forecaster

SEASON = 12
HORIZON = 4
QUANTILES = [0.05, 0.5, 0.9, 0.99]
NAMES = forecaster_names()
# fit(y[:k]).update(y[k:]) == fit(y): promised by the streaming models and by the default selector
# (whose candidates all stream); the quantile regression refits on a schedule.
EXACT = ["adaptive-holt", "holt", "holt-winters", "last-value", "seasonal-naive", "selector"]


def make(name: str) -> Forecaster:
    return make_forecaster(name, season_length=SEASON, horizon=HORIZON)


def seasonal(n: int, seed: int = 0, gaps: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    y = 100 + 40 * np.sin(2 * np.pi * t / SEASON) + 0.2 * t + rng.normal(0, 5, n)
    if gaps:
        y[rng.random(n) < 0.1] = np.nan
    return y


def assert_contract(out: np.ndarray, horizon: int, n_quantiles: int) -> None:
    assert out.shape == (horizon, n_quantiles)
    assert np.isfinite(out).all()
    assert (out >= 0).all()
    assert (np.diff(out, axis=1) >= 0).all()


DEGENERATE = {
    "empty": [],
    "one": [3.0],
    "two": [3.0, 5.0],
    "three": [1.0, np.nan, 2.0],
    "constant": [7.0] * 60,
    "zeros": [0.0] * 200,
    "all-gaps": [np.nan] * 30,
    "leading-gaps": [np.nan] * 20 + [4.0, 5.0, 6.0],
    "gappy": [np.nan, 1.0, np.nan, np.inf, 4.0] * 40,
    "spike": [0.0] * 100 + [1e9] + [0.0] * 99,
    "negative": [-5.0, -3.0, -1.0] * 20,
}


def test_the_registry_lists_every_model_alphabetically():
    assert NAMES == sorted(NAMES)
    assert set(NAMES) == {
        "adaptive-holt",
        "holt",
        "holt-winters",
        "last-value",
        "quantile-regression",
        "seasonal-naive",
        "selector",
    }


def test_an_unknown_name_is_a_value_error_listing_the_known_ones():
    with pytest.raises(ValueError, match="known: adaptive-holt, holt, holt-winters"):
        make_forecaster("prophet")


@pytest.mark.parametrize("name", NAMES)
def test_without_a_season_every_model_still_works(name):
    out = make_forecaster(name).fit(seasonal(150)).predict(3, QUANTILES)
    assert_contract(out, 3, len(QUANTILES))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("horizon", [1, HORIZON, 3 * SEASON + 1])
def test_shape_sorted_columns_and_non_negative(name, horizon):
    model = make(name).fit(seasonal(150, gaps=True))
    out = model.predict(horizon, [0.9, 0.05, 0.5])
    assert_contract(out, horizon, 3)
    assert np.array_equal(out, model.predict(horizon, [0.05, 0.5, 0.9]))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("series", list(DEGENERATE), ids=list(DEGENERATE))
def test_no_nan_inf_or_negative_on_degenerate_series(name, series):
    model = make(name).fit(DEGENERATE[series])
    assert_contract(model.predict(HORIZON, QUANTILES), HORIZON, len(QUANTILES))
    model.update([np.nan, 2.0])
    assert_contract(model.predict(HORIZON, QUANTILES), HORIZON, len(QUANTILES))


@pytest.mark.parametrize("name", NAMES)
def test_nothing_seen_predicts_zeros(name):
    assert np.array_equal(make(name).fit([]).predict(2, [0.5]), np.zeros((2, 1)))
    assert np.array_equal(make(name).predict(2, [0.5]), np.zeros((2, 1)))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("value", [0.0, 7.0])
def test_a_constant_series_forecasts_the_constant(name, value):
    out = make(name).fit([value] * 120).predict(HORIZON, [0.1, 0.5, 0.9])
    assert np.allclose(out, value, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_horizon_zero_and_invalid_arguments(name):
    model = make(name).fit(seasonal(40))
    assert model.predict(0, QUANTILES).shape == (0, len(QUANTILES))
    for bad in ([0.0], [1.0], [0.5, 1.2]):
        with pytest.raises(ValueError, match="quantiles"):
            model.predict(2, bad)
    for horizon in (-1, 1.5):
        with pytest.raises(ValueError, match="horizon"):
            model.predict(horizon, [0.5])


@pytest.mark.parametrize("name", EXACT)
@pytest.mark.parametrize("split", [0, 1, 37, 149])
@pytest.mark.parametrize("gaps", [False, True])
def test_fit_then_update_equals_fit_on_the_whole_series(name, split, gaps):
    y = seasonal(150, seed=3, gaps=gaps)
    whole = make(name).fit(y).predict(HORIZON, QUANTILES)
    head = make(name).fit(y[:split])
    for start in range(split, y.size, 25):  # several update calls, of several lengths
        head.update(y[start : start + 25])
    assert np.allclose(head.predict(HORIZON, QUANTILES), whole, rtol=1e-9, atol=1e-9)


def test_the_exact_list_is_what_the_models_promise():
    assert [n for n in NAMES if make(n).promises_exact_update()] == EXACT


@pytest.mark.parametrize("name", NAMES)
def test_update_before_fit_is_fit(name):
    y = seasonal(60)
    assert np.array_equal(
        make(name).update(y).predict(HORIZON, QUANTILES),
        make(name).fit(y).predict(HORIZON, QUANTILES),
    )


@pytest.mark.parametrize("name", NAMES)
def test_fit_forgets_the_previous_series(name):
    a, b = seasonal(130, seed=1), seasonal(90, seed=2) * 3
    refit = make(name).fit(a).fit(b).predict(HORIZON, QUANTILES)
    assert np.array_equal(refit, make(name).fit(b).predict(HORIZON, QUANTILES))


@pytest.mark.parametrize("name", NAMES)
def test_predict_does_not_change_the_state(name):
    model = make(name).fit(seasonal(130))
    first = model.predict(HORIZON, QUANTILES)
    model.predict(3 * SEASON, [0.2, 0.7])
    assert np.array_equal(model.predict(HORIZON, QUANTILES), first)


@pytest.mark.parametrize("name", NAMES)
def test_clone_and_get_params_round_trip(name):
    model = make(name)
    params = model.get_params()
    rebuilt = type(model)(**params)
    assert repr(rebuilt) == repr(model)
    assert rebuilt.get_params().keys() == params.keys()
    y = seasonal(130)
    fitted = model.fit(y)
    copy = clone(fitted)
    assert not copy.is_fitted and repr(copy) == repr(model)
    assert np.array_equal(
        copy.fit(y).predict(HORIZON, QUANTILES), fitted.predict(HORIZON, QUANTILES)
    )


def test_clone_copies_nested_candidates():
    selector = make("selector")
    copy = clone(selector)
    originals = [id(m) for _, m in selector.get_params()["candidates"]]
    assert all(id(m) not in originals for _, m in copy.get_params()["candidates"])


@settings(max_examples=25, deadline=None)
@given(
    st.sampled_from(NAMES),
    st.lists(st.one_of(st.floats(min_value=0, max_value=1e7), st.just(float("nan"))), max_size=80),
    st.integers(min_value=1, max_value=30),
    st.lists(st.floats(min_value=0.01, max_value=0.99), min_size=1, max_size=5),
)
def test_property_every_forecast_honours_the_contract(name, values, horizon, quantiles):
    model = make(name).fit(values[: len(values) // 2]).update(values[len(values) // 2 :])
    assert_contract(model.predict(horizon, quantiles), horizon, len(quantiles))


@settings(max_examples=25, deadline=None)
@given(
    st.sampled_from(EXACT),
    st.lists(st.floats(min_value=0, max_value=1e4), min_size=1, max_size=60),
    st.integers(min_value=0, max_value=60),
)
def test_property_update_agrees_with_fit_where_promised(name, values, split):
    whole = make(name).fit(values).predict(HORIZON, QUANTILES)
    parts = make(name).fit(values[:split]).update(values[split:]).predict(HORIZON, QUANTILES)
    assert np.allclose(parts, whole, rtol=1e-9, atol=1e-6)

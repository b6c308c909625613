"""The batched adaptive Holt: row by row, the scalar model's numbers, gaps and warm-up included."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forecasting.adaptive_holt import AdaptiveHolt
from forecasting.adaptive_holt_batch import AdaptiveHoltBatch

QS = [0.05, 0.5, 0.9, 0.99]
SMALL = {"horizon": 3, "max_horizon": 5, "window": 8, "error_alpha": 0.25}
"""Short enough that a few dozen points cross every warm-up (members scored, band steady)."""


def workloads(n: int, t: int, seed: int = 0, gaps: float = 0.05) -> np.ndarray:
    rng = np.random.default_rng(seed)
    level = rng.uniform(10, 1e4, (n, 1))
    y = level * (1 + np.cumsum(rng.normal(0, 0.02, (n, t)), axis=1))
    y += rng.normal(0, 0.05, (n, t)) * level
    y[rng.random((n, t)) < gaps] = np.nan
    return np.maximum(y, 0.0)


def scalar(y: np.ndarray, steps: int, **params) -> np.ndarray:
    return np.stack([AdaptiveHolt(**params).fit(row).predict(steps, QS) for row in y])


@pytest.mark.parametrize("combine", ["inverse-loss", "best"])
def test_each_row_is_the_scalar_model(combine):
    y = workloads(12, 120)
    y[0, :40] = np.nan  # starts late: warm-up while the others are steady
    y[1] = np.nan  # never seen
    y[2, 60:] = np.nan  # stops
    y[3, 100:] = 5.0  # becomes constant
    params = {**SMALL, "combine": combine}
    batch = AdaptiveHoltBatch(**params).fit(y[:, :50])
    batch.update(y[:, 50:80])
    for column in y[:, 80:].T:  # one tick at a time, as the live loop would
        batch.update(column)
    assert np.allclose(batch.predict(9, QS), scalar(y, 9, **params), rtol=1e-10, atol=1e-9)


def test_the_steady_shortcut_agrees_with_the_general_arithmetic():
    y = workloads(6, 200, gaps=0.0)
    batch = AdaptiveHoltBatch(**SMALL).fit(y[:, :100])
    assert batch._all_steady  # every later tick takes the mask-free arithmetic
    batch.update(y[:, 100:])
    assert np.allclose(batch.predict(4, QS), scalar(y, 4, **SMALL), rtol=1e-10)


def test_rows_that_never_saw_a_point_predict_zeros():
    y = workloads(3, 30)
    y[1] = np.nan
    out = AdaptiveHoltBatch().fit(y).predict(4, QS)
    assert out.shape == (3, 4, len(QS))
    assert np.array_equal(out[1], np.zeros((4, len(QS))))
    assert (out[0] > 0).all() and (np.diff(out, axis=2) >= 0).all()


def test_fit_then_update_equals_fit_on_everything():
    y = workloads(5, 90, seed=3)
    whole = AdaptiveHoltBatch(**SMALL).fit(y).predict(6, QS)
    parts = AdaptiveHoltBatch(**SMALL).fit(y[:, :31]).update(y[:, 31:]).predict(6, QS)
    assert np.array_equal(parts, whole)


def test_update_before_fit_is_fit_and_bad_shapes_say_what_is_wrong():
    y = workloads(4, 20)
    assert np.array_equal(
        AdaptiveHoltBatch().update(y).predict(3, QS), AdaptiveHoltBatch().fit(y).predict(3, QS)
    )
    batch = AdaptiveHoltBatch().fit(y)
    with pytest.raises(ValueError, match="3 workloads.*fitted on 4"):
        batch.update(np.ones(3))
    with pytest.raises(ValueError, match="2-D"):
        AdaptiveHoltBatch().fit(np.ones(5))
    with pytest.raises(ValueError, match="horizon"):
        batch.predict(-1, QS)
    with pytest.raises(ValueError, match="quantiles"):
        batch.predict(2, [1.5])
    with pytest.raises(ValueError, match="combine"):
        AdaptiveHoltBatch(combine="vote").fit(y)


def test_params_round_trip():
    batch = AdaptiveHoltBatch(alphas=(0.4,), horizon=5)
    again = AdaptiveHoltBatch(**batch.get_params())
    assert repr(again) == repr(batch) and not again.is_fitted


@settings(max_examples=20, deadline=None)
@given(
    st.lists(
        st.lists(
            st.one_of(st.floats(min_value=0, max_value=1e6), st.just(float("nan"))),
            min_size=25,
            max_size=25,
        ),
        min_size=1,
        max_size=4,
    )
)
def test_property_rows_match_the_scalar_model(rows):
    y = np.array(rows)
    out = AdaptiveHoltBatch(**SMALL).fit(y).predict(4, QS)
    assert np.isfinite(out).all() and (out >= 0).all()
    assert np.allclose(out, scalar(y, 4, **SMALL), rtol=1e-9, atol=1e-6)

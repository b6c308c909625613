"""Accuracy metrics on hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forecasting.metrics import interval_coverage, mase, weighted_quantile_loss


def test_a_perfect_forecast_scores_zero():
    y = [3.0, 1.0, 4.0, 1.0, 5.0]
    assert mase(y, y, insample=[1.0, 2.0, 4.0], season=1) == 0.0
    assert weighted_quantile_loss(y, np.column_stack([y, y]), [0.1, 0.9]) == 0.0


def test_mase_by_hand():
    # in-sample naive errors |2-1|, |3-2|, |4-3| -> scale 1; forecast errors 0 and 2 -> MAE 1
    assert mase([5.0, 6.0], [5.0, 8.0], insample=[1.0, 2.0, 3.0, 4.0]) == 1.0
    # season 2: |2-1| and |6-5| -> scale 1; error 3
    assert mase([9.0], [6.0], insample=[1.0, 5.0, 2.0, 6.0], season=2) == 3.0


def test_mase_degenerate_scale_and_gaps():
    assert mase([1.0], [1.0], insample=[4.0, 4.0]) == 0.0
    assert mase([1.0], [2.0], insample=[4.0, 4.0]) == math.inf
    assert mase([1.0, np.nan], [2.0, 5.0], insample=[0.0, 2.0]) == 0.5
    assert math.isnan(mase([np.nan], [1.0], insample=[0.0, 1.0]))
    with pytest.raises(ValueError):
        mase([1.0, 2.0], [1.0], insample=[0.0, 1.0])


def test_weighted_quantile_loss_by_hand():
    # median [2, 2, 2] vs [1, 2, 3]: pinball 0.5 + 0 + 0.5 = 1; 2 * 1 / 6
    assert weighted_quantile_loss([1.0, 2.0, 3.0], [2.0, 2.0, 2.0], [0.5]) == pytest.approx(1 / 3)
    # q=0.1 forecasts 0 (under by 10: 0.1 * 10 = 1); q=0.9 forecasts 20 (over by 10: 0.1 * 10 = 1)
    # each 2 * 1 / 10 = 0.2, mean 0.2
    wql = weighted_quantile_loss([10.0], [[0.0, 20.0]], [0.1, 0.9])
    assert wql == pytest.approx(0.2)
    # q=0.9 forecast under by 10 costs 9: 2 * 9 / 10
    assert weighted_quantile_loss([10.0], [[0.0]], [0.9]) == pytest.approx(1.8)


def test_weighted_quantile_loss_skips_gaps_and_checks_shapes():
    assert weighted_quantile_loss([1.0, np.nan], [[2.0], [7.0]], [0.5]) == pytest.approx(1.0)
    assert weighted_quantile_loss([0.0], [[1.0]], [0.5]) == math.inf
    with pytest.raises(ValueError):
        weighted_quantile_loss([1.0, 2.0], [[1.0, 2.0]], [0.5])


def test_interval_coverage_counts_inclusive_bounds_and_skips_gaps():
    assert interval_coverage([1, 2, 3, 4], [0, 2, 0, 5], [2, 2, 2, 6]) == 0.5
    assert interval_coverage([1.0, np.nan], [0.0, 0.0], [2.0, 2.0]) == 1.0
    assert math.isnan(interval_coverage([np.nan], [0.0], [1.0]))


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(min_value=0.1, max_value=1e4), min_size=1, max_size=30),
    st.floats(min_value=0.01, max_value=0.99),
    st.floats(min_value=0.0, max_value=100.0),
)
def test_property_wql_is_non_negative_and_grows_with_the_error(actual, q, shift):
    y = np.asarray(actual)
    near = weighted_quantile_loss(y, y + shift, [q])
    far = weighted_quantile_loss(y, y + 2 * shift, [q])
    assert 0.0 <= near <= far + 1e-12

"""What policies see: histogram_quantile and rate() as Prometheus computes them."""

from __future__ import annotations

import numpy as np
import pytest

from autoscaler.simulation.observation import (
    TTFT_BUCKETS,
    Histogram,
    histogram_quantile,
    one_two_five_buckets,
)


def test_histogram_quantile_interpolates_inside_the_bucket():
    bounds = np.array([1.0, 2.0, 4.0])
    delta = np.array([10, 10, 0, 0])  # 10 in (0,1], 10 in (1,2]
    assert histogram_quantile(0.5, bounds, delta) == pytest.approx(1.0)
    assert histogram_quantile(0.75, bounds, delta) == pytest.approx(1.5)
    assert histogram_quantile(0.25, bounds, delta) == pytest.approx(0.5)


def test_histogram_quantile_in_the_inf_bucket_returns_the_highest_bound():
    bounds = np.array([1.0, 2.0])
    assert histogram_quantile(0.9, bounds, np.array([1, 0, 9])) == 2.0


def test_histogram_quantile_of_nothing_is_none():
    assert histogram_quantile(0.9, np.array([1.0]), np.array([0, 0])) is None


def test_observations_land_in_le_buckets():
    h = Histogram(TTFT_BUCKETS)
    h.observe_many(np.array([0.1, 0.1000001, 5.0, 9999.0, np.nan]))
    idx_01 = TTFT_BUCKETS.index(0.1)
    assert h.counts[idx_01] == 1  # le="0.1" holds exactly 0.1
    assert h.counts[idx_01 + 1] == 1
    assert h.counts[-1] == 1  # +Inf
    assert h.counts.sum() == 4


def test_one_two_five_buckets_match_vllm():
    assert one_two_five_buckets(8192)[:7] == (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)
    assert one_two_five_buckets(8192)[-1] == 5000.0

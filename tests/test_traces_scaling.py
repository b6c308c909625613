"""``scale_rate`` (--rate-scale K): counts, duration, determinism, thinning, wrap-around."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.errors import InputError
from autoscaler.traces.readers import read_trace
from autoscaler.traces.records import Trace, from_columns
from autoscaler.traces.scaling import scale_rate

AZURE = "traces/azure2023_conv.csv"


@pytest.fixture
def azure(shared_file: Callable[[str], Path]) -> Trace:
    return read_trace(shared_file(AZURE))


def small_trace(arrivals: list[float]) -> Trace:
    n = len(arrivals)
    return from_columns("t.csv", "azure", arrivals, np.arange(1, n + 1), np.arange(n) % 7 + 1)


@pytest.mark.parametrize("k", [2, 3, 20])
def test_integer_k_makes_k_copies(azure, k):
    scaled = scale_rate(azure, k, seed=1)
    assert scaled.requests == k * azure.requests
    assert scaled.duration_s == azure.duration_s
    assert scaled.rate_scale == k
    assert np.all(np.diff(scaled.arrival_s) >= 0)
    assert scaled.arrival_s.min() >= 0 and scaled.arrival_s.max() <= azure.duration_s
    # every request of the trace appears k times (same pairs, only moved in time)
    assert np.array_equal(np.sort(scaled.prompt_tokens), np.sort(np.tile(azure.prompt_tokens, k)))
    assert scaled.output_tokens.sum() == k * azure.output_tokens.sum()


def test_shape_is_kept_per_minute(azure):
    scaled = scale_rate(azure, 4, seed=0)
    base = np.bincount((azure.arrival_s // 60).astype(int))
    four = np.bincount((scaled.arrival_s // 60).astype(int), minlength=base.size)
    # a 5 s jitter moves at most 5/60 of a minute's requests to the next minute
    assert np.all(np.abs(four[1:-1] - 4 * base[1:-1]) <= 0.35 * 4 * base[1:-1])


@pytest.mark.parametrize("k", [0.3, 1.5, 2.5])
def test_fractional_k_thins_the_last_copy(azure, k):
    n = azure.requests
    scaled = scale_rate(azure, k, seed=5)
    frac = k - math.floor(k)
    sd = math.sqrt(n * frac * (1 - frac))
    assert abs(scaled.requests - k * n) < 5 * sd
    assert scaled.duration_s == azure.duration_s
    assert scaled.rate_scale == pytest.approx(k)


def test_k_one_is_the_trace_itself(azure):
    same = scale_rate(azure, 1.0, seed=9)
    assert np.array_equal(same.arrival_s, azure.arrival_s)
    assert np.array_equal(same.prompt_tokens, azure.prompt_tokens)


def test_same_seed_same_trace_other_seed_differs(azure):
    a = scale_rate(azure, 2.5, seed=11)
    b = scale_rate(azure, 2.5, seed=11)
    c = scale_rate(azure, 2.5, seed=12)
    assert np.array_equal(a.arrival_s, b.arrival_s)
    assert np.array_equal(a.output_tokens, b.output_tokens)
    assert not np.array_equal(a.arrival_s[: c.requests], c.arrival_s[: a.requests])


def test_shifted_arrivals_wrap_to_the_start():
    trace = small_trace([0.0, 50.0, 99.9, 100.0])  # duration 100
    scaled = scale_rate(trace, 2, seed=3, jitter_s=5.0)
    assert scaled.requests == 8
    assert scaled.duration_s == 100.0
    assert scaled.arrival_s.max() <= 100.0
    # copy 1 is shifted by s in (0, 5): its 0.0 lands at s, and its 99.9 and 100.0 pass the
    # end and wrap to s - 0.1 and s; with copy 0's 0.0 that is 4 arrivals in the first 5 s
    assert int(np.sum(scaled.arrival_s < 5.0)) == 4
    assert int(np.sum(scaled.arrival_s > 95.0)) == 2


def test_single_instant_trace_is_not_jittered():
    trace = small_trace([3.0])
    scaled = scale_rate(trace, 3, seed=0)
    assert scaled.arrival_s.tolist() == [0.0, 0.0, 0.0]


def test_rate_scale_composes():
    trace = small_trace([0.0, 1.0, 2.0, 3.0])
    assert scale_rate(scale_rate(trace, 2), 3).rate_scale == 6


@pytest.mark.parametrize("k", [0, -1, float("nan"), float("inf")])
def test_non_positive_or_non_finite_k_is_refused(k):
    with pytest.raises(InputError, match=r"--rate-scale must be > 0, got"):
        scale_rate(small_trace([0.0, 1.0]), k)


@settings(max_examples=60, deadline=None)
@given(
    arrivals=st.lists(
        st.floats(0, 500, allow_nan=False, allow_infinity=False), min_size=1, max_size=60
    ),
    k=st.floats(0.05, 6.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_scale_rate_properties(arrivals, k, seed):
    trace = small_trace(arrivals)
    scaled = scale_rate(trace, k, seed=seed)
    n = trace.requests
    assert math.floor(k) * n <= scaled.requests <= math.ceil(k) * n
    assert scaled.duration_s == trace.duration_s
    assert np.all(np.diff(scaled.arrival_s) >= 0)
    assert np.all(scaled.arrival_s >= 0) and np.all(scaled.arrival_s <= trace.duration_s)
    # requests keep their (prompt, output) pairs: prompts are 1..n, outputs (prompt - 1) % 7 + 1
    assert np.all((scaled.prompt_tokens - 1) % 7 + 1 == scaled.output_tokens)
    assert np.all((scaled.prompt_tokens >= 1) & (scaled.prompt_tokens <= n))
    again = scale_rate(trace, k, seed=seed)
    assert np.array_equal(again.arrival_s, scaled.arrival_s)

"""ServeGen rate windows: read per model, gaps become missing, Poisson expansion into requests."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from autoscaler.errors import InputError, TraceFormatError, UnknownNameError
from autoscaler.traces import servegen
from autoscaler.traces.readers import read_trace

SERVEGEN = "traces/servegen_aggregate_rate_10min.csv"
HEADER = (
    "category,model,window_start_s,total_rate_rps,active_clients,top_client_rate_rps,"
    "rate_weighted_cv"
)


def test_m_large_has_two_weeks_of_windows(shared_file):
    windows = servegen.read_rate_windows(shared_file(SERVEGEN), "m-large")
    assert windows.n_windows == 2_016
    assert windows.duration_s == 2_016 * 600
    assert windows.category == "language"
    assert not windows.missing.any()
    assert np.all(np.diff(windows.window_start_s) == 600.0)
    # README: m-large min 48.4 / mean 195.8 / max 583.0 req/s
    assert windows.rate_rps.mean() == pytest.approx(195.8, abs=0.05)
    # the CV column is kept as read: window 3 (1800 s) has a per-client mean CV of 32.159
    assert windows.client_cv_mean[3] == pytest.approx(32.159)


def test_m_mid_zero_windows_are_missing(shared_file):
    windows = servegen.read_rate_windows(shared_file(SERVEGEN), "m-mid")
    assert windows.n_windows == 2_016
    assert int(windows.missing.sum()) == 84  # README: m-mid has 84 zero windows
    assert not np.any(windows.rate_rps == 0.0)
    assert np.all(windows.active_clients[windows.missing] == 0)
    # README's mean (1,790 req/s) counts the gaps as 0; without them the mean is higher
    assert np.nansum(windows.rate_rps) / 2_016 == pytest.approx(1_790, abs=1)
    assert np.nanmean(windows.rate_rps) == pytest.approx(1_790 * 2_016 / 1_932, rel=1e-3)


def test_expand_mm_image_counts_are_within_poisson_tolerance(shared_file):
    windows = servegen.read_rate_windows(shared_file(SERVEGEN), "mm-image").window_slice(10, 2)
    trace = servegen.expand_to_requests(windows, seed=7)
    expected = float(windows.rate_rps.sum() * 600)
    assert abs(trace.requests - expected) < 5 * math.sqrt(expected)
    assert trace.duration_s == 1200.0
    assert trace.arrival_s.min() >= 0.0 and trace.arrival_s.max() < 1200.0
    assert np.all(np.diff(trace.arrival_s) >= 0)
    per_window = np.bincount((trace.arrival_s // 600).astype(int), minlength=2)
    for count, rate in zip(per_window, windows.rate_rps, strict=True):
        assert abs(count - rate * 600) < 5 * math.sqrt(rate * 600)
    # lengths come from the synthetic generator's Azure-fitted mixture
    assert trace.prompt_tokens.min() >= 2 and trace.output_tokens.max() <= 1000


def test_expand_is_deterministic_per_seed(shared_file):
    windows = servegen.read_rate_windows(shared_file(SERVEGEN), "mm-image").window_slice(0, 1)
    a = servegen.expand_to_requests(windows, seed=1)
    b = servegen.expand_to_requests(windows, seed=1)
    c = servegen.expand_to_requests(windows, seed=2)
    assert np.array_equal(a.arrival_s, b.arrival_s)
    assert np.array_equal(a.prompt_tokens, b.prompt_tokens)
    assert not np.array_equal(a.arrival_s[:100], c.arrival_s[:100])


def test_missing_windows_produce_no_requests(shared_file):
    windows = servegen.read_rate_windows(shared_file(SERVEGEN), "m-mid")
    gap = int(np.flatnonzero(windows.missing)[0])
    part = windows.window_slice(gap - 1, 3)
    assert part.missing.tolist()[1] is True
    # m-mid runs at ~1,800 req/s; a thousandth keeps the test small and the gap a gap
    trace = servegen.expand_to_requests(replace(part, rate_rps=part.rate_rps / 1000), seed=0)
    in_gap = (trace.arrival_s >= 600) & (trace.arrival_s < 1200)
    assert trace.requests > 0
    assert not in_gap.any()


def test_too_large_expansion_is_refused(shared_file):
    windows = servegen.read_rate_windows(shared_file(SERVEGEN), "m-large")
    with pytest.raises(InputError, match="window_slice"):
        servegen.expand_to_requests(windows, seed=0)


def test_read_trace_expands_one_model(shared_file):
    trace = read_trace(shared_file(SERVEGEN), servegen_model="mm-image", seed=3)
    assert trace.format == "servegen"
    assert trace.duration_s == 144 * 600
    expected = 9.474654 * 144 * 600  # README mean 9.5 req/s over one day
    assert abs(trace.requests - expected) < 5 * math.sqrt(expected)


def test_absent_rows_and_small_idle_models(tmp_path):
    path = tmp_path / "sg.csv"
    path.write_text(
        "\n".join(
            [
                HEADER,
                "language,busy,0,5.0,3,2.0,1.1",
                "language,busy,600,0.0,0,0.0,",  # zero in a busy model: a gap
                "language,busy,1800,6.0,3,2.0,1.2",  # 1200 absent from the grid: a gap
                "language,idle,0,0.01,1,0.01,1.0",  # ~6 requests per window: zeros are real
                "language,idle,600,0.0,0,0.0,",
            ]
        )
    )
    busy = servegen.read_rate_windows(path, "busy")
    assert busy.missing.tolist() == [False, True, True, False]
    assert busy.window_start_s.tolist() == [0.0, 600.0, 1200.0, 1800.0]
    assert math.isnan(busy.client_cv_mean[1])
    idle = servegen.read_rate_windows(path, "idle")
    assert idle.rate_rps.tolist() == [0.01, 0.0]
    assert servegen.list_models(path) == ["busy", "idle"]
    with pytest.raises(UnknownNameError, match="busy, idle"):
        servegen.read_rate_windows(path, "other")


@pytest.mark.parametrize(
    ("bad_row", "problem"),
    [
        ("language,m,600,fast,3,2.0,1.1", "column total_rate_rps: 'fast' is not a number"),
        ("language,m,600,-1.0,3,2.0,1.1", "total_rate_rps: -1.0 is negative"),
        ("language,m,900,1.0,3,2.0,1.1", "not on the 600 s grid"),
        ("language,m,0,1.0,3,2.0,1.1", "already given on line 2"),
        ("language,m,600,1.0,3,2.0", "expected 7 columns"),
    ],
)
def test_malformed_servegen_row_names_path_and_line(tmp_path, bad_row, problem):
    path = tmp_path / "sg.csv"
    path.write_text("\n".join([HEADER, "language,m,0,5.0,3,2.0,1.1", bad_row]))
    with pytest.raises(TraceFormatError) as info:
        servegen.read_rate_windows(path, "m")
    assert f"{path}:3:" in str(info.value)
    assert problem in str(info.value)


def test_window_slice_bounds():
    windows = servegen.RateWindows(
        path="x",
        category="c",
        model="m",
        window_start_s=np.array([0.0, 600.0]),
        rate_rps=np.array([1.0, 2.0]),
        active_clients=np.array([1, 1]),
        top_client_rate_rps=np.array([1.0, 1.0]),
        client_cv_mean=np.array([1.0, 1.0]),
    )
    assert windows.window_slice(1).rate_rps.tolist() == [2.0]
    with pytest.raises(InputError):
        windows.window_slice(1, 5)

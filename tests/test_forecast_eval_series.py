"""Demand series from traces (autoscaler.offline.series): binning, units, gaps, and input errors."""

from __future__ import annotations

import numpy as np
import pytest

from autoscaler.errors import InputError, UnknownNameError
from autoscaler.offline.series import load_series, servegen_series, token_work_weights, trace_series
from autoscaler.traces.records import from_columns


def _trace(duration_s=45.0):
    #            interval 0 (0..15)   interval 1     interval 2      partial (45..)
    arrivals = [0.0, 1.0, 14.9, 15.0, 29.0, 31.0, 44.0, 44.5, 45.0]
    prompts = [100, 200, 300, 10, 20, 1000, 0, 0, 7]
    outputs = [10, 0, 30, 1, 1, 50, 5, 5, 9]
    return from_columns("t.csv", "azure", arrivals, prompts, outputs, duration_s=duration_s)


def test_requests_per_second_in_whole_intervals_only():
    y = trace_series(_trace(50.0), interval_s=15.0, kind="requests")
    # 50 s -> three whole intervals; the arrival at 45 s falls in the dropped partial one
    np.testing.assert_allclose(y, [3 / 15, 2 / 15, 3 / 15])


def test_token_series_count_at_arrival_and_floor_outputs_at_one():
    t = _trace()
    np.testing.assert_allclose(trace_series(t, interval_s=15, kind="prompt_tokens") * 15,
                               [600, 30, 1000])  # fmt: skip
    np.testing.assert_allclose(trace_series(t, interval_s=15, kind="decode_tokens") * 15,
                               [10 + 1 + 30, 2, 60])  # fmt: skip


def test_token_work_uses_the_oracle_weights():
    t = _trace()
    wp, wd = token_work_weights()
    assert wp == 1.0 and 0 < wd
    work = trace_series(t, interval_s=15, kind="token_work")
    np.testing.assert_allclose(work * 15, [600 * wp + 41 * wd, 30 * wp + 2 * wd, 1000 + 60 * wd])
    custom = trace_series(t, interval_s=15, kind="token_work", weights=(2.0, 0.0))
    np.testing.assert_allclose(custom * 15, [1200, 60, 2000])


def test_series_input_errors():
    with pytest.raises(UnknownNameError, match="tokens_per_hour"):
        trace_series(_trace(), kind="tokens_per_hour")
    with pytest.raises(InputError, match="positive"):
        trace_series(_trace(), interval_s=0)
    with pytest.raises(InputError, match="shorter than one"):
        trace_series(_trace(10.0), interval_s=15)


HEADER = "category,model,window_start_s,total_rate_rps,active_clients,top_client_rate_rps,"
SERVEGEN = (
    HEADER
    + """rate_weighted_cv
language,busy,0,10.0,5,2,1
language,busy,600,12.0,5,2,1
language,busy,1200,0,0,0,
language,busy,1800,14.0,5,2,1
language,busy,3000,16.0,5,2,1
language,quiet,0,0.001,1,0.001,1
language,quiet,600,0,0,0,
"""
)


@pytest.fixture
def servegen_file(tmp_path):
    path = tmp_path / "rates.csv"
    path.write_text(SERVEGEN)
    return path


def test_servegen_series_keeps_gaps_as_nan(servegen_file):
    series = servegen_series(servegen_file)
    assert list(series) == ["busy", "quiet"]
    # the zero window of a busy model and the absent 2400 s row are gaps
    np.testing.assert_array_equal(series["busy"], [10.0, 12.0, np.nan, 14.0, np.nan, 16.0])
    np.testing.assert_array_equal(series["quiet"], [0.001, 0.0])  # idle for real


def test_servegen_coarser_interval_averages_present_windows(servegen_file):
    series = servegen_series(servegen_file, model="busy", interval_s=1200)
    np.testing.assert_array_equal(series["busy"], [11.0, 14.0, 16.0])
    with pytest.raises(InputError, match="multiple"):
        servegen_series(servegen_file, interval_s=900)


def test_load_series_picks_defaults_by_format(servegen_file, tmp_path):
    data = load_series(servegen_file)
    assert data.format == "servegen" and data.interval_s == 600 and data.kind == "requests"
    with pytest.raises(InputError, match="rates only"):
        load_series(servegen_file, kind="token_work")
    azure = tmp_path / "a.csv"
    azure.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        + "".join(f"2023-11-16 18:{m:02d}:00.0,100,10\n" for m in range(10))
    )
    data = load_series(azure)
    assert data.interval_s == 15 and list(data.workloads) == ["trace"]
    assert data.workloads["trace"].size == 9 * 4
    with pytest.raises(InputError, match="no such file"):
        load_series(tmp_path / "missing.csv")

"""``forecast-eval``: the DESIGN.md JSON contract, the reference rule, horizon rounding, and
one-line CLI errors with exit code 2."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from autoscaler.cli import main
from autoscaler.errors import InputError
from autoscaler.offline.forecast_eval import forecast_eval, format_table, horizon_steps
from forecasting.holt import DampedHolt
from forecasting.naive import LastValue, SeasonalNaive

FIGURES = {"mase", "wql", "wql_ratio", "coverage_90", "windows"}


def _assert_contract(result):
    assert {"reference", "selected", "models"} <= set(result)
    assert result["reference"] in result["models"]
    assert result["selected"] in result["models"]
    for name, figures in result["models"].items():
        assert set(figures) == FIGURES, name
        assert isinstance(figures["windows"], int) and figures["windows"] >= 1
        for key in FIGURES - {"windows"}:
            value = figures[key]
            assert value is None or (isinstance(value, float) and math.isfinite(value)), key
    json.dumps(result, allow_nan=False)  # strict JSON: no NaN anywhere


def _daily(days, interval_s=600.0, seed=0):
    rng = np.random.default_rng(seed)
    per_day = round(86_400 / interval_s)
    t = np.arange(days * per_day)
    return 100 + 60 * np.sin(2 * np.pi * t / per_day) + rng.normal(0, 3, t.size)


def _models(season):
    return {
        "last-value": LastValue(),
        "seasonal-naive": SeasonalNaive(season_length=season),
        "holt": DampedHolt(),
    }


def test_contract_and_seasonal_reference_on_a_daily_series():
    y = _daily(4)
    result = forecast_eval(
        {"w": y}, interval_s=600, horizon_s=1200, models=_models(144), n_boot=100
    )
    _assert_contract(result)
    assert result["reference"] == "seasonal-naive"
    assert result["models"]["seasonal-naive"]["wql_ratio"] == pytest.approx(1.0)
    assert result["horizon_steps"] == 2 and result["season_length"] == 144
    # two days of warm-up, then every window to the end
    assert result["models"]["holt"]["windows"] == y.size - 2 - 288 + 1
    assert result["selected_by"] == "lowest_wql"
    best = min(result["models"], key=lambda n: result["models"][n]["wql"])
    assert result["selected"] == best
    assert "reference_by_workload" not in result


def test_short_series_fall_back_to_the_last_value_reference():
    y = _daily(1, interval_s=600)  # one day: no season has repeated
    result = forecast_eval({"w": y}, interval_s=600, horizon_s=600, models=_models(144), n_boot=50)
    assert result["reference"] == "last-value"
    assert result["models"]["last-value"]["wql_ratio"] == pytest.approx(1.0)


def test_mixed_workloads_name_their_own_reference_and_short_ones_are_skipped():
    series = {"long": _daily(3), "short": _daily(1), "tiny": np.ones(5)}
    result = forecast_eval(series, interval_s=600, horizon_s=600, models=_models(144), n_boot=50)
    assert result["reference"] == "seasonal-naive"
    assert result["reference_by_workload"] == {"long": "seasonal-naive", "short": "last-value"}
    assert set(result["skipped"]) == {"tiny"}
    assert set(result["workloads"]) == {"long", "short"}


def test_horizon_rounds_up_to_whole_intervals():
    assert horizon_steps(60, 15) == 4
    assert horizon_steps(50, 15) == 4
    assert horizon_steps(61, 15) == 5
    assert horizon_steps(5, 600) == 1
    result = forecast_eval(
        {"w": _daily(1, 15.0)[:300]}, interval_s=15, horizon_s=50, models=_models(5760), n_boot=20
    )
    assert result["horizon_steps"] == 4 and result["horizon_s"] == 60


@pytest.mark.parametrize("horizon", [0.0, -60.0, math.nan])
def test_bad_horizon_is_an_input_error(horizon):
    with pytest.raises(InputError, match="horizon"):
        forecast_eval({"w": np.ones(50)}, interval_s=15, horizon_s=horizon, models=_models(4))


def test_unknown_reference_and_nothing_long_enough_are_input_errors():
    with pytest.raises(InputError, match="reference"):
        forecast_eval(
            {"w": np.ones(60)}, interval_s=15, horizon_s=60, models={"holt": DampedHolt()}
        )
    with pytest.raises(InputError, match="long enough"):
        forecast_eval({"w": np.ones(5)}, interval_s=15, horizon_s=60, models=_models(4))


def test_format_table_lists_every_model_best_first():
    result = forecast_eval(
        {"w": _daily(3)}, interval_s=600, horizon_s=600, models=_models(144), n_boot=50
    )
    rows = format_table(result)
    assert rows[0][0] == "model" and len(rows) == 1 + len(result["models"])
    assert sum(r[0].startswith(f"{result['reference']} (ref") for r in rows[1:]) == 1
    assert rows[1][0].startswith(result["selected"]) and "sel)" in rows[1][0]  # lowest WQL


# --- the registry and the CLI on the shared trace ------------------------------------------


def test_default_models_are_the_registry(shared_file):
    from forecasting.registry import forecaster_names

    y = _daily(3)
    result = forecast_eval({"w": y}, interval_s=600, horizon_s=1200, n_boot=50)
    _assert_contract(result)
    assert set(result["models"]) == set(forecaster_names())
    # the selector is evaluated, so "selected" is its most frequent pick among its candidates
    assert result["selected_by"] == "selector_most_often"
    picks = result["selector_picks"]
    assert result["selected"] == max(picks, key=picks.get)
    assert sum(picks.values()) == pytest.approx(1.0, abs=1e-3)


def test_cli_json_contract_on_the_shared_azure_trace(shared_file, capsys):
    path = shared_file("traces/azure2023_conv.csv")
    assert main(["forecast-eval", "--trace", str(path), "--horizon", "240", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    _assert_contract(result)
    assert result["reference"] == "last-value"  # an hour is shorter than two days
    assert result["interval_s"] == 15 and result["horizon_steps"] == 16
    assert min(f["windows"] for f in result["models"].values()) >= 50


def test_cli_table_and_rounding_note(shared_file, capsys):
    path = shared_file("traces/azure2023_conv.csv")
    argv = ["forecast-eval", "--trace", str(path), "--horizon", "50", "--windows", "60"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert "using 4 steps (60 s)" in err
    assert "reference: last-value" in out and "WQL" in out


def _one_line_error(capsys, argv, *needles):
    code: object
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0]


@pytest.fixture
def tiny_trace(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        + "".join(f"2023-11-16 18:{m // 4:02d}:{15 * (m % 4):02d}.0,100,10\n" for m in range(80))
    )
    return path


def test_cli_bad_series_name_is_one_line(capsys, tiny_trace):
    argv = ["forecast-eval", "--trace", str(tiny_trace), "--horizon", "60", "--series", "gpus"]
    _one_line_error(capsys, argv, "gpus", "requests")


@pytest.mark.parametrize("horizon", ["-60", "0", "nan"])
def test_cli_bad_horizon_is_one_line(capsys, tiny_trace, horizon):
    argv = ["forecast-eval", "--trace", str(tiny_trace), "--horizon", horizon]
    _one_line_error(capsys, argv, "--horizon")


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--interval", "-15"], "--interval"),
        (["--windows", "0"], "--windows"),
        (["--format", "parquet"], "parquet"),
        (["--horizon-typo", "1"], "unrecognized"),
    ],
)
def test_cli_other_input_errors_are_one_line(capsys, tiny_trace, extra, needle):
    argv = ["forecast-eval", "--trace", str(tiny_trace), "--horizon", "60", *extra]
    _one_line_error(capsys, argv, needle)


def test_cli_missing_file_is_one_line(capsys, tmp_path):
    argv = ["forecast-eval", "--trace", str(tmp_path / "none.csv"), "--horizon", "60"]
    _one_line_error(capsys, argv, "none.csv")

"""The command line: help, the JSON contract, and one-line errors with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from autoscaler.cli import main
from autoscaler.simulation.results import FIGURES


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "autoscaler.cli", *argv], capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip


@pytest.mark.parametrize(
    "command",
    ["simulate", "demo", "profiles", "forecast-eval", "validate-config", "emulate", "serve"],
)
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert "usage:" in capsys.readouterr().out


def _assert_one_line_error(proc, *needles):
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0]


def test_malformed_trace_line_is_one_line_error_naming_file_and_line(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n"
                   "2023-11-16 18:15:46.6805900,374,44\n"
                   "2023-11-16 18:15:50.9951690,abc,109\n")  # fmt: skip
    proc = _run("simulate", "--trace", str(bad))
    _assert_one_line_error(proc, str(bad), ":3:")


def test_unknown_format_is_one_line_error(tmp_path):
    f = tmp_path / "t.csv"
    f.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.68,374,44\n")
    _assert_one_line_error(_run("simulate", "--trace", str(f), "--format", "parquet"), "parquet")


def test_unknown_policy_is_one_line_error(tmp_path):
    f = tmp_path / "t.csv"
    f.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.68,374,44\n")
    _assert_one_line_error(_run("simulate", "--trace", str(f), "--policy", "magic"), "magic")


def test_negative_rate_scale_is_one_line_error(tmp_path):
    f = tmp_path / "t.csv"
    f.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.68,374,44\n")
    _assert_one_line_error(_run("simulate", "--trace", str(f), "--rate-scale", "-2"),
                           "--rate-scale")  # fmt: skip


def test_warmup_flag_reaches_the_json_and_a_negative_one_is_refused(shared_file, capsys, tmp_path):
    path = shared_file("traces/azure2023_conv.csv")
    counts = {}
    for flag in ("0", "900"):
        code = main(["simulate", "--trace", str(path), "--policy", "kpa", "--seeds", "1",
                     "--warmup-s", flag, "--json"])  # fmt: skip
        assert code == 0
        out = json.loads(capsys.readouterr().out)
        assert out["warmup_s"] == float(flag) == out["yardstick"]["warmup_s"]
        counts[flag] = out["policies"]["kpa"]["requests"]
    assert counts["900"] < counts["0"] == 19_366
    f = tmp_path / "t.csv"
    f.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.68,374,44\n")
    _assert_one_line_error(_run("simulate", "--trace", str(f), "--warmup-s", "-5"), "--warmup-s")


def test_missing_trace_file_is_one_line_error(tmp_path):
    _assert_one_line_error(_run("simulate", "--trace", str(tmp_path / "nope.csv")), "nope.csv")


def test_simulate_json_contract_on_the_azure_trace(shared_file, capsys):
    path = shared_file("traces/azure2023_conv.csv")
    code = main(["simulate", "--trace", str(path), "--policy", "forecast",
                 "--policy", "hpa-queue@3", "--seeds", "1", "--json"])  # fmt: skip
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["trace"]["format"] == "azure"
    assert out["trace"]["requests"] == 19_366
    assert out["trace"]["rate_scale"] == 1.0
    assert out["trace"]["duration_s"] == pytest.approx(3501.7, abs=0.1)
    assert set(out["policies"]) == {"oracle", "oracle-late", "forecast", "hpa-queue@3"}
    assert out["yardstick"]["fleet_capacity"] > 0 and 0 < out["yardstick"]["slo_ceiling"] <= 1
    for figs in out["policies"].values():
        assert set(FIGURES) <= set(figs)
        assert 0.0 <= figs["slo_attainment"] <= 1.0
        assert figs["gpu_hours"] >= figs["work_bound_gpu_hours"] > 0
    assert out["profile"]["model"] == "llama2-70b" and out["profile"]["tp"] == 4
    assert out["slo"]["tpot_s"] == 0.1


def test_servegen_needs_a_model_and_names_the_choices(shared_file):
    path = shared_file("traces/servegen_aggregate_rate_10min.csv")
    _assert_one_line_error(_run("simulate", "--trace", str(path)), "--servegen-model", "m-large")


def test_servegen_runs_in_fluid_mode_with_the_same_contract(shared_file, capsys):
    path = shared_file("traces/servegen_aggregate_rate_10min.csv")
    code = main(["simulate", "--trace", str(path), "--servegen-model", "mm-image",
                 "--policy", "static-peak", "--json"])  # fmt: skip
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["trace"]["mode"] == "fluid" and out["trace"]["model"] == "mm-image"
    assert out["trace"]["duration_s"] == 144 * 600.0  # one day of 10-minute windows
    assert set(out["policies"]) == {"oracle", "oracle-late", "static-peak"}
    oracle, static = out["policies"]["oracle"], out["policies"]["static-peak"]
    assert set(FIGURES) <= set(oracle)
    assert oracle["slo_attainment"] >= 0.95
    assert static["gpu_hours"] >= oracle["gpu_hours"]  # the peak all day costs at least the plan
    assert static["max_replicas"] == out["oracle_peak_replicas"]


def test_fluid_mode_names_the_baselines_it_does_not_report(shared_file, capsys):
    path = shared_file("traces/servegen_aggregate_rate_10min.csv")
    code = main(["simulate", "--trace", str(path), "--servegen-model", "mm-image",
                 "--policy", "static-peak", "--policy", "apa"])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "static-peak" in out
    (line,) = [x for x in out.splitlines() if x.startswith("not reported: apa")]
    assert len(line) > len("not reported: apa: ")  # with its reason


def test_validate_config_accepts_the_example_and_names_the_field_of_a_bad_one(tmp_path, capsys):
    from pathlib import Path

    example = Path(__file__).resolve().parent.parent / "deploy/examples/llm-autoscaler.yaml"
    assert main(["validate-config", "--skip-files", str(example)]) == 0
    assert "workload" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text(example.read_text().replace("tpot_s:", "tpot_s: -1 #", 1))
    proc = _run("validate-config", str(bad))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "tpot_s" in proc.stderr and str(bad) in proc.stderr


def test_version_prints_the_installed_version_and_a_baked_in_revision(monkeypatch, capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"llm-autoscaler {version('llm-autoscaler')}"
    monkeypatch.setenv("LLM_AUTOSCALER_REVISION", "0123abc")
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip().endswith("(revision 0123abc)")


@pytest.mark.parametrize(
    "command",
    [["demo", "--out", "OUT"], ["report", "--prometheus", "http://127.0.0.1:9", "--out", "OUT"]],
)
def test_plots_without_the_report_extra_are_one_line_naming_the_extra(tmp_path, command):
    """The serving image leaves matplotlib out; demo and report then say which extra brings it."""
    argv = [a.replace("OUT", str(tmp_path / "out")) for a in command]
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"  # import matplotlib -> ImportError
        "from autoscaler.cli import main\n"
        f"raise SystemExit(main({argv!r}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "pip install 'llm-autoscaler[report]'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1

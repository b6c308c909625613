"""Engine settings are part of the question: ``--max-batched-tokens`` / ``--max-num-seqs`` reach
the profile everything reads, and the report compares token budgets with the fleet oracle."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from autoscaler.cli import main
from autoscaler.core.slo import SloSpec
from autoscaler.errors import InputError
from autoscaler.offline.report import build, contents, history, replay
from autoscaler.offline.report.engine_settings import (
    BUDGETS,
    MIN_SAVING,
    BudgetRow,
    EngineSettings,
    compare_budgets,
    recommend_budget,
)
from autoscaler.perf.profiles import MIN_BATCHED_TOKENS, get_profile, with_engine_settings
from autoscaler.simulation.oracle import work_weights
from autoscaler.simulation.runner import RunRequest
from autoscaler.traces.readers import read_trace
from autoscaler.traces.records import Trace
from autoscaler.traces.synthetic import SyntheticWorkload, generate

SLO = SloSpec()


@pytest.fixture(scope="module")
def trace_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ten minutes at 4 req/s of the Azure-like mix (a few replicas, seconds per oracle), as an
    Azure CSV so the CLI and the report read it."""
    trace = generate(SyntheticWorkload(duration_s=600, mean_rate_rps=4), seed=1)
    start = datetime(2023, 11, 16, 18, 0, 0)
    lines = ["TIMESTAMP,ContextTokens,GeneratedTokens"]
    for t, p, o in zip(trace.arrival_s, trace.prompt_tokens, trace.output_tokens, strict=True):
        stamp = (start + timedelta(seconds=float(t))).strftime("%Y-%m-%d %H:%M:%S.%f")
        lines.append(f"{stamp},{p},{o}")
    path = tmp_path_factory.mktemp("engine") / "trace.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def small_trace(trace_file: Path) -> Trace:
    return read_trace(trace_file)


@pytest.fixture(scope="module")
def oracle_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One fleet-oracle cache for the module: a budget's profile is the same whatever the current
    budget, so the report and the other comparisons reuse the first comparison's bisections."""
    return tmp_path_factory.mktemp("oracle-cache")


@pytest.fixture(scope="module")
def compared(small_trace: Trace, oracle_cache: Path) -> EngineSettings:
    return compare_budgets(small_trace, get_profile(), SLO, cache_dir=oracle_cache)


# -- the profile ---------------------------------------------------------------------------------


def test_engine_settings_replace_the_profiles_limits_and_nothing_else():
    base = get_profile()
    p = with_engine_settings(base, max_batched_tokens=2048, max_num_seqs=128)
    assert (p.max_batched_tokens, p.max_num_seqs) == (2048, 128)
    assert replace(p, max_batched_tokens=base.max_batched_tokens, max_num_seqs=256) == base
    assert p.describe()["max_batched_tokens"] == 2048 and p.describe()["max_num_seqs"] == 128
    assert with_engine_settings(base) == base


@pytest.mark.parametrize(
    ("tokens", "seqs", "needle"),
    [
        (MIN_BATCHED_TOKENS - 1, None, "max_batched_tokens must be an integer >= 64"),
        (None, 0, "max_num_seqs must be an integer >= 1"),
        (128, 256, "max_batched_tokens (128) must be >= max_num_seqs (256)"),
    ],
)
def test_bad_engine_settings_are_refused_by_name(tokens, seqs, needle):
    with pytest.raises(InputError) as exc:
        with_engine_settings(get_profile(), max_batched_tokens=tokens, max_num_seqs=seqs)
    assert needle in str(exc.value)


# -- the flags -----------------------------------------------------------------------------------


def test_the_flags_set_the_effective_profile_of_simulate(trace_file, capsys):
    code = main(["simulate", "--trace", str(trace_file), "--policy", "static-peak", "--seeds",
                 "1", "--max-batched-tokens", "2048", "--max-num-seqs", "128", "--json",
                 "--oracle-cache", "off"])  # fmt: skip
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["profile"]["max_batched_tokens"] == 2048
    assert out["profile"]["max_num_seqs"] == 128


def test_without_the_flags_the_profile_keeps_its_defaults(trace_file, capsys):
    code = main(["simulate", "--trace", str(trace_file), "--policy", "static-peak", "--seeds",
                 "1", "--json"])  # fmt: skip
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["profile"]["max_batched_tokens"], out["profile"]["max_num_seqs"]) == (8192, 256)


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("command", ["simulate", "report"])
@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--max-batched-tokens", "32"),
        ("--max-batched-tokens", "0"),
        ("--max-batched-tokens", "4k"),
        ("--max-num-seqs", "0"),
        ("--max-num-seqs", "-3"),
        ("--max-num-seqs", "1.5"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_flag_and_exit_2(
    command, flag, value, trace_file, tmp_path, capsys
):
    argv = [command, "--trace", str(trace_file), flag, value]
    if command == "report":
        argv += ["--out", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    line = _one_line(capsys)
    assert flag in line and value in line


@pytest.mark.parametrize("command", ["simulate", "report"])
def test_a_budget_below_the_sequence_cap_is_one_line_naming_both_flags(
    command, trace_file, tmp_path, capsys
):
    argv = [command, "--trace", str(trace_file), "--max-batched-tokens", "128"]
    if command == "report":
        argv += ["--out", str(tmp_path / "out")]
    assert main(argv) == 2
    line = _one_line(capsys)
    assert "--max-batched-tokens (128)" in line and "--max-num-seqs (256)" in line
    assert not (tmp_path / "out").exists()


# -- the comparison ------------------------------------------------------------------------------


def test_one_row_per_budget_with_positive_gpu_hours(compared):
    assert [r.max_batched_tokens for r in compared.rows] == list(BUDGETS)
    assert compared.current == 8192 and compared.max_num_seqs == 256
    for r in compared.rows:
        assert r.gpu_hours > 0 and r.fleet_capacity > 0 and r.replica_capacity > 0
        assert 0 < r.slo_ceiling <= 1
        if r.target_met:
            assert r.attainment_feasible >= SLO.attainment_target


def test_the_cheapest_budget_meeting_the_target_is_recommended(compared):
    eligible = [r for r in compared.rows if r.max_batched_tokens in compared.eligible]
    assert eligible and all(r.target_met for r in eligible)
    cheapest = min(eligible, key=lambda r: r.gpu_hours)
    pick = compared.row(compared.recommended)
    now = compared.row(compared.current)
    if pick is now:  # kept: nothing saves more than the noise
        assert now.gpu_hours - cheapest.gpu_hours <= MIN_SAVING * now.gpu_hours
    else:
        assert pick.gpu_hours == cheapest.gpu_hours
    assert f"{compared.recommended:,}" in compared.reason


def test_the_json_round_trips(compared):
    data = json.loads(json.dumps(compared.to_json()))
    assert data["current_max_batched_tokens"] == 8192
    assert data["recommended_max_batched_tokens"] == compared.recommended
    assert [r["max_batched_tokens"] for r in data["rows"]] == list(BUDGETS)


def test_a_current_budget_off_the_grid_is_compared_too(small_trace, oracle_cache):
    profile = with_engine_settings(get_profile(), max_batched_tokens=3000)
    e = compare_budgets(small_trace, profile, SLO, budgets=(2048, 4096), cache_dir=oracle_cache)
    assert [r.max_batched_tokens for r in e.rows] == [2048, 3000, 4096]
    assert e.current == 3000


def test_budgets_below_the_sequence_cap_are_skipped(small_trace):
    profile = with_engine_settings(get_profile(), max_batched_tokens=2048, max_num_seqs=1024)
    e = compare_budgets(small_trace, profile, SLO, budgets=(512, 2048))
    assert e.skipped == (512,) and [r.max_batched_tokens for r in e.rows] == [2048]


def _row(budget: int, gpu_hours: float, ceiling: float = 1.0, met: bool = True) -> BudgetRow:
    return BudgetRow(budget, gpu_hours, 5000.0, 5000.0, 0.991 if met else 0.9, ceiling, met)


def test_recommend_the_cheapest_and_say_how_much_it_saves():
    rows = [_row(512, 12.0), _row(2048, 9.0), _row(8192, 10.0), _row(16384, 11.0)]
    e = recommend_budget(rows, 8192, SLO, max_num_seqs=256)
    assert e.recommended == 2048
    assert e.reason.startswith("2,048: 10% fewer GPU-hours than the current 8,192")
    assert "smaller budgets cost more (512: +33%)" in e.reason
    assert "larger budgets cost more (16,384: +22%)" in e.reason


def test_a_saving_within_the_noise_keeps_the_current_budget():
    rows = [_row(4096, 9.9), _row(8192, 10.0), _row(16384, 10.1)]
    e = recommend_budget(rows, 8192, SLO, max_num_seqs=256)
    assert e.recommended == 8192
    assert e.reason.startswith("keep 8,192 (4,096, the cheapest, saves only 1.0% of the GPU-hours")


def test_a_budget_that_gives_up_requests_is_not_a_saving():
    rows = [_row(512, 7.0, ceiling=0.96), _row(2048, 9.0), _row(8192, 10.0)]
    e = recommend_budget(rows, 8192, SLO, max_num_seqs=256)
    assert e.recommended == 2048 and 512 not in e.eligible
    assert "512 would cost 22% less but leaves 4.00% of requests" in e.reason


def test_no_budget_meeting_the_target_says_so():
    rows = [_row(2048, 50.0, met=False), _row(8192, 50.0, ceiling=0.99, met=False)]
    e = recommend_budget(rows, 8192, SLO, max_num_seqs=256)
    assert e.eligible == () and "no budget meets" in e.reason


# -- the report ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def report_dir(
    trace_file: Path, oracle_cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[contents.Report, Path, list[tuple[str, float]]]:
    profile = with_engine_settings(get_profile(), max_batched_tokens=4096)
    hist = history.from_trace(trace_file, weights=work_weights(profile, SLO), workload="llm/chat")
    req = RunRequest(
        policies=replay.policy_labels([1.0], []),
        profile=profile,
        slo=SLO,
        seeds=1,
        oracle_cache=oracle_cache,
    )
    calls: list[tuple[str, float]] = []
    report = build.build_report(hist, req, progress=lambda n, f: calls.append((n, f)))
    out = tmp_path_factory.mktemp("report")
    build.write_report(report, out, progress=lambda n, f: calls.append((n, f)))
    return report, out, calls


def test_the_report_has_the_section_in_every_file(report_dir):
    report, out, calls = report_dir
    e = report.engine_settings
    assert e is not None and e.current == 4096
    data = json.loads((out / "report.json").read_text())
    section = data["engine_settings"]
    assert section["current_max_batched_tokens"] == 4096
    assert [r["max_batched_tokens"] for r in section["rows"]] == list(BUDGETS)
    assert section["recommended_max_batched_tokens"] == e.recommended
    assert data["simulation"]["profile"]["max_batched_tokens"] == 4096
    markdown = (out / "report.md").read_text()
    page = (out / "report.html").read_text()
    for text in ("Engine token budget", "4,096 (current", "GPU-hours at the SLO"):
        assert text in markdown and text in page, text
    assert f"vLLM's --max-num-batched-tokens: {e.reason}." in markdown
    finished = [n for n, f in calls if f >= 1.0]
    assert finished.count(build.ENGINE) == 1
    assert len(finished) == build.step_count("requests", report.request)


def test_a_rate_history_skips_the_section_with_the_reason():
    hist = history.History(
        workload="llm/chat",
        source={"kind": "trace"},
        interval_s=60.0,
        demand=np.ones(10),
        weights=(1.0, 1.0),
    )
    req = RunRequest(policies=[], profile=get_profile(), slo=SLO, seeds=1)
    calls: list[tuple[str, float]] = []
    result, note = build.engine_settings(hist, req, lambda n, f: calls.append((n, f)))
    assert result is None and note is not None and "request-level" in note
    assert calls == [(build.ENGINE, 0.0), (build.ENGINE, 1.0)]

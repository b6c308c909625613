"""``llm-autoscaler emulate``: one-line errors with exit code 2, and a short real run."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta

import pytest

from autoscaler.cli import main
from autoscaler.traces.synthetic import SyntheticWorkload, generate


def _run(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "autoscaler.cli", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def trace_file(tmp_path_factory):
    """The tiny synthetic trace written as an Azure CSV."""
    trace = generate(SyntheticWorkload(duration_s=120, mean_rate_rps=5), seed=0)
    start = datetime(2023, 11, 16, 18, 0, 0)
    lines = ["TIMESTAMP,ContextTokens,GeneratedTokens"]
    for t, p, o in zip(trace.arrival_s, trace.prompt_tokens, trace.output_tokens, strict=True):
        stamp = (start + timedelta(seconds=float(t))).strftime("%Y-%m-%d %H:%M:%S.%f")
        lines.append(f"{stamp},{p},{o}")
    path = tmp_path_factory.mktemp("emu") / "trace.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_emulate_has_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["emulate", "--help"])
    assert exc.value.code == 0
    assert "--replicas" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--replicas", "0"], "--replicas must be >= 1"),
        (["--replicas", "two"], "--replicas"),
        (["--replicas", "2", "--engine", "nope"], "unknown engine 'nope'"),
        (["--replicas", "2", "--speed", "-3"], "--speed must be > 0"),
        (["--replicas", "2", "--workload", "nonamespace"], "NAMESPACE/NAME"),
    ],
)
def test_emulate_bad_input_is_one_line_exit_2(trace_file, extra, needle):
    proc = _run("emulate", "--trace", str(trace_file), "--port", "0", *extra)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert needle in lines[0]


def test_emulate_missing_trace_is_one_line_exit_2(tmp_path):
    proc = _run("emulate", "--trace", str(tmp_path / "nope.csv"), "--replicas", "1", "--port", "0")
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_emulate_serves_then_exits_after_duration(trace_file):
    proc = _run(
        "emulate",
        "--trace",
        str(trace_file),
        "--replicas",
        "2",
        "--port",
        "0",
        "--speed",
        "100",
        "--duration",
        "0.5",
    )
    assert proc.returncode == 0, proc.stderr
    assert "emulating 2 vllm replica(s)" in proc.stderr
    assert "http://127.0.0.1:" in proc.stderr

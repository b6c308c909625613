"""``llm-autoscaler report`` end to end: flags, one-line errors, and the Prometheus source over
real HTTP (the project's PrometheusClient against a local server answering canned range
queries, the same data tests/test_report_history.py feeds its data fake)."""

from __future__ import annotations

import json
import socket
import threading
import urllib.parse
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from autoscaler.cli import main
from autoscaler.clients.prometheus import RangeSeries
from tests.test_report_history import START, STEP, canned_history

FEW = ["--headroom", "0.9,1.1", "--baseline", "static-peak"]


class CannedPrometheus:
    """``/api/v1/query_range`` answering from ``{promql: [RangeSeries]}``; empty otherwise."""

    def __init__(self, answers: Mapping[str, list[RangeSeries]]) -> None:
        self.answers = answers
        self.queries: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                form = urllib.parse.parse_qs(self.rfile.read(length).decode())
                query = form["query"][0]
                start, end = float(form["start"][0]), float(form["end"][0])
                outer.queries.append(query)
                result = [
                    {
                        "metric": dict(s.labels),
                        "values": [
                            [t, repr(v)]
                            for t, v in zip(s.timestamps.tolist(), s.values.tolist(), strict=True)
                            if start <= t <= end
                        ],
                    }
                    for s in outer.answers.get(query, [])
                ]
                body = json.dumps(
                    {"status": "success", "data": {"resultType": "matrix", "result": result}}
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        port = self.server.server_address[1]
        return f"http://127.0.0.1:{port}"

    def __enter__(self) -> CannedPrometheus:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def prometheus() -> Iterator[CannedPrometheus]:
    with CannedPrometheus(canned_history({"llm/chat": 1.0, "llm/code": 2.0})) as server:
        yield server


def range_flags(n: int = 90) -> list[str]:
    return ["--start", f"{START:.0f}", "--end", f"{START + STEP * (n - 1):.0f}"]


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_a_prometheus_history_becomes_a_report(prometheus, tmp_path, capsys):
    out = tmp_path / "rep"
    argv = ["report", "--prometheus", prometheus.url, "--workload", "llm/chat", *range_flags()]
    assert main([*argv, *FEW, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "llm/chat: SLO attainment and GPU-hours, replayed" in printed
    assert "recommended: forecast@" in printed and f"wrote {out / 'report.html'}" in printed
    report = json.loads((out / "report.json").read_text())
    assert report["source"]["kind"] == "prometheus" and report["workload"] == "llm/chat"
    assert report["series"] == {
        "kind": "token_work",
        "interval_s": 60.0,
        "intervals": 90,
        "missing": 0,
        "mode": "fluid",
    }
    assert set(report["simulation"]["policies"]) == {
        "oracle",
        "oracle-late",
        "forecast@0.9",
        "forecast@1.1",
        "static-peak",
    }
    assert report["accuracy"]["interval_s"] == 60.0
    assert report["settings"]["policy"] in ("forecast@0.9", "forecast@1.1")
    for name in ("report.html", "report.md", "hpa.yaml", "keda-scaledobject.yaml"):
        assert (out / name).stat().st_size > 0
    assert "workload: llm/chat" in (out / "keda-scaledobject.yaml").read_text()
    # the range was read with the batched queries the live loop uses (grouped, all workloads)
    assert all("by (namespace, workload" in q for q in prometheus.queries)


def test_an_empty_range_is_one_line(prometheus, tmp_path, capsys):
    later = ["--start", f"{START + 86_400:.0f}", "--end", f"{START + 90_000:.0f}"]
    argv = ["report", "--prometheus", prometheus.url, "--workload", "llm/chat", *later]
    assert main([*argv, "--out", str(tmp_path)]) == 2
    line = error_line(capsys)
    assert line.startswith(f"llm-autoscaler: error: Prometheus at {prometheus.url} has no vllm")
    assert "the range is empty" in line
    assert not (tmp_path / "report.html").exists()


def test_an_unknown_workload_is_one_line(prometheus, tmp_path, capsys):
    argv = ["report", "--prometheus", prometheus.url, "--workload", "prod/chat", *range_flags()]
    assert main([*argv, "--out", str(tmp_path)]) == 2
    assert error_line(capsys) == (
        "llm-autoscaler: error: unknown workload prod/chat: Prometheus has vllm series between "
        "2023-11-14T22:14:00Z and 2023-11-14T23:43:00Z only for llm/chat, llm/code"
    )


def test_an_unreachable_prometheus_is_named(tmp_path, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens there
    url = f"http://127.0.0.1:{port}"
    argv = ["report", "--prometheus", url, "--workload", "llm/chat", *range_flags()]
    assert main([*argv, "--out", str(tmp_path)]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(f"llm-autoscaler: error: cannot reach Prometheus at {url}")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--prometheus", "http://p:9090", "--start", "now-1h"], "--prometheus needs --workload"),
        (["--trace", "t.csv", "--start", "now-1h"], "--start: only with --prometheus"),
        (["--trace", "t.csv", "--headroom", "1,x"], "--headroom must be numbers"),
        (["--trace", "t.csv", "--headroom", "0"], "setting 0.0 is out of range"),
        (["--trace", "t.csv", "--baseline", "forecast@2"], "ours is swept with --headroom"),
        (["--trace", "t.csv", "--baseline", "hpa-cpu"], "unknown policy 'hpa-cpu'"),
        (["--trace", "t.csv", "--seeds", "0"], "--seeds must be >= 1"),
        (["--trace", "t.csv", "--workload", "chat"], "--workload must be NAMESPACE/NAME"),
        (["--trace", "t.csv"], "trace file not found: t.csv"),
        (
            ["--prometheus", "http://p", "--workload", "a/b", "--start", "x", "--end", "now"],
            "'x' is not a time",
        ),
    ],
)
def test_bad_flags_are_one_line(extra, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["report", *extra, "--out", str(tmp_path / "out")]) == 2
    line = error_line(capsys)
    assert line.startswith("llm-autoscaler: error: ") and message in line
    assert not (tmp_path / "out").exists()


def test_trace_and_prometheus_are_exclusive(capsys):
    with pytest.raises(SystemExit) as done:
        main(["report", "--trace", "a.csv", "--prometheus", "http://p", "--out", "x"])
    assert done.value.code == 2
    assert "not allowed with argument" in error_line(capsys)


def test_an_unwritable_out_dir_is_named_before_the_replay(shared_file, tmp_path, capsys):
    trace = shared_file("traces/azure2023_conv.csv")
    blocker = tmp_path / "file"
    blocker.write_text("")
    argv = ["report", "--trace", str(trace), "--headroom", "1", "--baseline", "none"]
    assert main([*argv, "--out", str(blocker / "sub")]) == 2
    assert f"--out {blocker / 'sub'}: cannot create the directory" in error_line(capsys)

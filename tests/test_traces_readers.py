"""Trace readers: the shared traces read with the row counts of traces/README.md, formats are
detected, and malformed files fail with the path and line of the bad row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autoscaler.errors import InputError, TraceFormatError, UnknownNameError
from autoscaler.traces import azure, burstgpt, mooncake
from autoscaler.traces.readers import FORMATS, detect_format, read_trace

AZURE = "traces/azure2023_conv.csv"
MOONCAKE = "traces/mooncake_synthetic_trace.jsonl"
SERVEGEN = "traces/servegen_aggregate_rate_10min.csv"

AZURE_HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens"
AZURE_GOOD = "2023-11-16 18:15:46.6805900,374,44"
BURST_HEADER = "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type"
BURST_GOOD = "5,ChatGPT,472,18,490,Conversation log"
MOON_GOOD = '{"timestamp": 0, "input_length": 40160, "output_length": 6, "hash_ids": [0, 1]}'


def write(tmp_path: Path, name: str, *lines: str) -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


# --- the shared traces -----------------------------------------------------------------------


def test_azure_shared_trace_matches_readme(shared_file):
    trace = read_trace(shared_file(AZURE))
    assert trace.format == "azure"
    assert trace.requests == 19_366
    assert trace.duration_s == pytest.approx(3501.7, abs=0.05)
    assert trace.arrival_s[0] == 0.0
    assert np.all(np.diff(trace.arrival_s) >= 0)
    assert trace.prompt_tokens.mean() == pytest.approx(1154.7, abs=0.05)
    assert trace.output_tokens.mean() == pytest.approx(211.1, abs=0.05)
    assert (trace.prompt_tokens.min(), trace.prompt_tokens.max()) == (2, 14_050)
    assert (trace.output_tokens.min(), trace.output_tokens.max()) == (7, 1_000)


def test_azure_timestamps_keep_sub_millisecond_precision(shared_file):
    # rows 1 and 2: 18:15:46.6805900 and 18:15:50.9951690 -> 4.314579 s (microseconds kept)
    trace = read_trace(shared_file(AZURE), "azure")
    assert trace.arrival_s[1] == pytest.approx(4.314579, abs=1e-6)


def test_mooncake_shared_trace_matches_readme(shared_file):
    trace = read_trace(shared_file(MOONCAKE))
    assert trace.format == "mooncake"
    assert trace.requests == 3_993
    assert trace.duration_s == pytest.approx(1022.0, abs=0.05)
    assert trace.prompt_tokens.mean() == pytest.approx(15_325.5, abs=0.05)
    assert trace.output_tokens.mean() == pytest.approx(149.1, abs=0.05)


@pytest.mark.parametrize(
    ("relative", "expected"),
    [(AZURE, "azure"), (MOONCAKE, "mooncake"), (SERVEGEN, "servegen")],
)
def test_detect_format_on_shared_traces(shared_file, relative, expected):
    assert detect_format(shared_file(relative)) == expected


def test_readers_are_lazy(tmp_path):
    # rows come one at a time: the good first row is yielded before the bad third is read
    path = write(tmp_path, "a.csv", AZURE_HEADER, AZURE_GOOD, "x,y,z")
    rows = azure.iter_requests(path)
    assert next(rows) == (0.0, 374, 44)
    with pytest.raises(TraceFormatError, match=":3:"):
        next(rows)


def test_servegen_needs_a_model_and_lists_them(shared_file):
    with pytest.raises(InputError, match="m-large, m-mid, m-small, mm-image, deepseek-r1"):
        read_trace(shared_file(SERVEGEN))


def test_servegen_unknown_model(shared_file):
    with pytest.raises(UnknownNameError, match="m-huge"):
        read_trace(shared_file(SERVEGEN), servegen_model="m-huge")


def test_servegen_model_on_other_format_is_refused(shared_file):
    with pytest.raises(InputError, match="servegen_model"):
        read_trace(shared_file(AZURE), servegen_model="m-large")


# --- small hand-written files ------------------------------------------------------------------


def test_detect_format_burstgpt_and_unknown(tmp_path):
    assert detect_format(write(tmp_path, "b.csv", BURST_HEADER, BURST_GOOD)) == "burstgpt"
    assert detect_format(write(tmp_path, "a.csv", "", AZURE_HEADER, AZURE_GOOD)) == "azure"
    with pytest.raises(InputError, match="cannot detect"):
        detect_format(write(tmp_path, "x.csv", "time,prompt,output", "1,2,3"))
    with pytest.raises(InputError, match="empty"):
        detect_format(write(tmp_path, "e.csv", "", "  "))


def test_unknown_format_lists_known_ones(tmp_path):
    path = write(tmp_path, "a.csv", AZURE_HEADER, AZURE_GOOD)
    with pytest.raises(UnknownNameError) as info:
        read_trace(path, "splitwise")
    assert info.value.known == FORMATS
    assert "splitwise" in str(info.value) and "mooncake" in str(info.value)


def test_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nope.csv"
    for fmt in ("auto", "azure", "mooncake", "burstgpt", "servegen"):
        with pytest.raises(InputError, match="nope.csv"):
            read_trace(path, fmt, servegen_model="m" if fmt == "servegen" else None)


def test_directory_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="directory"):
        read_trace(tmp_path, "azure")


@pytest.mark.parametrize(
    ("fmt", "lines"),
    [
        ("azure", [AZURE_HEADER]),
        ("azure", [AZURE_HEADER, "", ""]),
        ("mooncake", ["", "  "]),
        ("burstgpt", [BURST_HEADER]),
    ],
)
def test_empty_trace_is_an_input_error(tmp_path, fmt, lines):
    path = write(tmp_path, "t.txt", *lines)
    with pytest.raises(InputError, match="no requests"):
        read_trace(path, fmt)


def test_binary_file_is_an_input_error(tmp_path):
    path = tmp_path / "b.csv"
    path.write_bytes(AZURE_HEADER.encode() + b"\n\xff\xfe\x00garbage,1,2\n")
    with pytest.raises(InputError, match="UTF-8"):
        read_trace(path, "azure")


@pytest.mark.parametrize(
    ("bad_row", "problem"),
    [
        ("2023-11-16 18:15:47.1000000,374", "expected 3 columns"),
        ("2023-11-16 18:15:47.1000000,abc,44", "column ContextTokens: 'abc' is not an integer"),
        ("2023-11-16 18:15:47.1000000,374,4.5", "column GeneratedTokens: '4.5' is not an integer"),
        ("2023-11-16 18:15:47.1000000,-3,44", "column ContextTokens: -3 is negative"),
        ("16/11/2023 18:15,374,44", "column TIMESTAMP: '16/11/2023 18:15' is not an ISO-8601"),
        ("2023-11-16 18:15:47+00:00,374,44", "mixes a UTC offset"),
    ],
)
def test_azure_malformed_row_names_path_and_line(tmp_path, bad_row, problem):
    path = write(tmp_path, "azure.csv", AZURE_HEADER, AZURE_GOOD, bad_row, AZURE_GOOD)
    with pytest.raises(TraceFormatError) as info:
        read_trace(path, "azure")
    message = str(info.value)
    assert f"{path}:3:" in message
    assert problem in message
    assert info.value.line == 3 and info.value.path == str(path)


def test_azure_header_without_required_column(tmp_path):
    path = write(tmp_path, "azure.csv", "TIMESTAMP,ContextTokens,Tokens", AZURE_GOOD)
    with pytest.raises(TraceFormatError, match=r":1: .*GeneratedTokens"):
        read_trace(path, "azure")


def test_azure_reads_extra_columns_crlf_and_utc_offsets(tmp_path):
    path = tmp_path / "lmm.csv"
    path.write_bytes(
        b"TIMESTAMP,NumImages,ContextTokens,GeneratedTokens\r\n"
        b"2024-10-15 12:00:01.5000000+00:00,1,100,7\r\n"
        b"2024-10-15 12:00:00.0000000+00:00,0,200,8\r\n"
    )
    trace = read_trace(path)
    assert trace.format == "azure"
    assert trace.arrival_s.tolist() == [0.0, 1.5]  # sorted, first at 0
    assert trace.prompt_tokens.tolist() == [200, 100]
    assert trace.output_tokens.tolist() == [8, 7]


def test_azure_integral_float_counts_are_accepted(tmp_path):
    path = write(tmp_path, "a.csv", AZURE_HEADER, "2023-11-16 18:15:46.0,374.0,44")
    assert read_trace(path).prompt_tokens.tolist() == [374]


@pytest.mark.parametrize(
    ("bad_line", "problem"),
    [
        ('{"timestamp": 5, "input_length": 3', "not valid JSON"),
        ("[1, 2, 3]", "expected a JSON object, got list"),
        ('{"timestamp": 5, "output_length": 3}', "missing key 'input_length'"),
        ('{"timestamp": "5", "input_length": 3, "output_length": 3}', "key timestamp: '5'"),
        ('{"timestamp": 5, "input_length": -1, "output_length": 3}', "key input_length: -1 is neg"),
        (
            '{"timestamp": 5, "input_length": 2.5, "output_length": 3}',
            "input_length: 2.5 is not an",
        ),
        (
            '{"timestamp": 5, "input_length": 1, "output_length": true}',
            "output_length: True is not",
        ),
    ],
)
def test_mooncake_malformed_line_names_path_and_line(tmp_path, bad_line, problem):
    path = write(tmp_path, "m.jsonl", MOON_GOOD, MOON_GOOD, bad_line)
    with pytest.raises(TraceFormatError) as info:
        read_trace(path, "mooncake")
    assert f"{path}:3:" in str(info.value)
    assert problem in str(info.value)


def test_mooncake_timestamps_are_milliseconds(tmp_path):
    path = write(
        tmp_path,
        "m.jsonl",
        MOON_GOOD,
        '{"timestamp": 2500, "input_length": 10, "output_length": 2}',
    )
    assert list(mooncake.iter_requests(path)) == [(0.0, 40160, 6), (2.5, 10, 2)]


def test_burstgpt_keeps_failures_as_one_token_requests(tmp_path):
    path = write(
        tmp_path,
        "burst.csv",
        BURST_HEADER,
        BURST_GOOD,
        "7.5,GPT-4,1200,0,1200,API log",
        "9,ChatGPT,30,12,42,Conversation log",
    )
    trace = read_trace(path)
    assert trace.format == "burstgpt"
    assert trace.requests == 3
    assert trace.arrival_s.tolist() == [0.0, 2.5, 4.0]
    assert trace.prompt_tokens.tolist() == [472, 1200, 30]
    assert trace.output_tokens.tolist() == [18, burstgpt.FAILED_OUTPUT_TOKENS, 12]


def test_burstgpt_v3_layout_with_session_columns(tmp_path):
    header = (
        "Timestamp,Session ID,Elapsed time,Model,Request tokens,Response tokens,Total tokens,"
        "Log Type"
    )
    path = write(tmp_path, "b3.csv", header, "3,17,1.2,ChatGPT,40,50,90,Conversation log")
    assert list(burstgpt.iter_requests(path)) == [(3.0, 40, 50)]


@pytest.mark.parametrize(
    ("bad_row", "problem"),
    [
        ("soon,ChatGPT,472,18,490,Conversation log", "column Timestamp: 'soon' is not a number"),
        ("nan,ChatGPT,472,18,490,Conversation log", "'nan' is not a finite number"),
        ("6,ChatGPT,472,x,490,Conversation log", "column Response tokens: 'x' is not an integer"),
        ("6,ChatGPT,472,18,490", "expected 6 columns"),
    ],
)
def test_burstgpt_malformed_row_names_path_and_line(tmp_path, bad_row, problem):
    path = write(tmp_path, "burst.csv", BURST_HEADER, BURST_GOOD, bad_row)
    with pytest.raises(TraceFormatError) as info:
        read_trace(path, "burstgpt")
    assert f"{path}:3:" in str(info.value)
    assert problem in str(info.value)

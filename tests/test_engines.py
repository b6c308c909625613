"""Engine profiles against the real captures in ../shared/engines, the registry, the fallbacks.

prometheus-client is not installed in the venv, so a tiny parser reads sample names from the
text format (``name{labels} value`` or ``name value``; ``#`` lines skipped).
"""

from __future__ import annotations

import csv
import dataclasses
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from autoscaler.core.signals import SignalSnapshot
from autoscaler.engines.base import (
    DEFAULT_FALLBACKS,
    ENGINE_SIGNALS,
    SIGNAL_KIND,
    EngineProfile,
    Kind,
    Series,
    Signal,
)
from autoscaler.engines.registry import DEFAULT_ENGINE, engine_names, get_engine
from autoscaler.errors import InputError, UnknownNameError

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+\S+")


def sample_names(text: str) -> dict[str, list[str]]:
    """Exposed sample name -> label strings of its samples."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        m = SAMPLE.match(line)
        if m and not line.startswith("#"):
            out.setdefault(m.group(1), []).append(m.group(3) or "")
    return out


def expected_samples(series: Series, kind: Kind) -> str:
    """The sample name a series must show on /metrics: histograms by their ``_bucket`` (not a
    latency read from a cumulative duration counter, ``mean_of``)."""
    return series.name + "_bucket" if kind is Kind.HISTOGRAM and not series.mean_of else series.name


def section(metrics_md: str, heading: str) -> str:
    """The text of METRICS.md from ``heading`` up to the next heading of that level or above."""
    start = metrics_md.index(heading)
    rest = metrics_md[start + len(heading) :]
    nxt = re.search(r"^#{2,3} ", rest, flags=re.M)
    return heading + (rest[: nxt.start()] if nxt else rest)


@pytest.fixture
def metrics_md(shared_file: Callable[[str], Path]) -> str:
    return shared_file("engines/METRICS.md").read_text(encoding="utf-8")


def _captured_signals(profile: EngineProfile, names: dict[str, list[str]]) -> set[Signal]:
    found = set()
    for signal in profile.exported():
        for s in profile.series(signal):
            labels = names.get(expected_samples(s, SIGNAL_KIND[signal]), [])
            if any(all(f'{k}="{v}"' in lab for k, v in s.matchers) for lab in labels):
                found.add(signal)
    return found


# (1) profiles against the real captures ----------------------------------------------------


def test_sglang_legacy_names_are_in_the_late_2024_capture(shared_file, metrics_md):
    names = sample_names(shared_file("engines/sglang_capture.txt").read_text(encoding="utf-8"))
    profile = get_engine("sglang")
    # The capture is the late-2024 generation: every signal but preemptions (no retraction
    # counter then) is found through its legacy (last) series.
    assert _captured_signals(profile, names) == set(profile.exported()) - {Signal.PREEMPTIONS}
    for signal in profile.exported():
        legacy = profile.series(signal)[-1]
        if signal is not Signal.PREEMPTIONS:
            assert expected_samples(legacy, SIGNAL_KIND[signal]) in names, signal
    # The current generation's names are all in METRICS.md 2a (no saved capture of it).
    current = section(metrics_md, "### 2a.")
    for signal in profile.exported():
        # listed as `name` or `name{labels}`
        assert re.search(rf"`{re.escape(profile.series(signal)[0].name)}[`{{]", current), signal
    assert all('name="google/gemma-2-9b-it"' in lab for lab in names["sglang:token_usage"])
    assert "name" in profile.model_labels


def test_sglang_legacy_buckets_match_the_capture(shared_file):
    text = shared_file("engines/sglang_capture.txt").read_text(encoding="utf-8")
    profile = get_engine("sglang")
    for signal in (Signal.TTFT, Signal.TPOT, Signal.E2E, Signal.QUEUE_TIME, Signal.PROMPT_TOKENS):
        legacy = profile.series(signal)[-1]
        les = re.findall(rf'^{re.escape(legacy.name)}_bucket\{{le="([^"]+)"', text, flags=re.M)
        assert les[-1] == "+Inf"
        assert tuple(float(x) for x in les[:-1]) == legacy.buckets, signal


def test_vllm_v0_names_are_in_its_capture(shared_file, metrics_md):
    names = sample_names(shared_file("engines/vllm_v0_capture.txt").read_text(encoding="utf-8"))
    profile = get_engine("vllm_v0")
    # The capture was truncated by its authors after iteration_tokens_total's buckets, so the
    # latency and token histograms are not in it: counters and gauges must all be.
    counters_gauges = {s for s in profile.exported() if SIGNAL_KIND[s] is not Kind.HISTOGRAM}
    assert _captured_signals(profile, names) == counters_gauges
    assert "vllm:gpu_cache_usage_perc" in names
    assert "vllm:kv_cache_usage_perc" not in names
    assert all('model_name="' in lab for lab in names["vllm:num_requests_waiting"])
    # ... and the histograms are verified against METRICS.md 1c, buckets included.
    v0 = section(metrics_md, "### 1c.")
    for signal in profile.exported():
        if SIGNAL_KIND[signal] is Kind.HISTOGRAM:
            (series,) = profile.series(signal)
            assert f"`{series.name}`" in v0, signal
            if signal is not Signal.PROMPT_TOKENS:
                listed = ", ".join(_fmt(b) for b in series.buckets)
                assert f"`{series.name}`: {listed}\n" in v0, signal


def _fmt(bucket: float) -> str:
    return repr(bucket)


def test_vllm_v1_names_are_in_the_metrics_md_table(metrics_md):
    # No capture of V1 is saved: the names must be rows of the 1a table, buckets as listed.
    v1 = section(metrics_md, "### 1a.")
    profile = get_engine("vllm")
    for signal in profile.exported():
        for series in profile.series(signal):
            assert f"| `{series.name}` |" in v1, series.name
    assert "`vllm:gpu_cache_usage_perc`" in v1.split("Gone in 0.33.0")[1]
    assert profile.kv_usage[0].name == "vllm:kv_cache_usage_perc"
    ttft = ", ".join(_fmt(b) for b in profile.ttft[0].buckets)
    assert f"- TTFT (`time_to_first_token`): {ttft}\n" in v1
    itl = ", ".join(_fmt(b) for b in profile.tpot[0].buckets)
    assert f"- ITL / TPOT (`inter_token_latency`): {itl}\n" in v1
    latency = ", ".join(_fmt(b) for b in profile.e2e[0].buckets)
    assert f"(`request_latency`, used by e2e, queue, inference, prefill, decode): {latency}" in v1
    assert profile.queue_time[0].buckets == profile.e2e[0].buckets


def test_triton_trtllm_names_are_in_its_capture(shared_file):
    names = sample_names(
        shared_file("engines/triton_trtllm_capture.txt").read_text(encoding="utf-8")
    )
    profile = get_engine("triton_trtllm")
    assert _captured_signals(profile, names) == set(profile.exported())
    assert not any(n.endswith("_bucket") for n in names)  # no latency histograms at all
    assert {Signal.TTFT, Signal.TPOT} <= profile.missing
    # queue time and e2e are means of Triton core's cumulative microsecond counters
    for signal in (Signal.QUEUE_TIME, Signal.E2E):
        (series,) = profile.series(signal)
        assert series.mean_of in names and series.scale == 1e-6
    assert all('model="' in lab for lab in names["nv_trt_llm_request_metrics"])


def test_tgi_names_are_in_metrics_md(metrics_md):
    # No TGI capture is saved: names are checked against the METRICS.md 3 table.
    tgi = section(metrics_md, "## 3.")
    profile = get_engine("tgi")
    for signal in profile.exported():
        (series,) = profile.series(signal)
        assert series.name.removesuffix("_sum") in tgi, series.name
        assert not series.name.endswith("_total")  # the Rust exporter adds no _total
        if series.divide_by:
            assert f"`{series.divide_by}`" in tgi
    assert Signal.TTFT in profile.missing
    assert profile.kv_usage[0].divide_by == "tgi_batch_max_total_tokens"
    assert "0.0001 * 1.5^k for k = 1..35" in tgi
    assert len(profile.e2e[0].buckets) == 35
    assert profile.e2e[0].buckets[0] == pytest.approx(0.00015)
    assert profile.e2e[0].buckets[-1] == pytest.approx(145.6, abs=0.1)


def test_dcgm_names_are_default_counters(shared_file):
    path = shared_file("engines/dcgm_default_counters.csv")
    rows = [
        r
        for r in csv.reader(path.read_text(encoding="utf-8").splitlines())
        if r and not r[0].lstrip().startswith("#")
    ]
    enabled = {r[0].strip(): r[1].strip() for r in rows}
    profile = get_engine("dcgm")
    assert profile.metric_names() == {"DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_FREE"}
    for name in profile.metric_names():
        assert enabled[name] == "gauge"
    assert profile.missing == ENGINE_SIGNALS


# (2) registry -----------------------------------------------------------------------------


def test_registry_is_alphabetical_and_complete():
    names = engine_names()
    assert list(names) == sorted(names)
    assert len(set(names)) == len(names)
    assert set(names) == {"dcgm", "sglang", "tgi", "triton_trtllm", "vllm", "vllm_v0"}
    assert DEFAULT_ENGINE == "vllm"
    assert get_engine() is get_engine("vllm")
    for name in names:
        assert get_engine(name).name == name


def test_unknown_engine_raises_with_the_known_names():
    with pytest.raises(UnknownNameError) as info:
        get_engine("vllm_v2")
    assert isinstance(info.value, InputError)
    assert info.value.kind == "engine"
    assert info.value.name == "vllm_v2"
    assert info.value.known == engine_names()
    assert "unknown engine 'vllm_v2'; known: dcgm, sglang" in str(info.value)


def test_profiles_are_frozen_and_consistent():
    profile = get_engine("vllm")
    with pytest.raises(dataclasses.FrozenInstanceError):
        profile.name = "x"  # type: ignore[misc]
    with pytest.raises(ValueError, match="has no series for 'ttft' but does not list it"):
        dataclasses.replace(profile, ttft=())
    with pytest.raises(ValueError, match="declares series for 'ttft' but lists it"):
        dataclasses.replace(profile, missing=profile.missing | {Signal.TTFT})


@pytest.mark.parametrize("name", engine_names())
def test_histograms_have_increasing_buckets(name):
    profile = get_engine(name)
    for signal in profile.exported():
        for series in profile.series(signal):
            assert list(series.buckets) == sorted(set(series.buckets)), (signal, series.name)
            if SIGNAL_KIND[signal] is not Kind.HISTOGRAM:
                assert series.buckets == ()


def test_kv_names_differ_between_vllm_generations():
    assert get_engine("vllm").kv_usage[0].name == "vllm:kv_cache_usage_perc"
    assert get_engine("vllm_v0").kv_usage[0].name == "vllm:gpu_cache_usage_perc"


# (4) fallbacks ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", engine_names())
def test_every_missing_signal_has_a_documented_usable_fallback(name):
    profile = get_engine(name)
    for signal in profile.missing:
        fallback = profile.fallback(signal)
        assert fallback.signal is signal
        assert len(fallback.description) > 20
        assert fallback.uses
        for used in fallback.uses:
            if isinstance(used, Signal):
                # a fallback never leans on another signal the same engine lacks
                assert used not in profile.missing, (signal, used)
            else:
                assert used in ("capacity_model", "dcgm", "engine", "none")


def test_the_named_fallbacks_of_the_brief():
    assert Signal.QUEUE_TIME in get_engine("tgi").fallback(Signal.TTFT).uses
    assert "dcgm" in DEFAULT_FALLBACKS[Signal.KV_USAGE].uses
    assert Signal.QUEUE_TIME in get_engine("triton_trtllm").fallback(Signal.TTFT).uses
    assert set(DEFAULT_FALLBACKS) == set(Signal)


def test_signal_fields_name_snapshot_fields():
    fields = {f.name for f in dataclasses.fields(SignalSnapshot)}
    for signal in (Signal.REQUEST_RATE, Signal.WAITING, Signal.RUNNING, Signal.KV_USAGE):
        assert signal.value in fields

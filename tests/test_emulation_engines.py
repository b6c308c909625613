"""``emulate --engine NAME``: each engine's /metrics format, and dcgm-exporter's beside it.

The names and label sets are checked against what fixes them: the engine profiles the collector
queries (every series a profile reads must be served), ``triton_trtllm_capture.txt`` (Triton),
METRICS.md section 3 (TGI: no capture is saved) and ``dcgm_default_counters.csv`` (DCGM).
Served over real HTTP by the emulator's aiohttp app on 127.0.0.1.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from autoscaler.emulation import Emulator, EmulatorSettings, create_app
from autoscaler.emulation.exposition import buckets_for, engine_names
from autoscaler.emulation.side_exporters import FRAMEBUFFER_SHARE
from autoscaler.engines.base import SIGNAL_KIND, Kind
from autoscaler.engines.registry import get_engine
from autoscaler.perf.profiles import get_profile
from autoscaler.traces.synthetic import SyntheticWorkload, generate

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)")
KUBERNETES = {"namespace", "workload", "pod"}
"""Labels the fleet-wide /metrics adds, as a Kubernetes scrape would."""


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    out = []
    for line in text.splitlines():
        m = SAMPLE.match(line)
        if m and not line.startswith("#"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(3) or ""))
            out.append((m.group(1), labels, float(m.group(4))))
    return out


async def scrape(engine: str, path: str, at: float = 40.0) -> str:
    profile = get_profile()
    trace = generate(SyntheticWorkload(duration_s=60, mean_rate_rps=4), seed=1)
    emulator = Emulator(
        trace, replicas=2, profile=profile, buckets=buckets_for(engine, profile.max_context)
    )
    now = [0.0]
    app = create_app(emulator, EmulatorSettings(engine=engine), clock=lambda: now[0])
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        now[0] = at
        resp = await client.get(path)
        assert resp.status == 200
        return await resp.text()


@pytest.mark.asyncio
@pytest.mark.parametrize("engine", engine_names())
async def test_every_series_the_engine_profile_reads_is_served(engine):
    text = await scrape(engine, "/metrics")
    served = samples(text)
    names = {name for name, _, _ in served}
    profile = get_engine(engine)
    for signal in profile.exported():  # the first generation of names that is served
        for series in profile.series(signal):
            histogram = SIGNAL_KIND[signal] is Kind.HISTOGRAM and not series.mean_of
            want = series.name + ("_bucket" if histogram else "")
            rows = [lab for name, lab, _ in served if name == want]
            if any(all(lab.get(k) == v for k, v in series.matchers) for lab in rows):
                for other in (series.divide_by, series.mean_of):
                    assert not other or other in names
                break
        else:
            raise AssertionError(f"{engine} serves no series of {signal.value}")
    assert all(KUBERNETES <= lab.keys() for _, lab, _ in served)


@pytest.mark.asyncio
@pytest.mark.parametrize("engine", ["tgi", "triton_trtllm"])
async def test_counters_have_no_total_and_their_headers_say_so(engine):
    text = await scrape(engine, "/metrics")
    counters = re.findall(r"^# TYPE (\S+) counter$", text, flags=re.M)
    assert counters and not any(c.endswith("_total") for c in counters)
    names = {name for name, _, _ in samples(text)}
    assert set(counters) <= names
    assert re.findall(r"^# HELP (\S+) ", text, flags=re.M) == re.findall(
        r"^# TYPE (\S+) ", text, flags=re.M
    )


@pytest.mark.asyncio
async def test_triton_names_and_label_sets_are_the_captures(shared_file: Callable[[str], Path]):
    capture = samples(shared_file("engines/triton_trtllm_capture.txt").read_text())
    captured = {(name, frozenset(lab)) for name, lab, _ in capture}
    served = samples(await scrape("triton_trtllm", "/metrics"))
    for name, labels, _ in served:
        assert (name, frozenset(labels.keys() - KUBERNETES)) in captured, (name, labels)
    selectors = {
        (name, lab.get("request_type") or lab.get("kv_cache_block_type"))
        for name, lab, _ in capture
        if name in ("nv_trt_llm_request_metrics", "nv_trt_llm_kv_cache_block_metrics")
    }
    assert selectors <= {
        (name, lab.get("request_type") or lab.get("kv_cache_block_type")) for name, lab, _ in served
    }


@pytest.mark.asyncio
async def test_tgi_names_are_metrics_md_section_3s_with_tgi_buckets(
    shared_file: Callable[[str], Path],
):
    md = shared_file("engines/METRICS.md").read_text()
    section = md[md.index("## 3.") : md.index("## 4.")]
    served = samples(await scrape("tgi", "/metrics"))
    for name, labels, _ in served:
        family = re.sub(r"_(bucket|sum|count)$", "", name)
        assert f"`{name}`" in section or f"`{family}`" in section, name
        assert labels.keys() - KUBERNETES <= {"le"}  # no model label
    bounds = sorted(
        {float(lab["le"]) for n, lab, _ in served if n == "tgi_request_queue_duration_bucket"}
    )
    assert len(bounds) == 36 and bounds[0] == pytest.approx(0.00015)  # 35 + Inf


@pytest.mark.asyncio
@pytest.mark.parametrize("engine", engine_names())
async def test_dcgm_framebuffer_per_gpu_with_the_pod_that_holds_it(
    engine, shared_file: Callable[[str], Path]
):
    csv = shared_file("engines/dcgm_default_counters.csv").read_text()
    served = samples(await scrape(engine, "/dcgm/metrics"))
    assert {name for name, _, _ in served} == {
        "DCGM_FI_DEV_FB_FREE",
        "DCGM_FI_DEV_FB_USED",
        "DCGM_FI_DEV_FB_RESERVED",
    }
    for name, labels, _ in served:
        assert re.search(rf"^{name}, gauge,", csv, flags=re.M), name
        assert {"gpu", "UUID", "Hostname", "modelName", "namespace", "pod"} <= labels.keys()
        assert "workload" not in labels  # dcgm-exporter knows pods, not workloads
    tp = get_profile().tp
    used = {(lab["pod"], lab["gpu"]): v for n, lab, v in served if n == "DCGM_FI_DEV_FB_USED"}
    free = {(lab["pod"], lab["gpu"]): v for n, lab, v in served if n == "DCGM_FI_DEV_FB_FREE"}
    assert sorted({pod for pod, _ in used}) == ["llm-0", "llm-1"] and len(used) == 2 * tp
    for key, u in used.items():
        assert u / (u + free[key]) == pytest.approx(FRAMEBUFFER_SHARE[engine], abs=1e-4)


@pytest.mark.asyncio
async def test_vllm_v0_gauges_and_counters_are_the_captures(shared_file: Callable[[str], Path]):
    capture = samples(shared_file("engines/vllm_v0_capture.txt").read_text())
    captured = {name: frozenset(lab) for name, lab, _ in capture}
    served = samples(await scrape("vllm_v0", "/metrics"))
    plain = [(n, lab) for n, lab, _ in served if not n.endswith(("_bucket", "_sum", "_count"))]
    assert plain
    for name, labels in plain:  # the capture was cut before the latency histograms
        assert captured.get(name) == frozenset(labels.keys() - KUBERNETES), name


@pytest.mark.asyncio
async def test_sglang_names_are_metrics_md_section_2as(shared_file: Callable[[str], Path]):
    md = shared_file("engines/METRICS.md").read_text()
    section = md[md.index("### 2a.") : md.index("### 2b.")]
    served = samples(await scrape("sglang", "/metrics"))
    for name, labels, _ in served:
        family = re.sub(r"_(bucket|sum|count|total)$", "", name)
        assert f"`{name}" in section or f"`{family}" in section, name
        assert {"model_name", "engine_type"} <= labels.keys()

"""The whole loop once per engine: ``emulate --engine NAME`` → Debian ``prometheus`` → ``serve``.

Three real processes on 127.0.0.1, as in ``test_prometheus_integration.py``: the emulator serves
the engine's own /metrics and dcgm-exporter's GPU memory (``/dcgm/metrics``, a second scrape
job, labelled by pod only); Prometheus scrapes both every second; ``serve`` (no cluster, auth off)
ticks every second with the workload on that engine. Each run checks, through ``/v1`` and
``/metrics``, that the loop produces fresh recommendations, that every signal the engine's row of
the guards table (docs/engines.md) names reaches the snapshot, that GPU memory is joined to the
replicas by pod in the real Prometheus, and that the fallbacks the table implies are named. On
TGI, where the memory-pressure guard is live, a load step past the fleet's capacity must make it
fire with its reason.

Everything waits on conditions with deadlines; nothing asserts a duration.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from autoscaler.emulation.side_exporters import FRAMEBUFFER_SHARE
from autoscaler.engines.guards import Guard, guards_of
from autoscaler.engines.registry import get_engine
from tests.live_stack import (
    Proc,
    api_json,
    cli,
    metric,
    prometheus_proc,
    running,
    serve_proc,
    step_trace,
    wait_for,
)
from tests.ports import free_ports

WORKLOAD = {"namespace": "default", "workload": "llm"}


def start_stack(
    tmp_path: Path, prometheus_binary: str, engine: str, low_rps: float, high_rps: float
) -> tuple[list[Proc], dict[str, str]]:
    trace = tmp_path / "trace.csv"
    step_trace(trace, low_rps=low_rps, high_rps=high_rps, step_at=20.0, end=900.0)
    emu_port, prom_port, health, https, grpc = free_ports(5)
    (tmp_path / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n"
        "  - job_name: emulated-fleet\n    scrape_interval: 1s\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{emu_port}']\n"
        "  - job_name: dcgm\n    scrape_interval: 1s\n    metrics_path: /dcgm/metrics\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{emu_port}']\n"
    )
    (tmp_path / "serve.yaml").write_text(
        f"service:\n  prometheus_url: http://127.0.0.1:{prom_port}\n  tick_s: 1\n"
        "  rate_window: 5s\n  scrape_interval_s: 1\n"
        f"  ports: {{https: {https}, metrics: {health}, grpc: {grpc}}}\n"
        f"workloads:\n  - namespace: default\n    name: llm\n    engine: {engine}\n"
        "    selector: {app: llm}\n    max_replicas: 10\n"
    )
    emulate = cli("emulate", "--trace", str(trace), "--replicas", "2", "--engine", engine,
                  "--port", str(emu_port))  # fmt: skip
    procs = [
        Proc("emulate", emulate, tmp_path / "emulate.log"),
        prometheus_proc(prometheus_binary, tmp_path, prom_port),
        serve_proc(tmp_path),
    ]
    urls = {
        "metrics": f"http://127.0.0.1:{health}/metrics",
        "api": f"https://127.0.0.1:{https}/v1/workloads/default/llm",
    }
    return procs, urls


@pytest.fixture
def stack(
    request: pytest.FixtureRequest, tmp_path: Path, prometheus_binary: str
) -> Iterator[dict[str, Any]]:
    engine, low, high = request.param
    procs, urls = start_stack(tmp_path, prometheus_binary, engine, low, high)
    with running(procs):
        yield {"engine": engine, "serve": procs[2], **urls}


def fields_of(row: dict[Any, tuple[str, ...]]) -> set[str]:
    """The snapshot fields a guards-table row names (not its prose entries)."""
    return {f for reads in row.values() for f in reads if " " not in f}


STACKS = [
    ("sglang", 4.0, 4.0),
    ("tgi", 4.0, 30.0),
    ("triton_trtllm", 4.0, 4.0),
    ("vllm", 4.0, 4.0),
    ("vllm_v0", 4.0, 4.0),
]
"""(engine, requests/s before and after the step at 20 s): TGI's step overloads 2 replicas."""


def test_every_emulated_engine_and_every_serving_engine_has_a_whole_loop_run():
    from autoscaler.config import KNOWN_ENGINES
    from autoscaler.emulation.exposition import engine_names

    assert {e for e, _, _ in STACKS} == set(engine_names()) == set(KNOWN_ENGINES)


@pytest.mark.parametrize("stack", STACKS, ids=[e for e, _, _ in STACKS], indirect=True)
def test_the_whole_loop_on_each_engine(stack):
    engine = stack["engine"]
    profile = get_engine(engine)
    row = guards_of(profile)
    seen: dict[str, Any] = {}

    def fresh_doc() -> dict[str, Any] | None:
        doc = api_json(stack["api"])
        if doc is None or doc.get("desired_replicas") is None:
            return None
        for name, value in (doc.get("signals") or {}).items():
            if value is not None and value != []:
                seen.setdefault(name, value)
        return doc

    doc = wait_for(f"a fresh recommendation on {engine}", fresh_doc)
    assert isinstance(doc, dict)
    assert doc["engine"] == engine
    assert doc["guards"] == {g.value: list(reads) for g, reads in row.items()}

    # GPU memory joined to both replicas by pod in the real Prometheus, as the emulator holds it
    want = fields_of(row) | {"gpu_memory_usage_max", "per_replica_gpu_memory_usage"}
    wait_for(
        f"every signal {engine}'s guards read ({sorted(want)})",
        lambda: fresh_doc() is not None and want <= seen.keys() and seen,
    )
    share = FRAMEBUFFER_SHARE[engine]
    assert seen["gpu_memory_usage_max"] == pytest.approx(share, abs=1e-3)
    assert len(seen["per_replica_gpu_memory_usage"]) == 2
    exported = metric(stack["metrics"], "llm_autoscaler_gpu_memory_usage_max_ratio", WORKLOAD)
    assert exported == pytest.approx(share, abs=1e-3)

    rec = doc["recommendation"]
    fallbacks = " ".join(rec["fallbacks"])
    if "request_rate x seed mean sizes" in row[Guard.DEMAND]:  # Triton: no token counters
        assert "request rate x seed mean prompt tokens" in fallbacks
    assert "no dcgm-exporter rows" not in fallbacks  # the guard, where live, has its data

    if engine == "tgi":  # the load steps to 30 requests/s, beyond what 2 replicas serve

        def pressed() -> str | None:
            d = fresh_doc()
            details = [c["detail"] for c in ((d or {}).get("recommendation") or {}).get(
                "candidates", [])]  # fmt: skip
            return next((x for x in details if "GPU memory at 97%" in x), None)

        reason = wait_for("the memory-pressure guard to fire on TGI", pressed)
        print(f"tgi: {reason}")
    assert stack["serve"].stop(signal.SIGTERM) == 0

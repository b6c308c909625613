"""The tick's fast row decoding against a real Prometheus: the snapshots it builds are the ones the
general path (dicts, a :class:`Sample` per row) builds from the same answers.

``llm-autoscaler emulate`` (vLLM, two replicas, a load step) is scraped every second by the Debian
``prometheus`` binary; at several evaluation times the test collects every signal of the workload
twice, with the real client (its typed decoder) and with the same client seen only through
``query`` (samples, then rows), and compares the snapshots field by field. Everything waits on
conditions with deadlines; nothing asserts a duration.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from autoscaler.clients.prometheus import PrometheusClient, RangeSeries, Sample
from autoscaler.config import WorkloadConfig
from autoscaler.engines.registry import ENGINES
from autoscaler.live.collection import collect
from tests.live_stack import Proc, cli, prometheus_proc, running, step_trace, wait_for
from tests.ports import free_ports


class SamplesOnly:
    """The real client seen only through ``query``: collection takes the general path."""

    def __init__(self, client: PrometheusClient) -> None:
        self.client = client

    def query(
        self, promql: str, *, at: float | None = None, deadline: float | None = None
    ) -> list[Sample]:
        return self.client.query(promql, at=at, deadline=deadline)

    def query_range(self, promql: str, start: float, end: float, step: float) -> list[RangeSeries]:
        return self.client.query_range(promql, start, end, step)


@pytest.fixture
def prometheus(tmp_path: Path, prometheus_binary: str) -> Iterator[str]:
    trace = tmp_path / "step.csv"
    step_trace(trace, low_rps=1.0, high_rps=6.0, step_at=8.0, end=900.0)
    emu_port, prom_port = free_ports(2)
    (tmp_path / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: emulated-fleet\n    scrape_interval: 1s\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{emu_port}']\n"
    )
    emulator = Proc(
        "emulate",
        cli("emulate", "--trace", str(trace), "--replicas", "2", "--port", str(emu_port)),
        tmp_path / "emulate.log",
    )
    with running([emulator, prometheus_proc(prometheus_binary, tmp_path, prom_port)]):
        yield f"http://127.0.0.1:{prom_port}"


def comparable(snap: Any) -> dict[str, Any]:
    """A snapshot's fields with NaN made comparable."""
    return {
        k: ("nan" if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(snap).items()
    }


def test_fast_rows_build_the_snapshots_the_general_path_builds(prometheus):
    workloads = [
        WorkloadConfig(namespace="default", name="llm", engine="vllm", selector={"app": "llm"})
    ]
    with PrometheusClient(prometheus, timeout_s=10.0) as client:

        def snapshots(api: Any, at: float) -> dict[str, Any]:
            return collect(api, workloads, now=at, staleness_s=30.0, engines=ENGINES, window="5s")

        def observed() -> bool:
            snap = snapshots(client, time.time() - 2.0)["default/llm"]
            return bool(
                not snap.stale and snap.ttft_buckets and snap.tpot_buckets and snap.request_rate
            )

        wait_for("every vLLM histogram in Prometheus", observed)
        compared = 0
        for _ in range(6):
            time.sleep(0.5)  # a few scrapes apart: other buckets, other rates
            at = round(time.time() - 2.0, 3)
            fast = snapshots(client, at)["default/llm"]
            general = snapshots(SamplesOnly(client), at)["default/llm"]
            assert comparable(fast) == comparable(general)
            assert fast.ttft_buckets and fast.prompt_buckets and fast.per_replica_running
            compared += 1
    assert compared == 6

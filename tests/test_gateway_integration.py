"""The whole loop with an inference gateway: emulator + EPP → Debian ``prometheus`` → ``serve``.

``llm-autoscaler emulate --gateway flow-control --queue-depth-threshold 1`` puts two replicas
behind an endpoint picker whose flow control holds every request a replica has no room for;
the real ``prometheus`` scrapes the engines' ``/metrics`` and the EPP's ``/epp/metrics``; ``serve``
reads both for a workload configured with ``gateway: {pool: ...}``. When the load steps up, the
EPP's queue grows while no engine queue can (flow control keeps them at the threshold): the test
checks that the recommendation rises on the gateway's signals while every engine queue
Prometheus ever saw stayed at the threshold, and that the reason names the gateway.

Everything waits on conditions with deadlines; nothing asserts a duration.
"""

from __future__ import annotations

import json
import signal
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.live_stack import (
    WORKLOAD,
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

POOL = "llm-pool"
THRESHOLD = 1


def promql(base: str, query: str) -> float | None:
    """The single value of an instant query, or None when the result is empty."""
    url = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
    body = json.loads(urllib.request.urlopen(url, timeout=5).read())
    result = body["data"]["result"]
    return float(result[0]["value"][1]) if result else None


@pytest.fixture
def stack(tmp_path: Path, prometheus_binary: str) -> Iterator[dict[str, object]]:
    trace = tmp_path / "step.csv"
    step_trace(trace, low_rps=0.5, high_rps=20.0, step_at=25.0, end=600.0)
    emu_port, prom_port, health, https, grpc = free_ports(5)
    (tmp_path / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n"
        "  - job_name: emulated-fleet\n    scrape_interval: 1s\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{emu_port}']\n"
        "  - job_name: emulated-epp\n    scrape_interval: 1s\n    metrics_path: /epp/metrics\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{emu_port}']\n"
    )
    (tmp_path / "serve.yaml").write_text(
        f"service:\n  prometheus_url: http://127.0.0.1:{prom_port}\n  tick_s: 1\n"
        "  rate_window: 5s\n  scrape_interval_s: 1\n"
        f"  ports: {{https: {https}, metrics: {health}, grpc: {grpc}}}\n"
        "workloads:\n  - namespace: default\n    name: llm\n    engine: vllm\n"
        f"    selector: {{app: llm}}\n    max_replicas: 20\n    gateway: {{pool: {POOL}}}\n"
    )
    emulator = Proc(
        "emulate",
        cli("emulate", "--trace", str(trace), "--replicas", "2", "--port", str(emu_port),
            "--gateway", "flow-control", "--queue-depth-threshold", str(THRESHOLD),
            "--pool", POOL),
        tmp_path / "emulate.log",
    )  # fmt: skip
    prometheus = prometheus_proc(prometheus_binary, tmp_path, prom_port)
    serve = serve_proc(tmp_path)
    procs = [emulator, prometheus, serve]
    with running(procs):
        yield {
            "serve": serve,
            "metrics": f"http://127.0.0.1:{health}/metrics",
            "api": f"https://127.0.0.1:{https}/v1/workloads/default/llm",
            "prom": f"http://127.0.0.1:{prom_port}",
        }


def forecast_detail(api: str) -> str | None:
    body = api_json(api)
    rec = (body or {}).get("recommendation") or {}
    for c in rec.get("candidates") or []:
        if c.get("reason") == "forecast":
            return str(c.get("detail"))
    return None


def test_the_gateway_backlog_raises_the_recommendation_while_engine_queues_stay_flat(stack):
    url, api, prom = str(stack["metrics"]), str(stack["api"]), str(stack["prom"])

    def fresh(name: str) -> float | None:
        if metric(url, "llm_autoscaler_workload_stale", WORKLOAD) != 0.0:
            return None
        return metric(url, name, WORKLOAD)

    wait_for("a first fresh recommendation", lambda: fresh("llm_autoscaler_desired_replicas"))
    detail = wait_for(
        "demand read at the gateway",
        lambda: (d := forecast_detail(api)) is not None and "arrivals at the gateway" in d and d,
    )
    before = metric(url, "llm_autoscaler_desired_replicas", WORKLOAD)
    assert before is not None, detail

    backlog = wait_for(
        "the EPP's flow-control queue to grow",
        lambda: (
            (b := promql(prom, "sum(inference_extension_flow_control_queue_size)")) is not None
            and b >= 10
            and b
        ),
    )
    raised = wait_for(
        "the recommendation to rise",
        lambda: (d := fresh("llm_autoscaler_desired_replicas")) is not None and d > before and d,
    )
    # every engine queue Prometheus has seen, from the start until now, stayed at the threshold
    deepest = promql(prom, "max(max_over_time(vllm:num_requests_waiting[10m]))")
    assert deepest is not None and deepest <= THRESHOLD, deepest
    detail = forecast_detail(api)
    assert detail is not None and "arrivals at the gateway" in detail, detail
    print(f"gateway backlog {backlog:.0f}: desired {before:.0f} -> {raised:.0f}; {detail}")

    assert stack["serve"].stop(signal.SIGTERM) == 0  # type: ignore[attr-defined]

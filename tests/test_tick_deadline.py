"""A slow Prometheus costs a tick its budget, not minutes: no query starts and no retry waits
past the budget, the tick holds with a reason that names Prometheus and the query, and the
outage shows in ``ticks_total{outcome="held"}``. Against a real HTTP server that answers late."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from autoscaler.clients.prometheus import PrometheusClient
from autoscaler.config import ServiceConfig, WorkloadConfig
from external_metrics.metrics_api import not_fresh_reason
from tests.test_loop import Clock, make


class SlowPrometheus(ThreadingHTTPServer):
    """Answers every query with an empty vector after ``delay_s``; counts the requests."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.requests = 0
        self.release = threading.Event()
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: SlowPrometheus

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        self.server.requests += 1
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.release.wait(self.server.delay_s)
        body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": []}})
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())
        except OSError:
            pass  # the client gave up first: that is the point

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def slow() -> Iterator[SlowPrometheus]:
    server = SlowPrometheus(delay_s=5.0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()


def config(budget: float | None) -> ServiceConfig:
    service: dict[str, object] = {"tick_s": 2.0}
    if budget is not None:
        service["tick_budget_s"] = budget
    return ServiceConfig(
        service=service,
        workloads=(
            WorkloadConfig(namespace="llm", name="a", engine="vllm", selector={"app": "a"}),
        ),
    )


def test_a_slow_prometheus_holds_the_tick_within_its_budget(slow):
    clock = Clock()
    with PrometheusClient(f"http://127.0.0.1:{slow.server_port}", timeout_s=10.0) as api:
        loop, store, registry = make(config(0.5), api, clock)
        report = loop.tick()
    # one query was sent and cut at the budget; no retry, none of the other queries
    assert slow.requests == 1
    assert loop.queries_per_tick() > 1
    rec = report.recommendations["llm/a"]
    assert rec.holds
    why = rec.candidates[0].detail
    assert why.startswith("Prometheus slow: ") and "(vllm)" in why
    assert registry.get_sample_value("llm_autoscaler_ticks_total", {"outcome": "held"}) == 1.0
    assert registry.get_sample_value("llm_autoscaler_ticks_total", {"outcome": "ok"}) is None
    entry = store.get("llm/a")
    reason = not_fresh_reason(entry, entry.freshness(clock.t, 45.0), now=clock.t, staleness_s=45.0)
    assert "Prometheus slow" in reason
    assert loop.alive()
    assert (loop.degraded() or "").startswith("Prometheus slow: ")


@pytest.mark.asyncio
async def test_readiness_says_degraded_while_holding_and_stays_in_the_service():
    from aiohttp.test_utils import TestClient, TestServer
    from prometheus_client import CollectorRegistry

    from external_metrics.health import create_health_app

    why: list[str | None] = [None]
    app = create_health_app(CollectorRegistry(), alive=lambda: True, ready=lambda: True,
                            degraded=lambda: why[0])  # fmt: skip
    async with TestClient(TestServer(app)) as client:
        ok = await client.get("/readyz")
        assert (ok.status, await ok.text()) == (200, "ok\n")
        why[0] = "Prometheus slow: vllm:request_success_total (vllm)"
        held = await client.get("/readyz")
        assert held.status == 200
        assert await held.text() == f"degraded: {why[0]}\n"
        alive = await client.get("/healthz")
        assert alive.status == 200


def test_the_default_budget_is_half_a_tick():
    assert config(None).service.effective_tick_budget_s == 1.0


def test_a_budget_as_long_as_the_tick_is_refused():
    with pytest.raises(ValueError, match="tick_budget_s"):
        config(2.0)


def test_an_unreachable_prometheus_is_named_in_the_hold(tmp_path):
    clock = Clock()
    with PrometheusClient("http://127.0.0.1:9", timeout_s=1.0, sleep=lambda s: None) as api:
        loop, _, registry = make(config(None), api, clock)
        rec = loop.tick().recommendations["llm/a"]
    assert rec.holds and rec.candidates[0].detail.startswith("Prometheus unreachable: ")
    assert registry.get_sample_value("llm_autoscaler_ticks_total", {"outcome": "held"}) == 1.0


def test_without_a_deadline_the_client_still_retries_a_timeout(slow):
    slow.delay_s = 0.3
    with PrometheusClient(
        f"http://127.0.0.1:{slow.server_port}", timeout_s=0.1, sleep=lambda s: None
    ) as api:
        with pytest.raises(Exception, match="did not answer"):
            api.query("up")
    assert slow.requests == 3  # the first try and two retries


def test_kube_state_metrics_replica_states_keep_to_their_share_of_the_budget(slow):
    """The replica source's 10 queries obey the budget too, and a failed refresh is not
    retried once per workload within the same tick."""
    from autoscaler.live.ksm_replicas import KubeStateMetricsReplicas

    workloads = [
        WorkloadConfig(namespace="llm", name=n, engine="vllm", selector={"app": n})
        for n in ("a", "b", "c")
    ]
    with PrometheusClient(f"http://127.0.0.1:{slow.server_port}", timeout_s=10.0) as api:
        ksm = KubeStateMetricsReplicas(api, workloads, budget_s=0.3)
        for w in workloads:
            with pytest.raises(LookupError, match="kube-state-metrics: .*deadline"):
                ksm.counts(f"llm/{w.name}", 1_700_000_000.0)
    assert slow.requests == 1  # one query cut at the budget; no retry, no query per workload

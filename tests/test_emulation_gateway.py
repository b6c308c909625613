"""The emulated fleet behind an endpoint picker: /epp/metrics over real HTTP, flow control."""

from __future__ import annotations

import asyncio

from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from autoscaler.emulation import Emulator, EmulatorSettings, create_app
from autoscaler.engines.gateway import INPUT_TOKEN_BUCKETS
from autoscaler.simulation.gateway import GatewaySim
from tests.simhelpers import poisson_trace, toy_profile


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def scrape(em: Emulator, path: str, sim_s: float) -> tuple[int, str]:
    clock = FakeClock()
    settings = EmulatorSettings(speed=100.0, workload="team-a/chat", interval_s=0.01, pool="p1")

    async def main() -> tuple[int, str]:
        app = create_app(em, settings, clock=clock)
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            clock.t += sim_s / 100.0
            resp = await client.get(path)
            return resp.status, await resp.text()

    return asyncio.run(main())


def families(text: str) -> dict[str, list]:
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def test_without_a_gateway_there_is_no_epp_endpoint():
    em = Emulator(poisson_trace(2.0, 60.0, 500, 50), replicas=1, profile=toy_profile())
    status, _ = scrape(em, "/epp/metrics", 10.0)
    assert status == 404


def test_the_epp_counts_requests_let_through_and_sizes_completed_ones():
    trace = poisson_trace(5.0, 120.0, 500, 50)
    em = Emulator(trace, replicas=2, profile=toy_profile(), gateway=GatewaySim())
    status, text = scrape(em, "/epp/metrics", 60.0)
    assert status == 200
    fams = families(text)
    (requests,) = [s for s in fams["inference_objective_request"] if s.name.endswith("_total")]
    assert requests.labels == {
        "model_name": "llama2-70b", "target_model_name": "llama2-70b",
        "namespace": "team-a", "inference_pool": "p1",
    }  # fmt: skip
    assert requests.value == int((trace.arrival_s < 60.0).sum())
    tokens = fams["inference_objective_input_tokens"]
    count = next(s.value for s in tokens if s.name.endswith("_count"))
    total = next(s.value for s in tokens if s.name.endswith("_sum"))
    assert count == em.completed() > 0 and total == 500.0 * count
    bounds = [s.labels["le"] for s in tokens if s.name.endswith("_bucket")]
    assert len(bounds) == len(INPUT_TOKEN_BUCKETS) + 1 and bounds[-1] == "+Inf"
    (ready,) = fams["inference_pool_ready_pods"]
    assert ready.value == 2 and ready.labels["name"] == "p1"
    assert "inference_extension_flow_control_queue_size" not in fams


def test_with_flow_control_the_overflow_waits_in_the_epp_queue_not_the_engines():
    trace = poisson_trace(60.0, 60.0, 2000, 200)
    fc = GatewaySim(flow_control=True, queue_depth_threshold=2)
    em = Emulator(trace, replicas=1, profile=toy_profile(), gateway=fc)
    _, text = scrape(em, "/epp/metrics", 30.0)
    (queue,) = families(text)["inference_extension_flow_control_queue_size"]
    assert queue.labels["inference_pool"] == "p1" and queue.labels["priority"] == "0"
    assert queue.value > 100
    assert em.sample(0).waiting <= 2
    assert em.fleet.dispatched + len(em.fleet.backlog) == int((trace.arrival_s < 30.0).sum())


def test_flow_control_drains_the_epp_queue_when_the_load_stops():
    trace = poisson_trace(40.0, 10.0, 500, 20)
    em = Emulator(trace, replicas=1, profile=toy_profile(),
                  gateway=GatewaySim(flow_control=True, queue_depth_threshold=1))  # fmt: skip
    em.advance_to(10.0)
    assert len(em.fleet.backlog) > 0
    em.advance_to(10_000.0)
    assert len(em.fleet.backlog) == 0 and em.finished

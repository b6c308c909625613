"""The emulated fleet: the incremental stepper agrees with ``simulate``, the exposition is valid
vLLM V1 text, the aiohttp app serves it over real HTTP (STYLE.md lessons 6, 10, 11)."""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry, Metric, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from autoscaler.emulation import Emulator, EmulatorSettings, VllmV1Collector, create_app
from autoscaler.errors import InputError
from autoscaler.perf.profiles import get_profile
from autoscaler.simulation.engine import SimConfig, simulate
from autoscaler.simulation.observation import ITL_BUCKETS, LATENCY_BUCKETS, TTFT_BUCKETS
from autoscaler.simulation.oracle import PlanPolicy
from autoscaler.traces.synthetic import SyntheticWorkload, generate

REPLICAS = 2

COUNTERS = (
    "vllm:request_success",
    "vllm:prompt_tokens",
    "vllm:generation_tokens",
    "vllm:num_preemptions",
)
GAUGES = ("vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc")
HISTOGRAMS = {
    "vllm:time_to_first_token_seconds": TTFT_BUCKETS,
    "vllm:inter_token_latency_seconds": ITL_BUCKETS,
    "vllm:request_time_per_output_token_seconds": ITL_BUCKETS,
    "vllm:e2e_request_latency_seconds": LATENCY_BUCKETS,
    "vllm:request_queue_time_seconds": LATENCY_BUCKETS,
    "vllm:request_prompt_tokens": None,
}


@pytest.fixture(scope="module")
def trace():
    return generate(SyntheticWorkload(duration_s=120, mean_rate_rps=5), seed=0)


@pytest.fixture(scope="module")
def profile():
    return get_profile()


@pytest.fixture(scope="module")
def simulated(trace, profile):
    config = SimConfig(max_replicas=REPLICAS, min_replicas=REPLICAS, start_replicas=REPLICAS)
    out = simulate(trace, PlanPolicy("constant", (REPLICAS,)), profile=profile, config=config)
    return np.asarray(out.reqs.finished, dtype=np.float64)


def _emulator(trace, profile) -> Emulator:
    return Emulator(trace, replicas=REPLICAS, profile=profile)


# -- (1) the stepper --------------------------------------------------------------------------


@pytest.mark.parametrize("t", [10.0, 37.5, 60.0, 120.0])
def test_stepper_completions_match_simulate_at_any_cut(trace, profile, simulated, t):
    em = _emulator(trace, profile)
    em.advance_to(t)
    assert em.completed() == int(np.sum(simulated <= t))


def test_stepper_in_small_increments_reproduces_simulate_exactly(trace, profile, simulated):
    em = _emulator(trace, profile)
    t = 0.0
    while not em.finished:
        t += 0.7
        em.advance_to(t)
    finished = np.asarray(em.reqs.finished, dtype=np.float64)
    np.testing.assert_array_equal(finished, simulated)
    assert em.completed() == int(np.isfinite(simulated).sum())


def test_stepper_counters_add_up_over_replicas(trace, profile):
    em = _emulator(trace, profile)
    em.advance_to(1e6)
    assert em.finished
    samples = em.samples()
    assert all(s.waiting == 0 and s.running == 0 for s in samples)
    done = em.reqs.output_arr[np.isfinite(np.asarray(em.reqs.finished))]
    assert sum(s.generation_tokens for s in samples) == int(done.sum())
    assert sum(s.metrics.success for s in samples) == done.shape[0]
    # least-outstanding-work routing spreads the load over both replicas
    assert all(s.metrics.success > 0 for s in samples)
    assert sum(s.metrics.itl.count for s in samples) == int((done - 1).sum())


def test_stepper_never_goes_back(trace, profile):
    em = _emulator(trace, profile)
    em.advance_to(50.0)
    before = em.completed()
    assert em.advance_to(20.0) == 0
    assert em.now == 50.0 and em.completed() == before
    with pytest.raises(ValueError):
        em.advance_to(math.nan)


@pytest.mark.parametrize("bad", [0, -1, True, 1.5])
def test_stepper_rejects_bad_replica_counts(trace, profile, bad):
    with pytest.raises(InputError, match="replicas"):
        Emulator(trace, replicas=bad, profile=profile)


# -- (2) the exposition -----------------------------------------------------------------------


def _scrape(em: Emulator) -> dict[str, Metric]:
    registry = CollectorRegistry()
    registry.register(
        VllmV1Collector(
            lambda: [({"pod": f"llm-{s.index}"}, s) for s in em.samples()],
            model_name="llama2-70b",
            created_unix=1.0e9,
        )
    )
    text = generate_latest(registry).decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_exposition_has_every_vllm_family_with_its_type_and_labels(trace, profile):
    em = _emulator(trace, profile)
    em.advance_to(60.0)
    families = _scrape(em)
    for name in COUNTERS:
        assert families[name].type == "counter", name
    for name in GAUGES:
        assert families[name].type == "gauge", name
    for name in HISTOGRAMS:
        assert families[name].type == "histogram", name
    for family in families.values():
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            assert sample.labels["engine"] == "0"
            assert sample.labels["model_name"] == "llama2-70b"
            assert sample.labels["pod"] in ("llm-0", "llm-1")
    success = families["vllm:request_success"].samples
    assert {s.labels["finished_reason"] for s in success} == {"stop"}
    assert sum(s.value for s in success if s.name.endswith("_total")) == em.completed()


def test_histograms_are_cumulative_with_vllm_buckets_ending_in_inf(trace, profile):
    em = _emulator(trace, profile)
    em.advance_to(90.0)
    families = _scrape(em)
    for name, bounds in HISTOGRAMS.items():
        for pod in ("llm-0", "llm-1"):
            samples = [s for s in families[name].samples if s.labels["pod"] == pod]
            buckets = [s for s in samples if s.name == name + "_bucket"]
            les = [s.labels["le"] for s in buckets]
            assert les[-1] == "+Inf", name
            if bounds is not None:
                assert [float(x) for x in les[:-1]] == list(bounds), name
            counts = [s.value for s in buckets]
            assert counts == sorted(counts), name
            (count,) = [s.value for s in samples if s.name == name + "_count"]
            assert counts[-1] == count
            assert count > 0, name


def test_counters_are_monotone_across_scrapes(trace, profile):
    em = _emulator(trace, profile)
    em.advance_to(30.0)
    first = _scrape(em)
    em.advance_to(75.0)
    second = _scrape(em)

    def values(families, name):
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for s in families[name].samples
            if not s.name.endswith("_created")
        }

    for name in (*COUNTERS, *HISTOGRAMS):
        a, b = values(first, name), values(second, name)
        assert a.keys() == b.keys()
        assert all(b[k] >= a[k] for k in a), name
    grew = values(second, "vllm:request_success")
    assert sum(grew.values()) > sum(values(first, "vllm:request_success").values())


# -- (3) the HTTP app -------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _serve(em: Emulator, clock: FakeClock, check) -> None:
    settings = EmulatorSettings(speed=100.0, workload="team-a/chat", interval_s=0.01)

    async def main() -> None:
        app = create_app(em, settings, clock=clock)
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            await check(client)

    asyncio.run(main())


def test_app_serves_the_fleet_with_pod_labels_over_http(trace, profile):
    em = _emulator(trace, profile)
    clock = FakeClock()

    async def check(client) -> None:
        clock.t += 0.5  # 50 simulated seconds at speed 100
        resp = await client.get("/metrics")
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        text = await resp.text()
        assert em.now == pytest.approx(50.0)
        families = {f.name: f for f in text_string_to_metric_families(text)}
        pods = {s.labels["pod"] for s in families["vllm:num_requests_running"].samples}
        assert pods == {"chat-0", "chat-1"}
        sample = families["vllm:num_requests_running"].samples[0]
        assert sample.labels["namespace"] == "team-a" and sample.labels["workload"] == "chat"
        total = sum(
            s.value for s in families["vllm:request_success"].samples if s.name.endswith("_total")
        )
        assert total == em.completed() > 0

    _serve(em, clock, check)


def test_app_serves_each_replica_and_lists_targets(trace, profile):
    em = _emulator(trace, profile)
    clock = FakeClock()

    async def check(client) -> None:
        clock.t += 0.3
        resp = await client.get("/replica/1/metrics")
        assert resp.status == 200
        assert resp.content_type == "text/plain"
        families = {f.name: f for f in text_string_to_metric_families(await resp.text())}
        (sample,) = families["vllm:num_requests_waiting"].samples
        assert sample.labels == {"engine": "0", "model_name": "llama2-70b"}
        om = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
        resp = await client.get("/metrics", headers={"Accept": om})
        assert resp.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        assert "vllm:num_requests_waiting{" in await resp.text()
        assert (await client.get("/replica/2/metrics")).status == 404
        assert (await client.get("/replica/x/metrics")).status == 404
        targets = await (await client.get("/targets")).json()
        assert [t["labels"]["__metrics_path__"] for t in targets] == [
            "/replica/0/metrics",
            "/replica/1/metrics",
        ]
        assert targets[0]["labels"]["pod"] == "chat-0"

    _serve(em, clock, check)


def test_background_task_advances_without_scrapes(trace, profile):
    em = _emulator(trace, profile)
    clock = FakeClock()

    async def check(client) -> None:
        clock.t += 0.2
        for _ in range(1000):  # wait for the task's next pass (no timing assertion)
            if em.now > 0:
                break
            await asyncio.sleep(0.01)
        assert em.now == pytest.approx(20.0)

    _serve(em, clock, check)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"engine": "nope"}, "unknown engine 'nope'"),
        ({"speed": 0.0}, "speed"),
        ({"workload": "llm"}, "NAMESPACE/NAME"),
    ],
)
def test_settings_reject_bad_values(kwargs, needle):
    with pytest.raises(InputError, match=needle):
        EmulatorSettings(**kwargs)

"""Live roles end to end: a real Prometheus scraping per-role vLLM series, the control loop with
the role policy, and the value of each role on the External Metrics API and the KEDA scaler.

The exposition is what an llm-d or Dynamo disaggregated deployment's workers serve: both run
vLLM for prefill and for decode (Dynamo passes vLLM's ``vllm:`` metrics through on its worker
``/metrics``, docs.nvidia.com/dynamo "vLLM Prometheus Metrics"), and the scrape labels each
series with the pod's namespace, pod name and a ``workload`` label copied from the role's pods
(deploy/examples/pd-podmonitor.yaml). Counters grow at fixed rates from the start, so the
rates Prometheus computes are known, and so is what the role policy must decide from them.

No wait asserts a duration: every wait is for a condition, with a generous deadline that only a
broken run reaches.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import grpc
import pytest
from prometheus_client import CollectorRegistry

from autoscaler.clients.prometheus import PrometheusClient
from autoscaler.config import ServiceConfig
from autoscaler.core.recommendation import Recommendation
from autoscaler.core.wire_names import PUBLISHED_METRICS
from autoscaler.engines.registry import ENGINES
from autoscaler.live.loop import (
    ControlLoop,
    TickReport,
    role_policy,
    workload_context,
    workload_info,
)
from autoscaler.live.loop_metrics import LoopMetrics
from autoscaler.live.store import Freshness, RecommendationStore
from autoscaler.policies.role_forecast import START_UTILISATION, RoleForecastPolicy
from external_metrics.app import create_api_app
from external_metrics.keda import externalscaler_pb2 as pb
from external_metrics.keda import externalscaler_pb2_grpc as pb_grpc
from external_metrics.keda.server import create_grpc_server
from tests.external_metrics_support import make_pki, serving
from tests.live_stack import prometheus_scraping

WAIT_S = 120.0
PREFIX = "/apis/external.metrics.k8s.io/v1beta1"
DESIRED = "llm_desired_replicas"

PROMPT = 8000.0
"""Mean prompt tokens of every request (long-prompt traffic: what disaggregation is for)."""
OUTPUT = 500.0
PREFILL_RPS = 4.0
DECODE_RPS = 2.0
PODS = 2

CONFIG = {
    "service": {"tick_s": 5.0, "scrape_interval_s": 1.0, "rate_window": "10s"},
    "workloads": [
        {
            "namespace": "llm",
            "name": "llama-pd",
            "engine": "vllm",
            "roles": {
                "prefill": {
                    "name": "llama-prefill",
                    "kind": "LeaderWorkerSet",
                    "selector": {"llm-d.ai/role": "prefill"},
                    "max_replicas": 20,
                },
                "decode": {
                    "name": "llama-decode",
                    "selector": {"llm-d.ai/role": "decode"},
                    "max_replicas": 20,
                },
            },
        },
        {"namespace": "llm", "name": "chat", "engine": "vllm", "selector": {"app": "chat"}},
    ],
}


def vllm_pods(workload: str, rps: float, output: float, elapsed: float) -> list[str]:
    """One role's vLLM series, ``PODS`` pods sharing ``rps`` requests/s, as of ``elapsed``."""
    lines: list[str] = []
    for i in range(PODS):
        labels = f'namespace="llm",workload="{workload}",pod="{workload}-{i}",model_name="llama"'
        done = rps / PODS * elapsed
        lines += [
            f"vllm:request_success_total{{{labels}}} {done}",
            f"vllm:prompt_tokens_total{{{labels}}} {done * PROMPT}",
            f"vllm:generation_tokens_total{{{labels}}} {done * output}",
            f'vllm:request_prompt_tokens_bucket{{{labels},le="+Inf"}} {done}',
            f"vllm:request_prompt_tokens_sum{{{labels}}} {done * PROMPT}",
            f"vllm:request_prompt_tokens_count{{{labels}}} {done}",
            f"vllm:num_requests_waiting{{{labels}}} 0",
            f"vllm:num_requests_running{{{labels}}} 4",
            f"vllm:kv_cache_usage_perc{{{labels}}} 0.3",
        ]
    return lines


class Exposition:
    """What the exporter serves: both roles (and an aggregated workload), until ``drop`` names
    a role target whose pods stop being scraped."""

    def __init__(self) -> None:
        self.start = time.time()
        self.drop: str | None = None
        self.lock = threading.Lock()

    def __call__(self) -> str:
        elapsed = time.time() - self.start
        with self.lock:
            drop = self.drop
        lines = ["# TYPE vllm:request_success_total counter"]
        for workload, rps, output in (
            ("llama-prefill", PREFILL_RPS, 1.0),  # a prefill engine generates the first token
            ("llama-decode", DECODE_RPS, OUTPUT),
            ("chat", 1.0, 200.0),
        ):
            if workload != drop:
                lines += vllm_pods(workload, rps, output, elapsed)
        return "\n".join(lines) + "\n"


@pytest.fixture
def stack(tmp_path: Path, prometheus_binary: str) -> Iterator[tuple[str, Exposition]]:
    exposition = Exposition()
    with prometheus_scraping(prometheus_binary, tmp_path, exposition) as url:
        yield url, exposition


def expected(config: ServiceConfig) -> dict[str, int]:
    """What the role policy must decide at the exposition's steady rates (no latency data, so
    its utilisation stays at the start value)."""
    out: dict[str, int] = {}
    for t in config.targets:
        if t.role is None:
            continue
        policy = role_policy(workload_context(config, t, ENGINES["vllm"]), t.role)
        assert isinstance(policy, RoleForecastPolicy)
        if t.role == "prefill":
            busy = PREFILL_RPS * PROMPT * policy.prefill_s_per_token(PROMPT)
        else:
            busy = DECODE_RPS * OUTPUT / policy.decode_tokens_per_s(PROMPT + OUTPUT / 2)
        out[f"llm/{t.name}"] = math.ceil(busy / START_UTILISATION)
    return out


def tick_until(
    loop: ControlLoop, done: Callable[[TickReport], bool], what: str
) -> dict[str, Recommendation]:
    deadline = time.monotonic() + WAIT_S
    while True:
        report = loop.tick()
        if done(report):
            return dict(report.recommendations)
        if time.monotonic() > deadline:
            raise AssertionError(f"never reached: {what}; last tick {report.recommendations}")
        time.sleep(1.0)


def test_the_expected_counts_tell_the_roles_apart():
    """The figures the live test checks differ by role, so a swapped role would fail it."""
    want = expected(ServiceConfig.model_validate(CONFIG))
    assert want == {"llm/llama-prefill": 6, "llm/llama-decode": 2}


@pytest.mark.asyncio
async def test_each_role_is_decided_published_and_held_on_its_own(stack, tmp_path):
    url, exposition = stack
    config = ServiceConfig.model_validate(CONFIG)
    want = expected(config)
    store = RecommendationStore(
        [workload_info(config, w, ENGINES[w.engine]) for w in config.targets],
        staleness_s=config.service.effective_staleness_s,
        clock=time.time,
        metric_names=PUBLISHED_METRICS,
    )
    with PrometheusClient(url) as prometheus:
        loop = ControlLoop(
            config,
            prometheus=prometheus,
            store=store,
            engines=ENGINES,
            metrics=LoopMetrics(CollectorRegistry()),
        )

        def settled(report: TickReport) -> bool:
            recs = report.recommendations
            return (
                all(
                    recs[k].desired_replicas is not None and abs(recs[k].desired_replicas - n) <= 1
                    for k, n in want.items()
                )
                and not recs["llm/chat"].holds
            )

        recs = await asyncio.to_thread(tick_until, loop, settled, "both roles decided")
        prefill = recs["llm/llama-prefill"].desired_replicas
        decode = recs["llm/llama-decode"].desired_replicas
        assert prefill is not None and decode is not None
        assert prefill > decode  # long prompts: the prefill pool is the big one

        pki = make_pki(tmp_path / "pki")
        grpc_server = create_grpc_server(store, "127.0.0.1:0", tls=None)
        grpc_server.start()
        channel = grpc.insecure_channel(f"127.0.0.1:{grpc_server.port}")
        keda = pb_grpc.ExternalScalerStub(channel)

        def keda_value(**metadata: str) -> int:
            ref = pb.ScaledObjectRef(name="so", namespace="llm", scalerMetadata=metadata)
            req = pb.GetMetricsRequest(scaledObjectRef=ref, metricName=DESIRED)
            (value,) = keda.GetMetrics(req, timeout=10).metricValues
            return int(value.metricValue)

        try:
            async with (
                serving(create_api_app(store, None), pki.server_context(verify_clients=False)) as b,
                aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(ssl=pki.client_context())
                ) as session,
            ):

                async def external(selector: str) -> tuple[int, dict]:
                    async with session.get(
                        f"{b}{PREFIX}/namespaces/llm/{DESIRED}",
                        params={"labelSelector": selector},
                        headers={"Accept": "application/json"},
                    ) as resp:
                        return resp.status, json.loads(await resp.text())

                # External Metrics: the role label picks the role's value
                for role, value in (("prefill", prefill), ("decode", decode)):
                    status, body = await external(f"workload=llama-pd,role={role}")
                    assert status == 200, body["message"]
                    (item,) = body["items"]
                    assert item["metricLabels"] == {
                        "namespace": "llm", "workload": "llama-pd", "role": role,
                    }  # fmt: skip
                    assert item["value"] == f"{value * 1000}m"
                status, body = await external("workload=llama-pd")
                assert status == 400  # both roles match: the HPA would sum them
                status, body = await external("workload=chat")
                assert status == 200 and "role" not in body["items"][0]["metricLabels"]

                # /v1: one document per role, with its labels and value
                async with session.get(f"{b}/v1/workloads", params={"namespace": "llm"}) as r:
                    docs = {d["name"]: d for d in json.loads(await r.text())["workloads"]}
                assert docs["llama-prefill"]["labels"]["role"] == "prefill"
                assert docs["llama-prefill"]["desired_replicas"] == prefill
                assert docs["llama-decode"]["labels"]["role"] == "decode"
                assert docs["llama-decode"]["desired_replicas"] == decode

                # KEDA: the trigger's role metadata picks the role's target
                assert keda_value(workload="llm/llama-pd", role="prefill") == prefill
                assert keda_value(workload="llm/llama-pd", role="decode") == decode
                assert keda_value(workload="llm/llama-decode") == decode  # by target name
                with pytest.raises(grpc.RpcError) as err:
                    keda_value(workload="llm/llama-pd")
                assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                assert "role" in (err.value.details() or "")

                # the prefill pods stop being scraped: prefill holds, decode goes on
                with exposition.lock:
                    exposition.drop = "llama-prefill"
                recs = await asyncio.to_thread(
                    tick_until,
                    loop,
                    lambda r: r.recommendations["llm/llama-prefill"].holds,
                    "prefill holds without its data",
                )
                assert recs["llm/llama-decode"].desired_replicas == decode
                assert store.freshness("llm/llama-prefill") is not Freshness.FRESH
                assert store.freshness("llm/llama-decode") is Freshness.FRESH
                last = store.get("llm/llama-prefill").last_good
                assert last is not None and last.desired_replicas == prefill  # kept, not lowered

                status, body = await external("workload=llama-pd,role=prefill")
                assert status == 503, body  # the HPA keeps its count (fail static)
                status, body = await external("workload=llama-pd,role=decode")
                assert status == 200 and body["items"][0]["value"] == f"{decode * 1000}m"
                with pytest.raises(grpc.RpcError) as err:
                    keda_value(workload="llm/llama-pd", role="prefill")
                assert err.value.code() == grpc.StatusCode.UNAVAILABLE
                assert keda_value(workload="llm/llama-pd", role="decode") == decode
        finally:
            channel.close()
            grpc_server.stop(None).wait(10)

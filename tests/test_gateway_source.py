"""The inference gateway (EPP) as a signal source: config, batched PromQL, the join, collection."""

from __future__ import annotations

import math

import numpy as np
import pytest

from autoscaler.clients.fake_prometheus import FakePrometheus
from autoscaler.clients.prometheus import PrometheusQueryError, RangeSeries, Sample
from autoscaler.config import GatewayConfig, WorkloadConfig, parse_config
from autoscaler.engines import gateway
from autoscaler.engines.promql import build_queries
from autoscaler.engines.registry import ENGINES
from autoscaler.errors import InputError
from autoscaler.live.collection import collect, collect_history

NOW = 1_700_000_000.0
VLLM = {q.field: q.promql for q in build_queries(ENGINES["vllm"])}


def workload(name: str, namespace: str = "llm", **gw: object) -> WorkloadConfig:
    return WorkloadConfig.model_validate(
        {
            "namespace": namespace,
            "name": name,
            "engine": "vllm",
            "selector": {"app": name},
            **({"gateway": gw} if gw else {}),
        }
    )


def epp(value: float, namespace: str = "llm", ts: float = NOW, **labels: str) -> Sample:
    return Sample({"namespace": namespace, **labels}, ts, value)


def engine_rows(names: list[str]) -> dict[str, list[Sample]]:
    """Just enough of a vLLM fleet that no workload is stale."""
    out: dict[str, list[Sample]] = {p: [] for p in VLLM.values()}
    for name in names:
        for field in ("request_rate", "waiting_growth_rate", "prompt_tokens_rate"):
            out[VLLM[field]].append(Sample({"namespace": "llm", "workload": name}, NOW, 5.0))
    return out


def queries_for(workloads: list[WorkloadConfig]) -> dict[str, str]:
    joins = [gateway.GatewayJoin.of(w.namespace, w.gateway) for w in workloads if w.gateway]
    return {q.field: q.promql for q in gateway.build_gateway_queries(joins)}


# --- config -------------------------------------------------------------------------------------


def test_a_gateway_is_joined_by_pool_name_or_selector():
    by_pool = GatewayConfig(pool="llama-pool")
    assert by_pool.matchers() == {"inference_pool": "llama-pool"}
    both = GatewayConfig(pool="p", pool_label="pool", selector={"model_name": "m"})
    assert both.matchers() == {"pool": "p", "model_name": "m"}


@pytest.mark.parametrize(
    ("gateway", "message"),
    [
        ({}, "workloads[0].gateway.pool: give the InferencePool's name (pool) or a selector"),
        ({"pool": "Not_A_Name"}, "workloads[0].gateway.pool: 'Not_A_Name' is not an InferencePool"),
        ({"selector": {"model-name": "x"}}, "workloads[0].gateway.selector: 'model-name' is not"),
        ({"pool": "p", "selector": {"inference_pool": "p"}}, "gateway.selector.inference_pool:"),
        ({"pool": "p", "poool": "q"}, "workloads[0].gateway.poool: unknown field"),
    ],
)
def test_a_wrong_gateway_config_names_the_file_and_field(gateway, message):
    data = {
        "workloads": [
            {
                "namespace": "llm",
                "name": "chat",
                "engine": "vllm",
                "selector": {"app": "chat"},
                "gateway": gateway,
            }
        ]
    }
    with pytest.raises(InputError) as err:
        parse_config(data, source="svc.yaml")
    assert str(err.value).startswith("svc.yaml: ")
    assert message in str(err.value)


# --- queries ------------------------------------------------------------------------------------


def test_the_query_count_does_not_grow_with_the_workloads():
    few = queries_for([workload("a", pool="pa")])
    many = queries_for([workload(f"w{i}", pool=f"p{i}") for i in range(50)])
    assert len(few) == len(many) == 7
    assert few == many  # same keys: the same queries, whatever the pools


def test_queries_group_by_the_namespace_and_every_matcher_key_and_read_both_generations():
    qs = queries_for(
        [workload("a", pool="pa"), workload("b", selector={"job": "b-epp", "model_name": "m"})]
    )
    by = "sum by (namespace, inference_pool, job, model_name)"
    assert qs["gateway_request_rate"] == (
        f"{by} (rate(inference_objective_request_total[1m]) "
        "or rate(inference_model_request_total[1m]))"
    )
    assert qs["gateway_backlog"] == f"{by} (inference_extension_flow_control_queue_size)"
    assert qs["gateway_backlog_growth_rate"] == (
        f"{by} (deriv(inference_extension_flow_control_queue_size[1m]))"
    )
    assert "rate(inference_objective_input_tokens_sum[1m])" in qs["gateway_prompt_tokens_sum"]
    assert "rate(inference_model_output_tokens_count[1m])" in qs["gateway_output_tokens_count"]


def test_no_gateway_no_query():
    assert gateway.build_gateway_queries([]) == ()


# --- the join -----------------------------------------------------------------------------------


def test_each_workload_sums_the_rows_that_match_it_and_divides_after_summing():
    joins = {
        "llm/a": gateway.GatewayJoin("llm", (("inference_pool", "pa"),)),
        "llm/b": gateway.GatewayJoin("llm", (("model_name", "m"),)),
    }
    rows = {
        "gateway_request_rate": [
            epp(3.0, inference_pool="pa", model_name="x"),
            epp(1.0, inference_pool="pa", model_name="y"),
            epp(7.0, inference_pool="pb", model_name="m"),
            epp(9.0, namespace="other", inference_pool="pa", model_name="m"),
        ],
        "gateway_prompt_tokens_sum": [
            epp(300.0, inference_pool="pa", model_name="x"),  # 3 req/s of 100 tokens
            epp(1000.0, inference_pool="pa", model_name="y"),  # 1 req/s of 1000 tokens
        ],
        "gateway_prompt_tokens_count": [
            epp(3.0, inference_pool="pa", model_name="x"),
            epp(1.0, inference_pool="pa", model_name="y"),
        ],
    }
    out = gateway.gateway_signals(joins, rows)
    assert out["llm/a"].values["gateway_request_rate"] == 4.0
    assert out["llm/a"].values["gateway_mean_prompt_tokens"] == pytest.approx(325.0)
    assert out["llm/a"].values["gateway_backlog"] is None  # no flow control: no series
    assert out["llm/b"].values["gateway_request_rate"] == 7.0
    assert out["llm/b"].values["gateway_mean_prompt_tokens"] is None


def test_an_impossible_sample_is_rejected_and_its_sum_not_made_up_from_the_rest():
    joins = {"llm/a": gateway.GatewayJoin("llm", (("inference_pool", "pa"),))}
    rows = {
        "gateway_request_rate": [
            epp(3.0, inference_pool="pa", model_name="x"),
            epp(-2.0, inference_pool="pa", model_name="y"),
        ],
        "gateway_backlog_growth_rate": [epp(-0.5, inference_pool="pa")],  # a draining queue
        "gateway_backlog": [epp(math.inf, inference_pool="pa")],
    }
    out = gateway.gateway_signals(joins, rows)["llm/a"]
    assert out.values["gateway_request_rate"] is None
    assert out.values["gateway_backlog"] is None
    assert out.values["gateway_backlog_growth_rate"] == -0.5
    assert out.rejected == (
        "gateway_request_rate=-2: negative",
        "gateway_backlog=inf: infinite",
    )


# --- collection ---------------------------------------------------------------------------------


def test_collect_fills_the_gateway_fields_of_gateway_fronted_workloads_only():
    fronted, plain = workload("chat", pool="chat-pool"), workload("code")
    results = engine_rows(["chat", "code"])
    qs = queries_for([fronted])
    results[qs["gateway_request_rate"]] = [epp(12.0, inference_pool="chat-pool")]
    results[qs["gateway_backlog"]] = [epp(30.0, inference_pool="chat-pool", fairness_id="t")]
    results[qs["gateway_backlog_growth_rate"]] = [epp(0.5, inference_pool="chat-pool")]
    results[qs["gateway_prompt_tokens_sum"]] = [epp(6000.0, inference_pool="chat-pool")]
    results[qs["gateway_prompt_tokens_count"]] = [epp(12.0, inference_pool="chat-pool")]
    results[qs["gateway_output_tokens_sum"]] = [epp(2400.0, inference_pool="chat-pool")]
    results[qs["gateway_output_tokens_count"]] = [epp(12.0, inference_pool="chat-pool")]
    api = FakePrometheus(results=results)

    snaps = collect(api, [fronted, plain], now=NOW, engines=ENGINES, staleness_s=45.0)

    chat, code = snaps["llm/chat"], snaps["llm/code"]
    assert not chat.stale and not code.stale
    assert chat.gateway_request_rate == 12.0
    assert chat.gateway_backlog == 30.0
    assert chat.arrival_requests_per_s() == 12.5
    assert (chat.gateway_mean_prompt_tokens, chat.gateway_mean_output_tokens) == (500.0, 200.0)
    assert code.gateway_request_rate is None and code.arrival_requests_per_s() is None
    assert sum(1 for c in api.calls if c in set(qs.values())) == 7


def test_without_gateway_config_collect_asks_nothing_of_the_gateway():
    api = FakePrometheus(results=engine_rows(["code"]))
    collect(api, [workload("code")], now=NOW, engines=ENGINES, staleness_s=45.0)
    assert not any("inference_" in c for c in api.calls)


def test_a_failed_or_stale_gateway_leaves_its_fields_empty_and_the_snapshot_fresh():
    fronted = workload("chat", pool="chat-pool")
    results = engine_rows(["chat"])
    qs = queries_for([fronted])
    results[qs["gateway_backlog"]] = [epp(30.0, ts=NOW - 600.0, inference_pool="chat-pool")]
    api = FakePrometheus(
        results=results,
        errors={qs["gateway_request_rate"]: PrometheusQueryError("boom")},
    )
    snap = collect(api, [fronted], now=NOW, engines=ENGINES, staleness_s=45.0)["llm/chat"]
    assert not snap.stale
    assert snap.gateway_request_rate is None
    assert snap.gateway_backlog is None  # ten minutes old


def test_the_backfill_reads_the_gateway_history_with_the_same_seven_queries():
    fronted = workload("chat", pool="chat-pool")
    qs = queries_for([fronted])
    times = NOW - 600.0 + 15.0 * np.arange(41)
    engine = {
        p: [RangeSeries(r.labels, times, np.full(times.size, r.value)) for r in rows]
        for p, rows in engine_rows(["chat"]).items()
    }
    rising = RangeSeries(
        {"namespace": "llm", "inference_pool": "chat-pool"}, times, np.linspace(1.0, 41.0, 41)
    )
    api = FakePrometheus(range_results={**engine, qs["gateway_request_rate"]: [rising]})

    history = collect_history(
        api, [fronted], start=times[0], end=times[-1], step=15.0, engines=ENGINES
    )

    assert len(history) == 41
    rates = [snaps["llm/chat"].gateway_request_rate for _, snaps in history]
    assert rates == list(np.linspace(1.0, 41.0, 41))
    assert sum(1 for c in api.calls if c in set(qs.values())) == 7

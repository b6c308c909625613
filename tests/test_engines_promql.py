"""The batched PromQL builder: exact strings for vLLM, constant query count, label config."""

from __future__ import annotations

import dataclasses

import pytest

from autoscaler.core.signals import SignalSnapshot
from autoscaler.engines.base import Signal
from autoscaler.engines.promql import (
    GroupingLabels,
    build_fleet_queries,
    build_queries,
    selector,
)
from autoscaler.engines.registry import engine_names, get_engine

W = "namespace, workload"
VLLM_EXPECTED = {
    "request_rate": f"sum by ({W}) (rate(vllm:request_success_total[1m]))",
    "prompt_tokens_rate": f"sum by ({W}) (rate(vllm:prompt_tokens_total[1m]))",
    "generation_tokens_rate": f"sum by ({W}) (rate(vllm:generation_tokens_total[1m]))",
    "preemption_rate": f"sum by ({W}) (rate(vllm:num_preemptions_total[1m]))",
    "ttft_p90_s": (
        f"histogram_quantile(0.9, sum by ({W}, le) "
        "(rate(vllm:time_to_first_token_seconds_bucket[1m])))"
    ),
    "tpot_p90_s": (
        f"histogram_quantile(0.9, sum by ({W}, le) "
        "(rate(vllm:inter_token_latency_seconds_bucket[1m])))"
    ),
    "e2e_p95_s": (
        f"histogram_quantile(0.95, sum by ({W}, le) "
        "(rate(vllm:e2e_request_latency_seconds_bucket[1m])))"
    ),
    "queue_time_p90_s": (
        f"histogram_quantile(0.9, sum by ({W}, le) "
        "(rate(vllm:request_queue_time_seconds_bucket[1m])))"
    ),
    "p90_prompt_tokens": (
        f"histogram_quantile(0.9, sum by ({W}, le) (rate(vllm:request_prompt_tokens_bucket[1m])))"
    ),
    "mean_prompt_tokens": (
        f"sum by ({W}) (rate(vllm:request_prompt_tokens_sum[1m])) / "
        f"sum by ({W}) (rate(vllm:request_prompt_tokens_count[1m]))"
    ),
    "ttft_buckets": f"sum by ({W}, le) (rate(vllm:time_to_first_token_seconds_bucket[1m]))",
    "prompt_buckets": f"sum by ({W}, le) (rate(vllm:request_prompt_tokens_bucket[1m]))",
    "tpot_buckets": (
        f"sum by ({W}, le) (rate(vllm:request_time_per_output_token_seconds_bucket[1m]))"
    ),
    "waiting": f"sum by ({W}) (vllm:num_requests_waiting)",
    "waiting_growth_rate": f"sum by ({W}) (deriv(vllm:num_requests_waiting[1m]))",
    "per_replica_waiting": f"sum by ({W}, pod) (vllm:num_requests_waiting)",
    "running": f"sum by ({W}) (vllm:num_requests_running)",
    "per_replica_running": f"sum by ({W}, pod) (vllm:num_requests_running)",
    "kv_usage": f"avg by ({W}) (vllm:kv_cache_usage_perc)",
    "kv_usage_max": f"max by ({W}) (vllm:kv_cache_usage_perc)",
    "per_replica_kv_usage": f"avg by ({W}, pod) (vllm:kv_cache_usage_perc)",
}


def test_vllm_queries_match_expected_strings():
    queries = build_queries(get_engine("vllm"))
    assert {q.field: q.promql for q in queries} == VLLM_EXPECTED
    assert len({q.field for q in queries}) == len(queries)


def test_vllm_v0_reads_gpu_cache_usage():
    queries = {q.field: q.promql for q in build_queries(get_engine("vllm_v0"))}
    assert queries["kv_usage"] == f"avg by ({W}) (vllm:gpu_cache_usage_perc)"
    assert "queue_time_p90_s" not in queries  # V0 has no queue-time histogram


@pytest.mark.parametrize("n_workloads", [1, 10, 1_000, 10_000])
def test_query_count_does_not_depend_on_workload_count(n_workloads):
    vllm = get_engine("vllm")
    fleet = {f"ns/wl-{i}": vllm for i in range(n_workloads)}
    by_engine = build_fleet_queries(fleet)
    assert list(by_engine) == ["vllm"]
    assert len(by_engine["vllm"]) == len(VLLM_EXPECTED)


def test_bucket_queries_never_mix_two_generations_of_a_histogram():
    """SGLang's TTFT has one name but two bucket sets; its prompt size has two names. A
    workload's buckets come from the first generation it reports, never from both (plain ``or``
    matches on ``le`` too, and would merge two bucket sets into one histogram)."""
    queries = {q.field: q.promql for q in build_queries(get_engine("sglang"))}
    assert queries["ttft_buckets"] == (
        f"sum by ({W}, le) (rate(sglang:time_to_first_token_seconds_bucket[1m]))"
    )
    prompt = queries["prompt_buckets"]
    first, second = (f"sum by ({W}, le) (rate({n}_bucket[1m]))" for n in _prompt_names())
    assert prompt == f"({first}) or (({second}) unless on ({W}) ({first}))"
    assert "tpot_buckets" not in queries  # SGLang's per-request TPOT is not verified


def _prompt_names() -> list[str]:
    return [s.name for s in get_engine("sglang").prompt_tokens]


def test_mixed_fleet_costs_one_query_set_per_engine():
    engines = [get_engine(n) for n in ("vllm", "sglang", "tgi")]
    small = build_fleet_queries({f"w{i}": engines[i % 3] for i in range(3)})
    large = build_fleet_queries({f"w{i}": engines[i % 3] for i in range(3_000)})
    assert small == large
    assert sum(map(len, large.values())) == sum(len(build_queries(p)) for p in engines)


def test_workload_label_names_are_configurable():
    labels = GroupingLabels(namespace="kubernetes_namespace", workload="app", pod="pod_name")
    queries = {q.field: q.promql for q in build_queries(get_engine("vllm"), labels, window="2m")}
    assert queries["request_rate"] == (
        "sum by (kubernetes_namespace, app) (rate(vllm:request_success_total[2m]))"
    )
    assert queries["per_replica_waiting"] == (
        "sum by (kubernetes_namespace, app, pod_name) (vllm:num_requests_waiting)"
    )
    assert "sum by (kubernetes_namespace, app, le)" in queries["ttft_p90_s"]


def test_extra_matchers_and_selector_matchers():
    queries = {
        q.field: q.promql
        for q in build_queries(get_engine("triton_trtllm"), extra_matchers={"namespace": "prod"})
    }
    assert queries["waiting"] == (
        f'sum by ({W}) (nv_trt_llm_request_metrics{{request_type="waiting",namespace=~"prod"}})'
    )
    assert queries["kv_usage"] == (
        f"avg by ({W}) "
        '(nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="fraction",namespace=~"prod"})'
    )
    assert "ttft_p90_s" not in queries and "e2e_p95_s" not in queries


def test_selector_escapes_quotes():
    series = get_engine("vllm").waiting[0]
    assert selector(series, extra={"namespace": 'a"b'}) == (
        'vllm:num_requests_waiting{namespace=~"a\\"b"}'
    )


def test_sglang_generations_are_joined_in_one_query():
    queries = {q.field: q.promql for q in build_queries(get_engine("sglang"))}
    assert queries["waiting"] == (
        f"sum by ({W}) (sglang:num_queue_reqs or sglang:num_requests_waiting)"
    )
    assert queries["request_rate"] == (
        f"sum by ({W}) (rate(sglang:num_requests_total[1m]) "
        "or rate(sglang:e2e_request_latency_seconds_count[1m]))"
    )
    # Same name in both generations: emitted once.
    assert queries["e2e_p95_s"].count("sglang:e2e_request_latency_seconds_bucket") == 1
    # Different names: whole quantile queries joined, buckets never mixed.
    assert queries["tpot_p90_s"].startswith("(histogram_quantile(0.9,")
    assert ") or (histogram_quantile(0.9," in queries["tpot_p90_s"]


def test_dcgm_framebuffer_queries():
    queries = {q.field: q.promql for q in build_queries(get_engine("dcgm"))}
    assert queries == {
        "gpu_memory_used_mib": f"sum by ({W}) (DCGM_FI_DEV_FB_USED)",
        "gpu_memory_free_mib": f"sum by ({W}) (DCGM_FI_DEV_FB_FREE)",
        "gpu_memory_usage": (
            f"avg by ({W}) (DCGM_FI_DEV_FB_USED / (DCGM_FI_DEV_FB_USED + DCGM_FI_DEV_FB_FREE))"
        ),
    }


@pytest.mark.parametrize("name", engine_names())
def test_queries_fill_snapshot_fields_and_skip_missing(name):
    profile = get_engine(name)
    snapshot_fields = {f.name for f in dataclasses.fields(SignalSnapshot)}
    queries = build_queries(profile)
    for q in queries:
        assert q.signal not in profile.missing
        assert q.field in snapshot_fields or q.field.startswith("gpu_memory_"), q.field
        assert q.promql.count("(") == q.promql.count(")")
    assert {q.signal for q in queries} == set(profile.exported())
    if Signal.TTFT in profile.missing:
        assert all(q.field != "ttft_p90_s" for q in queries)


def test_gpu_memory_is_joined_to_each_engines_replicas_by_namespace_and_pod():
    dcgm = get_engine("dcgm")
    queries = {q.field: q.promql for q in build_queries(get_engine("tgi"), gpu_memory=dcgm)}
    share = "DCGM_FI_DEV_FB_USED / (DCGM_FI_DEV_FB_USED + DCGM_FI_DEV_FB_FREE)"
    mapped = (
        f"max by ({W}, pod) (({share}) * on (namespace, pod) group_left (workload) "
        f"group by ({W}, pod) (tgi_batch_current_size))"
    )
    per_pod = queries["per_replica_gpu_memory_usage"]
    # the pod-mapped join first; pods it leaves out get their node's fullest GPU
    # (tests/test_gpu_memory_node_join.py runs both in the real Prometheus)
    assert per_pod.startswith(f"{mapped} or max by ({W}, pod) (")
    assert "on (node) group_right ()" in per_pod and 'kube_pod_info{node!=""}' in per_pod
    assert queries["gpu_memory_usage"] == f"avg by ({W}) ({per_pod})"
    assert queries["gpu_memory_usage_max"] == f"max by ({W}) ({per_pod})"


def test_gpu_memory_adds_three_queries_per_engine_and_none_to_dcgm_itself():
    dcgm = get_engine("dcgm")
    for name in engine_names():
        plain = build_queries(get_engine(name))
        joined = build_queries(get_engine(name), gpu_memory=dcgm)
        assert len(joined) - len(plain) == (0 if name == "dcgm" else 3), name
    fleet = {f"w{i}": get_engine(n) for i, n in enumerate(("vllm", "tgi", "vllm", "tgi"))}
    assert sum(map(len, build_fleet_queries(fleet, gpu_memory=dcgm).values())) == sum(
        len(build_queries(get_engine(n), gpu_memory=dcgm)) for n in ("vllm", "tgi")
    )


def test_gpu_memory_queries_take_the_labels_and_matchers_given():
    labels = GroupingLabels(namespace="ns", workload="app", pod="instance")
    queries = {
        q.field: q.promql
        for q in build_queries(
            get_engine("vllm"), labels, extra_matchers={"ns": "prod"}, gpu_memory=get_engine("dcgm")
        )
    }
    q = queries["per_replica_gpu_memory_usage"]
    assert 'DCGM_FI_DEV_FB_USED{ns=~"prod"}' in q and 'vllm:num_requests_running{ns=~"prod"}' in q
    assert "on (ns, instance) group_left (app)" in q and q.startswith("max by (ns, app, instance)")


def test_tgi_kv_usage_is_its_token_pool_share():
    queries = {q.field: q.promql for q in build_queries(get_engine("tgi"))}
    share = "(tgi_batch_current_max_tokens / tgi_batch_max_total_tokens)"
    assert queries["kv_usage"] == f"avg by ({W}) ({share})"
    assert queries["per_replica_kv_usage"] == f"avg by ({W}, pod) ({share})"


def test_triton_latency_is_a_mean_per_request_from_its_microsecond_counters():
    queries = {q.field: q.promql for q in build_queries(get_engine("triton_trtllm"))}
    assert queries["queue_time_mean_s"] == (
        f"sum by ({W}) (rate(nv_inference_queue_duration_us[1m])) / "
        f"sum by ({W}) (rate(nv_inference_request_success[1m])) * 1e-06"
    )
    assert "nv_inference_request_duration_us" in queries["e2e_mean_s"]
    assert "queue_time_p90_s" not in queries and "e2e_p95_s" not in queries

"""vLLM V1 engine (0.33.0 verified; the default engine). METRICS.md section 1a.

Labels ``model_name`` and ``engine`` (one per data-parallel engine core). KV usage is
``vllm:kv_cache_usage_perc``; V0's ``vllm:gpu_cache_usage_perc`` is gone in 0.33.0 (see
:mod:`autoscaler.engines.vllm_v0`). Token-count buckets are ``build_1_2_5_buckets(max_model_len)``;
the default below assumes a 128k context.
"""

from __future__ import annotations

from autoscaler.engines.base import EngineProfile, Series, Signal, one_two_five

TTFT_BUCKETS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
    1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
)  # fmt: skip
ITL_BUCKETS = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75,
    1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
)  # fmt: skip
REQUEST_LATENCY_BUCKETS = (
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0,
    50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0,
)  # fmt: skip
TOKEN_BUCKETS = one_two_five(131072)

PROFILE = EngineProfile(
    name="vllm",
    description="vLLM V1 engine (0.8 and later; names verified in 0.33.0)",
    reference="METRICS.md 1a",
    model_labels=("model_name",),
    memory_in_kv_pool=True,
    missing=frozenset({Signal.GPU_MEMORY_USED, Signal.GPU_MEMORY_FREE}),
    request_rate=(Series("vllm:request_success_total"),),
    prompt_tokens_rate=(Series("vllm:prompt_tokens_total"),),
    generation_tokens_rate=(Series("vllm:generation_tokens_total"),),
    preemptions=(Series("vllm:num_preemptions_total"),),
    ttft=(Series("vllm:time_to_first_token_seconds", buckets=TTFT_BUCKETS),),
    tpot=(Series("vllm:inter_token_latency_seconds", buckets=ITL_BUCKETS),),
    e2e=(Series("vllm:e2e_request_latency_seconds", buckets=REQUEST_LATENCY_BUCKETS),),
    queue_time=(Series("vllm:request_queue_time_seconds", buckets=REQUEST_LATENCY_BUCKETS),),
    prompt_tokens=(Series("vllm:request_prompt_tokens", buckets=TOKEN_BUCKETS),),
    request_tpot=(Series("vllm:request_time_per_output_token_seconds", buckets=ITL_BUCKETS),),
    waiting=(Series("vllm:num_requests_waiting"),),
    running=(Series("vllm:num_requests_running"),),
    kv_usage=(Series("vllm:kv_cache_usage_perc"),),
)

"""vLLM V0 engine (roughly 0.4 .. 0.7). METRICS.md section 1c; capture ``vllm_v0_capture.txt``.

Label ``model_name`` only. KV usage is ``vllm:gpu_cache_usage_perc`` (V1 renamed it to
``vllm:kv_cache_usage_perc``); TPOT is ``vllm:time_per_output_token_seconds``. V0 has no
queue-time histogram in the verified version, so queue time falls back to Little's law.
"""

from __future__ import annotations

from autoscaler.engines.base import EngineProfile, Series, Signal, one_two_five

TTFT_BUCKETS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip
TPOT_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)
E2E_BUCKETS = (1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0)
TOKEN_BUCKETS = one_two_five(32768)

PROFILE = EngineProfile(
    name="vllm_v0",
    description="vLLM V0 engine (about 0.4 to 0.7)",
    reference="METRICS.md 1c",
    model_labels=("model_name",),
    memory_in_kv_pool=True,
    missing=frozenset(
        {Signal.QUEUE_TIME, Signal.REQUEST_TPOT, Signal.GPU_MEMORY_USED, Signal.GPU_MEMORY_FREE}
    ),
    request_rate=(Series("vllm:request_success_total"),),
    prompt_tokens_rate=(Series("vllm:prompt_tokens_total"),),
    generation_tokens_rate=(Series("vllm:generation_tokens_total"),),
    preemptions=(Series("vllm:num_preemptions_total"),),
    ttft=(Series("vllm:time_to_first_token_seconds", buckets=TTFT_BUCKETS),),
    tpot=(Series("vllm:time_per_output_token_seconds", buckets=TPOT_BUCKETS),),
    e2e=(Series("vllm:e2e_request_latency_seconds", buckets=E2E_BUCKETS),),
    prompt_tokens=(Series("vllm:request_prompt_tokens", buckets=TOKEN_BUCKETS),),
    waiting=(Series("vllm:num_requests_waiting"),),
    running=(Series("vllm:num_requests_running"),),
    kv_usage=(Series("vllm:gpu_cache_usage_perc"),),
)

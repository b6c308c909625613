"""NVIDIA Triton with the TensorRT-LLM backend. METRICS.md section 4; ``triton_trtllm_capture.txt``.

The backend exports gauges only (``nv_trt_llm_*`` with a selector label) and Triton core adds
request counters; there are no latency histograms and no token counters. Mapping as the
Kubernetes Inference Gateway does: waiting = ``request_type="waiting"``, running =
``request_type="scheduled"``, KV usage = ``kv_cache_block_type="fraction"``. Labels ``model``,
``version``. Latency comes from Triton core's cumulative durations (microseconds) per successful
request: queue time = ``nv_inference_queue_duration_us``, end to end =
``nv_inference_request_duration_us`` (TRT-LLM's request latency), as means (no tail quantile).

``memory_in_kv_pool`` is False: Triton serves other models beside TensorRT-LLM (an ensemble's pre-
and post-processing), and TensorRT-LLM sizes its pool as ``kv_cache_free_gpu_mem_fraction`` (0.9)
of the memory they and its weights leave, so the KV fraction does not cover the GPU.
"""

from __future__ import annotations

from autoscaler.engines.base import CAPACITY_MODEL, EngineProfile, Fallback, Series, Signal

PROFILE = EngineProfile(
    name="triton_trtllm",
    description="NVIDIA Triton Inference Server with the TensorRT-LLM backend",
    reference="METRICS.md 4a, 4b",
    model_labels=("model",),
    missing=frozenset(
        {
            Signal.PROMPT_TOKENS_RATE,
            Signal.GENERATION_TOKENS_RATE,
            Signal.PREEMPTIONS,
            Signal.TTFT,
            Signal.TPOT,
            Signal.PROMPT_TOKENS,
            Signal.REQUEST_TPOT,
            Signal.GPU_MEMORY_USED,
            Signal.GPU_MEMORY_FREE,
        }
    ),
    request_rate=(Series("nv_inference_request_success"),),
    queue_time=(
        Series(
            "nv_inference_queue_duration_us", mean_of="nv_inference_request_success", scale=1e-6
        ),
    ),
    e2e=(
        Series(
            "nv_inference_request_duration_us", mean_of="nv_inference_request_success", scale=1e-6
        ),
    ),
    waiting=(Series("nv_trt_llm_request_metrics", (("request_type", "waiting"),)),),
    running=(Series("nv_trt_llm_request_metrics", (("request_type", "scheduled"),)),),
    kv_usage=(Series("nv_trt_llm_kv_cache_block_metrics", (("kv_cache_block_type", "fraction"),)),),
    fallbacks=(
        Fallback(
            Signal.TTFT,
            (Signal.QUEUE_TIME,),
            "No histograms: the latency guard and the capacity learner read the mean queue time "
            "per request (nv_inference_queue_duration_us / nv_inference_request_success) against "
            "the TTFT budget. A mean is below the tail, so the guard acts later than on a p90.",
        ),
        Fallback(
            Signal.PROMPT_TOKENS,
            (Signal.REQUEST_RATE, CAPACITY_MODEL),
            "No token counters: the seed's mean prompt size (autoscaler.traces.synthetic); no "
            "p90, so the TTFT budget has no per-prompt allowance.",
        ),
    ),
)

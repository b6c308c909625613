"""NVIDIA Triton with the TensorRT-LLM backend. METRICS.md section 4; ``triton_trtllm_capture.txt``.

The backend exports gauges only (``nv_trt_llm_*`` with a selector label) and Triton core adds
request counters; there are no latency histograms and no token counters. Mapping as the
Kubernetes Inference Gateway does: waiting = ``request_type="waiting"``, running =
``request_type="scheduled"``, KV usage = ``kv_cache_block_type="fraction"``. Labels ``model``,
``version``.
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
            Signal.E2E,
            Signal.QUEUE_TIME,
            Signal.PROMPT_TOKENS,
            Signal.REQUEST_TPOT,
            Signal.GPU_MEMORY_USED,
            Signal.GPU_MEMORY_FREE,
        }
    ),
    request_rate=(Series("nv_inference_request_success"),),
    waiting=(Series("nv_trt_llm_request_metrics", (("request_type", "waiting"),)),),
    running=(Series("nv_trt_llm_request_metrics", (("request_type", "scheduled"),)),),
    kv_usage=(Series("nv_trt_llm_kv_cache_block_metrics", (("kv_cache_block_type", "fraction"),)),),
    fallbacks=(
        Fallback(
            Signal.TTFT,
            (Signal.WAITING, Signal.REQUEST_RATE, CAPACITY_MODEL),
            "No histograms: mean queue time by Little's law (waiting / request rate) plus the "
            "capacity model's prefill time; the mean of nv_inference_queue_duration_us per "
            "request is a cross-check. No tail quantile is available.",
        ),
        Fallback(
            Signal.PROMPT_TOKENS,
            (Signal.REQUEST_RATE, CAPACITY_MODEL),
            "No token counters: mean and p90 prompt size from the capacity seed (trace).",
        ),
    ),
)

"""HuggingFace text-generation-inference (TGI). METRICS.md section 3.

The Rust exporter writes counters without ``_total`` and no model label. TGI has no TTFT
histogram (fallback: queue time p90 + prefill estimate), no KV-cache gauge and no preemption
counter. Token rates come from the ``_sum`` of the token-count histograms. KV usage is the token
pool's: ``tgi_batch_current_max_tokens / tgi_batch_max_total_tokens``, the tokens the running
batch has reserved (prompts plus their ``max_new_tokens``) over the pool TGI's warm-up sized to
the GPU: the share at which TGI stops admitting requests. It is a reservation, not the blocks in
use, so the memory-pressure guard stays live (``memory_in_kv_pool`` False).
"""

from __future__ import annotations

from autoscaler.engines.base import EngineProfile, Series, Signal

DURATION_BUCKETS = tuple(0.0001 * 1.5**k for k in range(1, 36))
"""Every ``*_duration`` histogram: 0.0001 * 1.5**k for k = 1..35 (0.00015 s .. about 145.6 s)."""

PROFILE = EngineProfile(
    name="tgi",
    description="HuggingFace text-generation-inference",
    reference="METRICS.md 3",
    model_labels=(),
    missing=frozenset(
        {
            Signal.TTFT,
            Signal.PREEMPTIONS,
            Signal.REQUEST_TPOT,
            Signal.GPU_MEMORY_USED,
            Signal.GPU_MEMORY_FREE,
        }
    ),
    request_rate=(Series("tgi_request_success"),),
    prompt_tokens_rate=(Series("tgi_request_input_length_sum"),),
    generation_tokens_rate=(Series("tgi_request_generated_tokens_sum"),),
    tpot=(Series("tgi_request_mean_time_per_token_duration", buckets=DURATION_BUCKETS),),
    e2e=(Series("tgi_request_duration", buckets=DURATION_BUCKETS),),
    queue_time=(Series("tgi_request_queue_duration", buckets=DURATION_BUCKETS),),
    # 100 linear buckets of max_input_tokens / 100: they depend on the server's flags.
    prompt_tokens=(Series("tgi_request_input_length"),),
    waiting=(Series("tgi_queue_size"),),
    running=(Series("tgi_batch_current_size"),),
    kv_usage=(Series("tgi_batch_current_max_tokens", divide_by="tgi_batch_max_total_tokens"),),
)

"""SGLang, both generations of names. METRICS.md sections 2a (0.5.23) and 2b (late 2024).

Each signal lists the current name first and the late-2024 name second; the PromQL builder joins
them with ``or``, so a fleet mid-upgrade (or pinned to an old release) is read by one query per
signal. The late-2024 release has no finished-requests counter: its request rate is the rate of
``sglang:e2e_request_latency_seconds_count`` (one observation per finished request), and it has
no retraction counter (preemptions), so that signal is simply absent on old replicas. Labels:
``model_name`` now, ``name`` in late 2024. Where both generations use the same name with different
buckets, the series is listed twice (the builder emits it once); ``histogram_quantile`` reads each
replica's own buckets. The buckets of the optional ``sglang:queue_time_seconds`` and
``sglang:prompt_tokens_histogram`` are not in METRICS.md and are left empty (unknown).
"""

from __future__ import annotations

from autoscaler.engines.base import EngineProfile, Series, Signal, one_two_five

TTFT_BUCKETS = (
    0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 2.0, 4.0, 6.0, 8.0, 10.0, 20.0, 40.0, 60.0, 80.0, 100.0,
    200.0, 400.0,
)  # fmt: skip
ITL_BUCKETS = (
    0.002, 0.004, 0.006, 0.008, 0.010, 0.015, 0.020, 0.025, 0.030, 0.035, 0.040, 0.060, 0.080,
    0.100, 0.200, 0.400, 0.600, 0.800, 1.000, 2.000, 4.000, 6.000, 8.000,
)  # fmt: skip
E2E_BUCKETS = (
    0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 2.0, 4.0, 6.0, 8.0, 10.0, 20.0, 40.0, 60.0, 80.0, 100.0,
    200.0, 400.0, 600.0, 1200.0, 1800.0, 2400.0,
)  # fmt: skip
LEGACY_TTFT_BUCKETS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    15.0, 20.0, 25.0, 30.0,
)  # fmt: skip
LEGACY_TPOT_BUCKETS = (
    0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5,
    0.75, 1.0, 2.5,
)  # fmt: skip
LEGACY_TOKEN_BUCKETS = one_two_five(100000)
"""Late 2024 used 1, 2, 5, ... 100000 for token counts and also for e2e and waiting seconds."""

PROFILE = EngineProfile(
    name="sglang",
    description="SGLang (current sglang: names, falling back to the late-2024 names)",
    reference="METRICS.md 2a, 2b",
    model_labels=("model_name", "name"),
    memory_in_kv_pool=True,
    missing=frozenset({Signal.REQUEST_TPOT, Signal.GPU_MEMORY_USED, Signal.GPU_MEMORY_FREE}),
    request_rate=(
        Series("sglang:num_requests_total"),
        Series("sglang:e2e_request_latency_seconds_count"),
    ),
    prompt_tokens_rate=(Series("sglang:prompt_tokens_total"),),
    generation_tokens_rate=(Series("sglang:generation_tokens_total"),),
    preemptions=(Series("sglang:num_retracted_requests_total"),),
    ttft=(
        Series("sglang:time_to_first_token_seconds", buckets=TTFT_BUCKETS),
        Series("sglang:time_to_first_token_seconds", buckets=LEGACY_TTFT_BUCKETS),
    ),
    tpot=(
        Series("sglang:inter_token_latency_seconds", buckets=ITL_BUCKETS),
        Series("sglang:time_per_output_token_seconds", buckets=LEGACY_TPOT_BUCKETS),
    ),
    e2e=(
        Series("sglang:e2e_request_latency_seconds", buckets=E2E_BUCKETS),
        Series("sglang:e2e_request_latency_seconds", buckets=LEGACY_TOKEN_BUCKETS),
    ),
    queue_time=(
        Series("sglang:queue_time_seconds"),
        Series("sglang:waiting_request_latency_seconds", buckets=LEGACY_TOKEN_BUCKETS),
    ),
    prompt_tokens=(
        Series("sglang:prompt_tokens_histogram"),
        Series("sglang:request_prompt_tokens", buckets=LEGACY_TOKEN_BUCKETS),
    ),
    waiting=(Series("sglang:num_queue_reqs"), Series("sglang:num_requests_waiting")),
    running=(Series("sglang:num_running_reqs"), Series("sglang:num_requests_running")),
    kv_usage=(Series("sglang:token_usage"),),
)

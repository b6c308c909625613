"""The engines' /metrics text, built at scrape time from the emulator's state.

One :class:`prometheus_client.registry.Collector` per engine reads
:class:`~autoscaler.emulation.stepper.ReplicaSample` objects and yields metric families with the
engine's own names, labels and default buckets (``../shared/engines/METRICS.md``; the Triton
names and label sets are those of ``triton_trtllm_capture.txt``): vLLM V1 (0.33.0), TGI and
Triton with the TensorRT-LLM backend. Adding an engine is one collector class, one line in
:data:`ENGINES` and, when its histograms differ from vLLM's, one in :data:`BUCKETS`.
dcgm-exporter and the gateway's endpoint picker, scraped beside them, are
:mod:`autoscaler.emulation.side_exporters`.

TGI and Triton counters carry no ``_total`` (Rust's and Triton's exporters add none); the server
writes their ``# HELP``/``# TYPE`` lines under the same name (``server._exposition``).

``extra_labels`` adds labels a real engine does not export but Prometheus would attach on a
Kubernetes scrape (``namespace``, ``workload``, ``pod``): the fleet-wide ``/metrics`` of the
emulator uses it so that a single static scrape target looks like a relabelled fleet.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from autoscaler.emulation.families import (
    Families,
    SampleSource,
    histogram_buckets,
    one,
)
from autoscaler.emulation.stepper import (
    Buckets,
    HistogramState,
    ReplicaSample,
    vllm_buckets,
)
from autoscaler.engines import sglang, tgi, vllm_v0
from autoscaler.simulation.observation import one_two_five_buckets

__all__ = [
    "BUCKETS",
    "ENGINES",
    "SglangCollector",
    "TgiCollector",
    "TritonTrtllmCollector",
    "VllmV0Collector",
    "VllmV1Collector",
    "buckets_for",
    "engine_names",
]


class VllmV1Collector(Collector):
    """vLLM V1 (0.33.0) metric families: labels ``engine`` and ``model_name``, default buckets."""

    def __init__(
        self,
        source: SampleSource,
        *,
        model_name: str,
        engine_index: str = "0",
        created_unix: float | None = None,
    ) -> None:
        self._source = source
        self._model_name = model_name
        self._engine = engine_index
        self._created = created_unix

    def collect(self) -> Iterable[Metric]:
        rows = self._source()
        extra_names = sorted(rows[0][0]) if rows else []
        base = ["engine", "model_name", *extra_names]

        def values(labels: dict[str, str]) -> list[str]:
            return [self._engine, self._model_name, *(labels[k] for k in extra_names)]

        def gauge(name: str, doc: str, get: Callable[[ReplicaSample], float]) -> Metric:
            fam = GaugeMetricFamily(name, doc, labels=base)
            for labels, s in rows:
                fam.add_metric(values(labels), float(get(s)))
            return fam

        def counter(
            name: str,
            doc: str,
            get: Callable[[ReplicaSample], float],
            extra: tuple[str, str] | None = None,
        ) -> Metric:
            names = [*base, extra[0]] if extra else base
            fam = CounterMetricFamily(name, doc, labels=names)
            for labels, s in rows:
                vals = values(labels) + ([extra[1]] if extra else [])
                fam.add_metric(vals, float(get(s)), created=self._created)
            return fam

        def histogram(
            name: str, doc: str, get: Callable[[ReplicaSample], HistogramState]
        ) -> Metric:
            fam = HistogramMetricFamily(name, doc, labels=base)
            for labels, s in rows:
                h = get(s)
                fam.add_metric(values(labels), histogram_buckets(h), h.total)
                if self._created is not None:
                    # HistogramMetricFamily has no ``created`` argument; vLLM shows _created.
                    fam.add_sample(
                        name + "_created",
                        dict(zip(base, values(labels), strict=True)),
                        self._created,
                    )
            return fam

        yield gauge(
            "vllm:num_requests_running",
            "Number of requests in model execution batches.",
            lambda s: s.running,
        )
        yield gauge(
            "vllm:num_requests_waiting",
            "Number of requests waiting to be processed.",
            lambda s: s.waiting,
        )
        yield gauge(
            "vllm:kv_cache_usage_perc",
            "KV-cache usage. 1 means 100 percent usage.",
            lambda s: s.kv_usage,
        )
        yield counter(
            "vllm:num_preemptions",
            "Cumulative number of preemption from the engine.",
            lambda s: 0.0,
        )
        yield counter(
            "vllm:prompt_tokens",
            "Number of prefill tokens processed.",
            lambda s: s.prompt_tokens,
        )
        yield counter(
            "vllm:generation_tokens",
            "Number of generation tokens processed.",
            lambda s: s.generation_tokens,
        )
        yield counter(
            "vllm:request_success",
            "Count of successfully processed requests.",
            lambda s: s.metrics.success,
            extra=("finished_reason", "stop"),
        )
        yield histogram(
            "vllm:request_prompt_tokens",
            "Number of prefill tokens processed.",
            lambda s: s.metrics.prompt_len,
        )
        yield histogram(
            "vllm:request_generation_tokens",
            "Number of generation tokens processed.",
            lambda s: s.metrics.generation_len,
        )
        yield histogram(
            "vllm:time_to_first_token_seconds",
            "Histogram of time to first token in seconds.",
            lambda s: s.metrics.ttft,
        )
        yield histogram(
            "vllm:inter_token_latency_seconds",
            "Histogram of inter-token latency in seconds.",
            lambda s: s.metrics.itl,
        )
        yield histogram(
            "vllm:request_time_per_output_token_seconds",
            "Histogram of time_per_output_token_seconds per request.",
            lambda s: s.metrics.tpot,
        )
        yield histogram(
            "vllm:e2e_request_latency_seconds",
            "Histogram of e2e request latency in seconds.",
            lambda s: s.metrics.e2e,
        )
        yield histogram(
            "vllm:request_queue_time_seconds",
            "Histogram of time spent in WAITING phase for request.",
            lambda s: s.metrics.queue,
        )


class VllmV0Collector(Collector):
    """vLLM V0 (about 0.4 to 0.7, METRICS.md 1c; ``vllm_v0_capture.txt``): label ``model_name``
    only, ``vllm:gpu_cache_usage_perc``, ``vllm:time_per_output_token_seconds``, V0's buckets
    (:data:`BUCKETS`), no queue-time histogram."""

    def __init__(self, source: SampleSource, *, model_name: str, **_: object) -> None:
        self._source = source
        self._model = model_name

    def collect(self) -> Iterable[Metric]:
        f = Families(self._source(), {"model_name": self._model})
        yield f.gauge(
            "vllm:num_requests_running",
            "Number of requests currently running on GPU.",
            one(lambda s: s.running),
        )
        yield f.gauge(
            "vllm:num_requests_waiting",
            "Number of requests waiting to be processed.",
            one(lambda s: s.waiting),
        )
        yield f.gauge(
            "vllm:num_requests_swapped", "Number of requests swapped to CPU.", one(lambda s: 0.0)
        )
        yield f.gauge(
            "vllm:gpu_cache_usage_perc",
            "GPU KV-cache usage. 1 means 100 percent usage.",
            one(lambda s: s.kv_usage),
        )
        yield f.counter(
            "vllm:num_preemptions",
            "Cumulative number of preemption from the engine.",
            lambda s: 0.0,
            total=True,
        )
        yield f.counter(
            "vllm:prompt_tokens",
            "Number of prefill tokens processed.",
            lambda s: s.prompt_tokens,
            total=True,
        )
        yield f.counter(
            "vllm:generation_tokens",
            "Number of generation tokens processed.",
            lambda s: s.generation_tokens,
            total=True,
        )
        yield f.counter(
            "vllm:request_success",
            "Count of successfully processed requests.",
            lambda s: s.metrics.success,
            total=True,
            more={"finished_reason": "stop"},
        )
        yield f.histogram(
            "vllm:time_to_first_token_seconds",
            "Histogram of time to first token in seconds.",
            lambda s: s.metrics.ttft,
        )
        yield f.histogram(
            "vllm:time_per_output_token_seconds",
            "Histogram of time per output token in seconds.",
            lambda s: s.metrics.tpot,
        )
        yield f.histogram(
            "vllm:e2e_request_latency_seconds",
            "Histogram of end to end request latency in seconds.",
            lambda s: s.metrics.e2e,
        )
        yield f.histogram(
            "vllm:request_prompt_tokens",
            "Number of prefill tokens processed.",
            lambda s: s.metrics.prompt_len,
        )
        yield f.histogram(
            "vllm:request_generation_tokens",
            "Number of generation tokens processed.",
            lambda s: s.metrics.generation_len,
        )


class SglangCollector(Collector):
    """SGLang 0.5.23's names (METRICS.md 2a): the scheduler's gauges and queue time labelled
    ``model_name``, ``engine_type``, ``tp_rank``, ``pp_rank``, ``moe_ep_rank``; the tokenizer's
    counters and latency histograms ``model_name``, ``engine_type`` (plus ``is_streaming`` where
    METRICS.md lists it; its value here, ``false``, is an assumption: no capture is saved)."""

    def __init__(self, source: SampleSource, *, model_name: str, **_: object) -> None:
        self._source = source
        self._model = model_name

    def collect(self) -> Iterable[Metric]:
        rows = self._source()
        tokenizer = {"model_name": self._model, "engine_type": "unified"}
        scheduler = {**tokenizer, "tp_rank": "0", "pp_rank": "0", "moe_ep_rank": "0"}
        s_f, t_f = Families(rows, scheduler), Families(rows, tokenizer)
        streaming = {"is_streaming": "false"}
        yield s_f.gauge(
            "sglang:num_running_reqs", "The number of running requests.", one(lambda s: s.running)
        )
        yield s_f.gauge(
            "sglang:num_queue_reqs",
            "The number of requests in the waiting queue.",
            one(lambda s: s.waiting),
        )
        yield s_f.gauge("sglang:token_usage", "The token usage.", one(lambda s: s.kv_usage))
        yield s_f.histogram(
            "sglang:queue_time_seconds",
            "Histogram of queueing time in seconds.",
            lambda s: s.metrics.queue,
        )
        yield t_f.counter(
            "sglang:prompt_tokens",
            "Number of prefill tokens processed.",
            lambda s: s.prompt_tokens,
            total=True,
            more=streaming,
        )
        yield t_f.counter(
            "sglang:generation_tokens",
            "Number of generation tokens processed.",
            lambda s: s.generation_tokens,
            total=True,
            more=streaming,
        )
        yield t_f.counter(
            "sglang:num_requests",
            "The number of processed requests.",
            lambda s: s.metrics.success,
            total=True,
        )
        yield s_f.counter(
            "sglang:num_retracted_requests",
            "The number of retracted requests.",
            lambda s: 0.0,
            total=True,
        )
        yield t_f.histogram(
            "sglang:time_to_first_token_seconds",
            "Histogram of time to first token in seconds.",
            lambda s: s.metrics.ttft,
            streaming,
        )
        yield t_f.histogram(
            "sglang:inter_token_latency_seconds",
            "Histogram of inter-token latency in seconds.",
            lambda s: s.metrics.itl,
        )
        yield t_f.histogram(
            "sglang:e2e_request_latency_seconds",
            "Histogram of End-to-end request latency in seconds",
            lambda s: s.metrics.e2e,
            streaming,
        )
        yield t_f.histogram(
            "sglang:prompt_tokens_histogram",
            "Histogram of prompt token length.",
            lambda s: s.metrics.prompt_len,
        )


TGI_MAX_BATCH_TOTAL_TOKENS = 473_840
"""``tgi_batch_max_total_tokens``: the token pool TGI's warm-up sizes; here the default perf
profile's KV capacity (llama2-70b on 4 x H100-80GB), so its share is the replica's KV usage."""


class TgiCollector(Collector):
    """TGI's families (METRICS.md 3): no model label, counters without ``_total``, every
    ``*_duration`` histogram on TGI's 35 geometric buckets (:data:`BUCKETS`)."""

    def __init__(self, source: SampleSource, **_: object) -> None:
        self._source = source

    def collect(self) -> Iterable[Metric]:
        f = Families(self._source(), {})
        yield f.gauge("tgi_queue_size", "Current queue size", one(lambda s: s.waiting))
        yield f.gauge("tgi_batch_current_size", "Current batch size", one(lambda s: s.running))
        yield f.gauge(
            "tgi_batch_current_max_tokens",
            "Maximum tokens of the current batch",
            one(lambda s: round(s.kv_usage * TGI_MAX_BATCH_TOTAL_TOKENS)),
        )
        yield f.gauge(
            "tgi_batch_max_total_tokens",
            "Maximum amount of tokens in total",
            one(lambda s: TGI_MAX_BATCH_TOTAL_TOKENS),
        )
        yield f.counter(
            "tgi_request_count",
            "Total number of requests",
            lambda s: s.metrics.success + s.running + s.waiting,
        )
        yield f.counter(
            "tgi_request_success", "Number of successful requests", lambda s: s.metrics.success
        )
        yield f.histogram("tgi_request_duration", "Request duration", lambda s: s.metrics.e2e)
        yield f.histogram(
            "tgi_request_queue_duration", "Request queue duration", lambda s: s.metrics.queue
        )
        yield f.histogram(
            "tgi_request_mean_time_per_token_duration",
            "Mean time per token per request",
            lambda s: s.metrics.tpot,
        )
        yield f.histogram(
            "tgi_request_input_length",
            "Input token length per request",
            lambda s: s.metrics.prompt_len,
        )
        yield f.histogram(
            "tgi_request_generated_tokens",
            "Generated tokens per request",
            lambda s: s.metrics.generation_len,
        )


TRT_LLM_MAX_BLOCKS = 6239
"""``kv_cache_block_type="max"`` of ``triton_trtllm_capture.txt``."""
TRT_LLM_TOKENS_PER_BLOCK = 64
"""``kv_cache_block_type="tokens_per"`` of the same capture."""
TRT_LLM_MAX_REQUESTS = 512
"""``request_type="max"`` of the same capture."""


class TritonTrtllmCollector(Collector):
    """Triton core counters and the TensorRT-LLM backend's gauges, labelled ``model`` and
    ``version`` as in ``triton_trtllm_capture.txt``. Durations are cumulative microseconds:
    the request's whole time, its queueing, and its compute (admission to last token)."""

    def __init__(self, source: SampleSource, *, model_name: str, **_: object) -> None:
        self._source = source
        self._model = model_name

    def collect(self) -> Iterable[Metric]:
        f = Families(self._source(), {"model": self._model, "version": "1"})

        def requests(s: ReplicaSample) -> list[tuple[dict[str, str], float]]:
            return [
                ({"request_type": "waiting"}, s.waiting),
                ({"request_type": "context"}, 0.0),
                ({"request_type": "scheduled"}, s.running),
                ({"request_type": "max"}, TRT_LLM_MAX_REQUESTS),
                ({"request_type": "active"}, s.running),
            ]

        def blocks(s: ReplicaSample) -> list[tuple[dict[str, str], float]]:
            used = round(s.kv_usage * TRT_LLM_MAX_BLOCKS)
            return [
                ({"kv_cache_block_type": "fraction"}, s.kv_usage),
                ({"kv_cache_block_type": "tokens_per"}, TRT_LLM_TOKENS_PER_BLOCK),
                ({"kv_cache_block_type": "used"}, used),
                ({"kv_cache_block_type": "free"}, TRT_LLM_MAX_BLOCKS - used),
                ({"kv_cache_block_type": "max"}, TRT_LLM_MAX_BLOCKS),
            ]

        yield f.gauge("nv_trt_llm_request_metrics", "TRT LLM request metrics", requests)
        yield f.gauge("nv_trt_llm_kv_cache_block_metrics", "TRT LLM KV cache block metrics", blocks)
        success: Callable[[ReplicaSample], float] = lambda s: s.metrics.success  # noqa: E731
        yield f.counter(
            "nv_inference_request_success",
            "Number of successful inference requests, all batch sizes",
            success,
        )
        yield f.counter(
            "nv_inference_request_failure",
            "Number of failed inference requests, all batch sizes",
            lambda s: 0.0,
        )
        yield f.counter(
            "nv_inference_count",
            "Number of inferences performed (does not include cached requests)",
            success,
        )
        yield f.counter(
            "nv_inference_exec_count",
            "Number of model executions performed (does not include cached requests)",
            success,
        )
        yield f.counter(
            "nv_inference_request_duration_us",
            "Cumulative inference request duration in microseconds (includes cached requests)",
            lambda s: s.metrics.e2e.total * 1e6,
        )
        yield f.counter(
            "nv_inference_queue_duration_us",
            "Cumulative inference queuing duration in microseconds (includes cached requests)",
            lambda s: s.metrics.queue.total * 1e6,
        )
        yield f.counter(
            "nv_inference_compute_infer_duration_us",
            "Cumulative compute inference duration in microseconds (does not include cached "
            "requests)",
            lambda s: s.metrics.compute_s * 1e6,
        )
        yield f.gauge(
            "nv_inference_pending_request_count",
            "Instantaneous number of pending requests awaiting execution per-model.",
            one(lambda s: s.waiting),
        )


CollectorFactory = Callable[..., Collector]

ENGINES: dict[str, CollectorFactory] = {
    "sglang": SglangCollector,
    "tgi": TgiCollector,
    "triton_trtllm": TritonTrtllmCollector,
    "vllm": VllmV1Collector,
    "vllm_v0": VllmV0Collector,
}
"""Engines the emulator can imitate, by the name ``--engine`` takes (the engine profiles')."""


def _tgi_buckets(max_context: int) -> Buckets:
    """TGI's: 0.0001 * 1.5**k s (k = 1..35) for every duration; 100 linear token buckets."""
    tokens = tuple(max_context * k / 100 for k in range(1, 101))
    d = tgi.DURATION_BUCKETS
    return Buckets(ttft=d, itl=d, tpot=d, e2e=d, queue=d, prompt_len=tokens, generation_len=tokens)


def _vllm_v0_buckets(max_context: int) -> Buckets:
    """vLLM V0's (METRICS.md 1c): shorter TTFT and e2e ranges than V1's."""
    tokens = one_two_five_buckets(max_context)
    return Buckets(
        ttft=vllm_v0.TTFT_BUCKETS,
        itl=vllm_v0.TPOT_BUCKETS,
        tpot=vllm_v0.TPOT_BUCKETS,
        e2e=vllm_v0.E2E_BUCKETS,
        queue=vllm_v0.E2E_BUCKETS,
        prompt_len=tokens,
        generation_len=tokens,
    )


def _sglang_buckets(max_context: int) -> Buckets:
    """SGLang 0.5.23's (METRICS.md 2a); queue time and token counts have no documented buckets:
    the e2e ones and 1-2-5 up to the context."""
    tokens = one_two_five_buckets(max_context)
    return Buckets(
        ttft=sglang.TTFT_BUCKETS,
        itl=sglang.ITL_BUCKETS,
        tpot=sglang.ITL_BUCKETS,
        e2e=sglang.E2E_BUCKETS,
        queue=sglang.E2E_BUCKETS,
        prompt_len=tokens,
        generation_len=tokens,
    )


BUCKETS: dict[str, Callable[[int], Buckets]] = {
    "sglang": _sglang_buckets,
    "tgi": _tgi_buckets,
    "vllm_v0": _vllm_v0_buckets,
}
"""Histogram buckets by engine, from the model's context length; others use vLLM's."""


def buckets_for(engine: str, max_context: int) -> Buckets:
    """The buckets the emulator's replicas observe into when serving ``engine``."""
    return BUCKETS.get(engine, vllm_buckets)(max_context)


def engine_names() -> list[str]:
    return sorted(ENGINES)

"""The engines' /metrics text, built at scrape time from the emulator's state.

One :class:`prometheus_client.registry.Collector` per engine reads
:class:`~autoscaler.emulation.stepper.ReplicaSample` objects and yields metric families with the
engine's own names, labels and default buckets (``../shared/engines/METRICS.md``). Only vLLM V1
(0.33.0) exists so far; adding an engine is one collector class and one line in
:data:`ENGINES`.

``extra_labels`` adds labels a real engine does not export but Prometheus would attach on a
Kubernetes scrape (``namespace``, ``workload``, ``pod``): the fleet-wide ``/metrics`` of the
emulator uses it so that a single static scrape target looks like a relabelled fleet.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from autoscaler.emulation.stepper import GatewaySample, HistogramState, ReplicaSample

__all__ = ["ENGINES", "EppCollector", "VllmV1Collector", "SampleSource", "engine_names"]

SampleSource = Callable[[], Sequence[tuple[dict[str, str], ReplicaSample]]]
"""Returns, at scrape time, each replica's sample with the extra labels to attach to it."""


_go_float: Callable[[float], str] = floatToGoString  # untyped in prometheus_client


def _buckets(h: HistogramState) -> list[tuple[str, float]]:
    cum = h.counts.cumsum().tolist()
    les = [_go_float(b) for b in h.bounds.tolist()] + ["+Inf"]
    return [(le, float(c)) for le, c in zip(les, cum, strict=True)]


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
                fam.add_metric(values(labels), _buckets(h), h.total)
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


CollectorFactory = Callable[..., Collector]

ENGINES: dict[str, CollectorFactory] = {
    "vllm": VllmV1Collector,
}
"""Engines the emulator can imitate, by the name ``--engine`` takes."""


def engine_names() -> list[str]:
    return sorted(ENGINES)


class EppCollector(Collector):
    """The endpoint picker's metric families (:mod:`autoscaler.engines.gateway` says where the
    names and labels were checked): the request counter and token histograms per model, the
    pool gauges per pool, and with flow control the flow-control queue gauge.

    ``labels`` are added to every series as a scrape relabeling would (``namespace``, and the
    pool's name on ``inference_pool``: the EPP's own flow-control series already carry that
    label, the others get it only from the scrape config, deploy/examples/epp-podmonitor.yaml).
    """

    def __init__(
        self,
        gateway: Callable[[], GatewaySample],
        replicas: Callable[[], Sequence[ReplicaSample]],
        *,
        model_name: str,
        pool: str,
        flow_control: bool,
        labels: dict[str, str] | None = None,
    ) -> None:
        self._gateway = gateway
        self._replicas = replicas
        self._model = model_name
        self._pool = pool
        self._flow_control = flow_control
        self._labels = dict(labels or {})
        self._labels["inference_pool"] = pool

    def collect(self) -> Iterable[Metric]:
        g = self._gateway()
        reps = self._replicas()
        extra = sorted(self._labels)
        extra_values = [self._labels[k] for k in extra]
        model = ["model_name", "target_model_name", *extra]
        model_values = [self._model, self._model, *extra_values]

        requests = CounterMetricFamily(
            "inference_objective_request_total",
            "Requests the endpoint picker let through, per model and target model.",
            labels=model,
        )
        requests.add_metric(model_values, float(g.dispatched))
        yield requests
        for name, doc, h in (
            ("inference_objective_input_tokens", "Input tokens per request.", g.input_tokens),
            ("inference_objective_output_tokens", "Output tokens per request.", g.output_tokens),
        ):
            fam = HistogramMetricFamily(name, doc, labels=model)
            fam.add_metric(model_values, _buckets(h), h.total)
            yield fam
        pool_labels, pool_values = ["name", *extra], [self._pool, *extra_values]
        for name, doc, value in (
            ("inference_pool_ready_pods", "Ready pods in the pool.", float(len(reps))),
            (
                "inference_pool_average_queue_size",
                "Mean waiting requests per pod of the pool.",
                sum(r.waiting for r in reps) / len(reps) if reps else 0.0,
            ),
            (
                "inference_pool_average_kv_cache_utilization",
                "Mean KV-cache utilization of the pool.",
                sum(r.kv_usage for r in reps) / len(reps) if reps else 0.0,
            ),
        ):
            gauge = GaugeMetricFamily(name, doc, labels=pool_labels)
            gauge.add_metric(pool_values, value)
            yield gauge
        if self._flow_control:
            fc = ["fairness_id", "priority", *model]
            queue = GaugeMetricFamily(
                "inference_extension_flow_control_queue_size",
                "Requests held in the flow-control layer.",
                labels=fc,
            )
            queue.add_metric(["default", "0", *model_values], float(g.held))
            yield queue

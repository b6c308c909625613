"""The exporters beside the engines: dcgm-exporter's GPU memory and the gateway's endpoint picker.

They are scraped next to the engines (``/dcgm/metrics``, ``/epp/metrics``) and read the same
emulator state (:mod:`autoscaler.emulation.families`), but are not engines: the engine registry
(:data:`autoscaler.emulation.exposition.ENGINES`) does not list them.
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

from autoscaler.emulation.families import SampleSource, histogram_buckets
from autoscaler.emulation.stepper import GatewaySample, ReplicaSample

__all__ = ["FB_RESERVED_MIB", "FB_TOTAL_MIB", "FRAMEBUFFER_SHARE", "DcgmCollector", "EppCollector"]


FB_TOTAL_MIB = 81_559
"""Framebuffer of one H100 80GB HBM3 (the default perf profile's GPU) as DCGM reports it."""
FB_RESERVED_MIB = 530
"""``DCGM_FI_DEV_FB_RESERVED``: driver-reserved memory, outside used + free."""

FRAMEBUFFER_SHARE: dict[str, float] = {
    "sglang": 0.88,
    "tgi": 0.97,
    "triton_trtllm": 0.94,
    "vllm": 0.9,
    "vllm_v0": 0.9,
}
"""GPU memory each emulated engine holds, as a share of used + free. Flat, as in the real
engines, which all size a KV pool at start: vLLM takes ``gpu_memory_utilization`` (0.9) of the
GPU, SGLang ``mem_fraction_static`` (about 0.88 for a 70B model in TP4); TGI's warm-up grows its
token pool until the GPU is full (``cuda_memory_fraction`` 1.0, less what its allocator keeps
free); TensorRT-LLM takes ``kv_cache_free_gpu_mem_fraction`` (0.9) of what its weights (40% of an
H100 for a 70B model in TP4) leave."""


class DcgmCollector(Collector):
    """dcgm-exporter's framebuffer gauges (MiB) for each replica's ``gpus`` GPUs.

    Labels follow its render template (``gpu``, ``UUID``, ``pci_bus_id``, ``device``,
    ``modelName``, ``Hostname``, the driver version) and its Kubernetes pod mapping
    (``container``, ``namespace``, ``pod``); it knows no ``workload``, so the rows only join to
    a workload through the engines' pod labels, as in a cluster. Eight GPUs per node.
    """

    def __init__(self, source: SampleSource, *, engine: str, gpus: int) -> None:
        self._source = source
        self._share = FRAMEBUFFER_SHARE[engine]
        self._gpus = gpus

    def collect(self) -> Iterable[Metric]:
        rows = self._source()
        names = ("DCGM_FI_DEV_FB_FREE", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_RESERVED")
        docs = ("Framebuffer memory free (in MiB).", "Framebuffer memory used (in MiB).",
                "Framebuffer memory reserved (in MiB).")  # fmt: skip
        usable = FB_TOTAL_MIB - FB_RESERVED_MIB
        used = round(self._share * usable)
        values = (usable - used, used, FB_RESERVED_MIB)
        for name, doc, value in zip(names, docs, values, strict=True):
            fam = Metric(name, doc, "gauge")
            for labels, s in rows:
                for j in range(self._gpus):
                    index = s.index * self._gpus + j
                    gpu = index % 8
                    fam.add_sample(
                        name,
                        {
                            "gpu": str(gpu),
                            "UUID": f"GPU-{index:08x}-0000-4000-8000-{index:012x}",
                            "pci_bus_id": f"00000000:{0x18 + 0x10 * gpu:02X}:00.0",
                            "device": f"nvidia{gpu}",
                            "modelName": "NVIDIA H100 80GB HBM3",
                            "Hostname": f"gpu-node-{index // 8}",
                            "DCGM_FI_DRIVER_VERSION": "570.133.20",
                            "container": "engine",
                            "namespace": labels.get("namespace", ""),
                            "pod": labels.get("pod", ""),
                        },
                        float(value),
                    )
            yield fam


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
            fam.add_metric(model_values, histogram_buckets(h), h.total)
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

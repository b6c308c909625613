"""NVIDIA dcgm-exporter: GPU framebuffer memory. METRICS.md 5; ``dcgm_default_counters.csv``.

Not an inference engine (the config accepts no workload on it): it supplies the GPU memory of
every engine's replicas (``registry.GPU_MEMORY``), joined to them by pod
(:func:`autoscaler.engines.promql.gpu_memory_queries`), for the snapshot, ``/v1``, ``/metrics``, the
report and the memory-pressure guard. ``DCGM_FI_DEV_FB_TOTAL`` is not a default counter, so usage
is ``used / (used + free)``. With Kubernetes pod mapping it adds ``namespace``, ``pod`` and
``container``, no ``workload``: the join takes that from the engine's own series. Its model label
(``modelName``) names the GPU, not a served model, so the profile declares none.
"""

from __future__ import annotations

from autoscaler.engines.base import ENGINE, ENGINE_SIGNALS, EngineProfile, Fallback, Series

PROFILE = EngineProfile(
    name="dcgm",
    description="NVIDIA dcgm-exporter (GPU framebuffer used/free)",
    reference="METRICS.md 5",
    model_labels=(),
    missing=ENGINE_SIGNALS,
    gpu_memory_used=(Series("DCGM_FI_DEV_FB_USED"),),
    gpu_memory_free=(Series("DCGM_FI_DEV_FB_FREE"),),
    fallbacks=tuple(
        Fallback(s, (ENGINE,), "Read from the workload's engine profile; DCGM only sees GPUs.")
        for s in sorted(ENGINE_SIGNALS)
    ),
)

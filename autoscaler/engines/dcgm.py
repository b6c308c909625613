"""NVIDIA dcgm-exporter: GPU framebuffer memory. METRICS.md 5; ``dcgm_default_counters.csv``.

Not an inference engine: it supplies GPU memory (MiB) for the KV fallback of engines that do not
preallocate and for the node inventory. ``DCGM_FI_DEV_FB_TOTAL`` is not a default counter, so
usage is ``used / (used + free)``. With Kubernetes pod mapping it adds ``namespace`` and ``pod``;
``workload`` needs the same relabel rule as the engines. Its model label (``modelName``) names the
GPU, not a served model, so the profile declares none.
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

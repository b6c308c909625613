"""``workloads[].prefetch``: pulling the modelcar image onto nodes before replicas land there."""

from __future__ import annotations

import math

from pydantic import Field, field_validator

from autoscaler.config.fields import DNS1123_SUBDOMAIN, IMAGE_REF, LABEL_NAME, Strict


class PrefetchConfig(Strict):
    """Pulling the modelcar image onto nodes before replicas land there (DESIGN.md, "Prefetch")."""

    enabled: bool = False
    max_concurrent_per_pool: int = Field(default=2, ge=1)
    """Most prefetch pulls running at once in one node pool (they share its network and disks)."""
    max_warm_nodes: int = Field(default=4, ge=0)
    """Most warm spare nodes: holding or pulling the image while running none of its pods."""
    fleet_fraction: float = Field(default=0.1, ge=0.0, le=1.0)
    """Both caps above grow to this fraction of the nodes running the workload (0: fixed caps)."""
    spare_replicas: int = Field(default=1, ge=0)
    """Warm room kept beyond the forecast's need, in replicas (docs/prefetch.md)."""
    gc_high_threshold_percent: float = Field(default=85.0, gt=0, le=100)
    """The nodes' kubelet ``imageGCHighThresholdPercent``: a pull must leave disk use below it."""
    on_disk_factor: float = Field(default=2.0, ge=1.0, le=4.0)
    """Disk per byte of image: 2 with containerd's default, 1 with discard_unpacked_layers."""
    node_pool_label: str | None = None
    """Node label naming a node's pool (default: the GKE/EKS/Karpenter/AKS pool labels)."""
    image_has_shell: bool = True
    """False for a modelcar without ``sh``: the Job then copies in a static busybox to exit."""
    helper_image: str = "busybox:1.36.1-musl"
    """The static busybox image used when ``image_has_shell`` is false."""
    pull_deadline_s: int = Field(default=3600, ge=60)
    """``activeDeadlineSeconds`` of a prefetch Job: how long a pull may take."""

    @field_validator("helper_image")
    @classmethod
    def _helper(cls, value: str) -> str:
        if not IMAGE_REF.fullmatch(value):
            raise ValueError(f"{value!r} is not an OCI image reference")
        return value

    @field_validator("node_pool_label")
    @classmethod
    def _pool_label(cls, value: str | None) -> str | None:
        if value is None:
            return value
        prefix, _, name = value.rpartition("/")
        if (
            (prefix and not DNS1123_SUBDOMAIN.fullmatch(prefix))
            or len(name) > 63
            or not LABEL_NAME.fullmatch(name)
        ):
            raise ValueError(f"{value!r} is not a valid label key")
        return value

    @field_validator("gc_high_threshold_percent", "on_disk_factor")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

"""``workloads[].gateway``: the inference gateway's endpoint picker that fronts a workload."""

from __future__ import annotations

import re

from pydantic import Field, field_validator, model_validator

from autoscaler.config.fields import DNS1123_SUBDOMAIN, Strict, located


class GatewayConfig(Strict):
    """The inference gateway's endpoint picker (EPP) that fronts the workload
    (docs/gateway.md). Its series carry no ``workload`` label: they are joined to the workload
    by the workload's namespace plus ``pool`` (the InferencePool's name, matched on
    ``pool_label``) and/or ``selector`` (equality matchers on the EPP's series, e.g.
    ``job: llama-epp`` or ``model_name: llama-3-8b``)."""

    pool: str | None = None
    """The InferencePool's name, matched on the ``pool_label`` label of the EPP's series."""
    pool_label: str = "inference_pool"
    """The label naming the pool on *every* EPP series: a scrape relabeling must add it (the
    PodMonitor in deploy/examples/epp-podmonitor.yaml does), since the request counter and
    token histograms carry only model labels."""
    selector: dict[str, str] = Field(default_factory=dict)
    """Further equality matchers; all must hold for a series to count for the workload."""

    @field_validator("pool")
    @classmethod
    def _pool(cls, value: str | None) -> str | None:
        if value is not None and (len(value) > 253 or not DNS1123_SUBDOMAIN.fullmatch(value)):
            raise ValueError(f"{value!r} is not an InferencePool name (DNS-1123 subdomain)")
        return value

    @field_validator("pool_label")
    @classmethod
    def _pool_label(cls, value: str) -> str:
        if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", value):
            raise ValueError(f"{value!r} is not a Prometheus label name")
        return value

    @field_validator("selector")
    @classmethod
    def _selector(cls, value: dict[str, str]) -> dict[str, str]:
        for key, label in value.items():
            if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", key):
                raise ValueError(f"{key!r} is not a Prometheus label name")
            if not label:
                raise ValueError(f"label {key!r} needs a value")
        return value

    @model_validator(mode="after")
    def _joined(self) -> GatewayConfig:
        if self.pool is None and not self.selector:
            raise located("pool", "give the InferencePool's name (pool) or a selector")
        if self.pool is not None and self.pool_label in self.selector:
            raise located(
                f"selector.{self.pool_label}",
                f"the pool is already matched on {self.pool_label}; give it once",
            )
        return self

    def matchers(self) -> dict[str, str]:
        """Every equality matcher of the join, the namespace aside."""
        out = dict(self.selector)
        if self.pool is not None:
            out[self.pool_label] = self.pool
        return out

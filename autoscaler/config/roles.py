"""Roles of a disaggregated workload: a prefill pool and a decode pool, each its own scale target.

A workload that declares ``roles:`` (docs/disaggregation.md, "Live") is *two* scaled units.
Each role names its own scale target (a Deployment, StatefulSet or LeaderWorkerSet), its own
pod selector and bounds; the engine, profile, SLO, image and prefetch settings are the
workload's and are shared. :func:`expand_roles` turns such a workload into one
:class:`~autoscaler.config.schema.WorkloadConfig` per role, each carrying ``role`` and
``group`` (the declaring workload's name): every part of the service that iterates the
configured workloads (the pod watch, the collection, the loop, the store, the servers) then
handles a role exactly as a workload of its own, so one role's missing data holds that role only
and can never scale the other down (fail static per role).

The role's engines' series are joined by the ``workload`` label, whose value is the role's
target name (the scrape's relabeling supplies it, as for every workload; for llm-d the pods'
``llm-d.ai/role`` label tells the roles apart, see docs/disaggregation.md). Why not one
``workload`` label and a ``role`` label on every series: the batched queries group by
``(namespace, workload)`` for every engine, and an extra grouping label would change every
aggregated workload's queries; a role is a scale target, so naming its series by its target is
what the aggregated path already does.
"""

from __future__ import annotations

import re
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

ROLE_NAMES: Final[tuple[str, ...]] = ("prefill", "decode")
"""The roles a disaggregated workload has, both required."""

RoleName = Literal["prefill", "decode"]
TargetKind = Literal["Deployment", "StatefulSet", "LeaderWorkerSet"]

_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def _located(field: str, message: str) -> PydanticCustomError:
    """A validation error attributed to ``field`` (as :mod:`autoscaler.config.schema` does)."""
    return PydanticCustomError("config", "{problem}", {"problem": message, "field": field})


class RoleConfig(BaseModel):
    """One role's scale target: what the HPA (or KEDA) of this role scales."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    name: str
    """The target object's name; also the ``workload`` label of the role's engine series."""
    kind: TargetKind = "Deployment"
    """``apps/v1`` Deployment/StatefulSet, or ``leaderworkerset.x-k8s.io/v1`` LeaderWorkerSet
    (one replica = one group of ``spec.leaderWorkerTemplate.size`` pods)."""
    selector: dict[str, str] = Field(min_length=1)
    """The role's pods (checked as the workload's own ``selector`` is)."""
    min_replicas: int = Field(default=1, ge=0)
    max_replicas: int = Field(default=10, ge=1)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if len(value) > 253 or not _DNS1123_SUBDOMAIN.fullmatch(value):
            raise ValueError(f"{value!r} is not a Kubernetes object name (DNS-1123 subdomain)")
        return value

    @model_validator(mode="after")
    def _bounds(self) -> RoleConfig:
        if self.min_replicas > self.max_replicas:
            raise _located(
                "min_replicas",
                f"min_replicas ({self.min_replicas}) is greater than "
                f"max_replicas ({self.max_replicas})",
            )
        return self


class RolesConfig(BaseModel):
    """``roles:`` of a workload: both pools, each with its own target."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    prefill: RoleConfig
    decode: RoleConfig

    @model_validator(mode="after")
    def _distinct(self) -> RolesConfig:
        if self.prefill.name == self.decode.name:
            raise _located(
                "decode.name",
                f"prefill and decode both name {self.decode.name!r}: each role needs its own "
                "scale target (and its own workload label on its series)",
            )
        if dict(self.prefill.selector) == dict(self.decode.selector):
            raise _located(
                "decode.selector",
                "prefill and decode have the same pod selector: each role's pods must be "
                "told apart (e.g. llm-d's llm-d.ai/role label)",
            )
        return self

    def items(self) -> tuple[tuple[RoleName, RoleConfig], ...]:
        """``(role, config)`` for prefill, then decode."""
        return (("prefill", self.prefill), ("decode", self.decode))

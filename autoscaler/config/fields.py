"""What every part of the config schema validates with: Kubernetes name and label patterns, OCI
image references, PromQL durations, and the strict base model (unknown fields are errors).

Shared by :mod:`~autoscaler.config.schema` and the sub-models that live in their own modules
(:mod:`~autoscaler.config.prefetch`, :mod:`~autoscaler.config.gateway`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from pydantic import BaseModel, ConfigDict
from pydantic_core import PydanticCustomError

# Kubernetes names: a namespace is a DNS-1123 label, a workload (Deployment) a DNS-1123 subdomain.
DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
# Label keys: optional DNS-subdomain prefix and a 1-63 character name; values may be empty.
LABEL_NAME = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)")
LABEL_VALUE = re.compile(r"(([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?)")
# PromQL range durations as used in rate(...[1m]): one or more <number><unit> parts.
_PROM_DURATION = re.compile(r"(?:(\d+)(ms|s|m|h|d|w|y))+")
_PROM_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_PROM_UNIT_S: Final[dict[str, float]] = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
    "y": 31536000.0,
}

# OCI image reference, after github.com/distribution/reference (regexp.go).
_REF_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_REF_DOMAIN = (
    rf"(?:{_REF_DOMAIN_COMPONENT}(?:\.{_REF_DOMAIN_COMPONENT})*|\[[0-9A-Fa-f:]+\])(?::[0-9]+)?"
)
_REF_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_REF_TAG = r"[\w][\w.-]{0,127}"
_REF_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
IMAGE_REF = re.compile(
    rf"(?:(?P<domain>{_REF_DOMAIN})/)?"
    rf"(?P<path>{_REF_PATH_COMPONENT}(?:/{_REF_PATH_COMPONENT})*)"
    rf"(?::(?P<tag>{_REF_TAG}))?"
    rf"(?:@(?P<digest>{_REF_DIGEST}))?"
)


def located(field: str, message: str) -> PydanticCustomError:
    """A validation error attributed to ``field`` (a path relative to the failing model)."""
    return PydanticCustomError("config", "{problem}", {"problem": message, "field": field})


def prom_duration_seconds(text: str) -> float:
    """Seconds in a PromQL duration such as ``1m`` or ``1h30m``; ``ValueError`` if malformed."""
    if not _PROM_DURATION.fullmatch(text):
        raise ValueError(f"{text!r} is not a PromQL duration such as 30s, 1m or 1h30m")
    return sum(int(n) * _PROM_UNIT_S[u] for n, u in _PROM_DURATION_PART.findall(text))


def one_of(kind: str, value: str, known: Sequence[str]) -> str:
    if value not in known:
        raise ValueError(f"unknown {kind} {value!r}; known: {', '.join(known)}")
    return value


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

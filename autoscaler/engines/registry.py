"""The one table of engine profiles, in alphabetical order. A new engine is one line here.

``vllm`` (the V1 engine) is the default.
"""

from __future__ import annotations

from types import MappingProxyType

from autoscaler.engines import dcgm, sglang, tgi, triton_trtllm, vllm, vllm_v0
from autoscaler.engines.base import EngineProfile
from autoscaler.errors import UnknownNameError

DEFAULT_ENGINE = "vllm"

GPU_MEMORY = dcgm.PROFILE
"""Where every engine's replicas get their GPU memory from: dcgm-exporter, joined by pod."""

_PROFILES: tuple[EngineProfile, ...] = (
    dcgm.PROFILE,
    sglang.PROFILE,
    tgi.PROFILE,
    triton_trtllm.PROFILE,
    vllm.PROFILE,
    vllm_v0.PROFILE,
)

ENGINES = MappingProxyType({p.name: p for p in _PROFILES})
"""Profiles by name, alphabetical (the test checks the order and that names are unique)."""


def engine_names() -> tuple[str, ...]:
    """Every known engine name, alphabetical."""
    return tuple(ENGINES)


def get_engine(name: str = DEFAULT_ENGINE) -> EngineProfile:
    """The profile named ``name``; raises :class:`UnknownNameError` listing the known names."""
    try:
        return ENGINES[name]
    except KeyError:
        raise UnknownNameError("engine", name, engine_names()) from None

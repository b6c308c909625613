"""The service configuration of ``serve``: one YAML file (docs/configuration.md).

``schema`` holds the pydantic models (``service:`` → :class:`GlobalConfig`, ``workloads:`` →
:class:`WorkloadConfig`; ``prefetch``, ``gateway`` and ``roles`` a workload's sub-models,
``fields`` the patterns and strict base they share), each forbidding unknown fields so a typo
is an error, not a silent default; ``loading`` reads a file and turns every failure into one
:class:`~autoscaler.errors.InputError` naming the file and the field path. The names below are
the package's interface, so callers import ``autoscaler.config`` and not its modules.

May import: the core, the engine registry (which engines a workload may name),
``autoscaler.core.replica_states`` (the pending timeout's default) and ``autoscaler.errors``.
"""

from autoscaler.config.fields import prom_duration_seconds
from autoscaler.config.gateway import GatewayConfig
from autoscaler.config.loading import describe, format_validation_error, load_config, parse_config
from autoscaler.config.prefetch import PrefetchConfig
from autoscaler.config.schema import (
    KNOWN_ENGINES,
    KNOWN_GPUS,
    KNOWN_MODELS,
    KNOWN_TP,
    GlobalConfig,
    PortsConfig,
    ProfileConfig,
    ServiceConfig,
    SloConfig,
    WorkloadConfig,
)

__all__ = [
    "KNOWN_ENGINES",
    "KNOWN_GPUS",
    "KNOWN_MODELS",
    "KNOWN_TP",
    "GatewayConfig",
    "GlobalConfig",
    "PortsConfig",
    "PrefetchConfig",
    "ProfileConfig",
    "ServiceConfig",
    "SloConfig",
    "WorkloadConfig",
    "describe",
    "format_validation_error",
    "load_config",
    "parse_config",
    "prom_duration_seconds",
]

"""Which workload and metric a KEDA trigger asks about, from ``ScaledObjectRef.scalerMetadata``.

KEDA passes the trigger's whole ``metadata`` map (``scalerAddress`` included, ``*FromEnv`` keys
already resolved), so keys we do not know are ignored rather than rejected. The workload is named
one of two ways, never both:

* ``workload: <namespace>/<name>`` (or ``workload: <name>``), or
* ``name: <name>`` with an optional ``namespace: <namespace>``.

A missing namespace defaults to the ScaledObject's own namespace, the common case of a
ScaledObject living next to its Deployment. ``metric`` picks the published metric (default
``llm_desired_replicas``). Only malformed input is judged here (-> ``INVALID_ARGUMENT``); whether
the workload exists is the store's business (-> ``NOT_FOUND``).

A workload with roles (prefill and decode pools, docs/disaggregation.md) is two scale targets,
each with its own ScaledObject: ``role: prefill`` or ``role: decode`` next to the workload's name
picks one (the servicer resolves it to the role's target).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Final

from autoscaler.errors import quoted
from external_metrics.keda.errors import BadMetadata

WORKLOAD_KEY: Final = "workload"
NAMESPACE_KEY: Final = "namespace"
NAME_KEY: Final = "name"
METRIC_KEY: Final = "metric"
ROLE_KEY: Final = "role"
ROLES: Final = ("prefill", "decode")

# A namespace is a DNS-1123 label, a workload (Deployment) name a DNS-1123 subdomain; the config
# validates the same way, so a name that fails here could never be found anyway.
_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


@dataclass(frozen=True, slots=True)
class ScalerTarget:
    """One trigger's question: which workload (``namespace/name``, the store key), which metric."""

    namespace: str
    name: str
    metric: str
    role: str | None = None
    """``prefill`` or ``decode`` for a workload with roles; ``name`` is then the workload's."""

    @property
    def workload(self) -> str:
        return f"{self.namespace}/{self.name}"


def parse_scaler_metadata(
    scaled_object_namespace: str,
    metadata: Mapping[str, str],
    *,
    metrics: Collection[str],
    default_metric: str,
) -> ScalerTarget:
    """The target a trigger names; :class:`BadMetadata` says which key is wrong and why.

    ``metrics`` are the names a trigger may ask for (those we publish in replica units).
    """
    namespace, name = _workload(scaled_object_namespace, metadata)
    metric = metadata.get(METRIC_KEY, "").strip() or default_metric
    if metric not in metrics:
        raise BadMetadata(
            f"scalerMetadata.{METRIC_KEY}: {quoted(metric)} is not a metric llm-autoscaler "
            "publishes; "
            f"use one of {', '.join(sorted(metrics))}",
            key=METRIC_KEY,
        )
    role = metadata.get(ROLE_KEY, "").strip() or None
    if role is not None and role not in ROLES:
        raise BadMetadata(
            f"scalerMetadata.{ROLE_KEY}: {quoted(role)} is not a role; use one of "
            f"{', '.join(ROLES)}",
            key=ROLE_KEY,
        )
    return ScalerTarget(namespace=namespace, name=name, metric=metric, role=role)


def _workload(default_namespace: str, metadata: Mapping[str, str]) -> tuple[str, str]:
    if WORKLOAD_KEY in metadata:
        clash = [k for k in (NAME_KEY, NAMESPACE_KEY) if k in metadata]
        if clash:
            raise BadMetadata(
                f"scalerMetadata names the workload twice ({WORKLOAD_KEY!r} and "
                f"{' and '.join(repr(k) for k in clash)}); give either "
                f"'{WORKLOAD_KEY}: <namespace>/<name>' or '{NAME_KEY}' (+ '{NAMESPACE_KEY}')",
                key=WORKLOAD_KEY,
            )
        value = metadata[WORKLOAD_KEY].strip()
        if value.count("/") > 1:
            raise BadMetadata(
                f"scalerMetadata.{WORKLOAD_KEY}: {quoted(value)} is not '<namespace>/<name>' "
                "or '<name>'",
                key=WORKLOAD_KEY,
            )
        namespace, _, name = value.rpartition("/")
        namespace_key = name_key = WORKLOAD_KEY
    elif NAME_KEY in metadata:
        namespace = metadata.get(NAMESPACE_KEY, "").strip()
        name = metadata[NAME_KEY].strip()
        namespace_key, name_key = NAMESPACE_KEY, NAME_KEY
    else:
        raise BadMetadata(
            "scalerMetadata does not name the workload: add "
            f"'{WORKLOAD_KEY}: <namespace>/<name>' (or '{NAME_KEY}: <name>', "
            f"optionally '{NAMESPACE_KEY}: <namespace>') to the trigger's metadata",
            key=WORKLOAD_KEY,
        )
    namespace = namespace or default_namespace
    if not namespace:
        raise BadMetadata(
            f"scalerMetadata.{namespace_key}: no namespace given and the ScaledObject's "
            "namespace is empty",
            key=namespace_key,
        )
    if len(namespace) > 63 or not _DNS1123_LABEL.fullmatch(namespace):
        raise BadMetadata(
            f"scalerMetadata.{namespace_key}: {quoted(namespace)} is not a Kubernetes namespace "
            "name (DNS-1123 label)",
            key=namespace_key,
        )
    if len(name) > 253 or not _DNS1123_SUBDOMAIN.fullmatch(name):
        raise BadMetadata(
            f"scalerMetadata.{name_key}: {quoted(name)} is not a Kubernetes object name "
            "(DNS-1123 subdomain)",
            key=name_key,
        )
    return namespace, name

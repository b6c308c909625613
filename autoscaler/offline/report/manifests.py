"""Ready-to-apply YAML for the recommended settings: an HPA, or a KEDA ScaledObject.

Both are built the way ``deploy/`` builds its own, so what a report hands out is what the tests
validate there and what the simulator ran:

* the HPA is :func:`autoscaler.hpa.render.render_hpa` of an :class:`~autoscaler.hpa.spec.HpaSpec`
  reading the External metric ``llm_desired_replicas`` with ``AverageValue`` 1, selected by
  ``workload: <name>`` (the service publishes one series per workload and the HPA sums every
  series it matches), with :data:`~autoscaler.hpa.behavior.SHIPPED_BEHAVIOR`;
* the ScaledObject follows ``deploy/kustomize/overlays/keda/scaledobject.yaml``: an ``external``
  trigger to the service's gRPC scaler (``llm-autoscaler.llm-autoscaler.svc:9443``) with
  ``workload: <namespace>/<name>``, TLS through the TriggerAuthentication
  ``llm-autoscaler-tls`` (included, one per namespace), fail-static fallback
  (``currentReplicas``), and the same HPA behaviour.

Both are valid on every Kubernetes minor :mod:`autoscaler.kubernetes_support` lists (1.29 to
1.37), so the per-HPA ``tolerance`` (0 in ``SHIPPED_BEHAVIOR``, the field needs 1.33+) is left out
unless ``tolerance=True``; the header says how to add it where the cluster has the field.

YAML is written by :func:`autoscaler.hpa.render.to_yaml` (the block-style writer the committed
example comes from); the header comments say what each document needs from the cluster.
"""

from __future__ import annotations

import textwrap
from typing import Any

from autoscaler.core.wire_names import DESIRED_METRIC
from autoscaler.hpa.behavior import SHIPPED_BEHAVIOR, behavior_to_dict
from autoscaler.hpa.render import render_hpa, to_yaml
from autoscaler.hpa.spec import ExternalMetricTarget, HpaSpec
from autoscaler.kubernetes_support import HPA_TOLERANCE, NEWEST_MINOR, OLDEST_MINOR, version
from autoscaler.offline.report.recommend import Settings

SCALER_ADDRESS = "llm-autoscaler.llm-autoscaler.svc:9443"
"""The service's gRPC port in the namespace ``deploy/`` installs into."""
TLS_AUTH = "llm-autoscaler-tls"
CA_SECRET = "llm-autoscaler-ca"
POLLING_INTERVAL_S = 15
"""The service's tick."""
COOLDOWN_S = 300
"""Only used to scale to zero: how long every signal must be quiet first."""


def hpa(settings: Settings, *, tolerance: bool = False) -> dict[str, Any]:
    """The ``autoscaling/v2`` HorizontalPodAutoscaler for ``settings`` (JSON-ready); with
    ``tolerance``, the per-HPA tolerance of ``SHIPPED_BEHAVIOR`` too (Kubernetes 1.33+)."""
    spec = HpaSpec(
        metrics=(
            ExternalMetricTarget(
                DESIRED_METRIC, "AverageValue", 1.0, selector=(("workload", settings.name),)
            ),
        ),
        behavior=SHIPPED_BEHAVIOR,
        min_replicas=max(1, settings.min_replicas),
        max_replicas=settings.max_replicas,
    )
    return render_hpa(settings.name, settings.namespace, settings.name, spec, tolerance=tolerance)


def scaled_object(
    settings: Settings, *, scaler_address: str = SCALER_ADDRESS, tolerance: bool = False
) -> dict[str, Any]:
    """The KEDA ``ScaledObject`` for ``settings`` (JSON-ready); ``tolerance`` as in :func:`hpa`
    (and KEDA 2.18+, whose CRD has the field)."""
    behavior = behavior_to_dict(SHIPPED_BEHAVIOR, tolerance=tolerance)
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": settings.name, "namespace": settings.namespace},
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": settings.name,
            },
            "pollingInterval": POLLING_INTERVAL_S,
            "cooldownPeriod": COOLDOWN_S,
            "minReplicaCount": settings.keda_min_replicas,
            "maxReplicaCount": settings.max_replicas,
            "fallback": {
                "failureThreshold": 3,
                "replicas": max(1, settings.min_replicas),
                "behavior": "currentReplicas",
            },
            "advanced": {"horizontalPodAutoscalerConfig": {"behavior": behavior}},
            "triggers": [
                {
                    "type": "external",
                    "name": "llm-desired",
                    "metadata": {
                        "scalerAddress": scaler_address,
                        "workload": f"{settings.namespace}/{settings.name}",
                    },
                    "authenticationRef": {"name": TLS_AUTH},
                }
            ],
        },
    }


def trigger_authentication(namespace: str) -> dict[str, Any]:
    """The TriggerAuthentication giving KEDA the CA of the scaler's serving certificate."""
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "TriggerAuthentication",
        "metadata": {"name": TLS_AUTH, "namespace": namespace},
        "spec": {"secretTargetRef": [{"parameter": "caCert", "name": CA_SECRET, "key": "ca.crt"}]},
    }


def _comment(lines: list[str]) -> str:
    return "".join(f"# {line}\n" if line else "#\n" for line in lines)


def _versions_note(path: str, *, tolerance: bool, keda: bool = False) -> str:
    """What the document needs from Kubernetes, and how to add the per-HPA tolerance."""
    floor, newest = version(OLDEST_MINOR), version(NEWEST_MINOR)
    where = (
        f"{HPA_TOLERANCE.floor}+, or {version(HPA_TOLERANCE.accepted_from)}+ with "
        f"{HPA_TOLERANCE.gate}" + ("; and KEDA 2.18+" if keda else "")
    )
    if tolerance:
        return (
            f"Kubernetes: {path}.scaleUp/scaleDown.tolerance need {where}; older API servers "
            "reject the field."
        )
    return (
        f"Kubernetes: valid on {floor} to {newest}. The simulated behaviour also sets "
        f'{path}.scaleUp.tolerance and .scaleDown.tolerance to "0" (no dead band around the '
        f"target): add both where the cluster has the field ({where}); without them the "
        "cluster-wide tolerance (10 % by default) applies."
    )


def hpa_yaml(settings: Settings, *, tolerance: bool = False) -> str:
    """The HPA as YAML, with a header saying where its numbers come from."""
    header = [
        f"HPA for {settings.namespace}/{settings.name}, from `llm-autoscaler report`.",
        f"It reads {DESIRED_METRIC} from llm-autoscaler's External Metrics API "
        "(external.metrics.k8s.io/v1beta1, the hpa overlay of deploy/) with AverageValue 1: "
        "the published value is the replica count. Behaviour: SHIPPED_BEHAVIOR, as simulated.",
        _versions_note("spec.behavior", tolerance=tolerance),
        f"minReplicas {max(1, settings.min_replicas)}: {settings.min_reason}.",
        f"maxReplicas {settings.max_replicas}: {settings.max_reason}.",
    ]
    return _comment(_wrap(header)) + to_yaml(hpa(settings, tolerance=tolerance))


def keda_yaml(
    settings: Settings, *, scaler_address: str = SCALER_ADDRESS, tolerance: bool = False
) -> str:
    """The ScaledObject and its TriggerAuthentication as one YAML stream."""
    header = [
        f"KEDA ScaledObject for {settings.namespace}/{settings.name}, "
        "from `llm-autoscaler report`.",
        f"The external trigger asks llm-autoscaler's gRPC scaler ({scaler_address}) for "
        f"{DESIRED_METRIC}; the HPA KEDA creates runs that many replicas (target 1 per replica).",
        f"TLS: the Secret {CA_SECRET} (key ca.crt) must exist in {settings.namespace} "
        '(docs/keda.md, "TLS"). Fail static: while the scaler answers UNAVAILABLE, KEDA keeps '
        "the current count.",
        _versions_note(
            "spec.advanced.horizontalPodAutoscalerConfig.behavior", tolerance=tolerance, keda=True
        ),
        f"minReplicaCount {settings.keda_min_replicas}: {settings.keda_min_reason}.",
        f"maxReplicaCount {settings.max_replicas}: {settings.max_reason}.",
    ]
    return (
        _comment(_wrap(header))
        + to_yaml(scaled_object(settings, scaler_address=scaler_address, tolerance=tolerance))
        + "---\n"
        + to_yaml(trigger_authentication(settings.namespace))
    )


def _wrap(paragraphs: list[str], width: int = 96) -> list[str]:
    """Comment lines: each paragraph wrapped at ``width`` characters (reasons can be long)."""
    out: list[str] = []
    for text in paragraphs:
        out.extend(textwrap.wrap(text, width) or [""])
    return out

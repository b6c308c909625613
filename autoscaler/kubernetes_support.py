"""The Kubernetes versions that ``deploy/`` and ``report``'s manifests support, in one place.

**Supported:** every minor from :data:`OLDEST_MINOR` (1.29) to :data:`NEWEST_MINOR` (1.37): the
minors still in upstream or major-cloud (extended) support when the range was set, up to the
newest one whose OpenAPI schema ``kubernetes-validate`` ships. Everything ``deploy/`` renders by
default (the kustomize base, overlays and components, the Helm chart in each mode, the example
workload) and every manifest ``llm-autoscaler report`` writes must be accepted by each of them
with strict field validation (what ``kubectl apply`` does since 1.27: an unknown field is an
error, not a warning).

**Newer features are opt-in** (:data:`OPTIONAL_FEATURES`): off by default, each switched on by a
kustomize component (and a Helm value where the chart renders such an object), each with two
versions: the minor whose API knows the field (below it the API server rejects the object) and
the minor from which its feature gate is on by default (between the two, the gate must be turned
on; where it is off the API server drops the field). The sources say where each number comes
from.

Who checks what: ``tests/test_deploy.py`` validates every rendered object against the strict
schema of every supported minor, each opt-in variant against the minors from
:attr:`OptionalFeature.accepted_from` on, and shows that the minor before rejects it;
``tests/test_report_manifests.py`` does the same for the report's YAML. The same tests check
that ``docs/deploy.md`` ("Supported Kubernetes versions") and the Helm chart's ``kubeVersion``
say what this module says.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "HPA_TOLERANCE",
    "IMAGE_VOLUME",
    "NEWEST_MINOR",
    "OLDEST_MINOR",
    "OPTIONAL_FEATURES",
    "SUPPORTED_VERSIONS",
    "OptionalFeature",
    "version",
]

OLDEST_MINOR = 29
"""Kubernetes 1.29: the oldest minor ``deploy/`` and the report's manifests must work on."""
NEWEST_MINOR = 37
"""Kubernetes 1.37: the newest minor they are validated against."""


def version(minor: int) -> str:
    """``"1.<minor>"``."""
    return f"1.{minor}"


SUPPORTED_VERSIONS: tuple[str, ...] = tuple(
    version(m) for m in range(OLDEST_MINOR, NEWEST_MINOR + 1)
)
"""``("1.29", ..., "1.37")``."""


@dataclass(frozen=True, slots=True)
class OptionalFeature:
    """A Kubernetes feature newer than the floor that ``deploy/`` offers as an opt-in."""

    name: str
    """Short name, as in test ids and docs/deploy.md."""
    field: str
    """The API field it writes."""
    gate: str
    """The Kubernetes feature gate behind it."""
    accepted_from: int
    """The first minor whose API (and strict validation) knows the field; older ones reject it."""
    default_on_from: int
    """The first minor where the gate is on by default: the documented minimum to use it as is."""
    kustomize: str
    """The kustomize component that turns it on (path in the repository)."""
    helm: str | None
    """The Helm value that turns it on; None where the chart renders no such object."""
    sources: tuple[str, ...]
    """Where the versions come from."""

    @property
    def floor(self) -> str:
        """The documented minimum version (gate on by default)."""
        return version(self.default_on_from)


HPA_TOLERANCE = OptionalFeature(
    name="hpa-tolerance",
    field=(
        "HorizontalPodAutoscaler spec.behavior.scaleUp/scaleDown.tolerance (also in a KEDA "
        "ScaledObject's advanced.horizontalPodAutoscalerConfig.behavior)"
    ),
    gate="HPAConfigurableTolerance",
    accepted_from=33,
    default_on_from=35,
    kustomize="deploy/kustomize/components/hpa-tolerance",
    helm="autoscaling.tolerance.enabled",
    sources=(
        "KEP-4951 kep.yaml (kubernetes/enhancements keps/sig-autoscaling/"
        "4951-configurable-hpa-tolerance): alpha v1.33, beta v1.35, stable v1.37",
        "the autoscaling/v2 OpenAPI schemas of 1.33-1.37 (kubernetes-validate): the field "
        'first appears in 1.33, described as "an alpha field" in 1.33-1.34, "a beta field" '
        "in 1.35-1.36, without a gate note in 1.37",
        "KEDA: the ScaledObject CRD carries the field from KEDA 2.18 (kedacore/keda-docs#1660)",
    ),
)

IMAGE_VOLUME = OptionalFeature(
    name="image-volume",
    field="Pod spec.volumes[].image (the example vLLM workload's model as an image volume)",
    gate="ImageVolume",
    accepted_from=31,
    default_on_from=35,
    kustomize="deploy/examples/image-volume",
    helm=None,
    sources=(
        "kubernetes.io, Use an Image Volume With a Pod: FEATURE STATE v1.35 [beta] "
        "(enabled by default)",
        "feature gate ImageVolume: alpha v1.31-v1.32, beta from v1.33 (off by default until "
        "v1.35; KEP-4639)",
        "the core/v1 OpenAPI schemas (kubernetes-validate): volumes[].image first appears in "
        "1.31; subPath mounts of an image volume are supported from 1.33",
    ),
)

OPTIONAL_FEATURES: tuple[OptionalFeature, ...] = (HPA_TOLERANCE, IMAGE_VOLUME)

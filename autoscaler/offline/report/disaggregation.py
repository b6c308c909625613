"""The report's "Aggregated vs disaggregated" section, and the per-role manifests it hands out.

``report --disaggregation`` asks, for the workload's history: would a prefill pool and a decode
pool meet the SLO at fewer GPU-hours than today's aggregated fleet, and at what prefill:decode
ratio? Both answers come from clairvoyant yardsticks over the same request trace
(:func:`autoscaler.simulation.pd_compare.compare`: the aggregated fleet oracle against the
two-pool oracle), so the comparison is about the fleet's shape, not any policy. The two-pool
oracle needs requests (a prompt's prefill and its decode land in different pools), so a rate
history from Prometheus gets a note instead.

The manifests are the ones ``deploy/examples/pd-roles-*.yaml`` show
(:mod:`.role_manifests`), for roles named ``<workload>-prefill`` and ``<workload>-decode``
(Deployments; rename the targets, or make them LeaderWorkerSets, to match the cluster); each
role's ``maxReplicas`` is the two-pool plan's peak plus a quarter, as the aggregated
recommendation's cap is.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from autoscaler.offline.report.history import History
from autoscaler.offline.report.role_manifests import RoleTarget, roles_hpa_yaml, roles_keda_yaml
from autoscaler.simulation.pd_compare import PdComparison, compare, comparison_markdown
from autoscaler.simulation.runner import RunRequest

CAP_MARGIN = 1.25
"""Each role's cap over its plan's peak (the aggregated cap's margin: the peak plus a quarter)."""

NEEDS_REQUESTS = (
    "The aggregated-vs-disaggregated comparison needs a request-level history (a request trace): "
    "the two-pool plan places each prompt's prefill and its decode in different pools, which a "
    "rate history cannot show."
)


@dataclass(frozen=True, slots=True)
class Disaggregation:
    """The comparison's figures and the per-role manifests they imply."""

    comparison: PdComparison
    targets: tuple[RoleTarget, ...]
    markdown: str
    hpa_yaml: str
    keda_yaml: str

    def to_json(self) -> dict[str, object]:
        return {
            **asdict(self.comparison),
            "saving": self.comparison.saving,
            "roles": [asdict(t) for t in self.targets],
        }


def role_targets(name: str, c: PdComparison) -> tuple[RoleTarget, ...]:
    """``<name>-prefill`` and ``<name>-decode``, each capped at its plan's peak plus a quarter."""
    return tuple(
        RoleTarget(role, f"{name}-{role}", "Deployment", 1, max(1, math.ceil(peak * CAP_MARGIN)))
        for role, peak in (("prefill", c.prefill_peak), ("decode", c.decode_peak))
    )


def disaggregation(history: History, request: RunRequest) -> tuple[Disaggregation | None, str]:
    """The section for ``history``, or None and why there is none."""
    if history.trace is None:
        return None, NEEDS_REQUESTS
    c = compare(history.trace, request.profile, request.slo)
    namespace, _, name = history.workload.partition("/")
    targets = role_targets(name, c)
    return (
        Disaggregation(
            comparison=c,
            targets=targets,
            markdown=comparison_markdown(c),
            hpa_yaml=roles_hpa_yaml(namespace, name, targets),
            keda_yaml=roles_keda_yaml(namespace, name, targets),
        ),
        "",
    )

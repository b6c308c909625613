"""What the workload's existing autoscaler decided: a plain value, so that the Kubernetes client
that reads it (:mod:`autoscaler.clients.kube.workloads`), the live loop that stores it and the
servers that show it all name one type without a client importing the live loop."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CurrentAutoscaler:
    """What the workload's existing autoscaler decided (its HPA status), for shadow mode."""

    kind: str
    name: str
    current_replicas: int | None
    desired_replicas: int | None

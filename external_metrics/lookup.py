"""Finding the workload an External Metrics request names: namespace + label selector.

The set of workloads is fixed by the configuration (the store never adds one), so an index over
their labels is built once per app. A request then costs a dictionary lookup for the selector's
most selective ``=``/``in`` requirement plus a check of the few candidates, instead of matching
every workload: with 1,000 workloads the HPA's requests stay in the tens of microseconds.

Pure: no I/O, no store access; :mod:`external_metrics.metrics_api` decides what a 0 or 2+
match means (a 400: the HPA sums every item it gets, so a selector must name one workload).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from autoscaler.live.store import WorkloadInfo
from external_metrics.selectors import Operator, Selector


class WorkloadIndex:
    """Workloads by namespace and by ``(namespace, label key, label value)``."""

    def __init__(self, workloads: Iterable[WorkloadInfo]) -> None:
        self._by_namespace: dict[str, list[WorkloadInfo]] = defaultdict(list)
        self._by_label: dict[tuple[str, str, str], list[WorkloadInfo]] = defaultdict(list)
        for info in sorted(workloads, key=lambda w: w.key):
            self._by_namespace[info.namespace].append(info)
            for key, value in info.labels.items():
                self._by_label[(info.namespace, key, value)].append(info)

    def select(self, namespace: str, selector: Selector) -> list[WorkloadInfo]:
        """Every workload of ``namespace`` whose labels the selector matches, sorted by key."""
        candidates = self._candidates(namespace, selector)
        return [info for info in candidates if selector.matches(info.labels)]

    def _candidates(self, namespace: str, selector: Selector) -> list[WorkloadInfo]:
        best: list[WorkloadInfo] | None = None
        for req in selector.requirements:
            if req.operator not in (Operator.EQUALS, Operator.IN):
                continue
            found: list[WorkloadInfo] = []
            for value in req.values:
                found.extend(self._by_label.get((namespace, req.key, value), ()))
            if best is None or len(found) < len(best):
                best = found
        if best is None:
            return self._by_namespace.get(namespace, [])
        return sorted(best, key=lambda w: w.key) if len(best) > 1 else best

"""A data fake of :class:`~autoscaler.clients.prometheus.PrometheusAPI` (STYLE.md, lesson 5).

Answers come from dicts keyed by the exact PromQL; a query with an entry in ``errors`` raises that
exception; any other query answers an empty result, as Prometheus does for series that do not
exist. Every call is recorded in ``calls`` so tests can count queries per tick.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from autoscaler.clients.prometheus import RangeSeries, Sample


@dataclass
class FakePrometheus:
    """``results[promql]`` answers :meth:`query`, ``range_results[promql]`` :meth:`query_range`,
    ``errors[promql]`` is raised by either."""

    results: Mapping[str, list[Sample]] = field(default_factory=dict)
    errors: Mapping[str, Exception] = field(default_factory=dict)
    range_results: Mapping[str, list[RangeSeries]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    """Every PromQL asked, in order (instant and range)."""
    times: list[float | None] = field(default_factory=list)
    """The ``at`` of every instant query, in order."""

    def query(
        self, promql: str, *, at: float | None = None, deadline: float | None = None
    ) -> list[Sample]:
        self.calls.append(promql)
        self.times.append(at)
        if promql in self.errors:
            raise self.errors[promql]
        return list(self.results.get(promql, ()))

    def query_range(self, promql: str, start: float, end: float, step: float) -> list[RangeSeries]:
        self.calls.append(promql)
        if promql in self.errors:
            raise self.errors[promql]
        return list(self.range_results.get(promql, ()))

"""The control loop's own health and timing, as Prometheus metrics in an injected registry.

One object per service instance, built on the registry the caller hands in (never the global
default registry), so tests and several services in one process never share state. The names are
the ones the Grafana dashboard in ``deploy/`` charts; changing one is a dashboard change too.
"""

from __future__ import annotations

import math
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from autoscaler.core.recommendation import Recommendation
from autoscaler.core.signals import SignalSnapshot
from autoscaler.core.wire_names import FORECAST_METRIC, LOAD_METRIC

_WORKLOAD = ("namespace", "workload")


class LoopMetrics:
    """Metrics of ``serve``; ``observe_*`` methods are called by the loop once per tick."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._children: dict[tuple[int, str, str], Any] = {}
        """Per metric and workload, its labelled child: ``labels()`` validates and locks on
        every call, some 15 us; eight of them per workload were a tenth of a 10,000-workload
        tick. Children are never removed, so a cached one stays the registry's."""
        self.registry = registry
        self.tick_seconds = Histogram(
            "llm_autoscaler_tick_seconds",
            "Duration of one control-loop tick (collect, forecast, policy, store).",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        )
        self.ticks = Counter(
            "llm_autoscaler_ticks", "Control-loop ticks run.", ["outcome"], registry=registry
        )
        self.queries = Counter(
            "llm_autoscaler_prometheus_queries",
            "PromQL queries sent to Prometheus (constant per tick in the number of workloads).",
            registry=registry,
        )
        self.last_tick = Gauge(
            "llm_autoscaler_last_tick_timestamp_seconds",
            "Unix time of the last completed tick.",
            registry=registry,
        )
        self.desired = Gauge(
            "llm_autoscaler_desired_replicas",
            "Desired replicas of the last good recommendation.",
            _WORKLOAD,
            registry=registry,
        )
        self.load = Gauge(
            "llm_autoscaler_load_replicas",
            "Current token load divided by the learned per-replica capacity.",
            _WORKLOAD,
            registry=registry,
        )
        self.forecast = Gauge(
            "llm_autoscaler_forecast_load_replicas",
            "Upper forecast quantile of the load over the lead time, in replicas.",
            _WORKLOAD,
            registry=registry,
        )
        self.data_age = Gauge(
            "llm_autoscaler_data_age_seconds",
            "Age of the newest metric sample of the workload (+Inf when none).",
            _WORKLOAD,
            registry=registry,
        )
        self.stale = Gauge(
            "llm_autoscaler_workload_stale",
            "1 while the workload's data is stale or missing (the APIs answer 503).",
            _WORKLOAD,
            registry=registry,
        )
        self.shadow_difference = Gauge(
            "llm_autoscaler_shadow_difference_replicas",
            "Shadow mode: our desired replicas minus what the current autoscaler decided.",
            _WORKLOAD,
            registry=registry,
        )
        self.gpu_memory = Gauge(
            "llm_autoscaler_gpu_memory_usage_ratio",
            "GPU memory in use (dcgm-exporter), mean over replicas of each one's fullest GPU, "
            "0..1; NaN without DCGM data for the workload.",
            _WORKLOAD,
            registry=registry,
        )
        self.gpu_memory_max = Gauge(
            "llm_autoscaler_gpu_memory_usage_max_ratio",
            "GPU memory in use on the workload's fullest replica (what the memory-pressure guard "
            "reads), 0..1; NaN without DCGM data.",
            _WORKLOAD,
            registry=registry,
        )
        self.winner = Counter(
            "llm_autoscaler_recommendations",
            "Recommendations by the candidate that won (hold = fail static).",
            [*_WORKLOAD, "winner"],
            registry=registry,
        )
        self.rejected = Counter(
            "llm_autoscaler_samples_rejected",
            "Impossible samples (negative, infinite, a share above 1) left out as missing.",
            [*_WORKLOAD, "signal", "problem"],
            registry=registry,
        )
        self.events = Counter(
            "llm_autoscaler_events",
            "Kubernetes Events the loop emitted, by reason.",
            ["reason"],
            registry=registry,
        )

    def _of(self, metric: Any, ns: str, name: str) -> Any:
        """``metric.labels(ns, name)``, cached."""
        key = (id(metric), ns, name)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(ns, name)
        return child

    def observe_rejected(self, workload: str, rejected: tuple[str, ...]) -> None:
        """Count the snapshot's impossible samples by signal and problem (``field=v: problem``)."""
        ns, _, name = workload.partition("/")
        for entry in rejected:
            field = entry.partition("=")[0].partition("{")[0]
            problem = entry.rpartition(": ")[2]
            self.rejected.labels(ns, name, field, problem).inc()

    def observe_recommendation(self, rec: Recommendation, data_age_s: float) -> None:
        ns, _, name = rec.workload.partition("/")
        self.winner.labels(ns, name, rec.winner).inc()
        self._of(self.data_age, ns, name).set(data_age_s if math.isfinite(data_age_s) else math.inf)
        self._of(self.stale, ns, name).set(1.0 if rec.holds else 0.0)
        if rec.holds:
            return
        assert rec.desired_replicas is not None
        self._of(self.desired, ns, name).set(rec.desired_replicas)
        by_name = {m.name: m.value for m in rec.metrics}
        if LOAD_METRIC in by_name:
            self._of(self.load, ns, name).set(by_name[LOAD_METRIC])
        if FORECAST_METRIC in by_name:
            self._of(self.forecast, ns, name).set(by_name[FORECAST_METRIC])

    def observe_signals(self, snap: SignalSnapshot) -> None:
        """The signals worth charting beside the recommendation (GPU memory, from DCGM)."""
        ns, _, name = snap.workload.partition("/")
        for gauge, value in (
            (self.gpu_memory, snap.gpu_memory_usage),
            (self.gpu_memory_max, snap.gpu_memory_usage_max),
        ):
            self._of(gauge, ns, name).set(math.nan if value is None else value)

    def observe_shadow(self, workload: str, difference: float | None) -> None:
        ns, _, name = workload.partition("/")
        if difference is None:
            self.shadow_difference.labels(ns, name).set(math.nan)
        else:
            self.shadow_difference.labels(ns, name).set(difference)

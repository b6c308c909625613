"""One collection step: the batched PromQL of a tick → one :class:`SignalSnapshot` per workload.

:func:`collect` asks :func:`~autoscaler.engines.promql.build_fleet_queries` for one query set per
distinct engine (grouped ``by (namespace, workload)``), so the number of queries per tick depends
on the engines in use, never on the number of workloads. Each result row is handed to its workload
by its ``namespace`` and ``workload`` labels; rows of workloads not in the config, or of a workload
served by another engine, are ignored.

What it does not do, on purpose:

- No demand estimate: completions plus queue growth is the policy's job
  (:meth:`SignalSnapshot.demand_requests_per_s`); this fills ``request_rate`` and
  ``waiting_growth_rate`` (the ``deriv`` query) side by side. Counter resets are handled by
  ``rate()`` in Prometheus.
- No made-up values (fail static). A NaN sample (``histogram_quantile`` over an idle window, a
  0/0 mean) becomes ``None``; so does an impossible one (negative, infinite, a KV share above 1:
  :mod:`autoscaler.core.sample_checks`), which is also listed in the snapshot's ``rejected``. A
  query that fails (:class:`PrometheusError`) leaves every field it fills ``None`` for every
  workload of that engine; once one query cannot connect at all (:class:`PrometheusUnreachable`,
  after its retries), the tick's other queries are skipped, so an outage costs one query's
  retries per tick, not every query's. A snapshot is ``stale`` when a *core demand signal*
  (:data:`CORE_FIELDS`, those the engine exports) is missing, when the workload has no sample
  at all, or when its newest sample is older than ``staleness_s``; policies must then hold (no
  scale-down) and the APIs answer 503.
- No replica states: they come from the Kubernetes watch (``replicas``), zeros until then.

``data_age_s`` is ``now`` minus the newest sample timestamp of the workload (``inf`` when it has
none). Instant queries are evaluated at ``now``, so Prometheus stamps samples with ``now``;
a target that stopped being scraped shows up as missing rows (Prometheus' staleness markers and
the ``rate`` window drop it), which this step reports as stale.
"""

from __future__ import annotations

import functools
import logging
import math
import sys
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import fields, replace
from typing import Final

from autoscaler.clients.prometheus import (
    PrometheusAPI,
    PrometheusError,
    PrometheusSlow,
    PrometheusUnreachable,
    Sample,
)
from autoscaler.clients.prometheus_rows import RowLabels, VectorRow, query_rows, rows_of
from autoscaler.config import WorkloadConfig
from autoscaler.core.sample_checks import FRACTION_FIELDS, SIGNED_FIELDS, sample_problem
from autoscaler.core.signals import ReplicaCounts, SignalSnapshot
from autoscaler.engines import gateway
from autoscaler.engines.base import EngineProfile
from autoscaler.engines.promql import GroupingLabels, Query, build_fleet_queries
from autoscaler.errors import InputError, UnknownNameError

__all__ = [
    "CORE_FIELDS",
    "NO_REPLICAS",
    "collect",
    "collect_history",
    "with_scraped_pods",
    "workload_key",
]

log = logging.getLogger(__name__)

CORE_FIELDS: Final[tuple[str, ...]] = ("request_rate", "waiting_growth_rate")
"""Demand signals without which a snapshot is stale (when the engine exports them)."""

MAX_REJECTED: Final = 8
"""Rejected samples listed per snapshot: enough to diagnose, bounded against a flood of pods."""

NO_REPLICAS: Final = ReplicaCounts(spec=0, ready=0, starting=0, pending=0, terminating=0)
"""Replica counts before the Kubernetes watch has reported."""

_SLACK: Final = 1e-9
"""As :mod:`autoscaler.sample_checks`: float noise allowed around a bound."""
_BELOW_INF: Final = sys.float_info.max
"""The largest finite float: ``v <= _BELOW_INF`` is false for ``inf`` and NaN."""

_SCALAR_FIELDS: Final[frozenset[str]] = frozenset(
    f.name
    for f in fields(SignalSnapshot)
    if f.name not in ("workload", "timestamp", "replicas", "data_age_s", "stale", "rejected")
    and not f.name.startswith("per_replica_")
    and not f.name.endswith("_buckets")
)
_BUCKET_FIELDS: Final[frozenset[str]] = frozenset(
    f.name for f in fields(SignalSnapshot) if f.name.endswith("_buckets")
)
_PER_REPLICA_FIELDS: Final[frozenset[str]] = frozenset(
    f.name for f in fields(SignalSnapshot) if f.name.startswith("per_replica_")
)


def workload_key(namespace: str, name: str) -> str:
    """``namespace/name``: the key of a workload in the returned dict and in snapshots."""
    return f"{namespace}/{name}"


def collect(
    api: PrometheusAPI,
    workloads: Sequence[WorkloadConfig],
    *,
    now: float,
    staleness_s: float,
    engines: Mapping[str, EngineProfile],
    replicas: Mapping[str, ReplicaCounts] | None = None,
    labels: GroupingLabels | None = None,
    window: str = "1m",
    extra_matchers: Mapping[str, str] | None = None,
    deadline: float | None = None,
    problems: list[str] | None = None,
    gpu_memory: EngineProfile | None = None,
) -> dict[str, SignalSnapshot]:
    """Run one tick's batched queries and build a snapshot for every workload, keyed
    ``namespace/name``.

    ``engines`` maps engine names (``WorkloadConfig.engine``) to profiles; ``replicas`` maps
    workload keys to counts from the Kubernetes watch (missing: :data:`NO_REPLICAS`).
    Never raises :class:`PrometheusError`: a failed query leaves its fields ``None``.

    ``deadline`` (``time.monotonic()`` seconds) is the tick's budget, enforced by the client: no
    query starts and no retry waits past it (:class:`PrometheusSlow`), the remaining queries are
    skipped and their fields stay ``None`` (so the workloads hold). When Prometheus is
    unreachable or too slow for the budget, one line naming Prometheus and the query is appended
    to ``problems``.

    ``gpu_memory`` (the dcgm-exporter profile) adds each engine's GPU memory queries, joined to
    its replicas by pod (:func:`~autoscaler.engines.promql.gpu_memory_queries`); they are never
    core signals, so a cluster without dcgm-exporter only leaves the ``gpu_memory_*`` fields
    ``None``.
    """
    lb = labels or GroupingLabels()
    profile_of = _profiles(workloads, engines)
    fleet = build_fleet_queries(profile_of, lb, window, extra_matchers, gpu_memory=gpu_memory)
    filed = _Filed(profile_of)
    names = _row_labels(lb)
    stopped: str | None = None
    for engine_name, queries in fleet.items():
        for q in queries:
            if stopped is not None:
                break  # no connection, or no time: every other query would wait in vain too
            try:
                rows = query_rows(api, q.promql, names, at=now, deadline=deadline)
                filed.file(engine_name, q, rows, lb)
            except PrometheusUnreachable as exc:
                stopped = f"Prometheus unreachable: {exc}"
            except PrometheusSlow as exc:
                stopped = f"Prometheus slow: {q.field} ({engine_name}): {exc}"
            except PrometheusError as exc:
                log.warning("query for %s/%s failed: %s", engine_name, q.field, exc)
    joins = _gateway_joins(workloads)
    gateway_rows: dict[str, list[Sample]] = {}
    for gq in gateway.build_gateway_queries(
        joins.values(), namespace_label=lb.namespace, window=window
    ):
        if stopped is not None:
            break
        try:
            gateway_rows[gq.field] = api.query(gq.promql, at=now, deadline=deadline)
        except PrometheusUnreachable as exc:
            stopped = f"Prometheus unreachable: {exc}"
        except PrometheusSlow as exc:
            stopped = f"Prometheus slow: {gq.field} (gateway): {exc}"
        except PrometheusError as exc:
            log.warning("query for gateway/%s failed: %s", gq.field, exc)
    if stopped is not None:
        log.warning("%s; skipped this tick's other queries", stopped)
        if problems is not None:
            problems.append(stopped)
    snaps = _snapshots(workloads, profile_of, fleet, filed, now, staleness_s, replicas)
    return _with_gateway(snaps, joins, gateway_rows, lb, now, staleness_s)


def _gateway_joins(workloads: Sequence[WorkloadConfig]) -> dict[str, gateway.GatewayJoin]:
    """The gateway join of every workload that has a gateway configured, by workload key."""
    return {
        workload_key(w.namespace, w.name): gateway.GatewayJoin.of(w.namespace, w.gateway)
        for w in workloads
        if w.gateway is not None
    }


def _with_gateway(
    snaps: dict[str, SignalSnapshot],
    joins: Mapping[str, gateway.GatewayJoin],
    rows: Mapping[str, list[Sample]],
    lb: GroupingLabels,
    now: float,
    staleness_s: float,
) -> dict[str, SignalSnapshot]:
    """Add the gateway fields of gateway-fronted workloads. Missing or stale gateway data
    leaves them None (the policy then reads demand from the engines and says so); it never
    makes a snapshot stale on its own, since the engines' signals still describe the fleet."""
    if not joins:
        return snaps
    found = gateway.gateway_signals(joins, rows, namespace_label=lb.namespace)
    for key, sig in found.items():
        snap = snaps.get(key)
        if snap is None:
            continue
        fresh = now - sig.newest <= staleness_s
        values = sig.values if fresh else {}
        rejected = (*snap.rejected, *sig.rejected)[:MAX_REJECTED]
        snaps[key] = replace(snap, rejected=rejected, **values)  # type: ignore[arg-type]
    return snaps


def collect_history(
    api: PrometheusAPI,
    workloads: Sequence[WorkloadConfig],
    *,
    start: float,
    end: float,
    step: float,
    engines: Mapping[str, EngineProfile],
    labels: GroupingLabels | None = None,
    window: str = "1m",
    extra_matchers: Mapping[str, str] | None = None,
    gpu_memory: EngineProfile | None = None,
) -> list[tuple[float, dict[str, SignalSnapshot]]]:
    """The same queries as :func:`collect` as range queries: one snapshot set per ``step``.

    This is the start-up backfill (DESIGN.md: "a restart loses nothing"): replaying the history
    through the policies restores their forecaster and capacity state with the very code a live
    tick runs. Each query runs once over the whole range, so the cost does not grow with the
    workloads; the gateway's queries (:mod:`autoscaler.engines.gateway`) run the same way for
    workloads behind one. Replica counts are not in Prometheus history: ``ready`` is the number
    of pods a per-replica signal reported at that step (what was scraped), the others are 0.
    A failed query leaves its field ``None`` at every step; a step where a workload has no data
    at all is stale, exactly as live.
    """
    lb = labels or GroupingLabels()
    profile_of = _profiles(workloads, engines)
    fleet = build_fleet_queries(profile_of, lb, window, extra_matchers, gpu_memory=gpu_memory)
    if step <= 0 or end < start:
        raise InputError(f"bad backfill range: start {start}, end {end}, step {step}")
    steps = [start + i * step for i in range(int((end - start) // step) + 1)]
    index = {round(t, 3): i for i, t in enumerate(steps)}
    per_step: list[dict[tuple[str, str], list[Sample]]] = [{} for _ in steps]
    for engine_name, queries in fleet.items():
        for q in queries:
            try:
                series = api.query_range(q.promql, start, end, step)
            except PrometheusError as exc:
                log.warning("backfill query for %s/%s failed: %s", engine_name, q.field, exc)
                continue
            for i in range(len(steps)):
                per_step[i][(engine_name, q.field)] = []
            for s in series:
                for t, v in zip(s.timestamps.tolist(), s.values.tolist(), strict=True):
                    at = index.get(round(t, 3))
                    if at is not None:
                        per_step[at][(engine_name, q.field)].append(Sample(s.labels, t, v))
    joins = _gateway_joins(workloads)
    gateway_per_step: list[dict[str, list[Sample]]] = [{} for _ in steps]
    for gq in gateway.build_gateway_queries(
        joins.values(), namespace_label=lb.namespace, window=window
    ):
        try:
            series = api.query_range(gq.promql, start, end, step)
        except PrometheusError as exc:
            log.warning("backfill query for gateway/%s failed: %s", gq.field, exc)
            continue
        for s in series:
            for t, v in zip(s.timestamps.tolist(), s.values.tolist(), strict=True):
                at = index.get(round(t, 3))
                if at is not None:
                    gateway_per_step[at].setdefault(gq.field, []).append(Sample(s.labels, t, v))
    out: list[tuple[float, dict[str, SignalSnapshot]]] = []
    staleness = 2.0 * step
    for t, results, rows in zip(steps, per_step, gateway_per_step, strict=True):
        snaps = _assemble(workloads, profile_of, fleet, results, lb, t, staleness, None)
        snaps = _with_gateway(snaps, joins, rows, lb, t, staleness)
        out.append((t, {k: with_scraped_pods(s) for k, s in snaps.items()}))
    return out


def with_scraped_pods(snap: SignalSnapshot) -> SignalSnapshot:
    """Replica counts as Prometheus saw them: every pod with a per-replica sample is ready.

    Used where no Kubernetes watch is available (history, or ``serve`` without a cluster): it
    knows nothing of pending or starting replicas, so it is a floor on the fleet, not its state.
    """
    pods = scraped_pods(snap)
    counts = ReplicaCounts(spec=pods, ready=pods, starting=0, pending=0, terminating=0)
    return replace(snap, replicas=counts)


def scraped_pods(snap: SignalSnapshot) -> int:
    """How many pods Prometheus saw: the most that reported any per-replica gauge."""
    return max(
        len(snap.per_replica_running), len(snap.per_replica_waiting), len(snap.per_replica_kv_usage)
    )


def _profiles(
    workloads: Sequence[WorkloadConfig], engines: Mapping[str, EngineProfile]
) -> dict[str, EngineProfile]:
    profile_of: dict[str, EngineProfile] = {}
    for w in workloads:
        if w.engine not in engines:
            raise UnknownNameError("engine", w.engine, tuple(sorted(engines)))
        profile_of[workload_key(w.namespace, w.name)] = engines[w.engine]
    return profile_of


class _Filed:
    """Rows filed by workload as the queries answer (:func:`_assign`), until the snapshots are
    built: each query's rows are filed and dropped as soon as it answers, so a tick holds one
    query's decoded answer at a time, not all of them."""

    def __init__(self, profile_of: Mapping[str, EngineProfile]) -> None:
        self.members: dict[str, set[str]] = defaultdict(set)
        for key, profile in profile_of.items():
            self.members[profile.name].add(key)
        self.scalars: dict[str, dict[str, float | None]] = defaultdict(dict)
        self.per_pod: dict[str, dict[str, list[tuple[str, float]]]] = defaultdict(
            lambda: defaultdict(list)
        )
        self.buckets: dict[str, dict[str, list[tuple[float, float]]]] = defaultdict(
            lambda: defaultdict(list)
        )
        self.newest: dict[str, float] = {}
        self.rejected: dict[str, list[str]] = defaultdict(list)

    def file(self, engine_name: str, q: Query, rows: list[VectorRow], lb: GroupingLabels) -> None:
        _assign(
            q,
            rows,
            self.members[engine_name],
            lb,
            self.scalars,
            self.per_pod,
            self.buckets,
            self.newest,
            self.rejected,
        )


def _assemble(
    workloads: Sequence[WorkloadConfig],
    profile_of: Mapping[str, EngineProfile],
    fleet: Mapping[str, Sequence[Query]],
    results: Mapping[tuple[str, str], list[Sample]],
    lb: GroupingLabels,
    now: float,
    staleness_s: float,
    replicas: Mapping[str, ReplicaCounts] | None,
) -> dict[str, SignalSnapshot]:
    """Build every workload's snapshot from the rows of the queries that answered."""
    filed = _Filed(profile_of)
    for engine_name, queries in fleet.items():
        for q in queries:
            samples = results.get((engine_name, q.field))
            if samples is not None:
                filed.file(engine_name, q, rows_of(samples, _row_labels(lb)), lb)
    return _snapshots(workloads, profile_of, fleet, filed, now, staleness_s, replicas)


def _snapshots(
    workloads: Sequence[WorkloadConfig],
    profile_of: Mapping[str, EngineProfile],
    fleet: Mapping[str, Sequence[Query]],
    filed: _Filed,
    now: float,
    staleness_s: float,
    replicas: Mapping[str, ReplicaCounts] | None,
) -> dict[str, SignalSnapshot]:
    """Every workload's snapshot from the rows filed for it."""
    scalars, per_pod, buckets = filed.scalars, filed.per_pod, filed.buckets
    newest, rejected = filed.newest, filed.rejected
    queried_of = {name: {q.field for q in queries} for name, queries in fleet.items()}
    out: dict[str, SignalSnapshot] = {}
    for w in workloads:
        key = workload_key(w.namespace, w.name)
        profile = profile_of[key]
        queried = queried_of[profile.name]
        values = scalars.get(key, {})
        core = [f for f in CORE_FIELDS if f in queried]
        missing_core = [f for f in core if values.get(f) is None]
        age = now - newest[key] if key in newest else math.inf
        stale = bool(missing_core) or age > staleness_s
        bad = tuple(rejected.get(key, ())[:MAX_REJECTED])
        if stale:
            why = f"missing {', '.join(missing_core)}" if missing_core else f"data age {age:.0f}s"
            if bad:
                why += f"; rejected {', '.join(bad)}"
            log.debug("workload %s is stale (%s)", key, why)
        pods = per_pod.get(key, {})
        histograms = {f: _histogram(rows) for f, rows in buckets.get(key, {}).items()}
        out[key] = SignalSnapshot(
            workload=key,
            timestamp=now,
            replicas=(replicas or {}).get(key, NO_REPLICAS),
            data_age_s=age,
            stale=stale,
            rejected=bad,
            **{f: v for f, v in values.items() if f in _SCALAR_FIELDS},  # type: ignore[arg-type]
            **{f: tuple(v for _, v in sorted(rows)) for f, rows in pods.items()},  # type: ignore[arg-type]
            **{f: h for f, h in histograms.items() if h},  # type: ignore[arg-type]
        )
    return out


@functools.lru_cache(maxsize=4096)
def _bound(text: str | None) -> float | None:
    """A bucket's ``le`` label as a number (``+Inf`` included); None when absent or garbage.

    Cached: a tick reads the same few dozen bounds once per workload (600,000 times at 10,000)."""
    try:
        le = float(text) if text is not None else math.nan
    except ValueError:
        return None
    return None if math.isnan(le) or le < 0 else le


def _histogram(rows: list[tuple[float, float]]) -> tuple[tuple[float, float], ...]:
    """A workload's bucket rows as ``(le, value)`` pairs, ascending; empty (not observed) unless
    it is a whole cumulative histogram: ``+Inf`` present, no ``le`` twice, never decreasing
    (a row rejected as impossible, or with an unreadable ``le``, leaves a hole, and a histogram with
    a hole is no histogram)."""
    if not rows:
        return ()
    ordered = sorted(rows)
    les = [le for le, _ in ordered]
    # bounds are >= 0, +Inf or NaN (:func:`_bound`), so the sum is NaN exactly when one is NaN
    if math.isnan(sum(les)) or les[-1] != math.inf or len(set(les)) != len(les):
        return ()
    values = [v for _, v in ordered]
    if (
        values != sorted(values)
        and any(  # sorted: plainly cumulative, the common case
            b < a - 1e-9 * max(abs(a), 1.0) for a, b in zip(values, values[1:], strict=False)
        )
    ):
        return ()
    return tuple(ordered)


def _row_labels(lb: GroupingLabels) -> RowLabels:
    """The labels rows are filed by: the grouping labels and ``le``."""
    return RowLabels(lb.namespace, lb.workload, lb.pod)


def _assign(
    q: Query,
    rows: list[VectorRow],
    wanted: set[str],
    lb: GroupingLabels,
    scalars: dict[str, dict[str, float | None]],
    per_pod: dict[str, dict[str, list[tuple[str, float]]]],
    buckets: dict[str, dict[str, list[tuple[float, float]]]],
    newest: dict[str, float],
    rejected: dict[str, list[str]],
) -> None:
    """File each row of ``q``'s result under its workload (ignoring workloads not in ``wanted``).

    An impossible value is filed as missing, and its reason under ``rejected``. This runs once
    per row (some 800,000 rows a tick at 10,000 workloads), so the common case, a value plainly
    within its field's bounds, skips :func:`sample_problem` (the bounds are the same).
    """
    field = q.field
    kind = (
        "pod"
        if field in _PER_REPLICA_FIELDS
        else "bucket"
        if field in _BUCKET_FIELDS
        else "scalar"
        if field in _SCALAR_FIELDS
        else ""  # a field no snapshot holds (the dcgm profile's own ``gpu_memory_*_mib`` sums)
    )
    lo = -_BELOW_INF if field in SIGNED_FIELDS else -_SLACK
    hi = 1.0 + _SLACK if field in FRACTION_FIELDS else _BELOW_INF
    pod_label = lb.pod
    for row in rows:
        labels = row.labels
        ns = labels.namespace
        name = labels.workload
        if ns is None or name is None:
            continue
        key = f"{ns}/{name}"
        if key not in wanted:
            continue
        t, raw = row.point
        if t > newest.get(key, -math.inf) and t != math.inf:
            newest[key] = t
        value: float | None = raw
        if not lo <= raw <= hi:  # NaN, infinite or out of bounds: the careful path
            problem = sample_problem(field, raw)
            if problem is not None:
                pod = labels.pod
                where = f"{field}{{{pod_label}={pod!r}}}" if pod else field
                rejected[key].append(f"{where}={raw:g}: {problem}")
            value = None
        if kind == "pod":
            if value is not None:
                per_pod[key][field].append((labels.pod or "", value))
        elif kind == "bucket":
            # a rejected or unreadable row still takes its place (NaN), so the histogram it
            # belongs to is known to have a hole
            le = _bound(labels.le)
            ok = value is not None and le is not None
            buckets[key][field].append((le, value) if ok else (math.nan, math.nan))  # type: ignore[arg-type]
        elif kind == "scalar":
            scalar = scalars[key]
            if scalar.get(field) is None:
                scalar[field] = value
            elif value is not None:
                log.debug("duplicate %s row for %s ignored", field, key)

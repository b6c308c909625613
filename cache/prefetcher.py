"""The one entry point ``serve`` calls: :class:`Prefetcher` and its ``reconcile`` per workload.

``reconcile(workload, recommendation, forecast_replicas, now)`` is safe to call every tick:

1. nothing unless prefetch is enabled for the workload, this replica is the **leader**
   (:mod:`cache.leader`), and the node/pod **inventory** has completed its first list
   (:class:`~cache.watched_inventory.WatchedInventory`; an empty inventory would read as "no
   eligible node");
2. read the workload's Deployment (cached for ``deployment_refresh_s``): owner uid, pull secrets,
   tolerations, and the placement rules the planner applies;
3. read its prefetch Jobs back: a success marks the node warm at once (``status.images`` lags
   ~30-40 s) and is counted; a failure is counted, reported as a Warning Event, deleted (so the
   pull can be retried later) and the node is skipped for ``failure_backoff_s``; running Jobs are
   pulls in flight; Jobs for an image the workload no longer uses are deleted;
4. :func:`~cache.planner.plan_prefetch` from the demand (:func:`~cache.planner.demand_from`:
   need ``max(desired, ceil(forecast))`` within the workload's bounds, growth ``forecast - load``
   from the recommendation's published ``llm_forecast_load_replicas`` / ``llm_load_replicas``;
   ``forecast_replicas``, when given, overrides the published forecast; the largest rise of
   its pods on nodes within ``rise_span_s`` (a pull's time) over the last hour, tracked here)
   and the workload's pods already on nodes; a stale recommendation (fail static) plans
   nothing new;
5. create the planned Jobs (deterministic names: a second call creates nothing twice), emit
   ``PrefetchNoEligibleNode`` when the plan found none (on the transition, then every
   ``event_repeat_s``), and sync the warm-node labels.

Every Kubernetes failure is caught, logged and counted; ``reconcile`` only raises for programming
errors. The Kubernetes calls are synchronous: call it from a worker thread (as the control loop
runs its ticks), never on the asyncio loop.
"""

from __future__ import annotations

import logging
import math
import socket
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from kubernetes import client
from prometheus_client import CollectorRegistry

from autoscaler.clients.kube.jobs import JobClient
from autoscaler.clients.kube.leases import LeaseClient
from autoscaler.clients.kube.nodes import NodeClient
from autoscaler.config import WorkloadConfig
from autoscaler.core.recommendation import Recommendation
from autoscaler.core.wire_names import FORECAST_METRIC, LOAD_METRIC
from autoscaler.errors import ExternalSystemError
from cache.executor import EventApi, Executor, JobApi, LabelApi, PrefetchMetrics
from cache.inventory import (
    Inventory,
    image_size_from_nodes,
    parse_image_ref,
    pod_gpu_request,
    replicas_per_node,
)
from cache.leader import LeaderElector
from cache.placement import PlacementError, placement_from_pod_spec
from cache.planner import (
    DEFAULT_POOL_LABELS,
    Demand,
    Plan,
    PlannerSettings,
    WorkloadShape,
    demand_from,
    plan_prefetch,
    recent_rise,
)
from cache.prefetch_jobs import JobSettings, JobTemplate, image_hash, template_from_workload
from cache.watched_inventory import WatchedInventory

__all__ = [
    "DEFAULT_LEASE_NAME",
    "Prefetcher",
    "ReconcileReport",
    "job_settings",
    "planner_settings",
]

log = logging.getLogger(__name__)

DEFAULT_LEASE_NAME: Final = "llm-autoscaler-prefetch"


class InventoryView(Protocol):
    @property
    def synced(self) -> bool: ...

    def snapshot(self) -> Inventory: ...


class Elector(Protocol):
    def is_leader(self) -> bool: ...


class WorkloadReader(Protocol):
    """:class:`autoscaler.clients.kube.jobs.JobClient` live."""

    def read_workload(
        self, namespace: str, name: str, kind: str = "Deployment"
    ) -> dict[str, Any] | None: ...


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    """What one reconcile did, for logs, tests and the JSON API."""

    workload: str
    status: str
    """``disabled``, ``not-leader``, ``not-synced``, ``no-deployment``, ``error``, ``hold``, or
    the plan's status: ``pull``, ``enough``, ``capped``, ``no-eligible-node``, ``no-image-size``."""
    plan: Plan | None = None
    created: tuple[str, ...] = ()
    labelled: tuple[str, ...] = ()
    unlabelled: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    detail: str = ""


def planner_settings(workload: WorkloadConfig) -> PlannerSettings:
    """The planner's settings from the workload's ``prefetch`` config."""
    p = workload.prefetch
    pools = DEFAULT_POOL_LABELS
    if p.node_pool_label is not None:
        pools = (p.node_pool_label, *[k for k in DEFAULT_POOL_LABELS if k != p.node_pool_label])
    return PlannerSettings(
        max_warm_nodes=p.max_warm_nodes,
        max_concurrent_per_pool=p.max_concurrent_per_pool,
        spare_replicas=p.spare_replicas,
        fleet_fraction=p.fleet_fraction,
        gc_high_threshold_percent=p.gc_high_threshold_percent,
        on_disk_factor=p.on_disk_factor,
        pool_label_keys=pools,
    )


def job_settings(workload: WorkloadConfig) -> JobSettings:
    """The Job settings from the workload's ``prefetch`` config."""
    p = workload.prefetch
    return JobSettings(
        active_deadline_s=p.pull_deadline_s,
        image_has_shell=p.image_has_shell,
        helper_image=p.helper_image,
    )


def _times(value: float | None, k: int) -> float | None:
    """``value`` in pods when it counts replicas of ``k`` pods (None stays None)."""
    return None if value is None else value * k


def _metric(recommendation: Recommendation, name: str) -> float | None:
    for metric in recommendation.metrics:
        if metric.name == name:
            return metric.value
    return None


@dataclass
class _WorkloadState:
    template: JobTemplate | None = None
    template_read_at: float = -math.inf
    succeeded_at: dict[str, float] = field(default_factory=dict)
    """node -> when our Job there was first seen succeeded."""
    failed_until: dict[str, tuple[float, str]] = field(default_factory=dict)
    """node -> (skip until, why) after a failed pull."""
    seen_finished: set[str] = field(default_factory=set)
    history: deque[tuple[float, int]] = field(default_factory=deque)
    """(tick, the workload's pods on nodes) over the last hour, for the recent rise."""
    last_status: str = ""
    last_event_at: float = -math.inf


class Prefetcher:
    """Pulls each prefetch-enabled workload's modelcar onto the nodes its replicas will need.

    ``Prefetcher(api_client, registry, dry_run=False, lease_namespace=..., identity=...)`` builds
    its parts on one ``kubernetes.client.ApiClient``; every part can be injected instead (tests,
    or a service that already runs an inventory). :meth:`start` starts the inventory watches and
    the leader election thread; :meth:`stop` stops them and releases the Lease.

    Leader election: with ``lease_namespace`` set (the service's namespace) only the holder of
    the Lease ``lease_name`` acts; with neither it nor ``elector`` the prefetcher acts
    unconditionally, which is only right for a single replica (a warning says so).
    """

    def __init__(
        self,
        api_client: client.ApiClient | None,
        registry: CollectorRegistry,
        dry_run: bool = False,
        *,
        lease_namespace: str | None = None,
        identity: str | None = None,
        lease_name: str = DEFAULT_LEASE_NAME,
        inventory: InventoryView | None = None,
        elector: Elector | None = None,
        jobs: JobApi | None = None,
        deployments: WorkloadReader | None = None,
        workload_kinds: Mapping[str, str] | None = None,
        labels: LabelApi | None = None,
        events: EventApi | None = None,
        label_grace_s: float = 300.0,
        failure_backoff_s: float = 600.0,
        deployment_refresh_s: float = 60.0,
        event_repeat_s: float = 600.0,
        rise_span_s: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.dry_run = dry_run
        self.metrics = PrefetchMetrics(registry)
        self.label_grace_s = label_grace_s
        self.failure_backoff_s = failure_backoff_s
        self.deployment_refresh_s = deployment_refresh_s
        self.event_repeat_s = event_repeat_s
        self.rise_span_s = rise_span_s
        self.clock = clock
        node_client = NodeClient(api_client) if api_client is not None else None
        job_client = JobClient(api_client) if api_client is not None else None
        self._deployments = deployments if deployments is not None else job_client
        if inventory is None:
            if node_client is None:
                raise ValueError("Prefetcher needs an api_client or an inventory")
            inventory = WatchedInventory(node_client)
        self.inventory = inventory
        jobs_api = jobs if jobs is not None else job_client
        labels_api = labels if labels is not None else node_client
        if jobs_api is None or labels_api is None:
            raise ValueError("Prefetcher needs an api_client, or jobs and labels")
        if events is None and api_client is not None:
            from autoscaler.clients.kube.workloads import EventRecorder

            events = EventRecorder(api_client, instance=identity, kinds=workload_kinds)
        self._owns_elector = elector is None and lease_namespace is not None
        """Start and stop only an elector built here; an injected one is shared (``serve``'s
        Lease also decides which replica posts the loop's Events) and its owner runs it."""
        if elector is None and lease_namespace is not None:
            if api_client is None:
                raise ValueError("leader election needs an api_client")
            elector = LeaderElector(
                LeaseClient(api_client),
                namespace=lease_namespace,
                name=lease_name,
                identity=identity or socket.gethostname(),
                registry=registry,
            )
        if elector is None:
            log.warning("prefetch runs without leader election: run one replica only")
        self.elector = elector
        self.executor = Executor(jobs_api, labels_api, events, self.metrics, dry_run=dry_run)
        self._state: dict[str, _WorkloadState] = {}

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        start = getattr(self.inventory, "start", None)
        if callable(start):
            start()
        if self._owns_elector and isinstance(self.elector, LeaderElector):
            self.elector.start()

    def stop(self) -> None:
        if self._owns_elector and isinstance(self.elector, LeaderElector):
            self.elector.stop()
        stop = getattr(self.inventory, "stop", None)
        if callable(stop):
            stop()

    def is_leader(self) -> bool:
        return self.elector is None or self.elector.is_leader()

    # -- one tick --------------------------------------------------------------------------------

    def reconcile(
        self,
        workload: WorkloadConfig,
        recommendation: Recommendation | None,
        forecast_replicas: float | None,
        now: float,
    ) -> ReconcileReport:
        """Plan and act for one workload (see the module docstring). Never raises for API
        trouble; returns what it did."""
        key = f"{workload.namespace}/{workload.name}"
        if not workload.prefetch.enabled or workload.image is None:
            return ReconcileReport(key, "disabled")
        if not self.is_leader():
            return ReconcileReport(key, "not-leader", detail="another replica holds the Lease")
        if not self.inventory.synced:
            return ReconcileReport(key, "not-synced", detail="node inventory not listed yet")
        try:
            return self._reconcile(key, workload, recommendation, forecast_replicas, now)
        except ExternalSystemError as exc:
            self.metrics.failures.labels(workload.namespace, workload.name, "api").inc()
            log.warning("prefetch %s: %s", key, exc)
            return ReconcileReport(key, "error", errors=(str(exc),))

    def _reconcile(
        self,
        key: str,
        workload: WorkloadConfig,
        recommendation: Recommendation | None,
        forecast_replicas: float | None,
        now: float,
    ) -> ReconcileReport:
        ns, name = workload.namespace, workload.name
        assert workload.image is not None
        state = self._state.setdefault(key, _WorkloadState())
        template = self._template(workload, state, now)
        if template is None:
            return ReconcileReport(key, "no-deployment", detail=f"no {workload.kind} {key}")
        try:
            image = parse_image_ref(workload.image)
        except ValueError as exc:
            return ReconcileReport(key, "error", errors=(f"workload {key}: image: {exc}",))

        # Jobs read back
        failed, errors = [], []
        pulling: list[str] = []
        current_hash = image_hash(workload.image)
        for outcome in self.executor.observe(ns, name):
            if outcome.image_ref and image_hash(outcome.image_ref) != current_hash:
                if outcome.state == "running":
                    self.executor.delete_job(ns, name, outcome.name)
                continue
            if outcome.state == "running":
                pulling.append(outcome.node)
                state.succeeded_at.pop(outcome.node, None)  # a new pull: its own success later
            elif outcome.state == "succeeded":
                first = state.succeeded_at.setdefault(outcome.node, now)
                if outcome.name not in state.seen_finished:
                    state.seen_finished.add(outcome.name)
                    self.metrics.jobs_finished.labels(ns, name, "succeeded").inc()
                if now - first >= self.label_grace_s:
                    # the label and status.images carry it now; a re-pull needs the name free
                    if self.executor.delete_job(ns, name, outcome.name) in ("deleted", "absent"):
                        state.seen_finished.discard(outcome.name)
            else:
                if outcome.name not in state.seen_finished:
                    state.seen_finished.add(outcome.name)
                    self.metrics.jobs_finished.labels(ns, name, "failed").inc()
                    failed.append(self.executor.report_failure(ns, name, outcome))
                    state.failed_until[outcome.node] = (
                        now + self.failure_backoff_s,
                        f"pull failed ({outcome.reason})",
                    )
                # gone: the same name (same node) may be reported again when it fails again
                if self.executor.delete_job(ns, name, outcome.name) in ("deleted", "absent"):
                    state.seen_finished.discard(outcome.name)
        for node in [n for n, (until, _) in state.failed_until.items() if until <= now]:
            del state.failed_until[node]
        fresh = sorted(n for n, t in state.succeeded_at.items() if now - t < self.label_grace_s)
        for node in [n for n, t in state.succeeded_at.items() if now - t >= 4 * self.label_grace_s]:
            del state.succeeded_at[node]

        inventory = self.inventory.snapshot()
        size = (
            int(workload.image_size_gb * 1e9)
            if workload.image_size_gb is not None
            else image_size_from_nodes(inventory.nodes, image)
        )
        try:
            placement = placement_from_pod_spec(template.pod_spec)
        except PlacementError as exc:
            return ReconcileReport(key, "error", errors=(f"Deployment {key}: {exc}",))
        gpus = pod_gpu_request(template.pod_spec) or workload.profile.tp
        on_node = replicas_per_node(inventory, ns, workload.selector)
        bound = sum(on_node.values())
        state.history.append((now, bound))
        while state.history and state.history[0][0] < now - 3600.0:
            state.history.popleft()
        rise = recent_rise(state.history, now, span_s=self.rise_span_s)
        k = template.pods_per_replica
        demand = (
            demand_from(  # in pods: a LeaderWorkerSet replica is a group of k pods
                None
                if recommendation.holds or recommendation.desired_replicas is None
                else recommendation.desired_replicas * k,
                _times(
                    forecast_replicas
                    if forecast_replicas is not None
                    else _metric(recommendation, FORECAST_METRIC),
                    k,
                ),
                _times(_metric(recommendation, LOAD_METRIC), k),
                bound,
                min_replicas=workload.min_replicas * k,
                max_replicas=workload.max_replicas * k,
                rise=rise,
            )
            if recommendation is not None
            else None
        )
        shape = WorkloadShape(placement, gpus, image, size)
        settings = planner_settings(workload)
        plan = plan_prefetch(
            demand if demand is not None else Demand(bound, bound),
            shape,
            inventory,
            settings=settings,
            replicas_on_node=on_node,
            pulling=pulling,
            known_warm=fresh,
            exclude={n: why for n, (_, why) in state.failed_until.items()},
        )
        status: str = plan.status
        created: tuple[str, ...] = ()
        if demand is None:
            status = "hold"
            log.info("prefetch %s: recommendation holds (fail static): no new pulls", key)
        else:
            done = self.executor.create_jobs(
                plan,
                namespace=ns,
                workload_name=name,
                image_ref=workload.image,
                template=template,
                settings=job_settings(workload),
            )
            created, errors = done.created, list(done.errors)
            for pull in plan.pulls:
                state.succeeded_at.pop(pull.node, None)
        self.metrics.plans.labels(ns, name, status).inc()
        if status == "no-eligible-node":
            if state.last_status != status or now - state.last_event_at >= self.event_repeat_s:
                self.executor.event(ns, name, "PrefetchNoEligibleNode", plan.summary)
                state.last_event_at = now
        state.last_status = status
        labels = self.executor.sync_labels(
            inventory,
            namespace=ns,
            workload_name=name,
            image=image,
            size_bytes=size,
            recently_pulled=fresh,
        )
        errors.extend(labels.errors)
        self.metrics.pulling.labels(ns, name).set(len(plan.pulling_nodes) + len(created))
        self.metrics.warm_nodes.labels(ns, name).set(len(plan.warm_nodes))
        self.metrics.warm_room.labels(ns, name).set(plan.warm_room_replicas)
        self.metrics.target_room.labels(ns, name).set(plan.target_room_replicas)
        if plan.pulls or status in ("no-eligible-node", "no-image-size"):
            log.info("prefetch %s: %s: %s", key, status, plan.summary)
        return ReconcileReport(
            key,
            status,
            plan=plan,
            created=created,
            labelled=labels.labelled,
            unlabelled=labels.unlabelled,
            failed=tuple(failed),
            errors=tuple(errors),
            detail=plan.summary,
        )

    def _template(
        self, workload: WorkloadConfig, state: _WorkloadState, now: float
    ) -> JobTemplate | None:
        if state.template is not None and now - state.template_read_at < self.deployment_refresh_s:
            return state.template
        if self._deployments is None:
            raise ValueError("Prefetcher needs an api_client or a deployments reader")
        found: Mapping[str, Any] | None = self._deployments.read_workload(
            workload.namespace, workload.name, workload.kind
        )
        state.template = template_from_workload(found) if found is not None else None
        state.template_read_at = now
        return state.template

"""The prefetch executor: applies a plan with Jobs that pull the modelcar, and keeps the warm label.

The Jobs themselves are pure manifests, built in :mod:`cache.prefetch_jobs`; this module sends
them through the injected :class:`JobApi` and reads their outcomes back.

**The warm label** ``llm-autoscaler.io/warm-<hash>=true``, ``<hash>`` = the first 12 hex digits of
SHA-256 of the exact image reference string (:func:`image_hash`; ``deploy/`` prefers that label
with a preferred node affinity), is set when a Job succeeded or ``status.images`` lists the image,
and removed when ``status.images`` proves the image is gone (kubelet GC), never while the list is
full (the 50-image cap) or within ``label_grace_s`` of a success (the list lags).

:class:`Executor` applies a :class:`~cache.planner.Plan` and keeps the labels in sync; it never
decides how many nodes (the planner does) and never decides replica counts (DESIGN.md). In
dry-run mode it reads (Jobs, nodes) and logs what it would create, delete or label, and writes
nothing: no Job, no label, no Event.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge

from cache.inventory import ImageRef, Inventory, Presence, image_presence
from cache.planner import Plan
from cache.prefetch_jobs import (
    _WORKLOAD_LABELS,
    LABEL_PREFETCH,
    LABEL_WORKLOAD,
    JobOutcome,
    JobSettings,
    JobTemplate,
    job_state,
    prefetch_job,
    warm_label_key,
)

__all__ = [
    "Executor",
    "JobApi",
    "LabelApi",
    "PrefetchMetrics",
]

log = logging.getLogger(__name__)

DEFAULT_JOB_SETTINGS: Final = JobSettings()
"""The Job limits of docs/prefetch.md (one shared, immutable instance)."""

# -- the I/O it needs, as Protocols -------------------------------------------------------------


class JobApi(Protocol):
    """:class:`autoscaler.clients.kube.jobs.JobClient` live."""

    def create(self, namespace: str, manifest: Mapping[str, Any]) -> bool: ...

    def list(self, namespace: str, labels: Mapping[str, str]) -> list[dict[str, Any]]: ...

    def delete(self, namespace: str, name: str) -> bool: ...


class LabelApi(Protocol):
    """:class:`autoscaler.clients.kube.nodes.NodeClient` live."""

    def set_labels(self, node: str, labels: Mapping[str, str | None]) -> None: ...


class EventApi(Protocol):
    """:class:`autoscaler.clients.kube.workloads.EventRecorder` live."""

    def record(
        self,
        namespace: str,
        workload_name: str,
        reason: str,
        message: str,
        type: Literal["Normal", "Warning"] = "Normal",
    ) -> object: ...


# -- metrics -----------------------------------------------------------------------------------


class PrefetchMetrics:
    """The prefetcher's metrics, on the registry the caller hands in."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.jobs_created = Counter(
            "llm_autoscaler_prefetch_jobs_created",
            "Prefetch Jobs created (one per image and node).",
            _WORKLOAD_LABELS,
            registry=registry,
        )
        self.jobs_finished = Counter(
            "llm_autoscaler_prefetch_jobs_finished",
            "Prefetch Jobs seen finished, by outcome (succeeded, failed).",
            [*_WORKLOAD_LABELS, "outcome"],
            registry=registry,
        )
        self.failures = Counter(
            "llm_autoscaler_prefetch_failures",
            "Prefetch failures by reason (Job DeadlineExceeded/BackoffLimitExceeded, API errors).",
            [*_WORKLOAD_LABELS, "reason"],
            registry=registry,
        )
        self.plans = Counter(
            "llm_autoscaler_prefetch_plans",
            "Prefetch plans by status (pull, enough, capped, no-eligible-node, no-image-size).",
            [*_WORKLOAD_LABELS, "status"],
            registry=registry,
        )
        self.pulling = Gauge(
            "llm_autoscaler_prefetch_pulls_in_flight",
            "Prefetch Jobs running now.",
            _WORKLOAD_LABELS,
            registry=registry,
        )
        self.warm_nodes = Gauge(
            "llm_autoscaler_prefetch_warm_nodes",
            "Eligible nodes holding the workload's image.",
            _WORKLOAD_LABELS,
            registry=registry,
        )
        self.warm_room = Gauge(
            "llm_autoscaler_prefetch_warm_room_replicas",
            "Replicas that would start warm now (free GPUs on warm or pulling nodes).",
            _WORKLOAD_LABELS,
            registry=registry,
        )
        self.target_room = Gauge(
            "llm_autoscaler_prefetch_target_room_replicas",
            "Warm room the planner aims for (forecast need beyond current, plus spare).",
            _WORKLOAD_LABELS,
            registry=registry,
        )
        self.labels_changed = Counter(
            "llm_autoscaler_prefetch_node_labels_changed",
            "Warm-node label writes, by action (set, removed).",
            [*_WORKLOAD_LABELS, "action"],
            registry=registry,
        )


# -- the executor ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExecutionReport:
    """What one :meth:`Executor.apply` did (or, in dry-run, would have done)."""

    created: tuple[str, ...] = ()
    already_there: tuple[str, ...] = ()
    labelled: tuple[str, ...] = ()
    unlabelled: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()
    events: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()


class Executor:
    """Turns plans into Jobs, Job outcomes into labels and Events. One per service.

    Never raises for API trouble: each failed call is logged, counted
    (``llm_autoscaler_prefetch_failures{reason="api"}``) and reported, and the next tick retries.
    """

    def __init__(
        self,
        jobs: JobApi,
        labels: LabelApi,
        events: EventApi | None,
        metrics: PrefetchMetrics,
        *,
        settings: JobSettings = DEFAULT_JOB_SETTINGS,
        dry_run: bool = False,
    ) -> None:
        self.jobs = jobs
        self.labels = labels
        self.events = events
        self.metrics = metrics
        self.settings = settings
        self.dry_run = dry_run

    # -- Jobs ------------------------------------------------------------------------------------

    def observe(self, namespace: str, workload_name: str) -> list[JobOutcome]:
        """The workload's prefetch Jobs and their states (raises KubernetesError on failure)."""
        selector = {LABEL_PREFETCH: "true", LABEL_WORKLOAD: workload_name[:63].rstrip("-_.")}
        out = []
        for job in self.jobs.list(namespace, selector):
            outcome = job_state(job)
            if outcome is not None:
                out.append(outcome)
        return sorted(out, key=lambda o: (o.node, o.name))

    def create_jobs(
        self,
        plan: Plan,
        *,
        namespace: str,
        workload_name: str,
        image_ref: str,
        template: JobTemplate,
        settings: JobSettings | None = None,
    ) -> ExecutionReport:
        """Create the plan's Jobs (dry-run: log them); existing ones count as already there."""
        created, there, errors = [], [], []
        for pull in plan.pulls:
            manifest = prefetch_job(
                namespace=namespace,
                workload_name=workload_name,
                image_ref=image_ref,
                node=pull.node,
                template=template,
                settings=settings or self.settings,
            )
            name = manifest["metadata"]["name"]
            if self.dry_run:
                log.info(
                    "dry-run: would create Job %s/%s pulling %s on %s",
                    namespace,
                    name,
                    image_ref,
                    pull.node,
                )
                created.append(name)
                continue
            try:
                made = self.jobs.create(namespace, manifest)
            except Exception as exc:
                errors.append(self._api_failed(namespace, workload_name, str(exc)))
                continue
            if made:
                self.metrics.jobs_created.labels(namespace, workload_name).inc()
                log.info(
                    "created Job %s/%s pulling %s on %s", namespace, name, image_ref, pull.node
                )
                created.append(name)
            else:
                there.append(name)
        return ExecutionReport(
            created=tuple(created), already_there=tuple(there), errors=tuple(errors)
        )

    def delete_job(
        self, namespace: str, workload_name: str, name: str
    ) -> Literal["deleted", "absent", "failed", "dry-run"]:
        """Delete a Job; says whether it is gone now (``deleted``/``absent``) or not."""
        if self.dry_run:
            log.info("dry-run: would delete Job %s/%s", namespace, name)
            return "dry-run"
        try:
            return "deleted" if self.jobs.delete(namespace, name) else "absent"
        except Exception as exc:
            self._api_failed(namespace, workload_name, str(exc))
            return "failed"

    def report_failure(self, namespace: str, workload_name: str, outcome: JobOutcome) -> str:
        """Count a failed Job and say so as a Warning Event on the workload."""
        self.metrics.failures.labels(namespace, workload_name, outcome.reason or "Failed").inc()
        message = (
            f"prefetch of {outcome.image_ref or 'the model image'} on node {outcome.node} failed "
            f"({outcome.reason}{': ' + outcome.message if outcome.message else ''}); "
            "the node is skipped for a while"
        )
        self.event(namespace, workload_name, "PrefetchFailed", message)
        return message

    def event(self, namespace: str, workload_name: str, reason: str, message: str) -> None:
        if self.dry_run:
            log.info(
                "dry-run: would record Event %s on %s/%s: %s",
                reason,
                namespace,
                workload_name,
                message,
            )
            return
        log.warning("%s/%s: %s: %s", namespace, workload_name, reason, message)
        if self.events is not None:
            self.events.record(namespace, workload_name, reason, message, "Warning")

    # -- labels ----------------------------------------------------------------------------------

    def sync_labels(
        self,
        inventory: Inventory,
        *,
        namespace: str,
        workload_name: str,
        image: ImageRef,
        size_bytes: int | None,
        recently_pulled: Sequence[str],
    ) -> ExecutionReport:
        """Label nodes holding the image, unlabel nodes that provably lost it."""
        key = warm_label_key(image.text)
        fresh = set(recently_pulled)
        add, remove, errors = [], [], []
        for node in inventory.nodes:
            has_label = node.labels.get(key) == "true"
            presence = image_presence(node, image, size_bytes)
            holds = presence is Presence.PRESENT or node.name in fresh
            if holds and not has_label:
                add.append(node.name)
            elif has_label and presence is Presence.ABSENT and node.name not in fresh:
                remove.append(node.name)
        done_add: list[str] = []
        done_remove: list[str] = []
        for names, value, action, done in (
            (add, "true", "set", done_add),
            (remove, None, "removed", done_remove),
        ):
            for name in names:
                if self.dry_run:
                    log.info("dry-run: would %s label %s on node %s", action, key, name)
                    done.append(name)
                    continue
                try:
                    self.labels.set_labels(name, {key: value})
                except Exception as exc:
                    errors.append(self._api_failed(namespace, workload_name, str(exc)))
                    continue
                self.metrics.labels_changed.labels(namespace, workload_name, action).inc()
                log.info("%s label %s on node %s", action, key, name)
                done.append(name)
        return ExecutionReport(
            labelled=tuple(done_add), unlabelled=tuple(done_remove), errors=tuple(errors)
        )

    def _api_failed(self, namespace: str, workload_name: str, problem: str) -> str:
        self.metrics.failures.labels(namespace, workload_name, "api").inc()
        log.warning("prefetch %s/%s: %s", namespace, workload_name, problem)
        return problem

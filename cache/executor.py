"""The prefetch executor: Jobs that pull the modelcar onto chosen nodes, and the warm-node label.

**Manifests are pure functions** (:func:`prefetch_job`, :func:`warm_label_key`, :func:`job_name`),
separate from the calls that send them (STYLE.md, lesson 11). One short-lived Job per
(workload, image, node):

- in the **workload's namespace**: it needs the workload's pull secrets (copied from the pod
  template, with its service account, whose ``imagePullSecrets`` apply too), and an owner
  reference cannot cross namespaces. The owner is the workload's Deployment or StatefulSet
  (``controller: false``, ``blockOwnerDeletion: false``, so no ``deployments/finalizers``
  permission is needed), so deleting the workload deletes its prefetch Jobs;
- **pinned with required node affinity on ``metadata.name``** (``matchFields``, what the
  DaemonSet controller uses), not ``spec.nodeName``. ``nodeName`` skips the scheduler: the pod
  would ignore ``NoSchedule`` taints, bypass scheduling gates and quota-aware admission, and
  fail on the kubelet (``OutOfcpu``) instead of waiting when the node is momentarily full. With
  affinity the scheduler places it (only there) and honours the workload's tolerations, which the
  Job copies. ``kubernetes.io/hostname`` would be the other choice, but that label may differ
  from the node name (some clouds), and the node name is what the planner knows;
- **the exact image reference** of the workload (its digest when configured) with
  ``imagePullPolicy: IfNotPresent``: the kubelet pulls it once and the workload's pods, with the
  same reference and policy, find it;
- the container runs ``sh -c true`` and exits: the modelcar's base image (busybox, ubi-micro)
  has a shell (PREFETCH.md §1). For an image **without a shell** (``image_has_shell: false``),
  an init container from a small static helper image copies its ``busybox`` binary into an
  ``emptyDir`` as ``true``, and the main container runs that: busybox picks the applet from its
  file name, so no file of the model image is executed (kube-fledged copies ``echo`` the same
  way, PREFETCH.md §5);
- ``backoffLimit: 0`` (a failed pull is a pod stuck in ``ImagePullBackOff``, which retries by
  itself until ``activeDeadlineSeconds``; a retry by the Job would only repeat a broken start),
  ``activeDeadlineSeconds`` (default 1 h: 100+ GB pulls take that long, PREFETCH.md §7),
  ``ttlSecondsAfterFinished`` (default 10 min: the executor reads the outcome within a tick or
  two, and the node label carries it on);
- tiny requests (10m CPU, 16Mi), no GPU, non-root (UID 65534), no service-account token, all
  capabilities dropped, ``RuntimeDefault`` seccomp, so it passes the ``restricted`` Pod Security
  Standard;
- labels that find it again (``app.kubernetes.io/managed-by``, ``llm-autoscaler.io/prefetch``,
  ``llm-autoscaler.io/workload``, ``llm-autoscaler.io/image``) and annotations with the node and
  the full image reference (label values cannot hold either).

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

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge

from cache.inventory import ImageRef, Inventory, Presence, image_presence
from cache.planner import Plan

__all__ = [
    "ANNOTATION_IMAGE",
    "ANNOTATION_NODE",
    "LABEL_IMAGE",
    "LABEL_MANAGED_BY",
    "LABEL_PREFETCH",
    "LABEL_WORKLOAD",
    "WARM_LABEL_PREFIX",
    "Executor",
    "JobApi",
    "JobOutcome",
    "JobSettings",
    "JobState",
    "JobTemplate",
    "LabelApi",
    "PrefetchMetrics",
    "image_hash",
    "job_name",
    "job_state",
    "prefetch_job",
    "template_from_workload",
    "warm_label_key",
]

log = logging.getLogger(__name__)

WARM_LABEL_PREFIX: Final = "llm-autoscaler.io/warm-"
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
MANAGER: Final = "llm-autoscaler"
LABEL_PREFETCH: Final = "llm-autoscaler.io/prefetch"
LABEL_WORKLOAD: Final = "llm-autoscaler.io/workload"
LABEL_IMAGE: Final = "llm-autoscaler.io/image"
ANNOTATION_NODE: Final = "llm-autoscaler.io/node"
ANNOTATION_IMAGE: Final = "llm-autoscaler.io/image"
HELPER_DIR: Final = "/llm-autoscaler-prefetch"
_WORKLOAD_LABELS: Final = ("namespace", "workload")


def image_hash(image_ref: str) -> str:
    """First 12 hex digits of SHA-256 of the exact reference string (the warm label's suffix)."""
    return hashlib.sha256(image_ref.encode()).hexdigest()[:12]


def warm_label_key(image_ref: str) -> str:
    """``llm-autoscaler.io/warm-<hash>``: set to ``"true"`` on nodes holding ``image_ref``."""
    return WARM_LABEL_PREFIX + image_hash(image_ref)


def job_name(workload_name: str, image_ref: str, node: str) -> str:
    """A stable, valid Job name per (workload, image, node): the idempotency key.

    ``pf-<workload, cut to 30>-<10 hex of SHA-256(image, node)>``, at most 44 characters, so the
    ``job-name`` label on its pod (at most 63) and the pod name stay valid.
    """
    digest = hashlib.sha256(f"{image_ref}\n{node}".encode()).hexdigest()[:10]
    head = workload_name[:30].rstrip("-.")
    return f"pf-{head}-{digest}"


# -- what a Job copies from the workload ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobTemplate:
    """The parts of the workload (Deployment or StatefulSet) a prefetch Job carries over."""

    owner_name: str
    owner_uid: str | None = None
    owner_kind: str = "Deployment"
    image_pull_secrets: tuple[str, ...] = ()
    service_account: str | None = None
    tolerations: tuple[Mapping[str, Any], ...] = ()
    pod_spec: Mapping[str, Any] = field(default_factory=dict)
    """The workload's whole pod template spec (the planner reads placement from it)."""


def template_from_workload(workload: Mapping[str, Any]) -> JobTemplate:
    """The :class:`JobTemplate` of a raw ``apps/v1`` Deployment or StatefulSet dict (both keep
    their pods' template under ``spec.template``)."""
    metadata = workload.get("metadata") or {}
    spec = ((workload.get("spec") or {}).get("template") or {}).get("spec") or {}
    kind = workload.get("kind")
    secrets = tuple(
        str(s["name"])
        for s in spec.get("imagePullSecrets") or ()
        if isinstance(s, Mapping) and isinstance(s.get("name"), str)
    )
    account = spec.get("serviceAccountName") or spec.get("serviceAccount")
    uid = metadata.get("uid")
    return JobTemplate(
        owner_name=str(metadata.get("name") or ""),
        owner_uid=uid if isinstance(uid, str) and uid else None,
        owner_kind=kind if kind == "StatefulSet" else "Deployment",
        image_pull_secrets=secrets,
        service_account=account if isinstance(account, str) and account else None,
        tolerations=tuple(t for t in spec.get("tolerations") or () if isinstance(t, Mapping)),
        pod_spec=spec,
    )


@dataclass(frozen=True, slots=True)
class JobSettings:
    active_deadline_s: int = 3600
    ttl_after_finished_s: int = 600
    image_has_shell: bool = True
    helper_image: str = "busybox:1.36.1-musl"
    """A static busybox, for images without a shell (copied in by an init container)."""


def prefetch_job(
    *,
    namespace: str,
    workload_name: str,
    image_ref: str,
    node: str,
    template: JobTemplate,
    settings: JobSettings,
) -> dict[str, Any]:
    """The ``batch/v1`` Job that pulls ``image_ref`` onto ``node`` (see the module docstring)."""
    labels = {
        LABEL_MANAGED_BY: MANAGER,
        LABEL_PREFETCH: "true",
        LABEL_WORKLOAD: workload_name[:63].rstrip("-_."),
        LABEL_IMAGE: image_hash(image_ref),
    }
    annotations = {ANNOTATION_NODE: node, ANNOTATION_IMAGE: image_ref}
    container_security = {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    resources = {
        "requests": {"cpu": "10m", "memory": "16Mi"},
        "limits": {"cpu": "100m", "memory": "16Mi"},
    }
    pull: dict[str, Any] = {
        "name": "pull",
        "image": image_ref,
        "imagePullPolicy": "IfNotPresent",
        "command": ["sh", "-c", "true"],
        "resources": resources,
        "securityContext": container_security,
    }
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchFields": [
                                {"key": "metadata.name", "operator": "In", "values": [node]}
                            ]
                        }
                    ]
                }
            }
        },
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 5,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 65534,
            "runAsGroup": 65534,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [pull],
    }
    if not settings.image_has_shell:
        pull["command"] = [f"{HELPER_DIR}/true"]
        pull["volumeMounts"] = [{"name": "helper", "mountPath": HELPER_DIR, "readOnly": True}]
        pod_spec["initContainers"] = [
            {
                "name": "helper",
                "image": settings.helper_image,
                "imagePullPolicy": "IfNotPresent",
                "command": ["cp", "/bin/busybox", f"{HELPER_DIR}/true"],
                "resources": resources,
                "securityContext": container_security,
                "volumeMounts": [{"name": "helper", "mountPath": HELPER_DIR}],
            }
        ]
        pod_spec["volumes"] = [{"name": "helper", "emptyDir": {"sizeLimit": "16Mi"}}]
    if template.tolerations:
        pod_spec["tolerations"] = [dict(t) for t in template.tolerations]
    if template.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": s} for s in template.image_pull_secrets]
    if template.service_account:
        pod_spec["serviceAccountName"] = template.service_account
    metadata: dict[str, Any] = {
        "name": job_name(workload_name, image_ref, node),
        "namespace": namespace,
        "labels": labels,
        "annotations": annotations,
    }
    if template.owner_uid is not None:
        metadata["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": template.owner_kind,
                "name": template.owner_name or workload_name,
                "uid": template.owner_uid,
                "controller": False,
                "blockOwnerDeletion": False,
            }
        ]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": settings.active_deadline_s,
            "ttlSecondsAfterFinished": settings.ttl_after_finished_s,
            "template": {"metadata": {"labels": dict(labels)}, "spec": pod_spec},
        },
    }


# -- reading Jobs back -------------------------------------------------------------------------

JobState = Literal["running", "succeeded", "failed"]


@dataclass(frozen=True, slots=True)
class JobOutcome:
    name: str
    node: str
    image_ref: str
    state: JobState
    reason: str = ""
    message: str = ""


def job_state(job: Mapping[str, Any]) -> JobOutcome | None:
    """What a prefetch Job (raw dict) says; None when it is not one of ours (no node)."""
    metadata = job.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    node = annotations.get(ANNOTATION_NODE)
    name = metadata.get("name")
    if not isinstance(node, str) or not isinstance(name, str):
        return None
    image_ref = str(annotations.get(ANNOTATION_IMAGE) or "")
    status = job.get("status") or {}
    for cond in status.get("conditions") or ():
        if not isinstance(cond, Mapping) or cond.get("status") != "True":
            continue
        if cond.get("type") == "Complete":
            return JobOutcome(name, node, image_ref, "succeeded")
        if cond.get("type") == "Failed":
            return JobOutcome(
                name,
                node,
                image_ref,
                "failed",
                str(cond.get("reason") or "Failed"),
                str(cond.get("message") or ""),
            )
    succeeded = status.get("succeeded")
    if isinstance(succeeded, int) and succeeded >= 1:
        return JobOutcome(name, node, image_ref, "succeeded")
    failed = status.get("failed")
    if isinstance(failed, int) and failed >= 1:
        return JobOutcome(name, node, image_ref, "failed", "BackoffLimitExceeded", "")
    return JobOutcome(name, node, image_ref, "running")


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
        settings: JobSettings = JobSettings(),
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

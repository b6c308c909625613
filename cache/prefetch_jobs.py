"""The prefetch Job manifests and how to read a Job back: pure functions, no I/O.

**Manifests are pure functions** (:func:`prefetch_job`, :func:`warm_label_key`, :func:`job_name`),
separate from the calls that send them (:mod:`cache.executor`; STYLE.md, lesson 11). One short-lived
Job per (workload, image, node):

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
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

__all__ = [
    "ANNOTATION_IMAGE",
    "ANNOTATION_NODE",
    "HELPER_DIR",
    "JobOutcome",
    "JobSettings",
    "JobState",
    "JobTemplate",
    "LABEL_IMAGE",
    "LABEL_MANAGED_BY",
    "LABEL_PREFETCH",
    "LABEL_WORKLOAD",
    "MANAGER",
    "WARM_LABEL_PREFIX",
    "image_hash",
    "job_name",
    "job_state",
    "prefetch_job",
    "template_from_workload",
    "warm_label_key",
]


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
    pods_per_replica: int = 1
    """Pods one replica runs: a LeaderWorkerSet group's size (every pod of a group lands on
    nodes that need the image), 1 otherwise."""


_OWNER_API = {"LeaderWorkerSet": "leaderworkerset.x-k8s.io/v1"}
"""``apiVersion`` of an owner kind that is not ``apps/v1``."""


def template_from_workload(workload: Mapping[str, Any]) -> JobTemplate:
    """The :class:`JobTemplate` of a raw ``apps/v1`` Deployment or StatefulSet dict (both keep
    their pods' template under ``spec.template``), or of a LeaderWorkerSet (its workers' template
    ``spec.leaderWorkerTemplate.workerTemplate``, which the leader also runs unless it has a
    ``leaderTemplate``; one replica is ``size`` pods)."""
    metadata = workload.get("metadata") or {}
    kind = workload.get("kind")
    pods = 1
    if kind == "LeaderWorkerSet":
        lws = (workload.get("spec") or {}).get("leaderWorkerTemplate") or {}
        spec = (lws.get("workerTemplate") or {}).get("spec") or {}
        size = lws.get("size", 1)
        pods = size if isinstance(size, int) and not isinstance(size, bool) and size > 0 else 1
    else:
        spec = ((workload.get("spec") or {}).get("template") or {}).get("spec") or {}
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
        owner_kind=kind if kind in ("StatefulSet", "LeaderWorkerSet") else "Deployment",
        image_pull_secrets=secrets,
        service_account=account if isinstance(account, str) and account else None,
        tolerations=tuple(t for t in spec.get("tolerations") or () if isinstance(t, Mapping)),
        pod_spec=spec,
        pods_per_replica=pods,
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
                "apiVersion": _OWNER_API.get(template.owner_kind, "apps/v1"),
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

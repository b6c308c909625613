"""Prefetch against a Kubernetes API emulator, over the real ``kubernetes`` client and HTTP.

The server is kmock's ``KubernetesEmulator`` (an in-memory API server on 127.0.0.1, ephemeral
port), run on its own event loop in a thread because the ``kubernetes`` client is synchronous.
:class:`ApiServer` adds what the real API server does and these tests depend on: ``uid`` and
``resourceVersion`` on every write, and ``PUT`` (replace) refused with 409 when the
``resourceVersion`` sent is not the current one, which is what leader election relies on.

Job and node *status* are written by the tests, standing in for the Job controller and the
kubelet (the emulator runs no controllers).
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import aiohttp.web
import pytest
from kmock import KubernetesEmulator, KubernetesError, Server
from kubernetes import client
from prometheus_client import CollectorRegistry

from autoscaler.clients.kube import build_api_client
from autoscaler.clients.kube.jobs import JobClient
from autoscaler.clients.kube.leases import LeaseClient, LeaseConflict, LeaseRecord
from autoscaler.clients.kube.nodes import NodeClient
from autoscaler.config import PrefetchConfig, WorkloadConfig
from autoscaler.core.recommendation import Recommendation, hold
from cache.leader import LeaderElector
from cache.prefetch_jobs import image_hash, job_name, warm_label_key
from cache.prefetcher import Prefetcher
from cache.watched_inventory import WatchedInventory

NS = "llm"
NAME = "llama-70b"
IMAGE = "registry.example.com/models/llama-2-70b@sha256:" + "3f" * 32
GB = 10**9
WARM = warm_label_key(IMAGE)


# -- the emulated API server ------------------------------------------------------------------


class ApiServer(KubernetesEmulator):
    """kmock's emulator plus uid/resourceVersion stamping and PUT with optimistic concurrency."""

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self._rv = itertools.count(1)

    async def _handle(self, request: Any) -> aiohttp.web.StreamResponse:
        if request.resource is not None and isinstance(request.data, dict):
            meta = request.data.setdefault("metadata", {})
            if request.method == "PUT" and request.name is not None:
                return await self._replace(request)
            if request.method in ("POST", "PATCH"):
                if request.method == "POST":
                    meta.setdefault("uid", str(uuid.uuid4()))
                    meta.setdefault("creationTimestamp", "2026-01-01T00:00:00Z")
                meta["resourceVersion"] = str(next(self._rv))
        response: aiohttp.web.StreamResponse = await super()._handle(request)
        return response

    async def _replace(self, request: Any) -> aiohttp.web.StreamResponse:
        key = (request.resource, request.namespace, request.name)
        async with self._lock:
            if key not in self._objects or self._objects[key].deleted:
                raise KubernetesError(status=404, reason="NotFound", message="not found")
            current = self._objects[key].raw
            sent = request.data["metadata"].get("resourceVersion")
            have = current.get("metadata", {}).get("resourceVersion")
            if sent is not None and sent != have:
                raise KubernetesError(
                    status=409,
                    reason="Conflict",
                    message="the object has been modified; please apply your changes to the "
                    "latest version and try again",
                )
            new = copy.deepcopy(request.data)
            for field in ("uid", "creationTimestamp"):
                if field in current.get("metadata", {}):
                    new["metadata"][field] = current["metadata"][field]
            new["metadata"]["resourceVersion"] = str(next(self._rv))
            self._objects[key].create(new)
            await self._buses[request.resource].put({"type": "MODIFIED", "object": new})
        return aiohttp.web.json_response(new)


RESOURCES = (
    "v1/nodes",
    "v1/pods",
    "v1/events",
    "batch/v1/jobs",
    "apps/v1/deployments",
    "apps/v1/statefulsets",
    "coordination.k8s.io/v1/leases",
    "leaderworkerset.x-k8s.io/v1/leaderworkersets",
)


class Cluster:
    """The emulator on its own loop in a thread, and a ``kubernetes`` client pointed at it."""

    def __init__(self) -> None:
        self._ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)
        self.emulator: ApiServer
        self.url = ""

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._done = asyncio.Event()
        async with ApiServer() as emulator, Server(emulator) as server:
            for resource in RESOURCES:
                emulator.resources[resource] = {}
            self.emulator = emulator
            self.url = str(server.url).rstrip("/")
            self._ready.set()
            await self._done.wait()

    def __enter__(self) -> Cluster:
        self._thread.start()
        assert self._ready.wait(10), "the emulator did not start"
        self.api = build_api_client(host=self.url)
        self.core = client.CoreV1Api(self.api)
        self.batch = client.BatchV1Api(self.api)
        self.apps = client.AppsV1Api(self.api)
        return self

    def __exit__(self, *exc: object) -> None:
        self.api.close()
        self._loop.call_soon_threadsafe(self._done.set)
        self._thread.join(10)

    # -- what the tests write, standing in for controllers ----------------------------------------

    def writes(self) -> list[tuple[str, str]]:
        """(method, path) of every request that changed something."""
        return [
            (str(r.method), str(r.url.path))
            for r in list(self.emulator)
            if str(r.method) in ("POST", "PUT", "PATCH", "DELETE")
        ]

    def objects(self, resource: str, namespace: str | None = None) -> list[dict[str, Any]]:
        out = []
        for (res, ns, _), obj in list(self.emulator.objects.items()):
            if res == resource and (namespace is None or ns == namespace) and not obj.deleted:
                out.append(obj.raw)
        return out

    def add_node(self, name: str, **kwargs: Any) -> None:
        self.core.create_node(node_body(name, **kwargs))

    def set_node_images(self, name: str, images: list[tuple[str, float]]) -> None:
        self.core.patch_node_status(
            name,
            {"status": {"images": [{"names": [n], "sizeBytes": int(s * GB)} for n, s in images]}},
            _content_type="application/merge-patch+json",
        )

    def finish_job(self, name: str, *, failed: str | None = None) -> None:
        cond = (
            {"type": "Failed", "status": "True", "reason": failed, "message": "pull took too long"}
            if failed
            else {"type": "Complete", "status": "True"}
        )
        status = {"conditions": [cond], ("failed" if failed else "succeeded"): 1}
        self.batch.patch_namespaced_job_status(
            name, NS, {"status": status}, _content_type="application/merge-patch+json"
        )


def node_body(
    name: str,
    *,
    product: str = "NVIDIA-H100-80GB-HBM3",
    pool: str = "a3",
    taint: bool = True,
    gpus: int = 8,
    disk_gb: float = 2000,
    images: tuple[tuple[str, float], ...] = (),
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "nvidia.com/gpu.product": product,
                "cloud.google.com/gke-nodepool": pool,
                **(labels or {}),
            },
        },
        "spec": {
            "taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]
            if taint
            else []
        },
        "status": {
            "allocatable": {"nvidia.com/gpu": str(gpus), "ephemeral-storage": f"{disk_gb}G"},
            "capacity": {"nvidia.com/gpu": str(gpus), "ephemeral-storage": f"{disk_gb}G"},
            "conditions": [{"type": "Ready", "status": "True"}],
            "images": [{"names": [n], "sizeBytes": int(s * GB)} for n, s in images],
        },
    }


DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": NAME, "namespace": NS},
    "spec": {
        "selector": {"matchLabels": {"app": NAME}},
        "template": {
            "metadata": {"labels": {"app": NAME}},
            "spec": {
                "serviceAccountName": "llama",
                "imagePullSecrets": [{"name": "registry-creds"}],
                "affinity": {
                    "nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {
                            "nodeSelectorTerms": [
                                {
                                    "matchExpressions": [
                                        {
                                            "key": "nvidia.com/gpu.product",
                                            "operator": "In",
                                            "values": ["NVIDIA-H100-80GB-HBM3"],
                                        }
                                    ]
                                }
                            ]
                        }
                    }
                },
                "tolerations": [
                    {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
                ],
                "containers": [
                    {
                        "name": "vllm",
                        "image": "vllm/vllm-openai:v0.10.2",
                        "resources": {"limits": {"nvidia.com/gpu": "4"}},
                    }
                ],
            },
        },
    },
}


def workload(kind: str = "Deployment", **prefetch: Any) -> WorkloadConfig:
    return WorkloadConfig(
        namespace=NS,
        name=NAME,
        kind=kind,
        engine="vllm",
        selector={"app": NAME},
        max_replicas=16,
        image=IMAGE,
        image_size_gb=140,
        prefetch=PrefetchConfig(enabled=True, **{"max_concurrent_per_pool": 4, **prefetch}),
    )


def recommendation(desired: int, now: float = 0.0) -> Recommendation:
    return Recommendation(workload=f"{NS}/{NAME}", timestamp=now, desired_replicas=desired,
                          winner="forecast")  # fmt: skip


def add_replica(cluster: Cluster, pod: str, node: str) -> None:
    cluster.core.create_namespaced_pod(
        NS,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": pod, "namespace": NS, "labels": {"app": NAME}},
            "spec": {
                "nodeName": node,
                "containers": [
                    {"name": "vllm", "image": "x", "resources": {"limits": {"nvidia.com/gpu": "4"}}}
                ],
            },
            "status": {"phase": "Running"},
        },
    )


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    with Cluster() as running:
        yield running


def make_prefetcher(
    cluster: Cluster, *, dry_run: bool = False, elector: Any = None
) -> tuple[Prefetcher, WatchedInventory, CollectorRegistry]:
    registry = CollectorRegistry()
    inventory = WatchedInventory(NodeClient(cluster.api))
    prefetcher = Prefetcher(
        cluster.api,
        registry,
        dry_run,
        inventory=inventory,
        elector=elector,
        label_grace_s=300.0,
        failure_backoff_s=600.0,
    )
    return prefetcher, inventory, registry


def jobs_in(cluster: Cluster) -> dict[str, dict[str, Any]]:
    return {j["metadata"]["annotations"]["llm-autoscaler.io/node"]: j for j in cluster.objects(
        "batch/v1/jobs", NS)}  # fmt: skip


def standard_cluster(cluster: Cluster) -> None:
    """n1 runs one replica (and so holds the image); n2, n3 are empty H100 nodes; a1 is an
    A100 node the workload may not use; n4 is full of another team's pods."""
    cluster.apps.create_namespaced_deployment(NS, copy.deepcopy(DEPLOYMENT))
    cluster.add_node("n1", images=((IMAGE, 140),))
    cluster.add_node("n2")
    cluster.add_node("n3")
    cluster.add_node("n4")
    cluster.add_node("a1", product="NVIDIA-A100-SXM4-80GB")
    add_replica(cluster, "llama-0", "n1")
    cluster.core.create_namespaced_pod(
        "other",
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "train", "namespace": "other"},
            "spec": {
                "nodeName": "n4",
                "containers": [
                    {"name": "t", "image": "t", "resources": {"limits": {"nvidia.com/gpu": "8"}}}
                ],
            },
            "status": {"phase": "Running"},
        },
    )


# -- Jobs --------------------------------------------------------------------------------------


def test_jobs_are_created_with_the_right_spec_on_the_right_nodes_once(cluster):
    standard_cluster(cluster)
    prefetcher, inventory, registry = make_prefetcher(cluster)
    inventory.resync()
    # need 4 replicas, have 1: room 3 + 1 spare = 4; n1 has room for 1, n2 and n3 for 2 each
    report = prefetcher.reconcile(workload(), recommendation(4), 3.2, now=1000.0)
    assert report.status == "pull", report
    jobs = jobs_in(cluster)
    assert sorted(jobs) == ["n2", "n3"]  # not the A100 node, not the full one, not n1
    deployment_uid = cluster.objects("apps/v1/deployments", NS)[0]["metadata"]["uid"]
    job = jobs["n2"]
    assert job["metadata"]["name"] == job_name(NAME, IMAGE, "n2")
    assert job["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": NAME,
            "uid": deployment_uid,
            "controller": False,
            "blockOwnerDeletion": False,
        }
    ]
    assert job["metadata"]["labels"]["llm-autoscaler.io/image"] == image_hash(IMAGE)
    spec = job["spec"]
    assert spec["backoffLimit"] == 0
    assert spec["activeDeadlineSeconds"] == 3600
    assert spec["ttlSecondsAfterFinished"] == 600
    pod = spec["template"]["spec"]
    assert pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] == {
        "nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}
        ]
    }
    assert pod["restartPolicy"] == "Never"
    assert pod["imagePullSecrets"] == [{"name": "registry-creds"}]
    assert pod["serviceAccountName"] == "llama"
    assert pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    (container,) = pod["containers"]
    assert container["image"] == IMAGE
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["command"] == ["sh", "-c", "true"]
    assert "nvidia.com/gpu" not in str(container["resources"])
    assert (
        registry.get_sample_value(
            "llm_autoscaler_prefetch_jobs_created_total", {"namespace": NS, "workload": NAME}
        )
        == 2
    )

    # the next tick sees them running: nothing new, nothing twice
    posts_before = [w for w in cluster.writes() if w[0] == "POST"]
    again = prefetcher.reconcile(workload(), recommendation(4), 3.2, now=1015.0)
    assert again.status == "enough" and again.created == ()
    assert sorted(again.plan.pulling_nodes) == ["n2", "n3"]
    assert [w for w in cluster.writes() if w[0] == "POST"] == posts_before
    assert len(cluster.objects("batch/v1/jobs", NS)) == 2


def test_a_statefulset_workload_owns_its_jobs_and_gets_the_events(cluster):
    standard_cluster(cluster)
    # the workload is a StatefulSet; the Deployment of the same name must not be used
    cluster.apps.delete_namespaced_deployment(NAME, NS)
    missing = Prefetcher(
        cluster.api, CollectorRegistry(), inventory=WatchedInventory(NodeClient(cluster.api))
    )
    missing.inventory.resync()
    gone = missing.reconcile(workload("StatefulSet"), recommendation(4), 3.2, now=0.0)
    assert gone.status == "no-deployment" and "no StatefulSet llm/llama" in gone.detail
    sts = copy.deepcopy(DEPLOYMENT)
    sts["kind"] = "StatefulSet"
    sts["spec"]["serviceName"] = NAME
    cluster.apps.create_namespaced_stateful_set(NS, sts)
    uid = cluster.objects("apps/v1/statefulsets", NS)[0]["metadata"]["uid"]
    prefetcher = Prefetcher(
        cluster.api,
        CollectorRegistry(),
        inventory=WatchedInventory(NodeClient(cluster.api)),
        workload_kinds={f"{NS}/{NAME}": "StatefulSet"},
    )
    prefetcher.inventory.resync()
    report = prefetcher.reconcile(workload("StatefulSet"), recommendation(4), 3.2, now=1000.0)
    assert report.status == "pull", report
    jobs = jobs_in(cluster)
    assert sorted(jobs) == ["n2", "n3"]  # the StatefulSet's template: H100 nodes only
    (owner,) = jobs["n2"]["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("StatefulSet", NAME, uid)
    assert jobs["n2"]["spec"]["template"]["spec"]["imagePullSecrets"] == [
        {"name": "registry-creds"}
    ]
    # a failed pull's Event lands on the StatefulSet
    cluster.finish_job(jobs["n2"]["metadata"]["name"], failed="DeadlineExceeded")
    prefetcher.reconcile(workload("StatefulSet"), recommendation(4), 3.2, now=1015.0)
    (event,) = events(cluster, "PrefetchFailed")
    assert event["involvedObject"]["kind"] == "StatefulSet"


def test_a_leaderworkerset_warms_a_node_for_every_pod_of_its_groups(cluster):
    """One LWS replica is a group of ``size`` pods, each on its own node: the plan counts pods
    (2 groups of 2 = 4 pods, as 4 Deployment replicas), the Job copies the workers' template
    and is owned by the LeaderWorkerSet (the LWS CRD's shape, kubernetes-sigs/lws)."""
    standard_cluster(cluster)
    cluster.apps.delete_namespaced_deployment(NAME, NS)
    lws_body = {
        "apiVersion": "leaderworkerset.x-k8s.io/v1",
        "kind": "LeaderWorkerSet",
        "metadata": {"name": NAME, "namespace": NS},
        "spec": {
            "replicas": 1,
            "leaderWorkerTemplate": {
                "size": 2,
                "workerTemplate": copy.deepcopy(DEPLOYMENT["spec"]["template"]),
            },
        },
    }
    client.CustomObjectsApi(cluster.api).create_namespaced_custom_object(
        "leaderworkerset.x-k8s.io", "v1", NS, "leaderworkersets", lws_body
    )
    uid = cluster.objects("leaderworkerset.x-k8s.io/v1/leaderworkersets", NS)[0]["metadata"]["uid"]
    prefetcher = Prefetcher(
        cluster.api,
        CollectorRegistry(),
        inventory=WatchedInventory(NodeClient(cluster.api)),
        workload_kinds={f"{NS}/{NAME}": "LeaderWorkerSet"},
    )
    prefetcher.inventory.resync()
    lws_workload = workload("LeaderWorkerSet")
    # 2 groups (1.6 forecast) x 2 pods: the Deployment test's 4 replicas (3.2 forecast)
    report = prefetcher.reconcile(lws_workload, recommendation(2), 1.6, now=1000.0)
    assert report.status == "pull", report
    assert report.plan is not None and report.plan.target_room_replicas == 4  # pods: 3 + 1
    jobs = jobs_in(cluster)
    assert sorted(jobs) == ["n2", "n3"]
    (owner,) = jobs["n2"]["metadata"]["ownerReferences"]
    assert (owner["apiVersion"], owner["kind"], owner["uid"]) == (
        "leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet", uid,
    )  # fmt: skip
    assert jobs["n2"]["spec"]["template"]["spec"]["imagePullSecrets"] == [
        {"name": "registry-creds"}
    ]
    # a failed pull's Event is about the LeaderWorkerSet
    cluster.finish_job(jobs["n2"]["metadata"]["name"], failed="DeadlineExceeded")
    prefetcher.reconcile(lws_workload, recommendation(2), 1.6, now=1015.0)
    (event,) = events(cluster, "PrefetchFailed")
    assert event["involvedObject"]["apiVersion"] == "leaderworkerset.x-k8s.io/v1"
    assert event["involvedObject"]["kind"] == "LeaderWorkerSet"


def test_an_image_without_a_shell_gets_the_static_helper(cluster):
    standard_cluster(cluster)
    prefetcher, inventory, _ = make_prefetcher(cluster)
    inventory.resync()
    prefetcher.reconcile(workload(image_has_shell=False), recommendation(2), None, now=0.0)
    pod = jobs_in(cluster)["n2"]["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    assert init["image"] == "busybox:1.36.1-musl"
    assert init["command"] == ["cp", "/bin/busybox", "/llm-autoscaler-prefetch/true"]
    assert pod["containers"][0]["command"] == ["/llm-autoscaler-prefetch/true"]
    assert pod["containers"][0]["image"] == IMAGE
    assert pod["volumes"] == [{"name": "helper", "emptyDir": {"sizeLimit": "16Mi"}}]


# -- labels ------------------------------------------------------------------------------------


def node_labels(cluster: Cluster, name: str) -> dict[str, str]:
    return cluster.core.read_node(name).metadata.labels or {}


def test_labels_are_set_when_the_pull_succeeds_and_cleared_when_the_image_is_gone(cluster):
    standard_cluster(cluster)
    prefetcher, inventory, _ = make_prefetcher(cluster)
    inventory.resync()
    first = prefetcher.reconcile(workload(), recommendation(2), None, now=0.0)
    # n1 holds the image per status.images: labelled at once
    assert first.labelled == ("n1",) and node_labels(cluster, "n1")[WARM] == "true"
    (pulled,) = jobs_in(cluster)  # need 2, have 1: one pull (+1 spare beyond n1's room)
    cluster.finish_job(job_name(NAME, IMAGE, pulled))
    inventory.resync()
    done = prefetcher.reconcile(workload(), recommendation(2), None, now=30.0)
    assert pulled in done.labelled and node_labels(cluster, pulled)[WARM] == "true"
    assert pulled in done.plan.warm_nodes  # before status.images shows it

    # the kubelet has not reported the image yet: the label stays within the grace period
    inventory.resync()
    kept = prefetcher.reconcile(workload(), recommendation(2), None, now=200.0)
    assert kept.unlabelled == () and node_labels(cluster, pulled)[WARM] == "true"
    # then it reports it, and later garbage-collects it: the label goes
    cluster.set_node_images(pulled, [(IMAGE, 140)])
    inventory.resync()
    assert prefetcher.reconcile(workload(), recommendation(2), None, now=400.0).unlabelled == ()
    cluster.set_node_images(pulled, [("docker.io/library/busybox:1.36", 0.002)])
    inventory.resync()
    gone = prefetcher.reconcile(workload(), recommendation(1), None, now=500.0)
    assert gone.unlabelled == (pulled,)
    assert WARM not in node_labels(cluster, pulled)


def test_a_full_image_list_never_clears_a_label(cluster):
    standard_cluster(cluster)
    prefetcher, inventory, _ = make_prefetcher(cluster)
    cluster.core.patch_node("n2", {"metadata": {"labels": {WARM: "true"}}},
                            _content_type="application/merge-patch+json")  # fmt: skip
    cluster.set_node_images("n2", [(f"docker.io/library/x{i}:1", 200) for i in range(50)])
    inventory.resync()
    report = prefetcher.reconcile(workload(), recommendation(1), None, now=0.0)
    assert report.unlabelled == () and node_labels(cluster, "n2")[WARM] == "true"


# -- failures, no eligible node ----------------------------------------------------------------


def events(cluster: Cluster, reason: str) -> list[dict[str, Any]]:
    return [e for e in cluster.objects("v1/events", NS) if e.get("reason") == reason]


def test_a_failed_pull_is_an_event_a_metric_and_the_node_rests(cluster):
    standard_cluster(cluster)
    prefetcher, inventory, registry = make_prefetcher(cluster)
    inventory.resync()
    prefetcher.reconcile(workload(max_warm_nodes=1), recommendation(2), None, now=0.0)
    (node,) = jobs_in(cluster)
    cluster.finish_job(job_name(NAME, IMAGE, node), failed="DeadlineExceeded")
    report = prefetcher.reconcile(workload(max_warm_nodes=1), recommendation(2), None, now=60.0)
    assert len(report.failed) == 1 and node in report.failed[0]
    (event,) = events(cluster, "PrefetchFailed")
    assert event["type"] == "Warning"
    assert event["involvedObject"]["name"] == NAME
    assert f"on node {node} failed (DeadlineExceeded: pull took too long)" in event["message"]
    assert (
        registry.get_sample_value(
            "llm_autoscaler_prefetch_failures_total",
            {"namespace": NS, "workload": NAME, "reason": "DeadlineExceeded"},
        )
        == 1
    )
    # the failed Job is deleted; the next pull goes elsewhere while the node rests
    assert node not in jobs_in(cluster)
    assert report.plan is not None and report.plan.skipped[node].startswith("excluded")
    assert [p.node for p in report.plan.pulls] != [node]
    later = prefetcher.reconcile(workload(max_warm_nodes=1), recommendation(2), None, now=900.0)
    assert node not in later.plan.skipped  # rested: eligible again


def test_no_eligible_node_gives_a_clear_event_and_no_job(cluster):
    deployment = copy.deepcopy(DEPLOYMENT)
    del deployment["spec"]["template"]["spec"]["tolerations"]
    cluster.apps.create_namespaced_deployment(NS, deployment)
    cluster.add_node("n1")
    cluster.add_node("n2")
    cluster.add_node("a1", product="NVIDIA-A100-SXM4-80GB", taint=False)
    prefetcher, inventory, registry = make_prefetcher(cluster)
    inventory.resync()
    report = prefetcher.reconcile(workload(), recommendation(3), None, now=0.0)
    assert report.status == "no-eligible-node"
    assert cluster.objects("batch/v1/jobs") == []
    (event,) = events(cluster, "PrefetchNoEligibleNode")
    assert event["type"] == "Warning"
    message = event["message"]
    assert f"no eligible node for {IMAGE}" in message
    assert "2 untolerated taint (e.g. nvidia.com/gpu=present:NoSchedule)" in message
    assert "1 required node affinity does not match" in message
    # the same situation next tick does not repeat the Event
    prefetcher.reconcile(workload(), recommendation(3), None, now=15.0)
    (event,) = events(cluster, "PrefetchNoEligibleNode")
    assert event.get("count", 1) == 1
    assert (
        registry.get_sample_value(
            "llm_autoscaler_prefetch_plans_total",
            {"namespace": NS, "workload": NAME, "status": "no-eligible-node"},
        )
        == 2
    )


# -- dry run, leadership -----------------------------------------------------------------------


def test_dry_run_plans_and_logs_but_writes_nothing(cluster, caplog):
    standard_cluster(cluster)
    before = cluster.writes()
    prefetcher, inventory, _ = make_prefetcher(cluster, dry_run=True)
    inventory.resync()
    with caplog.at_level("INFO"):
        report = prefetcher.reconcile(workload(), recommendation(4), None, now=0.0)
    assert report.status == "pull" and len(report.created) == 2  # would create
    assert report.labelled == ("n1",)  # would label
    assert cluster.writes() == before
    assert cluster.objects("batch/v1/jobs") == [] and cluster.objects("v1/events") == []
    assert "dry-run: would create Job llm/pf-llama-70b-" in caplog.text


def test_a_follower_does_nothing_and_a_stale_recommendation_plans_nothing(cluster):
    standard_cluster(cluster)
    leases = LeaseClient(cluster.api)
    leader = LeaderElector(leases, namespace=NS, name="prefetch", identity="a")
    follower = LeaderElector(leases, namespace=NS, name="prefetch", identity="b")
    assert leader.step() and not follower.step()
    prefetcher, inventory, _ = make_prefetcher(cluster, elector=follower)
    inventory.resync()
    before = len(list(cluster.emulator))
    report = prefetcher.reconcile(workload(), recommendation(4), None, now=0.0)
    assert report.status == "not-leader"
    assert len(list(cluster.emulator)) == before  # not even a read
    acting, inventory2, _ = make_prefetcher(cluster, elector=leader)
    inventory2.resync()
    stale = acting.reconcile(workload(), hold(f"{NS}/{NAME}", 0.0, "stale"), None, now=0.0)
    assert stale.status == "hold" and cluster.objects("batch/v1/jobs") == []


def test_disabled_or_unsynced_does_nothing(cluster):
    standard_cluster(cluster)
    prefetcher, _, _ = make_prefetcher(cluster)
    off = workload().model_copy(update={"prefetch": PrefetchConfig(enabled=False)})
    assert prefetcher.reconcile(off, recommendation(4), None, now=0.0).status == "disabled"
    assert prefetcher.reconcile(workload(), recommendation(4), None, 0.0).status == "not-synced"
    assert cluster.objects("batch/v1/jobs") == []


# -- leader election ---------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_two_electors_one_wins_and_the_other_takes_over_after_expiry(cluster):
    clock = Clock()
    leases = LeaseClient(cluster.api)
    a = LeaderElector(leases, namespace=NS, name="lock", identity="a", lease_duration_s=15,
                      renew_deadline_s=10, clock=clock)  # fmt: skip
    b = LeaderElector(leases, namespace=NS, name="lock", identity="b", lease_duration_s=15,
                      renew_deadline_s=10, clock=clock)  # fmt: skip
    assert a.step() is True
    assert b.step() is False and b.holder == "a"
    for _ in range(3):  # a renews every 5 s; b keeps seeing a fresh record
        clock.t += 5
        assert a.step() is True
        assert b.step() is False
    lease = leases.get(NS, "lock")
    assert lease is not None and lease.holder == "a" and lease.transitions == 0
    # a stops renewing (crashed, partitioned): it stops acting at its renew deadline ...
    clock.t += 11
    assert a.is_leader() is False
    # ... and b takes over once the record has been unchanged for the lease duration
    assert b.step() is False  # 11 s since b saw the last change: not expired yet
    clock.t += 5
    assert b.step() is True
    lease = leases.get(NS, "lock")
    assert lease is not None and lease.holder == "b" and lease.transitions == 1
    clock.t += 1
    assert a.step() is False and a.holder == "b"


def test_racing_electors_leave_exactly_one_leader(cluster):
    clock = Clock()
    leases = LeaseClient(cluster.api)
    leases.create(NS, "lock", LeaseRecord("gone", 15, transitions=3))
    a = LeaderElector(leases, namespace=NS, name="lock", identity="a", clock=clock)
    b = LeaderElector(leases, namespace=NS, name="lock", identity="b", clock=clock)
    assert not a.step() and not b.step()  # both saw "gone" hold it
    clock.t += 16  # expired for both

    class ReadThenLetOtherWin:
        """``a`` reads, then ``b`` writes before ``a`` does: a's resourceVersion is stale."""

        def get(self, namespace: str, name: str) -> LeaseRecord | None:
            record = leases.get(namespace, name)
            assert b.step() is True
            return record

        def create(self, namespace: str, name: str, record: LeaseRecord) -> LeaseRecord:
            return leases.create(namespace, name, record)

        def update(self, namespace: str, name: str, record: LeaseRecord) -> LeaseRecord:
            return leases.update(namespace, name, record)

    a.leases = ReadThenLetOtherWin()
    assert a.step() is False  # 409 Conflict on a's update
    assert b.is_leader() and leases.get(NS, "lock").holder == "b"  # type: ignore[union-attr]
    with pytest.raises(LeaseConflict):
        leases.update(NS, "lock", LeaseRecord("a", 15, resource_version="1"))


def test_a_released_lease_is_taken_without_waiting_for_the_expiry(cluster):
    clock = Clock()
    leases = LeaseClient(cluster.api)
    a = LeaderElector(leases, namespace=NS, name="lock", identity="a", clock=clock)
    b = LeaderElector(leases, namespace=NS, name="lock", identity="b", clock=clock)
    assert a.step() and not b.step()
    a.release()
    assert not a.is_leader()
    assert b.step() is True  # holder cleared: no need to wait 15 s


def test_the_election_thread_runs_and_stops(cluster):
    registry = CollectorRegistry()
    elector = LeaderElector(LeaseClient(cluster.api), namespace=NS, name="bg", identity="pod-1",
                            retry_period_s=0.05, registry=registry)  # fmt: skip
    elector.start()
    deadline = time.monotonic() + 10
    while not elector.is_leader() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert elector.is_leader()
    assert registry.get_sample_value("llm_autoscaler_leader", {"lease": f"{NS}/bg"}) == 1
    elector.stop()
    assert not elector.is_leader()
    assert LeaseClient(cluster.api).get(NS, "bg").holder is None  # type: ignore[union-attr]


# -- the watched inventory over a real watch ----------------------------------------------------


def wait_for(predicate: Any, what: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    pytest.fail(f"timed out waiting for {what}")


def test_the_inventory_follows_a_watch_of_nodes_and_pods(cluster):
    cluster.add_node("n1")
    nodes = NodeClient(cluster.api)
    inventory = WatchedInventory(nodes, watch_timeout_s=1, backoff_s=0.01)
    inventory.start()
    try:
        wait_for(lambda: inventory.synced, "the first lists")
        assert [n.name for n in inventory.snapshot().nodes] == ["n1"]
        cluster.add_node("n2")
        wait_for(lambda: len(inventory.snapshot().nodes) == 2, "n2 to appear")
        add_replica(cluster, "llama-0", "n2")
        wait_for(lambda: inventory.snapshot().node("n2").gpus_free == 4, "the pod's GPUs")
        nodes.set_labels("n1", {WARM: "true"})
        wait_for(lambda: inventory.snapshot().node("n1").labels.get(WARM) == "true", "the label")
        nodes.set_labels("n1", {WARM: None})
        wait_for(lambda: WARM not in inventory.snapshot().node("n1").labels, "the label removal")
        cluster.core.delete_node("n1")
        wait_for(lambda: inventory.snapshot().node("n1") is None, "n1 to go")
    finally:
        inventory.stop()


def test_job_client_round_trip_and_errors(cluster):
    jobs = JobClient(cluster.api)
    assert jobs.read_workload(NS, "missing") is None
    assert jobs.delete(NS, "missing") is False
    manifest = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "j", "namespace": NS, "labels": {"a": "1"}},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [
            {"name": "c", "image": "busybox"}]}}},
    }  # fmt: skip
    assert jobs.create(NS, manifest) is True
    assert jobs.create(NS, manifest) is False  # 409: already there
    assert [j["metadata"]["name"] for j in jobs.list(NS, {"a": "1"})] == ["j"]
    assert jobs.list(NS, {"a": "2"}) == []
    assert jobs.delete(NS, "j") is True
    broken = JobClient(build_api_client(host="http://127.0.0.1:9"), request_timeout=(0.5, 0.5))
    with pytest.raises(Exception, match="create job llm/j: cannot connect"):
        broken.create(NS, manifest)

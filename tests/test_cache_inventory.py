"""Inventory parsing of real-shaped Node and Pod objects, image matching, and the watched state."""

from __future__ import annotations

import copy
from decimal import Decimal

import pytest

from cache.inventory import (
    Inventory,
    MalformedObjectError,
    NodeImage,
    NodeState,
    Presence,
    build_inventory,
    image_presence,
    image_size_from_nodes,
    parse_image_ref,
    parse_node,
    parse_pod_usage,
    parse_quantity,
    replicas_per_node,
)
from cache.watched_inventory import WatchedInventory

DIGEST = "sha256:" + "3f" * 32
MODEL = f"registry.example.com/models/llama-2-70b@{DIGEST}"

# The shape `kubectl get node -o json` gives for a GPU node (trimmed, values kept realistic).
GPU_NODE = {
    "apiVersion": "v1",
    "kind": "Node",
    "metadata": {
        "name": "gke-llm-a3-highgpu-8g-3b1c",
        "uid": "0b7c1b0e-5f44-4a2b-9a60-4b5d2f6c7e10",
        "resourceVersion": "918273",
        "labels": {
            "cloud.google.com/gke-nodepool": "a3-highgpu",
            "kubernetes.io/hostname": "gke-llm-a3-highgpu-8g-3b1c",
            "node.kubernetes.io/instance-type": "a3-highgpu-8g",
            "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
            "topology.kubernetes.io/zone": "us-central1-a",
        },
    },
    "spec": {
        "podCIDR": "10.4.3.0/24",
        "providerID": "gce://proj/us-central1-a/gke-llm-a3-highgpu-8g-3b1c",
        "taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}],
    },
    "status": {
        "allocatable": {
            "cpu": "206900m",
            "ephemeral-storage": "1813617339617",
            "memory": "1835762012Ki",
            "nvidia.com/gpu": "8",
            "pods": "110",
        },
        "capacity": {
            "cpu": "208",
            "ephemeral-storage": "1968087752Ki",
            "memory": "1871654236Ki",
            "nvidia.com/gpu": "8",
            "pods": "110",
        },
        "conditions": [
            {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory"},
            {"type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure"},
            {"type": "Ready", "status": "True", "reason": "KubeletReady"},
        ],
        "images": [
            {
                "names": [
                    f"registry.example.com/models/llama-2-70b@{DIGEST}",
                    "registry.example.com/models/llama-2-70b:v1",
                ],
                "sizeBytes": 137438953472,
            },
            {
                "names": [
                    "docker.io/vllm/vllm-openai@sha256:" + "7a" * 32,
                    "docker.io/vllm/vllm-openai:v0.10.2",
                ],
                "sizeBytes": 10737418240,
            },
            {
                "names": [
                    "docker.io/library/busybox@sha256:" + "11" * 32,
                    "docker.io/library/busybox:1.36.1-musl",
                ],
                "sizeBytes": 1502316,
            },
        ],
        "nodeInfo": {"containerRuntimeVersion": "containerd://1.7.24", "kubeletVersion": "v1.33.4"},
    },
}


def gpu_pod(name: str, node: str | None, gpus: str, *, phase: str = "Running", **labels: str):
    return {
        "metadata": {"name": name, "namespace": "llm", "labels": labels},
        "spec": {
            **({"nodeName": node} if node else {}),
            "containers": [
                {"name": "vllm", "resources": {"limits": {"nvidia.com/gpu": gpus, "cpu": "16"}}},
                {"name": "sidecar", "resources": {"requests": {"cpu": "10m"}}},
            ],
        },
        "status": {"phase": phase},
    }


def test_parses_a_real_shaped_gpu_node():
    node = parse_node(GPU_NODE)
    assert node.name == "gke-llm-a3-highgpu-8g-3b1c"
    assert node.ready and not node.unschedulable
    assert node.gpus_allocatable == 8 and node.gpus_free == 8
    assert node.labels["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"
    assert [(t.key, t.value, t.effect) for t in node.taints] == [
        ("nvidia.com/gpu", "present", "NoSchedule")
    ]
    assert node.disk_capacity_bytes == 1968087752 * 1024  # capacity, in Ki
    assert node.disk_allocatable_bytes == 1813617339617
    assert len(node.images) == 3 and node.images_complete
    assert node.image_bytes == 137438953472 + 10737418240 + 1502316


def test_not_ready_cordoned_and_gpu_less_nodes():
    obj = copy.deepcopy(GPU_NODE)
    obj["spec"]["unschedulable"] = True
    obj["status"]["conditions"][-1]["status"] = "Unknown"
    del obj["status"]["allocatable"]["nvidia.com/gpu"]
    del obj["status"]["capacity"]["nvidia.com/gpu"]
    node = parse_node(obj)
    assert not node.ready and node.unschedulable and node.gpus_allocatable == 0


def test_malformed_nodes_are_named():
    with pytest.raises(MalformedObjectError, match="without metadata.name"):
        parse_node({"metadata": {}})
    obj = copy.deepcopy(GPU_NODE)
    obj["status"]["allocatable"]["nvidia.com/gpu"] = "eight"
    with pytest.raises(MalformedObjectError, match="gke-llm-a3-highgpu-8g-3b1c: nvidia.com/gpu"):
        parse_node(obj)


@pytest.mark.parametrize(
    ("text", "value"),
    [("8", 8), ("500m", Decimal("0.5")), ("100Gi", 100 * 2**30), ("1e3", 1000), ("2k", 2000)],
)
def test_quantities(text, value):
    assert parse_quantity(text) == value


def test_image_refs_match_node_names_the_way_runtimes_write_them():
    node = parse_node(GPU_NODE)
    assert image_presence(node, parse_image_ref(MODEL), None) is Presence.PRESENT
    # by tag, and Docker Hub short names normalised to docker.io/library
    tagged = parse_image_ref("registry.example.com/models/llama-2-70b:v1")
    assert image_presence(node, tagged, None) is Presence.PRESENT
    assert image_presence(node, parse_image_ref("busybox:1.36.1-musl"), None) is Presence.PRESENT
    assert (
        image_presence(node, parse_image_ref("vllm/vllm-openai:v0.10.2"), None) is Presence.PRESENT
    )
    # another digest of the same repository is not this image
    other = parse_image_ref("registry.example.com/models/llama-2-70b@sha256:" + "00" * 32)
    assert image_presence(node, other, 137438953472) is Presence.ABSENT
    assert image_size_from_nodes([node], parse_image_ref(MODEL)) == 137438953472


def test_a_full_image_list_only_proves_absence_of_large_images():
    images = tuple(NodeImage((f"docker.io/library/x{i}:1",), 5 * 10**9 - i) for i in range(50))
    full = NodeState("n", images=images, images_complete=False)
    small, large = parse_image_ref(MODEL), parse_image_ref(MODEL)
    assert image_presence(full, small, 10**9) is Presence.UNKNOWN
    assert image_presence(full, small, None) is Presence.UNKNOWN
    assert image_presence(full, large, 140 * 10**9) is Presence.ABSENT
    obj = copy.deepcopy(GPU_NODE)
    obj["status"]["images"] = [
        {"names": [f"docker.io/library/x{i}:1"], "sizeBytes": 10**9} for i in range(50)
    ]
    assert not parse_node(obj).images_complete
    assert parse_node(obj, max_images=-1).images_complete


def test_pods_hold_gpus_only_while_bound_and_unfinished():
    assert parse_pod_usage(gpu_pod("a", "n1", "4")).gpus == 4  # limits only: request = limit
    assert parse_pod_usage(gpu_pod("b", None, "4")) is None  # pending, unbound
    assert parse_pod_usage(gpu_pod("c", "n1", "4", phase="Succeeded")) is None
    assert parse_pod_usage(gpu_pod("d", "n1", "4", phase="Failed")) is None
    init = gpu_pod("e", "n1", "2")
    init["spec"]["initContainers"] = [
        {"name": "warm", "resources": {"requests": {"nvidia.com/gpu": "8"}}},
        {
            "name": "side",
            "restartPolicy": "Always",
            "resources": {"limits": {"nvidia.com/gpu": "1"}},
        },
    ]
    init["spec"]["overhead"] = {"nvidia.com/gpu": "1"}
    # max(2 + 1 sidecar, 8 init) + 1 overhead
    assert parse_pod_usage(init).gpus == 9


def test_build_inventory_folds_gpu_requests_and_counts_the_workload_per_node():
    nodes = [parse_node(GPU_NODE), NodeState("n2", gpus_allocatable=8)]
    pods = [
        parse_pod_usage(gpu_pod("w1", "gke-llm-a3-highgpu-8g-3b1c", "4", app="llama")),
        parse_pod_usage(gpu_pod("w2", "n2", "4", app="llama")),
        parse_pod_usage(gpu_pod("o1", "n2", "2", app="other")),
    ]
    inv = build_inventory(reversed(nodes), [p for p in pods if p is not None])
    assert [n.name for n in inv.nodes] == ["gke-llm-a3-highgpu-8g-3b1c", "n2"]
    assert inv.node("gke-llm-a3-highgpu-8g-3b1c").gpus_free == 4
    assert inv.node("n2").gpus_free == 2
    assert replicas_per_node(inv, "llm", {"app": "llama"}) == {
        "gke-llm-a3-highgpu-8g-3b1c": 1,
        "n2": 1,
    }
    assert replicas_per_node(inv, "other-ns", {"app": "llama"}) == {}


def test_watched_inventory_folds_lists_and_events():
    seen = []
    inv = WatchedInventory(source=None, on_change=lambda: seen.append(1))  # type: ignore[arg-type]
    assert not inv.synced and inv.snapshot() == Inventory()
    inv.replace_nodes([GPU_NODE, {"metadata": {}}])  # the malformed one is skipped
    assert not inv.synced  # pods not listed yet
    inv.replace_pods([gpu_pod("w1", "gke-llm-a3-highgpu-8g-3b1c", "8", app="llama")])
    assert inv.synced
    assert inv.snapshot().nodes[0].gpus_free == 0
    inv.apply_pod_event(
        "MODIFIED", gpu_pod("w1", "gke-llm-a3-highgpu-8g-3b1c", "8", phase="Succeeded")
    )
    assert inv.snapshot().nodes[0].gpus_free == 8
    inv.apply_node_event("ADDED", {"metadata": {"name": "n2"}, "status": {}})
    assert [n.name for n in inv.snapshot().nodes] == ["gke-llm-a3-highgpu-8g-3b1c", "n2"]
    inv.apply_node_event("BOOKMARK", {"metadata": {"resourceVersion": "9"}})
    inv.apply_node_event("DELETED", {"metadata": {"name": "n2"}})
    assert [n.name for n in inv.snapshot().nodes] == ["gke-llm-a3-highgpu-8g-3b1c"]
    assert len(seen) == 5

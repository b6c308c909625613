"""Which nodes hold which modelcar images, how many GPUs they have free, and how much disk.

Two halves, as everywhere in this project (pure decisions apart from I/O):

- **Pure functions over the API's plain camelCase dicts**: :func:`parse_node` (labels, taints,
  readiness, allocatable ``nvidia.com/gpu``, ``status.images``, ephemeral storage),
  :func:`parse_pod_usage` (which node a running pod sits on and how many GPUs it requests),
  :func:`build_inventory` (nodes + pods -> an immutable :class:`Inventory`), and
  :func:`image_presence` (is an image on a node: yes, no, or *cannot tell*).
- :class:`~cache.watched_inventory.WatchedInventory` (its own module): the same state kept current
  by a list + watch of nodes and of the pods bound to them, so a control-loop tick reads a
  snapshot instead of listing every node and pod of the cluster. Neither module imports a
  client, so the simulator uses this pure half.

**What the Node API can and cannot say** (``reference/PREFETCH.md`` §4):

- ``status.images`` is sorted largest first and capped by the kubelet's ``nodeStatusMaxImages``
  (default 50). A multi-GB modelcar is nearly always inside the cap, but when the list is full
  and the image is not larger than the smallest entry, its absence proves nothing:
  :func:`image_presence` then answers :attr:`Presence.UNKNOWN` and nobody acts on it.
- The list lags: the kubelet re-lists images every 30 s and reports status every 10 s to 5 min,
  so a pull that just finished may be missing for ~30-40 s. Callers that know better (a prefetch
  Job that just succeeded) give the node a grace period before trusting an absence.
- **Disk room.** The Node API has no image-filesystem figure (only the kubelet's
  ``/stats/summary`` has ``imageFs``, behind ``nodes/proxy`` RBAC we do not want). We use
  ``status.capacity["ephemeral-storage"]`` (the node filesystem, which holds
  ``/var/lib/containerd`` in the default layout; ``allocatable`` when capacity is missing) as the
  image filesystem's size, and the sum of ``status.images[].sizeBytes`` as what images already
  occupy. That is a lower bound of real use (logs, writable layers and images beyond the cap are
  not in it), which the planner offsets by keeping the kubelet's GC threshold free.
- **Free GPUs** = ``status.allocatable["nvidia.com/gpu"]`` minus the GPU requests of pods bound to
  the node that have not finished (Succeeded/Failed pods hold nothing), the scheduler's own
  arithmetic: init containers count at their maximum, sidecars (restartable init containers)
  and ``spec.overhead`` add.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any, Final

__all__ = [
    "GPU_RESOURCE",
    "NODE_STATUS_MAX_IMAGES",
    "ImageRef",
    "Inventory",
    "MalformedObjectError",
    "NodeImage",
    "NodeState",
    "PodUsage",
    "Presence",
    "Taint",
    "build_inventory",
    "image_presence",
    "image_size_from_nodes",
    "parse_image_ref",
    "parse_node",
    "parse_pod_usage",
    "parse_quantity",
    "replicas_per_node",
]

log = logging.getLogger(__name__)

GPU_RESOURCE: Final = "nvidia.com/gpu"
NODE_STATUS_MAX_IMAGES: Final = 50
"""The kubelet's default ``nodeStatusMaxImages``: ``status.images`` holds at most this many."""
EPHEMERAL_STORAGE: Final = "ephemeral-storage"


class MalformedObjectError(ValueError):
    """A node or pod dict lacks what the inventory needs; the message names the object."""


# -- quantities and image references ------------------------------------------------------------

_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eE][+-]?[0-9]+|[KMGTPE]i|[numkMGTPE]|)$")
_SUFFIX: Final[dict[str, Decimal]] = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}


def parse_quantity(value: object) -> Decimal:
    """A Kubernetes resource quantity (``8``, ``500m``, ``1000Gi``, ``1e3``) as a Decimal.

    Raises ``ValueError`` naming the text. Written here rather than taken from the
    ``kubernetes`` package so this module stays free of client imports.
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a quantity")
    if isinstance(value, int | float):
        return Decimal(str(value))
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a quantity")
    match = _QUANTITY.match(value.strip())
    if match is None:
        raise ValueError(f"{value!r} is not a Kubernetes quantity such as 8, 500m or 100Gi")
    number, suffix = match.groups()
    try:
        base = Decimal(number)
    except InvalidOperation as exc:
        raise ValueError(f"{value!r} is not a Kubernetes quantity") from exc
    if suffix[:1] in ("e", "E") and len(suffix) > 1:
        return base * (Decimal(10) ** int(suffix[1:]))
    return base * _SUFFIX[suffix]


@dataclass(frozen=True, slots=True)
class ImageRef:
    """An OCI image reference, normalised the way container runtimes name images.

    ``repository`` carries the registry (``docker.io`` when none is given, plus ``library/`` for
    Docker Hub's official images), because ``node.status.images`` lists fully qualified names
    (``docker.io/library/busybox:1.36``, ``registry.example.com/m/llama@sha256:...``).
    """

    text: str
    """The reference exactly as the workload gives it (what a prefetch Job pulls)."""
    repository: str
    tag: str | None
    digest: str | None

    def matches(self, name: str) -> bool:
        """Whether a ``status.images[].names`` entry is this image.

        By digest when the reference has one (the content is what counts, and ``IfNotPresent``
        finds an image by digest), otherwise by ``repository:tag``.
        """
        other = _parsed_name(name)
        if other is None:
            return False
        if other.repository != self.repository:
            return False
        if self.digest is not None:
            return other.digest == self.digest
        return other.digest is None and other.tag == (self.tag or "latest")

    @property
    def pinned(self) -> bool:
        return self.digest is not None


_REF = re.compile(
    r"^(?P<name>[a-zA-Z0-9][a-zA-Z0-9._/:\[\]-]*?)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?"
    r"(?:@(?P<digest>[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}))?$"
)


@functools.lru_cache(maxsize=4096)
def _parsed_name(name: str) -> ImageRef | None:
    """``status.images`` names repeat on every node and every tick: parse each once."""
    try:
        return parse_image_ref(name)
    except ValueError:
        return None


def parse_image_ref(text: str) -> ImageRef:
    """Parse and normalise ``text``; ``ValueError`` if it is not an image reference."""
    match = _REF.match(text.strip())
    if match is None or not match.group("name"):
        raise ValueError(f"{text!r} is not an OCI image reference")
    name = match.group("name")
    tag = match.group("tag")
    first, sep, rest = name.partition("/")
    has_domain = bool(sep) and ("." in first or ":" in first or first == "localhost")
    if not has_domain:
        domain, path = "docker.io", name
    else:
        domain, path = first, rest
    if domain in ("index.docker.io", "registry-1.docker.io"):
        domain = "docker.io"
    if domain == "docker.io" and "/" not in path:
        path = f"library/{path}"
    return ImageRef(
        text=text.strip(),
        repository=f"{domain}/{path}",
        tag=tag,
        digest=match.group("digest"),
    )


# -- nodes -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Taint:
    key: str
    value: str
    effect: str
    """``NoSchedule``, ``PreferNoSchedule`` or ``NoExecute``."""


@dataclass(frozen=True, slots=True)
class NodeImage:
    names: tuple[str, ...]
    size_bytes: int


@dataclass(frozen=True, slots=True)
class NodeState:
    """What the planner needs to know about one node."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    ready: bool = True
    unschedulable: bool = False
    gpus_allocatable: int = 0
    gpus_requested: int = 0
    images: tuple[NodeImage, ...] = ()
    images_complete: bool = True
    """False when ``status.images`` is full (the kubelet's cap): smaller images may be missing."""
    disk_capacity_bytes: int | None = None
    """``status.capacity["ephemeral-storage"]`` (allocatable when capacity is absent)."""
    disk_allocatable_bytes: int | None = None

    @property
    def gpus_free(self) -> int:
        return max(0, self.gpus_allocatable - self.gpus_requested)

    @property
    def image_bytes(self) -> int:
        """Sum of the listed images' sizes: a lower bound of what images occupy."""
        return sum(image.size_bytes for image in self.images)


def _mapping(obj: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = obj.get(key)
    return value if isinstance(value, Mapping) else {}


def _int_quantity(resources: Mapping[str, Any], key: str, where: str) -> int | None:
    if key not in resources:
        return None
    try:
        return int(parse_quantity(resources[key]))
    except ValueError as exc:
        raise MalformedObjectError(f"{where}: {key}: {exc}") from exc


def parse_node(
    obj: Mapping[str, Any],
    *,
    max_images: int = NODE_STATUS_MAX_IMAGES,
    gpu_resource: str = GPU_RESOURCE,
) -> NodeState:
    """A :class:`NodeState` from a raw ``v1/Node`` dict (its GPU use is filled in later).

    ``max_images`` is the kubelet's ``nodeStatusMaxImages``; a list that long is taken as cut
    off. Raises :class:`MalformedObjectError` for a node without a name or with an unreadable
    quantity; absent optional parts (no taints, no images) are simply empty.
    """
    metadata = _mapping(obj, "metadata")
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        raise MalformedObjectError("a node without metadata.name")
    where = f"node {name}"
    labels = {str(k): str(v) for k, v in _mapping(metadata, "labels").items() if isinstance(v, str)}
    spec = _mapping(obj, "spec")
    status = _mapping(obj, "status")
    taints = []
    for raw in spec.get("taints") or ():
        if isinstance(raw, Mapping) and isinstance(raw.get("key"), str):
            taints.append(
                Taint(str(raw["key"]), str(raw.get("value") or ""), str(raw.get("effect") or ""))
            )
    ready = False
    for cond in status.get("conditions") or ():
        if isinstance(cond, Mapping) and cond.get("type") == "Ready":
            ready = cond.get("status") == "True"
    allocatable = _mapping(status, "allocatable")
    capacity = _mapping(status, "capacity")
    gpus = _int_quantity(allocatable, gpu_resource, where)
    if gpus is None:
        gpus = _int_quantity(capacity, gpu_resource, where) or 0
    disk_alloc = _int_quantity(allocatable, EPHEMERAL_STORAGE, where)
    disk_cap = _int_quantity(capacity, EPHEMERAL_STORAGE, where)
    images = []
    raw_images = status.get("images") or ()
    for raw in raw_images:
        if not isinstance(raw, Mapping):
            continue
        names = tuple(str(n) for n in raw.get("names") or () if isinstance(n, str))
        size = raw.get("sizeBytes")
        size_bytes = (
            int(size) if isinstance(size, int | float) and not isinstance(size, bool) else 0
        )
        images.append(NodeImage(names, max(0, size_bytes)))
    complete = max_images < 0 or len(images) < max_images
    return NodeState(
        name=name,
        labels=labels,
        taints=tuple(taints),
        ready=ready,
        unschedulable=bool(spec.get("unschedulable")),
        gpus_allocatable=max(0, gpus),
        images=tuple(images),
        images_complete=complete,
        disk_capacity_bytes=disk_cap if disk_cap is not None else disk_alloc,
        disk_allocatable_bytes=disk_alloc,
    )


class Presence(Enum):
    PRESENT = "present"
    ABSENT = "absent"
    UNKNOWN = "unknown"
    """``status.images`` is full and the image could be among the ones cut off."""


def image_presence(node: NodeState, image: ImageRef, size_bytes: int | None) -> Presence:
    """Is ``image`` on ``node`` according to ``status.images`` (mind the lag: see module doc)."""
    for entry in node.images:
        if any(image.matches(name) for name in entry.names):
            return Presence.PRESENT
    if node.images_complete or not node.images:
        return Presence.ABSENT
    smallest = min(entry.size_bytes for entry in node.images)
    if size_bytes is not None and size_bytes > smallest:
        return Presence.ABSENT  # sorted largest first: it would have made the cut
    return Presence.UNKNOWN


def image_size_from_nodes(nodes: Iterable[NodeState], image: ImageRef) -> int | None:
    """The image's ``sizeBytes`` as some node reports it, or None when no node holds it."""
    for node in nodes:
        for entry in node.images:
            if entry.size_bytes > 0 and any(image.matches(name) for name in entry.names):
                return entry.size_bytes
    return None


# -- pods ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PodUsage:
    """A pod that holds resources on a node: where, how many GPUs, and its labels."""

    namespace: str
    name: str
    node: str
    gpus: int
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)


def _container_gpus(container: object, gpu_resource: str, where: str) -> int:
    if not isinstance(container, Mapping):
        return 0
    resources = _mapping(container, "resources")
    for part in ("requests", "limits"):  # an extended resource's request defaults to its limit
        value = _int_quantity(_mapping(resources, part), gpu_resource, where)
        if value is not None:
            return max(0, value)
    return 0


def pod_gpu_request(
    spec: Mapping[str, Any], *, gpu_resource: str = GPU_RESOURCE, where: str = "pod"
) -> int:
    """GPUs the scheduler reserves for a pod spec (its "effective request").

    ``max(sum(containers) + sum(sidecars), max over init containers of (init + sidecars started
    before it)) + overhead``, as ``k8s.io/component-helpers/resource`` computes it.
    """
    total = sum(_container_gpus(c, gpu_resource, where) for c in spec.get("containers") or ())
    sidecars = 0
    init_peak = 0
    for init in spec.get("initContainers") or ():
        gpus = _container_gpus(init, gpu_resource, where)
        if isinstance(init, Mapping) and init.get("restartPolicy") == "Always":
            sidecars += gpus
            init_peak = max(init_peak, sidecars)
        else:
            init_peak = max(init_peak, sidecars + gpus)
    overhead = _int_quantity(_mapping(spec, "overhead"), gpu_resource, where) or 0
    return max(total + sidecars, init_peak) + max(0, overhead)


def parse_pod_usage(obj: Mapping[str, Any], *, gpu_resource: str = GPU_RESOURCE) -> PodUsage | None:
    """The pod's hold on a node, or None when it holds nothing (unbound, Succeeded, Failed)."""
    metadata = _mapping(obj, "metadata")
    name, namespace = metadata.get("name"), metadata.get("namespace")
    if not isinstance(name, str) or not isinstance(namespace, str):
        raise MalformedObjectError("a pod without metadata.name/namespace")
    spec = _mapping(obj, "spec")
    node = spec.get("nodeName")
    phase = _mapping(obj, "status").get("phase")
    if not isinstance(node, str) or not node or phase in ("Succeeded", "Failed"):
        return None
    labels = {str(k): str(v) for k, v in _mapping(metadata, "labels").items() if isinstance(v, str)}
    where = f"pod {namespace}/{name}"
    return PodUsage(
        namespace=namespace,
        name=name,
        node=node,
        gpus=pod_gpu_request(spec, gpu_resource=gpu_resource, where=where),
        labels=labels,
    )


# -- the inventory ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Inventory:
    """Every node (by name, sorted) with its GPU use filled in, and the pods holding them."""

    nodes: tuple[NodeState, ...] = ()
    pods: tuple[PodUsage, ...] = ()

    def node(self, name: str) -> NodeState | None:
        for node in self.nodes:
            if node.name == name:
                return node
        return None


def build_inventory(nodes: Iterable[NodeState], pods: Iterable[PodUsage]) -> Inventory:
    """Fold the pods' GPU requests into the nodes; deterministic whatever the input order."""
    pod_list = sorted(pods, key=lambda p: p.key)
    used: dict[str, int] = {}
    for pod in pod_list:
        used[pod.node] = used.get(pod.node, 0) + pod.gpus
    folded = tuple(
        replace(node, gpus_requested=used.get(node.name, 0))
        for node in sorted(nodes, key=lambda n: n.name)
    )
    return Inventory(nodes=folded, pods=tuple(pod_list))


def replicas_per_node(
    inventory: Inventory, namespace: str, selector: Mapping[str, str]
) -> dict[str, int]:
    """How many of the workload's pods (``selector`` in ``namespace``) sit on each node."""
    counts: dict[str, int] = {}
    for pod in inventory.pods:
        if pod.namespace == namespace and all(pod.labels.get(k) == v for k, v in selector.items()):
            counts[pod.node] = counts.get(pod.node, 0) + 1
    return counts

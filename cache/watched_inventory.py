"""The node inventory kept current: a list + watch of nodes and node-bound pods (an informer).

The pure half (parsing nodes and pods, building an :class:`~cache.inventory.Inventory`) is
:mod:`cache.inventory`; this is the stateful half, two background threads on the synchronous
client. The Kubernetes calls come from an injected :class:`InventorySource`
(``autoscaler.clients.kube.nodes.NodeClient`` live); this module imports no client.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Protocol

from cache.inventory import (
    GPU_RESOURCE,
    NODE_STATUS_MAX_IMAGES,
    Inventory,
    MalformedObjectError,
    NodeState,
    PodUsage,
    _mapping,
    build_inventory,
    parse_node,
    parse_pod_usage,
)

__all__ = ["InventorySource", "WatchEvent", "WatchedInventory"]

log = logging.getLogger(__name__)


WatchEvent = tuple[str, Mapping[str, Any]]
"""(``ADDED``/``MODIFIED``/``DELETED``/``BOOKMARK``, the raw object)."""


class InventorySource(Protocol):
    """List + watch of nodes and of pods bound to nodes (``NodeClient`` live).

    ``list_*`` return the raw items and the list's resourceVersion; ``watch_*`` yield events
    until the server ends the watch and raise ``ResourceVersionExpired``-like errors the caller
    answers with a re-list (any exception does).
    """

    def list_nodes(self) -> tuple[list[Mapping[str, Any]], str | None]: ...

    def watch_nodes(self, resource_version: str | None, timeout_s: int) -> Iterator[WatchEvent]: ...

    def list_bound_pods(self) -> tuple[list[Mapping[str, Any]], str | None]: ...

    def watch_bound_pods(
        self, resource_version: str | None, timeout_s: int
    ) -> Iterator[WatchEvent]: ...

    def interrupt(self) -> None:
        """Wake up the running watches (their sockets are shut down) so threads can stop."""
        ...


class WatchedInventory:
    """Nodes and node-bound pods, kept current by a list + watch in two background threads.

    Like an informer: list, then watch from the list's resourceVersion; a watch that ends is
    resumed from the last resourceVersion; any failure (410 Gone included) re-lists after a
    capped back-off, since events may have been missed. :meth:`snapshot` is cheap (no I/O) and
    returns an immutable :class:`Inventory`; before both lists have completed, :attr:`synced`
    is False and callers must not act (an empty inventory would look like "no eligible node").
    """

    def __init__(
        self,
        source: InventorySource,
        *,
        watch_timeout_s: int = 300,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        max_images: int = NODE_STATUS_MAX_IMAGES,
        gpu_resource: str = GPU_RESOURCE,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self._source = source
        self.watch_timeout_s = watch_timeout_s
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_images = max_images
        self.gpu_resource = gpu_resource
        self._on_change = on_change
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._nodes: dict[str, NodeState] = {}
        self._pods: dict[tuple[str, str], PodUsage] = {}
        self._nodes_synced = False
        self._pods_synced = False
        self._snapshot: Inventory | None = None
        self._threads: list[threading.Thread] = []

    # -- folding (also what tests drive directly) ----------------------------------------------

    def replace_nodes(self, items: Iterable[Mapping[str, Any]]) -> None:
        fresh = {}
        for obj in items:
            node = self._parse_node(obj)
            if node is not None:
                fresh[node.name] = node
        with self._lock:
            self._nodes = fresh
            self._nodes_synced = True
            self._snapshot = None
        self._changed()

    def replace_pods(self, items: Iterable[Mapping[str, Any]]) -> None:
        fresh = {}
        for obj in items:
            pod = self._parse_pod(obj)
            if pod is not None:
                fresh[pod.key] = pod
        with self._lock:
            self._pods = fresh
            self._pods_synced = True
            self._snapshot = None
        self._changed()

    def apply_node_event(self, kind: str, obj: Mapping[str, Any]) -> None:
        name = _mapping(obj, "metadata").get("name")
        if kind == "BOOKMARK" or not isinstance(name, str):
            return
        node = self._parse_node(obj) if kind in ("ADDED", "MODIFIED") else None
        with self._lock:
            if node is None:
                self._nodes.pop(name, None)
            else:
                self._nodes[name] = node
            self._snapshot = None
        self._changed()

    def apply_pod_event(self, kind: str, obj: Mapping[str, Any]) -> None:
        metadata = _mapping(obj, "metadata")
        name, namespace = metadata.get("name"), metadata.get("namespace")
        if kind == "BOOKMARK" or not isinstance(name, str) or not isinstance(namespace, str):
            return
        pod = self._parse_pod(obj) if kind in ("ADDED", "MODIFIED") else None
        with self._lock:
            if pod is None:
                self._pods.pop((namespace, name), None)
            else:
                self._pods[pod.key] = pod
            self._snapshot = None
        self._changed()

    def _parse_node(self, obj: Mapping[str, Any]) -> NodeState | None:
        try:
            return parse_node(obj, max_images=self.max_images, gpu_resource=self.gpu_resource)
        except MalformedObjectError as exc:
            log.warning("inventory: skipping %s", exc)
            return None

    def _parse_pod(self, obj: Mapping[str, Any]) -> PodUsage | None:
        try:
            return parse_pod_usage(obj, gpu_resource=self.gpu_resource)
        except MalformedObjectError as exc:
            log.warning("inventory: skipping %s", exc)
            return None

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()

    # -- reading -------------------------------------------------------------------------------

    @property
    def synced(self) -> bool:
        with self._lock:
            return self._nodes_synced and self._pods_synced

    def snapshot(self) -> Inventory:
        with self._lock:
            if self._snapshot is None:
                self._snapshot = build_inventory(self._nodes.values(), self._pods.values())
            return self._snapshot

    # -- the threads ---------------------------------------------------------------------------

    def resync(self) -> None:
        """List nodes and pods once, now, in the caller's thread (start-up, tests); raises the
        source's error when a list fails."""
        nodes, _ = self._source.list_nodes()
        pods, _ = self._source.list_bound_pods()
        self.replace_nodes(nodes)
        self.replace_pods(pods)

    def start(self) -> None:
        if self._threads:
            raise RuntimeError("WatchedInventory.start() was already called")
        self._threads = [
            threading.Thread(
                target=self._run,
                args=("nodes", self._source.list_nodes, self._source.watch_nodes,
                      self.replace_nodes, self.apply_node_event),
                name="inventory nodes",
                daemon=True,
            ),
            threading.Thread(
                target=self._run,
                args=("pods", self._source.list_bound_pods, self._source.watch_bound_pods,
                      self.replace_pods, self.apply_pod_event),
                name="inventory pods",
                daemon=True,
            ),
        ]  # fmt: skip
        for thread in self._threads:
            thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop both threads; returns within about ``timeout_s`` even if one is stuck."""
        self._stopping.set()
        for thread in self._threads:
            for _ in range(max(1, int(timeout_s / 0.05))):
                if not thread.is_alive():
                    break
                self._source.interrupt()
                thread.join(0.05)
            if thread.is_alive():
                log.warning("inventory thread %r did not stop in %.1f s", thread.name, timeout_s)

    def _run(
        self,
        what: str,
        list_fn: Callable[[], tuple[list[Mapping[str, Any]], str | None]],
        watch_fn: Callable[[str | None, int], Iterator[WatchEvent]],
        replace_fn: Callable[[Iterable[Mapping[str, Any]]], None],
        apply_fn: Callable[[str, Mapping[str, Any]], None],
    ) -> None:
        backoff = self.backoff_s
        resource_version: str | None = None
        need_list = True
        while not self._stopping.is_set():
            try:
                if need_list:
                    items, resource_version = list_fn()
                    replace_fn(items)
                    need_list = False
                    backoff = self.backoff_s
                for kind, obj in watch_fn(resource_version, self.watch_timeout_s):
                    if self._stopping.is_set():
                        return
                    apply_fn(kind, obj)
                    rv = _mapping(obj, "metadata").get("resourceVersion")
                    if isinstance(rv, str) and rv:
                        resource_version = rv
            except Exception as exc:  # the thread must survive anything the stack raises
                if self._stopping.is_set():
                    return
                log.warning("inventory %s: %s; listing again in %.1f s", what, exc, backoff)
                need_list = True
                if self._stopping.wait(backoff):
                    return
                backoff = min(backoff * 2.0, self.max_backoff_s)

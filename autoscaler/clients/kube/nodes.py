"""Nodes and the pods bound to them (the prefetch inventory's source), and node labels.

:class:`NodeClient` is the :class:`cache.watched_inventory.InventorySource` of the live service:

- ``list_nodes`` / ``watch_nodes``: every node (the inventory reads labels, taints, readiness,
  allocatable GPUs and ephemeral storage, and ``status.images``);
- ``list_bound_pods`` / ``watch_bound_pods``: pods of every namespace that sit on a node and have
  not finished, i.e. the field selector ``spec.nodeName!=,status.phase!=Succeeded,
  status.phase!=Failed``; their GPU requests are what is not free on a node. A pod that finishes
  stops matching and the watch reports it as DELETED, so the cache never keeps dead pods;
- ``set_labels``: a JSON merge patch of ``metadata.labels`` (``None`` removes a label), for the
  warm-node label ``llm-autoscaler.io/warm-<hash>``.

Lists are paged (500 per page) and read as raw JSON like the rest of the package; the watches
use ``kubernetes.watch.Watch`` on a lambda so events carry the raw dicts, and raise ``ApiException``
410 (as an HTTP status or an ``ERROR`` event) for the caller's re-list. :meth:`interrupt` shuts
the running watches' sockets so a stopping thread does not wait for the server's timeout.

RBAC: ``nodes: get, list, watch, patch``; ``pods: list, watch`` (cluster-wide).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final

import urllib3
from kubernetes import client, watch

from autoscaler.clients.kube import (
    DEFAULT_REQUEST_TIMEOUT,
    KubernetesError,
    kubernetes_error,
    read_json,
)

__all__ = ["BOUND_POD_SELECTOR", "NodeClient"]

BOUND_POD_SELECTOR: Final = "spec.nodeName!=,status.phase!=Succeeded,status.phase!=Failed"
_PAGE: Final = 500

WatchEvent = tuple[str, Mapping[str, Any]]


class NodeClient:
    """Node/pod list + watch and node label patches over one ``ApiClient`` (thread-safe)."""

    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        request_timeout: tuple[float, float] = DEFAULT_REQUEST_TIMEOUT,
    ) -> None:
        self._core = client.CoreV1Api(api_client)
        self._host: str | None = getattr(api_client.configuration, "host", None)
        self.request_timeout = request_timeout
        self._lock = threading.Lock()
        self._watches: set[watch.Watch] = set()

    # -- nodes ---------------------------------------------------------------------------------

    def list_nodes(self) -> tuple[list[Mapping[str, Any]], str | None]:
        return self._list("list nodes", self._core.list_node)

    def watch_nodes(self, resource_version: str | None, timeout_s: int) -> Iterator[WatchEvent]:
        return self._watch(
            "watch nodes",
            lambda **kw: self._core.list_node(**kw),
            resource_version,
            timeout_s,
        )

    def set_labels(self, node: str, labels: Mapping[str, str | None]) -> None:
        """Merge ``labels`` into the node's labels; a ``None`` value removes that label."""
        operation = f"patch labels of node {node}"
        body = {"metadata": {"labels": dict(labels)}}
        try:
            response = self._core.patch_node(
                node,
                body,
                _content_type="application/merge-patch+json",
                _preload_content=False,
                _request_timeout=self.request_timeout,
            )
        except Exception as exc:
            raise kubernetes_error(operation, exc, host=self._host) from exc
        read_json(response, operation, host=self._host)

    # -- pods bound to nodes ---------------------------------------------------------------------

    def list_bound_pods(self) -> tuple[list[Mapping[str, Any]], str | None]:
        return self._list(
            "list pods on nodes",
            lambda **kw: self._core.list_pod_for_all_namespaces(
                field_selector=BOUND_POD_SELECTOR, **kw
            ),
        )

    def watch_bound_pods(
        self, resource_version: str | None, timeout_s: int
    ) -> Iterator[WatchEvent]:
        return self._watch(
            "watch pods on nodes",
            lambda **kw: self._core.list_pod_for_all_namespaces(
                field_selector=BOUND_POD_SELECTOR, **kw
            ),
            resource_version,
            timeout_s,
        )

    # -- plumbing --------------------------------------------------------------------------------

    def interrupt(self) -> None:
        """Shut down the sockets of the running watches (they end as if the server closed)."""
        with self._lock:
            running = list(self._watches)
        for stream in running:
            stream.stop()  # type: ignore[no-untyped-call]

    def _list(
        self, operation: str, call: Callable[..., Any]
    ) -> tuple[list[Mapping[str, Any]], str | None]:
        items: list[Mapping[str, Any]] = []
        resource_version: str | None = None
        token: str | None = None
        while True:
            try:
                response = call(
                    limit=_PAGE,
                    _continue=token,
                    _preload_content=False,
                    _request_timeout=self.request_timeout,
                )
            except Exception as exc:
                raise kubernetes_error(operation, exc, host=self._host) from exc
            page = read_json(response, operation, host=self._host)
            raw = page.get("items") or []
            if not isinstance(raw, list):
                raise KubernetesError(operation, "items is not a list", host=self._host)
            items.extend(item for item in raw if isinstance(item, Mapping))
            metadata = page.get("metadata")
            metadata = metadata if isinstance(metadata, Mapping) else {}
            if resource_version is None:
                rv = metadata.get("resourceVersion")
                resource_version = rv if isinstance(rv, str) and rv else None
            more = metadata.get("continue")
            if not isinstance(more, str) or not more:
                return items, resource_version
            token = more

    def _watch(
        self,
        operation: str,
        call: Callable[..., Any],
        resource_version: str | None,
        timeout_s: int,
    ) -> Iterator[WatchEvent]:
        stream = watch.Watch()  # type: ignore[no-untyped-call]
        with self._lock:
            self._watches.add(stream)
        since = {} if resource_version is None else {"resource_version": resource_version}
        try:
            events = stream.stream(  # type: ignore[no-untyped-call]
                call,
                allow_watch_bookmarks=True,
                timeout_seconds=timeout_s,
                # past the server's timeout, silence means a dead connection
                _request_timeout=(self.request_timeout[0], timeout_s + 30.0),
                **since,
            )
            for event in events:
                kind, obj = event.get("type"), event.get("raw_object")
                if isinstance(kind, str) and isinstance(obj, Mapping):
                    yield kind, obj
        except client.ApiException as exc:
            raise kubernetes_error(operation, exc, host=self._host) from exc
        except urllib3.exceptions.HTTPError as exc:
            if getattr(stream, "_stop", False):
                return  # interrupt() shut the socket down
            raise kubernetes_error(operation, exc, host=self._host) from exc
        finally:
            with self._lock:
                self._watches.discard(stream)

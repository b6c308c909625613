"""The Kubernetes client package against kmock's KubernetesEmulator over real HTTP.

The emulator runs in-process on 127.0.0.1 (an ephemeral port) on its own event-loop thread, and
the code under test uses the official ``kubernetes`` client from the test's thread, exactly as
the service does (the client is synchronous; the service calls it from threads). Waiting is
polling with a deadline (:func:`eventually`), never a sleep followed by an assertion.

What kmock does differently from a real API server, and how the tests deal with it:

- it ignores ``labelSelector`` (lists and watches return every pod of the namespace): the
  watcher filters client-side too, and a test checks that an unrelated pod is not counted;
- it sets no ``resourceVersion``, ``uid`` or ``creationTimestamp`` on objects (the test bodies
  carry ``creationTimestamp``), lists answer ``resourceVersion: "..."``, and every watch starts
  by replaying the current objects as ADDED, whatever resourceVersion it was given;
- it sends no BOOKMARKs, never ends a watch by itself (no ``timeoutSeconds``) and never answers
  410: those are played with one-shot reactions (a stream that ends, an ERROR 410 event, an
  HTTP 410) and by closing the server side of the connections;
- objects changed in-process (``emulator.objects[...]``) produce no watch events: that is how a
  change "missed while disconnected" is staged, so a re-list has something to catch;
- a watch that starts while a change is being made can miss the change (it snapshots the
  objects before subscribing to new events), so tests wait until the watch is subscribed
  (:meth:`Emulator.watching`) before changing anything.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

import aiohttp.test_utils
import kmock
import pytest
from kubernetes import client

from autoscaler.clients.kube import (
    KubernetesConfigError,
    KubernetesError,
    build_api_client,
    format_selector,
    kubernetes_error,
)
from autoscaler.clients.kube.pods import (
    NotSyncedError,
    PodWatcher,
    WatchedWorkload,
)
from autoscaler.clients.kube.workloads import (
    CurrentAutoscalerReader,
    EventRecorder,
    find_current_autoscaler,
    read_current_autoscaler,
)
from autoscaler.core.current_autoscaler import CurrentAutoscaler
from autoscaler.core.replica_states import ReplicaState
from autoscaler.errors import ExternalSystemError, InputError
from tests.ports import free_port

T = TypeVar("T")
NS = "llm"
KEY = f"{NS}/llama"
SELECTOR = {"app": "llama"}
T0 = 1_714_564_800.0  # 2024-05-01T12:00:00Z
PODS = "v1/pods"
DEPLOYMENTS = "apps/v1/deployments"
STATEFULSETS = "apps/v1/statefulsets"
HPAS = "autoscaling/v2/horizontalpodautoscalers"
EVENTS = "v1/events"


def ts(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def eventually(check: Callable[[], T], timeout: float = 10.0) -> T:
    """Call ``check`` until it stops raising AssertionError; its last error after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


class _QuickStopServer(aiohttp.test_utils.RawTestServer):
    """aiohttp's test server, but closing waits 0.2 s (not 60 s) for open watch streams."""

    async def _make_runner(self, debug: bool = True, **kwargs: Any) -> Any:
        runner = await super()._make_runner(debug=debug, **kwargs)
        runner._shutdown_timeout = 0.2
        return runner


class Emulator:
    """kmock's KubernetesEmulator served on 127.0.0.1 from a private event-loop thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.kmock: kmock.KubernetesEmulator
        self.server: kmock.Server | None = None
        self.port = 0

    def start(self, port: int | None = None) -> Emulator:
        return self.open().serve(port)

    def open(self) -> Emulator:
        """Run the emulator, not yet listening (objects can be staged before anyone lists)."""
        self._thread.start()
        self.call(self._open())
        return self

    async def _open(self) -> None:
        self.kmock = kmock.KubernetesEmulator()
        await self.kmock.__aenter__()
        for resource in (PODS, DEPLOYMENTS, STATEFULSETS, HPAS, EVENTS):
            self.kmock.resources[resource] = kmock.ResourceInfo()

    def serve(self, port: int | None = None) -> Emulator:
        async def up() -> None:
            self.server = kmock.Server(self.kmock, port=port, server_cls=_QuickStopServer)
            await self.server.__aenter__()
            self.port = self.server.port

        self.call(up())
        return self

    def close(self) -> None:
        async def down() -> None:
            if self.server is not None:
                await self.server.__aexit__(None, None, None)
            await self.kmock.__aexit__(None, None, None)

        self.call(down())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=10)

    def run(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the emulator's loop (its state is not thread-safe)."""

        async def call() -> T:
            return fn()

        return self.call(call())

    # -- staging state -------------------------------------------------------------------

    def put(self, resource: str, obj: dict[str, Any]) -> None:
        """Store an object in-process: no watch event (a change the watcher cannot see)."""
        meta = obj["metadata"]

        def store() -> None:
            self.kmock.objects[resource, meta["namespace"], meta["name"]] = obj

        self.run(store)

    def forget(self, resource: str, name: str, namespace: str = NS) -> None:
        """Delete an object in-process: no DELETED event is sent to watchers."""
        self.run(lambda: self.kmock.objects[resource, namespace, name].delete())

    def get(self, resource: str, name: str, namespace: str = NS) -> dict[str, Any]:
        return self.run(lambda: dict(self.kmock.objects[resource, namespace, name].raw))

    def requests(self, action: kmock.action, plural: str = "pods") -> list[kmock.Request]:
        def matching() -> list[kmock.Request]:
            return [
                r
                for r in self.kmock
                if r.action == action and r.resource is not None and r.resource.plural == plural
            ]

        return self.run(matching)

    def watching(self, plural: str = "pods") -> int:
        """How many watch streams of ``plural`` are subscribed to new events right now."""

        def count() -> int:
            buses = self.kmock._buses  # kmock keeps one event bus per resource
            return sum(bus.consumer_count for res, bus in buses.items() if res.plural == plural)

        return self.run(count)

    def drop_connections(self) -> None:
        """Close every open connection from the server side, as an API server restart does."""

        def drop() -> None:
            assert self.server is not None and self.server.server.runner is not None
            web_server = self.server.server.runner.server
            assert web_server is not None
            for handler in list(web_server.connections):
                handler.force_close()
                if handler.transport is not None:
                    handler.transport.close()

        self.run(drop)

    def react_once(self, action: kmock.action, payload: Callable[[], Any]) -> list[int]:
        """Answer the next ``action`` request on pods with ``payload()``, later ones as usual.

        Returns a list that gets one element per time the reaction fired.
        """
        fired: list[int] = []

        def reaction() -> Any:
            if fired:
                return NotImplemented  # kmock then falls through to its emulation
            fired.append(1)
            return payload()

        def install() -> None:
            self.kmock[action, kmock.resource("", "v1", "pods")] << reaction

        self.run(install)
        return fired


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    emu = Emulator().start()
    yield emu
    emu.close()


@pytest.fixture
def api(emulator: Emulator) -> Iterator[client.ApiClient]:
    api_client = build_api_client(host=emulator.url)
    yield api_client
    api_client.close()  # type: ignore[no-untyped-call]


@pytest.fixture
def watchers() -> Iterator[list[PodWatcher]]:
    """Watchers created by a test; stopped at teardown (and proven stopped)."""
    started: list[PodWatcher] = []
    yield started
    for watcher in started:
        watcher.stop()
        assert not any(t.is_alive() for t in threading.enumerate() if t.name.startswith("pods "))


def pod_body(
    name: str,
    *,
    created: float = T0,
    labels: dict[str, str] | None = None,
    namespace: str = NS,
    finalizers: list[str] | None = None,
) -> dict[str, Any]:
    """A new pod as the API server stores it: not scheduled yet."""
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": labels if labels is not None else dict(SELECTOR),
        "creationTimestamp": ts(created),
    }
    if finalizers:
        metadata["finalizers"] = finalizers
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {"containers": [{"name": "engine", "image": "vllm/vllm-openai"}]},
        "status": {
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "False"}],
        },
    }


def ready_pod(name: str, created: float, ttr: float, **kwargs: Any) -> dict[str, Any]:
    body = pod_body(name, created=created, **kwargs)
    body["spec"]["nodeName"] = "gpu-1"
    body["status"] = {
        "phase": "Running",
        "conditions": [
            {"type": "PodScheduled", "status": "True"},
            {"type": "Ready", "status": "True", "lastTransitionTime": ts(created + ttr)},
        ],
    }
    return body


class Kubectl:
    """Changes made through the API (so watchers get events), with the real client."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self.core = client.CoreV1Api(api_client)

    def create(self, body: dict[str, Any]) -> None:
        # The client validates the dict into a V1Pod itself (pydantic), as for any caller.
        self.core.create_namespaced_pod(body["metadata"]["namespace"], body)  # type: ignore[arg-type]

    def schedule(self, name: str, node: str = "gpu-1") -> None:
        self.core.patch_namespaced_pod(name, NS, {"spec": {"nodeName": node}})
        self.core.patch_namespaced_pod_status(
            name, NS, {"status": {"conditions": [{"type": "PodScheduled", "status": "True"}]}}
        )

    def make_ready(self, name: str, at: float) -> None:
        conditions = [
            {"type": "PodScheduled", "status": "True"},
            {"type": "Ready", "status": "True", "lastTransitionTime": ts(at)},
        ]
        self.core.patch_namespaced_pod_status(
            name, NS, {"status": {"phase": "Running", "conditions": conditions}}
        )

    def delete(self, name: str) -> None:
        self.core.delete_namespaced_pod(name, NS)

    def release(self, name: str) -> None:
        """Remove the finalizers of a terminating pod, which lets it go."""
        self.core.patch_namespaced_pod(name, NS, {"metadata": {"finalizers": []}})


def start_watcher(
    api_client: client.ApiClient,
    watchers: list[PodWatcher],
    workloads: list[WatchedWorkload] | None = None,
    **kwargs: Any,
) -> PodWatcher:
    kwargs.setdefault("backoff_s", 0.05)
    kwargs.setdefault("max_backoff_s", 0.2)
    kwargs.setdefault("spec_interval_s", 0.1)
    kwargs.setdefault("request_timeout", (2.0, 5.0))
    watcher = PodWatcher(api_client, workloads or [WatchedWorkload(KEY, NS, SELECTOR)], **kwargs)
    watchers.append(watcher)
    watcher.start()
    return watcher


def state_counts(watcher: PodWatcher, now: float = T0 + 1000) -> tuple[int, int, int, int]:
    c = watcher.counts(KEY, now)
    return (c.pending, c.starting, c.ready, c.terminating)


def synced_and_watching(watcher: PodWatcher, emulator: Emulator, watches: int = 1) -> None:
    eventually(lambda: _assert(watcher.synced(KEY)))
    eventually(lambda: _assert(emulator.watching() >= watches))


def _assert(condition: bool) -> None:
    assert condition


# -- the pod watcher ----------------------------------------------------------------------------


def test_pods_move_through_their_states(emulator, api, watchers):
    kubectl = Kubectl(api)
    watcher = start_watcher(api, watchers)
    synced_and_watching(watcher, emulator)
    assert state_counts(watcher) == (0, 0, 0, 0)

    kubectl.create(pod_body("llama-0", created=T0, finalizers=["example.com/drain"]))
    eventually(lambda: _assert(state_counts(watcher) == (1, 0, 0, 0)))
    counts = watcher.counts(KEY, T0 + 90)
    assert counts.oldest_unready_age_s == 90 and counts.starting_ages_s == (90,)

    kubectl.schedule("llama-0")
    eventually(lambda: _assert(state_counts(watcher) == (0, 1, 0, 0)))
    assert watcher.time_to_ready_s(KEY) is None

    kubectl.make_ready("llama-0", at=T0 + 95)
    eventually(lambda: _assert(state_counts(watcher) == (0, 0, 1, 0)))
    assert watcher.time_to_ready_s(KEY) == 95

    kubectl.delete("llama-0")  # a finalizer holds it: terminating, still draining
    eventually(lambda: _assert(state_counts(watcher) == (0, 0, 0, 1)))

    kubectl.release("llama-0")
    eventually(lambda: _assert(state_counts(watcher) == (0, 0, 0, 0)))
    assert watcher.time_to_ready_s(KEY) == 95  # the observation outlives the pod


def test_watch_asks_the_server_for_what_it_needs(emulator, api, watchers):
    watcher = start_watcher(api, watchers, watch_timeout_s=120)
    synced_and_watching(watcher, emulator)
    (listing,) = emulator.requests(kmock.action.LIST)
    (watching,) = emulator.requests(kmock.action.WATCH)
    assert listing.params["labelSelector"] == "app=llama"
    assert watching.params["labelSelector"] == "app=llama"
    assert watching.params["allowWatchBookmarks"] == "true"
    assert watching.params["timeoutSeconds"] == "120"
    assert watching.params["resourceVersion"] == "..."  # what kmock's list answered
    assert watching.namespace == NS


def test_initial_list_counts_existing_pods_and_skips_the_rest(emulator, api, watchers, caplog):
    emulator.put(PODS, ready_pod("a", T0, 60))
    emulator.put(PODS, ready_pod("b", T0 + 100, 120))
    emulator.put(PODS, ready_pod("c", T0 + 200, 300))
    emulator.put(PODS, pod_body("waiting", created=T0 + 400))
    emulator.put(PODS, ready_pod("other-app", T0, 10, labels={"app": "mistral"}))
    emulator.put(PODS, ready_pod("other-ns", T0, 10, namespace="elsewhere"))
    broken = pod_body("broken")
    broken["metadata"]["creationTimestamp"] = "not a time"
    emulator.put(PODS, broken)
    done = ready_pod("done", T0, 10)
    done["status"]["phase"] = "Succeeded"
    emulator.put(PODS, done)

    with caplog.at_level(logging.WARNING):
        watcher = start_watcher(api, watchers)
        eventually(lambda: _assert(watcher.synced(KEY)))
    assert state_counts(watcher) == (1, 0, 3, 0)
    assert [p.name for p in watcher.pods(KEY)] == ["a", "b", "c", "waiting"]
    assert watcher.time_to_ready_s(KEY) == 120  # median of 60, 120, 300
    assert "llm/broken" in caplog.text and "creationTimestamp" in caplog.text

    late = watcher.over_pending_timeout(KEY, now=T0 + 1100, pending_timeout_s=600)
    assert [p.name for p in late] == ["waiting"]
    assert watcher.over_pending_timeout(KEY, now=T0 + 900, pending_timeout_s=600) == []


def test_spec_replicas_come_from_the_deployment_when_there_is_one(emulator, api, watchers):
    emulator.put(PODS, ready_pod("a", T0, 60))
    watcher = start_watcher(api, watchers)
    eventually(lambda: _assert(watcher.synced(KEY)))
    # no Deployment: what exists and is not leaving
    eventually(lambda: _assert(watcher.counts(KEY, T0).spec == 1))

    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "llama", "namespace": NS},
        "spec": {"replicas": 4, "selector": {"matchLabels": SELECTOR}},
    }
    emulator.put(DEPLOYMENTS, deployment)
    eventually(lambda: _assert(watcher.counts(KEY, T0).spec == 4))
    assert watcher.spec_replicas(KEY) == 4
    emulator.forget(DEPLOYMENTS, "llama")
    eventually(lambda: _assert(watcher.spec_replicas(KEY) is None))


def test_spec_replicas_of_a_statefulset_workload_come_from_the_statefulset(emulator, api, watchers):
    emulator.put(PODS, ready_pod("a", T0, 60))
    decoy = {  # a Deployment of the same name is not the scale target of a StatefulSet workload
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "llama", "namespace": NS},
        "spec": {"replicas": 9, "selector": {"matchLabels": SELECTOR}},
    }
    emulator.put(DEPLOYMENTS, decoy)
    emulator.put(
        STATEFULSETS,
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "llama", "namespace": NS},
            "spec": {"replicas": 3, "selector": {"matchLabels": SELECTOR}},
        },
    )
    watcher = start_watcher(api, watchers, [WatchedWorkload(KEY, NS, SELECTOR, "StatefulSet")])
    eventually(lambda: _assert(watcher.synced(KEY)))
    eventually(lambda: _assert(watcher.counts(KEY, T0).spec == 3))
    assert emulator.requests(kmock.action.FETCH, "statefulsets")
    assert not emulator.requests(kmock.action.FETCH, "deployments")
    with pytest.raises(ValueError, match="kind 'DaemonSet'"):
        WatchedWorkload(KEY, NS, SELECTOR, "DaemonSet")


def test_workloads_sharing_a_selector_share_one_watch(emulator, api, watchers):
    emulator.put(PODS, ready_pod("a", T0, 60))
    twins = [
        WatchedWorkload(KEY, NS, SELECTOR),
        WatchedWorkload(f"{NS}/llama-canary", NS, SELECTOR),
        WatchedWorkload(f"{NS}/mistral", NS, {"app": "mistral"}),
    ]
    watcher = start_watcher(api, watchers, twins)
    eventually(lambda: _assert(all(watcher.synced(w.key) for w in twins)))
    eventually(lambda: _assert(emulator.watching() == 2))
    selectors = sorted(r.params["labelSelector"] for r in emulator.requests(kmock.action.WATCH))
    assert selectors == ["app=llama", "app=mistral"]
    assert watcher.counts(f"{NS}/llama-canary", T0).ready == 1
    assert watcher.counts(f"{NS}/mistral", T0).ready == 0
    assert watcher.keys() == sorted(w.key for w in twins)
    with pytest.raises(KeyError):
        watcher.counts("llm/unknown", T0)


def test_a_watch_that_ends_is_resumed_without_a_new_list(emulator, api, watchers):
    # the first watch answers one event and ends, as a server-side timeoutSeconds does
    fired = emulator.react_once(
        kmock.action.WATCH, lambda: ({"type": "ADDED", "object": ready_pod("a", T0, 60)},)
    )
    kubectl = Kubectl(api)
    watcher = start_watcher(api, watchers)
    eventually(lambda: _assert(fired == [1]))
    synced_and_watching(watcher, emulator)
    assert len(emulator.requests(kmock.action.WATCH)) == 2
    assert len(emulator.requests(kmock.action.LIST)) == 1
    assert watcher.counts(KEY, T0).ready == 1  # the event of the ended stream was kept

    kubectl.create(pod_body("b", created=T0 + 10))  # and the resumed watch is live
    eventually(lambda: _assert(state_counts(watcher) == (1, 0, 1, 0)))


def test_an_expired_resource_version_in_the_stream_means_a_new_list(emulator, api, watchers):
    emulator.put(PODS, ready_pod("a", T0, 60))
    emulator.put(PODS, ready_pod("b", T0, 60))

    def expire() -> tuple[dict[str, Any], ...]:
        # "b" goes away while the watch is broken: no DELETED event will ever tell
        emulator.kmock.objects[PODS, NS, "b"].delete()
        gone = {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "code": 410,
            "reason": "Expired",
            "message": "too old resource version: 1 (42)",
        }
        return ({"type": "ERROR", "object": gone},)

    fired = emulator.react_once(kmock.action.WATCH, expire)
    watcher = start_watcher(api, watchers)
    eventually(lambda: _assert(fired == [1]))
    eventually(lambda: _assert(len(emulator.requests(kmock.action.LIST)) == 2))
    synced_and_watching(watcher, emulator)
    assert [p.name for p in watcher.pods(KEY)] == ["a"]


def test_an_http_410_on_watch_means_a_new_list(emulator, api, watchers):
    emulator.put(PODS, ready_pod("a", T0, 60))

    def gone() -> Any:
        emulator.kmock.objects[PODS, NS, "a"].delete()
        raise kmock.KubernetesError(status=410, reason="Expired", message="too old")

    fired = emulator.react_once(kmock.action.WATCH, gone)
    watcher = start_watcher(api, watchers)
    eventually(lambda: _assert(fired == [1]))
    eventually(lambda: _assert(len(emulator.requests(kmock.action.LIST)) == 2))
    synced_and_watching(watcher, emulator)
    assert watcher.pods(KEY) == []


def test_a_dropped_connection_is_retried_with_a_new_list(emulator, api, watchers, caplog):
    emulator.put(PODS, ready_pod("a", T0, 60))
    emulator.put(PODS, ready_pod("b", T0, 60))
    kubectl = Kubectl(api)
    watcher = start_watcher(api, watchers)
    synced_and_watching(watcher, emulator)
    assert state_counts(watcher) == (0, 0, 2, 0)

    emulator.forget(PODS, "b")  # missed: the watch is about to break
    with caplog.at_level(logging.WARNING, logger="autoscaler.clients.kube.pods"):
        emulator.drop_connections()
        eventually(lambda: _assert(len(emulator.requests(kmock.action.LIST)) == 2))
        synced_and_watching(watcher, emulator)
    assert [p.name for p in watcher.pods(KEY)] == ["a"]
    assert "retrying in" in caplog.text
    assert watcher.synced(KEY)  # the cache was never emptied in between

    kubectl.create(pod_body("c", created=T0 + 10))  # the new watch is live
    eventually(lambda: _assert(state_counts(watcher) == (1, 0, 1, 0)))


def retry_delays(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        match.group(1)
        for record in caplog.records
        if record.name == "autoscaler.clients.kube.pods"
        for match in [re.search(r"retrying in ([0-9.]+) s", record.getMessage())]
        if match
    ]


def test_a_watcher_started_before_the_api_server_syncs_once_it_is_up(watchers, caplog):
    port = free_port()
    api_client = build_api_client(host=f"http://127.0.0.1:{port}")
    emu = Emulator()
    try:
        with caplog.at_level(logging.WARNING, logger="autoscaler.clients.kube.pods"):
            watcher = start_watcher(api_client, watchers, backoff_s=0.1, max_backoff_s=0.4)
            eventually(lambda: _assert(len(retry_delays(caplog)) >= 4))
            assert not watcher.synced(KEY)
            with pytest.raises(NotSyncedError, match="no complete list yet"):
                watcher.counts(KEY, T0)  # "none seen yet" is not "none running"
            assert watcher.time_to_ready_s(KEY) is None and watcher.pods(KEY) == []
            assert retry_delays(caplog)[:4] == ["0.1", "0.2", "0.4", "0.4"]  # doubling, capped
            assert "cannot connect" in caplog.text and f"127.0.0.1:{port}" in caplog.text
            emu.open()
            emu.put(PODS, ready_pod("a", T0, 60))
            emu.serve(port)
            eventually(lambda: _assert(watcher.synced(KEY)))
        assert watcher.counts(KEY, T0).ready == 1
    finally:
        for w in watchers:
            w.stop()
        api_client.close()  # type: ignore[no-untyped-call]
        if emu.server is not None:
            emu.close()


def test_a_forbidden_watch_is_retried_with_growing_back_off(emulator, api, watchers, caplog):
    emulator.put(PODS, ready_pod("a", T0, 60))

    def forbid() -> Any:
        raise kmock.KubernetesError(
            status=403, reason="Forbidden", message='pods is forbidden: cannot "watch"'
        )

    emulator.run(lambda: emulator.kmock[kmock.action.WATCH, kmock.resource(PODS)] << forbid)
    with caplog.at_level(logging.WARNING, logger="autoscaler.clients.kube.pods"):
        watcher = start_watcher(api, watchers, backoff_s=0.1, max_backoff_s=0.4)
        eventually(lambda: _assert(len(retry_delays(caplog)) >= 3))
    # each list succeeds, but that alone does not reset the back-off
    assert retry_delays(caplog)[:3] == ["0.1", "0.2", "0.4"]
    assert "HTTP 403 pods is forbidden" in caplog.text
    assert watcher.synced(KEY) and watcher.counts(KEY, T0).ready == 1  # the lists still count


def test_stop_ends_all_threads_even_on_a_silent_watch(emulator, api, watchers):
    watcher = start_watcher(api, watchers, stop_timeout_s=10)
    synced_and_watching(watcher, emulator)
    watcher.stop()
    alive = [t.name for t in threading.enumerate() if t.name.startswith(("pods ", "deploy"))]
    assert alive == []
    with pytest.raises(RuntimeError, match="already"):
        watcher.start()


def test_watched_workload_validation():
    with pytest.raises(ValueError, match="namespace"):
        WatchedWorkload("llama", NS, SELECTOR)
    with pytest.raises(ValueError, match="namespace"):
        WatchedWorkload("other/llama", NS, SELECTOR)
    with pytest.raises(ValueError, match="empty selector"):
        WatchedWorkload(KEY, NS, {})
    assert WatchedWorkload(KEY, NS, SELECTOR).name == "llama"
    assert format_selector({"b": "2", "a": "1"}) == "a=1,b=2"


# -- shadow mode: the current autoscaler ----------------------------------------------------------


def hpa(
    name: str,
    target: str,
    *,
    current: int | None = 3,
    desired: int | None = 5,
    kind: str = "Deployment",
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    status = {}
    if current is not None:
        status["currentReplicas"] = current
    if desired is not None:
        status["desiredReplicas"] = desired
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": NS, "labels": labels or {}},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": kind, "name": target},
            "minReplicas": 1,
            "maxReplicas": 10,
        },
        "status": status,
    }


def test_reads_the_hpa_that_targets_the_workload(emulator, api):
    emulator.put(HPAS, hpa("other", "mistral", current=1, desired=1))
    emulator.put(HPAS, hpa("llama-hpa", "llama", current=3, desired=5))
    assert read_current_autoscaler(api, NS, "llama") == CurrentAutoscaler(
        kind="HorizontalPodAutoscaler", name="llama-hpa", current_replicas=3, desired_replicas=5
    )
    assert read_current_autoscaler(api, NS, "phi") is None
    reader = CurrentAutoscalerReader(api)  # the same, as the loop's shadow source
    current = reader.current(NS, "llama")
    assert current is not None and current.name == "llama-hpa"


def test_recognises_the_hpa_keda_generates(emulator, api):
    emulator.put(
        HPAS,
        hpa(
            "keda-hpa-llama-so",
            "llama",
            current=2,
            desired=4,
            labels={"scaledobject.keda.sh/name": "llama-so"},
        ),
    )
    assert read_current_autoscaler(api, NS, "llama") == CurrentAutoscaler(
        kind="ScaledObject", name="llama-so", current_replicas=2, desired_replicas=4
    )


def test_no_hpas_or_no_hpa_api_means_no_autoscaler(emulator, api):
    assert read_current_autoscaler(api, NS, "llama") is None  # the resource exists, empty

    def drop_hpa_api() -> None:
        del emulator.kmock.resources[HPAS]

    emulator.run(drop_hpa_api)
    assert read_current_autoscaler(api, NS, "llama") is None  # 404: the API is not served


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        ([], None),
        (["junk", {"metadata": "x"}, {"metadata": {"name": "h"}, "spec": {}}], None),
        ([hpa("h", "llama", kind="ReplicaSet")], None),
        (
            [hpa("h", "llama", kind="StatefulSet", current=None, desired=None)],
            CurrentAutoscaler("HorizontalPodAutoscaler", "h", None, None),
        ),
        (
            [{**hpa("h", "llama"), "status": {"currentReplicas": -1, "desiredReplicas": True}}],
            CurrentAutoscaler("HorizontalPodAutoscaler", "h", None, None),
        ),
        (  # KEDA with a custom HPA name: the owner reference still tells
            [
                {
                    **hpa("custom", "llama"),
                    "metadata": {
                        "name": "custom",
                        "ownerReferences": [
                            {
                                "apiVersion": "keda.sh/v1alpha1",
                                "kind": "ScaledObject",
                                "name": "so-1",
                            }
                        ],
                    },
                }
            ],
            CurrentAutoscaler("ScaledObject", "so-1", 3, 5),
        ),
        ([hpa("keda-hpa-so-2", "llama")], CurrentAutoscaler("ScaledObject", "so-2", 3, 5)),
        (  # two HPAs on one target: the first by name is reported
            [hpa("zeta", "llama", current=9), hpa("alpha", "llama", current=1)],
            CurrentAutoscaler("HorizontalPodAutoscaler", "alpha", 1, 5),
        ),
    ],
)
def test_find_current_autoscaler(items, expected):
    assert find_current_autoscaler(items, "llama") == expected


# -- Events -------------------------------------------------------------------------------------


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_events_are_created_then_counted_within_ten_minutes(emulator, api):
    clock = Clock(T0)
    recorder = EventRecorder(api, instance="llm-autoscaler-0", clock=clock)
    first = recorder.record(
        NS, "llama", "CapacityUnavailable", "2 replicas pending > 600 s", type="Warning"
    )
    assert first.action == "created" and first.ok and first.count == 1
    assert first.name is not None
    stored = emulator.get(EVENTS, first.name)
    assert stored["involvedObject"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "llama",
        "namespace": NS,
    }
    assert stored["reason"] == "CapacityUnavailable"
    assert stored["type"] == "Warning"
    assert stored["count"] == 1
    assert stored["source"] == {"component": "llm-autoscaler"}
    assert stored["reportingComponent"] == "llm-autoscaler"
    assert stored["reportingInstance"] == "llm-autoscaler-0"
    assert stored["firstTimestamp"].startswith("2024-05-01T12:00:00")

    clock.now = T0 + 300
    second = recorder.record(
        NS, "llama", "CapacityUnavailable", "3 replicas pending > 600 s", type="Warning"
    )
    assert (second.action, second.name, second.count) == ("counted", first.name, 2)
    stored = emulator.get(EVENTS, first.name)
    assert stored["count"] == 2
    assert stored["message"] == "3 replicas pending > 600 s"
    assert stored["lastTimestamp"] == "2024-05-01T12:05:00Z"
    assert len(emulator.requests(kmock.action.CREATE, "events")) == 1

    other = recorder.record(NS, "llama", "ScaledUp", "2 -> 3")  # another reason: its own Event
    assert other.action == "created" and other.name != first.name

    clock.now = T0 + 300 + 601  # quiet for longer than the window: a fresh Event
    third = recorder.record(NS, "llama", "CapacityUnavailable", "again", type="Warning")
    assert third.action == "created" and third.name != first.name and third.count == 1


def test_warn_is_a_warning_event_for_the_loop(emulator, api):
    recorder = EventRecorder(api)
    recorder.warn(NS, "llama", "CapacityUnavailable", "1 replica(s) not ready after 600s")
    recorder.warn(NS, "llama", "CapacityUnavailable", "2 replica(s) not ready after 600s")
    (created,) = emulator.requests(kmock.action.CREATE, "events")
    stored = emulator.get(EVENTS, created.data["metadata"]["name"])
    assert stored["type"] == "Warning" and stored["count"] == 2


def test_only_the_lease_holder_writes_events(emulator, api):
    """Every service replica sees the same stuck pods; one Event, from the leader, names it."""
    leading = {"llm-autoscaler-0": True, "llm-autoscaler-1": False}
    recorders = [
        EventRecorder(api, instance=name, leader=lambda name=name: leading[name])
        for name in leading
    ]
    message = "12 replica(s) not ready after 600s"
    outcomes = [r.record(NS, "llama", "CapacityUnavailable", message, "Warning") for r in recorders]
    assert [o.action for o in outcomes] == ["created", "skipped"]
    (created,) = emulator.requests(kmock.action.CREATE, "events")
    stored = emulator.get(EVENTS, created.data["metadata"]["name"])
    assert stored["reportingInstance"] == "llm-autoscaler-0" and stored["count"] == 1
    leading.update({"llm-autoscaler-0": False, "llm-autoscaler-1": True})  # the Lease moved
    outcomes = [r.record(NS, "llama", "CapacityUnavailable", message, "Warning") for r in recorders]
    assert [o.action for o in outcomes] == ["skipped", "created"]


def test_events_land_on_the_workloads_own_kind(emulator, api):
    recorder = EventRecorder(api, kinds={KEY: "StatefulSet"})
    on_sts = recorder.record(NS, "llama", "CapacityUnavailable", "pending", type="Warning")
    on_dep = recorder.record(NS, "mistral", "CapacityUnavailable", "pending", type="Warning")
    assert on_sts.name is not None and on_dep.name is not None
    assert emulator.get(EVENTS, on_sts.name)["involvedObject"]["kind"] == "StatefulSet"
    assert emulator.get(EVENTS, on_dep.name)["involvedObject"]["kind"] == "Deployment"
    with pytest.raises(ValueError, match="kind"):
        EventRecorder(api, kinds={KEY: "Pod"})


def test_an_event_that_expired_in_the_cluster_is_created_anew(emulator, api):
    clock = Clock(T0)
    recorder = EventRecorder(api, clock=clock)
    first = recorder.record(NS, "llama", "CapacityUnavailable", "pending")
    assert first.name is not None
    emulator.forget(EVENTS, first.name)  # the API server's event TTL removed it
    clock.now += 60
    again = recorder.record(NS, "llama", "CapacityUnavailable", "pending")
    assert again.action == "created" and again.name != first.name
    assert emulator.get(EVENTS, again.name or "")["count"] == 1


def test_event_arguments_are_checked(api):
    recorder = EventRecorder(api)
    with pytest.raises(ValueError, match="Normal or Warning"):
        recorder.record(NS, "llama", "X", "m", type="Error")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="reason"):
        recorder.record(NS, "llama", "", "m")


def test_a_long_message_is_cut_to_what_the_api_keeps(emulator, api):
    outcome = EventRecorder(api).record(NS, "llama", "Hold", "x" * 5000)
    assert len(emulator.get(EVENTS, outcome.name or "")["message"]) == 1024


# -- errors -------------------------------------------------------------------------------------


@pytest.fixture
def unreachable() -> Iterator[client.ApiClient]:
    api_client = build_api_client(host=f"http://127.0.0.1:{free_port()}")
    yield api_client
    api_client.close()  # type: ignore[no-untyped-call]


def test_unreachable_api_server_gives_a_clear_error(unreachable):
    with pytest.raises(KubernetesError) as caught:
        read_current_autoscaler(unreachable, NS, "llama", request_timeout=(1.0, 1.0))
    error = caught.value
    assert isinstance(error, ExternalSystemError)
    assert error.status is None
    assert str(error).startswith(f"Kubernetes API at {unreachable.configuration.host}: ")
    assert "list horizontalpodautoscalers in llm: cannot connect" in str(error)
    assert "\n" not in str(error)


def test_event_recording_against_an_unreachable_server_fails_softly(unreachable, caplog):
    recorder = EventRecorder(unreachable, request_timeout=(1.0, 1.0))
    with caplog.at_level(logging.WARNING, logger="autoscaler.clients.kube.workloads"):
        outcome = recorder.record(NS, "llama", "CapacityUnavailable", "pending")
    assert outcome.action == "failed" and not outcome.ok
    assert outcome.error is not None and "cannot connect" in str(outcome.error)
    assert "event not recorded" in caplog.text


def test_api_errors_carry_the_servers_status_message(emulator, api):
    def forbid() -> Any:
        raise kmock.KubernetesError(
            status=403,
            reason="Forbidden",
            message='horizontalpodautoscalers.autoscaling is forbidden: User "x" cannot list',
        )

    emulator.run(lambda: emulator.kmock[kmock.action.LIST, kmock.resource(HPAS)] << forbid)
    with pytest.raises(KubernetesError) as caught:
        read_current_autoscaler(api, NS, "llama")
    assert caught.value.status == 403
    assert caught.value.reason == "Forbidden"
    assert "HTTP 403 horizontalpodautoscalers.autoscaling is forbidden" in str(caught.value)


def test_kubernetes_error_translation_of_odd_exceptions():
    assert kubernetes_error("op", ValueError("bad")).problem == "ValueError: bad"
    assert kubernetes_error("op", TimeoutError()).problem == "timed out waiting for the API server"
    api_exc = client.ApiException(status=500, reason="Internal Server Error")
    translated = kubernetes_error("op", api_exc, host="https://k8s:6443")
    assert (
        str(translated) == "Kubernetes API at https://k8s:6443: op: HTTP 500 Internal Server Error"
    )
    same = KubernetesError("op", "x")
    assert kubernetes_error("other", same) is same


def test_build_api_client_from_a_kubeconfig(emulator, tmp_path):
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: test\n"
        f"clusters:\n- name: kmock\n  cluster:\n    server: {emulator.url}\n"
        "contexts:\n- name: test\n  context:\n    cluster: kmock\n    user: nobody\n"
        "users:\n- name: nobody\n  user: {}\n"
    )
    emulator.put(HPAS, hpa("llama-hpa", "llama"))
    api_client = build_api_client(kubeconfig=str(kubeconfig))
    try:
        assert api_client.configuration.host == emulator.url
        current = read_current_autoscaler(api_client, NS, "llama")
        assert current is not None and current.desired_replicas == 5
    finally:
        api_client.close()  # type: ignore[no-untyped-call]


def test_build_api_client_says_what_is_wrong(tmp_path, monkeypatch):
    with pytest.raises(KubernetesConfigError, match="not an http"):
        build_api_client(host="127.0.0.1:6443")
    missing = tmp_path / "nope"
    with pytest.raises(KubernetesConfigError, match=f"load kubeconfig: {missing}") as caught:
        build_api_client(kubeconfig=str(missing))
    assert isinstance(caught.value, InputError)  # a user's mistake: CLI exit code 2
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT", raising=False)
    with pytest.raises(KubernetesConfigError, match="not running in a pod"):
        build_api_client()


def test_malformed_watch_events_are_skipped(emulator, api, watchers, caplog):
    broken = pod_body("broken")
    broken["metadata"]["creationTimestamp"] = "yesterday"
    fired = emulator.react_once(
        kmock.action.WATCH,
        lambda: (
            {"type": "ADDED", "object": broken},
            {"type": "ADDED", "object": ["not", "a", "pod"]},
            {"type": "SOMETHING", "object": {"metadata": {"name": "x"}}},
            {"type": "ADDED", "object": ready_pod("fine", T0, 30)},
        ),
    )
    with caplog.at_level(logging.WARNING, logger="autoscaler.clients.kube.pods"):
        watcher = start_watcher(api, watchers)
        eventually(lambda: _assert(fired == [1]))
        synced_and_watching(watcher, emulator)
    assert [p.name for p in watcher.pods(KEY)] == ["fine"]
    assert "llm/broken" in caplog.text and "unknown watch event type 'SOMETHING'" in caplog.text
    assert all(t.name != "pods llm [app=llama]" or t.is_alive() for t in threading.enumerate())
    assert watcher.counts(KEY, T0).ready == 1
    assert ReplicaState.READY is watcher.pods(KEY)[0].state

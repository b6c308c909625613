"""LeaderWorkerSet as a scale target, against kmock over HTTP with the LWS CRD's shape.

The objects follow kubernetes-sigs/lws ``config/crd/bases/leaderworkerset.x-k8s.io_
leaderworkersets.yaml`` (``spec.replicas``, ``spec.leaderWorkerTemplate.size``,
``status.replicas/readyReplicas/hpaPodSelector``) and the pod labels the LWS controller sets
(``leaderworkerset.sigs.k8s.io/name``, ``/group-index``, ``/worker-index``). kmock serves the
``scale`` subresource as the object itself; a reaction answers GET ``.../scale`` with the
``autoscaling/v1`` Scale an API server builds from the CRD's scale paths, so the client reads
the shape a real cluster sends.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import kmock
import pytest

from autoscaler.clients.kube import KubernetesError, build_api_client
from autoscaler.clients.kube import leaderworkersets as lws
from autoscaler.clients.kube.pods import NotSyncedError, PodWatcher, WatchedWorkload
from tests.test_kube_client import NS, PODS, Emulator, Kubectl, eventually, start_watcher, ts

LWS = "leaderworkerset.x-k8s.io/v1/leaderworkersets"
T0 = 1_714_564_800.0
SELECTOR = "leaderworkerset.sigs.k8s.io/name=big,leaderworkerset.sigs.k8s.io/worker-index=0"


def _lws(name: str = "big", replicas: int = 2, size: Any = 4) -> dict[str, Any]:
    template: dict[str, Any] = {"workerTemplate": {"spec": {"containers": []}}}
    if size is not None:
        template["size"] = size
    return {
        "apiVersion": "leaderworkerset.x-k8s.io/v1",
        "kind": "LeaderWorkerSet",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": replicas,
            "leaderWorkerTemplate": template,
            "startupPolicy": "LeaderCreated",
        },  # fmt: skip
        "status": {
            "replicas": replicas,
            "readyReplicas": 1,
            "updatedReplicas": replicas,
            "hpaPodSelector": SELECTOR,
        },  # fmt: skip
    }


def _pod(group: int, worker: int, created: float, ready: float | None, node: str,
         lws_name: str = "big") -> dict[str, Any]:  # fmt: skip
    name = f"{lws_name}-{group}" if worker == 0 else f"{lws_name}-{group}-{worker}"
    conditions = [{"type": "Ready", "status": "True" if ready else "False",
                   "lastTransitionTime": ts(ready or created)}]  # fmt: skip
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": NS,
            "creationTimestamp": ts(created),
            "labels": {
                lws.NAME_LABEL: lws_name,
                lws.GROUP_INDEX_LABEL: str(group),
                lws.WORKER_INDEX_LABEL: str(worker),
            },  # fmt: skip
        },
        "spec": {"nodeName": node, "containers": []},
        "status": {"phase": "Running", "conditions": conditions},
    }


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    emu = Emulator().open()

    def install() -> None:
        emu.kmock.resources[LWS] = kmock.ResourceInfo(subresources={"scale", "status"})

        def scale(request: kmock.Request) -> Any:
            if request.action != kmock.action.FETCH:
                return NotImplemented
            obj = emu.kmock.objects[LWS, NS, request.name].raw
            return {
                "kind": "Scale",
                "apiVersion": "autoscaling/v1",
                "metadata": {"name": request.name, "namespace": NS},
                "spec": {"replicas": obj["spec"]["replicas"]},
                "status": {
                    "replicas": obj["status"]["replicas"],
                    "selector": obj["status"]["hpaPodSelector"],
                },  # fmt: skip
            }

        emu.kmock[kmock.resource(LWS), kmock.subresource("scale")] << scale

    emu.run(install)
    emu.serve()
    yield emu
    emu.close()


def test_reads_the_group_count_and_size_of_a_leaderworkerset(emulator):
    emulator.put(LWS, _lws())
    api = build_api_client(host=emulator.url)
    target = lws.read_lws(api, NS, "big")
    assert target is not None
    assert (target.spec_replicas, target.status_replicas, target.ready_replicas) == (2, 2, 1)
    assert target.group_size == 4
    assert target.selector == SELECTOR
    assert lws.read_lws(api, NS, "absent") is None


def test_size_defaults_to_one_and_a_bad_one_is_one_clear_error(emulator):
    emulator.put(LWS, _lws("solo", size=None))
    emulator.put(LWS, _lws("broken", size="four"))
    api = build_api_client(host=emulator.url)
    solo = lws.read_lws(api, NS, "solo")
    assert solo is not None and solo.group_size == 1
    with pytest.raises(KubernetesError, match=r"broken spec\.leaderWorkerTemplate\.size"):
        lws.read_lws(api, NS, "broken")


def test_the_scale_subresource_reads_and_writes_groups(emulator):
    emulator.put(LWS, _lws(replicas=2))
    api = build_api_client(host=emulator.url)
    assert lws.read_scale(api, NS, "big") == (2, 2, SELECTOR)
    assert lws.patch_scale(api, NS, "big", 3) == 3
    assert emulator.get(LWS, "big")["spec"]["replicas"] == 3
    patches = emulator.requests(kmock.action.UPDATE, "leaderworkersets")
    assert patches and patches[-1].subresource == "scale"


def test_groups_are_ready_when_all_their_pods_are_and_count_every_pod(emulator):
    emulator.put(LWS, _lws(replicas=2))
    # group 0: created at T0, its last pod Ready at T0 + 300 s; group 1: one worker not Ready
    for worker in range(4):
        ready = T0 + 200 + 100 * (worker == 3)
        emulator.put(PODS, _pod(0, worker, T0 + worker, ready, f"node-{worker}"))
    for worker in range(4):
        ready = None if worker == 2 else T0 + 900
        emulator.put(PODS, _pod(1, worker, T0 + 600, ready, f"node-{4 + worker}"))
    emulator.put(PODS, _pod(0, 0, T0, T0 + 10, "node-9", lws_name="other"))
    api = build_api_client(host=emulator.url)
    pods = lws.list_group_pods(api, NS, "big")
    groups = lws.group_states(pods, "big")  # kmock ignores the selector: filtered here too
    assert [g.index for g in groups] == [0, 1]
    assert groups[0].ready(4) and not groups[1].ready(4)
    assert groups[0].lead_time_s == pytest.approx(300.0)
    assert lws.group_lead_times(groups, 4) == [pytest.approx(300.0)]
    counts = lws.replica_counts(groups, 4, now=T0 + 1200)
    assert (counts.spec, counts.ready, counts.starting) == (2, 1, 1)
    assert counts.oldest_unready_age_s == pytest.approx(600.0)
    # every pod holds its GPUs: group 0 for ~1200 s, group 1 for 600 s, 4 pods x 8 GPUs each
    hours = lws.gpu_hours(groups, gpus_per_pod=8, now=T0 + 1200)
    assert hours == pytest.approx(4 * 8 * (1200 + 600) / 3600)
    assert groups[1].nodes == ("node-4", "node-5", "node-6", "node-7")


def test_a_scale_up_of_groups_warms_every_node_they_use():
    assert lws.nodes_to_warm(2, 4) == 8
    assert lws.nodes_to_warm(2, 4, pods_per_node=2) == 4
    assert lws.nodes_to_warm(0, 4) == 0


@pytest.fixture
def pod_watchers() -> Iterator[list[PodWatcher]]:
    started: list[PodWatcher] = []
    yield started
    for watcher in started:
        watcher.stop()


def test_the_pod_watch_counts_groups_and_times_them_from_the_lws(emulator, pod_watchers):
    """The pod watch of a LeaderWorkerSet target: spec and size from the LWS object, readiness
    the group's (every pod Ready), the lead time the group's; pods of another LWS ignored."""
    emulator.put(LWS, _lws(replicas=3))
    for worker in range(4):
        emulator.put(PODS, _pod(0, worker, T0 + worker, T0 + 200 + 100 * (worker == 3), "n"))
    for worker in range(4):
        emulator.put(PODS, _pod(1, worker, T0 + 600, None if worker == 2 else T0 + 900, "n"))
    emulator.put(PODS, _pod(0, 0, T0, T0 + 10, "n", lws_name="other"))
    api = build_api_client(host=emulator.url)
    key = f"{NS}/big"
    watcher = start_watcher(
        api, pod_watchers, [WatchedWorkload(key, NS, {lws.NAME_LABEL: "big"}, lws.KIND)]
    )

    def counts() -> tuple[int, int, int]:
        try:
            c = watcher.counts(key, T0 + 1200)
        except NotSyncedError as exc:
            raise AssertionError(f"not synced: {exc}") from exc
        return (c.spec, c.ready, c.starting)

    # spec.replicas (3 groups asked for), one group ready, one starting (a worker not Ready)
    assert eventually(lambda: _expect(counts(), (3, 1, 1)))
    assert watcher.time_to_ready_s(key) == pytest.approx(300.0)
    # the last worker of group 1 turns Ready: the group does, lead time 300 s and 300 s
    Kubectl(api).make_ready("big-1-2", T0 + 900)  # through the API: the watch sees it
    assert eventually(lambda: _expect(counts(), (3, 2, 0)))
    assert watcher.time_to_ready_s(key) == pytest.approx(300.0)


def test_a_leaderworkerset_without_its_object_has_no_counts(emulator, pod_watchers):
    """Without the group size (no LWS object) pods are not counted as replicas: that would
    overstate the fleet size-fold. The loop holds instead (NotSyncedError)."""
    for worker in range(4):
        emulator.put(PODS, _pod(0, worker, T0, T0 + 100, "n"))
    api = build_api_client(host=emulator.url)
    key = f"{NS}/big"
    watcher = start_watcher(
        api, pod_watchers, [WatchedWorkload(key, NS, {lws.NAME_LABEL: "big"}, lws.KIND)]
    )
    eventually(lambda: watcher.synced(key) or _fail("not synced"))
    with pytest.raises(NotSyncedError, match="group size"):
        watcher.counts(key, T0 + 200)
    assert watcher.time_to_ready_s(key) is None


def _fail(why: str) -> bool:
    raise AssertionError(why)


def _expect(got: tuple[int, int, int], want: tuple[int, int, int]) -> bool:
    assert got == want
    return True

"""Replica states from kube-state-metrics: the pure grouping, and the source against a real
Prometheus (the Debian binary) scraping a small exporter of KSM-format series on 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from autoscaler.clients.prometheus import PrometheusClient, Sample
from autoscaler.config import WorkloadConfig
from autoscaler.live.ksm_replicas import KubeStateMetricsReplicas, ksm_queries, pods_by_workload
from autoscaler.live.loop import ReplicaSource
from tests.live_stack import prometheus_scraping

NOW = 1_800_000_000.0


def s(name: str, value: float = 1.0, **labels: str) -> Sample:
    return Sample({"__name__": name, **labels}, NOW, value)


def workload(name: str, kind: str = "Deployment", namespace: str = "llm") -> WorkloadConfig:
    return WorkloadConfig(
        namespace=namespace, name=name, kind=kind, engine="vllm", selector={"app": name}
    )


# One Deployment "llama" (ReplicaSets llama-a and an old llama-b), one StatefulSet "qwen":
#   llama-a-1 ready, llama-a-2 starting (scheduled, not ready), llama-a-3 pending (unscheduled),
#   llama-b-1 terminating, llama-b-2 finished (Succeeded), qwen-0 ready, other-1 owned elsewhere.
PODS = {
    # pod: (owner kind, owner name, phase, ready, scheduled, deleting, created, ready_time)
    "llama-a-1": ("ReplicaSet", "llama-a", "Running", 1, 1, False, NOW - 600, NOW - 420),
    "llama-a-2": ("ReplicaSet", "llama-a", "Running", 0, 1, False, NOW - 100, None),
    "llama-a-3": ("ReplicaSet", "llama-a", "Pending", 0, 0, False, NOW - 900, None),
    "llama-b-1": ("ReplicaSet", "llama-b", "Running", 1, 1, True, NOW - 5000, NOW - 4800),
    "llama-b-2": ("ReplicaSet", "llama-b", "Succeeded", 0, 1, False, NOW - 6000, None),
    "qwen-0": ("StatefulSet", "qwen", "Running", 1, 1, False, NOW - 300, None),
    "qwen-1": ("StatefulSet", "qwen", "Running", 0, 1, False, NOW - 100, None),
    "other-1": ("ReplicaSet", "other-x", "Running", 1, 1, False, NOW - 50, NOW - 10),
}
REPLICASETS = {"llama-a": "llama", "llama-b": "llama", "other-x": "other"}
SPECS = {  # KSM's names: a Deployment's spec is *_spec_replicas, a StatefulSet's *_replicas
    ("deployment", "llama", "kube_deployment_spec_replicas"): 3,
    ("statefulset", "qwen", "kube_statefulset_replicas"): 2,
}


def canned() -> dict[str, list[Sample]]:
    """What each of ksm_queries' queries returns for the cluster above."""
    out: dict[str, list[Sample]] = {role: [] for role in ksm_queries(["llm"])}
    for pod, (ok, on, phase, ready, sched, deleting, created, rt) in PODS.items():
        common = {"namespace": "llm", "pod": pod, "uid": f"uid-{pod}"}
        out["owner"].append(s("kube_pod_owner", owner_kind=ok, owner_name=on, **common))
        out["phase"].append(s("kube_pod_status_phase", phase=phase, **common))
        out["ready"].append(s("kube_pod_status_ready", ready, condition="true", **common))
        out["scheduled"].append(s("kube_pod_status_scheduled", sched, condition="true", **common))
        out["created"].append(s("kube_pod_created", created, **common))
        if deleting:
            out["deleted"].append(s("kube_pod_deletion_timestamp", NOW - 5, **common))
        if rt is not None:
            out["ready_time"].append(s("kube_pod_status_ready_time", rt, **common))
    for rs, dep in REPLICASETS.items():
        out["rs_owner"].append(
            s(
                "kube_replicaset_owner",
                namespace="llm",
                replicaset=rs,
                owner_kind="Deployment",
                owner_name=dep,
            )  # fmt: skip
        )
    for (kind, name, metric), n in SPECS.items():
        out[f"{kind}_spec"].append(s(metric, n, namespace="llm", **{kind: name}))
    return out


def test_pods_are_grouped_by_their_owning_workload():
    grouped = pods_by_workload(canned())
    llama = {p.name for p in grouped[("llm", "Deployment", "llama")]}
    assert llama == {"llama-a-1", "llama-a-2", "llama-a-3", "llama-b-1"}  # not the finished one
    assert {p.name for p in grouped[("llm", "StatefulSet", "qwen")]} == {"qwen-0", "qwen-1"}
    assert ("llm", "Deployment", "other") in grouped
    assert len(grouped[("llm", "StatefulSet", "qwen")]) == 2


class FakePrometheus:
    def __init__(self, results: dict[str, list[Sample]]) -> None:
        self.by_query = {q: results[role] for role, q in ksm_queries(["llm"]).items()}
        self.calls: list[str] = []

    def query(
        self, promql: str, *, at: float | None = None, deadline: float | None = None
    ) -> list[Sample]:
        self.calls.append(promql)
        return self.by_query[promql]

    def query_range(self, *args: object) -> list[object]:  # pragma: no cover - not used
        raise AssertionError("no range queries")


def test_counts_classify_like_the_pod_watch_with_one_refresh_per_tick():
    prom = FakePrometheus(canned())
    source: ReplicaSource = KubeStateMetricsReplicas(
        prom, [workload("llama"), workload("qwen", "StatefulSet")]
    )
    llama = source.counts("llm/llama", NOW)
    assert (llama.spec, llama.ready, llama.starting, llama.pending, llama.terminating) == (
        3, 1, 1, 1, 1,
    )  # fmt: skip
    assert llama.starting_ages_s == (900.0, 100.0)  # oldest unready first
    qwen = source.counts("llm/qwen", NOW)
    assert (qwen.spec, qwen.ready, qwen.starting) == (2, 1, 1)
    assert len(prom.calls) == 10  # both workloads from one refresh: the query count is fixed
    # ready_time - created of llama-a-1 (180 s) and llama-b-1 (200 s, Ready before it was deleted)
    assert source.time_to_ready_s("llm/llama") == 190.0
    # no ready-time series (older KSM): qwen-0 was Ready before we looked, so it tells nothing
    assert source.time_to_ready_s("llm/qwen") is None
    # qwen-1 turns Ready by the next tick: the first tick that saw it Ready stands in
    for smp in prom.by_query[ksm_queries(["llm"])["ready"]]:
        if smp.labels["pod"] == "qwen-1":
            prom.by_query[ksm_queries(["llm"])["ready"]].remove(smp)
            prom.by_query[ksm_queries(["llm"])["ready"]].append(Sample(smp.labels, NOW + 30, 1.0))
            break
    assert source.counts("llm/qwen", NOW + 30).ready == 2
    assert source.time_to_ready_s("llm/qwen") == 130.0  # (NOW + 30) - (NOW - 100)


def test_missing_kube_state_metrics_fails_static_instead_of_counting_zero():
    empty = {role: [] for role in ksm_queries(["llm"])}
    source = KubeStateMetricsReplicas(FakePrometheus(empty), [workload("llama")])
    with pytest.raises(LookupError, match="kube_pod_created"):
        source.counts("llm/llama", NOW)
    partial = canned()
    source = KubeStateMetricsReplicas(FakePrometheus(partial), [workload("gone")])
    with pytest.raises(LookupError, match="neither pods nor spec.replicas of Deployment llm/gone"):
        source.counts("llm/gone", NOW)


# -- against the real Prometheus ---------------------------------------------------------------


def exposition(now: float) -> str:
    """The canned cluster in KSM's text format (as kube-state-metrics serves it)."""
    lines = []
    for sample_list in canned().values():
        for smp in sample_list:
            labels = {k: v for k, v in smp.labels.items() if k != "__name__"}
            value = smp.value - NOW + now if smp.labels["__name__"] in (
                "kube_pod_created", "kube_pod_status_ready_time", "kube_pod_deletion_timestamp"
            ) else smp.value  # fmt: skip
            body = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
            lines.append(f"{smp.labels['__name__']}{{{body}}} {value!r}")
    return "\n".join(sorted(set(lines))) + "\n"


@pytest.fixture
def prometheus_with_ksm(tmp_path: Path, prometheus_binary: str) -> Iterator[tuple[str, float]]:
    start = time.time()
    with prometheus_scraping(prometheus_binary, tmp_path, exposition(start)) as url:
        yield url, start


def test_counts_from_a_real_prometheus_scraping_kube_state_metrics(prometheus_with_ksm):
    url, start = prometheus_with_ksm
    with PrometheusClient(url) as client:
        source = KubeStateMetricsReplicas(
            client, [workload("llama"), workload("qwen", "StatefulSet")]
        )
        deadline = time.monotonic() + 90
        while True:
            try:
                counts = source.counts("llm/llama", time.time())
                break
            except Exception as exc:  # not up, or not scraped yet
                if time.monotonic() > deadline:
                    raise AssertionError(f"Prometheus never served the KSM series: {exc}") from exc
                time.sleep(0.5)
        now = time.time()
        counts = source.counts("llm/llama", now)
        assert (counts.spec, counts.ready, counts.starting, counts.pending, counts.terminating) == (
            3, 1, 1, 1, 1,
        )  # fmt: skip
        ages = counts.starting_ages_s
        assert ages[0] == pytest.approx(900.0 + now - start, abs=1.0)
        qwen = source.counts("llm/qwen", now)
        assert (qwen.spec, qwen.ready) == (2, 1)
        assert source.time_to_ready_s("llm/llama") == pytest.approx(190.0, abs=1e-6)

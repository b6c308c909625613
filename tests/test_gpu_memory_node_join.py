"""GPU memory per replica from dcgm-exporter with and without its Kubernetes pod mapping, run by
the real Prometheus (the Debian binary) on a static exposition: the join is PromQL, so only the
real engine can show it files each GPU under the right replica."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from autoscaler.clients.prometheus import PrometheusClient
from autoscaler.engines.promql import gpu_memory_queries
from autoscaler.engines.registry import ENGINES
from tests.live_stack import prometheus_scraping

GIB = 1024.0  # dcgm-exporter reports the framebuffer in MiB

# node-a: chat-0's node, no pod mapping, Hostname = the node (NODE_NAME set): GPUs at 50% and 75%.
# node-b: chat-1's node, no pod mapping, Hostname = the exporter's pod name (NODE_NAME unset) but
#         the scrape set `node`: GPUs at 25% and 40%.
# node-c: chat-2's node, pod mapping on: its own GPU at 60%, an idle one (no pod) at 90%.
# node-d: chat-3's node, no pod mapping and Hostname = the exporter pod: nothing can place it.
# chat-4 is pending (kube_pod_info node=""), and exports no engine series.
GPUS = [
    # (node label or "", Hostname, gpu, used share, namespace, pod)
    ("", "node-a", "0", 0.50, "", ""),
    ("", "node-a", "1", 0.75, "", ""),
    ("node-b", "dcgm-exporter-x1", "0", 0.25, "", ""),
    ("node-b", "dcgm-exporter-x1", "1", 0.40, "", ""),
    ("", "node-c", "0", 0.60, "llm", "chat-2"),
    ("", "node-c", "1", 0.90, "", ""),
    ("", "dcgm-exporter-x9", "0", 0.95, "", ""),
]
PODS = {"chat-0": "node-a", "chat-1": "node-b", "chat-2": "node-c", "chat-3": "node-d"}


def exposition() -> str:
    lines = []
    for node, host, gpu, share, ns, pod in GPUS:
        labels = f'gpu="{gpu}",UUID="GPU-{host}-{gpu}",Hostname="{host}",modelName="NVIDIA H100"'
        labels += f',namespace="{ns}",pod="{pod}",container=""'
        if node:
            labels += f',node="{node}"'
        total = 80 * GIB
        lines.append(f"DCGM_FI_DEV_FB_USED{{{labels}}} {share * total}")
        lines.append(f"DCGM_FI_DEV_FB_FREE{{{labels}}} {(1 - share) * total}")
    for pod, node in {**PODS, "chat-4": ""}.items():
        lines.append(f'kube_pod_info{{namespace="llm",pod="{pod}",node="{node}",uid="u-{pod}"}} 1')
    for pod in PODS:
        lines.append(f'vllm:num_requests_running{{namespace="llm",workload="chat",pod="{pod}"}} 3')
    return "\n".join(lines) + "\n"


@pytest.fixture
def prometheus(tmp_path: Path, prometheus_binary: str) -> Iterator[str]:
    with prometheus_scraping(prometheus_binary, tmp_path, exposition()) as url:
        yield url


def test_each_replica_gets_its_own_gpu_or_its_nodes_fullest(prometheus: str) -> None:
    per_replica, mean, worst = gpu_memory_queries(ENGINES["vllm"], ENGINES["dcgm"])
    with PrometheusClient(prometheus) as client:
        deadline = time.monotonic() + 90
        rows = []
        while len(rows) < 3 and time.monotonic() < deadline:  # until the first scrape is in
            try:
                rows = client.query(per_replica.promql)
            except Exception:  # Prometheus not up yet
                rows = []
            time.sleep(0.5)
        by_pod = {r.labels["pod"]: r.value for r in rows}
        assert {r.labels["workload"] for r in rows} == {"chat"}
        # node join: the node's fullest GPU; the scrape's `node` label wins over a pod Hostname
        assert by_pod["chat-0"] == pytest.approx(0.75)
        assert by_pod["chat-1"] == pytest.approx(0.40)
        # pod mapping wins over the node join: the 90% GPU on node-c belongs to nobody
        assert by_pod["chat-2"] == pytest.approx(0.60)
        # no node for the GPU (Hostname is the exporter's pod) and none for the pending pod:
        # missing, never a guess
        assert set(by_pod) == {"chat-0", "chat-1", "chat-2"}
        (avg,) = client.query(mean.promql)
        (mx,) = client.query(worst.promql)
        assert avg.value == pytest.approx((0.75 + 0.40 + 0.60) / 3)
        assert mx.value == pytest.approx(0.75)

"""Cost of one control-loop tick as the number of workloads grows.

The loop runs against the in-memory Prometheus data fake (so the figure is our code: query
assembly, snapshot building, the ``forecast`` policy, the store and the loop's metrics — not
Prometheus' query time, which depends on the cluster), for 10, 100, 1,000 and 10,000 vLLM
workloads. Prints the PromQL queries per tick (constant by design), the median and p99 tick time
over ``--ticks`` ticks, and the time per workload.

    python benchmarks/loop_tick.py [--ticks 20] [--sizes 10,100,1000,10000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prometheus_client import CollectorRegistry  # noqa: E402

from autoscaler.clients.fake_prometheus import FakePrometheus  # noqa: E402
from autoscaler.clients.prometheus import Sample  # noqa: E402
from autoscaler.config import ServiceConfig, WorkloadConfig  # noqa: E402
from autoscaler.engines.promql import build_queries  # noqa: E402
from autoscaler.engines.registry import ENGINES  # noqa: E402
from autoscaler.live.loop import ControlLoop, workload_info  # noqa: E402
from autoscaler.live.loop_metrics import LoopMetrics  # noqa: E402
from autoscaler.live.store import RecommendationStore  # noqa: E402
from benchmarks._common import emit  # noqa: E402

VLLM = {q.field: q.promql for q in build_queries(ENGINES["vllm"])}


def fleet_results(n: int, ts: float) -> dict[str, list[Sample]]:
    out: dict[str, list[Sample]] = {q: [] for q in VLLM.values()}
    for i in range(n):
        labels = {"namespace": "llm", "workload": f"w{i}"}
        rate = 5.0 + i % 17
        values = {
            "request_rate": rate,
            "prompt_tokens_rate": rate * 1000,
            "generation_tokens_rate": rate * 200,
            "mean_prompt_tokens": 1000.0,
            "p90_prompt_tokens": 1800.0,
            "ttft_p90_s": 0.4,
            "queue_time_p90_s": 0.1,
            "waiting": 0.0,
            "waiting_growth_rate": 0.0,
            "running": 10.0,
            "kv_usage": 0.3,
        }
        for f, v in values.items():
            out[VLLM[f]].append(Sample(labels, ts, v))
        for p in range(2):
            out[VLLM["per_replica_running"]].append(Sample({**labels, "pod": f"w{i}-{p}"}, ts, 5))
    return out


def measure(n: int, ticks: int) -> dict[str, float]:
    clock = [1_700_000_000.0]
    config = ServiceConfig(
        workloads=tuple(
            WorkloadConfig(namespace="llm", name=f"w{i}", engine="vllm", selector={"app": f"w{i}"})
            for i in range(n)
        )
    )
    store = RecommendationStore(
        [workload_info(config, w) for w in config.workloads],
        staleness_s=config.service.effective_staleness_s,
        clock=lambda: clock[0],
    )
    api = FakePrometheus(results=fleet_results(n, clock[0]))
    metrics = LoopMetrics(CollectorRegistry())
    loop = ControlLoop(config, prometheus=api, store=store, engines=ENGINES, metrics=metrics,
                       clock=lambda: clock[0])  # fmt: skip
    durations = []
    for _ in range(ticks):
        start = time.perf_counter()
        report = loop.tick()
        durations.append(time.perf_counter() - start)
        assert not report.errors
        clock[0] += 15.0
    durations.sort()
    return {
        "workloads": n,
        "queries_per_tick": loop.queries_per_tick(),
        "tick_p50_ms": 1e3 * statistics.median(durations),
        "tick_p99_ms": 1e3 * durations[min(len(durations) - 1, int(0.99 * len(durations)))],
        "per_workload_us": 1e6 * statistics.median(durations) / n,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=20)
    parser.add_argument("--sizes", default="10,100,1000,10000")
    args = parser.parse_args()
    rows = [measure(int(n), args.ticks) for n in args.sizes.split(",")]
    md = [
        "| workloads | queries/tick | tick p50 | tick p99 | per workload |",
        "|---|---|---|---|---|",
    ]
    md += [
        f"| {r['workloads']:,} | {r['queries_per_tick']} | {r['tick_p50_ms']:.1f} ms "
        f"| {r['tick_p99_ms']:.1f} ms | {r['per_workload_us']:.0f} µs |"
        for r in rows
    ]
    emit("loop_tick", {"rows": rows}, "\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

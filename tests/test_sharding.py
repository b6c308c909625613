"""Sharding by workload: deployments that each own part of the workloads decide what one
deployment owning all of them decides (docs/scale.md).

Each shard is a ``serve`` with its own config (its namespaces or label set); all of them ask the
same Prometheus the same batched queries and file only their own workloads' rows. A workload's
decision depends on its own rows and its own policy state only, so splitting the fleet changes
no value: that is what lets the KEDA path point each ScaledObject at its shard's service.
"""

from __future__ import annotations

from autoscaler.clients.fake_prometheus import FakePrometheus
from tests.test_loop import Clock, config, healthy, make


def test_shards_publish_what_one_service_over_every_workload_publishes():
    names = ["a", "b", "c", "d"]
    shards = [["a", "c"], ["b", "d"]]
    clock = Clock()
    whole_api = FakePrometheus()
    whole, whole_store, _ = make(config(*names), whole_api, clock)
    parts = []
    for owned in shards:
        api = FakePrometheus()
        loop, store, _ = make(config(*owned), api, clock)
        parts.append((owned, api, loop, store))
    for k in range(30):
        rate = 20.0 + 15.0 * (k % 7) + (40.0 if k > 15 else 0.0)  # a load that moves
        results = healthy(names, clock.t, rate=rate)
        whole_api.results = results
        everything = whole.tick().recommendations
        for owned, api, loop, store in parts:
            api.results = results  # every shard sees every workload's rows, and skips others'
            mine = loop.tick().recommendations
            assert sorted(mine) == [f"llm/{n}" for n in owned]
            assert store.keys() == [f"llm/{n}" for n in owned]
            assert repr(mine) == repr({key: everything[key] for key in mine})
        clock.t += 15.0
    assert not everything["llm/a"].holds

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


def test_a_shard_with_query_matchers_asks_for_its_own_rows_only_and_decides_the_same():
    """``service.query_matchers`` narrows every query of a shard (``workload=~"a|c"``), so
    Prometheus sends it its own workloads' rows only; it still decides what the whole service
    decides for them. The fake answers each narrowed query with the rows Prometheus would."""
    from autoscaler.engines.promql import build_queries
    from autoscaler.engines.registry import ENGINES

    names = ["a", "b", "c", "d"]
    owned = ["a", "c"]
    matchers = {"workload": "a|c"}
    plain = [q.promql for q in build_queries(ENGINES["vllm"])]
    narrowed = [q.promql for q in build_queries(ENGINES["vllm"], extra_matchers=matchers)]
    assert all('workload=~"a|c"' in q for q in narrowed)
    clock = Clock()
    whole_api, shard_api = FakePrometheus(), FakePrometheus()
    whole, _, _ = make(config(*names), whole_api, clock)
    cfg = config(*owned)
    cfg = cfg.model_copy(
        update={"service": cfg.service.model_copy(update={"query_matchers": matchers})}
    )
    shard, store, _ = make(cfg, shard_api, clock)
    for k in range(20):
        rate = 20.0 + 15.0 * (k % 5) + (40.0 if k > 10 else 0.0)
        whole_api.results = healthy(names, clock.t, rate=rate)
        mine = healthy(owned, clock.t, rate=rate)
        shard_api.results = {n: mine.get(p, []) for p, n in zip(plain, narrowed, strict=True)}
        everything = whole.tick().recommendations
        ours = shard.tick().recommendations
        assert repr(ours) == repr({key: everything[key] for key in ours})
        clock.t += 15.0
    assert sorted(ours) == ["llm/a", "llm/c"] and not ours["llm/a"].holds
    assert set(shard_api.calls) <= set(narrowed) and set(narrowed) <= set(shard_api.calls)


def test_query_matchers_must_be_label_names_and_regular_expressions():
    import pytest

    from autoscaler.config import GlobalConfig

    assert GlobalConfig(query_matchers={"namespace": "team-(a|b)"}).query_matchers
    for bad in ({"name-space": "a"}, {"__name__": "a"}, {"namespace": "team-(a"}):
        with pytest.raises(ValueError, match="query_matchers"):
            GlobalConfig(query_matchers=bad)

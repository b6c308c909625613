"""The control loop against the Prometheus data fake: store, fail static, shadow, backfill."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from autoscaler.clients.fake_prometheus import FakePrometheus
from autoscaler.clients.prometheus import PrometheusUnavailable, RangeSeries, Sample
from autoscaler.config import ServiceConfig, WorkloadConfig
from autoscaler.core.current_autoscaler import CurrentAutoscaler
from autoscaler.core.recommendation import Recommendation
from autoscaler.core.signals import ReplicaCounts, SignalSnapshot
from autoscaler.engines.promql import build_queries
from autoscaler.engines.registry import ENGINES
from autoscaler.live.loop import ControlLoop, workload_context, workload_info
from autoscaler.live.loop_metrics import LoopMetrics
from autoscaler.live.store import Freshness, RecommendationStore
from autoscaler.policies.forecast import ForecastPolicy

VLLM = {q.field: q.promql for q in build_queries(ENGINES["vllm"])}


class Clock:
    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def config(*names: str, shadow: bool = False) -> ServiceConfig:
    return ServiceConfig(
        service={"tick_s": 15.0, "shadow": shadow},
        workloads=tuple(
            WorkloadConfig(namespace="llm", name=n, engine="vllm", selector={"app": n})
            for n in names
        ),
    )


def healthy(names: list[str], ts: float, rate: float = 20.0, pods: int = 2) -> dict:
    """A vLLM fleet at ``rate`` requests/s of 1000-token prompts and 200-token outputs."""
    out: dict[str, list[Sample]] = {q: [] for q in VLLM.values()}
    for name in names:
        base = {"namespace": "llm", "workload": name}
        for f, v in {
            "request_rate": rate,
            "prompt_tokens_rate": rate * 1000,
            "generation_tokens_rate": rate * 200,
            "mean_prompt_tokens": 1000.0,
            "mean_output_tokens": 200.0,
            "p90_prompt_tokens": 1800.0,
            "ttft_p90_s": 0.3,
            "queue_time_p90_s": 0.1,
            "waiting": 0.0,
            "waiting_growth_rate": 0.0,
            "running": 10.0,
            "kv_usage": 0.3,
        }.items():
            if f in VLLM:
                out[VLLM[f]].append(Sample(base, ts, v))
        for i in range(pods):
            out[VLLM["per_replica_running"]].append(Sample({**base, "pod": f"{name}-{i}"}, ts, 5))
    return out


def whole_window_behind(loop: ControlLoop, key: str, now: float, pods: int = 2) -> None:
    """Fresh data for a whole rate window before ``now``, as a backfill of intact history gives."""
    step = loop.config.service.tick_s
    t = now - loop.coverage.required_s - step
    while t < now:
        loop.coverage.observe(key, t, fresh=True, pods=pods)
        t += step


def make(cfg: ServiceConfig, api: FakePrometheus, clock: Clock, **kw):
    store = RecommendationStore(
        [workload_info(cfg, w) for w in cfg.workloads],
        staleness_s=cfg.service.effective_staleness_s,
        clock=clock,
    )
    registry = CollectorRegistry()
    loop = ControlLoop(
        cfg,
        prometheus=api,
        store=store,
        engines=ENGINES,
        metrics=LoopMetrics(registry),
        clock=clock,
        **kw,
    )
    return loop, store, registry


def test_a_tick_stores_a_fresh_recommendation_and_exports_it():
    clock = Clock()
    api = FakePrometheus(results=healthy(["a", "b"], clock.t))
    loop, store, registry = make(config("a", "b"), api, clock)
    report = loop.tick()
    assert set(report.recommendations) == {"llm/a", "llm/b"}
    entry = store.get("llm/a")
    assert entry.freshness(clock.t, store.staleness_s) is Freshness.FRESH
    assert entry.last_good is not None and entry.last_good.desired_replicas >= 1
    desired = registry.get_sample_value(
        "llm_autoscaler_desired_replicas", {"namespace": "llm", "workload": "a"}
    )
    assert desired == entry.last_good.desired_replicas
    assert registry.get_sample_value("llm_autoscaler_ticks_total", {"outcome": "ok"}) == 1
    assert loop.ready() is False  # no backfill yet
    loop.health.backfilled = True
    assert loop.ready() and loop.alive()


def test_queries_per_tick_do_not_grow_with_workloads():
    clock = Clock()
    one = FakePrometheus(results=healthy(["a"], clock.t))
    many = FakePrometheus(results=healthy([f"w{i}" for i in range(40)], clock.t))
    make(config("a"), one, clock)[0].tick()
    make(config(*[f"w{i}" for i in range(40)]), many, clock)[0].tick()
    assert len(one.calls) == len(many.calls) > 0


def test_prometheus_down_holds_keeps_the_last_good_value_and_recovers():
    clock = Clock()
    data = healthy(["a"], clock.t)
    api = FakePrometheus(results=data)
    loop, store, registry = make(config("a"), api, clock)
    loop.tick()
    good = store.get("llm/a").last_good
    assert good is not None

    clock.t += 15
    down = PrometheusUnavailable("connection refused", promql="")
    api.errors = {q: down for q in VLLM.values()}
    report = loop.tick()
    assert report.recommendations["llm/a"].holds
    entry = store.get("llm/a")
    assert entry.freshness(clock.t, store.staleness_s) is Freshness.STALE
    assert entry.last_good is good  # nothing made up, nothing scaled down
    assert (
        registry.get_sample_value(
            "llm_autoscaler_workload_stale", {"namespace": "llm", "workload": "a"}
        )
        == 1.0
    )

    clock.t += 15
    api.errors = {}
    api.results = healthy(["a"], clock.t)
    loop.tick()
    assert store.freshness("llm/a") is Freshness.FRESH


def test_a_good_value_goes_stale_when_ticks_stop():
    clock = Clock()
    loop, store, _ = make(config("a"), FakePrometheus(results=healthy(["a"], clock.t)), clock)
    loop.tick()
    clock.t += store.staleness_s + 1
    assert store.freshness("llm/a") is Freshness.STALE
    assert loop.alive()  # a late tick is not death yet
    clock.t += 3 * 15 + 31
    assert not loop.alive()


class Exploding:
    name = "boom"
    actuation = "hpa"

    def hpa_spec(self):
        return None

    def recommend(self, snapshot: SignalSnapshot) -> Recommendation:
        raise ZeroDivisionError("bug")


def test_a_policy_error_holds_only_that_workload():
    clock = Clock()
    cfg = config("a", "b")

    def factory(ctx):
        return Exploding() if ctx.max_replicas == 3 else ForecastPolicy(ctx)

    cfg = cfg.model_copy(
        update={
            "workloads": (cfg.workloads[0].model_copy(update={"max_replicas": 3}), cfg.workloads[1])
        }
    )
    loop, store, _ = make(cfg, FakePrometheus(results=healthy(["a", "b"], clock.t)), clock,
                          policy_factory=factory)  # fmt: skip
    report = loop.tick()
    assert report.recommendations["llm/a"].holds
    assert "policy error" in report.recommendations["llm/a"].candidates[0].detail
    assert not report.recommendations["llm/b"].holds
    assert any("llm/a" in e for e in report.errors)


@dataclass
class Replicas:
    counts_by_key: dict[str, ReplicaCounts]
    ttr: float | None = 90.0
    broken: set[str] = field(default_factory=set)

    def counts(self, key: str, now: float) -> ReplicaCounts:
        if key in self.broken:
            raise RuntimeError("watch not synced")
        return self.counts_by_key[key]

    def time_to_ready_s(self, key: str) -> float | None:
        return self.ttr


@dataclass
class Events:
    sent: list[tuple[str, str, str, str]] = field(default_factory=list)

    def warn(self, namespace: str, name: str, reason: str, message: str) -> None:
        self.sent.append((namespace, name, reason, message))


def test_replica_states_come_from_the_watch_and_a_broken_watch_holds():
    clock = Clock()
    counts = ReplicaCounts(spec=3, ready=2, starting=1, pending=0, terminating=0,
                           oldest_unready_age_s=30.0, starting_ages_s=(30.0,))  # fmt: skip
    src = Replicas({"llm/a": counts, "llm/b": counts}, broken={"llm/b"})
    loop, store, _ = make(config("a", "b"), FakePrometheus(results=healthy(["a", "b"], clock.t)),
                          clock, replicas=src)  # fmt: skip
    report = loop.tick()
    snap = store.get("llm/a").snapshot
    assert snap is not None and snap.replicas == counts and snap.time_to_ready_s == 90.0
    assert "90s" in report.recommendations["llm/a"].candidates[0].detail
    assert report.recommendations["llm/b"].holds


def test_a_replica_stuck_past_the_pending_timeout_raises_one_event():
    clock = Clock()
    stuck = ReplicaCounts(spec=3, ready=2, starting=0, pending=1, terminating=0,
                          oldest_unready_age_s=700.0, starting_ages_s=(700.0,))  # fmt: skip
    events = Events()
    loop, _, registry = make(config("a"), FakePrometheus(results=healthy(["a"], clock.t)), clock,
                             replicas=Replicas({"llm/a": stuck}), events=events)  # fmt: skip
    loop.tick()
    clock.t += 15
    loop.replicas = Replicas({"llm/a": ReplicaCounts(3, 2, 0, 1, 0, 715.0, (715.0,))})
    loop.prometheus = FakePrometheus(results=healthy(["a"], clock.t))
    loop.tick()
    assert [e[2] for e in events.sent] == ["CapacityUnavailable"]
    assert "600s" in events.sent[0][3]
    assert (
        registry.get_sample_value("llm_autoscaler_events_total", {"reason": "CapacityUnavailable"})
        == 1
    )


def test_the_configured_pending_timeout_reaches_the_policy_and_the_events():
    """``service.pending_timeout_s`` is the one timeout: a replica pending for 400 s is
    capacity on the way under the default (600 s), and unavailable under 300 s."""
    pending = ReplicaCounts(spec=3, ready=2, starting=0, pending=1, terminating=0,
                            oldest_unready_age_s=400.0, starting_ages_s=(400.0,))  # fmt: skip
    outcomes = {}
    for timeout in (None, 300.0):
        clock, events = Clock(), Events()
        cfg = config("a")
        if timeout is not None:
            service = cfg.service.model_copy(update={"pending_timeout_s": timeout})
            cfg = cfg.model_copy(update={"service": service})
        loop, _, _ = make(cfg, FakePrometheus(results=healthy(["a"], clock.t)), clock,
                          replicas=Replicas({"llm/a": pending}), events=events)  # fmt: skip
        rec = loop.tick().recommendations["llm/a"]
        outcomes[timeout] = (rec, events.sent)
    rec, sent = outcomes[None]
    assert not any("capacity unavailable" in c.detail for c in rec.candidates) and sent == []
    rec, sent = outcomes[300.0]
    assert any("1 replica(s) not ready after 300s" in c.detail for c in rec.candidates)
    assert [e[2] for e in sent] == ["CapacityUnavailable"] and "300s" in sent[0][3]


def test_capacity_unavailable_counts_every_stuck_replica_and_posts_only_for_new_ones():
    clock = Clock()
    events = Events()

    def stuck(*ages: float) -> Replicas:
        return Replicas({"llm/a": ReplicaCounts(3 + len(ages), 3, 0, len(ages), 0,
                                                max(ages, default=None), tuple(ages))})  # fmt: skip

    twelve = stuck(*[601.0 + i for i in range(12)])
    loop, _, registry = make(config("a"), FakePrometheus(results=healthy(["a"], clock.t)), clock,
                             replicas=twelve, events=events)  # fmt: skip

    def tick(replicas: Replicas) -> list[str]:
        clock.t += 15
        loop.replicas = replicas
        loop.prometheus = FakePrometheus(results=healthy(["a"], clock.t))
        loop.tick()
        return [e[3] for e in events.sent]

    loop.tick()
    assert len(events.sent) == 1 and events.sent[0][3].startswith("12 replica(s) not ready")
    # the same twelve, 15 s older, and one more pod that is not stuck yet: nothing new
    assert len(tick(stuck(*[616.0 + i for i in range(12)], 100.0))) == 1
    # that pod passes the timeout: one more Event, with the new count
    sent = tick(stuck(*[631.0 + i for i in range(12)], 615.0))
    assert len(sent) == 2 and sent[1].startswith("13 replica(s) not ready")
    # all scheduled: nothing; one stuck again later: a new Event
    assert len(tick(stuck())) == 2
    sent = tick(stuck(650.0))
    assert len(sent) == 3 and sent[2].startswith("1 replica(s) not ready")
    assert (
        registry.get_sample_value("llm_autoscaler_events_total", {"reason": "CapacityUnavailable"})
        == 3
    )


@dataclass
class Shadow:
    current_by_name: dict[str, CurrentAutoscaler | None]

    def current(self, namespace: str, name: str) -> CurrentAutoscaler | None:
        return self.current_by_name[name]


def test_shadow_mode_records_the_current_autoscaler_and_the_difference():
    clock = Clock()
    theirs = CurrentAutoscaler("HorizontalPodAutoscaler", "a-hpa", 5, 7)
    loop, store, registry = make(config("a", shadow=True),
                                 FakePrometheus(results=healthy(["a"], clock.t)), clock,
                                 shadow=Shadow({"a": theirs}))  # fmt: skip
    rec = loop.tick().recommendations["llm/a"]
    assert store.get("llm/a").current == theirs
    diff = registry.get_sample_value(
        "llm_autoscaler_shadow_difference_replicas", {"namespace": "llm", "workload": "a"}
    )
    assert diff == rec.desired_replicas - 7


def test_shadow_is_not_asked_for_workloads_not_in_shadow_mode():
    clock = Clock()
    loop, store, _ = make(config("a"), FakePrometheus(results=healthy(["a"], clock.t)), clock,
                          shadow=Shadow({}))  # fmt: skip
    loop.tick()  # Shadow({}) would raise KeyError if asked
    assert store.get("llm/a").current is None


def _range(rows: list[Sample], times: np.ndarray) -> list[RangeSeries]:
    return [RangeSeries(r.labels, times, np.full(times.size, r.value)) for r in rows]


def test_backfill_replays_history_through_the_policy_with_one_query_per_signal():
    clock = Clock()
    cfg = config("a", "b")
    times = clock.t - 3600 + 15.0 * np.arange(240)
    snapshot_rows = healthy(["a", "b"], clock.t)
    api = FakePrometheus(
        range_results={q: _range(rows, times) for q, rows in snapshot_rows.items()}
    )
    seen: list[SignalSnapshot] = []

    class Recording(ForecastPolicy):
        def recommend(self, snapshot: SignalSnapshot) -> Recommendation:
            seen.append(snapshot)
            return super().recommend(snapshot)

    loop, store, _ = make(cfg, api, clock, policy_factory=Recording)
    steps = loop.backfill(3600)
    assert steps == 240
    assert len(api.calls) == len(VLLM)
    assert len(seen) == 2 * 240
    assert all(s.replicas.ready == 2 for s in seen)  # pods scraped, not made up
    assert store.get("llm/a").last_good is None  # history is not served as current
    policy = loop.policies["llm/a"]
    assert isinstance(policy, ForecastPolicy)
    assert policy.forecaster.n_paths_ > 0  # the forecaster has history: a cold one has none
    assert policy.forecaster.level_ > 0
    assert loop.health.backfilled


def test_backfill_with_prometheus_down_replays_nothing_and_does_not_raise():
    clock = Clock()
    down = PrometheusUnavailable("refused", promql="")
    api = FakePrometheus(errors={q: down for q in VLLM.values()})
    loop, _, _ = make(config("a"), api, clock)
    assert loop.backfill(600) == 0
    assert loop.health.backfilled


def test_workload_context_uses_the_config_seed_and_bounds():
    cfg = config("a")
    w = cfg.workloads[0].model_copy(update={"capacity_seed": 1234.0, "min_replicas": 2})
    ctx = workload_context(cfg, w)
    assert ctx.replica_token_capacity == 1234.0
    assert ctx.min_replicas == 2 and ctx.max_replicas == w.max_replicas
    assert ctx.tick_s == 15.0
    default = workload_context(cfg, cfg.workloads[0])
    assert default.replica_token_capacity > 0 and math.isfinite(default.decode_weight)


def test_a_fresh_value_never_goes_below_what_it_was_on_stale_ticks():
    """Fail static end to end: during an outage the desired count never drops."""
    clock = Clock()
    api = FakePrometheus(results=healthy(["a"], clock.t, rate=80.0))
    loop, store, _ = make(config("a"), api, clock)
    loop.tick()
    before = store.get("llm/a").metric("llm_desired_replicas")
    for _ in range(5):
        clock.t += 15
        api.results = {q: [] for q in VLLM.values()}  # empty vectors: target gone
        rec = loop.tick().recommendations["llm/a"]
        assert rec.holds
        assert store.get("llm/a").metric("llm_desired_replicas") == before


@pytest.mark.parametrize("bad", [math.nan])
def test_nan_demand_holds(bad):
    clock = Clock()
    data = healthy(["a"], clock.t)
    data[VLLM["request_rate"]] = [Sample({"namespace": "llm", "workload": "a"}, clock.t, bad)]
    loop, store, _ = make(config("a"), FakePrometheus(results=data), clock)
    assert loop.tick().recommendations["llm/a"].holds
    assert store.freshness("llm/a") is Freshness.NO_DATA


@dataclass
class Prefetch:
    calls: list[tuple[str, int | None]] = field(default_factory=list)
    fail: bool = False

    def reconcile(self, workload, recommendation, forecast_replicas, now):
        if self.fail:
            raise RuntimeError("API server gone")
        self.calls.append((workload.name, recommendation.desired_replicas))


def _prefetch_config() -> ServiceConfig:
    cfg = config("a", "b")
    image = "registry.example.com/m@sha256:" + "0" * 64
    first = cfg.workloads[0].model_copy(
        update={"image": image, "prefetch": cfg.workloads[0].prefetch.model_copy(
            update={"enabled": True})}
    )  # fmt: skip
    return cfg.model_copy(update={"workloads": (first, cfg.workloads[1])})


def test_the_prefetcher_acts_only_for_enabled_workloads_and_never_on_a_hold():
    clock = Clock()
    prefetch = Prefetch()
    api = FakePrometheus(results=healthy(["a", "b"], clock.t))
    loop, _, _ = make(_prefetch_config(), api, clock, prefetcher=prefetch)
    rec = loop.tick().recommendations["llm/a"]
    assert prefetch.calls == [("a", rec.desired_replicas)]
    clock.t += 15
    api.results = {}
    loop.tick()  # stale: nothing is planned from missing data
    assert len(prefetch.calls) == 1


def test_a_failing_prefetcher_does_not_stop_the_tick():
    clock = Clock()
    api = FakePrometheus(results=healthy(["a", "b"], clock.t))
    loop, store, _ = make(_prefetch_config(), api, clock, prefetcher=Prefetch(fail=True))
    report = loop.tick()
    assert any("prefetch failed" in e for e in report.errors)
    assert store.freshness("llm/a") is Freshness.FRESH


@pytest.mark.parametrize(("scraped", "guarded"), [(2, True), (6, False)])
def test_ready_replicas_missing_from_the_scrape_block_a_scale_down(scraped, guarded):
    clock = Clock()
    six = ReplicaCounts(spec=6, ready=6, starting=0, pending=0, terminating=0)
    api = FakePrometheus(results=healthy(["a"], clock.t, rate=1.0, pods=scraped))
    loop, store, _ = make(config("a"), api, clock, replicas=Replicas({"llm/a": six}))
    whole_window_behind(loop, "llm/a", clock.t, pods=scraped)
    rec = loop.tick().recommendations["llm/a"]
    assert rec.desired_replicas is not None
    if guarded:  # 4 of 6 ready pods unseen: the low demand may be missing data
        assert rec.desired_replicas == 6 and rec.winner == "partial-scrape"
        assert "4 of 6 ready replicas not scraped" in rec.candidates[-1].detail
        published = {m.name: m.value for m in rec.metrics}
        assert published["llm_desired_replicas"] == 6.0
    else:  # every ready pod reports: low demand is real, scale down
        assert rec.desired_replicas < 6 and rec.winner != "partial-scrape"


def test_after_a_prometheus_gap_nothing_lower_is_published_until_a_window_is_whole():
    """Data that comes back reads low (its rate window spans only the seconds since): hold up."""
    clock = Clock()
    api = FakePrometheus(results=healthy(["a"], clock.t, rate=20.0))
    loop, store, _ = make(config("a"), api, clock)
    whole_window_behind(loop, "llm/a", clock.t)
    before = loop.tick().recommendations["llm/a"].desired_replicas
    assert before is not None and before > 1
    api.results = {}
    for _ in range(4):  # one minute of outage: holds
        clock.t += 15
        assert loop.tick().recommendations["llm/a"].holds
    resumed = clock.t + 15
    seen = []
    for _ in range(40):
        clock.t += 15
        api.results = healthy(["a"], clock.t, rate=0.5)
        rec = loop.tick().recommendations["llm/a"]
        published = {m.name: m.value for m in rec.metrics}["llm_desired_replicas"]
        assert published == rec.desired_replicas
        seen.append((clock.t - resumed, rec.desired_replicas, rec.winner))
    required = loop.coverage.required_s
    inside = [(t, d, w) for t, d, w in seen if t < required]
    assert inside and all(d >= before for _, d, _ in inside), inside
    assert any(w == "incomplete-window" for _, _, w in inside)
    assert min(d for t, d, _ in seen if t >= required) < before, seen  # then low demand is real


@pytest.mark.parametrize("bad", [-4.0, math.inf, -math.inf])
def test_an_impossible_request_rate_holds_and_is_counted_and_shown(bad):
    clock = Clock()
    results = healthy(["a"], clock.t)
    rate_query = VLLM["request_rate"]
    results[rate_query] = [Sample({"namespace": "llm", "workload": "a"}, clock.t, bad)]
    loop, store, registry = make(config("a"), FakePrometheus(results=results), clock)
    rec = loop.tick().recommendations["llm/a"]
    assert rec.holds
    entry = store.get("llm/a")
    assert entry.snapshot is not None and entry.snapshot.rejected[0].startswith("request_rate=")
    problem = "negative" if bad == -4.0 else "infinite"
    labels = {"namespace": "llm", "workload": "a", "signal": "request_rate", "problem": problem}
    assert registry.get_sample_value("llm_autoscaler_samples_rejected_total", labels) == 1.0


@pytest.mark.parametrize(("engine", "live"), [("vllm", False), ("vllm_v0", False),
                                              ("sglang", False), ("tgi", True),
                                              ("triton_trtllm", True)])  # fmt: skip
def test_the_memory_guard_is_live_where_gpu_memory_is_not_one_exported_kv_pool(engine, live):
    cfg = config("a")
    w = cfg.workloads[0].model_copy(update={"engine": engine})
    assert workload_context(cfg, w, ENGINES[engine]).gpu_memory_guard is live
    assert workload_context(cfg, w).gpu_memory_guard is False  # no profile given: off
    info = workload_info(cfg, w, ENGINES[engine])
    assert info.engine == engine
    assert ("gpu_memory_usage_max" in info.guards["saturation"]) is live


def test_gpu_memory_reaches_the_snapshot_and_metrics():
    from autoscaler.engines.promql import gpu_memory_queries

    clock = Clock()
    gpu = {q.field: q.promql for q in gpu_memory_queries(ENGINES["vllm"], ENGINES["dcgm"])}
    results = healthy(["a", "b"], clock.t)
    base = {"namespace": "llm", "workload": "a"}
    results[gpu["gpu_memory_usage"]] = [Sample(base, clock.t, 0.875)]
    results[gpu["gpu_memory_usage_max"]] = [Sample(base, clock.t, 0.9)]
    loop, store, registry = make(config("a", "b"), FakePrometheus(results=results), clock,
                                 gpu_memory=ENGINES["dcgm"])  # fmt: skip
    loop.tick()
    snap = store.get("llm/a").snapshot
    assert snap is not None and snap.gpu_memory_usage_max == 0.9
    a = {"namespace": "llm", "workload": "a"}
    b = {"namespace": "llm", "workload": "b"}
    assert registry.get_sample_value("llm_autoscaler_gpu_memory_usage_ratio", a) == 0.875
    assert registry.get_sample_value("llm_autoscaler_gpu_memory_usage_max_ratio", a) == 0.9
    assert math.isnan(registry.get_sample_value("llm_autoscaler_gpu_memory_usage_ratio", b))
    assert loop.queries_per_tick() == len(VLLM) + 3

"""The batched ``forecast`` policy decides exactly what each workload's own policy decides."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.clients.fake_prometheus import FakePrometheus
from autoscaler.core.recommendation import hold
from autoscaler.core.signals import ReplicaCounts, SignalSnapshot
from autoscaler.core.slo import SloSpec
from autoscaler.policies.base import PolicyContext
from autoscaler.policies.forecast import ForecastPolicy
from autoscaler.policies.forecast.batch import ForecastBatch, HoltBatch
from forecasting.holt import DampedHolt
from tests.test_loop import Clock, config, healthy, make

CTX = PolicyContext(
    slo=SloSpec(), max_replicas=60, replica_token_capacity=1000.0, prefill_weight=1.0,
    decode_weight=5.0, default_lead_time_s=240.0,
)  # fmt: skip

maybe = st.one_of(st.none(), st.floats(0.0, 5000.0))


@st.composite
def snapshots(draw: st.DrawFn, key: str, t: float) -> SignalSnapshot:
    """A snapshot with any field missing, stale or not, any lead time, maybe behind a gateway."""
    ready = draw(st.integers(0, 8))
    starting = draw(st.lists(st.floats(0.0, 900.0), max_size=3))
    gateway = draw(st.booleans())
    return SignalSnapshot(
        workload=key,
        timestamp=t,
        replicas=ReplicaCounts(
            spec=ready + len(starting),
            ready=ready,
            starting=len(starting),
            pending=0,
            terminating=0,
            starting_ages_s=tuple(starting),
        ),  # fmt: skip
        stale=draw(st.booleans()) and draw(st.booleans()),
        time_to_ready_s=draw(st.one_of(st.none(), st.floats(5.0, 900.0))),
        request_rate=draw(maybe),
        prompt_tokens_rate=draw(st.one_of(st.none(), st.floats(0.0, 50000.0))),
        generation_tokens_rate=draw(st.one_of(st.none(), st.floats(0.0, 5000.0))),
        mean_prompt_tokens=draw(st.one_of(st.none(), st.floats(1.0, 4000.0))),
        mean_output_tokens=draw(st.one_of(st.none(), st.floats(1.0, 800.0))),
        p90_prompt_tokens=draw(st.one_of(st.none(), st.floats(1.0, 8000.0))),
        waiting_growth_rate=draw(st.one_of(st.none(), st.floats(-5.0, 5.0))),
        waiting=draw(st.one_of(st.none(), st.floats(0.0, 300.0))),
        running=draw(st.one_of(st.none(), st.floats(0.0, 200.0))),
        ttft_p90_s=draw(st.one_of(st.none(), st.floats(0.01, 6.0))),
        tpot_p90_s=draw(st.one_of(st.none(), st.floats(0.001, 0.3))),
        queue_time_p90_s=draw(st.one_of(st.none(), st.floats(0.0, 6.0))),
        kv_usage=draw(st.one_of(st.none(), st.floats(0.0, 1.0))),
        per_replica_waiting=tuple(draw(st.lists(st.floats(0.0, 60.0), max_size=ready))),
        gateway_request_rate=draw(maybe) if gateway else None,
        gateway_backlog=draw(st.one_of(st.none(), st.floats(0.0, 100.0))) if gateway else None,
        gateway_mean_prompt_tokens=draw(maybe) if gateway else None,
        gateway_mean_output_tokens=draw(maybe) if gateway else None,
    )


@st.composite
def histories(draw: st.DrawFn) -> list[dict[str, SignalSnapshot]]:
    """Ticks of 1-4 workloads; a workload may be absent from a tick (held upstream)."""
    keys = [f"ns/w{i}" for i in range(draw(st.integers(1, 4)))]
    ticks = draw(st.integers(1, 30))
    out = []
    for k in range(ticks):
        present = [key for key in keys if draw(st.integers(0, 9)) > 0]
        # steady stretches let the capacity learner and the band act, not only noise
        out.append({key: draw(snapshots(key, 15.0 * k)) for key in present})
    return out


@settings(max_examples=60, deadline=None)
@given(histories())
def test_batch_recommends_what_each_policy_recommends_alone(ticks):
    keys = sorted({key for tick in ticks for key in tick})
    alone = {key: ForecastPolicy(CTX) for key in keys}
    batch = ForecastBatch({key: ForecastPolicy(CTX) for key in keys})
    for tick in ticks:
        expected, failed = {}, []
        for key, snap in tick.items():
            try:
                expected[key] = alone[key].recommend(snap)
            except Exception as exc:  # what the loop makes of a policy error: a hold
                expected[key] = hold(key, snap.timestamp, f"policy error: {exc}")
                failed.append(f"{key}: policy failed: {exc}")
        errors: list[str] = []
        # repr: exact floats, and a hold's NaN candidate equal to itself
        assert repr(batch.recommend(tick, errors)) == repr(expected)
        assert errors == failed
    for key in keys:  # the same learned state, not only the same answers
        assert batch.policies[key].capacity.capacity_ == alone[key].capacity.capacity_


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.lists(st.one_of(st.floats(0.0, 1e6), st.just(float("nan")), st.just(float("inf")))),
        min_size=1,
        max_size=5,
    ),
    st.integers(1, 50),
)
def test_holt_batch_paths_equal_damped_holt_medians(series, horizon):
    models = [DampedHolt() for _ in series]
    for model, ys in zip(models, series, strict=True):
        for y in ys:
            model.update([y])
    batch = HoltBatch(len(series))
    for step in range(max(len(ys) for ys in series)):
        rows = [i for i, ys in enumerate(series) if step < len(ys)]
        values = [series[i][step] for i in rows]
        batch.update(np.array(rows, dtype=np.int64), np.array(values, dtype=np.float64))
    rows = np.arange(len(series))
    highest, last = batch.path_max_last(rows, np.full(len(series), horizon))
    for i, model in enumerate(models):
        path = model.predict(horizon, [0.5])[:, 0]
        assert highest[i] == float(path.max())
        assert last[i] == float(path[-1])


def test_the_loop_runs_the_batch_and_decides_as_unbatched_policies_do():
    class Alone(ForecastPolicy):
        """The same policy, but not batchable (a subclass): one workload at a time."""

    clock = Clock()
    names = ["a", "b", "c"]
    batched, _, _ = make(config(*names), FakePrometheus(results=healthy(names, clock.t)), clock)
    alone, _, _ = make(
        config(*names),
        FakePrometheus(results=healthy(names, clock.t)),
        clock,
        policy_factory=Alone,
    )
    assert batched.batch is not None and alone.batch is None
    for _ in range(8):
        a, b = batched.tick(), alone.tick()
        assert repr(a.recommendations) == repr(b.recommendations)
        assert not a.recommendations["llm/a"].holds

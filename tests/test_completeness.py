"""Window coverage: after a gap, nothing lower is published until a whole rate window is back."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from autoscaler.core.recommendation import Candidate, PublishedMetric, Recommendation, hold
from autoscaler.live.completeness import WindowCoverage, raise_to_floor

K = "llm/a"


def cov() -> WindowCoverage:
    return WindowCoverage(required_s=75.0, max_gap_s=45.0)


def test_coverage_grows_with_fresh_ticks_and_restarts_on_a_stale_one():
    c = cov()
    for i in range(6):
        c.observe(K, 15.0 * i, fresh=True, pods=2)
    assert c.covered_s(K, 75.0) == 75.0 and c.complete(K, 75.0)
    c.observe(K, 90.0, fresh=False, pods=0)
    assert c.covered_s(K, 90.0) == 0.0 and not c.complete(K, 90.0)
    c.observe(K, 105.0, fresh=True, pods=2)
    assert c.covered_s(K, 165.0) == 60.0 and not c.complete(K, 165.0)
    assert c.complete(K, 180.0)


def test_a_silence_longer_than_the_gap_restarts_the_clock():
    c = cov()
    c.observe(K, 0.0, fresh=True, pods=2)
    c.observe(K, 100.0, fresh=True, pods=2)  # 100 s without a tick: a hole in the window
    assert c.covered_s(K, 100.0) == 0.0


def test_a_target_that_comes_back_or_vanishes_restarts_the_clock():
    c = cov()
    for i in range(6):
        c.observe(K, 15.0 * i, fresh=True, pods=1)
    c.observe(K, 90.0, fresh=True, pods=2)  # its counter's window is partial
    assert not c.complete(K, 90.0)
    c.observe(K, 105.0, fresh=True, pods=2)
    assert c.covered_s(K, 105.0) == 15.0
    c.observe(K, 120.0, fresh=True, pods=0)  # its series are going stale inside the window
    assert c.covered_s(K, 120.0) == 0.0


@given(st.lists(st.tuples(st.floats(1.0, 60.0), st.booleans()), min_size=1, max_size=40))
def test_complete_only_with_uninterrupted_fresh_data_over_the_window(steps):
    c = cov()
    t = 0.0
    seen: list[tuple[float, bool]] = []
    for dt, fresh in steps:
        t += dt
        c.observe(K, t, fresh=fresh, pods=2)
        seen.append((t, fresh))
    if c.complete(K, t):
        # the last required_s seconds hold only fresh ticks, none more than max_gap_s apart
        window = [(ts, f) for ts, f in seen if ts >= t - c.required_s]
        assert all(f for _, f in window)
        earlier = [ts for ts, _ in seen if ts < t - c.required_s]
        assert earlier and seen[len(earlier) - 1][1]  # the run began before the window
        times = [earlier[-1]] + [ts for ts, _ in window]
        assert all(b - a <= c.max_gap_s for a, b in zip(times, times[1:], strict=False))


def rec(desired: int) -> Recommendation:
    return Recommendation(
        workload=K,
        timestamp=0.0,
        desired_replicas=desired,
        winner="forecast",
        candidates=(Candidate("forecast", float(desired)),),
        metrics=(PublishedMetric("llm_desired_replicas", float(desired)),
                 PublishedMetric("llm_load_replicas", 0.5)),
    )  # fmt: skip


def test_raise_to_floor_lifts_the_count_and_the_published_metric_and_says_why():
    metric = "llm_desired_replicas"
    out = raise_to_floor(rec(2), 5, winner="incomplete-window", why="w", metric=metric)
    assert out.desired_replicas == 5 and out.winner == "incomplete-window"
    assert dict((m.name, m.value) for m in out.metrics) == {
        "llm_desired_replicas": 5.0,
        "llm_load_replicas": 0.5,
    }
    assert out.candidates[-1] == Candidate("incomplete-window", 5.0, "w")


def test_raise_to_floor_leaves_scale_ups_and_holds_alone():
    up = rec(7)
    assert raise_to_floor(up, 5, winner="x", why="", metric="llm_desired_replicas") is up
    held = hold(K, 0.0, "stale")
    assert raise_to_floor(held, 5, winner="x", why="", metric="llm_desired_replicas") is held

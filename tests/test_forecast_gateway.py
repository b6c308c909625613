"""``forecast`` with an inference gateway in front: arrivals as demand, the backlog as queue."""

from __future__ import annotations

from dataclasses import replace

from autoscaler.core.signals import SignalSnapshot
from autoscaler.policies.forecast import ForecastPolicy
from tests.test_forecast_policy import CTX, snap


def gateway(s: SignalSnapshot, *, let_through: float, backlog: float = 0.0,
            growth: float = 0.0) -> SignalSnapshot:  # fmt: skip
    """The snapshot with the EPP's fields: 1,000-token prompts, 100-token answers (work 1,500
    per request at CTX's weights), ``let_through`` requests/s dispatched."""
    return replace(
        s,
        gateway_request_rate=let_through,
        gateway_backlog=backlog,
        gateway_backlog_growth_rate=growth,
        gateway_mean_prompt_tokens=1000.0,
        gateway_mean_output_tokens=100.0,
    )


def run(snaps: list[SignalSnapshot]) -> tuple[ForecastPolicy, list]:
    policy = ForecastPolicy(CTX)
    return policy, [policy.recommend(s) for s in snaps]


def test_without_a_gateway_the_reason_names_the_engines_as_the_demand_source():
    _, plain = run([snap(15.0 * k) for k in range(30)])
    assert "served work + queue growth" in plain[-1].candidates[0].detail
    assert "gateway" not in plain[-1].candidates[0].detail


def test_arrivals_at_the_gateway_are_the_demand_and_the_reason_says_so():
    # the engines serve 3,000 work/s; 4 req/s x 1,500 work arrive: 6,000 work/s
    policy, recs = run([gateway(snap(15.0 * k), let_through=4.0) for k in range(30)])
    plain_policy, plain = run([snap(15.0 * k) for k in range(30)])
    assert "arrivals at the gateway" in recs[-1].candidates[0].detail
    assert recs[-1].desired_replicas > plain[-1].desired_replicas
    assert (
        policy.forecaster.predict(1, [0.5])[0, 0]
        > 1.9 * (plain_policy.forecaster.predict(1, [0.5])[0, 0])
    )


def test_a_growing_flow_control_backlog_raises_the_plan_while_engine_queues_stay_flat():
    # steady for five minutes, then the gateway holds back a growing crowd: the engines (their
    # queues capped by flow control) look exactly as before
    steady = [gateway(snap(15.0 * k), let_through=2.0) for k in range(20)]
    crowd = [
        gateway(snap(15.0 * k), let_through=2.0, backlog=300.0 * (k - 19), growth=20.0)
        for k in range(20, 24)
    ]
    _, recs = run([*steady, *crowd])
    _, blind = run([snap(15.0 * k) for k in range(24)])
    assert recs[19].desired_replicas == blind[19].desired_replicas  # same before the crowd
    assert recs[-1].desired_replicas > blind[-1].desired_replicas
    assert "(the gateway's backlog included)" in recs[-1].candidates[0].detail


def test_gateway_fields_without_request_sizes_fall_back_to_the_engines_means():
    s = replace(
        snap(0.0), gateway_request_rate=4.0, gateway_mean_prompt_tokens=None,
        mean_prompt_tokens=1000.0, mean_output_tokens=100.0,
    )  # fmt: skip
    rec = ForecastPolicy(CTX).recommend(s)
    assert "arrivals at the gateway" in rec.candidates[0].detail
    # 4 req/s x (1,000 + 5 x 100) work, at the band's prior x1.2
    assert rec.candidates[0].detail.startswith("demand 7200 work/s")


def test_stale_data_holds_even_with_a_gateway():
    rec = ForecastPolicy(CTX).recommend(gateway(snap(0.0, stale=True), let_through=50.0))
    assert rec.desired_replicas is None

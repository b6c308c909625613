"""The report's recommendations: pure rules over hand-made evidence, each number checkable."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from autoscaler.core.slo import SloSpec
from autoscaler.offline.report.recommend import (
    SCALE_TO_ZERO_IDLE_S,
    CurvePoint,
    Evidence,
    choose_headroom,
    curve_points,
    longest_idle_s,
    recommend,
)
from autoscaler.simulation.lifecycle import LifecycleConfig

HOUR = 3600.0


def point(label: str, slo: float, gpu: float, peak: float = 4, cold: float = 2) -> CurvePoint:
    (points,) = curve_points(
        {
            label: {
                "slo_attainment": slo,
                "gpu_hours": gpu,
                "max_replicas": peak,
                "cold_starts": cold,
                "warm_starts": 1,
            }
        }
    )
    return points


def sweep() -> list[CurvePoint]:
    """Ours gets cheaper and worse as the setting grows; two baselines and the oracle."""
    return [
        point("oracle", 0.999, 10.0, peak=4),
        point("forecast@0.8", 0.998, 16.0, peak=6),
        point("forecast@1", 0.995, 13.0, peak=5),
        point("forecast@1.2", 0.992, 12.0, peak=4),
        point("forecast@1.4", 0.97, 11.0, peak=4),
        point("kpa", 0.993, 14.0),
        point("hpa-queue", 0.9, 20.0),
    ]


def evidence(
    points: list[CurvePoint] | None = None,
    demand: np.ndarray | None = None,
    *,
    pull_s: float = 180.0,
    cap: int | None = None,
    **kw: Any,
) -> Evidence:
    defaults: dict[str, Any] = dict(
        namespace="llm",
        name="chat",
        points=sweep() if points is None else points,
        slo=SloSpec(attainment_target=0.99),
        demand=np.full(240, 8000.0) if demand is None else demand,
        interval_s=15.0,
        duration_s=HOUR,
        gpus_per_replica=4,
        lifecycle=LifecycleConfig(provision_s=0.0, pull_s=pull_s, init_s=60.0),
        accuracy=None,
        replica_cap=cap,
    )
    defaults.update(kw)
    return Evidence(**defaults)


def test_curve_points_read_labels_and_settings():
    points = sweep()
    assert [(p.policy, p.setting) for p in points[:3]] == [
        ("oracle", None),
        ("forecast", 0.8),
        ("forecast", 1.0),
    ]
    assert [p.ours for p in points] == [False, True, True, True, True, False, False]


def test_the_cheapest_setting_that_meets_the_target_is_chosen():
    chosen, met, why = choose_headroom(sweep(), 0.99)
    assert (chosen.label, met) == ("forecast@1.2", True)
    assert "3 of 4 settings met it" in why and "12.0 GPU-hours" in why


def test_a_stricter_target_moves_the_choice_to_more_head_room():
    chosen, met, _ = choose_headroom(sweep(), 0.997)
    assert (chosen.label, met) == ("forecast@0.8", True)


def test_equal_cost_goes_to_the_lower_setting():
    points = [point("forecast@0.9", 0.995, 12.0), point("forecast@1.1", 0.996, 12.0)]
    chosen, _, _ = choose_headroom(points, 0.99)
    assert chosen.label == "forecast@0.9"


def test_the_highest_setting_tried_says_to_extend_the_sweep():
    points = [point("forecast@1", 0.995, 13.0), point("forecast@1.2", 0.994, 12.0)]
    chosen, met, why = choose_headroom(points, 0.99)
    assert (chosen.label, met) == ("forecast@1.2", True)
    assert "extend --headroom" in why


def test_when_no_setting_meets_the_target_the_closest_is_chosen_and_flagged():
    points = [point("forecast@1", 0.95, 13.0), point("forecast@0.8", 0.97, 15.0)]
    chosen, met, why = choose_headroom(points, 0.99)
    assert (chosen.label, met) == ("forecast@0.8", False)
    assert why.startswith("no setting met the 99.00% target") and "below 0.8" in why


def test_without_a_run_of_ours_there_is_nothing_to_choose():
    with pytest.raises(ValueError, match="no forecast@SETTING"):
        choose_headroom([point("kpa", 0.99, 1.0)], 0.99)


def test_min_replicas_is_the_quietest_lead_time_in_replicas_rounded_down():
    # 12 GPU-h over an hour at 4 GPUs a replica = 3 replicas on average; mean demand 8,000
    # -> 2,667 work/s a replica. The quiet 10 min run at ~6,460 work/s: 2.4 replicas.
    demand = np.full(240, 9000.0)
    demand[100:140] = 7000.0
    demand *= 8000.0 / demand.mean()
    s = recommend(evidence(demand=demand))
    per_replica = 8000.0 / 3.0
    quiet = float(demand[100:140].mean())
    assert s.targets["token_work_per_replica"] == pytest.approx(per_replica, rel=1e-3)
    assert s.min_replicas == max(1, math.floor(quiet / per_replica))
    assert s.min_replicas == 2
    assert f"needed {quiet / per_replica:.1f} replicas" in s.min_reason


def test_min_replicas_is_at_least_one_and_never_above_the_peak():
    demand = np.full(240, 8000.0)
    demand[100:140] = 1.0  # a lull that needs a sliver of one replica
    s = recommend(evidence(demand=demand))
    assert s.min_replicas == 1
    tiny_peak = [point("forecast@1", 0.995, 40.0, peak=2)]
    s = recommend(evidence(points=tiny_peak, demand=np.full(240, 8000.0)))
    assert s.min_replicas <= 2


def test_max_replicas_leaves_a_quarter_above_the_peak_and_flags_a_hit_cap():
    s = recommend(evidence())
    assert (s.max_replicas, "peaked at 4" in s.max_reason) == (5, True)
    big = [point("forecast@1", 0.995, 12.0, peak=20)]
    s = recommend(evidence(points=big))
    assert s.max_replicas == 25
    capped = recommend(evidence(points=big, cap=20))
    assert "hit its replica cap (20)" in capped.max_reason
    assert "cap" not in s.max_reason


def test_the_default_cap_is_twice_the_oracles_peak():
    points = [point("oracle", 0.999, 5.0, peak=2), point("forecast@1", 0.995, 12.0, peak=6)]
    s = recommend(evidence(points=points))
    assert "hit its replica cap (6)" in s.max_reason


def test_keda_scales_to_zero_only_after_long_idle_stretches():
    busy = recommend(evidence())
    assert busy.keda_min_replicas == busy.min_replicas >= 1
    steps = int(SCALE_TO_ZERO_IDLE_S / 15.0)
    demand = np.full(240, 8000.0)
    demand[10 : 10 + steps] = 0.0
    idle = recommend(evidence(demand=demand))
    assert idle.keda_min_replicas == 0
    assert "idle stretches of up to 30 min" in idle.keda_min_reason
    assert idle.min_replicas >= 1  # the HPA cannot go to zero
    demand[10 + steps - 1] = 5.0  # one interval short of the threshold
    assert recommend(evidence(demand=demand)).keda_min_replicas >= 1


def test_gaps_are_not_idle():
    demand = np.array([1.0, 0.0, 0.0, np.nan, 0.0, 2.0, 0.0])
    assert longest_idle_s(demand, 10.0) == 20.0


def test_prefetch_follows_pulls_and_cold_starts():
    on = recommend(evidence())
    assert on.prefetch["enabled"] is True
    assert any("cuts a start from 240 s to 60 s" in line for line in on.prefetch_advice)
    no_pull = recommend(evidence(pull_s=0.0))
    assert no_pull.prefetch["enabled"] is False
    assert "not part of this cold start" in no_pull.prefetch_advice[0]
    warm_only = [point("forecast@1", 0.995, 12.0, cold=0)]
    assert recommend(evidence(points=warm_only)).prefetch["enabled"] is False


def test_warm_nodes_cover_the_rise_of_demand_within_a_lead_time():
    # a step from 4,000 to 20,000 work/s: a rise of 16,000 within one lead time
    demand = np.concatenate([np.full(120, 4000.0), np.full(120, 20000.0)])
    s = recommend(evidence(demand=demand))
    per_replica = float(demand.mean()) / 3.0
    replicas = math.ceil(16000.0 / per_replica)
    assert s.prefetch["max_warm_nodes"] == math.ceil(replicas * 4 / 8)
    assert any(f"rose by up to {replicas} replicas" in line for line in s.prefetch_advice)


def test_the_comparison_names_the_oracle_and_the_cheapest_good_baseline():
    s = recommend(evidence())
    assert s.comparison[0].startswith("1.20x the GPU-hours of the clairvoyant oracle")
    assert "14% fewer GPU-hours than kpa" in s.comparison[1]
    bad = [point("forecast@1", 0.995, 12.0), point("hpa-queue", 0.9, 20.0)]
    assert recommend(evidence(points=bad)).comparison == (
        "no baseline met the target; the closest, hpa-queue, reached 90.00%",
    )


def test_settings_serialise_to_json_ready_types():
    import json

    s = recommend(evidence())
    out = json.loads(json.dumps(s.to_json()))
    assert out["policy"] == "forecast@1.2" and out["min_replicas"] == s.min_replicas
    assert out["targets"]["metric"] == "llm_desired_replicas"


def test_the_rules_and_the_pages_do_no_io():
    """Only history.py talks to Prometheus; the rules, manifests and pages are pure."""
    from tests.test_layout import IO_CLIENTS, imports_of

    pure = ("recommend", "manifests", "document", "html_page", "markdown_summary", "accuracy")
    found = imports_of("autoscaler/offline/report")
    for module in pure:
        names = found[f"autoscaler/offline/report/{module}.py"]
        bad = [n for n in names if any(n == f or n.startswith(f + ".") for f in IO_CLIENTS)]
        assert bad == [], module
    assert "autoscaler.clients.prometheus" in found["autoscaler/offline/report/history.py"]

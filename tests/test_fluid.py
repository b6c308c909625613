"""Fluid (rate-level) simulation: queue, backlog, gaps, lifecycle, determinism, figures."""

from __future__ import annotations

import math

import numpy as np
import pytest

from autoscaler.core.slo import SloSpec
from autoscaler.perf.profiles import get_profile
from autoscaler.simulation.engine import SimConfig, simulate
from autoscaler.simulation.fluid import fill_gaps, fluid_figures, simulate_fluid
from autoscaler.simulation.fluid_model import build_replica_model, length_sample
from autoscaler.simulation.lifecycle import LifecycleConfig
from autoscaler.simulation.oracle import INSTANT, PlanPolicy
from autoscaler.simulation.results import FIGURES
from autoscaler.traces.records import from_columns
from autoscaler.traces.synthetic import AZURE_CONV_LENGTHS

SLO = SloSpec()


@pytest.fixture(scope="module")
def profile():
    return get_profile()


@pytest.fixture(scope="module")
def model(profile):
    return build_replica_model(profile, SLO, *length_sample(AZURE_CONV_LENGTHS, n=1024))


def _run(rates, policy, profile, model, **config):
    cfg = SimConfig(**{"max_replicas": 8, "lifecycle": INSTANT, **config})
    return simulate_fluid(
        np.asarray(rates, dtype=np.float64),
        60.0,
        policy,
        profile=profile,
        config=cfg,
        slo=SLO,
        model=model,
    )


def test_replica_model_is_consistent(model):
    assert 0 < model.b_peak <= model.b_cap
    assert model.b_tpot < model.b_peak  # the TPOT SLO binds before the throughput peak
    assert 0 < model.mu_sat <= model.lam_peak
    assert np.all(np.diff(model.lam_grid[: model.index_at(model.b_peak)]) >= 0)
    assert model.ok_grid.min() >= 0.0 and model.ok_grid.max() <= 1.0
    # more interference, fewer requests meet the SLO
    assert np.all(np.diff(model.ok_grid, axis=0) <= 1e-9)


def test_low_load_has_an_empty_queue_and_meets_the_slo(profile, model):
    seen = []

    class Watch(PlanPolicy):
        def recommend(self, snapshot):
            seen.append(snapshot)
            return super().recommend(snapshot)

    rate = 0.2 * model.lam_peak * 2
    out = _run([rate] * 10, Watch("two", (2,)), profile, model, start_replicas=2)
    assert out.final_backlog == 0.0
    assert out.slo_attainment > 0.99
    assert out.requests == pytest.approx(rate * 600.0)
    late = [s for s in seen if s.timestamp >= 120]
    # no backlog: only the requests waiting for their prefill (Little's law), well under one
    assert all(0.0 < s.waiting < 0.5 for s in late)
    # KV usage is the context the running sequences hold, below the reserved final context
    for s in late:
        running = s.per_replica_running[0]
        assert s.kv_usage == pytest.approx(running * model.ctx_per_seq / model.kv_capacity)
    assert model.ctx_per_seq < model.kv_per_seq
    assert all(s.request_rate == pytest.approx(rate, rel=1e-3) for s in late)
    assert all(s.ttft_p90_s is not None and s.ttft_p90_s < 1.0 for s in late)
    assert out.gpu_hours == pytest.approx(2 * profile.tp * 600.0 / 3600.0)


def test_backlog_grows_when_arrivals_exceed_capacity(profile, model):
    rate = 2.0 * model.lam_peak
    short = _run([rate] * 5, PlanPolicy("one", (1,)), profile, model, max_replicas=1)
    long = _run([rate] * 10, PlanPolicy("one", (1,)), profile, model, max_replicas=1)
    assert short.final_backlog > 0
    # past saturation the backlog grows at lambda - mu_sat
    growth = (long.final_backlog - short.final_backlog) / 300.0
    assert growth == pytest.approx(rate - model.mu_sat, rel=0.05)
    assert long.slo_attainment < 0.5
    assert long.slo_attainment < short.slo_attainment


def test_backlog_drains_once_capacity_returns(profile, model):
    rate = 1.5 * model.lam_peak
    plan = PlanPolicy("plan", (1, 1, 1, 4, 4, 4, 4, 4))
    out = _run([rate] * 8, plan, profile, model, max_replicas=4)
    assert out.final_backlog == 0.0
    assert out.tick_ok[-1] > 0.95


def test_missing_windows_hold_the_last_rate(profile, model):
    assert fill_gaps([np.nan, 2.0, np.nan, np.inf, 3.0, -1.0]).tolist() == [
        2.0,
        2.0,
        2.0,
        2.0,
        3.0,
        3.0,
    ]
    assert fill_gaps([np.nan, np.nan]).tolist() == [0.0, 0.0]
    gappy = _run([3.0, np.nan, np.nan, 5.0], PlanPolicy("two", (2,)), profile, model)
    held = _run([3.0, 3.0, 3.0, 5.0], PlanPolicy("two", (2,)), profile, model)
    assert gappy.requests == held.requests
    assert gappy.met == held.met


def test_runs_are_deterministic(profile, model):
    rates = 4.0 + 3.0 * np.sin(np.arange(30) / 5.0)
    policy = PlanPolicy("three", (3,))
    a = _run(rates, policy, profile, model, start_replicas=3)
    b = _run(rates, policy, profile, model, start_replicas=3)
    assert a.met == b.met and a.gpu_seconds == b.gpu_seconds
    assert fluid_figures(a, oracle_gpu_hours=1.0, work_bound_gpu_hours=0.5) == fluid_figures(
        b, oracle_gpu_hours=1.0, work_bound_gpu_hours=0.5
    )


def test_lifecycle_matches_the_request_level_fleet(profile, model):
    """Same pods, nodes, warm starts, ready times and GPU time as ``engine.simulate``."""
    life = LifecycleConfig(pull_s=180.0, init_s=60.0)
    plan = (1, 3, 3, 3, 3, 1, 1, 3, 3, 3, 3, 3)
    cfg = SimConfig(max_replicas=3, lifecycle=life)
    trace = from_columns(
        "one", "synthetic", np.asarray([1.0]), np.asarray([10]), np.asarray([2]), 720.0
    )
    ref = simulate(trace, PlanPolicy("up", plan), profile=profile, config=cfg)
    out = _run([0.0] * 12, PlanPolicy("up", plan), profile, model, lifecycle=life, max_replicas=3)
    assert [r.ready for r in out.timeline] == [r.ready for r in ref.timeline]
    assert [r.starting for r in out.timeline] == [r.starting for r in ref.timeline]
    assert (out.cold_starts, out.warm_starts) == (ref.fleet.cold_starts, ref.fleet.warm_starts)
    assert out.cold_starts == 1 and out.warm_starts == 3  # the first pod's node holds the image
    assert out.replica_changes == ref.replica_changes == 3
    assert out.max_replicas == ref.max_replicas == 3
    assert out.gpu_seconds == pytest.approx(ref.fleet.gpu_seconds(720.0))


def test_figures_have_every_key(profile, model):
    out = _run([2.0] * 5, PlanPolicy("one", (1,)), profile, model)
    figs = fluid_figures(out, oracle_gpu_hours=1.0, work_bound_gpu_hours=0.5)
    assert tuple(figs) == FIGURES
    assert figs["requests"] == 600
    assert figs["oracle_gpu_hours"] == 1.0
    for key in ("ttft_p50_s", "ttft_p90_s", "ttft_p99_s", "tpot_p90_s"):
        value = figs[key]
        assert isinstance(value, float) and math.isfinite(value)
    assert figs["ttft_p50_s"] <= figs["ttft_p90_s"] <= figs["ttft_p99_s"]


def test_hpa_policies_go_through_the_hpa_emulation(profile, model):
    from autoscaler.policies.base import PolicyContext
    from autoscaler.policies.registry import make_policy

    ctx = PolicyContext(slo=SLO, max_replicas=20, replica_token_capacity=6000.0)
    rates = np.r_[np.full(5, 5.0), np.full(20, 40.0)]
    out = _run(rates, make_policy("hpa-queue@3", ctx), profile, model, max_replicas=20)
    assert out.max_replicas > 1
    assert out.timeline[-1].ready > 1


def test_history_lengths_keep_each_windows_token_work():
    from autoscaler.simulation.fluid_runner import history_lengths

    prompts, outputs = length_sample(AZURE_CONV_LENGTHS, n=1024)
    weights = (1.0, 3.0)
    rates = np.asarray([1.0, 2.0, 4.0, 2.0])
    mean_p = np.asarray([2000.0, 4000.0, math.nan, 1000.0])
    mean_o = np.asarray([100.0, 300.0, math.nan, 200.0])
    p2, o2, r2 = history_lengths(prompts, outputs, rates, (mean_p, mean_o), weights)
    # the sample takes the history's request-weighted means (unknown windows left out)
    assert p2.mean() == pytest.approx((2000 + 2 * 4000 + 2 * 1000) / 5, rel=0.01)
    assert o2.mean() == pytest.approx((100 + 2 * 300 + 2 * 200) / 5, rel=0.01)
    # each known window keeps its own token work; an unknown one counts at the mean
    mean_work = float(np.mean(p2 * weights[0] + o2 * weights[1]))
    work = mean_p * weights[0] + mean_o * weights[1]
    known = np.isfinite(work)
    assert r2[known] * mean_work == pytest.approx(rates[known] * work[known])
    assert r2[2] == pytest.approx(rates[2], rel=0.01)
    # no length known anywhere: the sample and the rates are unchanged
    none = np.full(4, math.nan)
    p3, o3, r3 = history_lengths(prompts, outputs, rates, (none, none), weights)
    assert p3 is prompts and o3 is outputs and r3 is rates


def test_window_lengths_show_each_windows_request_mix(profile, model):
    seen = []

    class Watch(PlanPolicy):
        def recommend(self, snapshot):
            seen.append(snapshot)
            return super().recommend(snapshot)

    rate = 0.4 * model.lam_peak
    weights = (1.0, 3.0)
    mean_work = model.mean_prompt * weights[0] + model.mean_output * weights[1]
    # window 1: prompts twice the mean, outputs the mean; window 2 unknown: the model's mix
    prompt = np.asarray([2 * model.mean_prompt] * 5 + [math.nan] * 5)
    output = np.asarray([model.mean_output] * 10)
    out = simulate_fluid(
        np.full(10, rate),
        60.0,
        Watch("two", (2,)),
        profile=profile,
        config=SimConfig(max_replicas=8, lifecycle=INSTANT, start_replicas=2, work_weights=weights),
        slo=SLO,
        model=model,
        window_lengths=(prompt, output),
    )
    assert out.requests == pytest.approx(rate * 600.0)  # the simulated work is unchanged
    real = mean_work / (2 * model.mean_prompt * weights[0] + model.mean_output * weights[1])
    first = next(s for s in seen if s.timestamp == 240.0)
    assert first.request_rate == pytest.approx(rate * real, rel=1e-3)
    assert first.mean_prompt_tokens == pytest.approx(2 * model.mean_prompt)
    assert first.mean_output_tokens == pytest.approx(model.mean_output)
    work = first.prompt_tokens_rate * weights[0] + first.generation_tokens_rate * weights[1]
    assert work == pytest.approx(rate * mean_work, rel=1e-3)
    last = next(s for s in seen if s.timestamp == 540.0)
    assert last.mean_prompt_tokens == pytest.approx(model.mean_prompt)
    assert last.request_rate == pytest.approx(rate, rel=1e-3)

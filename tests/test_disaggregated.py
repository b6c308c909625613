"""The disaggregated simulator, the two-pool oracle and the per-role policies.

Times are computed by hand from the toy profile (tests/simhelpers.py): prefill of ``L`` tokens
in one step costs ``0.01 + 0.0001 L``, a decode step of ``B`` sequences ``0.02 + 0.001 B``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from autoscaler.cli import main
from autoscaler.cli.disaggregate import role_policy_names
from autoscaler.core.signals import ReplicaCounts, SignalSnapshot
from autoscaler.core.slo import SloSpec
from autoscaler.errors import InputError, UnknownNameError
from autoscaler.policies.base import PolicyContext
from autoscaler.policies.dynamo_pd import DynamoPdPolicy
from autoscaler.policies.role_forecast import START_UTILISATION, RoleForecastPolicy
from autoscaler.policies.roles import make_role_policies, role_contexts
from autoscaler.simulation.disaggregated import PdConfig, simulate_pd
from autoscaler.simulation.engine import SimConfig, simulate
from autoscaler.simulation.oracle import INSTANT, PlanPolicy
from autoscaler.simulation.pd_oracle import pd_oracle
from autoscaler.simulation.pd_runner import pd_figures
from autoscaler.traces.records import from_columns
from tests.simhelpers import poisson_trace, toy_profile

KV_BYTES = 1_000_000
LINK_GBPS = 8.0
"""1e9 bytes/s: a token's KV (1 MB) takes 1 ms."""


def _trace(arrivals, prompts, outputs, duration=60.0):
    return from_columns("t", "synthetic", np.asarray(arrivals, dtype=float),
                        np.asarray(prompts), np.asarray(outputs), duration)  # fmt: skip


def _run(trace, prefill=1, decode=1, profile=None, **overrides):
    profile = profile or toy_profile()
    config = PdConfig(
        max_replicas={"prefill": prefill, "decode": decode},
        start_replicas={"prefill": prefill, "decode": decode},
        kv_bytes_per_token=overrides.pop("kv_bytes", KV_BYTES),
        link_gbps=LINK_GBPS,
        lifecycle=INSTANT,
        **overrides,
    )
    policies = {"prefill": PlanPolicy("p", (prefill,)), "decode": PlanPolicy("d", (decode,))}
    return simulate_pd(trace, policies, profile=profile, config=config)


def test_a_request_is_prefilled_moved_and_decoded_at_hand_computed_times():
    out = _run(_trace([0.0], [1000], [11]))
    # prefill 0.01 + 0.1 = 0.11 s; KV 1000 tokens x 1 ms = 1.0 s; first token at 1.11 s
    assert out.reqs.first_token[0] == pytest.approx(1.11)
    # 10 more tokens, batch of one: 10 x 0.021 s
    assert out.reqs.finished[0] == pytest.approx(1.11 + 0.21)
    # the prefill engine's own TTFT (what its /metrics show) ends at its prefill
    assert out.prefill_reqs.first_token[0] == pytest.approx(0.11)


def test_transfers_leave_one_at_a_time_over_a_prefill_replicas_link():
    out = _run(_trace([0.0, 0.0], [1000, 1000], [2, 2]))
    # the first arrival starts a step alone (0.11 s), the second follows (0.11 s); the second's
    # KV waits for the first's to leave (1.11 s) instead of leaving at 0.22 s
    assert out.reqs.first_token[0] == pytest.approx(1.11)
    assert out.reqs.first_token[1] == pytest.approx(2.11)


def test_a_faster_link_moves_the_kv_sooner():
    slow = _run(_trace([0.0], [1000], [2]))
    fast = _run(_trace([0.0], [1000], [2]), kv_bytes=1000)
    assert fast.reqs.first_token[0] < slow.reqs.first_token[0]
    assert fast.reqs.first_token[0] == pytest.approx(0.11 + 0.001)


def test_decode_admission_waits_for_decode_side_kv():
    profile = toy_profile(kv_capacity_tokens=2_500)
    out = _run(_trace([0.0, 0.0], [1000, 1000], [1000, 1000]), profile=profile, kv_bytes=1)
    # each needs 2,000 tokens of decode KV at the end: the second waits for the first to finish
    assert out.reqs.first_token[1] >= out.reqs.finished[0]
    both = _run(_trace([0.0, 0.0], [1000, 1000], [1000, 1000]), kv_bytes=1)
    assert both.reqs.first_token[1] < both.reqs.finished[0]


def test_a_long_prefill_does_not_stall_decode_as_it_does_on_an_aggregated_replica():
    profile = toy_profile(max_batched_tokens=8192)
    trace = _trace([0.0, 0.5], [100, 8000], [50, 2])
    pd = _run(trace, profile=profile, kv_bytes=1)
    agg = simulate(trace, PlanPolicy("one", (1,)), profile=profile,
                   config=SimConfig(max_replicas=1, lifecycle=INSTANT))  # fmt: skip

    def tpot(reqs):
        return (reqs.finished[0] - reqs.first_token[0]) / 49

    assert tpot(pd.reqs) < 0.0225  # pure decode steps of one or two sequences
    assert tpot(agg.reqs) > tpot(pd.reqs) + 0.01  # one step carried the 8,000-token prefill


def test_figures_count_both_pools_gpu_hours():
    trace = poisson_trace(2.0, 600.0, 500, 20)
    out = _run(trace, prefill=2, decode=1, kv_bytes=1)
    figs = pd_figures(out, SloSpec(), oracle_gpu_hours=1.0, work_bound=0.5)
    assert figs["gpu_hours_prefill"] == pytest.approx(2 * 600 * 4 / 3600)
    assert figs["gpu_hours_decode"] == pytest.approx(1 * 600 * 4 / 3600)
    assert figs["gpu_hours"] == pytest.approx(3 * 600 * 4 / 3600)
    assert figs["requests"] == trace.requests
    assert figs["slo_attainment"] == pytest.approx(1.0)


def test_pools_have_their_own_lifecycle():
    trace = poisson_trace(1.0, 900.0, 500, 20)
    profile = toy_profile()
    config = PdConfig(
        max_replicas={"prefill": 3, "decode": 3},
        start_replicas={"prefill": 1, "decode": 1},
        kv_bytes_per_token=1,
        link_gbps=LINK_GBPS,
    )
    plans = {"prefill": PlanPolicy("p", (1, 3)), "decode": PlanPolicy("d", (1,))}
    out = simulate_pd(trace, plans, profile=profile, config=config)
    prefill, decode = out.fleets["prefill"], out.fleets["decode"]
    # one lands on the warm node (init, 60 s), one on a cold node (pull + init, 240 s)
    assert (prefill.warm_starts, prefill.cold_starts) == (1, 1)
    assert sorted(prefill.time_to_ready) == [pytest.approx(60.0), pytest.approx(240.0)]
    assert (decode.warm_starts, decode.cold_starts) == (0, 0)
    assert len(decode.records) == 1


def test_the_two_pool_oracle_meets_the_target_and_needs_more_prefill_for_longer_prompts():
    profile = toy_profile()
    slo = SloSpec()
    short = poisson_trace(4.0, 600.0, 500, 30, seed=1)
    long = poisson_trace(4.0, 600.0, 4000, 30, seed=1)
    kw = dict(kv_bytes_per_token=1000, link_gbps=400.0)
    a = pd_oracle(short, profile, slo, (1.0, 1.0), **kw)
    b = pd_oracle(long, profile, slo, (1.0, 1.0), **kw)
    assert a.target_met and b.target_met
    assert a.attainment_feasible >= slo.attainment_target
    assert sum(b.plans["prefill"].replicas_per_minute) > sum(a.plans["prefill"].replicas_per_minute)
    assert b.gpu_hours == pytest.approx(b.plans["prefill"].gpu_hours + b.plans["decode"].gpu_hours)


# --- policies ---------------------------------------------------------------------------------


def _ctx(**kw):
    return PolicyContext(slo=SloSpec(), max_replicas=kw.pop("max_replicas", 50), **kw)


def _snap(t, *, spec=2, ready=2, stale=False, starting=0, **fields):
    counts = ReplicaCounts(spec=spec, ready=ready, starting=starting, pending=0, terminating=0)
    return SignalSnapshot(workload="w", timestamp=t, replicas=counts, stale=stale, **fields)


def test_dynamo_pd_sizes_prefill_from_isl_and_decode_from_the_best_throughput_within_itl():
    profile = toy_profile()
    prefill = DynamoPdPolicy(_ctx(), "prefill", profile)
    decode = DynamoPdPolicy(_ctx(), "decode", profile)
    fields = dict(request_rate=20.0, mean_prompt_tokens=1000.0, mean_output_tokens=100.0)
    for t in range(0, 181, 15):
        p = prefill.recommend(_snap(float(t), **fields))
        d = decode.recommend(_snap(float(t), **fields))
    # prefill: 20 req/s x 1000 tokens / (1000 / 0.11 s) = 2.2 replicas -> 3
    assert p.desired_replicas == 3
    # decode: the best batch within ITL 0.1 s is 64 (max_num_seqs): 64 / 0.084 tok/s per replica;
    # 20 x 100 tok/s / 761.9 = 2.6 -> 3
    assert d.desired_replicas == 3
    # between adjustments the count stands, and stale data holds
    assert prefill.recommend(_snap(195.0, **fields)).desired_replicas == 3
    assert prefill.recommend(_snap(210.0, stale=True)).holds


def test_dynamo_pd_refuses_an_unknown_role():
    with pytest.raises(ValueError, match="role"):
        DynamoPdPolicy(_ctx(), "router", toy_profile())


def _prefill_fields(tokens, **kw):
    return dict(prompt_tokens_rate=tokens, mean_prompt_tokens=1000.0, waiting=0.0,
                waiting_growth_rate=0.0, **kw)  # fmt: skip


def test_ours_prefill_sizes_in_engine_seconds_and_holds_the_peak():
    policy = RoleForecastPolicy(_ctx(), "prefill", toy_profile())
    rec = policy.recommend(_snap(0.0, **_prefill_fields(20_000.0)))
    # 20,000 tok/s x (0.01/2048 + 0.0001) s/tok = 2.098 busy replicas / 0.7 -> 3
    assert rec.desired_replicas == 3
    assert rec.metrics[0].value == 3.0
    low = policy.recommend(_snap(15.0, **_prefill_fields(2_000.0)))
    assert low.desired_replicas == 3  # the peak of the last 5 minutes still stands
    later = [policy.recommend(_snap(15.0 * i, **_prefill_fields(2_000.0))) for i in range(2, 40)]
    assert later[-1].desired_replicas == 1


def test_ours_learns_a_lower_utilisation_from_ttft_misses_and_holds_without_data():
    policy = RoleForecastPolicy(_ctx(), "prefill", toy_profile())
    assert policy.recommend(_snap(0.0)).holds
    assert policy.recommend(_snap(15.0, stale=True, **_prefill_fields(1000.0))).holds
    for i in range(2, 10):
        policy.recommend(_snap(15.0 * i, ttft_p90_s=5.0, p90_prompt_tokens=1000.0,
                               **_prefill_fields(20_000.0)))  # fmt: skip
    assert policy.utilisation < START_UTILISATION


def test_ours_decode_counts_kv_as_well_as_decode_work():
    policy = RoleForecastPolicy(_ctx(), "decode", toy_profile())
    fields = dict(generation_tokens_rate=10.0, mean_prompt_tokens=1000.0, mean_output_tokens=100.0,
                  waiting=0.0, waiting_growth_rate=0.0)  # fmt: skip
    light = policy.recommend(_snap(0.0, kv_usage=0.1, **fields))
    assert light.desired_replicas == 1
    full = RoleForecastPolicy(_ctx(), "decode", toy_profile())
    heavy = full.recommend(_snap(0.0, ready=4, spec=4, kv_usage=0.95, **fields))
    assert heavy.winner == "kv"
    assert heavy.desired_replicas == 5  # 4 x 0.95 / 0.85 = 4.47 -> 5


def test_role_contexts_give_each_pool_its_own_work_unit_seed_and_cap():
    profile = toy_profile()
    base = _ctx(prefill_weight=1.0, decode_weight=3.0)
    ctxs = role_contexts(base, profile, {"prefill": 7, "decode": 3})
    assert (ctxs["prefill"].prefill_weight, ctxs["prefill"].decode_weight) == (1.0, 0.0)
    assert (ctxs["decode"].prefill_weight, ctxs["decode"].decode_weight) == (0.0, 3.0)
    assert ctxs["prefill"].max_replicas == 7 and ctxs["decode"].max_replicas == 3
    policies = make_role_policies("dynamo-pd@0.85", ctxs, profile)
    assert {p.name for p in policies.values()} == {"dynamo-pd"}
    assert set(make_role_policies("hpa-queue@3", ctxs, profile)) == {"prefill", "decode"}
    with pytest.raises(UnknownNameError):
        make_role_policies("magic", ctxs, profile)


def test_policy_names_expand_dynamo_pds_sweep_and_refuse_a_bad_setting():
    assert role_policy_names(["forecast", "dynamo-pd"], sweep=True) == [
        "forecast", "dynamo-pd@0.7", "dynamo-pd@0.85", "dynamo-pd@1", "dynamo-pd@1.2"
    ]  # fmt: skip
    with pytest.raises(InputError, match="dynamo-pd@fast"):
        role_policy_names(["dynamo-pd@fast"], sweep=False)


def test_simulate_disaggregate_prints_both_pools_and_the_aggregated_oracle(tmp_path, capsys):
    rng = np.random.default_rng(0)
    times = np.sort(rng.uniform(0, 1200, 600))
    rows = [f"2023-11-16 18:{int(t // 60):02d}:{t % 60:09.6f},{int(rng.integers(2000, 6000))},"
            f"{int(rng.integers(5, 60))}" for t in times]  # fmt: skip
    trace = tmp_path / "t.csv"
    trace.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n" + "\n".join(rows) + "\n")
    code = main(["simulate", "--trace", str(trace), "--disaggregate", "--seeds", "1",
                 "--policy", "forecast", "--policy", "dynamo-pd@1", "--oracle-cache", "off",
                 "--json"])  # fmt: skip
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["policies"]) == {"oracle", "oracle-late", "forecast", "dynamo-pd@1"}
    row = result["policies"]["forecast"]
    assert row["gpu_hours"] == pytest.approx(row["gpu_hours_prefill"] + row["gpu_hours_decode"])
    assert result["yardstick"]["aggregated_oracle_gpu_hours"] > 0
    assert result["disaggregated"]["link_gbps"] == 400.0


def test_the_comparison_reports_both_fleets_gpu_hours_and_a_ratio_range():
    from autoscaler.simulation.pd_compare import compare, comparison_markdown

    trace = poisson_trace(3.0, 600.0, 3000, 20, seed=2)
    c = compare(trace, toy_profile(), SloSpec(), kv_bytes_per_token=1000)
    assert c.aggregated_gpu_hours > 0 and c.disaggregated_gpu_hours > 0
    assert c.disaggregated_gpu_hours == pytest.approx(c.prefill_gpu_hours + c.decode_gpu_hours)
    assert 0 < c.ratio_low <= c.ratio_high
    text = comparison_markdown(c)
    assert "## Aggregated vs disaggregated" in text
    assert f"{c.aggregated_gpu_hours:.1f}" in text and "prefill:decode ratio" in text


def test_an_unknown_name_lists_the_role_only_policies_too():
    with pytest.raises(UnknownNameError, match="dynamo-pd") as exc:
        role_policy_names(["magic"], sweep=False)
    assert "forecast-agg" in str(exc.value) and "hpa-queue" in str(exc.value)

"""``report --disaggregation``: the aggregated-vs-disaggregated section for the workload's history
(both fleets' GPU-hours at the SLO, the prefill:decode ratio range) and per-role manifests."""

from __future__ import annotations

import dataclasses
import json

import yaml  # type: ignore[import-untyped,unused-ignore]

from autoscaler.core.slo import SloSpec
from autoscaler.offline.report import build, history
from autoscaler.offline.report.disaggregation import disaggregation
from autoscaler.offline.series import trace_series
from autoscaler.perf.profiles import get_profile
from autoscaler.simulation.oracle import work_weights
from autoscaler.simulation.pd_compare import compare
from autoscaler.simulation.runner import RunRequest
from tests.simhelpers import poisson_trace


def _history(with_trace: bool = True) -> tuple[history.History, RunRequest]:
    profile, slo = get_profile(), SloSpec()
    weights = work_weights(profile, slo)
    trace = poisson_trace(rate=2.0, duration=300.0, prompt=6000, output=100)
    hist = history.History(
        workload="llm/rag",
        source={"kind": "trace", "path": "poisson", "format": "synthetic"},
        interval_s=15.0,
        demand=trace_series(trace, interval_s=15.0, kind="token_work", weights=weights),
        weights=weights,
        trace=trace if with_trace else None,
    )
    return hist, RunRequest(policies=["forecast@1"], profile=profile, slo=slo, seeds=1)


def test_the_section_the_json_and_the_role_manifests(tmp_path):
    hist, req = _history()
    report = build.build_report(hist, req, disaggregated=True)
    d = report.disaggregation
    assert d is not None and report.disaggregation_note is None
    assert d.comparison == compare(hist.trace, req.profile, req.slo)  # type: ignore[arg-type]
    c = d.comparison
    assert c.aggregated_gpu_hours > 0 and c.disaggregated_gpu_hours > 0
    assert 1 <= c.prefill_peak and 1 <= c.decode_peak
    assert [(t.role, t.name) for t in d.targets] == [
        ("prefill", "rag-prefill"),
        ("decode", "rag-decode"),
    ]
    assert d.targets[0].max_replicas >= c.prefill_peak
    files = build.write_report(report, tmp_path)
    page = files.html.read_text(encoding="utf-8")
    assert "Aggregated vs disaggregated" in page and "prefill:decode ratio" in page
    assert f"{c.disaggregated_gpu_hours:.1f}" in page
    assert "Aggregated vs disaggregated" in files.markdown.read_text(encoding="utf-8")
    figures = json.loads(files.json.read_text())["disaggregation"]
    assert figures["aggregated_gpu_hours"] == c.aggregated_gpu_hours
    assert [r["role"] for r in figures["roles"]] == ["prefill", "decode"]
    assert [p.name for p in files.roles] == ["pd-roles-hpa.yaml", "pd-roles-keda.yaml"]
    hpas = list(yaml.safe_load_all(files.roles[0].read_text()))
    assert [
        h["spec"]["metrics"][0]["external"]["metric"]["selector"]["matchLabels"] for h in hpas
    ] == [
        {"workload": "rag", "role": "prefill"},
        {"workload": "rag", "role": "decode"},
    ]
    assert [h["spec"]["maxReplicas"] for h in hpas] == [t.max_replicas for t in d.targets]


def test_a_rate_history_gets_a_note_instead():
    hist, req = _history(with_trace=False)
    found, why = disaggregation(hist, req)
    assert found is None and "request-level history" in why


def test_without_the_flag_the_report_is_unchanged(tmp_path):
    hist, req = _history()
    report = build.build_report(hist, req)
    assert report.disaggregation is None and report.disaggregation_note is None
    plain = dataclasses.replace(report)
    files = build.write_report(plain, tmp_path)
    assert files.roles == () and "Aggregated vs disaggregated" not in files.html.read_text()
    assert json.loads(files.json.read_text())["disaggregation"] is None

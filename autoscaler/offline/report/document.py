"""What the report says, once: sections of plain blocks that the HTML page and the Markdown
summary both lay out.

Keeping the content here and the markup in :mod:`~autoscaler.offline.report.html_page` and
:mod:`~autoscaler.offline.report.markdown_summary` means the two files cannot disagree on a number
or a sentence. Blocks hold plain text (the renderers escape it) and refer to plots by name.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from autoscaler.offline.report.accuracy import POLICY_MODEL, Accuracy
from autoscaler.offline.report.engine_settings import CEILING_SHARE, MIN_SAVING
from autoscaler.offline.tables import COLUMNS, rows

if TYPE_CHECKING:
    from autoscaler.offline.report.contents import Report


@dataclass(frozen=True)
class Paragraph:
    text: str
    warning: bool = False


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    numeric: tuple[bool, ...] = ()
    """Per column: right-aligned numbers (default: every column but the first)."""

    def is_numeric(self, column: int) -> bool:
        return self.numeric[column] if self.numeric else column > 0


@dataclass(frozen=True)
class Image:
    key: str
    """The plot's name (``curve``, ``demand``, ``accuracy``, ``replicas``)."""
    alt: str
    caption: str


@dataclass(frozen=True)
class Code:
    text: str
    filename: str
    language: str = "yaml"


Block = Paragraph | Bullets | Table | Image | Code


@dataclass(frozen=True)
class Section:
    title: str
    anchor: str
    blocks: tuple[Block, ...]


@dataclass(frozen=True)
class Document:
    title: str
    facts: tuple[tuple[str, str], ...]
    """(label, value) lines under the title: source, history, profile, SLO."""
    sections: tuple[Section, ...]

    def images(self) -> list[Image]:
        return [b for s in self.sections for b in s.blocks if isinstance(b, Image)]


def _pct(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{100 * x:.{digits}f}%"


def _num(x: float | None, digits: int = 3) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def _duration(seconds: float) -> str:
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * 86_400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86_400:.1f} days"


def _facts(report: Report) -> tuple[tuple[str, str], ...]:
    h = report.history
    src = h.source
    if src.get("kind") == "prometheus":
        source = (
            f"Prometheus {src.get('url') or ''} · {src.get('engine')} metrics · "
            f"{src.get('start')} to {src.get('end')}, step {src.get('step_s'):g} s"
        )
    else:
        source = f"{src.get('path')} ({src.get('format')}"
        source += f", model {src['model']}" if "model" in src else ""
        source += f", {src['requests']:,} requests" if "requests" in src else ""
        source += f", rate x{src['rate_scale']:g}" if "rate_scale" in src else ""
        source += ")"
    missing = int(sum(1 for v in h.demand.tolist() if not math.isfinite(v)))
    mode = (
        "request-level simulator"
        if h.mode == "requests"
        else "fluid simulator (rates; request lengths from the fitted Azure mixture)"
    )
    history = (
        f"{_duration(h.duration_s)} in {h.demand.size} intervals of {h.interval_s:g} s"
        + (f" ({missing} missing)" if missing else "")
        + f"; replayed in the {mode}"
    )
    req = report.request
    slo = req.slo
    lc = req.lifecycle
    gpu = _gpu_memory_fact(src)
    return (
        ("workload", h.workload),
        ("source", source),
        ("history", history),
        *((("GPU memory", gpu),) if gpu else ()),
        (
            "replica",
            f"{req.profile.key}, {req.profile.tp} GPUs per replica, token budget "
            f"{req.profile.max_batched_tokens:,}, max {req.profile.max_num_seqs} sequences",
        ),
        (
            "SLO",
            f"TTFT <= {slo.ttft_s:g} s + {slo.ttft_per_1k_s:g} s per 1k prompt tokens, "
            f"TPOT <= {slo.tpot_s:g} s, for {_pct(slo.attainment_target, 1)} of requests",
        ),
        (
            "start-up",
            f"provisioning {lc.provision_s:g} s + image pull {lc.pull_s:g} s + "
            f"engine init {lc.init_s:g} s",
        ),
    )


def _gpu_memory_fact(src: Mapping[str, object]) -> str | None:
    """What the history says about GPU memory (dcgm-exporter), for a Prometheus source."""
    gpu = src.get("gpu_memory")
    if not isinstance(gpu, Mapping):
        return None
    guard = (
        "the memory-pressure guard is live on this engine"
        if gpu.get("guard")
        else "not a guard here: the engine's KV gauge covers its preallocated pool"
    )
    steps, mean, peak = gpu.get("steps"), gpu.get("mean"), gpu.get("max")
    if not steps or not isinstance(mean, float) or not isinstance(peak, float):
        return f"no dcgm-exporter data joined to the workload's pods; {guard}"
    pressure = gpu.get("pressure")
    limit = (
        f" (at or above {_pct(pressure, 0)} in {gpu.get('pressed_steps')} steps)"
        if (isinstance(pressure, float))
        else ""
    )
    return (
        f"mean {_pct(mean, 0)} of the framebuffer, fullest replica up to {_pct(peak, 0)}"
        f"{limit}, over {steps} steps; {guard}"
    )


def _settings_section(report: Report) -> Section:
    s = report.settings
    t = s.targets
    pre = s.prefetch
    table = Table(
        header=("setting", "value", "why"),
        rows=(
            ("head-room (forecast setting)", f"{s.headroom:g} ({s.policy})", s.headroom_reason),
            ("min replicas (HPA, config)", str(s.min_replicas), s.min_reason),
            ("max replicas", str(s.max_replicas), s.max_reason),
            ("KEDA minReplicaCount", str(s.keda_min_replicas), s.keda_min_reason),
            (
                "HPA / KEDA target",
                f"{t['metric']}, AverageValue 1",
                "the published value is already the replica count (DESIGN.md)",
            ),
            (
                "token work per replica",
                f"{t['token_work_per_replica']:,.0f}/s" if "token_work_per_replica" in t else "-",
                "mean demand per replica at this setting (includes head-room and cold starts)",
            ),
            (
                "prefetch.enabled",
                str(pre["enabled"]).lower(),
                "see Cold start and prefetch below",
            ),
            ("prefetch.max_warm_nodes", str(pre["max_warm_nodes"]), "covers the p99 rise"),
            ("prefetch.spare_replicas", str(pre["spare_replicas"]), "the service default"),
        ),
        numeric=(False, False, False),
    )
    blocks: list[Paragraph | Bullets | Table] = []
    if not s.meets_target:
        blocks.append(Paragraph(s.headroom_reason, warning=True))
    blocks.append(table)
    if s.comparison:
        blocks.append(Paragraph(f"{s.policy}, compared:"))
        blocks.append(Bullets(s.comparison))
    return Section("Recommended settings", "settings", tuple(blocks))


def _engine_section(report: Report) -> Section:
    """The token budget (vLLM's ``--max-num-batched-tokens``): the fleet oracle per budget."""
    title, anchor = "Engine token budget", "engine-settings"
    e = report.engine_settings
    if e is None:
        note = report.engine_settings_note or "No token-budget comparison."
        return Section(title, anchor, (Paragraph(note),))
    now = e.row(e.current)
    rows: list[tuple[str, ...]] = []
    for r in e.rows:
        marks = [
            mark
            for mark, on in (
                ("current", r is now),
                ("recommended", r.max_batched_tokens == e.recommended),
            )
            if on
        ]
        label = f"{r.max_batched_tokens:,}" + (f" ({', '.join(marks)})" if marks else "")
        versus = r.gpu_hours / now.gpu_hours - 1.0 if now.gpu_hours > 0 else 0.0
        rows.append(
            (
                label,
                f"{r.gpu_hours:.2f}",
                "-" if r is now else f"{versus:+.1%}",
                f"{r.fleet_capacity:,.0f}",
                _pct(r.attainment_feasible),
                _pct(r.slo_ceiling),
                "yes" if r.max_batched_tokens in e.eligible else "no",
            )
        )
    blocks: list[Paragraph | Table] = [
        Paragraph(f"vLLM's --max-num-batched-tokens: {e.reason}.", warning=not e.eligible),
        Table(
            header=(
                "token budget",
                "GPU-hours at the SLO",
                "vs current",
                "fleet capacity (work/s per replica)",
                "attainment (feasible)",
                "SLO ceiling",
                "eligible",
            ),
            rows=tuple(rows),
            numeric=(False, True, True, True, True, True, False),
        ),
        Paragraph(
            "Each row is the fleet oracle on this history with that budget and every other "
            f"setting unchanged (max_num_seqs {e.max_num_seqs}): the cheapest clairvoyant "
            "per-minute plan whose request-level replay meets the attainment target on the "
            "requests that can meet the SLO at all (the SLO ceiling). Eligible: the target is "
            f"met and the ceiling is within {CEILING_SHARE:.0%} of the error budget (1 - target) "
            "of the best budget's. A change is recommended only when it saves more than "
            f"{MIN_SAVING:.0%} (the oracle's noise)."
        ),
    ]
    if e.skipped:
        skipped = ", ".join(f"{b:,}" for b in e.skipped)
        blocks.append(Paragraph(f"Not compared: {skipped} (below max_num_seqs, vLLM refuses it)."))
    return Section(title, anchor, tuple(blocks))


def _curve_section(report: Report) -> Section:
    policies = report.simulation["policies"]
    assert isinstance(policies, Mapping)
    header = tuple(label for _, label in COLUMNS)
    seeds = report.simulation.get("seeds", 1)
    return Section(
        "SLO attainment vs GPU-hours",
        "curve",
        (
            Image(
                "curve",
                "SLO attainment against GPU-hours for each forecast head-room setting, the "
                "baselines and the oracle",
                "Ours at each head-room setting (a line), each baseline at its default setting "
                "and the clairvoyant oracle (points); the recommended setting is circled. The "
                "y axis is logit-scaled so 90%, 99% and 99.9% are equally far apart.",
            ),
            Table(header=header, rows=tuple(tuple(r) for r in rows(policies))),
            Paragraph(
                f"Figures from replaying the history ({seeds} seed(s)) with the simulator and "
                "the HPA behaviour deploy/ ships; every policy had the same SLO, replica cap and "
                "starting fleet. /oracle is GPU-hours relative to the oracle."
            ),
        ),
    )


def _demand_section(report: Report) -> Section:
    acc = report.accuracy
    text = (
        "Token work per second (prompt tokens plus decode tokens weighted by what they cost a "
        "replica), the unit the forecast policy scales on."
    )
    if acc is not None:
        ahead = acc.lead_steps * acc.interval_s
        text += (
            " The band is the policy's forecaster (damped Holt, fitted once and updated every "
            f"interval as in production) made {ahead:.0f} s before each point: one cold start "
            f"({acc.lead_time_s:.0f} s), rounded up to whole intervals."
        )
    return Section(
        "Demand and forecast",
        "demand",
        (
            Image(
                "demand",
                "Demand over time with the forecast made one lead time ahead and its 5-95% band",
                "Demand and the lead-time forecast.",
            ),
            Paragraph(text),
        ),
    )


def _horizon_rows(acc: Accuracy, picks: Sequence[int]) -> tuple[tuple[str, ...], ...]:
    out: list[tuple[str, ...]] = []
    for steps in picks:
        score = acc.at(steps)
        mine = score.figures[POLICY_MODEL]
        ref = score.figures[acc.reference]
        ci = score.wql_ci.get(POLICY_MODEL)
        out.append(
            (
                f"{score.horizon_s:g} s",
                _num(mine.get("wql")),
                "-" if ci is None else f"{ci[0]:.3f}-{ci[1]:.3f}",
                _num(mine.get("wql_ratio"), 2),
                _num(mine.get("coverage_90"), 2),
                _num(mine.get("mase"), 2),
                _num(ref.get("wql")),
                _num(ref.get("coverage_90"), 2),
            )
        )
    return tuple(out)


def _accuracy_section(report: Report) -> Section:
    acc = report.accuracy
    if acc is None:
        return Section(
            "Forecast accuracy by horizon",
            "accuracy",
            (Paragraph(f"No backtest: {report.accuracy_note}", warning=True),),
        )
    n = len(acc.by_horizon)
    warm = max(1, math.ceil(report.settings.warm_lead_time_s / acc.interval_s - 1e-9))
    picks = sorted({1, min(warm, n), min(acc.lead_steps, n), n, max(1, n // 4), max(1, n // 2)})
    ref = acc.reference
    return Section(
        "Forecast accuracy by horizon",
        "accuracy",
        (
            Image(
                "accuracy",
                "Weighted quantile loss and 90% interval coverage against the forecast horizon",
                "Rolling-origin backtest; the dashed lines mark the cold- and warm-start lead "
                "times.",
            ),
            Table(
                header=(
                    "horizon",
                    "WQL",
                    "WQL 95% CI",
                    f"WQL / {ref}",
                    "cov90",
                    "MASE",
                    f"{ref} WQL",
                    f"{ref} cov90",
                ),
                rows=_horizon_rows(acc, picks),
            ),
            Paragraph(
                f"{acc.windows} forecast origins. WQL: weighted quantile loss of the forecast "
                "quantiles (lower is better); WQL / reference below 1 beats the "
                f"{ref} reference; cov90: share of actuals inside the 5-95% band (0.9 is "
                "calibrated); MASE: error of the median relative to the in-sample naive error."
            ),
        ),
    )


def _advice_section(report: Report) -> Section:
    s = report.settings
    return Section(
        "Cold start and prefetch",
        "cold-start",
        (Bullets(s.cold_start_advice), Bullets(s.prefetch_advice)),
    )


def _manifest_section(report: Report) -> Section:
    return Section(
        "Ready-to-apply manifests",
        "manifests",
        (
            Paragraph(
                "Plain HPA (with the hpa overlay of deploy/ serving the External Metrics API):"
            ),
            Code(report.hpa_yaml, "hpa.yaml"),
            Paragraph("Or KEDA (with the keda overlay: the gRPC external scaler):"),
            Code(report.keda_yaml, "keda-scaledobject.yaml"),
        ),
    )


def _method_section(report: Report) -> Section:
    policies = report.simulation["policies"]
    assert isinstance(policies, Mapping)
    replayed = ", ".join(k for k in policies if k != "oracle")
    timings = ", ".join(f"{k} {v:.1f} s" for k, v in report.timings_s.items())
    items = [
        f"Policies replayed: {replayed} (and the oracle).",
        "forecast@SETTING multiplies the per-replica capacity the policy plans with: below 1 "
        "buys head-room, above 1 trusts a replica with more.",
        "Scoring: a request meets the SLO when its TTFT and TPOT are within budget; dropped "
        "and rejected requests count as misses; GPU-hours count every replica from creation "
        "to deletion, pulls and drains included.",
    ]
    if timings:
        items.append(f"Time taken: {timings}.")
    return Section("How this report was made", "method", (Bullets(tuple(items)),))


def _disaggregation_section(report: Report) -> Section | None:
    """Aggregated vs disaggregated, when ``--disaggregation`` asked for it."""
    title, anchor = "Aggregated vs disaggregated", "disaggregation"
    d = report.disaggregation
    if d is None:
        note = report.disaggregation_note
        return None if note is None else Section(title, anchor, (Paragraph(note),))
    c = d.comparison
    verdict = (
        f"A prefill/decode fleet saves {c.saving:.0%} of the GPU-hours"
        if c.saving > 0
        else f"A prefill/decode fleet costs {-c.saving:.0%} more GPU-hours"
    )
    caps = ", ".join(f"{t.role} {t.max_replicas}" for t in d.targets)
    return Section(
        title,
        anchor,
        (
            Paragraph(
                "The cheapest per-minute plan meeting the SLO over this history for each fleet "
                "shape (clairvoyant, zero start time): the fleet's shape, not a policy."
            ),
            Table(
                ("fleet", "GPU-hours at the SLO", "target met"),
                (
                    ("aggregated", f"{c.aggregated_gpu_hours:.1f}", _yes(c.aggregated_met)),
                    (
                        f"disaggregated (prefill {c.prefill_gpu_hours:.1f} + decode "
                        f"{c.decode_gpu_hours:.1f})",
                        f"{c.disaggregated_gpu_hours:.1f}",
                        _yes(c.disaggregated_met),
                    ),
                ),
                numeric=(False, True, False),
            ),
            Paragraph(
                f"{verdict}; recommended prefill:decode ratio {c.ratio_low:.1f}-"
                f"{c.ratio_high:.1f} (10th-90th percentile over the minutes). Per-role "
                f"manifests (caps: {caps}, each plan's peak plus a quarter):"
            ),
            Code(d.hpa_yaml, "pd-roles-hpa.yaml"),
            Code(d.keda_yaml, "pd-roles-keda.yaml"),
        ),
    )


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def build_document(report: Report, *, available: Sequence[str]) -> Document:
    """The report's sections; images whose plot is not in ``available`` are left out."""
    sections = [
        _settings_section(report),
        _engine_section(report),
        _curve_section(report),
        _demand_section(report),
        _accuracy_section(report),
    ]
    if "replicas" in available:
        sections.append(
            Section(
                "Replicas over time",
                "replicas",
                (
                    Image(
                        "replicas",
                        "Desired and ready replicas over time for the recommended setting and "
                        "the oracle",
                        "Desired (spec) and ready replicas, and the observed token work, seed 0.",
                    ),
                ),
            )
        )
    pd = _disaggregation_section(report)
    if pd is not None:
        sections.append(pd)
    sections += [_advice_section(report), _manifest_section(report), _method_section(report)]
    kept = tuple(
        Section(
            s.title,
            s.anchor,
            tuple(b for b in s.blocks if not isinstance(b, Image) or b.key in available),
        )
        for s in sections
    )
    return Document(
        title=f"Capacity report: {report.history.workload}",
        facts=_facts(report),
        sections=kept,
    )

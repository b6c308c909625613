"""From the evidence to settings: pure functions, no I/O, every number with its reason.

The evidence is what the report measured: the replay's figures per policy (the SLO-attainment vs
GPU-hours curve), the demand history, the forecast's accuracy by horizon, and the replica
start-up times. The rules, and why:

* **Head-room.** The cheapest ``forecast@SETTING`` (fewest GPU-hours) whose SLO attainment met
  the target. When none did, the one that came closest: an SLO miss costs users, a GPU-hour only
  money, and the report says the target was not met and what to try.
* **Replicas per GPU-hour.** A replica's share of the load at that setting is the history's mean
  demand over the run's mean fleet (GPU-hours / duration / GPUs per replica). It includes the
  head-room and the cold starts, so the floors derived from it lean towards more replicas.
* **min replicas.** The load of the quietest lead time of the history (rolling mean over one
  cold start) in replicas, rounded down, at least 1: a floor the policy would have stayed above
  anyway, which spares a cold start when the quiet ends. KEDA may go to 0 when the history holds
  idle stretches (no demand at all) of at least :data:`SCALE_TO_ZERO_IDLE_S`.
* **max replicas.** The run's peak plus a quarter (at least one more): the cap bounds a runaway,
  it should not bind in normal operation. A run that hit the simulation's cap is flagged.
* **Cold start.** The lead time is provisioning + pull + init; the forecast must see that far.
  The advice quotes the forecast's error there and at the warm lead time (no pull), which is what
  prefetching buys on the forecast side.
* **Prefetch.** Worth it when pulls are part of the cold start and the replay had cold starts.
  ``max_warm_nodes`` covers the 99th-percentile rise of demand within one lead time, in nodes;
  ``spare_replicas`` stays at its default of 1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import numpy.typing as npt

from autoscaler.core.slo import SloSpec
from autoscaler.core.wire_names import DESIRED_METRIC
from autoscaler.offline.report.accuracy import POLICY_MODEL, Accuracy
from autoscaler.policies.registry import parse_policy_name
from autoscaler.simulation.lifecycle import LifecycleConfig

FloatArray = npt.NDArray[np.float64]

OURS = "forecast"
ORACLE = "oracle"
ORACLE_LATE = "oracle-late"
REFERENCES = (ORACLE, ORACLE_LATE)
"""Reference rows of a run (``autoscaler.simulation.runner``): yardsticks, never baselines."""
MAX_MARGIN = 0.25
"""max replicas = peak x (1 + this), at least peak + 1."""
SCALE_TO_ZERO_IDLE_S = 1800.0
"""An idle stretch this long makes scale-to-zero (KEDA ``minReplicaCount: 0``) worth a cold
start."""
RISE_PERCENTILE = 99.0
NODE_GPUS = 8
"""GPUs per node in the simulator's node pool (DESIGN.md)."""
LOW_COVERAGE = 0.8
"""Below this 90%-interval coverage at the lead time, the forecast's band is too narrow."""


@dataclass(frozen=True)
class CurvePoint:
    """One policy's place on the SLO-attainment vs GPU-hours plane."""

    label: str
    policy: str
    setting: float | None
    slo_attainment: float | None
    gpu_hours: float | None
    max_replicas: float | None
    cold_starts: float | None
    warm_starts: float | None

    @property
    def ours(self) -> bool:
        return self.policy == OURS


def _num(value: object) -> float | None:
    if isinstance(value, int | float) and math.isfinite(float(value)):
        return float(value)
    return None


def curve_points(policies: Mapping[str, Mapping[str, object]]) -> list[CurvePoint]:
    """The ``policies`` object of a ``simulate --json`` result as curve points, in its order."""
    out: list[CurvePoint] = []
    for label, figs in policies.items():
        if label in REFERENCES:
            policy, setting = label, None
        else:
            policy, setting = parse_policy_name(label)
        out.append(
            CurvePoint(
                label=label,
                policy=policy,
                setting=setting,
                slo_attainment=_num(figs.get("slo_attainment")),
                gpu_hours=_num(figs.get("gpu_hours")),
                max_replicas=_num(figs.get("max_replicas")),
                cold_starts=_num(figs.get("cold_starts")),
                warm_starts=_num(figs.get("warm_starts")),
            )
        )
    return out


@dataclass(frozen=True)
class Evidence:
    """What the recommendations rest on (all measured by the report)."""

    namespace: str
    name: str
    points: Sequence[CurvePoint]
    slo: SloSpec
    demand: FloatArray
    """Token work per second, one value per ``interval_s`` (NaN: missing)."""
    interval_s: float
    duration_s: float
    """Duration of the replayed history."""
    gpus_per_replica: int
    lifecycle: LifecycleConfig
    accuracy: Accuracy | None
    replica_cap: int | None = None
    """The replay's replica cap (None: the runner's default, 2x the oracle's peak)."""


@dataclass(frozen=True)
class Settings:
    """The recommended settings, each with the reason a reader can check."""

    namespace: str
    name: str
    policy: str
    headroom: float
    meets_target: bool
    headroom_reason: str
    min_replicas: int
    min_reason: str
    max_replicas: int
    max_reason: str
    keda_min_replicas: int
    keda_min_reason: str
    targets: Mapping[str, object]
    lead_time_s: float
    warm_lead_time_s: float
    cold_start_advice: tuple[str, ...]
    prefetch: Mapping[str, object]
    prefetch_advice: tuple[str, ...]
    comparison: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, object]:
        out = asdict(self)
        out["cold_start_advice"] = list(self.cold_start_advice)
        out["prefetch_advice"] = list(self.prefetch_advice)
        out["comparison"] = list(self.comparison)
        return out


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def choose_headroom(points: Sequence[CurvePoint], target: float) -> tuple[CurvePoint, bool, str]:
    """The ``forecast@SETTING`` to recommend, whether it met ``target``, and why.

    Raises ValueError when no point of ours has figures (the replay ran none).
    """
    ours = [
        p
        for p in points
        if p.ours and p.setting is not None and p.slo_attainment is not None and p.gpu_hours
    ]
    if not ours:
        raise ValueError("no forecast@SETTING run has figures to choose from")
    meeting = [p for p in ours if (p.slo_attainment or 0.0) >= target]
    if meeting:
        # cheapest first; on a tie the lower setting (more head-room) is the safer pick
        best = min(meeting, key=lambda p: (p.gpu_hours or 0.0, p.setting or 0.0))
        assert best.slo_attainment is not None and best.gpu_hours is not None
        why = (
            f"{best.label} is the cheapest setting that met the {_pct(target)} SLO-attainment "
            f"target: {_pct(best.slo_attainment)} at {best.gpu_hours:.1f} GPU-hours "
            f"({len(meeting)} of {len(ours)} settings met it)"
        )
        if len(ours) > 1 and best.setting == max(p.setting or 0.0 for p in ours):
            why += (
                "; it is the highest setting tried, so a higher one may be cheaper still "
                "(extend --headroom)"
            )
        return best, True, why
    best = max(ours, key=lambda p: (p.slo_attainment or 0.0, -(p.gpu_hours or 0.0)))
    assert best.slo_attainment is not None
    lowest = min(p.setting or 0.0 for p in ours)
    why = (
        f"no setting met the {_pct(target)} target; {best.label} came closest at "
        f"{_pct(best.slo_attainment)}. Try settings below {lowest:g}, a higher --max-replicas, "
        "or a shorter cold start (prefetch)"
    )
    return best, False, why


def compare(chosen: CurvePoint, points: Sequence[CurvePoint], target: float) -> tuple[str, ...]:
    """How the chosen setting stands against the oracle and the baselines."""
    lines: list[str] = []
    gpu = chosen.gpu_hours or 0.0
    oracle = next((p for p in points if p.policy == ORACLE), None)
    if oracle is not None and oracle.gpu_hours:
        lines.append(
            f"{gpu / oracle.gpu_hours:.2f}x the GPU-hours of the clairvoyant oracle "
            f"({oracle.gpu_hours:.1f}; it starts replicas instantly with perfect foresight)"
        )
    baselines = [
        p
        for p in points
        if not p.ours
        and p.policy not in REFERENCES
        and p.gpu_hours
        and p.slo_attainment is not None
    ]
    good = [p for p in baselines if (p.slo_attainment or 0.0) >= target]
    if good:
        rival = min(good, key=lambda p: p.gpu_hours or 0.0)
        assert rival.gpu_hours is not None
        change = gpu / rival.gpu_hours - 1.0
        side = "fewer" if change < 0 else "more"
        lines.append(
            f"{abs(100 * change):.0f}% {side} GPU-hours than {rival.label}, the cheapest baseline "
            f"that met the target ({rival.gpu_hours:.1f})"
        )
    elif baselines:
        best = max(baselines, key=lambda p: p.slo_attainment or 0.0)
        assert best.slo_attainment is not None
        lines.append(
            f"no baseline met the target; the closest, {best.label}, reached "
            f"{_pct(best.slo_attainment)}"
        )
    return tuple(lines)


def _rolling_mean(values: FloatArray, width: int) -> FloatArray:
    """Mean over ``width`` consecutive intervals ending at each index (NaN-aware)."""
    ok = np.isfinite(values)
    sums = np.cumsum(np.where(ok, values, 0.0))
    counts = np.cumsum(ok)
    sums = np.concatenate([[0.0], sums])
    counts = np.concatenate([[0], counts])
    width = max(1, min(width, values.size))
    s = sums[width:] - sums[:-width]
    c = counts[width:] - counts[:-width]
    out = np.full(s.size, np.nan)
    np.divide(s, c, out=out, where=c > 0)
    return out


def longest_idle_s(demand: FloatArray, interval_s: float) -> float:
    """The longest run of intervals with no demand at all (gaps are not idle)."""
    longest = run = 0
    for value in demand:
        if math.isfinite(value) and value <= 0.0:
            run += 1
            longest = max(longest, run)
        else:
            run = 0
    return longest * interval_s


def replica_load(chosen: CurvePoint, ev: Evidence) -> float | None:
    """Mean token work per second per replica at the chosen setting (None when unknown)."""
    if not chosen.gpu_hours or ev.duration_s <= 0:
        return None
    mean_replicas = chosen.gpu_hours * 3600.0 / ev.duration_s / ev.gpus_per_replica
    mean_demand = float(np.nanmean(ev.demand)) if np.isfinite(ev.demand).any() else 0.0
    if mean_replicas <= 0 or mean_demand <= 0:
        return None
    return mean_demand / mean_replicas


def _lead_steps(seconds: float, interval_s: float) -> int:
    return max(1, math.ceil(seconds / interval_s - 1e-9))


def _accuracy_lines(ev: Evidence) -> list[str]:
    acc = ev.accuracy
    lc = ev.lifecycle
    if acc is None:
        return []
    cold = acc.at(_lead_steps(lc.cold_s, acc.interval_s))
    mine = cold.figures[POLICY_MODEL]
    ref = cold.figures.get(acc.reference, {})
    lines: list[str] = []
    wql, ratio, cov = mine.get("wql"), mine.get("wql_ratio"), mine.get("coverage_90")
    if wql is not None:
        versus = f", {ratio:.2f}x the {acc.reference} reference's" if ratio is not None else ""
        covered = f"; its 90% interval covered {cov:.0%} of the actuals" if cov is not None else ""
        lines.append(
            f"At the cold-start horizon ({cold.horizon_s:.0f} s) the policy's forecast has a "
            f"weighted quantile loss of {wql:.3f}{versus}{covered}."
        )
        if cov is not None and cov < LOW_COVERAGE:
            lines.append(
                f"Coverage under {LOW_COVERAGE:.0%} means demand often leaves the band the policy "
                "provisions for: keep the head-room at or below the recommended setting, and "
                "shorten the cold start if you can."
            )
    elif ref:
        lines.append("The backtest had no demand to score at the cold-start horizon.")
    if lc.pull_s > 0 and wql is not None:
        warm = acc.at(_lead_steps(lc.warm_s, acc.interval_s))
        warm_wql = warm.figures[POLICY_MODEL].get("wql")
        if warm_wql is not None and warm.steps < cold.steps and wql > 0:
            lines.append(
                f"At the warm-start horizon ({warm.horizon_s:.0f} s, image already on the node) "
                f"the loss is {warm_wql:.3f} ({100 * (1 - warm_wql / wql):.0f}% lower)."
            )
    return lines


def recommend(ev: Evidence) -> Settings:
    """The recommended settings for ``ev`` (pure; raises ValueError without any run of ours)."""
    target = ev.slo.attainment_target
    chosen, met, why = choose_headroom(ev.points, target)
    assert chosen.setting is not None
    lc = ev.lifecycle
    per_replica = replica_load(chosen, ev)
    lead_points = _lead_steps(lc.cold_s, ev.interval_s)
    smooth = _rolling_mean(ev.demand, lead_points)
    peak = int(round(chosen.max_replicas or 1))

    # -- min replicas
    if per_replica is not None and np.isfinite(smooth).any():
        quiet = float(np.nanmin(smooth))
        need = quiet / per_replica
        min_replicas = max(1, math.floor(need))
        min_reason = (
            f"the quietest {lead_points * ev.interval_s:.0f} s of the history needed {need:.1f} "
            "replicas at this "
            f"setting ({per_replica:,.0f} token-work/s each); a floor of {min_replicas} never "
            "holds capacity the policy would have shed, and spares a cold start when the lull ends"
        )
    else:
        min_replicas = 1
        min_reason = "no demand to size a floor on: the smallest fleet that can serve a request"
    min_replicas = min(min_replicas, peak)

    # -- max replicas
    max_replicas = max(peak + 1, math.ceil(peak * (1.0 + MAX_MARGIN)), min_replicas)
    max_reason = (
        f"the replay peaked at {peak} replicas; {100 * MAX_MARGIN:.0f}% above that leaves room "
        "for growth while still bounding a runaway"
    )
    oracle = next((p for p in ev.points if p.policy == ORACLE), None)
    cap = ev.replica_cap
    if cap is None and oracle is not None and oracle.max_replicas:
        oracle_peak = int(round(oracle.max_replicas))
        cap = max(2 * oracle_peak, oracle_peak + 4)
    if cap is not None and peak >= cap:
        max_reason += (
            f". The replay hit its replica cap ({cap}): the history may need more; rerun with a "
            "higher --max-replicas"
        )

    # -- KEDA scale to zero
    idle = longest_idle_s(ev.demand, ev.interval_s)
    if idle >= SCALE_TO_ZERO_IDLE_S:
        keda_min = 0
        keda_reason = (
            f"the history has idle stretches of up to {idle / 60:.0f} min: KEDA can scale to zero "
            f"(set min_replicas 0 in the service config too); the first request after a lull "
            f"then waits a cold start ({lc.cold_s:.0f} s)"
        )
    else:
        keda_min = min_replicas
        keda_reason = (
            f"no idle stretch of {SCALE_TO_ZERO_IDLE_S / 60:.0f} min or more: scaling to zero "
            "would only add cold starts; same floor as the HPA"
        )

    # -- target values
    targets: dict[str, object] = {
        "metric": DESIRED_METRIC,
        "target": "AverageValue 1 (the published value is the replica count)",
        "forecast_setting": chosen.setting,
        "slo": {
            "ttft_s": ev.slo.ttft_s,
            "ttft_per_1k_s": ev.slo.ttft_per_1k_s,
            "tpot_s": ev.slo.tpot_s,
            "attainment_target": target,
        },
    }
    if per_replica is not None:
        targets["token_work_per_replica"] = round(per_replica, 1)

    # -- cold start
    cold_lines = [
        f"A cold start takes {lc.cold_s:.0f} s (provisioning {lc.provision_s:.0f} s, image pull "
        f"{lc.pull_s:.0f} s, engine init {lc.init_s:.0f} s): the policy forecasts that far ahead.",
        *_accuracy_lines(ev),
    ]
    if chosen.cold_starts is not None:
        cold_lines.append(
            f"The replay at {chosen.label} had {chosen.cold_starts:.0f} cold and "
            f"{chosen.warm_starts or 0:.0f} warm starts."
        )

    # -- prefetch
    rise_replicas = 0
    if per_replica is not None and smooth.size > lead_points:
        ahead = np.full(smooth.size, np.nan)
        for k in range(1, lead_points + 1):
            ahead[:-k] = np.fmax(ahead[:-k], smooth[k:])
        rises = ahead - smooth
        rises = rises[np.isfinite(rises)]
        if rises.size:
            rise = max(0.0, float(np.percentile(rises, RISE_PERCENTILE)))
            rise_replicas = math.ceil(rise / per_replica - 1e-9)
    warm_nodes = max(1, math.ceil(rise_replicas * ev.gpus_per_replica / NODE_GPUS))
    cold_starts = chosen.cold_starts or 0.0
    enable = lc.pull_s > 0 and cold_starts > 0
    prefetch: dict[str, object] = {
        "enabled": enable,
        "max_warm_nodes": warm_nodes,
        "spare_replicas": 1,
    }
    if lc.pull_s <= 0:
        pre_lines = [
            "Image pulls are not part of this cold start: prefetching would not shorten it."
        ]
    elif not enable:
        pre_lines = [
            f"The replay at {chosen.label} started no replica cold: prefetch is optional here."
        ]
    else:
        pre_lines = [
            f"Prefetching the modelcar image cuts a start from {lc.cold_s:.0f} s to "
            f"{lc.warm_s:.0f} s on a warm node ({cold_starts:.0f} cold starts in the replay).",
            f"Demand rose by up to {rise_replicas} replicas within "
            f"{lead_points * ev.interval_s:.0f} s, one lead time (p{RISE_PERCENTILE:g} of the "
            f"history): keep max_warm_nodes at {warm_nodes} "
            f"({NODE_GPUS}-GPU nodes, {ev.gpus_per_replica} GPUs a replica) so those replicas "
            "land on warm nodes.",
            "Prefetch needs the workload's image in the service config, pinned by digest.",
        ]
    return Settings(
        namespace=ev.namespace,
        name=ev.name,
        policy=chosen.label,
        headroom=chosen.setting,
        meets_target=met,
        headroom_reason=why,
        min_replicas=min_replicas,
        min_reason=min_reason,
        max_replicas=max_replicas,
        max_reason=max_reason,
        keda_min_replicas=keda_min,
        keda_min_reason=keda_reason,
        targets=targets,
        lead_time_s=lc.cold_s,
        warm_lead_time_s=lc.warm_s,
        cold_start_advice=tuple(cold_lines),
        prefetch=prefetch,
        prefetch_advice=tuple(pre_lines),
        comparison=compare(chosen, ev.points, target),
    )

"""The engine's token budget as part of the capacity question: which ``--max-num-batched-tokens``
makes the workload's own history cheapest at the SLO.

The budget trades two latencies (:mod:`autoscaler.perf.model`, :mod:`autoscaler.simulation.
replica`): a small budget cuts a long prompt into many chunks, each step paying the step's base
cost again, so prompts wait longer for their first token (TTFT) and a replica carries less; a
large budget puts a long chunk into one step with the running decodes, so their next token waits
for it (TPOT). Which side binds depends on the workload's prompt lengths and arrivals, so the
answer is measured, not argued: for each budget the fleet oracle
(:func:`~autoscaler.simulation.fleet_oracle.fleet_oracle`: the cheapest clairvoyant per-minute
plan that meets the attainment target, simulated request by request on the history) gives the
GPU-hours the workload needs at the SLO with that budget, and the cheapest budget is recommended.

Two rules keep the comparison fair, each derived rather than tuned:

* **Requests given up.** The fleet oracle meets the target on the requests that *can* meet the
  SLO (its ``slo_ceiling``), and a small budget makes long prompts infeasible (more chunks, more
  step bases, TTFT out of reach on any fleet). A budget is only eligible when its ceiling is
  within :data:`CEILING_SHARE` of the error budget ``1 - target`` of the best ceiling: at a 99%
  target, one that gives up more than 0.1% of the requests is not a saving.
* **Noise.** The oracle's bisection places the fleet capacity to within about 0.5%, but its
  attainment is not smooth in the capacity (a least-work router, whole replicas per minute), so
  GPU-hours of neighbouring budgets scatter by a few percent without a trend (measured: Azure 2k,
  4k and 8k equal and 16k 0.8% lower; Mooncake 33.4, 35.5 and 34.8 GPU-h at 8k, 4k and 16k;
  docs/report.md). A change is recommended only when it saves more than :data:`MIN_SAVING`
  against the current budget; savings up to ~6% on a short history can still be noise, which
  the docs say.

:func:`recommend_budget` is pure; :func:`compare_budgets` drives the simulator (imported when
called, so the page renderers can read the result types without it) and writes nothing but the
fleet oracle's cache (``cache_dir``, shared with the replay, so the current budget's row is usually
a cache hit).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from autoscaler.core.slo import SloSpec
from autoscaler.errors import InputError
from autoscaler.perf.model import PerfProfile
from autoscaler.perf.profiles import with_engine_settings
from autoscaler.traces.records import Trace

BUDGETS: Final[tuple[int, ...]] = (512, 1_024, 2_048, 4_096, 8_192, 16_384)
"""Token budgets compared. vLLM's own defaults fall inside (``EngineArgs.get_batch_defaults``:
``vllm serve`` takes 8,192 on GPUs of 70 GB or more other than the A100, else 2,048; the offline
``LLM`` class twice that), and 512 is about where a prompt of typical length needs several steps."""
CEILING_SHARE: Final = 0.1
"""A budget may give up at most this share of the error budget ``1 - target`` in ``slo_ceiling``
against the best budget (0.1 pt of requests at a 99% target)."""
MIN_SAVING: Final = 0.03
"""Savings below this share of the current budget's GPU-hours are within the oracle's noise."""

Progress = Callable[[float], None]


@dataclass(frozen=True, slots=True)
class BudgetRow:
    """The fleet oracle on the history at one token budget."""

    max_batched_tokens: int
    gpu_hours: float
    """The fleet oracle's GPU-hours at the SLO with this budget."""
    replica_capacity: float
    """C*, token work per second one replica carries at the SLO (the bisection's start)."""
    fleet_capacity: float
    """C, token work per second per replica of the fleet oracle's plan."""
    attainment_feasible: float
    """The plan's attainment on the requests that can meet the SLO at all."""
    slo_ceiling: float
    """Share of the requests that can meet the SLO on any fleet with this budget."""
    target_met: bool
    """The oracle found a plan that meets the target (False: even C* / 64 misses it)."""

    def to_json(self) -> dict[str, object]:
        return {
            "max_batched_tokens": self.max_batched_tokens,
            "gpu_hours": round(self.gpu_hours, 4),
            "replica_capacity": round(self.replica_capacity, 2),
            "fleet_capacity": round(self.fleet_capacity, 2),
            "attainment_feasible": round(self.attainment_feasible, 6),
            "slo_ceiling": round(self.slo_ceiling, 6),
            "target_met": self.target_met,
        }


@dataclass(frozen=True, slots=True)
class EngineSettings:
    """The budget table and its recommendation."""

    current: int
    """The profile's ``max_batched_tokens`` (default 8,192, or ``--max-batched-tokens``)."""
    max_num_seqs: int
    rows: tuple[BudgetRow, ...]
    """One row per budget compared, ascending; the current budget is always among them."""
    recommended: int
    reason: str
    eligible: tuple[int, ...]
    """Budgets whose oracle meets the target without giving up requests (see the module)."""
    skipped: tuple[int, ...] = ()
    """Budgets of :data:`BUDGETS` not compared: below ``max_num_seqs``, which vLLM refuses."""

    def row(self, budget: int) -> BudgetRow:
        return next(r for r in self.rows if r.max_batched_tokens == budget)

    def to_json(self) -> dict[str, object]:
        return {
            "current_max_batched_tokens": self.current,
            "max_num_seqs": self.max_num_seqs,
            "recommended_max_batched_tokens": self.recommended,
            "reason": self.reason,
            "eligible": list(self.eligible),
            "skipped": list(self.skipped),
            "rows": [r.to_json() for r in self.rows],
        }


def compare_budgets(
    trace: Trace,
    profile: PerfProfile,
    slo: SloSpec,
    *,
    budgets: Sequence[int] = BUDGETS,
    tick_s: float = 15.0,
    cache_dir: Path | None = None,
    progress: Progress | None = None,
) -> EngineSettings:
    """The fleet oracle's GPU-hours at each token budget on ``trace``, and the cheapest budget.

    ``profile`` carries the current budget and ``max_num_seqs``; every other setting is kept.
    Raises :class:`InputError` for a trace no budget can serve (no request can meet the SLO).
    """
    from autoscaler.simulation.fleet_oracle import fleet_oracle
    from autoscaler.simulation.oracle import replica_capacity, work_weights

    if trace.requests == 0:
        raise InputError(f"{trace.path}: no requests to compare token budgets on")
    current = profile.max_batched_tokens
    wanted = sorted({*budgets, current})
    compared = [b for b in wanted if b >= profile.max_num_seqs or b == current]
    skipped = tuple(b for b in wanted if b not in compared)
    rows: list[BudgetRow] = []
    for i, budget in enumerate(compared):
        p = with_engine_settings(profile, max_batched_tokens=budget)
        weights = work_weights(p, slo)
        capacity = replica_capacity(trace, p, slo, weights, seed=0)

        def step(frac: float, _i: int = i) -> None:
            if progress is not None:
                progress((_i + frac) / len(compared))

        yard = fleet_oracle(trace, p, slo, weights, replica_capacity=capacity, tick_s=tick_s,
                            cache_dir=cache_dir, progress=step)  # fmt: skip
        rows.append(
            BudgetRow(
                max_batched_tokens=budget,
                gpu_hours=yard.plan.gpu_hours,
                replica_capacity=capacity,
                fleet_capacity=yard.plan.capacity,
                attainment_feasible=yard.attainment_feasible,
                slo_ceiling=yard.slo_ceiling,
                target_met=yard.target_met,
            )
        )
        step(1.0)
    return recommend_budget(rows, current, slo, max_num_seqs=profile.max_num_seqs,
                            skipped=skipped)  # fmt: skip


def recommend_budget(
    rows: Sequence[BudgetRow],
    current: int,
    slo: SloSpec,
    *,
    max_num_seqs: int,
    skipped: tuple[int, ...] = (),
) -> EngineSettings:
    """The recommendation over measured ``rows`` (which must include ``current``); pure.

    Eligible budgets meet the target and give up no more than :data:`CEILING_SHARE` of the error
    budget in ``slo_ceiling``; the cheapest eligible one is recommended, unless the current budget
    is eligible and within :data:`MIN_SAVING` of it.
    """
    ordered = tuple(sorted(rows, key=lambda r: r.max_batched_tokens))
    by_budget = {r.max_batched_tokens: r for r in ordered}
    now = by_budget[current]
    slack = CEILING_SHARE * (1.0 - slo.attainment_target)
    met = [r for r in ordered if r.target_met]
    best_ceiling = max((r.slo_ceiling for r in met), default=0.0)
    eligible = [r for r in met if r.slo_ceiling >= best_ceiling - slack - 1e-12]
    if not eligible:
        closest = max(ordered, key=lambda r: (r.attainment_feasible * r.slo_ceiling, -r.gpu_hours))
        reason = (
            f"no budget meets the {slo.attainment_target:.1%} target even on the most generous "
            f"fleet; {closest.max_batched_tokens:,} comes closest "
            f"({closest.attainment_feasible * closest.slo_ceiling:.2%} of requests)"
        )
        return EngineSettings(current, max_num_seqs, ordered, closest.max_batched_tokens, reason,
                              (), skipped)  # fmt: skip
    cheapest = min(eligible, key=lambda r: (r.gpu_hours, r.max_batched_tokens != current))
    keep = now in eligible and now.gpu_hours - cheapest.gpu_hours <= MIN_SAVING * now.gpu_hours
    pick = now if keep else cheapest
    reason = _reason(ordered, pick, now, cheapest, eligible, best_ceiling)
    return EngineSettings(current, max_num_seqs, ordered, pick.max_batched_tokens, reason,
                          tuple(r.max_batched_tokens for r in eligible), skipped)  # fmt: skip


def _change(row: BudgetRow, against: BudgetRow) -> str:
    delta = row.gpu_hours / against.gpu_hours - 1.0 if against.gpu_hours > 0 else 0.0
    return f"{row.max_batched_tokens:,}: {delta:+.0%}"


def _reason(
    rows: Sequence[BudgetRow],
    pick: BudgetRow,
    now: BudgetRow,
    cheapest: BudgetRow,
    eligible: Sequence[BudgetRow],
    best_ceiling: float,
) -> str:
    """Why ``pick``, in numbers: the saving (or why none is worth it), what each side costs, and
    the cheaper budgets left out because they give up requests."""
    b = pick.max_batched_tokens
    parts: list[str] = []
    if pick is now and cheapest is not now:
        saving = 1.0 - cheapest.gpu_hours / now.gpu_hours
        parts.append(
            f"keep {b:,} ({cheapest.max_batched_tokens:,}, the cheapest, saves only "
            f"{saving:.1%} of the GPU-hours, within the oracle's noise of {MIN_SAVING:.0%})"
        )
    elif pick is now:
        parts.append(f"keep {b:,}, the cheapest budget at the SLO")
    else:
        saving = 1.0 - pick.gpu_hours / now.gpu_hours if now.gpu_hours > 0 else 0.0
        against = f"the current {now.max_batched_tokens:,}"
        if now in eligible:
            parts.append(f"{b:,}: {saving:.0%} fewer GPU-hours than {against}")
        else:
            parts.append(f"{b:,}: {against} does not meet the target without giving up requests")
    sides = (
        ("smaller", [r for r in rows if r.max_batched_tokens < b],
         "a long prompt takes more steps, each paying the step's base cost (TTFT)"),
        ("larger", [r for r in rows if r.max_batched_tokens > b],
         "a long prompt's chunk stalls the decodes sharing its step (TPOT)"),
    )  # fmt: skip
    for side, others, why in sides:
        measured = [r for r in others if r in eligible]
        if not measured:
            continue
        worst = max(measured, key=lambda r: r.gpu_hours)
        if worst.gpu_hours > pick.gpu_hours * (1.0 + MIN_SAVING):
            parts.append(f"{side} budgets cost more ({_change(worst, pick)}): {why}")
        else:
            parts.append(f"{side} budgets cost about the same ({_change(worst, pick)})")
    given_up = [
        r for r in rows if r.target_met and r not in eligible and r.gpu_hours < pick.gpu_hours
    ]
    for r in given_up:
        parts.append(
            f"{r.max_batched_tokens:,} would cost {1.0 - r.gpu_hours / pick.gpu_hours:.0%} less "
            f"but leaves {best_ceiling - r.slo_ceiling:.2%} of requests unable to meet the SLO "
            "on any fleet (too many chunks for their TTFT)"
        )
    return "; ".join(parts)

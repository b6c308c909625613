"""Fit the replica cost coefficients to the Splitwise measurements (perf/splitwise_perf_model.csv).

The CSV holds, per (model, hardware, TP), 21 experiments of 5 repetitions each: a batch sweep
(prompt 512, 128 output tokens, batch 1..64), a prompt sweep (batch 1, prompt 128..8,192) and an
output-length sweep (prompt 512, batch 1, 128..8,192 output tokens). Times are in ms;
``prompt_time`` is the prefill of the whole batch and ``token_time`` the mean decode step.

Method (``docs/performance-profiles.md`` has the numbers):

* **Experiments.** Each block of consecutive rows with the same setting is one experiment; its
  repetitions are averaged. The centre setting (512, 1, 128) is measured by all three sweeps and
  stays three experiments, so the fit weighs settings by how often they were measured, as a plain
  least-squares fit over the raw rows would.
* **Anomalous experiments** are dropped from both fits. Rule: an experiment whose prefill is less
  than half that of the same prompt and output length at the next smaller batch size. Prefilling
  more prompts cannot be faster, so this only catches broken runs: the TP2 batch-64 rows (prefill
  ~0.12-0.15 x the batch-32 value, a decode step faster than at batch 32, an e2e ~9 x longer).
* **Prefill** ``prompt_time(P, B) = base + B (per_token P + attn P^2)`` by non-negative least
  squares on *relative* residuals (each row divided by its measured time), because the acceptance
  criterion is a median relative error and the times span two orders of magnitude.
* **Attention bound.** ``attn`` is capped at the FLOPs cost of causal attention at a minimum MFU
  of :data:`autoscaler.perf.shapes.MIN_ATTENTION_MFU` (0.30),
  ``attn_max = 2 layers hidden / (tp x peak_flops x 0.30)``
  (:func:`autoscaler.perf.shapes.prefill_attn_max_s`). If the free fit exceeds it, ``attn`` is
  fixed at the bound and ``base`` and ``per_token`` are refitted (non-negative, least absolute
  relative deviations: :func:`fit_prefill` says why not squares) with the attention term
  subtracted. Why: the CSV's prompts stop at 8,192 tokens, where
  the quadratic term is at most a fifth of the time, and the batch sweep shows the same
  superlinearity at equal token counts without any long sequence (a compute-efficiency knee of
  the matmul kernel sizes), so the data cannot separate the quadratic term from kernel-size
  effects. The free fit puts the knee into ``attn`` (up to ~11x the attention FLOPs at 50% MFU),
  and extrapolated to a 128k prompt that dominates and is unphysical; the bound keeps the
  extrapolation beyond 8,192 tokens within what the hardware can do.
* **Decode** ``token_time = base + per_seq B + per_seq2 B^2 + per_ctx ctx``, where ``ctx`` is the
  mean number of cached tokens during the measured steps, ``B (P + n / 2)``, and ``n`` the tokens
  actually generated: ``(e2e - prompt_time) / token_time``, capped by ``token_size``. (Runs asking
  for 1,024 tokens or more stop early, ``traces/README.md`` §4a, so ``token_size`` overstates it.)
  ``per_ctx`` is taken from the data only when an unconstrained fit identifies it (estimate at
  least :data:`PER_CTX_MIN_T` standard errors above zero); otherwise from physics, the KV bytes
  per token and rank over the GPU's HBM bandwidth
  (:func:`autoscaler.perf.shapes.decode_seconds_per_ctx_token`).
  The batch sweep cannot separate it from ``per_seq`` (its context is always ``576 B``), and the
  single-sequence sweeps move the step time by about a millisecond, which is the noise level.
  The other three terms are then fitted like prefill (relative, non-negative).

The fitted numbers are frozen as literals in :mod:`autoscaler.perf.profiles`;
``python -m autoscaler.perf.fitting`` prints that table again, and ``tests/test_perf_fitting.py``
checks that the literals still equal a fresh fit.
"""

from __future__ import annotations

import csv
import itertools
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from autoscaler.errors import InputError
from autoscaler.perf.profiles import CSV_NAME, DERIVED_GPUS, FittedCoefficients
from autoscaler.perf.shapes import (
    decode_seconds_per_ctx_token,
    gpu_spec,
    model_shape,
    prefill_attn_max_s,
)
from autoscaler.shared_data import shared_path

Combo = tuple[str, str, int]
FloatArray = npt.NDArray[np.float64]

#: An experiment is anomalous when its prefill takes less than this fraction of the prefill at
#: the next smaller batch size (same prompt and output length).
ANOMALY_PREFILL_RATIO = 0.5
#: ``per_ctx`` is taken from the data only if its unconstrained estimate is this many standard
#: errors above zero (about a 0.3% chance of passing by noise alone).
PER_CTX_MIN_T = 3.0

_REQUIRED_COLUMNS = (
    "model",
    "hardware",
    "prompt_size",
    "batch_size",
    "token_size",
    "prompt_time",
    "token_time",
    "e2e_time",
    "tensor_parallel",
)


@dataclass(frozen=True, slots=True)
class Experiment:
    """One setting of one sweep, its repetitions averaged; times in seconds."""

    model: str
    hardware: str
    tp: int
    prompt_size: int
    batch_size: int
    token_size: int
    repetitions: int
    prompt_time_s: float
    token_time_s: float
    e2e_time_s: float

    @property
    def combo(self) -> Combo:
        return (self.model, self.hardware, self.tp)

    @property
    def generated_tokens(self) -> float:
        """Output tokens actually generated: the decode time over the step time, at most asked."""
        decoding = (self.e2e_time_s - self.prompt_time_s) / self.token_time_s
        return min(float(self.token_size), max(1.0, decoding))

    @property
    def ctx_tokens(self) -> float:
        """Mean tokens in the KV cache over the decode steps of the run."""
        return self.batch_size * (self.prompt_size + self.generated_tokens / 2.0)


@dataclass(frozen=True, slots=True)
class RowError:
    """Measured and predicted times of one experiment, and the signed relative errors."""

    experiment: Experiment
    prefill_s: float
    decode_s: float

    @property
    def prefill_rel_error(self) -> float:
        return (self.prefill_s - self.experiment.prompt_time_s) / self.experiment.prompt_time_s

    @property
    def decode_rel_error(self) -> float:
        return (self.decode_s - self.experiment.token_time_s) / self.experiment.token_time_s


@dataclass(frozen=True, slots=True)
class ComboFit:
    """The fit of one (model, hardware, TP): coefficients, per-row errors, what was left out."""

    coefficients: FittedCoefficients
    rows: tuple[RowError, ...]
    excluded: tuple[Experiment, ...]
    per_ctx_estimate: float
    """Unconstrained estimate of ``per_ctx`` from the data (s per token); may be negative."""
    per_ctx_t: float
    """That estimate over its standard error."""
    prefill_attn_free: float = 0.0
    """``attn`` of the free (non-negative, relative) prefill fit, before the FLOPs bound."""
    prefill_attn_max: float = float("inf")
    """The FLOPs bound on ``attn`` (:func:`autoscaler.perf.shapes.prefill_attn_max_s`)."""

    @property
    def prefill_attn_bounded(self) -> bool:
        """Whether the free fit exceeded the bound, so ``attn`` sits at it."""
        return self.prefill_attn_free > self.prefill_attn_max

    @property
    def combo(self) -> Combo:
        c = self.coefficients
        return (c.model, c.gpu, c.tp)

    @property
    def prefill_median_rel_error(self) -> float:
        return statistics.median(abs(r.prefill_rel_error) for r in self.rows)

    @property
    def decode_median_rel_error(self) -> float:
        return statistics.median(abs(r.decode_rel_error) for r in self.rows)

    @property
    def prefill_max_rel_error(self) -> float:
        return max(abs(r.prefill_rel_error) for r in self.rows)

    @property
    def decode_max_rel_error(self) -> float:
        return max(abs(r.decode_rel_error) for r in self.rows)

    def prefill_median_rel_error_by_setting(self) -> float:
        """Median over distinct (prompt, batch) settings, each counted once.

        Prefill does not depend on the output length, so the CSV measures (512, 1) in 9 of its 21
        experiments; this figure keeps that point from dominating the median.
        """
        by_setting: dict[tuple[int, int], list[float]] = {}
        for r in self.rows:
            key = (r.experiment.prompt_size, r.experiment.batch_size)
            by_setting.setdefault(key, []).append(r.experiment.prompt_time_s)
        profile = self.coefficients.to_profile(kv_capacity_tokens=1)
        errors = []
        for (prompt, batch), measured in by_setting.items():
            mean = statistics.fmean(measured)
            predicted = profile.prefill_s(prompt, batch)
            errors.append(abs(predicted - mean) / mean)
        return statistics.median(errors)


# -- reading ---------------------------------------------------------------------------------


def read_experiments(path: Path | str | None = None) -> list[Experiment]:
    """Read the CSV (default: the shared copy) into experiments, repetitions averaged.

    Consecutive rows of one (model, hardware, TP) with the same (prompt, batch, output) setting
    are one experiment; the file interleaves combinations, so "consecutive" is per combination.
    """
    csv_path = Path(path) if path is not None else shared_path(f"perf/{CSV_NAME}")
    with csv_path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in _REQUIRED_COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise InputError(f"{csv_path}: missing column(s) {', '.join(missing)}")
        blocks: list[tuple[Combo, tuple[int, int, int], list[dict[str, str]]]] = []
        current: dict[Combo, tuple[tuple[int, int, int], list[dict[str, str]]]] = {}
        for line, row in enumerate(reader, start=2):
            try:
                combo = (row["model"], row["hardware"], int(row["tensor_parallel"]))
                setting = (int(row["prompt_size"]), int(row["batch_size"]), int(row["token_size"]))
            except ValueError as exc:
                raise InputError(f"{csv_path}:{line}: {exc}") from exc
            open_block = current.get(combo)
            if open_block is not None and open_block[0] == setting:
                open_block[1].append(row)
            else:
                rows = [row]
                current[combo] = (setting, rows)
                blocks.append((combo, setting, rows))
    return [_average(csv_path, combo, setting, rows) for combo, setting, rows in blocks]


def _average(
    path: Path, combo: Combo, setting: tuple[int, int, int], rows: list[dict[str, str]]
) -> Experiment:
    def mean_s(column: str) -> float:
        try:
            return statistics.fmean(float(r[column]) for r in rows) / 1000.0
        except ValueError as exc:
            raise InputError(f"{path}: {combo} {setting}: bad {column}: {exc}") from exc

    return Experiment(
        model=combo[0],
        hardware=combo[1],
        tp=combo[2],
        prompt_size=setting[0],
        batch_size=setting[1],
        token_size=setting[2],
        repetitions=len(rows),
        prompt_time_s=mean_s("prompt_time"),
        token_time_s=mean_s("token_time"),
        e2e_time_s=mean_s("e2e_time"),
    )


def anomalous(experiments: Sequence[Experiment]) -> list[Experiment]:
    """Experiments whose prefill is under :data:`ANOMALY_PREFILL_RATIO` x the prefill of the same
    (combo, prompt, output length) at the next smaller batch size (mean over its experiments)."""
    by_setting: dict[tuple[Combo, int, int, int], list[float]] = {}
    for e in experiments:
        key = (e.combo, e.prompt_size, e.token_size, e.batch_size)
        by_setting.setdefault(key, []).append(e.prompt_time_s)
    flagged = []
    for e in experiments:
        smaller = [
            b
            for (combo, p, t, b) in by_setting
            if combo == e.combo and p == e.prompt_size and t == e.token_size and b < e.batch_size
        ]
        if not smaller:
            continue
        reference = statistics.fmean(
            by_setting[(e.combo, e.prompt_size, e.token_size, max(smaller))]
        )
        if e.prompt_time_s < ANOMALY_PREFILL_RATIO * reference:
            flagged.append(e)
    return flagged


# -- fitting ---------------------------------------------------------------------------------


def nonnegative_lstsq(a: FloatArray, y: FloatArray) -> FloatArray:
    """Least squares ``min |a x - y|`` subject to ``x >= 0``, exactly, for a handful of columns.

    The optimum is the unconstrained solution on its own support, so trying every support (2^n
    subsets, n <= 4 here) and keeping the best feasible one is exact, deterministic and needs only
    numpy. Columns are scaled to unit norm first: they span ten orders of magnitude.
    """
    n = a.shape[1]
    if n > 8:
        raise ValueError("nonnegative_lstsq enumerates supports; use it for few columns only")
    norms = np.linalg.norm(a, axis=0)
    norms[norms == 0] = 1.0
    scaled = a / norms
    best_x = np.zeros(n)
    best_rss = float(y @ y)
    for support in itertools.product((False, True), repeat=n):
        cols = [i for i in range(n) if support[i]]
        if not cols:
            continue
        sol, *_ = np.linalg.lstsq(scaled[:, cols], y, rcond=None)
        if np.any(sol < 0):
            continue
        x = np.zeros(n)
        x[cols] = sol
        resid = scaled @ x - y
        rss = float(resid @ resid)
        if rss < best_rss:
            best_rss, best_x = rss, x
    return np.asarray(best_x / norms, dtype=np.float64)


def nonnegative_lad(a: FloatArray, y: FloatArray) -> FloatArray:
    """Least absolute deviations ``min sum |a x - y|`` subject to ``x >= 0``, exactly.

    A linear programme: an optimum lies at a vertex where, on some support of ``k`` columns,
    ``k`` residuals are zero. Trying every support and every ``k`` rows (a few hundred small
    solves for 2 columns and ~20 rows) is exact and deterministic; ties keep the first vertex in
    enumeration order. Columns are scaled to unit norm first.
    """
    m, n = a.shape
    if n > 3:
        raise ValueError("nonnegative_lad enumerates vertices; use it for few columns only")
    norms = np.linalg.norm(a, axis=0)
    norms[norms == 0] = 1.0
    scaled = a / norms
    best_x = np.zeros(n)
    best_cost = float(np.sum(np.abs(y)))
    for k in range(1, n + 1):
        for cols in itertools.combinations(range(n), k):
            for rows in itertools.combinations(range(m), k):
                sub = scaled[np.ix_(rows, cols)]
                if np.linalg.matrix_rank(sub) < k:
                    continue
                sol = np.linalg.solve(sub, y[list(rows)])
                if np.any(sol < 0):
                    continue
                x = np.zeros(n)
                x[list(cols)] = sol
                cost = float(np.sum(np.abs(scaled @ x - y)))
                if cost < best_cost * (1.0 - 1e-12):
                    best_cost, best_x = cost, x
    return np.asarray(best_x / norms, dtype=np.float64)


def _relative_nnls(design: FloatArray, measured: FloatArray) -> FloatArray:
    """Non-negative fit minimising the sum of squared *relative* residuals."""
    weights = 1.0 / measured
    return nonnegative_lstsq(design * weights[:, None], measured * weights)


def fit_prefill(
    prompt: FloatArray, batch: FloatArray, measured: FloatArray, attn_max: float
) -> tuple[float, float, float, float]:
    """``(base, per_token, attn, free attn)`` of the prefill fit with ``attn <= attn_max``.

    The free fit is the relative NNLS over all three terms. If its ``attn`` exceeds ``attn_max``,
    ``attn`` is fixed at ``attn_max`` and ``base`` and ``per_token`` are refitted, non-negative,
    with the attention term ``attn_max B P^2`` as a known offset, by least *absolute* relative
    deviations (:func:`nonnegative_lad`). With ``attn`` held below what the ≤ 8k data want, the
    two-term residual is systematically curved (a floor at short prompts, a knee at 2k-32k
    tokens per batch); a squared loss lets those few settings pull the line off the rest (and
    fails the 10% median criterion on H100 TP8 at 17.7%), while LAD fits the bulk of the
    measurements and leaves the curvature as error at the ends.
    """
    quadratic = batch * prompt**2
    design = np.column_stack([np.ones_like(prompt), batch * prompt, quadratic])
    base, per_token, attn = (float(v) for v in _relative_nnls(design, measured))
    if attn <= attn_max:
        return base, per_token, attn, attn
    weights = 1.0 / measured
    base_b, per_token_b = (
        float(v)
        for v in nonnegative_lad(
            design[:, :2] * weights[:, None], (measured - attn_max * quadratic) * weights
        )
    )
    return base_b, per_token_b, attn_max, attn


def _free_per_ctx(design: FloatArray, measured: FloatArray) -> tuple[float, float]:
    """Unconstrained relative fit of the 4-term decode model: (per_ctx estimate, its t value)."""
    weights = 1.0 / measured
    a = design * weights[:, None]
    y = measured * weights
    norms = np.linalg.norm(a, axis=0)
    scaled = a / norms
    sol, *_ = np.linalg.lstsq(scaled, y, rcond=None)
    resid = y - scaled @ sol
    dof = max(1, a.shape[0] - a.shape[1])
    cov = float(resid @ resid) / dof * np.linalg.inv(scaled.T @ scaled)
    estimate = float(sol[-1] / norms[-1])
    stderr = float(np.sqrt(cov[-1, -1]) / norms[-1])
    return estimate, (estimate / stderr if stderr > 0 else float("inf"))


def fit_combo(experiments: Sequence[Experiment]) -> ComboFit:
    """Fit one (model, hardware, TP) from its experiments (anomalous ones are dropped here)."""
    combos = {e.combo for e in experiments}
    if len(combos) != 1:
        raise ValueError(f"fit_combo needs the experiments of one combination, got {combos}")
    (model, hardware, tp) = combos.pop()
    excluded = anomalous(experiments)
    used = [e for e in experiments if e not in excluded]
    if len(used) < 5:
        raise InputError(f"{model}/{hardware}/tp{tp}: too few experiments to fit ({len(used)})")

    prompt = np.array([e.prompt_size for e in used], dtype=np.float64)
    batch = np.array([e.batch_size for e in used], dtype=np.float64)
    ctx = np.array([e.ctx_tokens for e in used], dtype=np.float64)
    prefill = np.array([e.prompt_time_s for e in used], dtype=np.float64)
    decode = np.array([e.token_time_s for e in used], dtype=np.float64)

    shape, gpu = model_shape(model), gpu_spec(hardware)
    attn_max = prefill_attn_max_s(shape, gpu, tp)
    p_base, p_tok, p_attn, attn_free = fit_prefill(prompt, batch, prefill, attn_max)

    decode_design = np.column_stack([np.ones_like(batch), batch, batch**2, ctx])
    estimate, t_value = _free_per_ctx(decode_design, decode)
    if t_value >= PER_CTX_MIN_T:
        d_base, d_seq, d_seq2, d_ctx = _relative_nnls(decode_design, decode)
        source = "fitted"
    else:
        d_ctx = decode_seconds_per_ctx_token(shape, gpu, tp)
        d_base, d_seq, d_seq2 = _relative_nnls(decode_design[:, :3], decode - d_ctx * ctx)
        source = "physics"

    coefficients = FittedCoefficients(
        model=model,
        gpu=hardware,
        tp=tp,
        prefill_base_s=float(p_base),
        prefill_per_token_s=float(p_tok),
        prefill_attn_s=float(p_attn),
        decode_base_s=float(d_base),
        decode_per_seq_s=float(d_seq),
        decode_per_seq2_s=float(d_seq2),
        decode_per_ctx_token_s=float(d_ctx),
        per_ctx_source=source,
        derived=hardware in DERIVED_GPUS,
    )
    # Predictions go through PerfProfile, so the errors are those of the formulas the simulator
    # runs (KV capacity plays no part in them).
    profile = coefficients.to_profile(kv_capacity_tokens=1)
    rows = tuple(
        RowError(
            experiment=e,
            prefill_s=profile.prefill_s(e.prompt_size, e.batch_size),
            decode_s=profile.decode_step_s(e.batch_size, e.ctx_tokens),
        )
        for e in used
    )
    return ComboFit(coefficients, rows, tuple(excluded), estimate, t_value, attn_free, attn_max)


def fit_all(experiments: Iterable[Experiment] | None = None) -> list[ComboFit]:
    """Fit every (model, hardware, TP) in the CSV, sorted by that key."""
    pool = list(experiments) if experiments is not None else read_experiments()
    combos = sorted({e.combo for e in pool})
    return [fit_combo([e for e in pool if e.combo == c]) for c in combos]


# -- rendering -------------------------------------------------------------------------------


def render_python_table(fits: Sequence[ComboFit]) -> str:
    """The ``_FITTED`` literal of :mod:`autoscaler.perf.profiles`, as Python source."""
    lines = ["_FITTED: Final[tuple[FittedCoefficients, ...]] = ("]
    for fit in fits:
        c = fit.coefficients
        lines += [
            "    FittedCoefficients(",
            f"        model={c.model!r},",
            f"        gpu={c.gpu!r},",
            f"        tp={c.tp},",
            f"        prefill_base_s={c.prefill_base_s!r},",
            f"        prefill_per_token_s={c.prefill_per_token_s!r},",
            f"        prefill_attn_s={c.prefill_attn_s!r},",
            f"        decode_base_s={c.decode_base_s!r},",
            f"        decode_per_seq_s={c.decode_per_seq_s!r},",
            f"        decode_per_seq2_s={c.decode_per_seq2_s!r},",
            f"        decode_per_ctx_token_s={c.decode_per_ctx_token_s!r},",
            f"        per_ctx_source={c.per_ctx_source!r},",
            f"        derived={c.derived!r},",
            "    ),",
        ]
    lines.append(")")
    return "\n".join(lines)


def render_markdown(fits: Sequence[ComboFit]) -> str:
    """Coefficient and error tables for ``docs/performance-profiles.md``."""
    out = [
        "| model | GPU | TP | prefill base ms | prefill µs/token | prefill attn ns/token² "
        "| decode base ms | decode µs/seq | decode ns/seq² | decode ns/ctx token (source) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for fit in fits:
        c = fit.coefficients
        gpu = f"{c.gpu} (derived)" if c.derived else c.gpu
        out.append(
            f"| {c.model} | {gpu} | {c.tp} | {c.prefill_base_s * 1e3:.2f} "
            f"| {c.prefill_per_token_s * 1e6:.2f} | {c.prefill_attn_s * 1e9:.3f} "
            f"| {c.decode_base_s * 1e3:.2f} | {c.decode_per_seq_s * 1e6:.1f} "
            f"| {c.decode_per_seq2_s * 1e9:.1f} | {c.decode_per_ctx_token_s * 1e9:.1f} "
            f"({c.per_ctx_source}) |"
        )
    out += [
        "",
        "| model | GPU | TP | rows | excluded | prefill median | prefill median by setting "
        "| prefill max | decode median | decode max | per_ctx free fit ns (t) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for fit in fits:
        c = fit.coefficients
        out.append(
            f"| {c.model} | {c.gpu} | {c.tp} | {len(fit.rows)} | {len(fit.excluded)} "
            f"| {fit.prefill_median_rel_error:.1%} "
            f"| {fit.prefill_median_rel_error_by_setting():.1%} "
            f"| {fit.prefill_max_rel_error:.1%} | {fit.decode_median_rel_error:.1%} "
            f"| {fit.decode_max_rel_error:.1%} "
            f"| {fit.per_ctx_estimate * 1e9:.0f} ({fit.per_ctx_t:.1f}) |"
        )
    return "\n".join(out)


def main() -> None:
    """Print the literal table for ``profiles.py`` and the Markdown tables for the docs."""
    fits = fit_all()
    print(render_python_table(fits))
    print()
    print(render_markdown(fits))


if __name__ == "__main__":
    main()

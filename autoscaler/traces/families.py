"""Workload families: seeded request traces over arrival shapes x request mixes, to generalize.

Why. The ``forecast`` policy's constants were read off two shared traces; on workloads unlike
them it under-provisioned (issue 17). A family is a small, named, seeded workload that stands for
one real pattern a production service sees, so that defaults can be chosen over all of them and
checked on one left out. They are generators, not fits: only the chat mix's means are taken from
a shared trace (the Azure conversation trace, through :data:`~autoscaler.traces.synthetic.
AZURE_CONV_LENGTHS`); every other number is a stated assumption, chosen so that the default
replica (llama2-70b, TP4, H100) needs between about 2 and 25 replicas.

A :class:`Family` is an arrival *shape* (requests per second over time) times a request *mix*
(the token counts of each request), over a duration:

shapes
    :class:`Poisson` (constant rate), :class:`Diurnal` (a compressed day, trough at the start),
    :class:`FlashCrowd` (x ``factor`` within ``rise_s`` <= 60 s, held for minutes, then decaying),
    :class:`OnOff` (alternating high and low phases), :class:`Ramp` (linear over the run).
mixes
    :class:`RequestMix` (independent prompt and output lengths, each :class:`Lognormal` or
    :class:`Pareto` for a heavy tail) and :class:`SessionMix` (multi-turn conversations whose
    context grows: each turn's prompt is the previous prompt + the previous answer + a new
    message).

Arrivals are an inhomogeneous Poisson process, exact for the rate held constant on a 1 s grid
(Poisson counts per second, uniform positions within it), as in :mod:`~autoscaler.traces.
synthetic`. For sessions the shape gives the rate of *requests*: sessions start at ``rate /
turns_mean`` and each later turn follows the previous one after an exponential think time, so
the request rate follows the shape smoothed by a few think times. Turns that would arrive after
the run or whose prompt + output would exceed ``max_context`` are dropped (the session ends
there, as a client hitting the context limit would start over).

Not captured: prefix-cache reuse between turns (the simulator has no prefix cache), closed-loop
clients (think times start at the previous arrival, not at its answer), and any dependence of
lengths on the time of day.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol

import numpy as np
import numpy.typing as npt

from autoscaler.errors import InputError, UnknownNameError
from autoscaler.perf.profiles import DEFAULT_MAX_CONTEXT
from autoscaler.traces.records import Trace

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

FORMAT = "family"
_STEP_S = 1.0
_MAX_TURNS = 64


def _check(owner: str, checks: tuple[tuple[str, float, bool, str], ...]) -> None:
    """Raise :class:`InputError` naming the first parameter that fails, and why."""
    for name, value, ok, why in checks:
        if not (ok and math.isfinite(value)):
            raise InputError(f"{owner}: {name} = {value!r} is out of range: {why}")


# --- arrival shapes -------------------------------------------------------------------------


class Shape(Protocol):
    """Requests per second over the run."""

    def rate(self, t_s: FloatArray, duration_s: float) -> FloatArray: ...


@dataclass(frozen=True, slots=True)
class Poisson:
    """A constant rate: the memoryless baseline every autoscaler should handle."""

    rate_rps: float

    def __post_init__(self) -> None:
        _check("poisson", (("rate_rps", self.rate_rps, self.rate_rps > 0, "must be > 0"),))

    def rate(self, t_s: FloatArray, duration_s: float) -> FloatArray:
        return np.full(t_s.shape, self.rate_rps, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class Diurnal:
    """``mean x (1 - amplitude x cos(2 pi t / period))``: a day's rise and fall, compressed."""

    mean_rps: float
    amplitude: float
    period_s: float | None = None
    """One compressed day; None means the whole run (trough at the start, peak in the middle)."""

    def __post_init__(self) -> None:
        _check(
            "diurnal",
            (
                ("mean_rps", self.mean_rps, self.mean_rps > 0, "must be > 0"),
                ("amplitude", self.amplitude, 0 <= self.amplitude < 1, "must be in [0, 1)"),
            ),
        )
        if self.period_s is not None:
            _check("diurnal", (("period_s", self.period_s, self.period_s > 0, "must be > 0"),))

    def rate(self, t_s: FloatArray, duration_s: float) -> FloatArray:
        period = duration_s if self.period_s is None else self.period_s
        shape = 1.0 - self.amplitude * np.cos(2.0 * math.pi * t_s / period)
        return np.asarray(self.mean_rps * shape, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class FlashCrowd:
    """A base rate, then ``factor`` times it reached linearly within ``rise_s`` (at most one
    minute) from ``at_s``, held for ``hold_s``, and back to the base linearly over ``decay_s``:
    a link shared on social media, a launch, a retry storm after an outage elsewhere."""

    base_rps: float
    factor: float
    at_s: float
    rise_s: float = 30.0
    hold_s: float = 240.0
    decay_s: float = 120.0

    def __post_init__(self) -> None:
        _check(
            "flash crowd",
            (
                ("base_rps", self.base_rps, self.base_rps > 0, "must be > 0"),
                ("factor", self.factor, self.factor > 1, "must be > 1"),
                ("at_s", self.at_s, self.at_s >= 0, "must be >= 0"),
                ("rise_s", self.rise_s, 0 < self.rise_s <= 60, "a flash crowd rises within 60 s"),
                ("hold_s", self.hold_s, self.hold_s >= 60, "must be >= 60 (a full peak minute)"),
                ("decay_s", self.decay_s, self.decay_s >= 0, "must be >= 0"),
            ),
        )

    def rate(self, t_s: FloatArray, duration_s: float) -> FloatArray:
        up = np.clip((t_s - self.at_s) / self.rise_s, 0.0, 1.0)
        down_from = self.at_s + self.rise_s + self.hold_s
        if self.decay_s > 0:
            down = np.clip((t_s - down_from) / self.decay_s, 0.0, 1.0)
        else:
            down = (t_s >= down_from).astype(np.float64)
        level = up * (1.0 - down)
        return np.asarray(self.base_rps * (1.0 + (self.factor - 1.0) * level), dtype=np.float64)


@dataclass(frozen=True, slots=True)
class OnOff:
    """``off_rps`` for ``off_s``, then ``on_rps`` for ``on_s``, repeated: batch jobs, CI runs
    or office hours of a coding assistant switching on and off faster than a day."""

    on_rps: float
    off_rps: float
    on_s: float
    off_s: float

    def __post_init__(self) -> None:
        _check(
            "on/off",
            (
                ("on_rps", self.on_rps, self.on_rps > 0, "must be > 0"),
                (
                    "off_rps",
                    self.off_rps,
                    0 <= self.off_rps < self.on_rps,
                    "must be in [0, on_rps)",
                ),
                ("on_s", self.on_s, self.on_s > 0, "must be > 0"),
                ("off_s", self.off_s, self.off_s > 0, "must be > 0"),
            ),
        )

    def rate(self, t_s: FloatArray, duration_s: float) -> FloatArray:
        phase = np.mod(t_s, self.on_s + self.off_s)
        return np.where(phase >= self.off_s, self.on_rps, self.off_rps).astype(np.float64)


@dataclass(frozen=True, slots=True)
class Ramp:
    """From ``start_rps`` to ``end_rps`` linearly over the whole run: a launch ramping up, or
    traffic moved over from another region, slower than any lead time."""

    start_rps: float
    end_rps: float

    def __post_init__(self) -> None:
        _check(
            "ramp",
            (
                ("start_rps", self.start_rps, self.start_rps > 0, "must be > 0"),
                ("end_rps", self.end_rps, self.end_rps > 0, "must be > 0"),
            ),
        )

    def rate(self, t_s: FloatArray, duration_s: float) -> FloatArray:
        frac = np.clip(t_s / duration_s, 0.0, 1.0)
        return np.asarray(self.start_rps + (self.end_rps - self.start_rps) * frac)


# --- token-count distributions and request mixes ---------------------------------------------


@dataclass(frozen=True, slots=True)
class Lognormal:
    """Token counts with the given mean; ``sigma`` is the standard deviation of their log."""

    mean: float
    sigma: float = 1.0

    def __post_init__(self) -> None:
        _check(
            "lognormal",
            (
                ("mean", self.mean, self.mean >= 1, "must be >= 1 token"),
                ("sigma", self.sigma, 0 <= self.sigma <= 2.5, "must be in [0, 2.5]"),
            ),
        )

    def sample(self, rng: np.random.Generator, n: int) -> IntArray:
        mu = math.log(self.mean) - self.sigma**2 / 2.0
        return _tokens(rng.lognormal(mu, self.sigma, n))


@dataclass(frozen=True, slots=True)
class Pareto:
    """Token counts with the given mean and a power-law tail of index ``alpha`` (> 2, so the
    variance is finite and a long sample's mean settles): a few huge documents among many
    small ones."""

    mean: float
    alpha: float = 2.5

    def __post_init__(self) -> None:
        _check(
            "pareto",
            (
                ("mean", self.mean, self.mean >= 1, "must be >= 1 token"),
                ("alpha", self.alpha, self.alpha > 2, "must be > 2 (finite variance)"),
            ),
        )

    def sample(self, rng: np.random.Generator, n: int) -> IntArray:
        scale = self.mean * (self.alpha - 1.0) / self.alpha  # the minimum, x_m
        return _tokens(scale * (1.0 + rng.pareto(self.alpha, n)))


Lengths = Lognormal | Pareto


def _tokens(x: FloatArray) -> IntArray:
    return np.maximum(np.rint(x), 1).astype(np.int64)


@dataclass(frozen=True, slots=True)
class RequestMix:
    """Independent requests: prompt and output lengths drawn independently."""

    prompt: Lengths
    output: Lengths


@dataclass(frozen=True, slots=True)
class SessionMix:
    """Multi-turn conversations. A session has ``1 + Geometric`` turns (mean ``turns_mean``);
    the first prompt is ``first_prompt`` (system prompt + first message), each later prompt is
    the previous prompt + the previous answer + a new ``message``; answers are ``output``."""

    first_prompt: Lengths
    message: Lengths
    output: Lengths
    turns_mean: float = 5.0
    think_s: float = 45.0
    """Mean of the exponential time between one turn's arrival and the next."""

    def __post_init__(self) -> None:
        _check(
            "session mix",
            (
                ("turns_mean", self.turns_mean, 1 <= self.turns_mean <= 20, "must be in [1, 20]"),
                ("think_s", self.think_s, self.think_s > 0, "must be > 0"),
            ),
        )


Mix = RequestMix | SessionMix


# --- families ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Family:
    """One workload: ``shape`` x ``mix`` over ``duration_s``; ``why`` names the real pattern."""

    name: str
    shape: Poisson | Diurnal | FlashCrowd | OnOff | Ramp
    mix: Mix
    duration_s: float = 3000.0
    why: str = ""
    max_context: int = DEFAULT_MAX_CONTEXT
    """Prompt + output never exceed this (the replica's context window)."""

    def __post_init__(self) -> None:
        owner = f"family {self.name!r}"
        _check(
            owner,
            (
                ("duration_s", self.duration_s, self.duration_s >= 60, "must be >= 60"),
                ("max_context", self.max_context, self.max_context >= 256, "must be >= 256"),
            ),
        )
        if isinstance(self.shape, FlashCrowd) and self.shape.at_s >= self.duration_s:
            raise InputError(
                f"{owner}: shape.at_s = {self.shape.at_s} is out of range: the flash crowd must "
                f"start before the end of the run ({self.duration_s:g} s)"
            )

    def rate(self, t_s: npt.ArrayLike) -> FloatArray:
        """Requests per second of the shape at ``t_s`` (the mean, before Poisson noise)."""
        return self.shape.rate(np.asarray(t_s, dtype=np.float64), self.duration_s)


def _arrivals(rng: np.random.Generator, rate: FloatArray, duration_s: float) -> FloatArray:
    """Inhomogeneous Poisson arrivals for a rate held constant on each 1 s step."""
    starts = np.arange(rate.size, dtype=np.float64) * _STEP_S
    widths = np.minimum(_STEP_S, duration_s - starts)
    counts = rng.poisson(rate * widths)
    return np.asarray(
        np.repeat(starts, counts) + rng.uniform(0.0, 1.0, counts.sum()) * np.repeat(widths, counts),
        dtype=np.float64,
    )


def generate_sessions(family: Family, seed: int = 0) -> tuple[Trace, IntArray]:
    """Draw one trace of ``family`` and each request's session id (aligned with the trace).

    Requests of a :class:`RequestMix` are sessions of one turn each. The same seed gives the
    same trace. Arrival times are seconds from the start of the run (not shifted to the first
    request, so the shape's time axis is kept).
    """
    rng = np.random.default_rng(seed)
    n_steps = math.ceil(family.duration_s / _STEP_S)
    mid = np.arange(n_steps, dtype=np.float64) * _STEP_S + _STEP_S / 2
    rate = family.rate(mid)
    mix = family.mix
    if isinstance(mix, RequestMix):
        arrival = _arrivals(rng, rate, family.duration_s)
        n = arrival.size
        output = np.minimum(mix.output.sample(rng, n), family.max_context // 2)
        prompt = np.minimum(mix.prompt.sample(rng, n), family.max_context - output)
        session = np.arange(n, dtype=np.int64)
    else:
        arrival, prompt, output, session = _sessions(rng, mix, rate, family)
    order = np.argsort(arrival, kind="stable")
    trace = Trace(
        path=f"family:{family.name}(seed={seed})",
        format=FORMAT,
        arrival_s=arrival[order],
        prompt_tokens=prompt[order].astype(np.int64),
        output_tokens=output[order].astype(np.int64),
        duration_s=float(family.duration_s),
    )
    return trace, session[order]


def generate(family: Family, seed: int = 0) -> Trace:
    """Draw one trace of ``family``; the same seed gives the same trace."""
    return generate_sessions(family, seed)[0]


def _sessions(
    rng: np.random.Generator, mix: SessionMix, rate: FloatArray, family: Family
) -> tuple[FloatArray, IntArray, IntArray, IntArray]:
    starts = _arrivals(rng, rate / mix.turns_mean, family.duration_s)
    n = starts.size
    turns = np.minimum(rng.geometric(1.0 / mix.turns_mean, n), _MAX_TURNS).astype(np.int64)
    session = np.repeat(np.arange(n, dtype=np.int64), turns)
    total = int(turns.sum())
    first_row = np.cumsum(turns) - turns  # row of each session's first turn
    k = np.arange(total, dtype=np.int64) - np.repeat(first_row, turns)  # turn index, 0-based
    gaps = rng.exponential(mix.think_s, total)
    gaps[k == 0] = 0.0
    arrival = np.repeat(starts, turns) + _group_cumsum(gaps, first_row, turns)
    output = np.minimum(mix.output.sample(rng, total), family.max_context // 2)
    message = mix.message.sample(rng, total)
    first = mix.first_prompt.sample(rng, n)
    # turn k > 0 adds the previous answer and a new message to the previous prompt
    growth = np.where(k > 0, np.roll(output, 1) + message, 0).astype(np.float64)
    prompt = np.repeat(first, turns) + _group_cumsum(growth, first_row, turns).astype(np.int64)
    too_long = (prompt + output > family.max_context).astype(np.float64)
    ended = _group_cumsum(too_long, first_row, turns) > 0  # this turn or an earlier one
    keep = (arrival < family.duration_s) & ~ended
    return arrival[keep], prompt[keep], output[keep], session[keep]


def _group_cumsum(x: FloatArray, first_row: IntArray, sizes: IntArray) -> FloatArray:
    """Cumulative sum of ``x`` restarting at each group (groups are consecutive rows)."""
    c = np.cumsum(x)
    before = np.where(first_row > 0, c[first_row - 1], 0.0) if first_row.size else first_row
    return np.asarray(c - np.repeat(before, sizes), dtype=np.float64)


# --- the named families -----------------------------------------------------------------------

# Chat lengths: the means of the shared Azure conversation trace (AZURE_CONV_LENGTHS in
# synthetic.py: ~1,150 prompt and ~210 output tokens; the log-spread of its lengths is ~1.0 and
# ~0.86). One chat request is ~2,700 token-work units (prefill 1, decode ~7.5 per token), about a
# third of a default replica's ~8,000/s, so 1 req/s of chat needs ~0.35 replicas.
CHAT = RequestMix(prompt=Lognormal(1150.0, 1.0), output=Lognormal(210.0, 0.86))

_FAMILIES: tuple[Family, ...] = (
    Family(
        name="poisson-chat",
        shape=Poisson(18.0),
        mix=CHAT,
        duration_s=2700.0,
        why="steady chat traffic: the memoryless baseline, where only noise moves the load",
    ),
    Family(
        name="diurnal-chat",
        shape=Diurnal(mean_rps=20.0, amplitude=0.6),
        mix=CHAT,
        duration_s=3600.0,
        why="a consumer chat service's day compressed into an hour: 8 to 32 req/s, trough at "
        "the start",
    ),
    Family(
        name="flash-x4-chat",
        shape=FlashCrowd(base_rps=10.0, factor=4.0, at_s=1500.0, rise_s=45.0, hold_s=300.0),
        mix=CHAT,
        duration_s=3000.0,
        why="a launch or a shared link: x4 within 45 s, held five minutes (about one lead time)",
    ),
    Family(
        name="flash-x10-chat",
        shape=FlashCrowd(base_rps=5.0, factor=10.0, at_s=1500.0, rise_s=20.0, hold_s=240.0),
        mix=CHAT,
        duration_s=3000.0,
        why="a x10 spike within 20 s, shorter than a replica's start: no causal controller can "
        "be ready in time, so here the goal is to beat oracle-late",
    ),
    Family(
        name="onoff-code",
        shape=OnOff(on_rps=22.0, off_rps=4.0, on_s=240.0, off_s=360.0),
        mix=RequestMix(prompt=Lognormal(2000.0, 0.8), output=Pareto(60.0, 2.2)),
        duration_s=3000.0,
        why="a code assistant or CI batch: long file contexts, short completions with a heavy "
        "tail, switching between 4 and 22 req/s every few minutes",
    ),
    Family(
        name="ramp-longctx",
        shape=Ramp(start_rps=0.4, end_rps=2.2),
        mix=RequestMix(prompt=Lognormal(16000.0, 0.7), output=Lognormal(300.0, 0.8)),
        duration_s=3000.0,
        why="long-document chat (16k-token prompts, up to ~128k) ramping from 0.4 to 2.2 req/s: "
        "prefill-bound, where one long prompt stalls everyone's decode",
    ),
    Family(
        name="sessions-multiturn",
        shape=Diurnal(mean_rps=14.0, amplitude=0.4),
        mix=SessionMix(
            first_prompt=Lognormal(600.0, 0.8),
            message=Lognormal(150.0, 1.0),
            output=Lognormal(250.0, 0.8),
            turns_mean=6.0,
            think_s=40.0,
        ),
        duration_s=3000.0,
        why="multi-turn conversations whose context grows by each answer and message (a "
        "six-turn session ends near 2,600 prompt tokens): load per request rises as sessions "
        "age",
    ),
    Family(
        name="rag-longprompt-shortout",
        shape=OnOff(on_rps=9.0, off_rps=3.0, on_s=120.0, off_s=180.0),
        mix=RequestMix(prompt=Pareto(6000.0, 2.5), output=Lognormal(25.0, 0.7)),
        duration_s=3000.0,
        why="retrieval-augmented answers: retrieved documents make long, heavy-tailed prompts, "
        "answers are a few dozen tokens, and traffic comes in bursts; the short outputs share "
        "a step with 8k-token prefill chunks, which is what misses TPOT",
    ),
    Family(
        name="diurnal-reasoning",
        shape=Diurnal(mean_rps=6.0, amplitude=0.5, period_s=1500.0),
        mix=RequestMix(prompt=Lognormal(400.0, 0.9), output=Pareto(1000.0, 2.5)),
        duration_s=3000.0,
        why="reasoning or long-form generation: short prompts, ~1,000-token answers with a "
        "heavy tail, two compressed days: decode-bound and KV-heavy",
    ),
)

FAMILIES: Mapping[str, Family] = MappingProxyType({f.name: f for f in _FAMILIES})
"""Name -> the default family, in the order above (read-only)."""


def get_family(name: str) -> Family:
    """The family called ``name``; :class:`UnknownNameError` listing the known ones otherwise."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise UnknownNameError("workload family", name, list(FAMILIES)) from None

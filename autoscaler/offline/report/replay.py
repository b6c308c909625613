"""Replaying a history through ``forecast@SETTING`` at several head-room settings and the baselines.

The ``simulate`` runner does the work: :func:`autoscaler.simulation.runner.run` for a request
trace, :func:`autoscaler.simulation.fluid_runner.run_fluid` for a rate history (ServeGen, or
Prometheus steps), so every point on the report's curve is a ``simulate --json`` figure with the
same SLO, replica cap, starting fleet and HPA behaviour as a benchmark.

``forecast``'s setting multiplies the per-replica capacity it plans with: below 1 buys head-room
(more replicas, more GPU-hours, fewer SLO misses), above 1 trusts a replica with more. Sweeping it
draws our policy's cost/quality curve. A baseline named without a setting is swept the same way,
over its registry sweep (:func:`autoscaler.policies.registry.expand_sweep`: ``hpa-queue`` at 1, 2,
3, 5 and 8 waiting requests per replica, and so on), so the report compares our curve with each
baseline's front, not with one default point; ``NAME@SETTING`` keeps a single point.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from autoscaler.errors import InputError
from autoscaler.offline.report.history import History
from autoscaler.policies.registry import (
    expand_sweep,
    format_setting,
    parse_policy_name,
    policy_names,
)
from autoscaler.simulation.engine import RunOutput
from autoscaler.simulation.runner import RunRequest

OURS = "forecast"
DEFAULT_HEADROOMS: tuple[float, ...] = (0.7, 0.85, 1.0, 1.15, 1.3)
"""Five settings: enough to see the curve bend. With every baseline swept (25 baseline points,
of which fluid mode reports 10, or 14 for a history with its own lengths, see
``fluid_runner.not_reported``) 14 days of ServeGen replay in
a few minutes (fluid mode, ~10 s a run) and an hour of Azure in about a minute a seed."""

Progress = Callable[[str, float], None]


def default_baselines() -> list[str]:
    """Every baseline of the registry, at its default setting."""
    return [name for name in policy_names() if name != OURS]


def policy_labels(headrooms: Sequence[float], baselines: Sequence[str]) -> list[str]:
    """``forecast@SETTING`` for each head-room, then each baseline's sweep (a bare name) or the
    one ``NAME@SETTING`` given, validated.

    Raises :class:`InputError` for no head-room, a head-room out of ``forecast``'s range, an
    unknown baseline, or ``forecast`` among the baselines.
    """
    if not headrooms:
        raise InputError("--headroom needs at least one setting")
    labels: list[str] = []
    for value in headrooms:
        _, setting = parse_policy_name(f"{OURS}@{float(value)!r}")
        assert setting is not None
        label = f"{OURS}@{format_setting(setting)}"
        if label not in labels:
            labels.append(label)
    for spec in baselines:
        name, _ = parse_policy_name(spec)
        if name == OURS:
            raise InputError(f"--baseline {spec!r}: ours is swept with --headroom, not a baseline")
        for label in expand_sweep([spec]):
            if label not in labels:
                labels.append(label)
    return labels


def replay(
    history: History, req: RunRequest, progress: Progress | None = None
) -> dict[str, object]:
    """Every policy of ``req`` (and the oracle) on the history: the ``simulate --json`` object."""
    if history.trace is not None:
        from autoscaler.simulation.runner import run

        return run(history.trace, req, progress)
    if history.windows is None:
        raise InputError(f"{history.workload}: the history has nothing to replay")
    from autoscaler.simulation.fluid_runner import run_fluid

    return run_fluid(history.windows, req, progress, lengths=history.lengths)


def replica_timelines(
    history: History, req: RunRequest, policy: str, progress: Progress | None = None
) -> dict[str, RunOutput] | None:
    """The oracle's and ``policy``'s runs on seed 0 (their replica timelines, for the plot), or
    None for a fluid history, whose runner keeps only figures."""
    if history.trace is None:
        return None
    from autoscaler.simulation.runner import run_seed

    one = replace(req, policies=[policy], seeds=1)
    return run_seed(history.trace, one, seed=0, progress=progress).outputs

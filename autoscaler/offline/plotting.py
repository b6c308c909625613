"""PNG of replicas and demand over time for each policy of a run (the demo's picture)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from autoscaler.errors import MissingExtraError
from autoscaler.simulation.engine import RunOutput


def require_matplotlib(what: str) -> None:
    """Fail with one line naming the ``report`` extra when matplotlib is not installed.

    Called before any long work starts, so a user without the extra does not wait through a
    simulation to learn that the plot cannot be drawn.
    """
    try:
        import matplotlib  # noqa: F401
    except ImportError as e:
        raise MissingExtraError("matplotlib", "report", what) from e


def plot_replicas(outputs: Mapping[str, RunOutput], path: Path, title: str) -> Path:
    """One panel per policy: spec and ready replicas (left axis), observed token work (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(outputs)
    fig, axes = plt.subplots(
        len(names), 1, figsize=(10, 1.9 * len(names) + 0.6), sharex=True, squeeze=False
    )
    for ax, name in zip(axes[:, 0], names, strict=True):
        tl = outputs[name].timeline
        t = [p.t / 60.0 for p in tl]
        ax.step(t, [p.spec for p in tl], where="post", color="tab:blue", label="desired (spec)")
        ax.step(t, [p.ready for p in tl], where="post", color="tab:green", label="ready")
        ax.set_ylabel("replicas")
        ax.set_title(name, fontsize=9, loc="left")
        ax2 = ax.twinx()
        ax2.plot(
            t,
            [p.observed_work_rate or 0.0 for p in tl],
            color="tab:gray",
            alpha=0.5,
            linewidth=0.8,
            label="observed token work/s",
        )
        ax2.set_ylabel("work/s", fontsize=8)
        if ax is axes[0, 0]:
            h1, l1 = ax.get_legend_handles_labels()
            h2, l2 = ax2.get_legend_handles_labels()
            ax.legend(h1 + h2, l1 + l2, fontsize=7, loc="upper left")
    axes[-1, 0].set_xlabel("minutes")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

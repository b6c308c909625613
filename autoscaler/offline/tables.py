"""Readable tables of run figures (terminal and Markdown), shared by the CLI and benchmarks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.table import Table

COLUMNS = (
    ("policy", "policy"),
    ("slo_attainment", "SLO"),
    ("gpu_hours", "GPU-h"),
    ("gpu_vs_oracle", "/oracle"),
    ("cold_starts", "cold"),
    ("warm_starts", "warm"),
    ("max_replicas", "max"),
    ("ttft_p90_s", "TTFT90"),
    ("tpot_p90_s", "TPOT90"),
    ("replica_changes", "chg"),
)


_COUNTS = frozenset({"cold_starts", "warm_starts", "max_replicas", "replica_changes", "requests"})


def _fmt(key: str, value: object) -> str:
    if value is None:
        return "-"
    if key == "slo_attainment" and isinstance(value, float):
        return f"{100 * value:.2f}%"
    if key in _COUNTS and isinstance(value, int | float):
        return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def rows(policies: Mapping[str, Mapping[str, object]]) -> list[list[str]]:
    """One row of formatted cells per policy, in the order of :data:`COLUMNS`."""
    out = []
    for name, figs in policies.items():
        oracle = figs.get("oracle_gpu_hours")
        gpu = figs.get("gpu_hours")
        ratio = (
            float(gpu) / float(oracle)
            if isinstance(gpu, int | float) and isinstance(oracle, int | float) and oracle
            else None
        )
        cells = []
        for key, _ in COLUMNS:
            if key == "policy":
                cells.append(name)
            elif key == "gpu_vs_oracle":
                cells.append(_fmt(key, ratio))
            else:
                cells.append(_fmt(key, figs.get(key)))
        out.append(cells)
    return out


def markdown(policies: Mapping[str, Mapping[str, object]], title: str | None = None) -> str:
    """A Markdown table of the figures."""
    head = [label for _, label in COLUMNS]
    lines = []
    if title:
        lines.append(f"### {title}\n")
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "|".join("---" for _ in head) + "|")
    for cells in rows(policies):
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def rich_table(policies: Mapping[str, Mapping[str, object]], title: str) -> Table:
    """The figures as a terminal table that fits 80 columns uncut.

    No vertical rules and collapsed padding (one space between columns): the heavy-box default
    took 86 columns for the demo's eight policies, so an 80-column terminal cut the SLO and
    several other columns to ``…``.
    """
    from rich import box
    from rich.table import Table

    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for _, label in COLUMNS:
        table.add_column(label, justify="left" if label == "policy" else "right", no_wrap=True)
    for cells in rows(policies):
        table.add_row(*cells)
    return table

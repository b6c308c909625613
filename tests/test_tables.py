"""The run-figures table (demo, simulate) reads uncut in an 80-column terminal."""

from __future__ import annotations

from rich.console import Console

from autoscaler.offline.tables import COLUMNS, rich_table

# Every column at its widest realistic value, for the demo's policies (the longest name is
# static-peak): a degraded SLO, GPU-hours in the thousands, a stalled TTFT p90.
WIDE = {
    "slo_attainment": 0.4159,
    "gpu_hours": 1234.5,
    "oracle_gpu_hours": 1000.0,
    "cold_starts": 117,
    "warm_starts": 230,
    "max_replicas": 128,
    "ttft_p90_s": 76.7,
    "tpot_p90_s": 0.433,
    "replica_changes": 480,
}
POLICIES = ["oracle", "oracle-late", "forecast", "apa", "dynamo", "hpa-kv", "hpa-queue", "kpa",
            "static-peak"]  # fmt: skip
TITLE = "demo: synthetic workload (1 seed, scored after a 600s warm-up)"


def render(width: int) -> list[str]:
    console = Console(width=width, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(rich_table({p: WIDE for p in POLICIES}, TITLE))
    console.file.close()
    return console.export_text().splitlines()


def test_demo_table_fits_80_columns_with_no_cut_cell():
    lines = render(80)
    assert max(len(line) for line in lines) <= 80
    assert not any("…" in line for line in lines), "\n".join(lines)
    header = next(line for line in lines if "policy" in line)
    assert header.split() == [label for _, label in COLUMNS]
    assert any(line.split()[:2] == ["static-peak", "41.59%"] for line in lines)

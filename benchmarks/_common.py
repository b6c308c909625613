"""Helpers shared by the benchmark scripts: finding shared data and printing JSON + Markdown."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from autoscaler.errors import SharedDataMissing  # noqa: E402
from autoscaler.shared_data import shared_path  # noqa: E402


def shared_or_exit(relative: str) -> Path:
    try:
        return shared_path(relative)
    except SharedDataMissing as exc:
        print(f"benchmark needs shared data: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def emit(name: str, payload: object, markdown: str) -> None:
    """Print the JSON result and the Markdown table; keep a copy under benchmarks/results/."""
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(payload, indent=2))
    (out / f"{name}.md").write_text(markdown + "\n")
    print(json.dumps(payload, indent=2))
    print()
    print(markdown)

"""What the simulating verbs show on a terminal: a progress bar and the results table."""

from __future__ import annotations

import sys
from typing import Any


class ProgressBar:
    """A rich progress bar on a terminal; silent otherwise (pipes, CI, ``--json`` consumers)."""

    def __init__(self, total_runs: int) -> None:
        self.enabled = sys.stderr.isatty()
        self.total = total_runs
        self.done = 0
        self.current: str | None = None
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> ProgressBar:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.percentage:>3.0f}%"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._bar.__enter__()
            self._task = self._bar.add_task("simulating", total=self.total)
        return self

    def __call__(self, name: str, frac: float) -> None:
        if not self.enabled:
            return
        if frac >= 1.0 and name == self.current:
            self.done += 1
            self.current = None
        elif frac < 1.0:
            self.current = name
        self._bar.update(
            self._task, completed=self.done + (frac if frac < 1 else 0), description=name
        )

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)


def print_table(result: dict[str, Any], title: str) -> None:
    from rich.console import Console

    from autoscaler.offline.tables import rich_table

    console = Console()
    console.print(rich_table(result["policies"], title))
    # fluid mode refuses baselines it cannot reproduce within the agreement band: say which
    for name, why in (result.get("not_reported") or {}).items():
        console.print(f"not reported: {name}: {why}", soft_wrap=True)

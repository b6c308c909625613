"""Where the shared data lives (traces, perf CSV, engine captures).

Data is never copied into the repository. Tests, benchmarks and notebooks find it through this one
helper, which looks in ``$LLM_AUTOSCALER_DATA`` first and then in ``../shared`` next to the project
root (the layout of a checkout beside the team's shared folder).
"""

from __future__ import annotations

import os
from pathlib import Path

from autoscaler.errors import SharedDataMissing

ENV_VAR = "LLM_AUTOSCALER_DATA"
_PROJECT_ROOT = Path(__file__).resolve().parent.parent


def data_dirs(environ: dict[str, str] | None = None) -> list[Path]:
    """The directories searched, in order."""
    env = os.environ if environ is None else environ
    dirs: list[Path] = []
    if env.get(ENV_VAR):
        dirs.append(Path(env[ENV_VAR]))
    dirs.append(_PROJECT_ROOT.parent / "shared")
    return dirs


def shared_path(relative: str, environ: dict[str, str] | None = None) -> Path:
    """Return the path of ``relative`` (e.g. ``traces/azure2023_conv.csv``) in the first data dir
    that has it, or raise :class:`SharedDataMissing` naming every place looked at."""
    tried = []
    for base in data_dirs(environ):
        candidate = base / relative
        if candidate.is_file():
            return candidate
        tried.append(str(candidate))
    raise SharedDataMissing(
        f"shared data file {relative!r} not found; looked in: {', '.join(tried)}"
    )

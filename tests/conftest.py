"""Shared fixtures. Shared data is read through :mod:`autoscaler.shared_data`; a missing file
skips the test with the reason, unless ``REQUIRE_SHARED=1`` (set by ``.ci/run``), where it fails."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from autoscaler.errors import SharedDataMissing
from autoscaler.shared_data import shared_path


@pytest.fixture(autouse=True, scope="session")
def _private_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Caches the code keeps under ``$XDG_CACHE_HOME`` (the fleet oracle's bisections) go to a
    directory of this test session, for the CLI's subprocesses too: no test reads a result that
    an earlier run (or another checkout) left in the user's cache."""
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))


def _require_shared() -> bool:
    return os.environ.get("REQUIRE_SHARED", "") not in ("", "0")


@pytest.fixture
def shared_file() -> Callable[[str], Path]:
    """``shared_file("traces/azure2023_conv.csv")`` -> Path, or skip/fail when it is absent."""

    def find(relative: str) -> Path:
        try:
            return shared_path(relative)
        except SharedDataMissing as exc:
            if _require_shared():
                pytest.fail(f"REQUIRE_SHARED=1 but {exc}")
            pytest.skip(str(exc))

    return find


@pytest.fixture
def prometheus_binary() -> str:
    """The Debian ``prometheus`` binary for the real-Prometheus tests: skipped with the reason
    when it is missing, failed instead under CI (``.ci/run`` installs it)."""
    import shutil

    found = shutil.which("prometheus")
    if found is None:
        why = (
            "the Debian `prometheus` binary is not installed "
            "(apt-get install -y --no-install-recommends prometheus; .ci/run does it)"
        )
        if _require_shared() or os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    return found

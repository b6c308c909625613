"""The lock (requirements/*.txt) still satisfies pyproject.toml, and this environment is the lock.

``pyproject.toml`` keeps ranges for people who install the package into their own environment;
``make demo``, ``make test``, ``.ci/run`` and the image install the exact versions and hashes of
the lock instead, so a release of any dependency cannot break a fresh clone overnight. These
tests fail when someone edits a range without running ``make lock``, when the serving image's
lock (``app.txt``) drifts from the dev lock, or when the running environment was installed some
other way (a green run that hides a missing install step).
"""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
DEV_LOCK = ROOT / "requirements/dev.txt"
APP_LOCK = ROOT / "requirements/app.txt"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+?)\s*(?:;[^\\]*)?\\?$")
"""``name==version``, optionally with an environment marker (``; sys_platform != "win32"``)."""


def read_lock(path: Path) -> dict[str, tuple[Version, int]]:
    """``{canonical name: (version, number of hashes)}`` of a pip-compile lock."""
    pins: dict[str, tuple[Version, int]] = {}
    current: str | None = None
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if m := PIN.match(line):
            current = canonicalize_name(m.group(1))
            assert current not in pins, f"{path.name}:{number}: {current} pinned twice"
            pins[current] = (Version(m.group(2)), 0)
        elif current is not None and line.strip().startswith("--hash=sha256:"):
            version, hashes = pins[current]
            pins[current] = (version, hashes + 1)
        elif line and not line.startswith((" ", "#")):
            raise AssertionError(f"{path.name}:{number}: not an exact pin: {line!r}")
    return pins


DEV = read_lock(DEV_LOCK)
APP = read_lock(APP_LOCK)


def _requirements(*extras: str) -> list[Requirement]:
    texts = list(PROJECT["dependencies"])
    for extra in extras:
        texts += PROJECT["optional-dependencies"][extra]
    return [Requirement(t) for t in texts]


@pytest.mark.parametrize(
    ("lock", "extras"),
    [(DEV, tuple(PROJECT["optional-dependencies"])), (APP, ())],
    ids=["dev", "app"],
)
def test_lock_satisfies_every_range_in_pyproject(lock, extras):
    stale = []
    for req in _requirements(*extras):
        pinned = lock.get(canonicalize_name(req.name))
        if pinned is None or not req.specifier.contains(pinned[0], prereleases=True):
            stale.append(f"{req} (locked: {pinned[0] if pinned else 'missing'})")
    assert stale == [], f"the lock does not satisfy pyproject.toml: {stale}; run `make lock`"


def test_every_pin_carries_hashes():
    unhashed = [name for lock in (DEV, APP) for name, (_, n) in lock.items() if n == 0]
    assert unhashed == [], "pip install --require-hashes would refuse these pins"


def test_app_lock_is_the_dev_lock_cut_to_the_app():
    differ = {n: (str(v), str(DEV.get(n, ("missing",))[0])) for n, (v, _) in APP.items()
              if DEV.get(n, (None,))[0] != v}  # fmt: skip
    assert differ == {}, f"requirements/app.txt and dev.txt disagree (app, dev): {differ}"
    assert "matplotlib" not in APP, "the serving image should not carry the report's plotting"


def _closure_is_pinned(lock: dict[str, tuple[Version, int]], extras: tuple[str, ...]) -> list[str]:
    """Requirements of locked distributions (as installed here) that the lock does not pin."""
    env = default_environment()
    missing = []
    for name in lock:
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue  # reported by test_environment_is_the_lock
        for text in requires:
            req = Requirement(text)
            if req.marker is not None and not req.marker.evaluate({**env, "extra": ""}):
                continue
            if canonicalize_name(req.name) not in lock:
                missing.append(f"{name} needs {req}")
    for req in _requirements(*extras):
        if canonicalize_name(req.name) not in lock:
            missing.append(f"llm-autoscaler needs {req}")
    return missing


def test_app_lock_is_closed_under_dependencies():
    """The image installs app.txt with --require-hashes: every dependency must be pinned there."""
    assert _closure_is_pinned(APP, ()) == []


def test_environment_is_the_lock():
    """Every locked version is the installed one: this environment came from the lock."""
    wrong = {}
    for name, (version, _) in DEV.items():
        try:
            installed = Version(metadata.version(name))
        except metadata.PackageNotFoundError:
            wrong[name] = (str(version), "not installed")
            continue
        if installed != version:
            wrong[name] = (str(version), str(installed))
    assert wrong == {}, f"installed versions differ from requirements/dev.txt: {wrong}"

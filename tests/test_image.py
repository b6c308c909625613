"""The serving image works: `make image-test` builds it and runs these against it.

Each command runs inside the image with ``buildah run`` as the Deployment runs it (user 65532,
the image's environment), and once more in a chroot of the image's root filesystem mounted
read-only with only ``/tmp`` writable, as ``readOnlyRootFilesystem: true`` and the emptyDir
leave it. Skipped unless ``LLM_AUTOSCALER_TEST_IMAGE`` names a built image (building takes
minutes, so plain ``make test`` does not); ``.ci/run`` runs ``make image-test``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from autoscaler.config import load_config

ROOT = Path(__file__).resolve().parent.parent
IMAGE = os.environ.get("LLM_AUTOSCALER_TEST_IMAGE", "")
BUILDAH = ["buildah", "--storage-driver", os.environ.get("STORAGE_DRIVER", "vfs")]
EXAMPLE = "/usr/share/llm-autoscaler/config.example.yaml"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]

pytestmark = pytest.mark.skipif(
    not IMAGE or shutil.which("buildah") is None,
    reason="no image to test: run `make image-test` (needs buildah) to build and test it",
)


def _run(argv: list[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def config() -> dict:
    done = _run([*BUILDAH, "inspect", "--type", "image", IMAGE])
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["OCIv1"]["config"]


@pytest.fixture(scope="module")
def container() -> Iterator[str]:
    done = _run([*BUILDAH, "from", "--quiet", "--pull-never", IMAGE])
    assert done.returncode == 0, done.stderr
    name = done.stdout.strip()
    yield name
    _run([*BUILDAH, "rm", name])


@pytest.fixture(scope="module")
def rootfs(container: str) -> Iterator[Path]:
    done = _run([*BUILDAH, "mount", container])
    assert done.returncode == 0, done.stderr
    yield Path(done.stdout.strip())
    _run([*BUILDAH, "umount", container])


def in_image(container: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return _run(
        [*BUILDAH, "run", "--isolation", "chroot", "--user", "65532:65532", container, "--", *argv]
    )


def in_read_only_root(rootfs: Path, config: dict, *argv: str) -> subprocess.CompletedProcess[str]:
    """``argv`` in a chroot of the image whose root is read-only, /tmp a fresh tmpfs."""
    env = ["env", "-i", *config["Env"]]
    script = (
        f"mount --bind {rootfs} {rootfs} && mount -o remount,bind,ro {rootfs} {rootfs}"
        f" && mount -t tmpfs -o size=64m tmpfs {rootfs}/tmp"
        f" && mount -t proc proc {rootfs}/proc"
        f' && exec chroot --userspec=65532:65532 {rootfs} "$@"'
    )
    return _run(["unshare", "--mount", "--fork", "sh", "-c", script, "sh", *env, *argv])


@pytest.fixture(scope="module")
def read_only_works(rootfs: Path, config: dict) -> None:
    probe = in_read_only_root(rootfs, config, "sh", "-c", "! touch /opt/x 2>/dev/null")
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a read-only chroot here: {probe.stderr.strip()[:200]}")


def test_image_config_is_what_the_deployment_expects(config):
    assert config["Entrypoint"] == ["llm-autoscaler"]
    assert config["User"] == "65532:65532"
    labels = config["Labels"]
    assert labels["org.opencontainers.image.version"] == VERSION
    assert labels["org.opencontainers.image.source"].startswith("https://")
    assert len(labels["org.opencontainers.image.revision"]) >= 7


@pytest.mark.parametrize("mode", ["buildah run", "read-only root"])
def test_version_help_and_validate_config_run_in_the_image(
    mode, container, rootfs, config, request
):
    if mode == "buildah run":
        run = lambda *argv: in_image(container, *argv)  # noqa: E731
    else:
        request.getfixturevalue("read_only_works")
        run = lambda *argv: in_read_only_root(rootfs, config, *argv)  # noqa: E731
    revision = config["Labels"]["org.opencontainers.image.revision"]

    version = run("llm-autoscaler", "--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"llm-autoscaler {VERSION} (revision {revision})"

    help_ = run("llm-autoscaler", "serve", "--help")
    assert help_.returncode == 0, help_.stderr
    assert help_.stdout.startswith("usage: llm-autoscaler serve")

    validated = run("llm-autoscaler", "validate-config", "--skip-files", EXAMPLE)
    assert validated.returncode == 0, validated.stderr
    # the image carries deploy/examples/llm-autoscaler.yaml: as many workloads as it has
    expected = len(load_config(ROOT / "deploy" / "examples" / "llm-autoscaler.yaml").workloads)
    assert f"{expected} workload(s)" in validated.stdout
    assert validated.stderr == ""


def test_bad_config_in_the_image_is_one_line_and_exit_2(container):
    done = in_image(container, "llm-autoscaler", "validate-config", "/etc/hostname")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and done.stderr.startswith("llm-autoscaler: ")


def test_serving_image_leaves_the_plotting_out_and_says_so(container):
    """The report extra (matplotlib) is not in the serving image; demo says how to get it."""
    done = in_image(container, "llm-autoscaler", "demo", "--out", "/tmp/demo")
    assert done.returncode == 2
    assert "llm-autoscaler[report]" in done.stderr and "Traceback" not in done.stderr


def test_no_pip_and_no_compiler_in_the_image(rootfs):
    venv = rootfs / "opt/llm-autoscaler"
    assert (venv / "bin/llm-autoscaler").exists()
    assert not list(venv.glob("lib/python3*/site-packages/pip"))
    assert not (rootfs / "installer").exists() and not (rootfs / "wheelhouse").exists()
    assert not (rootfs / "usr/bin/gcc").exists()


def test_every_module_is_byte_compiled(rootfs):
    """The root is read-only: a .py without its .pyc would be compiled at every start."""
    site = next((rootfs / "opt/llm-autoscaler").glob("lib/python3*/site-packages"))
    missing = [
        str(py.relative_to(site))
        for py in (site / "autoscaler").rglob("*.py")
        if not list(py.parent.glob(f"__pycache__/{py.stem}.*.pyc"))
    ]
    assert missing == []


def test_what_serve_imports_is_in_the_image(container):
    """serve's forecast policy needs scikit-learn, the KEDA scaler grpcio: all in app.txt."""
    code = (
        "import autoscaler.live.loop, autoscaler.policies.forecast,"
        " forecasting.quantile_regression, external_metrics.keda.server, autoscaler.clients.kube;"
        " print('ok')"
    )
    done = in_image(container, "python", "-c", code)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr

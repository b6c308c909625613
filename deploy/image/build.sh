#!/usr/bin/env bash
# Build the llm-autoscaler image (`make image` calls this; docs/deploy.md explains the variables).
#
#   1. base: BASE_IMAGE if it is already in the local store or can be pulled; otherwise, for the
#      default localhost/llm-autoscaler-base:bookworm, mmdebstrap makes Debian bookworm + python3
#      (the Python the lock targets) and it is committed to the local store.
#   2. wheelhouse: the app's wheel plus exactly requirements/app.txt, hash-checked, on the host
#      (a build step cannot reach PyPI, and --no-index inside the build keeps it reproducible).
#   3. the image: `buildah bud` of the Containerfile, tagged IMAGE:VERSION in the local store and
#      written to build/llm-autoscaler-VERSION.oci.tar (an OCI archive for `podman load`,
#      `kind load image-archive`, `skopeo copy oci-archive:...`).
set -euo pipefail
cd "$(dirname "$0")/../.."

PYTHON=${PYTHON:-.venv/bin/python}
IMAGE=${IMAGE:-localhost/llm-autoscaler}
VERSION=${VERSION:?VERSION is required (make image sets it from pyproject.toml)}
REVISION=${REVISION:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
BASE_IMAGE=${BASE_IMAGE:-localhost/llm-autoscaler-base:bookworm}
BUILDAH=(buildah --storage-driver "${STORAGE_DRIVER:-vfs}")
ARCHIVE=build/llm-autoscaler-${VERSION}.oci.tar
# Reproducible timestamps: the commit time, not the wall clock.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
CREATED=$(date -u -d "@${SOURCE_DATE_EPOCH}" +%Y-%m-%dT%H:%M:%SZ)

# This machine's pip.conf may list find-links/index folders that do not exist; pip says so per
# package. Keep its real errors, drop that noise.
quiet_pip() { "$PYTHON" -m pip "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }
say() { printf 'image: %s\n' "$*" >&2; }
die() { printf 'image: error: %s\n' "$*" >&2; exit 2; }

command -v buildah >/dev/null || die "buildah is not installed (Debian: apt-get install buildah)"
mkdir -p build

# -- 1. base -------------------------------------------------------------------------------
if "${BUILDAH[@]}" inspect --type image "$BASE_IMAGE" >/dev/null 2>&1; then
  say "base $BASE_IMAGE (local)"
elif [[ "$BASE_IMAGE" == localhost/llm-autoscaler-base:* ]]; then
  command -v mmdebstrap >/dev/null || die "mmdebstrap is not installed (apt-get install mmdebstrap)"
  say "base $BASE_IMAGE: Debian bookworm + python3 with mmdebstrap (about a minute)"
  rm -f build/base-rootfs.tar
  mmdebstrap --quiet --variant=minbase --include=python3,ca-certificates \
    --aptopt='APT::Install-Recommends "false"' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    bookworm build/base-rootfs.tar "${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
  ctr=$("${BUILDAH[@]}" from scratch)
  "${BUILDAH[@]}" add "$ctr" build/base-rootfs.tar / >/dev/null
  "${BUILDAH[@]}" config --cmd '["/bin/sh"]' --env LANG=C.UTF-8 "$ctr"
  "${BUILDAH[@]}" commit --quiet --rm "$ctr" "$BASE_IMAGE" >/dev/null
  rm -f build/base-rootfs.tar
else
  say "base $BASE_IMAGE: pulling"
  "${BUILDAH[@]}" pull --quiet "$BASE_IMAGE" >/dev/null \
    || die "cannot pull $BASE_IMAGE; with no registry, leave BASE_IMAGE unset to build one locally"
fi

# -- 2. wheelhouse -------------------------------------------------------------------------
say "wheelhouse from requirements/app.txt"
rm -rf build/wheelhouse build/installer
mkdir -p build/wheelhouse build/installer
quiet_pip download --quiet --disable-pip-version-check --require-hashes --no-deps \
  --only-binary=:all: -r requirements/app.txt -d build/wheelhouse
quiet_pip wheel --quiet --disable-pip-version-check --no-deps --no-build-isolation \
  -w build/wheelhouse .
# pip itself, at the dev lock's version and hashes, runs the install inside the build only.
awk '/^pip==/{on=1; print; next} on && /^[^ #]/{on=0} on' requirements/dev.txt > build/installer/pip.txt
quiet_pip download --quiet --disable-pip-version-check --require-hashes --no-deps \
  --only-binary=:all: -r build/installer/pip.txt -d build/installer
rm build/installer/pip.txt

# -- 3. image ------------------------------------------------------------------------------
say "building $IMAGE:$VERSION on $BASE_IMAGE"
"${BUILDAH[@]}" bud --quiet --isolation chroot --layers=false \
  --timestamp "$SOURCE_DATE_EPOCH" \
  --build-arg BASE="$BASE_IMAGE" --build-arg VERSION="$VERSION" \
  --build-arg REVISION="$REVISION" --build-arg CREATED="$CREATED" \
  -f Containerfile -t "$IMAGE:$VERSION" . >/dev/null
rm -f "$ARCHIVE"
"${BUILDAH[@]}" push --quiet "$IMAGE:$VERSION" "oci-archive:$ARCHIVE:$IMAGE:$VERSION"
size=$("${BUILDAH[@]}" inspect --type image --format '{{.Size}}' "$IMAGE:$VERSION" 2>/dev/null || true)
say "done: $IMAGE:$VERSION (local store), $ARCHIVE ($(du -h "$ARCHIVE" | cut -f1) compressed)"

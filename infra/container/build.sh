#!/usr/bin/env bash
# Builds Stead's container image from an already built, statically linked `stead` binary.
#
#   infra/container/build.sh [BINARY] [TAG]
#
# BINARY: default $STEAD_DIST_BIN, else $CARGO_TARGET_DIR/dist/stead (what `cargo xtask dist`
#         writes), else target/dist/stead.
# TAG:    default $STEAD_IMAGE, else localhost/stead:<version>.
# Uses podman (or docker when STEAD_CONTAINER_ENGINE=docker). Prints the image id last.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n1)"
bin="${1:-${STEAD_DIST_BIN:-${CARGO_TARGET_DIR:-$root/target}/dist/stead}}"
tag="${2:-${STEAD_IMAGE:-localhost/stead:${version:-dev}}}"
engine="${STEAD_CONTAINER_ENGINE:-podman}"

die() { echo "build.sh: $*" >&2; exit 1; }
[ -f "$bin" ] || die "no binary at $bin (build it with \`cargo xtask dist\`, or pass its path)"
[ -x "$bin" ] || die "$bin is not executable"
command -v "$engine" >/dev/null || die "$engine is not installed (apt-get install podman)"
# The image has no libc and no dynamic loader: a dynamically linked binary would build into an
# image that cannot start. An ELF program header INTERP names the loader such a binary needs.
command -v readelf >/dev/null || die "readelf is not installed (apt-get install binutils)"
if readelf --program-headers --wide "$bin" | grep -q 'INTERP'; then
  die "$bin is dynamically linked; the image needs a static binary (cargo xtask dist builds one with musl)"
fi

context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
cp "$bin" "$context/stead"
mkdir "$context/data"

revision="$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)"
created="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
# Docker's image format: the OCI format has no HEALTHCHECK, and podman drops it from OCI images.
format_args=()
[ "$engine" = podman ] && format_args=(--format docker)

# No layer cache: the build is one copy, and a cached LABEL step would keep an old revision.
"$engine" build "${format_args[@]}" --no-cache --layers=false \
  --file "$here/Containerfile" \
  --build-arg "VERSION=${version:-0.0.0-dev}" \
  --build-arg "REVISION=$revision" \
  --build-arg "CREATED=$created" \
  --tag "$tag" \
  "$context" >&2
"$engine" image inspect --format '{{.Id}}' "$tag"

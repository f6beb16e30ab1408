#!/usr/bin/env bash
# Validates everything in infra/ that CI cannot run here (no container engine runs containers,
# no cluster): lints the Containerfile, builds the image from the release binary and inspects it,
# checks the Kubernetes overlays against Kubernetes' schemas, the compose file against the
# compose specification, Prometheus' configuration and alerting rules (with their unit tests), and
# the Grafana and collector files for consistency. Installs its tools itself (a venv under the
# target directory; promtool from Debian's prometheus package, unpacked, never started) and stops
# at the first failure, saying what failed.
#
#   infra/check.sh [BINARY]     # BINARY default: $STEAD_DIST_BIN, else $CARGO_TARGET_DIR/dist/stead
set -euo pipefail
infra="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$infra/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
tools="$target/infra-tools"
bin="${1:-${STEAD_DIST_BIN:-$target/dist/stead}}"
mkdir -p "$tools"

step() { printf '\n--> infra: %s\n' "$*"; }
die() { echo "infra/check.sh: FAILED: $*" >&2; exit 1; }
is_root() { [ "$(id -u)" = 0 ]; }
apt_install() {
  is_root || die "$* not installed; run: sudo apt-get install -y $*"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

step "tools"
venv="$tools/venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" || die "cannot create a Python venv (apt-get install python3-venv)"
fi
# Reinstalled only when the pinned versions change.
if ! cmp -s "$infra/requirements.txt" "$venv/.requirements.txt"; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$infra/requirements.txt" \
    || die "pip install -r infra/requirements.txt"
  cp "$infra/requirements.txt" "$venv/.requirements.txt"
fi
promtool="$(command -v promtool || true)"
if [ -z "$promtool" ]; then
  promtool="$tools/prometheus/usr/bin/promtool"
  if [ ! -x "$promtool" ]; then
    # Only promtool is needed: unpack Debian's package instead of installing (and starting) a server.
    deb_dir="$(mktemp -d)"
    ( cd "$deb_dir" && { apt-get download prometheus >/dev/null 2>&1 \
        || { apt-get update -qq && apt-get download prometheus >/dev/null; }; } ) \
      || die "cannot download Debian's prometheus package (for promtool)"
    rm -rf "$tools/prometheus"
    dpkg-deb -x "$deb_dir"/prometheus_*.deb "$tools/prometheus"
    rm -rf "$deb_dir"
  fi
fi
command -v podman >/dev/null || apt_install podman
command -v readelf >/dev/null || apt_install binutils
# kubectl renders the Kustomize overlays (its built-in kustomize must be v4 or later: `labels`,
# `replicas`). Debian's kubernetes-client is 1.20, too old; the CI machine image ships kubectl.
kubectl_ok=false
if command -v kubectl >/dev/null && kubectl kustomize "$infra/k8s/base" >/dev/null 2>&1; then
  kubectl_ok=true
fi
"$venv/bin/hadolint" --version
"$promtool" --version 2>&1 | head -n1
podman --version
$kubectl_ok && kubectl version --client 2>/dev/null | head -n2

step "hadolint infra/container/Containerfile"
"$venv/bin/hadolint" "$infra/container/Containerfile" || die "hadolint"

step "Kubernetes manifests against the Kubernetes schemas"
rendered="$tools/k8s"
rm -rf "$rendered" && mkdir -p "$rendered"
if $kubectl_ok; then
  for overlay in "$infra"/k8s/overlays/*/; do
    name="$(basename "$overlay")"
    kubectl kustomize "$overlay" > "$rendered/$name.yaml" || die "kubectl kustomize $overlay"
    "$venv/bin/kubernetes-validate" --strict --quiet "$rendered/$name.yaml" \
      || die "overlay $name does not validate (rendered in $rendered/$name.yaml)"
    echo "overlay $name: $(grep -c '^kind:' "$rendered/$name.yaml") objects valid"
  done
else
  echo "WARNING: no kubectl with kustomize v4+: validating each listed manifest file without rendering the overlays" >&2
  files=()
  while IFS= read -r f; do files+=("$f"); done < <("$venv/bin/python" "$infra/check_files.py" kustomize-files "$infra/k8s")
  "$venv/bin/kubernetes-validate" --strict --quiet "${files[@]}" || die "Kubernetes manifests"
fi
"$venv/bin/python" "$infra/check_files.py" k8s "$infra/k8s" "$rendered" || die "Kubernetes conventions"

step "compose file against the compose specification"
"$venv/bin/check-jsonschema" --builtin-schema vendor.compose-spec "$infra/compose/compose.yaml" \
  || die "compose.yaml does not follow the compose specification"
"$venv/bin/python" "$infra/check_files.py" compose "$infra/compose/compose.yaml" || die "compose.yaml"

step "Prometheus configuration, alerting rules and their unit tests (promtool)"
( cd "$infra/prometheus" \
  && "$promtool" check config prometheus.yml \
  && "$promtool" check rules alerts.yaml \
  && "$promtool" test rules alerts_test.yaml ) || die "promtool"

step "Grafana provisioning and dashboard, collector configuration"
"$venv/bin/python" "$infra/check_files.py" grafana "$infra/grafana" || die "Grafana files"
"$venv/bin/python" "$infra/check_files.py" otel "$infra/otel/collector.yaml" || die "collector.yaml"

step "container image from $bin"
[ -f "$bin" ] || die "no release binary at $bin: build it with \`cargo xtask dist\` (or pass its path / STEAD_DIST_BIN)"
tag="localhost/stead:check-$$"
"$infra/container/build.sh" "$bin" "$tag" >/dev/null 2>"$tools/build.log" \
  || { cat "$tools/build.log" >&2; die "podman build (log above)"; }
trap 'podman rmi -f "$tag" >/dev/null 2>&1 || true' EXIT
podman image inspect "$tag" > "$tools/image.json" || die "podman image inspect"
"$venv/bin/python" "$infra/check_files.py" image "$tools/image.json" || die "the image's configuration"
echo "image size: $(podman image inspect --format '{{.Size}}' "$tag") bytes"

echo
echo "infra: all checks passed"

#!/usr/bin/env bash
# Runs every fuzz target for SECS seconds (default 60), one after another, one job each, and
# prints per target the executions and whether it found a crash. Exits non-zero on a finding.
#
#   server/fuzz/run.sh                  # every target, 60 s each
#   SECS=600 server/fuzz/run.sh         # ten minutes each
#   SECS=30 server/fuzz/run.sh topic    # some targets only
#
# The toolchain is stable: cargo-fuzz's nightly flags (-Zsanitizer=address, ...) are allowed by
# RUSTC_BOOTSTRAP=1. Builds go to /var/cache/stead-fuzz/target, the growing corpora to
# /var/cache/stead-fuzz/corpus/<target> (the committed seeds in corpus/<target> are read, never
# written), crashes to artifacts/<target>/ here (ignored by git). Set MAX_LEN to change
# libFuzzer's largest input (default 4096 bytes) and FUZZ_ARGS to pass it more options.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
cache=/var/cache/stead-fuzz
secs="${SECS:-60}"
max_len="${MAX_LEN:-4096}"
export CARGO_TARGET_DIR="$cache/target"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

cd "$here"
if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

# One build for all targets (release, debug assertions and overflow checks on, AddressSanitizer),
# then the binaries run directly: `cargo fuzz run` would rebuild between targets whenever the
# server's sources change meanwhile. NO_BUILD=1 runs what was built last.
if [ -z "${NO_BUILD:-}" ]; then
    cargo fuzz build >&2
fi
bin="$CARGO_TARGET_DIR/$(rustc -vV | sed -n 's/^host: //p')/release"

mkdir -p "$cache/logs"
summary=()
failed=0
for target in "${targets[@]}"; do
    corpus="$cache/corpus/$target"
    log="$cache/logs/$target.log"
    mkdir -p "$corpus" "$here/artifacts/$target"
    echo "== $target: ${secs}s" >&2
    status=0
    dict=()
    # JSON tokens (`\u0000`, `"ts"`, ...) that mutations alone take long to write.
    if [ "$target" != topic ]; then
        dict=(-dict="$here/json.dict")
    fi
    # The first corpus directory is the one libFuzzer writes to; the seeds come second.
    "$bin/$target" -artifact_prefix="$here/artifacts/$target/" \
        -max_total_time="$secs" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 "${dict[@]}" ${FUZZ_ARGS:-} "$corpus" "$here/corpus/$target" >"$log" 2>&1 ||
        status=$?
    runs="$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -1)"
    if [ -z "$runs" ]; then
        runs="$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -1)"
    fi
    if [ -z "$runs" ]; then
        runs="$(sed -n 's/^#\([0-9]*\)[[:space:]].*/\1/p' "$log" | tail -1)"
    fi
    cov="$(sed -n 's/^#[0-9]*[[:space:]].*cov: \([0-9]*\).*/\1/p' "$log" | tail -1)"
    size="$(find "$corpus" -type f | wc -l)"
    artifact="$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)"
    if [ "$status" -eq 0 ] && [ -z "$artifact" ]; then
        found="no crash"
    else
        failed=1
        kind="$(grep -m1 -oE 'ERROR: (libFuzzer|AddressSanitizer): [a-z-]+|panicked at [^ ]+' "$log" || true)"
        found="FOUND (${kind:-exit $status}): ${artifact:-see $log}"
    fi
    summary+=("$(printf '%-18s %12s execs  cov %6s  corpus %5s  %s' \
        "$target" "${runs:-?}" "${cov:-?}" "$size" "$found")")
    echo "${summary[-1]}" >&2
done

echo
echo "fuzzing ${secs}s per target (logs in $cache/logs):"
printf '%s\n' "${summary[@]}"
if [ "$failed" -ne 0 ]; then
    echo
    echo "reproduce: cd server/fuzz && RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR=$CARGO_TARGET_DIR cargo fuzz run <target> <artifact>"
fi
exit "$failed"

#!/usr/bin/env bash
# OTA packages through the blob store: a SIZE_MB (default 100) image uploaded, then downloaded,
# against a real Stead (release build) on PostgreSQL + Redis, with the images in the local
# directory (or in an S3-compatible bucket: set STEAD_BLOB_URL and AWS_* as for the server).
# Prints the server's resident memory before, at its peak during each transfer (sampled every
# 50 ms from /proc), and the throughput of each.
#
#   e2e/bench/ota_blobs.sh [BIN_DIR]            (BIN_DIR default: target/release)
set -euo pipefail

source "$(dirname "$0")/lib.sh" # and common.sh
run_args "$@"
SIZE_MB=${SIZE_MB:-100}

start_server STEAD_OTA_MAX_PACKAGE_BYTES=$((SIZE_MB * 2 * 1024 * 1024)) STEAD_OTA_BYTES_PER_SEC=$((1024 * 1024 * 1024))
create_tenant
JWT=$(login "$TENANT_EMAIL" "$TENANT_PW")
head -c $((SIZE_MB * 1024 * 1024)) /dev/urandom >"$WORK/image.bin"
SHA=$(sha256sum "$WORK/image.bin" | cut -c1-64)

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$SERVER/status"; }
# Runs a command while sampling the server's RSS; prints the peak in MiB.
peak_during() {
  local peak=0 r
  "$@" &
  local job=$!
  while kill -0 "$job" 2>/dev/null; do
    r=$(rss_kb)
    ((r > peak)) && peak=$r
    sleep 0.05
  done
  wait "$job"
  echo $((peak / 1024))
}

before=$(($(rss_kb) / 1024))
t0=$(date +%s.%N)
up_peak=$(peak_during curl -sf -o "$WORK/package.json" -H "authorization: Bearer $JWT" \
  -H 'content-type: application/octet-stream' --data-binary @"$WORK/image.bin" \
  "http://$HTTP/api/v1/ota/packages?kind=firmware&title=bench&version=1&sha256=$SHA")
t1=$(date +%s.%N)
ID=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$WORK/package.json")
down_peak=$(peak_during curl -sf -o "$WORK/back.bin" -H "authorization: Bearer $JWT" \
  "http://$HTTP/api/v1/ota/packages/$ID/image")
t2=$(date +%s.%N)
[[ $(sha256sum "$WORK/back.bin" | cut -c1-64) == "$SHA" ]] || { echo "the download differs" >&2; exit 1; }

python3 - "$SIZE_MB" "$before" "$up_peak" "$down_peak" "$t0" "$t1" "$t2" <<'PY'
import sys
size, before, up, down, t0, t1, t2 = sys.argv[1:]
size = int(size); t0, t1, t2 = float(t0), float(t1), float(t2)
print(f"image: {size} MiB (SHA-256 checked after the round trip)")
print(f"server RSS before: {before} MiB")
print(f"upload:   {t1 - t0:6.2f} s  {size / (t1 - t0):7.1f} MiB/s  peak RSS {up} MiB")
print(f"download: {t2 - t1:6.2f} s  {size / (t2 - t1):7.1f} MiB/s  peak RSS {down} MiB")
PY

#!/usr/bin/env bash
# Reconnect storm of MQTT-basic devices against a real Stead on PostgreSQL + Redis.
#
#   e2e/bench/reconnect_storm.sh [DEVICES] [BIN_DIR]      (defaults: 10000, target/release)
#
# Starts `stead serve` on a fresh PostgreSQL database and Redis prefix, creates a tenant, then
# with `stead-e2e loadgen --mqtt-basic`:
#   wave 1: creates DEVICES devices with MQTT basic credentials and connects them all: every
#           CONNECT is an argon2id verification (bounded to one per core on the server);
#   wave 2: the same devices connect again: every login comes from the server's cache.
# Each wave publishes one QoS 1 message per device and disconnects. Prints, per wave, the
# loadgen's connect line and the server's CPU seconds (from /proc), and how long a REST call took
# while wave 1's verifications ran (the API must keep answering). Needs PostgreSQL (psql) and
# Redis as in the README; STEAD_TEST_PG_URL / STEAD_TEST_REDIS_URL override the defaults.
set -euo pipefail

DEVICES=${1:-10000}
BIN=${2:-${CARGO_TARGET_DIR:-target}/release}
source "$(dirname "$0")/lib.sh"
start_server
create_tenant

# While a wave runs: the slowest of a REST call repeated every 200 ms.
probe() {
  local jwt worst=0 t
  jwt=$(login "$TENANT_EMAIL" "$TENANT_PW")
  while [[ -f $WORK/probing ]]; do
    t=$(curl -s -o /dev/null -w '%{time_total}' -H "authorization: Bearer $jwt" "http://$HTTP/api/v1/devices?per_page=1")
    worst=$(python3 -c "print(max($worst, $t))")
    sleep 0.2
  done
  echo "$worst" >"$WORK/probe"
}

wave() {
  local name=$1; shift
  local before after
  touch "$WORK/probing"; probe & local prober=$!
  before=$(cpu "$SERVER")
  "$BIN/stead-e2e" loadgen --api "http://$HTTP" --email "$TENANT_EMAIL" --password "$TENANT_PW" \
    --mqtt "$MQTT" --qos 1 --rate 1 --duration 1 --connect-concurrency 100 --connect-timeout 60 "$@" \
    >"$WORK/$name.out" 2>"$WORK/$name.err"
  after=$(cpu "$SERVER")
  rm -f "$WORK/probing"; wait "$prober"
  echo "== $name"
  grep -E '^(connected|created) ' "$WORK/$name.err" || true
  grep -E 'connect: |connect failed' "$WORK/$name.out" || true
  echo "server CPU during the wave: $(python3 -c "print(round($after - $before, 1))") s; slowest GET /devices meanwhile: $(cat "$WORK/probe") s"
}

echo "stead at $HTTP / $MQTT, PostgreSQL database $DB, $DEVICES MQTT-basic devices"
# Creating the devices hashes their passwords: measured apart from the connect wave.
create_before=$(cpu "$SERVER")
"$BIN/stead-e2e" loadgen --api "http://$HTTP" --email "$TENANT_EMAIL" --password "$TENANT_PW" \
  --mqtt "$MQTT" --devices "$DEVICES" --mqtt-basic --create-concurrency 8 --write-tokens "$WORK/devices.txt" \
  --qos 1 --rate 1 --duration 1 --connect-concurrency 100 --connect-timeout 60 \
  >"$WORK/wave1.out" 2>"$WORK/wave1.err" || true
echo "== create + wave 1 (argon2id verifications) in one run"
grep -E '^(connected|created) ' "$WORK/wave1.err" || true
grep -E 'connect: |connect failed' "$WORK/wave1.out" || true
echo "server CPU for creation and wave 1 together: $(python3 -c "print(round($(cpu "$SERVER") - $create_before, 1))") s"
wave "wave 2 (cached logins)" --token-file "$WORK/devices.txt"
# Forget every cached login (as a restart would), then a verification wave measured alone.
kill "$SERVER"; wait "$SERVER" 2>/dev/null || true
start_server
wave "wave 3 after a restart (argon2id verifications)" --token-file "$WORK/devices.txt"
wave "wave 4 (cached logins)" --token-file "$WORK/devices.txt"

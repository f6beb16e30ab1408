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
PG=${STEAD_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432}
REDIS=${STEAD_TEST_REDIS_URL:-redis://127.0.0.1:6379}
DB=stead_bench_$RANDOM$RANDOM
WORK=$(mktemp -d)
HTTP=127.0.0.1:18080
MQTT=127.0.0.1:18883
ADMIN_PW=bench-admin-password-1
ulimit -n "$(ulimit -Hn)"

psql "$PG/postgres" -qc "CREATE DATABASE $DB"
cleanup() {
  [[ -n ${SERVER:-} ]] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
  psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

STEAD_DATABASE_URL=$PG/$DB STEAD_REDIS_URL=$REDIS STEAD_REDIS_PREFIX="bench-$DB:" \
STEAD_HTTP_ADDR=$HTTP STEAD_MQTT_ADDR=$MQTT STEAD_DATA_DIR=$WORK/data STEAD_LOG=warn \
STEAD_BOOTSTRAP_ADMIN_EMAIL=admin@bench.local STEAD_BOOTSTRAP_ADMIN_PASSWORD=$ADMIN_PW \
  "$BIN/stead" serve >"$WORK/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 100); do curl -sf "http://$HTTP/readyz" >/dev/null && break; sleep 0.2; done

api() { curl -sf -H 'content-type: application/json' "$@"; }
token=$(api -d "{\"email\":\"admin@bench.local\",\"password\":\"$ADMIN_PW\"}" "http://$HTTP/api/v1/auth/login" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
api -H "authorization: Bearer $token" "http://$HTTP/api/v1/tenants" \
  -d '{"name":"Bench","admin_email":"boss@bench.example","admin_password":"bench-tenant-password"}' >/dev/null

# Server CPU seconds (user + system) so far.
cpu() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.1f", ($14 + $15) / hz}' "/proc/$SERVER/stat"; }

# While a wave runs: the slowest of a REST call repeated every 200 ms.
probe() {
  local jwt worst=0 t
  jwt=$(api -d '{"email":"boss@bench.example","password":"bench-tenant-password"}' "http://$HTTP/api/v1/auth/login" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
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
  before=$(cpu)
  "$BIN/stead-e2e" loadgen --api "http://$HTTP" --email boss@bench.example --password bench-tenant-password \
    --mqtt "$MQTT" --qos 1 --rate 1 --duration 1 --connect-concurrency 100 --connect-timeout 60 "$@" \
    >"$WORK/$name.out" 2>"$WORK/$name.err"
  after=$(cpu)
  rm -f "$WORK/probing"; wait "$prober"
  echo "== $name"
  grep -E '^(connected|created) ' "$WORK/$name.err" || true
  grep -E 'connect: |connect failed' "$WORK/$name.out" || true
  echo "server CPU during the wave: $(python3 -c "print(round($after - $before, 1))") s; slowest GET /devices meanwhile: $(cat "$WORK/probe") s"
}

echo "stead at $HTTP / $MQTT, PostgreSQL database $DB, $DEVICES MQTT-basic devices"
# Creating the devices hashes their passwords: measured apart from the connect wave.
create_before=$(cpu)
"$BIN/stead-e2e" loadgen --api "http://$HTTP" --email boss@bench.example --password bench-tenant-password \
  --mqtt "$MQTT" --devices "$DEVICES" --mqtt-basic --create-concurrency 8 --write-tokens "$WORK/devices.txt" \
  --qos 1 --rate 1 --duration 1 --connect-concurrency 100 --connect-timeout 60 \
  >"$WORK/wave1.out" 2>"$WORK/wave1.err" || true
echo "== create + wave 1 (argon2id verifications) in one run"
grep -E '^(connected|created) ' "$WORK/wave1.err" || true
grep -E 'connect: |connect failed' "$WORK/wave1.out" || true
echo "server CPU for creation and wave 1 together: $(python3 -c "print(round($(cpu) - $create_before, 1))") s"
wave "wave 2 (cached logins)" --token-file "$WORK/devices.txt"
# Forget every cached login (as a restart would), then a verification wave measured alone.
kill "$SERVER"; wait "$SERVER" 2>/dev/null || true
STEAD_DATABASE_URL=$PG/$DB STEAD_REDIS_URL=$REDIS STEAD_REDIS_PREFIX="bench-$DB:" \
STEAD_HTTP_ADDR=$HTTP STEAD_MQTT_ADDR=$MQTT STEAD_DATA_DIR=$WORK/data STEAD_LOG=warn \
  "$BIN/stead" serve >>"$WORK/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 100); do curl -sf "http://$HTTP/readyz" >/dev/null && break; sleep 0.2; done
wave "wave 3 after a restart (argon2id verifications)" --token-file "$WORK/devices.txt"
wave "wave 4 (cached logins)" --token-file "$WORK/devices.txt"

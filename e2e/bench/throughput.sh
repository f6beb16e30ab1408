#!/usr/bin/env bash
# Telemetry throughput and PUBACK latency against a real Stead on PostgreSQL + Redis.
#
#   e2e/bench/throughput.sh [BIN_DIR] [-- LOADGEN ARGS...]      (BIN_DIR default: target/release)
#
# Starts `stead serve` (release) on a fresh PostgreSQL database and Redis prefix, creates a
# tenant and 1,000 devices, then runs one `stead-e2e loadgen` per load given in LOADS (a space-
# separated list of per-device rates, `0` meaning flat out; default "0"), each for DURATION
# seconds (default 60), at QoS 1 with --verify. After each run it prints the loadgen's summary
# and the CPU seconds spent meanwhile by the server, PostgreSQL (all its processes) and Redis.
#
#   LOADS="10 30 50 0" DURATION=30 e2e/bench/throughput.sh
#
# Extra loadgen arguments after `--` (for example `--inflight 4` or `--v5`) apply to every run.
# PROBE=1 also measures publish → live-view latency during each run: a probe device publishes
# ten messages a second while e2e/python/live_latency.py watches its live stream (needs paho-mqtt
# and requests, as in e2e/python/requirements.txt). DEVICES (default 1000) sets the fleet size.
# RESTART=1 restarts the server after creating the devices, so that the first run connects to
# a freshly started node (its first wave: no login cached).
# STEAD_TEST_PG_URL / STEAD_TEST_REDIS_URL override the service addresses.
set -euo pipefail

source "$(dirname "$0")/lib.sh" # and common.sh
run_args "$@"
start_server
create_tenant

# From the server's histograms: "batch-rows sum, batch count, commit-seconds sum, publish-stored sum and count".
batches() {
  curl -sf "http://$HTTP/metrics" | awk '
    /^stead_telemetry_batch_rows_sum/ {rs=$2} /^stead_telemetry_batch_rows_count/ {rc=$2}
    /^stead_telemetry_commit_seconds_sum/ {cs=$2}
    /^stead_mqtt_publish_stored_seconds_sum/ {ps=$2} /^stead_mqtt_publish_stored_seconds_count/ {pc=$2}
    END {print rs+0, rc+0, cs+0, ps+0, pc+0}'
}

loadgen() {
  "$BIN/stead-e2e" loadgen --api "http://$HTTP" --email "$TENANT_EMAIL" --password "$TENANT_PW" \
    --mqtt "$MQTT" --qos 1 --connect-concurrency 100 "$@"
}

echo "stead at $HTTP / $MQTT, PostgreSQL database $DB, $DEVICES devices, loads: $LOADS (per-device msg/s, 0 = flat out)"
loadgen --devices "$DEVICES" --write-tokens "$WORK/tokens.txt" --rate 1 --duration 1 >/dev/null 2>"$WORK/create.err"
grep -E '^created ' "$WORK/create.err" || true
if [[ -n ${RESTART:-} ]]; then
  # The first run is then a freshly started node's first wave: no login cached, no warm pool.
  kill -TERM "$SERVER" && wait "$SERVER" || true
  start_server
  echo "restarted stead: the first run is a fresh node's first wave"
fi

if [[ -n ${PROBE:-} ]]; then
  jwt=$(login "$TENANT_EMAIL" "$TENANT_PW")
  read -r probe_id probe_token < <(api -H "authorization: Bearer $jwt" "http://$HTTP/api/v1/devices" -d '{"name":"live-probe"}' |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["device"]["id"], d["access_token"])')
fi

for rate in $LOADS; do
  if [[ -n ${PROBE:-} ]]; then
    # Starts once the fleet is connected and publishing; ends before the run does.
    (sleep 5 && python3 "$(dirname "$0")/../python/live_latency.py" --api "http://$HTTP" --mqtt-port "${MQTT##*:}" \
      --access-token="$jwt" --device-id="$probe_id" --device-token="$probe_token" \
      --count $(( (DURATION - 10) * 10 )) --interval 0.1 >"$WORK/probe.out" 2>&1) &
    prober=$!
  fi
  pg=$(procs postgres) rd=$(procs redis-server)
  s0=$(cpu "$SERVER") p0=$(cpu $pg) r0=$(cpu $rd) b0=$(batches)
  loadgen --token-file "$WORK/tokens.txt" --rate "$rate" --duration "$DURATION" --verify "${EXTRA[@]}" \
    >"$WORK/run.out" 2>"$WORK/run.err" || echo "(loadgen exited with an error; see below)"
  s1=$(cpu "$SERVER") p1=$(cpu $pg) r1=$(cpu $rd) b1=$(batches)
  echo "== per-device rate $rate (0 = flat out), ${DURATION} s ${EXTRA[*]}"
  grep -vE '^\{' "$WORK/run.out" | tail -n 12
  grep -E 'error|failed' "$WORK/run.err" | tail -n 5 || true
  python3 - "$b0" "$b1" <<'PY'
import sys
(r0, n0, c0, s0, p0), (r1, n1, c1, s1, p1) = (map(float, a.split()) for a in sys.argv[1:3])
n = max(n1 - n0, 1)
print(f"telemetry batches: {n1 - n0:.0f}, {(r1 - r0) / n:.1f} rows and {(c1 - c0) / n * 1000:.2f} ms to commit on average;"
      f" QoS 1 publish handed to the session until stored: {(s1 - s0) / max(p1 - p0, 1) * 1000:.2f} ms on average")
PY
  if [[ -n ${PROBE:-} ]]; then
    wait "$prober" || true
    echo "publish → live view (probe device, ms): $(tail -n 1 "$WORK/probe.out")"
  fi
  echo "server memory: $(awk '/^VmRSS|^VmHWM/ {printf "%s %d MB  ", $1, $2 / 1024}' "/proc/$SERVER/status")"
  echo "CPU seconds during the run: stead $(python3 -c "print(round($s1 - $s0, 1))"), postgres $(python3 -c "print(round($p1 - $p0, 1))"), redis $(python3 -c "print(round($r1 - $r0, 1))")"
done

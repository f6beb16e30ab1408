#!/usr/bin/env bash
# A soak: a steady load for a long time against a real Stead on PostgreSQL + Redis, sampling
# the server every minute, to show that memory stays flat and errors do not grow.
#
#   e2e/bench/soak.sh [BIN_DIR]            (BIN_DIR default: target/release)
#
# DEVICES (default 10000) devices publish RATE (default 1) QoS 1 messages a second each for
# MINUTES (default 60) minutes: 10,000 msg/s by default. Every SAMPLE seconds (default 60) it
# prints one line: minutes elapsed, the server's RSS (MB), its open files, its threads, the
# telemetry and timeline queue depths, rows stored so far, MQTT sessions, messages refused and
# connects refused so far (from /metrics), and the CPU seconds of stead, PostgreSQL and Redis in
# the interval. At the end it prints the load generator's summary (acknowledged, lost,
# PUBACK latency) and the first and last samples side by side.
# STEAD_TEST_PG_URL / STEAD_TEST_REDIS_URL override the service addresses.
set -euo pipefail

# Before run_args, whose default fleet is 1,000 devices.
DEVICES=${DEVICES:-10000}
source "$(dirname "$0")/lib.sh" # and common.sh
run_args "$@"
RATE=${RATE:-1}
MINUTES=${MINUTES:-60}
SAMPLE=${SAMPLE:-60}
start_server
create_tenant

metric() { # the sum of a metric's samples (all label sets), or 0
  awk -v m="$1" '$1 == m || index($1, m "{") == 1 {s += $2} END {print s + 0}' "$WORK/metrics"
}

sample() {
  curl -sf "http://$HTTP/metrics" >"$WORK/metrics" || : >"$WORK/metrics"
  local rss files threads
  rss=$(awk '/^VmRSS/ {print int($2 / 1024)}' "/proc/$SERVER/status")
  threads=$(awk '/^Threads/ {print $2}' "/proc/$SERVER/status")
  files=$(ls "/proc/$SERVER/fd" | wc -l)
  printf '%6s %7s %6s %7s %6s %6s %11s %8s %9s %9s %6s %6s %6s\n' \
    "$1" "$rss" "$files" "$threads" \
    "$(metric stead_telemetry_queue_depth)" "$(metric stead_timeline_queue_depth)" \
    "$(metric stead_telemetry_rows_total)" "$(metric stead_mqtt_sessions)" \
    "$(metric stead_mqtt_messages_rejected_total)" "$(metric stead_mqtt_connect_refused_total)" \
    "$2" "$3" "$4"
}

echo "stead at $HTTP / $MQTT, PostgreSQL database $DB: $DEVICES devices × $RATE msg/s for $MINUTES min, QoS 1"
"$BIN/stead-e2e" loadgen --api "http://$HTTP" --email "$TENANT_EMAIL" --password "$TENANT_PW" \
  --mqtt "$MQTT" --devices "$DEVICES" --write-tokens "$WORK/tokens.txt" --rate 1 --duration 1 \
  --connect-concurrency 100 >/dev/null 2>"$WORK/create.err"
grep -E '^created ' "$WORK/create.err" || true

"$BIN/stead-e2e" loadgen --api "http://$HTTP" --email "$TENANT_EMAIL" --password "$TENANT_PW" \
  --mqtt "$MQTT" --token-file "$WORK/tokens.txt" --qos 1 --rate "$RATE" \
  --duration $((MINUTES * 60)) --connect-concurrency 100 --verify "${EXTRA[@]}" \
  >"$WORK/run.out" 2>"$WORK/run.err" &
loader=$!

printf '%6s %7s %6s %7s %6s %6s %11s %8s %9s %9s %6s %6s %6s\n' \
  min rss_mb files threads tqueue tlqueue rows sessions refused conn_ref cpu_s cpu_pg cpu_rd
s0=$(cpu "$SERVER")
cpu_since "$WORK/pg.cpu" postgres >/dev/null
cpu_since "$WORK/redis.cpu" redis-server >/dev/null
sample 0 0 0 0 | tee "$WORK/samples"
started=$(date +%s)
while kill -0 "$loader" 2>/dev/null; do
  sleep "$SAMPLE"
  kill -0 "$loader" 2>/dev/null || break
  s1=$(cpu "$SERVER")
  sample "$(python3 -c "print(round(($(date +%s) - $started) / 60, 1))")" \
    "$(python3 -c "print(round($s1 - $s0, 1))")" "$(cpu_since "$WORK/pg.cpu" postgres)" \
    "$(cpu_since "$WORK/redis.cpu" redis-server)" | tee -a "$WORK/samples"
  s0=$s1
done
wait "$loader" || echo "(loadgen exited with an error; see below)"
echo "== load generator"
grep -vE '^\{' "$WORK/run.out" | tail -n 12
grep -E 'error|failed' "$WORK/run.err" | tail -n 5 || true
echo "== first and last samples"
sed -n '2p;$p' "$WORK/samples"

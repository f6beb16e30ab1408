#!/usr/bin/env bash
# Integrations under load, against a real Stead on PostgreSQL + Redis (release build):
#
#   e2e/bench/webhooks.sh [BIN_DIR]            (BIN_DIR default: target/release)
#
# 1. Ingest with nothing subscribed, then with a webhook endpoint and the NATS JetStream sink
#    subscribed to telemetry, then with nothing again (same server, same fleet, same load): acked
#    msg/s, PUBACK p50/p99 and the server's CPU per message. RATE (per-device msg/s, default 10)
#    × DEVICES (default 1000) for DURATION seconds (default 30) each.
# 2. Webhook throughput: every telemetry event of step 1 replayed at once to a local receiver
#    (`stead-e2e webhook-sink`, which verifies every signature), events/s until all arrived; then
#    to a receiver that takes 500 ms per answer (max_concurrency 32) for 20 s.
# 3. The receiver down for DOWN seconds (default 60) under the same ingest: the server's RSS
#    sampled every 10 s (the backlog is rows, not memory), then the receiver back and the time
#    until the backlog drained.
# The NATS server is one of the script's own (nats-server on a free port, a temporary store).
set -euo pipefail

source "$(dirname "$0")/lib.sh" # and common.sh
run_args "$@"
RATE=${RATE:-10}
DURATION=${DURATION:-30}
DOWN=${DOWN:-60}

NATS_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
nats-server -a 127.0.0.1 -p "$NATS_PORT" -js -sd "$WORK/nats" >"$WORK/nats.log" 2>&1 &
NATS=$!
SINK=
cleanup_more() {
  kill "$NATS" 2>/dev/null || true
  [[ -n $SINK ]] && kill "$SINK" 2>/dev/null || true
  bench_cleanup
}
trap cleanup_more EXIT

start_server STEAD_WEBHOOK_ALLOW_PRIVATE_ADDRESSES=true STEAD_NATS_URL="nats://127.0.0.1:$NATS_PORT" \
  STEAD_WEBHOOK_RETRY_SCHEDULE=1s,2s,5s,10s,10s,10s,10s,10s,10s,10s,10s,10s,10s,10s,10s,10s,10s,10s,10s,10s \
  STEAD_EVENT_RETENTION_DAYS=1
create_tenant
ADMIN_JWT=$(login admin@bench.local "$ADMIN_PW")
JWT=$(login "$TENANT_EMAIL" "$TENANT_PW")
TENANT_ID=$(api -H "authorization: Bearer $JWT" "http://$HTTP/api/v1/me" | python3 -c 'import json,sys; print(json.load(sys.stdin)["tenant"]["id"])')
auth() { api -H "authorization: Bearer $JWT" "$@"; }

loadgen() {
  "$BIN/stead-e2e" loadgen --api "http://$HTTP" --email "$TENANT_EMAIL" --password "$TENANT_PW" \
    --mqtt "$MQTT" --qos 1 --connect-concurrency 100 "$@"
}
loadgen --devices "$DEVICES" --write-tokens "$WORK/tokens.txt" --rate 1 --duration 1 >/dev/null 2>"$WORK/create.err"

# One ingest run: prints "acked/s p50 p99 cpu_s µs/msg".
ingest() {
  local s0 s1
  s0=$(cpu "$SERVER")
  loadgen --token-file "$WORK/tokens.txt" --rate "$RATE" --duration "$DURATION" >"$WORK/run.out" 2>"$WORK/run.err" ||
    echo "(loadgen exited with an error)" >&2
  s1=$(cpu "$SERVER")
  tail -n 1 "$WORK/run.out" | python3 -c "
import json, sys
r = json.load(sys.stdin); cpu = $s1 - $s0
print(f\"{r['acked_per_s']:.0f} acked msg/s, PUBACK p50 {r['puback_ms']['p50']:.1f} ms p99 {r['puback_ms']['p99']:.1f} ms, stead CPU {cpu:.1f} s = {cpu / max(r['acked'], 1) * 1e6:.1f} µs/msg\")"
  rss
}
rss() { echo "   stead memory: $(awk '/^VmRSS|^VmHWM/ {printf "%s %d MB  ", $1, $2 / 1024}' "/proc/$SERVER/status")"; }

stats() { curl -sf "http://127.0.0.1:$SINK_PORT/stats"; }
start_sink() {
  "$BIN/stead-e2e" webhook-sink --secret "$SECRET" --port "${SINK_PORT:-0}" "$@" >"$WORK/sink.out" 2>&1 &
  SINK=$!
  for _ in $(seq 50); do grep -q '^ready' "$WORK/sink.out" 2>/dev/null && break; sleep 0.1; done
  SINK_PORT=$(awk '/^ready/ {print $2}' "$WORK/sink.out")
}
stop_sink() { kill "$SINK"; wait "$SINK" 2>/dev/null || true; SINK=; }

echo "stead at $HTTP, $DEVICES devices × $RATE msg/s, ${DURATION} s per run, NATS on $NATS_PORT"
echo "== 1. ingest: nothing subscribed"
ingest

SINK_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
CREATED=$(auth "http://$HTTP/api/v1/webhooks" \
  -d "{\"url\":\"http://127.0.0.1:$SINK_PORT/hook\",\"event_types\":[\"device.telemetry\"],\"max_concurrency\":32}")
SECRET=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["secret"])' "$CREATED")
ENDPOINT=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["endpoint"]["id"])' "$CREATED")
start_sink
api -X PUT -H "authorization: Bearer $ADMIN_JWT" "http://$HTTP/api/v1/tenants/$TENANT_ID/nats-sink" \
  -d '{"enabled":true,"event_types":["device.telemetry"]}' >/dev/null
sleep 3 # every node's subscription view refreshes within 2 s
SINCE=$(python3 -c 'import datetime; print(datetime.datetime.now(datetime.timezone.utc).isoformat())')
echo "== 1. ingest: a webhook endpoint and the NATS sink subscribed to telemetry"
ingest
t0=$(date +%s.%N)
while :; do
  pending=$(auth "http://$HTTP/api/v1/webhooks/$ENDPOINT" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pending"])')
  nats=$(auth "http://$HTTP/api/v1/integrations/nats" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["pending"], d["delivered"])')
  [[ $pending == 0 && ${nats%% *} == 0 ]] && break
  sleep 0.5
done
echo "   after the run: webhook and NATS backlogs empty $(python3 -c "print(round($(date +%s.%N) - $t0, 1))") s later; sink $(stats); NATS delivered ${nats##* }"
auth -X PATCH "http://$HTTP/api/v1/webhooks/$ENDPOINT" -d '{"enabled":false}' >/dev/null
api -X PUT -H "authorization: Bearer $ADMIN_JWT" "http://$HTTP/api/v1/tenants/$TENANT_ID/nats-sink" -d '{"enabled":false}' >/dev/null
sleep 3
echo "== 1. ingest: nothing subscribed again"
ingest

echo "== 2. webhook throughput: the run's telemetry events replayed at once, local receiver"
auth -X PATCH "http://$HTTP/api/v1/webhooks/$ENDPOINT" -d '{"enabled":true}' >/dev/null
stop_sink
start_sink
n=$(auth "http://$HTTP/api/v1/webhooks/$ENDPOINT/replay" -d "{\"since\":\"$SINCE\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["queued"])')
t0=$(date +%s.%N)
until [[ $(stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["verified"])') -ge $n ]]; do sleep 0.2; done
python3 -c "t=$(date +%s.%N)-$t0; print(f'   {$n} events (each a telemetry batch) in {t:.1f} s: {$n/t:.0f} events/s; sink: ' + '$(stats)')"
rss

echo "== 2. a receiver that takes 500 ms per answer, max_concurrency 32, 20 s"
stop_sink
start_sink --delay-ms 500
auth "http://$HTTP/api/v1/webhooks/$ENDPOINT/replay" -d "{\"since\":\"$SINCE\"}" >/dev/null
sleep 20
python3 -c "import json; s=json.loads('$(stats)'); print(f\"   {s['verified']} deliveries in 20 s: {s['verified']/20:.1f}/s (32 at a time × 2/s = 64/s at most)\")"
rss
stop_sink
# Drop what is left of that replay so that step 3 starts from an empty backlog.
psql "$PG/$DB" -qc "DELETE FROM event_deliveries WHERE status = 'pending'"

echo "== 3. the receiver down for ${DOWN} s under the same ingest"
RUN=$DURATION
DURATION=$DOWN
( for _ in $(seq $((DOWN / 10))); do
    sleep 10
    echo "   $(date +%T) stead RSS $(awk '/^VmRSS/ {printf "%d MB", $2 / 1024}' "/proc/$SERVER/status"), deliveries pending $(psql "$PG/$DB" -tAc "SELECT count(*) FROM event_deliveries WHERE status = 'pending'")"
  done ) &
sampler=$!
ingest
wait $sampler || true
DURATION=$RUN
start_sink
t0=$(date +%s.%N)
while [[ $(psql "$PG/$DB" -tAc "SELECT count(*) FROM event_deliveries WHERE status = 'pending'") != 0 ]]; do sleep 0.5; done
echo "   receiver back: backlog drained in $(python3 -c "print(round($(date +%s.%N) - $t0, 1))") s; sink $(stats); stead RSS $(awk '/^VmRSS/ {printf "%d MB", $2 / 1024}' "/proc/$SERVER/status")"

#!/usr/bin/env bash
# 10,000 devices going silent at once, against a real Stead on PostgreSQL + Redis (release build):
#
#   e2e/bench/silent.sh [BIN_DIR]            (BIN_DIR default: target/release)
#
# DEVICES (default 10000) devices send for a few seconds and stop, all at the same moment. A
# no-data rule (SILENT seconds without telemetry, default 20) on their profile raises an alarm for
# each, swept by the worker; a notification rule groups the raised alarms within 30 s. Reports the
# time from the silence's start until every no-data alarm exists, and how many notifications the
# admin got for them (grouping: one, not one per device).
set -euo pipefail

source "$(dirname "$0")/lib.sh" # and common.sh
DEVICES=${DEVICES:-10000}
run_args "$@"
SILENT=${SILENT:-20}

start_server
create_tenant
JWT=$(login "$TENANT_EMAIL" "$TENANT_PW")
auth() { api -H "authorization: Bearer $JWT" "$@"; }
loadgen() {
  "$BIN/stead-e2e" loadgen --api "http://$HTTP" --email "$TENANT_EMAIL" --password "$TENANT_PW" \
    --mqtt "$MQTT" --qos 1 --connect-concurrency 200 "$@"
}
echo "stead at $HTTP, $DEVICES devices, silent after ${SILENT} s"
t0=$(date +%s.%N)
loadgen --devices "$DEVICES" --write-tokens "$WORK/tokens.txt" --rate 1 --duration 1 >/dev/null 2>"$WORK/create.err"
echo "   $DEVICES devices created in $(python3 -c "print(round($(date +%s.%N) - $t0, 1))") s"
PROFILE=$(auth "http://$HTTP/api/v1/profiles" | python3 -c 'import json,sys; print([p["id"] for p in json.load(sys.stdin) if p["is_default"]][0])')
ME=$(auth "http://$HTTP/api/v1/me" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
auth "http://$HTTP/api/v1/alarm-rules" \
  -d "{\"alarm_type\":\"silent\",\"profile_id\":\"$PROFILE\",\"create\":{\"major\":{\"kind\":\"no_data\",\"secs\":$SILENT}}}" >/dev/null
auth "http://$HTTP/api/v1/notification-rules" \
  -d "{\"name\":\"silent devices\",\"channels\":[\"in_app\"],\"changes\":[\"raised\"],\"recipients\":{\"users\":[\"$ME\"]},\"group_window_secs\":30}" >/dev/null
# Every device sends for 5 s, then all stop at once.
loadgen --token-file "$WORK/tokens.txt" --rate 1 --duration 5 >"$WORK/run.out" 2>"$WORK/run.err" || true
silent_from=$(date +%s.%N)
echo "   all devices silent from $(date +%T)"
while :; do
  n=$(auth "http://$HTTP/api/v1/alarms/counts" | python3 -c 'import json,sys; print(json.load(sys.stdin)["major"])')
  [[ $n -ge $DEVICES ]] && break
  sleep 1
done
took=$(python3 -c "print(round($(date +%s.%N) - $silent_from, 1))")
echo "   all $DEVICES no-data alarms exist ${took} s after the silence began (rule: ${SILENT} s without data; sweep every 5 s)"
sleep 35 # the grouping window passes
auth "http://$HTTP/api/v1/notifications?per_page=200" | python3 -c "
import json, sys
p = json.load(sys.stdin)
print(f\"   notifications for the admin: {p['total']} ({'; '.join(n['title'] for n in p['items'][:3])})\")"
echo "   stead RSS $(awk '/^VmRSS/ {printf "%d MB", $2 / 1024}' "/proc/$SERVER/status")"

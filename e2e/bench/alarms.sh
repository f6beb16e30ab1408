#!/usr/bin/env bash
# Alarm rules under load, against a real Stead on PostgreSQL + Redis (release build):
#
#   e2e/bench/alarms.sh [BIN_DIR]            (BIN_DIR default: target/release)
#
# 1. Ingest with no alarm rules, then with three rules on the devices' profile, then with none
#    again (same server, same fleet, same load): acked msg/s, PUBACK p50/p99 and the server's CPU
#    per message. RATE (per-device msg/s, default 10) × DEVICES (default 1000) for DURATION
#    seconds (default 30) each. The rules read every message: a duration rule whose expression
#    always holds (its progress is written to Redis on every message, the worst case), an
#    immediate one and a repeating one that never fire.
# 2. Publish → alarm visible through the API, under the same load with the rules in place: a
#    probe device publishes a crossing value (mosquitto_pub, QoS 1) and polls GET /alarms until
#    the alarm is there, PROBES times (default 50), clearing it between; p50 / p99 / max.
set -euo pipefail

source "$(dirname "$0")/lib.sh" # and common.sh
run_args "$@"
RATE=${RATE:-10}
DURATION=${DURATION:-30}
PROBES=${PROBES:-50}

start_server
create_tenant
JWT=$(login "$TENANT_EMAIL" "$TENANT_PW")
auth() { api -H "authorization: Bearer $JWT" "$@"; }

loadgen() {
  "$BIN/stead-e2e" loadgen --api "http://$HTTP" --email "$TENANT_EMAIL" --password "$TENANT_PW" \
    --mqtt "$MQTT" --qos 1 --connect-concurrency 100 "$@"
}
loadgen --devices "$DEVICES" --write-tokens "$WORK/tokens.txt" --rate 1 --duration 1 >/dev/null 2>"$WORK/create.err"
PROFILE=$(auth "http://$HTTP/api/v1/profiles" | python3 -c 'import json,sys; print([p["id"] for p in json.load(sys.stdin) if p["is_default"]][0])')

# One ingest run: prints acked/s, PUBACK p50/p99 and CPU per message.
ingest() {
  local s0 s1
  s0=$(cpu "$SERVER")
  loadgen --token-file "$WORK/tokens.txt" --rate "$RATE" --duration "$DURATION" >"$WORK/run.out" 2>"$WORK/run.err" ||
    echo "(loadgen exited with an error)" >&2
  s1=$(cpu "$SERVER")
  tail -n 1 "$WORK/run.out" | python3 -c "
import json, sys
r = json.load(sys.stdin); cpu = $s1 - $s0
print(f\"   {r['acked_per_s']:.0f} acked msg/s, PUBACK p50 {r['puback_ms']['p50']:.1f} ms p99 {r['puback_ms']['p99']:.1f} ms, stead CPU {cpu:.1f} s = {cpu / max(r['acked'], 1) * 1e6:.1f} µs/msg\")"
  echo "   skipped by a full engine queue: $(curl -sf "http://$HTTP/metrics" | awk '/^stead_alarm_rows_skipped_total/ {print $2}')"
}

rule() { auth "http://$HTTP/api/v1/alarm-rules" -d "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'; }

echo "stead at $HTTP, $DEVICES devices × $RATE msg/s, ${DURATION} s per run"
echo "== 1. ingest: no alarm rules"
ingest

R1=$(rule "{\"alarm_type\":\"humid_day\",\"profile_id\":\"$PROFILE\",\"create\":{\"minor\":{\"kind\":\"duration\",\"secs\":86400,\"expr\":{\"test\":{\"key\":\"humidity\",\"op\":\">\",\"value\":-1000}}}}}")
R2=$(rule "{\"alarm_type\":\"overheat\",\"profile_id\":\"$PROFILE\",\"create\":{\"critical\":{\"expr\":{\"test\":{\"key\":\"temperature\",\"op\":\">\",\"value\":90}}},\"major\":{\"expr\":{\"test\":{\"key\":\"temperature\",\"op\":\">\",\"value\":80}}}},\"clear\":{\"expr\":{\"test\":{\"key\":\"temperature\",\"op\":\"<\",\"value\":75}}}}")
R3=$(rule "{\"alarm_type\":\"pressure_drop\",\"profile_id\":\"$PROFILE\",\"create\":{\"warning\":{\"kind\":\"repeating\",\"count\":5,\"expr\":{\"any\":[{\"test\":{\"key\":\"pressure\",\"op\":\"<\",\"value\":500}},{\"test\":{\"key\":\"pressure\",\"op\":\">\",\"value\":2000}}]}}}}")
sleep 3 # every node's rule cache refreshes within 2 s
echo "== 1. ingest: three rules on the profile"
ingest
for r in $R1 $R2 $R3; do auth -X DELETE "http://$HTTP/api/v1/alarm-rules/$r" >/dev/null; done
sleep 3
echo "== 1. ingest: no alarm rules again"
ingest

echo "== 2. publish → alarm visible, $PROBES probes, under the same load with the three rules"
R1=$(rule "{\"alarm_type\":\"humid_day\",\"profile_id\":\"$PROFILE\",\"create\":{\"minor\":{\"kind\":\"duration\",\"secs\":86400,\"expr\":{\"test\":{\"key\":\"humidity\",\"op\":\">\",\"value\":-1000}}}}}")
PROBE=$(auth "http://$HTTP/api/v1/devices" -d '{"name":"probe"}')
PROBE_ID=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["device"]["id"])' "$PROBE")
PROBE_TOKEN=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["access_token"])' "$PROBE")
rule "{\"alarm_type\":\"probe\",\"device_id\":\"$PROBE_ID\",\"create\":{\"critical\":{\"expr\":{\"test\":{\"key\":\"probe\",\"op\":\">\",\"value\":0}}}}}" >/dev/null
sleep 3
loadgen --token-file "$WORK/tokens.txt" --rate "$RATE" --duration $((PROBES / 2 + 20)) >"$WORK/probe-load.out" 2>&1 &
LOAD=$!
sleep 5
python3 - "$HTTP" "$JWT" "$PROBE_ID" "$PROBE_TOKEN" "${MQTT##*:}" "$PROBES" <<'PY'
import json, subprocess, sys, time, urllib.request
http, jwt, device, token, port, probes = sys.argv[1:7]
def get(path):
    req = urllib.request.Request(f"http://{http}{path}", headers={"authorization": f"Bearer {jwt}"})
    return json.load(urllib.request.urlopen(req))
def post(path, body):
    req = urllib.request.Request(f"http://{http}{path}", data=json.dumps(body).encode(),
        headers={"authorization": f"Bearer {jwt}", "content-type": "application/json"})
    return json.load(urllib.request.urlopen(req))
times = []
for i in range(int(probes)):
    t0 = time.monotonic()
    subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", port, "-u", token, "-q", "1",
                    "-t", "v1/devices/me/telemetry", "-m", json.dumps({"probe": i + 1})], check=True)
    while True:
        items = get(f"/api/v1/alarms?device={device}&status=active")["items"]
        if items:
            break
        time.sleep(0.005)
    times.append((time.monotonic() - t0) * 1000)
    post(f"/api/v1/alarms/{items[0]['id']}/actions", {"action": "clear"})
    time.sleep(0.2)
times.sort()
p = lambda q: times[min(len(times) - 1, int(q * len(times)))]
print(f"   publish → alarm in the API: p50 {p(0.5):.0f} ms, p99 {p(0.99):.0f} ms, max {times[-1]:.0f} ms "
      f"({len(times)} probes; includes starting mosquitto_pub and the API polling every 5 ms)")
PY
wait $LOAD || true
tail -n 1 "$WORK/probe-load.out" | python3 -c "
import json, sys
r = json.load(sys.stdin)
print(f\"   load meanwhile: {r['acked_per_s']:.0f} acked msg/s, PUBACK p99 {r['puback_ms']['p99']:.1f} ms\")" || true

#!/usr/bin/env bash
# A firmware update of a whole fleet, against a real Stead on PostgreSQL + Redis (release build):
#
#   e2e/bench/ota_fleet.sh [BIN_DIR]            (BIN_DIR default: target/release)
#
# Creates DEVICES (default 1000) devices, uploads a SIZE_KB (default 1024) random firmware
# package, connects every device with `stead-e2e simulate-ota` (all succeeding: each downloads in
# CHUNK-byte chunks over MQTT, verifies the SHA-256, reports DOWNLOADED … UPDATING, reboots and
# reports UPDATED, telemetry every TELEMETRY_MS), then assigns the package to every device through
# the API, ASSIGN_CONCURRENCY (default 32) requests at once (or, with VIA=campaign, through one
# campaign over their profile, every device at once, notified by the worker's engine). Prints how
# long the assignments took, the time from the first assignment (and from the first target a device saw) until the last
# UPDATED was acknowledged, the server's CPU seconds over that span and its peak resident memory,
# and how many devices the API then shows on the new version. The server's delivery bandwidth
# bound stays at its default unless BYTES_PER_SEC is set; TIMEOUT (default 900 s) bounds the run.
# E2E_BIN overrides where `stead-e2e` is (default: BIN_DIR/stead-e2e).
set -euo pipefail

source "$(dirname "$0")/lib.sh" # and common.sh
run_args "$@"
SIZE_KB=${SIZE_KB:-1024}
CHUNK=${CHUNK:-65536}
ASSIGN_CONCURRENCY=${ASSIGN_CONCURRENCY:-32}
TELEMETRY_MS=${TELEMETRY_MS:-1000}
TIMEOUT=${TIMEOUT:-900}
E2E=${E2E_BIN:-$BIN/stead-e2e}

server_env=()
[[ -n ${BYTES_PER_SEC:-} ]] && server_env+=("STEAD_OTA_BYTES_PER_SEC=$BYTES_PER_SEC")
start_server "${server_env[@]}"
create_tenant
JWT=$(login "$TENANT_EMAIL" "$TENANT_PW")

"$E2E" loadgen --api "http://$HTTP" --email "$TENANT_EMAIL" --password "$TENANT_PW" \
  --mqtt "$MQTT" --devices "$DEVICES" --write-tokens "$WORK/tokens.txt" --create-concurrency 16 \
  --rate 1 --duration 1 >/dev/null 2>"$WORK/create.err" || { tail -n 5 "$WORK/create.err" >&2; exit 1; }
head -c $((SIZE_KB * 1024)) /dev/urandom >"$WORK/image.bin"
SHA=$(sha256sum "$WORK/image.bin" | cut -c1-64)
curl -sf -o "$WORK/package.json" -H "authorization: Bearer $JWT" \
  -H 'content-type: application/octet-stream' --data-binary @"$WORK/image.bin" \
  "http://$HTTP/api/v1/ota/packages?kind=firmware&title=bench-fw&version=2.0.0&sha256=$SHA"
PACKAGE=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$WORK/package.json")

echo "stead at $HTTP / $MQTT, $DEVICES devices, a $SIZE_KB KiB package in $CHUNK-byte chunks, delivery bound ${BYTES_PER_SEC:-default}"
"$E2E" simulate-ota --mqtt "$MQTT" --token-file "$WORK/tokens.txt" --title bench-fw --version 1.0.0 \
  --chunk-size "$CHUNK" --telemetry-ms "$TELEMETRY_MS" --exit-when-done --duration "$TIMEOUT" \
  >"$WORK/sim.out" 2>"$WORK/sim.err" &
SIM=$!
for _ in $(seq 600); do
  grep -q '^all .* devices connected' "$WORK/sim.err" && break
  kill -0 "$SIM" 2>/dev/null || { echo "simulate-ota ended early:" >&2; tail -n 20 "$WORK/sim.err" >&2; exit 1; }
  sleep 0.2
done
grep '^all .* devices connected' "$WORK/sim.err" || { echo "not every device connected:" >&2; tail -n 5 "$WORK/sim.err" >&2; exit 1; }
sleep 2 # every device's IDLE report (what it runs) is stored

cpu0=$(cpu "$SERVER")
rss0=$(awk '/^VmRSS/ {print $2}' "/proc/$SERVER/status")
python3 - "$HTTP" "$JWT" "$PACKAGE" "$WORK/tokens.txt" "$ASSIGN_CONCURRENCY" "$WORK/assign.json" "${VIA:-api}" <<'PY'
import json, sys, time, urllib.request
from concurrent.futures import ThreadPoolExecutor
http, jwt, package, tokens, workers, out, via = sys.argv[1:8]
ids = [l.split()[1] for l in open(tokens) if l.strip() and not l.startswith("#")]
def call(method, path, body=None):
    req = urllib.request.Request(f"http://{http}/api/v1{path}", method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"authorization": f"Bearer {jwt}", "content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.load(r)
if via == "campaign":
    # One campaign over the devices' profile, all of them at once: the engine notifies them.
    profile = call("GET", f"/devices/{ids[0]}")["profile_id"]
    c = call("POST", "/ota/campaigns", {"name": "bench", "package_id": package,
        "target": {"profile_id": profile}, "rollout": {"kind": "waves", "percents": [100]},
        "max_in_flight": min(len(ids), 10000)})
    t0 = time.time()
    call("POST", f"/ota/campaigns/{c['id']}/start", {})
    while True:
        got = call("GET", f"/ota/campaigns/{c['id']}")
        if got["counts"].get("QUEUED", 0) == 0 and got["devices"] >= len(ids):
            break
        time.sleep(0.2)
    t1 = time.time()
    json.dump({"start": t0, "end": t1}, open(out, "w"))
    print(f"campaign: {got['devices']} devices notified by the engine {t1 - t0:.2f} s after the start")
    sys.exit(0)
def assign(device):
    body = json.dumps({"package_id": package}).encode()
    req = urllib.request.Request(f"http://{http}/api/v1/devices/{device}/ota/firmware", data=body,
        method="PUT", headers={"authorization": f"Bearer {jwt}", "content-type": "application/json"})
    for attempt in range(5):
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status
        except Exception as e:
            err = str(e)
            time.sleep(0.2 * (attempt + 1))
    return err
t0 = time.time()
with ThreadPoolExecutor(int(workers)) as pool:
    results = list(pool.map(assign, ids))
t1 = time.time()
bad = [r for r in results if r != 200]
json.dump({"start": t0, "end": t1}, open(out, "w"))
print(f"assigned: {len(results) - len(bad)} devices in {t1 - t0:.2f} s ({(len(results) - len(bad)) / (t1 - t0):.0f}/s)"
      + (f", {len(bad)} refused: {bad[:3]}" if bad else ""))
PY

sim_rc=0
wait "$SIM" || sim_rc=$?
cpu1=$(cpu "$SERVER")
hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$SERVER/status")
grep -E '^\[' "$WORK/sim.err" | tail -n 1
# The platform's own view (the tracker's, from the stored reports): polled until it shows every
# device on the new version, for up to 30 s.
t_end=$(date +%s.%N)
for _ in $(seq 150); do
  VERSIONS=$(api -H "authorization: Bearer $JWT" "http://$HTTP/api/v1/ota/versions?kind=firmware")
  python3 -c 'import json,sys; sys.exit(0 if any(v["version"] == "2.0.0" and v["devices"] >= int(sys.argv[2]) for v in json.loads(sys.argv[1])) else 1)' \
    "$VERSIONS" "$DEVICES" && break
  sleep 0.2
done
settled=$(python3 -c "print(round($(date +%s.%N) - $t_end, 1))")
tail -n 1 "$WORK/sim.out" >"$WORK/sim.json"
python3 - "$WORK/sim.json" "$WORK/assign.json" "$cpu0" "$cpu1" "$rss0" "$hwm" "$VERSIONS" "$SIZE_KB" "$settled" <<'PY'
import json, sys
sim, assign = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
cpu0, cpu1, rss0, hwm = float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
versions, size_kb, settled = json.loads(sys.argv[7]), int(sys.argv[8]), sys.argv[9]
s = sim["behaviours"]["succeed"]
print(f"devices UPDATED (acknowledged): {s['updated']}/{sim['devices']}; failed {s['failed']}, "
      f"in progress {s['in_progress']}, no target {s['no_target']}; failures {sim['failure_reasons'] or 'none'}")
if sim["last_updated_unix_ms"]:
    total = sim["last_updated_unix_ms"] / 1000 - assign["start"]
    print(f"first assignment → last UPDATED: {total:.2f} s "
          f"(first target seen → last UPDATED: {sim['first_target_to_last_updated_secs']:.2f} s)")
mib = sim["bytes_downloaded"] / 2**20
print(f"downloaded: {mib:.1f} MiB ({mib / max(s['updated'], 1) * 1024:.0f} KiB per updated device, image {size_kb} KiB)")
print(f"stead CPU from the first assignment to the end: {cpu1 - cpu0:.1f} s")
print(f"stead RSS before the assignments: {rss0 // 1024} MiB; peak (VmHWM): {hwm // 1024} MiB")
print(f"connects {sim['connects']}, connection errors {sim['connection_errors']}, publish errors {sim['publish_errors']}")
print("GET /ota/versions: " + ", ".join(f"{v['title']} {v['version']}: {v['devices']}" for v in versions)
      + f" ({settled} s after the simulator ended)")
PY
[[ $sim_rc == 0 ]] || { echo "simulate-ota did not see every device done (exit $sim_rc)" >&2; exit 1; }

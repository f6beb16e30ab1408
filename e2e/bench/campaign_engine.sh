#!/usr/bin/env bash
# What an OTA campaign over a large fleet costs to run, against a real Stead on PostgreSQL + Redis:
#
#   e2e/bench/campaign_engine.sh [BIN_DIR]            (BIN_DIR default: target/release)
#
# DEVICES (default 100000) devices are written straight into the database (one device made
# through the API is the template; creating them through the API would only measure the API),
# and a campaign over their profile starts: a rate of RATE devices a minute (default 1000) under
# a cap of IN_FLIGHT (default 1000) updates at once. Nobody answers (no device is connected), so
# after the first minute the engine works at its cap: following the devices in flight, counting
# states, and notifying no more. Reports the time to enroll the fleet, then, over WINDOW seconds
# (default 60) without a campaign and again of steady running, the CPU seconds of the stead
# process and of PostgreSQL and PostgreSQL's transactions and rows read, per minute.
set -euo pipefail

source "$(dirname "$0")/lib.sh" # and common.sh
DEVICES=${DEVICES:-100000}
run_args "$@"
RATE=${RATE:-1000}
IN_FLIGHT=${IN_FLIGHT:-1000}
WINDOW=${WINDOW:-60}

start_server
create_tenant
JWT=$(login "$TENANT_EMAIL" "$TENANT_PW")
auth() { api -H "authorization: Bearer $JWT" "$@"; }
sql() { psql "$PG/$DB" -qtAc "$1"; }
echo "stead at $HTTP, a campaign over $DEVICES devices: $RATE a minute, at most $IN_FLIGHT in flight"

TEMPLATE=$(auth "http://$HTTP/api/v1/devices" -d '{"name":"template"}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["device"]["id"])')
PROFILE=$(sql "SELECT profile_id FROM devices WHERE id = '$TEMPLATE'")
cols=$(sql "SELECT string_agg(column_name, ',' ORDER BY ordinal_position) FROM information_schema.columns WHERE table_name = 'devices'")
select=$(python3 -c "
import sys
subst = {'id': 'gen_random_uuid()', 'name': \"'bench-' || g\", 'token_hash': 'md5(g::text || random()::text) || md5(random()::text)',
         'mqtt_client_id': 'NULL', 'mqtt_username': 'NULL', 'mqtt_password_hash': 'NULL'}
print(','.join(subst.get(c, c) for c in '$cols'.split(',')))")
t0=$(date +%s.%N)
sql "INSERT INTO devices ($cols) SELECT $select FROM devices, generate_series(1, $((DEVICES - 1))) g WHERE id = '$TEMPLATE'"
echo "   $DEVICES devices written in $(python3 -c "print(round($(date +%s.%N) - $t0, 1))") s"

head -c 1048576 /dev/urandom >"$WORK/fw.bin"
PACKAGE=$(curl -sf -H "authorization: Bearer $JWT" -H 'content-type: application/octet-stream' \
  --data-binary @"$WORK/fw.bin" "http://$HTTP/api/v1/ota/packages?kind=firmware&title=bench-fw&version=2.0" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
stats() { sql "SELECT xact_commit + xact_rollback, tup_returned + tup_fetched FROM pg_stat_database WHERE datname = '$DB'" | tr '|' ' '; }
PG_PIDS=$(procs postgres)
# What the server costs without a campaign (its other workers' sweeps), over the same window.
measure() {
  read -r x0 r0 < <(stats)
  c0=$(cpu "$SERVER")
  p0=$(cpu $PG_PIDS)
  sleep "$WINDOW"
  read -r x1 r1 < <(stats)
  c1=$(cpu "$SERVER")
  p1=$(cpu $PG_PIDS)
  python3 -c "
w = $WINDOW / 60
print(f'   $1, per minute: stead {($c1 - $c0) / w:.1f} CPU s, PostgreSQL {($p1 - $p0) / w:.1f} CPU s, '
      f'{($x1 - $x0) / w:.0f} transactions, {($r1 - $r0) / w / 1e6:.2f} M rows read')"
}
measure "no campaign"
CAMPAIGN=$(auth "http://$HTTP/api/v1/ota/campaigns" -d "{\"name\":\"large\",\"package_id\":\"$PACKAGE\",
  \"target\":{\"profile_id\":\"$PROFILE\"},\"rollout\":{\"kind\":\"rate\",\"per_minute\":$RATE},
  \"max_in_flight\":$IN_FLIGHT}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
t0=$(date +%s.%N)
auth -X POST "http://$HTTP/api/v1/ota/campaigns/$CAMPAIGN/start" >/dev/null
state() { auth "http://$HTTP/api/v1/ota/campaigns/$CAMPAIGN" | python3 -c "
import json, sys
c = json.load(sys.stdin)
print(c['devices'], c['counts'].get('NOTIFIED', 0))"; }
while :; do
  read -r enrolled notified < <(state)
  [[ $enrolled -ge $DEVICES ]] && break
  sleep 0.5
done
echo "   enrolled $enrolled devices $(python3 -c "print(round($(date +%s.%N) - $t0, 1))") s after the start"
while :; do
  read -r enrolled notified < <(state)
  [[ $notified -ge $IN_FLIGHT ]] && break
  sleep 1
done
echo "   $notified devices notified $(python3 -c "print(round($(date +%s.%N) - $t0, 1))") s after the start: at the cap"

measure "campaign at its cap"
echo "   stead RSS $(awk '/^VmRSS/ {printf "%d MB", $2 / 1024}' "/proc/$SERVER/status")"

#!/usr/bin/env bash
# Measures a 10,000-row import through the real API: `stead` (debug unless BIN says otherwise)
# on a fresh PostgreSQL database and Redis prefix, dropped afterwards. Ports 18480 and 18484.
set -euo pipefail
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/debug/stead}
DB=stead_manual_import_$$
DIR=$(mktemp -d)
PG=postgres://postgres@127.0.0.1:5432
psql "$PG/postgres" -qc "CREATE DATABASE $DB"
STEAD_HTTP_ADDR=127.0.0.1:18480 STEAD_MQTT_ADDR=127.0.0.1:18484 STEAD_DATA_DIR=$DIR \
STEAD_DATABASE_URL=$PG/$DB STEAD_REDIS_URL=redis://127.0.0.1:6379 STEAD_REDIS_PREFIX=manual-import-$$: \
STEAD_BOOTSTRAP_ADMIN_PASSWORD=admin-password-123 STEAD_LOG=warn "$BIN" serve >"$DIR/log" 2>&1 &
PID=$!
trap 'kill $PID; wait $PID 2>/dev/null; psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)"; redis-cli --scan --pattern "manual-import-$$:*" | xargs -r redis-cli del >/dev/null; rm -rf "$DIR"' EXIT
API=http://127.0.0.1:18480/api/v1
until curl -sf http://127.0.0.1:18480/healthz >/dev/null; do sleep 0.2; done
login() { curl -sf "$API/auth/login" -H 'content-type: application/json' -d "{\"email\":\"$1\",\"password\":\"$2\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'; }
PA=$(login admin@stead.local admin-password-123)
curl -sf "$API/tenants" -H "authorization: Bearer $PA" -H 'content-type: application/json' \
  -d '{"name":"Acme","admin_email":"boss@acme.example","admin_password":"tenant-admin-password"}' >/dev/null
TOKEN=$(login boss@acme.example tenant-admin-password)
python3 - >"$DIR/devices.csv" <<'PY'
print("name,label,type,groups,shared:fw,server:site")
for i in range(10000):
    print(f'dev-{i:05},Device {i},meter,fleet;batch-{i % 10},1.{i % 3},"site {i % 7}"')
PY
START=$(date +%s.%N)
JOB=$(curl -sf "$API/devices/import" -H "authorization: Bearer $TOKEN" -H 'content-type: text/csv' \
  --data-binary @"$DIR/devices.csv" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
while :; do
  STATE=$(curl -sf "$API/imports/$JOB" -H "authorization: Bearer $TOKEN")
  STATUS=$(echo "$STATE" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
  [ "$STATUS" != running ] && break
  sleep 1
done
END=$(date +%s.%N)
echo "$STATE" | python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["status"], j["counts"])'
python3 -c "print(f'10,000 rows in {$END - $START:.1f} s')"

# Shared by the benchmark scripts in this directory (sourced, not run): a release `stead serve`
# on a fresh PostgreSQL database and Redis prefix, and a tenant to load it with.
#
# Needs BIN (the directory holding `stead` and `stead-e2e`). Sets PG, REDIS, DB, WORK, HTTP,
# MQTT, SERVER; removes the database, the Redis keys and WORK on exit. STEAD_TEST_PG_URL /
# STEAD_TEST_REDIS_URL override the service addresses. EMBEDDED=1 runs the server on the embedded
# defaults instead (SQLite in WORK, the in-process live store): no database or Redis is used.

PG=${STEAD_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432}
# The server's connection options: no TLS to the PostgreSQL on this machine by default (over
# loopback it only costs CPU on both sides); PG_OPTIONS= keeps the client's default (TLS when
# the server offers it).
PG_OPTIONS=${PG_OPTIONS-?sslmode=disable}
REDIS=${STEAD_TEST_REDIS_URL:-redis://127.0.0.1:6379}
DB=stead_bench_$RANDOM$RANDOM
WORK=$(mktemp -d)
HTTP=${BENCH_HTTP:-127.0.0.1:18180}
MQTT=${BENCH_MQTT:-127.0.0.1:18883}
ADMIN_PW=bench-admin-password-1
TENANT_EMAIL=boss@bench.example
TENANT_PW=bench-tenant-password
ulimit -n "$(ulimit -Hn)"
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

psql "$PG/postgres" -qc "CREATE DATABASE $DB"
bench_cleanup() {
  [[ -n ${SERVER:-} ]] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
  psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  redis-cli -u "$REDIS" --scan --pattern "bench-$DB:*" | xargs -r -n 500 redis-cli -u "$REDIS" del >/dev/null || true
  rm -rf "$WORK"
}
trap bench_cleanup EXIT

api() { curl -sf -H 'content-type: application/json' "$@"; }

# Logs in and prints the access token: login EMAIL PASSWORD.
login() {
  api -d "{\"email\":\"$1\",\"password\":\"$2\"}" "http://$HTTP/api/v1/auth/login" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}

# Starts (or restarts) the server with any extra environment given as NAME=VALUE arguments, and
# waits until it is ready. Rate limits sit far above any load: the hot path is measured, not
# the limiter.
start_server() {
  if curl -sf "http://$HTTP/readyz" >/dev/null; then
    echo "something already answers on $HTTP (a server left from an earlier run?): stop it first" >&2
    return 1
  fi
  local stores=(STEAD_DATABASE_URL="$PG/$DB$PG_OPTIONS" STEAD_REDIS_URL="$REDIS" STEAD_REDIS_PREFIX="bench-$DB:")
  [[ -n ${EMBEDDED:-} ]] && stores=()
  env "${stores[@]}" \
    STEAD_HTTP_ADDR=$HTTP STEAD_MQTT_ADDR=$MQTT STEAD_DATA_DIR="$WORK/data" STEAD_LOG=warn \
    STEAD_TENANT_RATE_MESSAGES=1000000:1 STEAD_TENANT_RATE_POINTS=10000000:1 \
    STEAD_BOOTSTRAP_ADMIN_EMAIL=admin@bench.local STEAD_BOOTSTRAP_ADMIN_PASSWORD=$ADMIN_PW \
    "$@" "$BIN/stead" serve >>"$WORK/server.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 100); do curl -sf "http://$HTTP/readyz" >/dev/null && return 0; sleep 0.2; done
  echo "stead did not become ready; its log:" >&2
  tail -n 20 "$WORK/server.log" >&2
  return 1
}

# Creates the tenant whose admin ($TENANT_EMAIL) the load generator logs in as.
create_tenant() {
  api -H "authorization: Bearer $(login admin@bench.local "$ADMIN_PW")" "http://$HTTP/api/v1/tenants" \
    -d "{\"name\":\"Bench\",\"admin_email\":\"$TENANT_EMAIL\",\"admin_password\":\"$TENANT_PW\"}" >/dev/null
}

#!/usr/bin/env bash
# The fleet and loads of throughput.sh against a broker that stores nothing (default: the
# machine's Mosquitto on 127.0.0.1:1883): what MQTT alone costs on this machine, with the load
# generator on the same cores. It puts Stead's figures in proportion: the difference is what
# durable storage, live state and the rest of the platform add.
#
#   LOADS="40 50" DURATION=30 e2e/bench/broker_baseline.sh [BIN_DIR] [-- LOADGEN ARGS...]
#
# BROKER=HOST:PORT picks another broker; BROKER_PROCESS (default mosquitto) names the process
# whose CPU is reported. The broker must accept any user name (Mosquitto's Debian default
# listener does). DEVICES (default 1000) sets the fleet size.
#
# FLOOR=ack or FLOOR=commit measures the floor of Stead's own MQTT stack instead: the
# `mqtt_floor` example (server/examples/mqtt_floor.rs, ntex-mqtt as Stead's ingress runs it,
# doing nothing else; `commit` adds the group-commit wait without a database), started here from
# BIN_DIR/examples. Build it with `cargo build --release -p stead --example mqtt_floor`.
set -euo pipefail

source "$(dirname "$0")/common.sh"
run_args "$@"
ulimit -n "$(ulimit -Hn)"
if [[ -n ${FLOOR:-} ]]; then
  floor_bin=$BIN/examples/mqtt_floor
  [[ -x $floor_bin ]] || floor_bin=$BIN/mqtt_floor
  if [[ ! -x $floor_bin ]]; then
    echo "no mqtt_floor in $BIN/examples: cargo build --release -p stead --example mqtt_floor" >&2
    exit 1
  fi
  BROKER=${BROKER:-127.0.0.1:28884}
  BROKER_PROCESS=mqtt_floor
  FLOOR_MODE=$FLOOR "$floor_bin" "$BROKER" &
  floor_pid=$!
  trap 'kill $floor_pid 2>/dev/null' EXIT
  for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/${BROKER%:*}/${BROKER##*:}") 2>/dev/null && break
    sleep 0.1
  done
fi
BROKER=${BROKER:-127.0.0.1:1883}
BROKER_PROCESS=${BROKER_PROCESS:-mosquitto}

broker=$(procs "$BROKER_PROCESS")
if [[ -z $broker ]]; then
  echo "no $BROKER_PROCESS process is running (set BROKER and BROKER_PROCESS)" >&2
  exit 1
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"; [[ -n ${floor_pid:-} ]] && kill "$floor_pid" 2>/dev/null; true' EXIT
for i in $(seq "$DEVICES"); do echo "baseline-device-$i"; done >"$WORK/tokens.txt"

echo "broker $BROKER ($BROKER_PROCESS, pid $broker), $DEVICES devices, loads: $LOADS (per-device msg/s, 0 = flat out)"
for rate in $LOADS; do
  c0=$(cpu $broker)
  "$BIN/stead-e2e" loadgen --mqtt "$BROKER" --token-file "$WORK/tokens.txt" --random-client-id \
    --qos 1 --connect-concurrency 100 --rate "$rate" --duration "$DURATION" "${EXTRA[@]}" \
    >"$WORK/run.out" 2>"$WORK/run.err" || echo "(loadgen exited with an error; see below)"
  c1=$(cpu $broker)
  echo "== per-device rate $rate (0 = flat out), ${DURATION} s ${EXTRA[*]}"
  grep -vE '^\{' "$WORK/run.out" | grep -vE 'per second' | tail -n 8
  grep -E 'error|failed' "$WORK/run.err" | tail -n 5 || true
  echo "CPU seconds during the run: $BROKER_PROCESS $(python3 -c "print(round($c1 - $c0, 1))")"
done

# Sourced by the benchmark scripts: their common arguments, and CPU accounting from /proc.

# `SCRIPT [BIN_DIR] [-- LOADGEN ARGS...]` and the environment: sets BIN (default
# target/release), EXTRA (the loadgen arguments), DEVICES (1000), LOADS ("0"), DURATION (60).
run_args() {
  BIN=${CARGO_TARGET_DIR:-target}/release
  if [[ $# -gt 0 && $1 != -- ]]; then BIN=$1; shift; fi
  [[ ${1:-} == -- ]] && shift
  EXTRA=("$@")
  DEVICES=${DEVICES:-1000}
  LOADS=${LOADS:-0}
  DURATION=${DURATION:-60}
}

# CPU seconds (user + system) so far of the given processes, together.
cpu() {
  local hz total=0 pid
  hz=$(getconf CLK_TCK)
  for pid in "$@"; do
    [[ -r /proc/$pid/stat ]] || continue
    total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
  done
  python3 -c "print(round($total / $hz, 1))"
}

# The PIDs of the processes with this exact name, space separated.
procs() { pgrep -x "$1" | tr '\n' ' '; }

# CPU seconds spent by every process named NAME since the last call with the same STATE file
# (processes that started since count whole, ones that ended meanwhile lose their last part):
# for long runs, where PostgreSQL's backends come and go (the pool renews its connections).
cpu_since() {
  local state=$1 name=$2 pid now=""
  for pid in $(pgrep -x "$name"); do
    [[ -r /proc/$pid/stat ]] && now+="$pid $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)"$'\n'
  done
  touch "$state"
  printf '%s' "$now" | awk -v hz="$(getconf CLK_TCK)" -v state="$state" '
    BEGIN { while ((getline line < state) > 0) { split(line, f, " "); before[f[1]] = f[2] } }
    NF == 2 { d += $2 - ($1 in before ? before[$1] : 0) }
    END { printf "%.1f\n", d / hz }'
  printf '%s' "$now" >"$state"
}

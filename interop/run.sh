#!/usr/bin/env bash
# Run every interop client against an AMQP 0-9-1 broker and print a line per client
# and scenario.
#
# Usage: interop/run.sh [AMQP_URL]
#
#   Without a URL, a fresh Warren is started on a free loopback port with a fresh data
#   directory (binary: ${WARREN_BIN:-<repo>/target/debug/warren}, built if missing),
#   and stopped at exit. With a URL, the clients run against that broker; set
#   INTEROP_RESTART_CMD to a command that restarts it (e.g. for RabbitMQ
#   "rabbitmqctl stop_app && rabbitmqctl start_app") to run the recovery scenarios too.
#
# A client is a directory interop/<name>/ holding:
#   scenarios          the scenario names its `run` must report, one per line
#   run                executable: `run URL` prints `PASS <name> <scenario>` or
#                      `FAIL <name> <scenario>: <reason>` lines
#   apt      (opt.)    Debian packages it needs, one per line (`package [command]`:
#                      skipped when the command is already on the PATH)
#   setup    (opt.)    executable: installs the rest (pip, npm, builds); idempotent
#   recovery-scenarios, recover  (opt.)  the same for scenarios that restart the
#                      broker: `recover URL`, with INTEROP_RESTART_CMD in the
#                      environment; these run one client at a time, after the others
#   timeout  (opt.)    seconds `run` may take (default 120)
#
# Environment: INTEROP_ONLY="pika amqplib" runs only those clients; INTEROP_JOBS sets
# how many clients run at once (default 3).
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
DEFAULT_WARREN_BIN="$REPO/target/debug/warren"
JOBS="${INTEROP_JOBS:-3}"

log() { echo "interop: $*" >&2; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/warren-interop.XXXXXX")"
BROKER_PID=""
BROKER_LOG="$WORK/warren.log"
DATA_DIR="$WORK/data"

stop_warren() {
  # A recovery scenario may have restarted it under a new pid.
  [ -f "$WORK/broker.pid" ] && BROKER_PID="$(cat "$WORK/broker.pid")"
  if [ -n "$BROKER_PID" ] && kill -0 "$BROKER_PID" 2>/dev/null; then
    kill "$BROKER_PID" 2>/dev/null
    for _ in $(seq 100); do
      kill -0 "$BROKER_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$BROKER_PID" 2>/dev/null
    wait "$BROKER_PID" 2>/dev/null
  fi
  BROKER_PID=""
}

cleanup() {
  stop_warren
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- clients

CLIENTS=()
for dir in "$HERE"/*/; do
  name="$(basename "$dir")"
  [ -x "$dir/run" ] && [ -f "$dir/scenarios" ] || continue
  if [ -n "${INTEROP_ONLY:-}" ] && ! [[ " $INTEROP_ONLY " == *" $name "* ]]; then
    continue
  fi
  CLIENTS+=("$name")
done
[ "${#CLIENTS[@]}" -gt 0 ] || { log "no clients found"; exit 1; }
log "clients: ${CLIENTS[*]}"

# ---------------------------------------------------------------- dependencies

# Debian packages, all in one apt-get (dpkg takes one installer at a time). A line of an
# `apt` file is a package, optionally followed by a command that, when already on the
# PATH, makes the package unnecessary (e.g. `npm npm`: Node from elsewhere ships npm, and
# Debian's npm would conflict with it).
packages=()
for c in "${CLIENTS[@]}"; do
  [ -f "$HERE/$c/apt" ] || continue
  while read -r pkg cmd _; do
    [ -n "$pkg" ] && [ "${pkg:0:1}" != "#" ] || continue
    [ -n "$cmd" ] && command -v "$cmd" >/dev/null 2>&1 && continue
    [[ " ${packages[*]} " == *" $pkg "* ]] || packages+=("$pkg")
  done <"$HERE/$c/apt"
done
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >"$WORK/apt.log" 2>&1; then
    apt-get update -q >>"$WORK/apt.log" 2>&1
    if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$WORK/apt.log" 2>&1; then
      # One bad package must not keep the others out: try them one by one.
      for pkg in "${missing[@]}"; do
        apt-get install -y -q --no-install-recommends "$pkg" >>"$WORK/apt.log" 2>&1 ||
          log "apt-get install $pkg failed (the clients that need it will fail)"
      done
    fi
  fi
fi

# Each client's own setup, in parallel; a failed setup fails that client only.
setups=()
for c in "${CLIENTS[@]}"; do
  if [ -x "$HERE/$c/setup" ]; then
    ("$HERE/$c/setup" >"$WORK/$c.setup.log" 2>&1; echo $? >"$WORK/$c.setup.rc") &
    setups+=($!)
  else
    echo 0 >"$WORK/$c.setup.rc"
  fi
done
[ "${#setups[@]}" -eq 0 ] || wait "${setups[@]}"
for c in "${CLIENTS[@]}"; do
  if [ "$(cat "$WORK/$c.setup.rc")" != 0 ]; then
    log "setup of $c failed:"
    tail -n 30 "$WORK/$c.setup.log" >&2
  fi
done

# ---------------------------------------------------------------- broker

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Start Warren on $PORT with $DATA_DIR; false if it does not accept within 10 s.
start_warren() {
  "$WARREN_BIN" --bind 127.0.0.1 --port "$PORT" --data-dir "$DATA_DIR" >>"$BROKER_LOG" 2>&1 &
  BROKER_PID=$!
  for _ in $(seq 100); do
    kill -0 "$BROKER_PID" 2>/dev/null || { BROKER_PID=""; return 1; }
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

if [ $# -ge 1 ] && [ -n "$1" ]; then
  URL="$1"
  RESTART="${INTEROP_RESTART_CMD:-}"
  log "running clients against $URL"
else
  WARREN_BIN="${WARREN_BIN:-$DEFAULT_WARREN_BIN}"
  if [ ! -x "$WARREN_BIN" ]; then
    log "$WARREN_BIN not found; running cargo build -p warren"
    (cd "$REPO" && cargo build -q -p warren) >&2 || { log "cargo build -p warren failed"; exit 1; }
  fi
  started=0
  for _ in 1 2 3; do
    PORT="$(free_port)"
    if start_warren; then started=1; break; fi
    log "Warren did not start on port $PORT; retrying"
    stop_warren
  done
  [ "$started" = 1 ] || { log "cannot start Warren:"; tail -n 40 "$BROKER_LOG" >&2; exit 1; }
  URL="amqp://guest:guest@127.0.0.1:$PORT/%2F"
  # The recovery scenarios restart this broker: same port, same data directory.
  cat >"$WORK/restart" <<EOF
#!/usr/bin/env bash
kill -TERM \$(cat "$WORK/broker.pid") 2>/dev/null
for _ in \$(seq 100); do kill -0 \$(cat "$WORK/broker.pid") 2>/dev/null || break; sleep 0.1; done
"$WARREN_BIN" --bind 127.0.0.1 --port "$PORT" --data-dir "$DATA_DIR" >>"$BROKER_LOG" 2>&1 &
echo \$! >"$WORK/broker.pid"
for _ in \$(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && exit 0; sleep 0.1; done
exit 1
EOF
  chmod +x "$WORK/restart"
  echo "$BROKER_PID" >"$WORK/broker.pid"
  RESTART="$WORK/restart"
  log "started Warren (pid $BROKER_PID) at $URL, log $BROKER_LOG"
fi

# ---------------------------------------------------------------- running

run_one() { # client phase(run|recover)
  local c="$1" phase="$2" limit=120
  [ -f "$HERE/$c/timeout" ] && limit="$(cat "$HERE/$c/timeout")"
  if [ "$(cat "$WORK/$c.setup.rc")" != 0 ]; then
    echo "setup failed" >"$WORK/$c.$phase.err"
    echo 1 >"$WORK/$c.$phase.rc"
    return
  fi
  (cd "$HERE/$c" && INTEROP_RESTART_CMD="$RESTART" timeout -k 5 "$limit" "./$phase" "$URL") \
    >"$WORK/$c.$phase.out" 2>"$WORK/$c.$phase.err"
  echo $? >"$WORK/$c.$phase.rc"
}

started_at=$(date +%s)
running=()
for c in "${CLIENTS[@]}"; do
  # At most $JOBS clients at once (the broker is a background job too: count ours).
  while :; do
    alive=()
    for pid in "${running[@]}"; do kill -0 "$pid" 2>/dev/null && alive+=("$pid"); done
    running=("${alive[@]}")
    [ "${#running[@]}" -lt "$JOBS" ] && break
    sleep 0.2
  done
  run_one "$c" run &
  running+=($!)
done
[ "${#running[@]}" -eq 0 ] || wait "${running[@]}"
if [ -n "$RESTART" ]; then
  for c in "${CLIENTS[@]}"; do
    [ -x "$HERE/$c/recover" ] && run_one "$c" recover
  done
else
  log "no restart command: recovery scenarios are skipped"
fi
log "clients ran in $(($(date +%s) - started_at)) s"

# ---------------------------------------------------------------- report

passed=0
failed=0
skipped=0
report() { # client phase scenarios-file
  local c="$1" phase="$2" list="$3" rc line any_failed=0
  rc="$(cat "$WORK/$c.$phase.rc" 2>/dev/null || echo '?')"
  while read -r scenario; do
    [ -n "$scenario" ] || continue
    line="$(grep -E "^(PASS|FAIL) $c $scenario(:|\$)" "$WORK/$c.$phase.out" 2>/dev/null | head -n 1)"
    [ -n "$line" ] || line="FAIL $c $scenario: no result line (exit code $rc)"
    echo "$line"
    case "$line" in
    PASS*) passed=$((passed + 1)) ;;
    *) failed=$((failed + 1)); any_failed=1 ;;
    esac
  done <"$list"
  if [ "$any_failed" = 0 ] && [ "$rc" != 0 ]; then
    echo "FAIL $c $phase: every scenario passed but it exited with code $rc"
    failed=$((failed + 1))
    any_failed=1
  fi
  if [ "$any_failed" = 1 ] && [ -s "$WORK/$c.$phase.err" ]; then
    log "stderr of $c $phase (last 20 lines):"
    tail -n 20 "$WORK/$c.$phase.err" >&2
  fi
}
for c in "${CLIENTS[@]}"; do
  report "$c" run "$HERE/$c/scenarios"
  if [ -f "$HERE/$c/recovery-scenarios" ]; then
    if [ -n "$RESTART" ]; then
      report "$c" recover "$HERE/$c/recovery-scenarios"
    else
      skipped=$((skipped + $(grep -c . "$HERE/$c/recovery-scenarios")))
    fi
  fi
done
if [ "$failed" -gt 0 ] && [ -s "$BROKER_LOG" ]; then
  log "last lines of the Warren log:"
  tail -n 30 "$BROKER_LOG" >&2
fi
echo "interop: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]

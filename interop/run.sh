#!/usr/bin/env bash
# Run the interop clients (pika, amqplib) against an AMQP 0-9-1 broker.
#
# Usage: interop/run.sh [AMQP_URL]
#
#   With AMQP_URL, every client runs against that broker, e.g.
#     interop/run.sh amqp://guest:guest@127.0.0.1:5672/%2F
#   Without it, a fresh Warren broker is started on a free loopback port with
#   a fresh temporary data dir, and stopped (and the dir removed) at exit.
#   The binary is "${WARREN_BIN:-<repo>/target/debug/warren}"; the default one
#   is built with `cargo build -p warren` if it does not exist yet.
#
# Missing client dependencies are installed first: a virtualenv at
# interop/.venv with pika/requirements.txt, and amqplib/node_modules via npm.
#
# Each client prints one `PASS|FAIL <client> <scenario>` line per scenario.
# The script prints those lines, then `interop: N passed, M failed`, and exits
# non-zero if anything failed or an expected result line is missing.
#
# Environment: WARREN_BIN (broker binary), INTEROP_CLIENT_TIMEOUT (seconds a
# client may run before it is killed, default 60).
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
DEFAULT_WARREN_BIN="$REPO/target/debug/warren"
CLIENT_TIMEOUT="${INTEROP_CLIENT_TIMEOUT:-60}"
VENV="$HERE/.venv"

# The scenarios each client must report on; a missing line counts as a failure.
CLIENTS=(pika amqplib)
declare -A EXPECTED=(
  [pika]="publish_consume_ack get_and_reject"
  [amqplib]="publish_consume_ack get_and_reject"
)

log() { echo "interop: $*" >&2; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/warren-interop.XXXXXX")"
BROKER_PID=""
BROKER_LOG="$WORK/warren.log"
BG_PIDS=()

cleanup() {
  local pid
  for pid in "${BG_PIDS[@]}"; do
    kill "$pid" 2>/dev/null
  done
  if [ -n "$BROKER_PID" ] && kill -0 "$BROKER_PID" 2>/dev/null; then
    kill "$BROKER_PID" 2>/dev/null
    for _ in $(seq 50); do
      kill -0 "$BROKER_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$BROKER_PID" 2>/dev/null
    wait "$BROKER_PID" 2>/dev/null
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- dependencies

setup_pika() {
  if ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    rm -rf "$VENV"
    python3 -m venv "$VENV" || return 1
  fi
  local req="$HERE/pika/requirements.txt" stamp="$VENV/.requirements.installed"
  if ! cmp -s "$req" "$stamp"; then
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$req" || return 1
    cp "$req" "$stamp"
  fi
}

setup_amqplib() {
  local dir="$HERE/amqplib"
  # npm writes node_modules/.package-lock.json on every install; if it is
  # missing or differs in age from the lockfile, reinstall from the lockfile.
  if [ ! -f "$dir/node_modules/.package-lock.json" ] ||
    [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    if [ -f "$dir/package-lock.json" ]; then
      (cd "$dir" && npm ci --silent --no-audit --no-fund) || return 1
    else
      (cd "$dir" && npm install --silent --no-audit --no-fund) || return 1
    fi
  fi
}

# Install both in parallel; show their output only if one fails.
setup_pika >"$WORK/setup-pika.log" 2>&1 &
SETUP_PIKA=$!
setup_amqplib >"$WORK/setup-amqplib.log" 2>&1 &
SETUP_AMQPLIB=$!
BG_PIDS=("$SETUP_PIKA" "$SETUP_AMQPLIB")
setup_failed=0
if ! wait "$SETUP_PIKA"; then
  log "installing pika into $VENV failed:"
  cat "$WORK/setup-pika.log" >&2
  setup_failed=1
fi
if ! wait "$SETUP_AMQPLIB"; then
  log "installing amqplib (npm) failed:"
  cat "$WORK/setup-amqplib.log" >&2
  setup_failed=1
fi
BG_PIDS=()
[ "$setup_failed" -eq 0 ] || exit 1

# ---------------------------------------------------------------- broker

broker_log_tail() {
  if [ -s "$BROKER_LOG" ]; then
    log "last lines of the Warren log ($BROKER_LOG):"
    tail -n 40 "$BROKER_LOG" >&2
  fi
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Starts Warren on a free port; sets PORT and BROKER_PID. A broker that exits
# before accepting (e.g. the port was taken meanwhile) is retried on a new port.
start_warren() {
  local attempt
  for attempt in 1 2 3; do
    PORT="$(free_port)" || return 1
    TMPDIR_X="$WORK/data-$attempt"
    mkdir -p "$TMPDIR_X"
    "$WARREN_BIN" --bind 127.0.0.1 --port "$PORT" --data-dir "$TMPDIR_X" >"$BROKER_LOG" 2>&1 &
    BROKER_PID=$!
    for _ in $(seq 100); do # up to 10 s
      if ! kill -0 "$BROKER_PID" 2>/dev/null; then
        wait "$BROKER_PID" 2>/dev/null
        log "Warren exited before accepting connections (attempt $attempt, port $PORT)"
        broker_log_tail
        BROKER_PID=""
        continue 2
      fi
      if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
        return 0
      fi
      sleep 0.1
    done
    log "Warren did not accept TCP connections on 127.0.0.1:$PORT within 10 s"
    broker_log_tail
    return 1
  done
  return 1
}

if [ $# -ge 1 ] && [ -n "$1" ]; then
  URL="$1"
  log "running clients against $URL"
else
  WARREN_BIN="${WARREN_BIN:-$DEFAULT_WARREN_BIN}"
  if [ ! -x "$WARREN_BIN" ]; then
    if [ "$WARREN_BIN" != "$DEFAULT_WARREN_BIN" ]; then
      log "WARREN_BIN=$WARREN_BIN does not exist or is not executable"
      exit 1
    fi
    log "$WARREN_BIN not found; running cargo build -p warren"
    (cd "$REPO" && cargo build -p warren) >&2 || {
      log "cargo build -p warren failed"
      exit 1
    }
    [ -x "$WARREN_BIN" ] || {
      log "cargo build -p warren did not produce $WARREN_BIN"
      exit 1
    }
  fi
  start_warren || exit 1
  URL="amqp://guest:guest@127.0.0.1:$PORT/%2F"
  log "started Warren (pid $BROKER_PID) at $URL, log $BROKER_LOG"
fi

# ---------------------------------------------------------------- clients

# Clients use unique exclusive queues, so they can run in parallel.
run_client() {
  local name="$1"
  shift
  timeout -k 5 "$CLIENT_TIMEOUT" "$@" "$URL" >"$WORK/$name.out" 2>"$WORK/$name.err"
  echo $? >"$WORK/$name.rc"
}

run_client pika "$VENV/bin/python" "$HERE/pika/scenario.py" &
BG_PIDS+=($!)
run_client amqplib node "$HERE/amqplib/scenario.js" &
BG_PIDS+=($!)
wait "${BG_PIDS[@]}"
BG_PIDS=()

passed=0
failed=0
broker_trouble=0
for client in "${CLIENTS[@]}"; do
  rc="$(cat "$WORK/$client.rc" 2>/dev/null || echo '?')"
  client_failed=0
  for scenario in ${EXPECTED[$client]}; do
    line="$(grep -E "^(PASS|FAIL) $client $scenario(:|\$)" "$WORK/$client.out" | head -n 1)"
    if [ -z "$line" ]; then
      line="FAIL $client $scenario: no result line (client exit code $rc)"
    fi
    echo "$line"
    case "$line" in
    PASS*) passed=$((passed + 1)) ;;
    *) failed=$((failed + 1)); client_failed=1 ;;
    esac
  done
  if [ "$client_failed" -eq 0 ] && [ "$rc" != 0 ]; then
    echo "FAIL $client exit: all scenarios passed but the client exited with code $rc"
    failed=$((failed + 1))
    client_failed=1
  fi
  if [ "$client_failed" -ne 0 ]; then
    broker_trouble=1
    if [ -s "$WORK/$client.err" ]; then
      log "stderr of $client (last 20 lines):"
      tail -n 20 "$WORK/$client.err" >&2
    fi
  fi
done

if [ "$broker_trouble" -ne 0 ] && [ -n "$BROKER_PID" ]; then
  broker_log_tail
fi

echo "interop: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

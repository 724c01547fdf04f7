#!/usr/bin/env bash
# A large backlog of 1 KiB persistent messages in one durable queue: the broker's
# memory while holding it, disk used, the time to be usable again after a restart, and
# memory after the restart. Warren, and (with "both") RabbitMQ 3.10 in the same run.
#
# Usage: bench/backlog.sh [GiB=10] [warren|both]
# Needs free disk of about twice the backlog per broker. Every load run is bounded by
# a message count and a time limit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
GIB="${1:-10}"
WHICH="${2:-warren}"
MESSAGES=$((GIB * 1024 * 1024))
cargo build --release --quiet -p warren -p warren-perf
PERF=./target/release/warren-perf
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
wait_port() { for _ in $(seq 600); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

fill() { # url
  $PERF --url "$1" --queue backlog --durable --persistent --size 1024 --confirm 1000 \
    --producers 1 --consumers 0 --messages "$MESSAGES" --duration 3600 --keep-queue --json --quiet
}

drain_some() { # url
  $PERF --url "$1" --queue backlog --durable --no-purge --keep-queue --producers 0 --consumers 1 \
    --ack --messages 200000 --duration 120 --json --quiet
}

echo "## backlog of $GIB GiB ($MESSAGES messages of 1 KiB)"

# --- Warren ---
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
DATA="$(mktemp -d -p "${BENCH_DIR:-/tmp}")"
URL="amqp://guest:guest@127.0.0.1:$PORT/%2f"
start_warren() {
  ./target/release/warren --bind 127.0.0.1 --port "$PORT" --data-dir "$DATA" --log-level warn &
  WARREN_PID=$!
}
trap 'kill $WARREN_PID 2>/dev/null; rm -rf "$DATA"' EXIT
start_warren
wait_port "$PORT"
echo "warren idle RSS: $(rss_kib $WARREN_PID) KiB"
echo "warren fill: $(fill "$URL")"
echo "warren RSS holding the backlog: $(rss_kib $WARREN_PID) KiB, open files: $(ls /proc/$WARREN_PID/fd | wc -l)"
echo "warren data directory: $(du -sh "$DATA" | cut -f1)"
kill -TERM $WARREN_PID; wait $WARREN_PID || true
sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null && echo "(page cache dropped: a cold start)" || true
start_warren
echo "warren restart: $($PERF --url "$URL" --queue backlog --probe --duration 60)"
echo "warren RSS after restart: $(rss_kib $WARREN_PID) KiB"
echo "warren consuming 200000 right after: $(drain_some "$URL")"
echo "warren RSS while serving the backlog: $(rss_kib $WARREN_PID) KiB, open files: $(ls /proc/$WARREN_PID/fd | wc -l)"
kill -TERM $WARREN_PID; wait $WARREN_PID || true
rm -rf "$DATA"

[ "$WHICH" = both ] || exit 0

# --- RabbitMQ ---
if ! command -v rabbitmq-server >/dev/null; then apt-get install -y -q rabbitmq-server >/dev/null; fi
RURL="amqp://guest:guest@127.0.0.1:5672/%2f"
if ! (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; then rabbitmq-server -detached; wait_port 5672; sleep 3; fi
RPID="$(pgrep -o beam.smp)"
echo "rabbitmq idle RSS: $(rss_kib "$RPID") KiB"
echo "rabbitmq fill: $(fill "$RURL")"
echo "rabbitmq RSS holding the backlog: $(rss_kib "$RPID") KiB"
echo "rabbitmq data directory: $(du -sh /var/lib/rabbitmq/mnesia | cut -f1)"
rabbitmqctl stop >/dev/null
sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
STARTED=$(date +%s.%N)
rabbitmq-server -detached
PROBE="$($PERF --url "$RURL" --queue backlog --probe --duration 600)"
echo "rabbitmq restart: $PROBE, $(python3 -c "print(round($(date +%s.%N) - $STARTED, 3))") s from the start command"
RPID="$(pgrep -o beam.smp)"
echo "rabbitmq RSS after restart: $(rss_kib "$RPID") KiB"
echo "rabbitmq consuming 200000 right after: $(drain_some "$RURL")"
echo "rabbitmq RSS while serving the backlog: $(rss_kib "$RPID") KiB"
# Leave RabbitMQ without the backlog.
$PERF --url "$RURL" --queue backlog --durable --producers 0 --consumers 0 --duration 1 --quiet >/dev/null

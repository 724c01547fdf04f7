#!/usr/bin/env bash
# Warren against RabbitMQ 3.10, side by side on this machine, with the same load tool.
#
# Usage: bench/compare.sh [rounds] [seconds-per-run]
#
# Installs RabbitMQ from Debian if it is missing and starts it on 127.0.0.1:5672 if
# nothing listens there; builds Warren and warren-perf in release mode; starts Warren on
# a free loopback port with an empty data directory. Then, for each scenario, it
# alternates the two brokers for `rounds` rounds and prints the medians and the
# Warren/RabbitMQ ratio as Markdown tables: throughput, latency, and what the brokers
# cost in memory and start-up time. Every load run is bounded by `seconds-per-run` (or
# by a count) and stops by itself.
#
# Environment: SCENARIOS="1 3" runs only those throughput scenarios (numbers as listed
# below); SKIP_COUNTS=1 skips the connection- and queue-count runs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROUNDS="${1:-3}"
SECONDS_PER_RUN="${2:-10}"
OUT="$(mktemp -d)"

now_ms() { date +%s%3N; }
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# wait_port PORT: until something accepts on it, for at most 10 s.
wait_port() {
  local until=$(($(now_ms) + 10000))
  until listening "$1"; do
    [ "$(now_ms)" -lt "$until" ] || { echo "nothing listens on $1" >&2; exit 1; }
    sleep 0.002
  done
}

if ! command -v rabbitmq-server >/dev/null; then
  echo "installing rabbitmq-server from Debian..." >&2
  apt-get install -y -q rabbitmq-server >/dev/null
fi
# Both brokers get the descriptors 10,000 connections need (Debian's systemd unit gives
# RabbitMQ 65536; a shell's soft limit is often 1024).
ulimit -n "$(ulimit -Hn)"
RABBIT_START_MS="n/a (was already running)"
if ! listening 5672; then
  echo "starting RabbitMQ on 127.0.0.1:5672..." >&2
  if ! grep -qs "listeners.tcp.default" /etc/rabbitmq/rabbitmq.conf; then
    echo "listeners.tcp.default = 127.0.0.1:5672" >>/etc/rabbitmq/rabbitmq.conf
  fi
  t0="$(now_ms)"
  # Not through Debian's wrapper: it switches user with su, whose PAM session resets
  # the descriptor limit to 1024.
  (cd /var/lib/rabbitmq && setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups \
    env HOME=/var/lib/rabbitmq /usr/lib/rabbitmq/bin/rabbitmq-server -detached)
  for _ in $(seq 600); do listening 5672 && break; sleep 0.05; done
  RABBIT_START_MS="$(($(now_ms) - t0))"
fi
RABBIT_PID="$(pgrep -o beam.smp)"
RABBIT_VERSION="$(rabbitmqctl version 2>/dev/null || echo 3.10)"
RABBIT_URL="amqp://guest:guest@127.0.0.1:5672/%2f"

cargo build --release --quiet -p warren -p warren-perf
WARREN=./target/release/warren
PERF=./target/release/warren-perf
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Start-up time with an empty data directory, median of 5.
for _ in 1 2 3 4 5; do
  port="$(free_port)"
  data="$(mktemp -d)"
  t0="$(now_ms)"
  $WARREN --bind 127.0.0.1 --port "$port" --data-dir "$data" --log-level warn &
  pid=$!
  wait_port "$port"
  echo "$(($(now_ms) - t0))" >>"$OUT/start-ms"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  rm -rf "$data"
done

PORT="$(free_port)"
DATA="$(mktemp -d)"
$WARREN --bind 127.0.0.1 --port "$PORT" --data-dir "$DATA" --log-level warn &
WARREN_PID=$!
trap 'kill $WARREN_PID 2>/dev/null; wait $WARREN_PID 2>/dev/null; rm -rf "$DATA" "$OUT"' EXIT
wait_port "$PORT"
WARREN_URL="amqp://guest:guest@127.0.0.1:$PORT/%2f"
sleep 1
rss() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
WARREN_IDLE_RSS="$(rss "$WARREN_PID")"
RABBIT_IDLE_RSS="$(rss "$RABBIT_PID")"

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
# json-field FILE a.b: the field of every JSON line, one per line.
field() { python3 -c "
import json, sys
for line in open(sys.argv[1]):
    v = json.loads(line)
    for k in sys.argv[2].split('.'):
        v = v[k]
    print(v)" "$1" "$2"; }
ratio() { python3 -c "import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); print(f'{a / b:.1f}x' if b else 'n/a')" "$1" "$2"; }

# run NAME FLAGS...: alternate the brokers for ROUNDS rounds, JSON lines into
# $OUT/NAME.rabbit and $OUT/NAME.warren.
run() {
  local name="$1"
  shift
  : >"$OUT/$name.rabbit"
  : >"$OUT/$name.warren"
  for round in $(seq "$ROUNDS"); do
    $PERF --url "$RABBIT_URL" --duration "$SECONDS_PER_RUN" --json --quiet \
      --broker-pid "$RABBIT_PID" --queue "bench-$name-$round" "$@" >>"$OUT/$name.rabbit"
    $PERF --url "$WARREN_URL" --duration "$SECONDS_PER_RUN" --json --quiet \
      --broker-pid "$WARREN_PID" --queue "bench-$name-$round" "$@" >>"$OUT/$name.warren"
  done
}

# name | metric (consumed_per_sec or consumed_mib_per_sec) | warren-perf flags
THROUGHPUT=(
  "1 publisher, 1 consumer, no-ack, 16 B|consumed_per_sec|--size 16"
  "1 publisher, 1 consumer, manual ack (prefetch 1000, multiple every 100), 16 B|consumed_per_sec|--size 16 --ack --prefetch 1000"
  "fanout to 10 queues, 10 consumers, no-ack, 16 B (deliveries)|consumed_per_sec|--size 16 --exchange-type fanout --queues 10 --consumers 10"
  "1 MiB bodies, 1 publisher, 1 consumer, no-ack (MiB/s)|consumed_mib_per_sec|--size 1048576"
  "persistent 16 B to a durable queue, confirms (1000 in flight), 1 consumer acking|consumed_per_sec|--size 16 --persistent --durable --confirm 1000 --ack"
  "persistent 1 KiB to a durable queue, confirms (1000 in flight), 1 consumer acking|consumed_per_sec|--size 1024 --persistent --durable --confirm 1000 --ack"
)

echo "| scenario | RabbitMQ $RABBIT_VERSION | Warren | Warren / RabbitMQ | RabbitMQ CPU µs/msg | Warren CPU µs/msg |"
echo "|---|---|---|---|---|---|"
i=0
for entry in "${THROUGHPUT[@]}"; do
  i=$((i + 1))
  if [ -n "${SCENARIOS:-}" ] && ! [[ " $SCENARIOS " == *" $i "* ]]; then continue; fi
  IFS='|' read -r name metric flags <<<"$entry"
  # shellcheck disable=SC2086
  run "t$i" $flags
  r="$(field "$OUT/t$i.rabbit" "$metric" | median)"
  w="$(field "$OUT/t$i.warren" "$metric" | median)"
  rc="$(field "$OUT/t$i.rabbit" broker_cpu_us_per_msg | median)"
  wc="$(field "$OUT/t$i.warren" broker_cpu_us_per_msg | median)"
  unit="msg/s"
  [ "$metric" = consumed_mib_per_sec ] && unit="MiB/s"
  printf '| %s | %.0f %s | %.0f %s | %s | %.2f | %.2f |\n' "$name" "$r" "$unit" "$w" "$unit" "$(ratio "$w" "$r")" "$rc" "$wc"
done

echo
echo "| latency | RabbitMQ p50 µs | Warren p50 µs | RabbitMQ p99 µs | Warren p99 µs | RabbitMQ p99.9 µs | Warren p99.9 µs | p99 RabbitMQ / Warren |"
echo "|---|---|---|---|---|---|---|---|"
latency_row() { # name file-stem
  local r50 w50 r99 w99 r999 w999
  r50="$(field "$OUT/$2.rabbit" latency_us.p50 | median)"
  w50="$(field "$OUT/$2.warren" latency_us.p50 | median)"
  r99="$(field "$OUT/$2.rabbit" latency_us.p99 | median)"
  w99="$(field "$OUT/$2.warren" latency_us.p99 | median)"
  r999="$(field "$OUT/$2.rabbit" latency_us.p999 | median)"
  w999="$(field "$OUT/$2.warren" latency_us.p999 | median)"
  printf '| %s | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %s |\n' "$1" "$r50" "$w50" "$r99" "$w99" "$r999" "$w999" "$(ratio "$r99" "$w99")"
}
run lat --latency --rate 5000 --size 16
latency_row "publish to delivery at 5,000 msg/s, 16 B, no-ack" lat
run clat --confirm-latency --persistent --durable --consumers 1 --ack
latency_row "confirm, one persistent message at a time, durable queue" clat

echo
echo "| resources | RabbitMQ | Warren |"
echo "|---|---|---|"
echo "| idle RSS (MiB) | $RABBIT_IDLE_RSS | $WARREN_IDLE_RSS |"
echo "| open file limit | $(awk '/open files/ {print $4}' "/proc/$RABBIT_PID/limits") | $(awk '/open files/ {print $4}' "/proc/$WARREN_PID/limits") |"
echo "| start to accepting connections, empty data dir (ms, median of 5) | $RABBIT_START_MS | $(median <"$OUT/start-ms") |"
if [ -z "${SKIP_COUNTS:-}" ]; then
  # A fresh Warren for each count: the runs above leave its allocator holding memory
  # (the 1 MiB bodies), which would hide what connections and queues cost.
  fresh_warren() {
    kill "$WARREN_PID" 2>/dev/null
    wait "$WARREN_PID" 2>/dev/null || true
    rm -rf "$DATA"
    DATA="$(mktemp -d)"
    $WARREN --bind 127.0.0.1 --port "$PORT" --data-dir "$DATA" --log-level warn &
    WARREN_PID=$!
    wait_port "$PORT"
  }
  count_row() { # label flags...
    local label="$1" r w
    shift
    r="$($PERF --url "$RABBIT_URL" --json --broker-pid "$RABBIT_PID" --queue "count-$$" "$@")"
    w="$($PERF --url "$WARREN_URL" --json --broker-pid "$WARREN_PID" --queue "count-$$" "$@")"
    python3 - "$label" "$r" "$w" <<'EOF'
import json, sys
label, r, w = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
def cell(d):
    text = f"{d['broker_rss_mib']:.1f} MiB RSS ({d['broker_kib_each']:.1f} KiB each, {d['seconds']:.2f} s)"
    if d.get('failed'):
        text += f"; only {d['count']} opened, {d['failed']} failed: {d['error']}"
    return text
print(f"| {label} | {cell(r)} | {cell(w)} |")
EOF
  }
  fresh_warren
  count_row "10,000 connections, one channel each" --connections 10000
  fresh_warren
  count_row "10,000 queues declared" --declare-queues 10000
fi

#!/usr/bin/env bash
# Warren against RabbitMQ 3.10, side by side on this machine, with the same load tool.
#
# Usage: bench/compare.sh [rounds] [seconds-per-run]
#
# Installs RabbitMQ from Debian if it is missing and starts it on 5672 if nothing
# listens there; builds Warren and warren-perf in release mode; starts Warren on a free
# loopback port; then, for each scenario, alternates the two brokers for `rounds`
# rounds and prints the median rates and the Warren/RabbitMQ ratio as a Markdown table.
# Load tests are bounded: each run lasts `seconds-per-run` and stops by itself.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROUNDS="${1:-3}"
SECONDS_PER_RUN="${2:-10}"

if ! command -v rabbitmq-server >/dev/null; then
  echo "installing rabbitmq-server from Debian..." >&2
  apt-get install -y -q rabbitmq-server >/dev/null
fi
if ! (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; then
  echo "starting RabbitMQ..." >&2
  rabbitmq-server -detached
  for _ in $(seq 60); do (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null && break; sleep 1; done
fi
RABBIT_PID="$(pgrep -o beam.smp)"
RABBIT_VERSION="$(rabbitmqctl version 2>/dev/null || echo 3.10)"

cargo build --release --quiet -p warren -p warren-perf
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
DATA="$(mktemp -d)"
./target/release/warren --bind 127.0.0.1 --port "$PORT" --data-dir "$DATA" --log-level warn &
WARREN_PID=$!
trap 'kill $WARREN_PID 2>/dev/null; wait $WARREN_PID 2>/dev/null; rm -rf "$DATA"' EXIT
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null && break; sleep 0.1; done

PERF=./target/release/warren-perf
# name | warren-perf flags
SCENARIOS=(
  "1 publisher, 1 consumer, no-ack, 16 B|--producers 1 --consumers 1 --size 16"
  "persistent 16 B to a durable queue, confirms (1000 in flight), 1 consumer acking|--producers 1 --consumers 1 --size 16 --persistent --durable --confirm 1000 --ack"
  "persistent 1 KiB to a durable queue, confirms (1000 in flight), 1 consumer acking|--producers 1 --consumers 1 --size 1024 --persistent --durable --confirm 1000 --ack"
)

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }

echo "| scenario | RabbitMQ $RABBIT_VERSION consumed msg/s | Warren consumed msg/s | Warren / RabbitMQ | RabbitMQ CPU µs/msg | Warren CPU µs/msg |"
echo "|---|---|---|---|---|---|"
for entry in "${SCENARIOS[@]}"; do
  name="${entry%%|*}"
  flags="${entry#*|}"
  : > /tmp/bench-rabbit.txt
  : > /tmp/bench-warren.txt
  for round in $(seq "$ROUNDS"); do
    # shellcheck disable=SC2086
    $PERF --url amqp://guest:guest@127.0.0.1:5672/%2f --duration "$SECONDS_PER_RUN" --json --quiet \
      --broker-pid "$RABBIT_PID" --queue "bench-$round" $flags >> /tmp/bench-rabbit.txt
    # shellcheck disable=SC2086
    $PERF --url "amqp://guest:guest@127.0.0.1:$PORT/%2f" --duration "$SECONDS_PER_RUN" --json --quiet \
      --broker-pid "$WARREN_PID" --queue "bench-$round" $flags >> /tmp/bench-warren.txt
  done
  r_rate="$(while read -r l; do echo "$l" | field consumed_per_sec; done < /tmp/bench-rabbit.txt | median)"
  w_rate="$(while read -r l; do echo "$l" | field consumed_per_sec; done < /tmp/bench-warren.txt | median)"
  r_cpu="$(while read -r l; do echo "$l" | field broker_cpu_us_per_msg; done < /tmp/bench-rabbit.txt | median)"
  w_cpu="$(while read -r l; do echo "$l" | field broker_cpu_us_per_msg; done < /tmp/bench-warren.txt | median)"
  ratio="$(python3 -c "print(f'{$w_rate/$r_rate:.1f}x' if $r_rate else 'n/a')")"
  printf '| %s | %.0f | %.0f | %s | %.2f | %.2f |\n' "$name" "$r_rate" "$w_rate" "$ratio" "$r_cpu" "$w_cpu"
done

# Confirm latency: one publisher, one persistent message at a time, durable queue, one
# consumer acking.
echo
echo "| confirm latency, one message at a time | RabbitMQ p50 µs | Warren p50 µs | RabbitMQ p99 µs | Warren p99 µs |"
echo "|---|---|---|---|---|"
: > /tmp/bench-rabbit.txt
: > /tmp/bench-warren.txt
for round in $(seq "$ROUNDS"); do
  $PERF --url amqp://guest:guest@127.0.0.1:5672/%2f --duration "$SECONDS_PER_RUN" --json --quiet \
    --queue "lat-$round" --confirm-latency --persistent --durable --consumers 1 --ack >> /tmp/bench-rabbit.txt
  $PERF --url "amqp://guest:guest@127.0.0.1:$PORT/%2f" --duration "$SECONDS_PER_RUN" --json --quiet \
    --queue "lat-$round" --confirm-latency --persistent --durable --consumers 1 --ack >> /tmp/bench-warren.txt
done
lat() { python3 -c "import json,sys; print(json.load(sys.stdin)['latency_us']['$1'])"; }
r50="$(while read -r l; do echo "$l" | lat p50; done < /tmp/bench-rabbit.txt | median)"
w50="$(while read -r l; do echo "$l" | lat p50; done < /tmp/bench-warren.txt | median)"
r99="$(while read -r l; do echo "$l" | lat p99; done < /tmp/bench-rabbit.txt | median)"
w99="$(while read -r l; do echo "$l" | lat p99; done < /tmp/bench-warren.txt | median)"
printf '| persistent 16 B, durable queue | %.0f | %.0f | %.0f | %.0f |\n' "$r50" "$w50" "$r99" "$w99"

#!/usr/bin/env bash
# Memory after expiring and dead-lettering millions of messages: Warren's RSS before,
# at the end of a publishing burst, and once everything has expired.
#
# Usage: bench/expiry-memory.sh [seconds-of-publishing]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SECS="${1:-10}"
cargo build --release --quiet -p warren -p warren-perf
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
DATA="$(mktemp -d)"
./target/release/warren --bind 127.0.0.1 --port "$PORT" --data-dir "$DATA" --log-level warn &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DATA"' EXIT
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null && break; sleep 0.1; done
URL="amqp://guest:guest@127.0.0.1:$PORT/%2f"
rss() { awk '/VmRSS/ {print $2}' "/proc/$PID/status"; }
PERF=./target/release/warren-perf
echo "RSS at start: $(rss) KiB"
# 'sink' drops what reaches it after 1 ms; 'expiring' dead-letters into it after 20 ms.
$PERF --url "$URL" --queue sink --queue-arg x-message-ttl=1 --producers 0 --consumers 0 --duration 1 --keep-queue --quiet >/dev/null
$PERF --url "$URL" --queue expiring --queue-arg x-message-ttl=20 --queue-arg x-dead-letter-exchange= \
  --queue-arg x-dead-letter-routing-key=sink --producers 1 --consumers 0 --duration "$SECS" --keep-queue --json --quiet
echo "RSS right after publishing: $(rss) KiB"
sleep 3
echo "RSS once everything expired: $(rss) KiB"

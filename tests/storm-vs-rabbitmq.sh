#!/usr/bin/env bash
# Random method sequences against RabbitMQ 3.10 and an in-process Warren, answer by
# answer (tests/method_storm.rs, the ignored test). Installs and starts RabbitMQ if it
# is missing, and resets it before each seed: durable objects and bindings between the
# amq.* exchanges would otherwise carry over from one run to the next.
#
# Usage: bash tests/storm-vs-rabbitmq.sh [ROUNDS] [SEED...]
#   defaults: 300 rounds, seeds 1 to 4. WARREN_STORM_DIALECT=0-8 speaks AMQP 0-8 instead
#   of 0-9-1 (random_amqp_0_8_sequences_get_the_answers_rabbitmq_gives).
# Leaves RabbitMQ running; stop it with `rabbitmqctl stop`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

test_name=random_method_sequences_get_the_answers_rabbitmq_gives
if [ "${WARREN_STORM_DIALECT:-}" = "0-8" ]; then
  test_name=random_amqp_0_8_sequences_get_the_answers_rabbitmq_gives
fi
rounds="${1:-300}"
shift || true
seeds=("$@")
[ "${#seeds[@]}" -gt 0 ] || seeds=(1 2 3 4)

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if ! command -v rabbitmq-server >/dev/null; then
  echo "installing rabbitmq-server from Debian..." >&2
  apt-get install -y -q rabbitmq-server >/dev/null
fi
if ! listening 5672; then
  echo "starting RabbitMQ on 127.0.0.1:5672..." >&2
  if ! grep -qs "listeners.tcp.default" /etc/rabbitmq/rabbitmq.conf; then
    echo "listeners.tcp.default = 127.0.0.1:5672" >>/etc/rabbitmq/rabbitmq.conf
  fi
  (cd /var/lib/rabbitmq && setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups \
    env HOME=/var/lib/rabbitmq /usr/lib/rabbitmq/bin/rabbitmq-server -detached)
  for _ in $(seq 600); do listening 5672 && break; sleep 0.05; done
fi
rabbitmqctl await_startup >/dev/null
echo "RabbitMQ $(rabbitmqctl version)"

cargo test -p warren-e2e --test method_storm --no-run --quiet
status=0
for seed in "${seeds[@]}"; do
  rabbitmqctl stop_app >/dev/null
  rabbitmqctl reset >/dev/null
  rabbitmqctl start_app >/dev/null
  echo "== seed $seed, $rounds rounds"
  WARREN_STORM_RABBITMQ=127.0.0.1:5672 WARREN_STORM_SEED="$seed" \
    WARREN_STORM_ROUNDS="$rounds" RUST_BACKTRACE=0 \
    cargo test -p warren-e2e --test method_storm --quiet -- --ignored --exact "$test_name" ||
    status=1
done
exit "$status"

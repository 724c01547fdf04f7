#!/usr/bin/env ruby
# Warren interop recovery scenarios driven by bunny's automatic recovery.
#
# Usage: INTEROP_RESTART_CMD="..." ruby recover.rb [AMQP_URL]
#
# The restart command restarts the broker (same port, same data directory)
# and returns once it accepts connections again.

require_relative "common"

SCENARIO_TIMEOUT = 90 # seconds: a RabbitMQ stop_app/start_app alone takes several
RESTART_TIMEOUT = 60 # seconds for $INTEROP_RESTART_CMD
RECOVERY_TIMEOUT = 20 # seconds from the restart command's return to a recovered connection
DELIVERY_TIMEOUT = 5

def restart_broker
  cmd = ENV["INTEROP_RESTART_CMD"].to_s
  raise Failure, "INTEROP_RESTART_CMD is not set" if cmd.strip.empty?
  step("running INTEROP_RESTART_CMD")
  pid = Process.spawn(cmd, out: $stderr, err: $stderr, pgroup: true)
  deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + RESTART_TIMEOUT
  loop do
    _, status = Process.wait2(pid, Process::WNOHANG)
    if status
      raise Failure, "INTEROP_RESTART_CMD exited with #{status.exitstatus}" unless status.success?
      return
    end
    if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
      Process.kill("KILL", -pid)
      raise Failure, "INTEROP_RESTART_CMD did not finish within #{RESTART_TIMEOUT} s"
    end
    sleep 0.05
  end
end

def scenario_auto_recovery(url)
  recoveries = Mailbox.new
  conn = connect(url, automatically_recover: true, network_recovery_interval: 0.5,
                      recovery_attempts: 60, heartbeat: 5)
  conn.after_recovery_completed { recoveries << :recovered }

  ch = conn.create_channel
  step("queue.declare (durable)")
  q = ch.queue(unique_name("recovery"), durable: true)
  $leftovers << [:queue, q.name]
  ch.confirm_select
  received = Mailbox.new
  step("basic.consume")
  consumer = q.subscribe(manual_ack: true) do |info, _props, body|
    ch.ack(info.delivery_tag)
    received << body
  end

  step("basic.publish before the restart")
  ch.default_exchange.publish("before restart", routing_key: q.name)
  check(ch.wait_for_confirms, "publish before the restart nacked")
  body = received.pop(DELIVERY_TIMEOUT, "delivery before the restart")
  check(body == "before restart", "received #{body.inspect} before the restart")
  # A round trip on the channel: the broker has processed the ack before it stops.
  check(q.message_count.zero?, "queue holds #{q.message_count} messages before the restart")

  restart_broker

  step("waiting for automatic recovery")
  recoveries.pop(RECOVERY_TIMEOUT, "after_recovery_completed callback")
  check(conn.open?, "connection status #{conn.status} after recovery")
  check(ch.open?, "channel not open after recovery")
  check(ch.consumers.key?(consumer.consumer_tag), "consumer #{consumer.consumer_tag} not re-registered")

  step("basic.publish after the recovery")
  ch.default_exchange.publish("after restart", routing_key: q.name)
  check(ch.wait_for_confirms, "publish after the recovery nacked")
  body = received.pop(DELIVERY_TIMEOUT, "delivery after the recovery (consumer not recovered?)")
  check(body == "after restart", "received #{body.inspect} after the recovery, expected \"after restart\"")

  step("queue.delete")
  consumer.cancel
  q.delete
  $leftovers.clear
  step("connection.close")
  conn.close
end

SCENARIOS = %w[auto_recovery].freeze

def main(argv)
  url = argv[0] || DEFAULT_URL
  failed = 0
  SCENARIOS.each do |name|
    reason = run_scenario(url, name, SCENARIO_TIMEOUT) { send("scenario_#{name}", url) }
    report(name, reason)
    failed += 1 if reason
  end
  failed.zero? ? 0 : 1
end

exit(main(ARGV)) if $PROGRAM_NAME == __FILE__

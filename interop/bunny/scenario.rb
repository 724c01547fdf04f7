#!/usr/bin/env ruby
# Warren interop scenarios driven by the bunny client (Ruby).
#
# Usage: ruby scenario.rb [AMQP_URL] [scenario ...]
#
# Prints exactly one line per scenario:
#   PASS bunny <scenario>
#   FAIL bunny <scenario>: <reason>
# and exits non-zero if any scenario failed. Every scenario runs on its own
# connection(s) under a watchdog, and every wait has a timeout.

require "bigdecimal"
require_relative "common"

SCENARIO_TIMEOUT = 20 # seconds, hard limit for one scenario
DELIVERY_TIMEOUT = 5 # seconds, longest wait for one delivery or callback
N_MESSAGES = 100

# Polls until the block returns a truthy value; fails after `timeout` seconds.
def wait_until(timeout, what)
  deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
  loop do
    value = yield
    return value if value
    raise Failure, "#{what} not seen within #{timeout} s" if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
    sleep 0.02
  end
end

# All messages currently in a queue, fetched with basic.get (auto-ack).
def drain(queue)
  bodies = []
  loop do
    _info, _props, body = queue.pop
    break if body.nil?
    bodies << body
  end
  bodies
end

# ---------------------------------------------------------------- connect

def scenario_connect(url)
  conn = connect(url)
  props = conn.server_properties
  check(props.is_a?(Hash), "server properties: #{props.inspect}")
  product = props["product"]
  check(product.is_a?(String) && !product.empty?, "server properties name no product: #{props.inspect}")
  %w[version platform].each do |key|
    check(props[key].is_a?(String) && !props[key].empty?, "server property #{key} is #{props[key].inspect}")
  end
  caps = conn.server_capabilities
  check(caps.is_a?(Hash), "server properties have no capabilities table: #{props.inspect}")
  %w[publisher_confirms basic.nack consumer_cancel_notify exchange_exchange_bindings].each do |cap|
    check(caps[cap] == true, "capability #{cap} is #{caps[cap].inspect}, expected true")
  end
  check(conn.server_authentication_mechanisms.include?("PLAIN"),
        "mechanisms #{conn.server_authentication_mechanisms.inspect} lack PLAIN")
  check(conn.frame_max >= 4096, "negotiated frame_max #{conn.frame_max}")
  check(conn.channel_max.positive?, "negotiated channel_max #{conn.channel_max}")

  step("channel.open")
  ch = conn.create_channel
  check(ch.open?, "channel not open after channel.open-ok")
  step("channel.close")
  ch.close
  check(ch.closed?, "channel not closed after channel.close-ok")
  step("connection.close")
  conn.close
  check(conn.closed?, "connection not closed after connection.close-ok (status #{conn.status})")
end

# ---------------------------------------------------------------- exchange_types

def scenario_exchange_types(url)
  conn = connect(url)
  ch = conn.create_channel
  base = unique_name("xt")
  step("exchange.declare x4")
  direct = ch.direct("#{base}.direct")
  fanout = ch.fanout("#{base}.fanout")
  topic = ch.topic("#{base}.topic")
  headers = ch.headers("#{base}.headers")
  exchanges = [direct, fanout, topic, headers]
  exchanges.each { |x| $leftovers << [:exchange, x.name] }

  step("queue.declare + queue.bind")
  q = lambda do |tag|
    ch.queue("#{base}.#{tag}", exclusive: true)
  end
  d_red = q.call("d-red").bind(direct, routing_key: "red")
  d_green = q.call("d-green").bind(direct, routing_key: "green")
  f_one = q.call("f-one").bind(fanout)
  f_two = q.call("f-two").bind(fanout, routing_key: "ignored")
  t_star = q.call("t-star").bind(topic, routing_key: "a.*")
  t_hash = q.call("t-hash").bind(topic, routing_key: "a.#")
  t_end = q.call("t-end").bind(topic, routing_key: "#.z")
  h_all = q.call("h-all").bind(headers, arguments: { "x-match" => "all", "format" => "pdf", "type" => "report" })
  h_any = q.call("h-any").bind(headers, arguments: { "x-match" => "any", "format" => "pdf", "type" => "report" })

  step("confirm.select")
  ch.confirm_select
  step("basic.publish")
  %w[red green blue].each { |key| direct.publish("direct #{key}", routing_key: key) }
  fanout.publish("fanout 1", routing_key: "whatever")
  %w[a.b a.b.c a x.z z b.a].each { |key| topic.publish("topic #{key}", routing_key: key) }
  headers.publish("headers both", headers: { "format" => "pdf", "type" => "report" })
  headers.publish("headers one", headers: { "format" => "pdf", "type" => "log" })
  headers.publish("headers none", headers: { "format" => "zip" })
  step("wait_for_confirms")
  check(ch.wait_for_confirms, "a publish was nacked: #{ch.nacked_set.to_a.inspect}")

  expected = {
    d_red => ["direct red"],
    d_green => ["direct green"],
    f_one => ["fanout 1"],
    f_two => ["fanout 1"],
    t_star => ["topic a.b"],
    t_hash => ["topic a.b", "topic a.b.c", "topic a"],
    t_end => ["topic x.z", "topic z"],
    h_all => ["headers both"],
    h_any => ["headers both", "headers one"],
  }
  expected.each do |queue, want|
    step("basic.get from #{queue.name}")
    got = drain(queue)
    check(got == want, "queue #{queue.name.sub("#{base}.", '')} got #{got.inspect}, expected #{want.inspect}")
  end

  step("exchange.delete x4")
  exchanges.each(&:delete)
  step("exchange.declare passive (after delete)")
  gone = exchanges.reject { |x| conn.exchange_exists?(x.name) }
  check(gone.size == 4, "exchanges still exist after delete: #{(exchanges - gone).map(&:name).inspect}")
  conn.close
end

# ---------------------------------------------------------------- publish_consume_ack

def scenario_publish_consume_ack(url)
  conn = connect(url)
  ch = conn.create_channel
  step("queue.declare")
  q = ch.queue(unique_name("pca"), exclusive: true)
  check(q.message_count.zero?, "fresh queue holds #{q.message_count} messages")
  step("confirm.select")
  ch.confirm_select
  step("basic.publish x#{N_MESSAGES}")
  x = ch.default_exchange
  N_MESSAGES.times do |i|
    x.publish("message #{i}", routing_key: q.name, message_id: "m#{i}", persistent: i.even?,
                              headers: { "seq" => i })
  end
  step("wait_for_confirms")
  check(ch.wait_for_confirms, "nacked publishes: #{ch.nacked_set.to_a.inspect}")
  step("queue.declare passive (after publishing)")
  check(q.message_count == N_MESSAGES, "queue holds #{q.message_count} messages, expected #{N_MESSAGES}")

  box = Mailbox.new
  step("basic.consume")
  consumer = q.subscribe(manual_ack: true) do |delivery_info, properties, payload|
    ch.ack(delivery_info.delivery_tag)
    box << [delivery_info, properties, payload]
  end
  last_tag = 0
  N_MESSAGES.times do |i|
    step("waiting for delivery ##{i}")
    info, props, body = box.pop(DELIVERY_TIMEOUT, "delivery ##{i}")
    check(body == "message #{i}", "delivery ##{i} has body #{body.inspect} (out of order?)")
    check(props.message_id == "m#{i}" && props.headers == { "seq" => i },
          "delivery ##{i} has properties #{props.to_hash.inspect}")
    check(props.delivery_mode == (i.even? ? 2 : 1), "delivery ##{i} has delivery_mode #{props.delivery_mode}")
    check(info.consumer_tag == consumer.consumer_tag, "delivery ##{i} for consumer #{info.consumer_tag}")
    check(info.exchange == "" && info.routing_key == q.name,
          "delivery ##{i} via exchange #{info.exchange.inspect} key #{info.routing_key.inspect}")
    check(!info.redelivered?, "delivery ##{i} flagged redelivered")
    check(info.delivery_tag.to_i > last_tag, "delivery tag #{info.delivery_tag.to_i} not increasing")
    last_tag = info.delivery_tag.to_i
  end
  step("basic.cancel")
  consumer.cancel
  check(box.size.zero?, "#{box.size} deliveries beyond the #{N_MESSAGES} published")
  step("queue.declare passive (after acks)")
  check(q.message_count.zero?, "queue holds #{q.message_count} messages after all were acked")
  check(q.consumer_count.zero?, "queue has #{q.consumer_count} consumers after basic.cancel")
  ch.close
  conn.close
end

# ---------------------------------------------------------------- nack_requeue

def scenario_nack_requeue(url)
  conn = connect(url)
  ch = conn.create_channel
  step("queue.declare")
  q = ch.queue(unique_name("nack"), exclusive: true)
  ch.confirm_select
  step("basic.publish")
  ch.default_exchange.publish("bounce", routing_key: q.name, message_id: "nack-1")
  check(ch.wait_for_confirms, "publish nacked")

  box = Mailbox.new
  step("basic.consume")
  q.subscribe(manual_ack: true) { |info, props, body| box << [info, props, body] }

  step("first delivery")
  info, props, body = box.pop(DELIVERY_TIMEOUT, "first delivery")
  check(body == "bounce" && props.message_id == "nack-1", "first delivery: #{body.inspect} #{props.to_hash.inspect}")
  check(!info.redelivered?, "first delivery flagged redelivered")
  ch.nack(info.delivery_tag, false, true) # basic.nack, requeue

  step("delivery after basic.nack(requeue=true)")
  info2, props2, body2 = box.pop(DELIVERY_TIMEOUT, "redelivery after basic.nack(requeue=true)")
  check(body2 == "bounce" && props2.message_id == "nack-1", "second delivery: #{body2.inspect}")
  check(info2.redelivered?, "delivery after nack(requeue=true) not flagged redelivered")
  check(info2.delivery_tag.to_i > info.delivery_tag.to_i, "redelivery reused delivery tag #{info2.delivery_tag.to_i}")
  ch.reject(info2.delivery_tag, true) # basic.reject, requeue

  step("delivery after basic.reject(requeue=true)")
  info3, _props3, body3 = box.pop(DELIVERY_TIMEOUT, "redelivery after basic.reject(requeue=true)")
  check(body3 == "bounce", "third delivery: #{body3.inspect}")
  check(info3.redelivered?, "delivery after reject(requeue=true) not flagged redelivered")
  ch.nack(info3.delivery_tag, false, false) # basic.nack, no requeue: dropped

  step("after basic.nack(requeue=false)")
  sleep 0.3 # a wrongly requeued message would be redelivered at once
  check(box.size.zero?, "message delivered again after nack(requeue=false)")
  check(q.message_count.zero?, "queue holds #{q.message_count} messages after nack(requeue=false)")
  conn.close
end

# ---------------------------------------------------------------- basic_get

# Bunny's GetResponse does not expose basic.get-ok's message-count field;
# it keeps the decoded method frame in @get_ok.
def get_ok_message_count(info)
  info.instance_variable_get(:@get_ok).message_count
end

def scenario_basic_get(url)
  conn = connect(url)
  ch = conn.create_channel
  step("queue.declare")
  q = ch.queue(unique_name("get"), exclusive: true)
  step("basic.get on an empty queue")
  info, props, body = q.pop(manual_ack: true)
  check(info.nil? && props.nil? && body.nil?, "basic.get on an empty queue returned #{body.inspect}")

  ch.confirm_select
  step("basic.publish x3")
  3.times { |i| ch.default_exchange.publish("get #{i + 1}", routing_key: q.name) }
  check(ch.wait_for_confirms, "publish nacked")

  step("basic.get #1 (manual ack)")
  info, _props, body = q.pop(manual_ack: true)
  check(body == "get 1", "first get returned #{body.inspect}")
  check(!info.redelivered?, "first get flagged redelivered")
  check(get_ok_message_count(info) == 2, "first get-ok message_count #{get_ok_message_count(info)}, expected 2")
  check(info.exchange == "" && info.routing_key == q.name, "first get: exchange #{info.exchange.inspect} key #{info.routing_key.inspect}")
  ch.ack(info.delivery_tag)

  step("basic.get #2 (no-ack)")
  info, _props, body = q.pop(manual_ack: false)
  check(body == "get 2", "second get returned #{body.inspect}")
  check(get_ok_message_count(info) == 1, "second get-ok message_count #{get_ok_message_count(info)}, expected 1")

  step("basic.get #3 (manual ack)")
  info, _props, body = q.pop(manual_ack: true)
  check(body == "get 3", "third get returned #{body.inspect}")
  check(get_ok_message_count(info) == 0, "third get-ok message_count #{get_ok_message_count(info)}, expected 0")
  ch.reject(info.delivery_tag, true)

  step("basic.get #4 (after reject with requeue)")
  info, _props, body = q.pop(manual_ack: true)
  check(body == "get 3", "get after reject returned #{body.inspect}")
  check(info.redelivered?, "get after reject(requeue=true) not flagged redelivered")
  check(get_ok_message_count(info) == 0, "fourth get-ok message_count #{get_ok_message_count(info)}, expected 0")
  ch.ack(info.delivery_tag)

  step("basic.get on the drained queue")
  info, _props, body = q.pop(manual_ack: true)
  check(info.nil? && body.nil?, "basic.get on the drained queue returned #{body.inspect}, expected get-empty")
  step("queue.declare passive")
  check(q.message_count.zero?, "queue holds #{q.message_count} messages after all gets")
  conn.close
end

# ---------------------------------------------------------------- prefetch

def scenario_prefetch(url)
  conn = connect(url)
  ch = conn.create_channel
  step("queue.declare")
  q = ch.queue(unique_name("qos"), exclusive: true)
  ch.confirm_select
  step("basic.publish x20")
  20.times { |i| ch.default_exchange.publish("qos #{i}", routing_key: q.name) }
  check(ch.wait_for_confirms, "publish nacked")

  step("basic.qos(5)")
  ch.prefetch(5)
  box = Mailbox.new
  step("basic.consume")
  q.subscribe(manual_ack: true) { |info, _props, body| box << [info, body] }
  held = []
  5.times do |i|
    held << box.pop(DELIVERY_TIMEOUT, "delivery ##{i} of the first 5")
  end
  step("waiting for a 6th unacked delivery")
  sleep 0.5
  check(box.size.zero?, "#{5 + box.size} deliveries outstanding with prefetch 5 and nothing acked")
  check(held.map(&:last) == (0...5).map { |i| "qos #{i}" }, "first deliveries #{held.map(&:last).inspect}")

  step("basic.ack of one delivery")
  ch.ack(held.first.first.delivery_tag)
  info, body = box.pop(DELIVERY_TIMEOUT, "delivery after acking one")
  check(body == "qos 5", "delivery after the ack was #{body.inspect}, expected \"qos 5\"")
  step("waiting for a 7th delivery")
  sleep 0.3
  check(box.size.zero?, "#{box.size} extra deliveries after acking only one")
  ch.ack(info.delivery_tag)
  conn.close
end

# ---------------------------------------------------------------- publisher_confirms

def scenario_publisher_confirms(url)
  conn = connect(url)
  ch = conn.create_channel
  step("queue.declare")
  q = ch.queue(unique_name("confirm"), exclusive: true)
  acked = {}
  nacked = []
  lock = Mutex.new
  step("confirm.select")
  ch.confirm_select(proc do |tag, multiple, nack|
    lock.synchronize do
      if nack
        nacked << tag
      elsif multiple
        (1..tag).each { |t| acked[t] = true }
      else
        acked[tag] = true
      end
    end
  end)
  check(ch.using_publisher_confirms?, "channel not in confirm mode after confirm.select-ok")
  step("basic.publish x#{N_MESSAGES}")
  N_MESSAGES.times { |i| ch.default_exchange.publish("confirm #{i}", routing_key: q.name) }
  check(ch.next_publish_seq_no == N_MESSAGES + 1, "next publish seq no #{ch.next_publish_seq_no}")
  step("wait_for_confirms")
  all_acked = ch.wait_for_confirms
  check(all_acked, "wait_for_confirms reported nacks: #{ch.nacked_set.to_a.inspect}")
  check(ch.unconfirmed_set.empty?, "unconfirmed after wait_for_confirms: #{ch.unconfirmed_set.to_a.inspect}")
  lock.synchronize do
    check(nacked.empty?, "basic.nack for #{nacked.inspect}")
    missing = (1..N_MESSAGES).reject { |t| acked[t] }
    check(missing.empty?, "no basic.ack for delivery tags #{missing.first(10).inspect}")
    extra = acked.keys.reject { |t| t.between?(1, N_MESSAGES) }
    check(extra.empty?, "basic.ack for unknown delivery tags #{extra.first(10).inspect}")
  end
  step("queue.declare passive")
  check(q.message_count == N_MESSAGES, "queue holds #{q.message_count} of #{N_MESSAGES} confirmed messages")
  conn.close
end

# ---------------------------------------------------------------- mandatory_return

def scenario_mandatory_return(url)
  conn = connect(url)
  ch = conn.create_channel
  step("exchange.declare")
  x = ch.direct(unique_name("return"))
  $leftovers << [:exchange, x.name]
  returns = Mailbox.new
  x.on_return { |return_info, properties, content| returns << [return_info, properties, content] }
  ch.confirm_select
  step("basic.publish mandatory")
  x.publish("nobody wants me", routing_key: "no.such.binding", mandatory: true, message_id: "ret-1",
                               headers: { "why" => "unroutable" })
  step("waiting for basic.return")
  info, props, body = returns.pop(DELIVERY_TIMEOUT, "basic.return")
  check(info.reply_code == 312, "basic.return reply_code #{info.reply_code}, expected 312")
  check(info.reply_text == "NO_ROUTE", "basic.return reply_text #{info.reply_text.inspect}, expected \"NO_ROUTE\"")
  check(info.exchange == x.name && info.routing_key == "no.such.binding",
        "basic.return for exchange #{info.exchange.inspect} key #{info.routing_key.inspect}")
  check(body == "nobody wants me", "returned body #{body.inspect}")
  check(props.message_id == "ret-1" && props.headers == { "why" => "unroutable" },
        "returned properties #{props.to_hash.inspect}")
  step("wait_for_confirms (unroutable message)")
  check(ch.wait_for_confirms, "the returned message was nacked, expected basic.ack")
  step("exchange.delete")
  x.delete
  conn.close
end

# ---------------------------------------------------------------- transactions

def scenario_transactions(url)
  conn = connect(url)
  ch = conn.create_channel
  step("queue.declare")
  q = ch.queue(unique_name("tx"), exclusive: true)
  step("tx.select")
  ch.tx_select
  check(ch.using_tx?, "channel not transactional after tx.select-ok")
  step("basic.publish + tx.rollback")
  ch.default_exchange.publish("rolled back", routing_key: q.name)
  ch.tx_rollback
  step("queue.declare passive (after rollback)")
  check(q.message_count.zero?, "queue holds #{q.message_count} messages after tx.rollback")
  step("basic.publish (uncommitted)")
  ch.default_exchange.publish("committed", routing_key: q.name)
  check(q.message_count.zero?, "uncommitted publish visible: queue holds #{q.message_count} messages")
  step("tx.commit")
  ch.tx_commit
  step("basic.get (after commit)")
  info, _props, body = q.pop(manual_ack: true)
  check(body == "committed", "basic.get after commit returned #{body.inspect}, expected \"committed\"")
  ch.ack(info.delivery_tag)
  step("tx.commit (ack)")
  ch.tx_commit
  step("basic.get (drained)")
  _info, _props, body = q.pop
  check(body.nil?, "queue still holds #{body.inspect} after the committed ack")
  conn.close
end

# ---------------------------------------------------------------- rpc / direct_reply_to

# The RPC server: consumes `queue_name` on its own connection and answers each
# request to its reply_to with the same correlation_id.
def start_rpc_server(url, queue_name, seen_reply_to)
  conn = connect(url)
  ch = conn.create_channel
  step("server queue.declare")
  q = ch.queue(queue_name, exclusive: true)
  step("server basic.consume")
  q.subscribe(manual_ack: true) do |info, props, body|
    seen_reply_to << props.reply_to
    ch.default_exchange.publish("reply to #{body}", routing_key: props.reply_to,
                                                    correlation_id: props.correlation_id)
    ch.ack(info.delivery_tag)
  end
  q
end

def rpc_calls(ch, request_queue, reply_to, replies, count)
  step("publishing #{count} requests")
  pending = {}
  count.times do |i|
    corr = SecureRandom.uuid
    pending[corr] = "request #{i}"
    ch.default_exchange.publish("request #{i}", routing_key: request_queue, reply_to: reply_to,
                                                correlation_id: corr)
  end
  count.times do |i|
    step("waiting for reply ##{i}")
    _info, props, body = replies.pop(DELIVERY_TIMEOUT, "RPC reply ##{i}")
    request = pending.delete(props.correlation_id)
    check(request, "reply with unknown correlation_id #{props.correlation_id.inspect}: #{body.inspect}")
    check(body == "reply to #{request}", "reply for #{request.inspect} was #{body.inspect}")
  end
end

def scenario_rpc(url)
  seen = Mailbox.new
  request_queue = unique_name("rpc")
  start_rpc_server(url, request_queue, seen)
  conn = connect(url)
  ch = conn.create_channel
  step("client queue.declare (server-named, exclusive)")
  reply_q = ch.queue("", exclusive: true)
  check(!reply_q.name.empty?, "server-named queue has an empty name")
  replies = Mailbox.new
  step("client basic.consume")
  reply_q.subscribe(manual_ack: false) { |info, props, body| replies << [info, props, body] }
  rpc_calls(ch, request_queue, reply_q.name, replies, 5)
  5.times do
    got = seen.pop(1, "reply_to seen by the server")
    check(got == reply_q.name, "server saw reply_to #{got.inspect}, expected #{reply_q.name.inspect}")
  end
  conn.close
end

def scenario_direct_reply_to(url)
  seen = Mailbox.new
  request_queue = unique_name("drt")
  start_rpc_server(url, request_queue, seen)
  conn = connect(url)
  ch = conn.create_channel
  replies = Mailbox.new
  step("queue.declare amq.rabbitmq.reply-to")
  reply_q = ch.queue("amq.rabbitmq.reply-to")
  step("basic.consume amq.rabbitmq.reply-to (no-ack)")
  reply_q.subscribe(manual_ack: false) { |info, props, body| replies << [info, props, body] }
  rpc_calls(ch, request_queue, "amq.rabbitmq.reply-to", replies, 3)
  3.times do
    got = seen.pop(1, "reply_to seen by the server")
    check(got.is_a?(String) && got.start_with?("amq.rabbitmq.reply-to.") && got.size > 22,
          "server saw reply_to #{got.inspect}, expected amq.rabbitmq.reply-to.<token>")
  end
  conn.close
end

# ---------------------------------------------------------------- dead_letter / ttl

def dead_letter_setup(ch, base, routing_key)
  step("exchange.declare (dead-letter exchange)")
  dlx = ch.direct("#{base}.dlx")
  $leftovers << [:exchange, dlx.name]
  step("queue.declare + queue.bind (dead-letter queue)")
  dlq = ch.queue("#{base}.dlq", exclusive: true).bind(dlx, routing_key: routing_key)
  [dlx, dlq]
end

def check_x_death(props, reason:, queue:, what:)
  deaths = props.headers && props.headers["x-death"]
  check(deaths.is_a?(Array) && !deaths.empty?, "#{what}: no x-death header (headers #{props.headers.inspect})")
  death = deaths.first
  check(death.is_a?(Hash), "#{what}: x-death entry is #{death.inspect}")
  check(death["count"] == 1 && death["count"].is_a?(Integer), "#{what}: x-death count #{death['count'].inspect}, expected 1")
  check(death["reason"] == reason, "#{what}: x-death reason #{death['reason'].inspect}, expected #{reason.inspect}")
  check(death["queue"] == queue, "#{what}: x-death queue #{death['queue'].inspect}, expected #{queue.inspect}")
  check(death["exchange"] == "", "#{what}: x-death exchange #{death['exchange'].inspect}, expected \"\"")
  check(death["routing-keys"] == [queue], "#{what}: x-death routing-keys #{death['routing-keys'].inspect}")
  check(death["time"].is_a?(Time), "#{what}: x-death time #{death['time'].inspect}")
  check(props.headers["x-first-death-reason"] == reason && props.headers["x-first-death-queue"] == queue,
        "#{what}: x-first-death-* headers #{props.headers.inspect}")
  death
end

def scenario_dead_letter(url)
  conn = connect(url)
  ch = conn.create_channel
  base = unique_name("dlx")
  dlx, dlq = dead_letter_setup(ch, base, "dead")
  step("queue.declare (with x-dead-letter-exchange)")
  src = ch.queue("#{base}.src", exclusive: true,
                                arguments: { "x-dead-letter-exchange" => dlx.name, "x-dead-letter-routing-key" => "dead" })
  dead = Mailbox.new
  step("basic.consume (dead-letter queue)")
  dlq.subscribe(manual_ack: true) { |info, props, body| dead << [info, props, body] }
  ch.confirm_select
  step("basic.publish")
  ch.default_exchange.publish("doomed", routing_key: src.name, message_id: "dl-1", headers: { "keep" => "me" })
  check(ch.wait_for_confirms, "publish nacked")
  step("basic.get + basic.reject(requeue=false)")
  info, _props, body = src.pop(manual_ack: true)
  check(body == "doomed", "basic.get from the source queue returned #{body.inspect}")
  ch.reject(info.delivery_tag, false)

  step("waiting for the dead-lettered message")
  dinfo, dprops, dbody = dead.pop(DELIVERY_TIMEOUT, "dead-lettered message")
  check(dbody == "doomed" && dprops.message_id == "dl-1", "dead-lettered #{dbody.inspect} #{dprops.to_hash.inspect}")
  check(dinfo.exchange == dlx.name && dinfo.routing_key == "dead",
        "dead-lettered via exchange #{dinfo.exchange.inspect} key #{dinfo.routing_key.inspect}")
  check(dprops.headers["keep"] == "me", "original header lost: #{dprops.headers.inspect}")
  check_x_death(dprops, reason: "rejected", queue: src.name, what: "dead-lettered message")
  ch.ack(dinfo.delivery_tag)
  check(src.message_count.zero?, "source queue holds #{src.message_count} messages after the reject")
  step("exchange.delete")
  dlx.delete
  conn.close
end

TTL_MS = 400

def scenario_ttl(url)
  conn = connect(url)
  ch = conn.create_channel
  base = unique_name("ttl")
  dlx, dlq = dead_letter_setup(ch, base, "expired")
  dl_args = { "x-dead-letter-exchange" => dlx.name, "x-dead-letter-routing-key" => "expired" }
  step("queue.declare (x-message-ttl)")
  queue_ttl = ch.queue("#{base}.queue-ttl", exclusive: true, arguments: dl_args.merge("x-message-ttl" => TTL_MS))
  step("queue.declare (for per-message expiration)")
  msg_ttl = ch.queue("#{base}.msg-ttl", exclusive: true, arguments: dl_args)
  dead = Mailbox.new
  step("basic.consume (dead-letter queue)")
  dlq.subscribe(manual_ack: false) { |info, props, body| dead << [info, props, body] }

  ch.confirm_select
  step("basic.publish x2")
  ch.default_exchange.publish("queue ttl", routing_key: queue_ttl.name)
  ch.default_exchange.publish("message ttl", routing_key: msg_ttl.name, expiration: TTL_MS.to_s)
  check(ch.wait_for_confirms, "publish nacked")

  step("waiting for 2 expired messages")
  got = {}
  2.times do |i|
    _info, props, body = dead.pop(TTL_MS / 1000.0 + DELIVERY_TIMEOUT, "expired message ##{i}")
    got[body] = props
  end
  check(got.keys.sort == ["message ttl", "queue ttl"], "dead-lettered #{got.keys.inspect}")
  check_x_death(got["queue ttl"], reason: "expired", queue: queue_ttl.name, what: "x-message-ttl")
  death = check_x_death(got["message ttl"], reason: "expired", queue: msg_ttl.name, what: "expiration")
  check(death["original-expiration"] == TTL_MS.to_s,
        "expiration: x-death original-expiration #{death['original-expiration'].inspect}, expected #{TTL_MS.to_s.inspect}")
  check(got["message ttl"].expiration.nil?,
        "dead-lettered message kept its expiration #{got['message ttl'].expiration.inspect}")

  step("basic.get from the expired queues")
  [queue_ttl, msg_ttl].each do |q|
    _info, _props, body = q.pop
    check(body.nil?, "#{q.name} still returns #{body.inspect} after the TTL")
  end
  step("exchange.delete")
  dlx.delete
  conn.close
end

# ---------------------------------------------------------------- priority

def scenario_priority(url)
  conn = connect(url)
  ch = conn.create_channel
  step("queue.declare (x-max-priority)")
  q = ch.queue(unique_name("prio"), exclusive: true, arguments: { "x-max-priority" => 10 })
  ch.confirm_select
  step("basic.publish priorities 1, 5, 9")
  [1, 5, 9].each { |p| ch.default_exchange.publish("priority #{p}", routing_key: q.name, priority: p) }
  check(ch.wait_for_confirms, "publish nacked")
  box = Mailbox.new
  step("basic.consume")
  q.subscribe(manual_ack: true) do |info, props, body|
    ch.ack(info.delivery_tag)
    box << [props.priority, body]
  end
  order = 3.times.map { |i| box.pop(DELIVERY_TIMEOUT, "delivery ##{i}") }
  want = [9, 5, 1].map { |p| [p, "priority #{p}"] }
  check(order == want, "deliveries in order #{order.inspect}, expected #{want.inspect}")
  conn.close
end

# ---------------------------------------------------------------- large_message / empty_message

def scenario_large_message(url)
  conn = connect(url)
  ch = conn.create_channel
  step("queue.declare")
  q = ch.queue(unique_name("large"), exclusive: true)
  payload = Random.new(42).bytes(5 * 1024 * 1024)
  ch.confirm_select
  step("basic.publish 5 MiB")
  ch.default_exchange.publish(payload, routing_key: q.name, content_type: "application/octet-stream")
  check(ch.wait_for_confirms, "publish nacked")
  box = Mailbox.new
  step("basic.consume")
  q.subscribe(manual_ack: true) do |info, _props, body|
    ch.ack(info.delivery_tag)
    box << body
  end
  body = box.pop(DELIVERY_TIMEOUT * 2, "5 MiB delivery")
  check(body.bytesize == payload.bytesize, "body is #{body.bytesize} bytes, sent #{payload.bytesize}")
  if body.b != payload
    first = (0...payload.bytesize).find { |i| body.getbyte(i) != payload.getbyte(i) }
    raise Failure, "body differs from byte #{first}"
  end
  conn.close
end

def scenario_empty_message(url)
  conn = connect(url)
  ch = conn.create_channel
  step("queue.declare")
  q = ch.queue(unique_name("empty"), exclusive: true)
  ch.confirm_select
  step("basic.publish (empty body)")
  ch.default_exchange.publish("", routing_key: q.name, content_type: "text/plain", message_id: "empty-1",
                                  headers: { "empty" => true }, persistent: true)
  check(ch.wait_for_confirms, "publish nacked")
  box = Mailbox.new
  step("basic.consume")
  q.subscribe(manual_ack: true) do |info, props, body|
    ch.ack(info.delivery_tag)
    box << [props, body]
  end
  props, body = box.pop(DELIVERY_TIMEOUT, "empty delivery")
  check(body == "", "body #{body.inspect}, expected empty")
  check(props.content_type == "text/plain" && props.message_id == "empty-1" &&
        props.headers == { "empty" => true } && props.delivery_mode == 2,
        "properties #{props.to_hash.inspect}")
  conn.close
end

# ---------------------------------------------------------------- properties

# One value of every field-table type amq-protocol can encode. It encodes every
# Integer as 'l', Float as 'd', AMQ::Protocol::Float32Bit as 'f', Time as 'T',
# BigDecimal as 'D' (only whole numbers round-trip: its encoder mis-scales
# fractions), nil as 'V', Hash as 'F', Array as 'A' and every String as 'S'
# (it has no way to send a byte array 'x').
HEADERS = {
  "x-string" => "héllo wörld ✓",
  "x-empty-string" => "",
  "x-long" => 2**40 + 7,
  "x-negative" => -123_456,
  "x-zero" => 0,
  "x-max-long" => 2**63 - 1,
  "x-min-long" => -2**63,
  "x-double" => 3.25,
  "x-float" => AMQ::Protocol::Float32Bit.new(1.5),
  "x-true" => true,
  "x-false" => false,
  "x-decimal" => BigDecimal("42"),
  "x-timestamp" => Time.at(1_795_000_000),
  "x-void" => nil,
  "x-array" => [1, "two", true, [3, "four"], { "k" => "v" }, nil, 2.5, Time.at(1_795_000_001)],
  "x-empty-array" => [],
  "x-table" => { "nested" => "yes", "depth" => { "n" => 2, "list" => [false, 7] } },
  "x-empty-table" => {},
}.freeze

# Deep comparison that also catches a change of type (Integer vs Float, ...).
def same_value?(got, want)
  case want
  when AMQ::Protocol::Float32Bit then got.is_a?(Float) && got == want.value
  when String then got.is_a?(String) && got.b == want.b
  when true, false, nil then got.equal?(want)
  when Integer then got.is_a?(Integer) && got == want
  when Float then got.is_a?(Float) && got == want
  when BigDecimal then got.is_a?(BigDecimal) && got == want
  when Time then got.is_a?(Time) && got.to_i == want.to_i
  when Array then got.is_a?(Array) && got.size == want.size && got.zip(want).all? { |g, w| same_value?(g, w) }
  when Hash
    got.is_a?(Hash) && got.keys.sort == want.keys.sort && want.all? { |k, v| same_value?(got[k], v) }
  else got == want
  end
end

def scenario_properties(url)
  conn = connect(url)
  user = login_user(url)
  ch = conn.create_channel
  step("queue.declare")
  q = ch.queue(unique_name("props"), exclusive: true)
  sent = {
    content_type: "application/json",
    content_encoding: "utf-8",
    headers: HEADERS,
    delivery_mode: 2,
    priority: 7,
    correlation_id: "corr-#{SecureRandom.hex(4)}",
    reply_to: "bunny.reply.queue",
    expiration: "60000",
    message_id: "msg-#{SecureRandom.hex(4)}",
    timestamp: 1_795_000_000,
    type: "interop.test",
    user_id: user,
    app_id: "warren-interop",
  }
  ch.confirm_select
  step("basic.publish (every property)")
  ch.default_exchange.publish('{"all": "properties"}', sent.merge(routing_key: q.name))
  check(ch.wait_for_confirms, "publish nacked")
  box = Mailbox.new
  step("basic.consume")
  q.subscribe(manual_ack: true) do |info, props, body|
    ch.ack(info.delivery_tag)
    box << [props, body]
  end
  props, body = box.pop(DELIVERY_TIMEOUT, "delivery")
  check(body == '{"all": "properties"}', "body #{body.inspect}")

  sent.each do |key, want|
    got = props.public_send(key)
    case key
    when :headers
      check(got.is_a?(Hash), "headers came back as #{got.inspect}")
      (got.keys | want.keys).sort.each do |h|
        check(got.key?(h), "header #{h} missing")
        check(want.key?(h), "unexpected header #{h}=#{got[h].inspect}")
        check(same_value?(got[h], want[h]), "header #{h} came back as #{got[h].inspect} (#{got[h].class}), sent #{want[h].inspect}")
      end
    when :timestamp
      check(got.is_a?(Time) && got.to_i == want, "timestamp came back as #{got.inspect}, sent #{want}")
    else
      check(got == want, "property #{key} came back as #{got.inspect}, sent #{want.inspect}")
    end
  end
  check(props.cluster_id.nil?, "unset cluster_id came back as #{props.cluster_id.inspect}")
  conn.close
end

# ---------------------------------------------------------------- cancel_notify

def scenario_cancel_notify(url)
  conn = connect(url)
  ch = conn.create_channel
  step("queue.declare")
  q = ch.queue(unique_name("cancel"), exclusive: true)
  cancels = Mailbox.new
  step("basic.consume")
  consumer = q.subscribe(manual_ack: true, on_cancellation: ->(basic_cancel) { cancels << basic_cancel }) { |*_| nil }
  step("queue.delete on another channel")
  other = conn.create_channel
  other.queue_delete(q.name)
  step("waiting for basic.cancel")
  cancel = cancels.pop(DELIVERY_TIMEOUT, "basic.cancel from the broker")
  check(cancel.consumer_tag == consumer.consumer_tag,
        "basic.cancel for consumer #{cancel.consumer_tag.inspect}, expected #{consumer.consumer_tag.inspect}")
  step("channel still usable after the cancel")
  check(ch.open?, "consumer channel closed by the cancel")
  probe = ch.queue("", exclusive: true)
  check(!probe.name.empty?, "queue.declare on the consumer channel failed after the cancel")
  other.close
  conn.close
end

# ---------------------------------------------------------------- heartbeat

HEARTBEAT = 2 # seconds (with 1 s bunny reads with a 2 s socket timeout: flaky on a loaded machine)

def scenario_heartbeat(url)
  conn = connect(url, heartbeat: HEARTBEAT)
  check(conn.heartbeat == HEARTBEAT, "negotiated heartbeat #{conn.heartbeat.inspect}, asked for #{HEARTBEAT}")
  ch = conn.create_channel
  step("queue.declare")
  q = ch.queue(unique_name("hb"), exclusive: true)
  step("idle for #{2 * HEARTBEAT + 0.5} s")
  sleep 2 * HEARTBEAT + 0.5
  check(conn.open?, "connection no longer open after idling (status #{conn.status})")
  check(ch.open?, "channel no longer open after idling")
  step("basic.publish + basic.get after idling")
  ch.default_exchange.publish("still alive", routing_key: q.name)
  body = wait_until(DELIVERY_TIMEOUT, "message published after idling") { q.pop[2] }
  check(body == "still alive", "basic.get after idling returned #{body.inspect}")
  conn.close
end

# ---------------------------------------------------------------- runner

SCENARIOS = %w[
  connect exchange_types publish_consume_ack nack_requeue basic_get prefetch publisher_confirms
  mandatory_return transactions rpc direct_reply_to dead_letter ttl priority large_message
  empty_message properties cancel_notify heartbeat
].freeze

def main(argv)
  url = argv[0] || DEFAULT_URL
  names = argv[1..] && !argv[1..].empty? ? argv[1..] : SCENARIOS
  failed = 0
  names.each do |name|
    reason = run_scenario(url, name, SCENARIO_TIMEOUT) { send("scenario_#{name}", url) }
    report(name, reason)
    failed += 1 if reason
  end
  failed.zero? ? 0 : 1
end

exit(main(ARGV)) if $PROGRAM_NAME == __FILE__

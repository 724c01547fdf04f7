<?php
// Warren interop scenarios driven by php-amqplib (AMQPStreamConnection).
//
// Usage: php scenario.php [AMQP_URL] [scenario ...]
//
// Prints exactly one line per scenario:
//   PASS php-amqplib <scenario>
//   FAIL php-amqplib <scenario>: <reason>
// and exits non-zero if any scenario failed.
//
// php-amqplib is single-threaded: nothing happens on a connection unless the
// program calls into it. Consumers are callbacks run from $channel->wait(),
// always called here with a timeout; synchronous methods use the connection's
// channel_rpc_timeout and every socket operation its read_write_timeout.

declare(strict_types=1);

require_once __DIR__ . '/common.php';

use PhpAmqpLib\Channel\AMQPChannel;
use PhpAmqpLib\Connection\AMQPStreamConnection;
use PhpAmqpLib\Connection\Heartbeat\PCNTLHeartbeatSender;
use PhpAmqpLib\Exception\AMQPBasicCancelException;
use PhpAmqpLib\Exception\AMQPProtocolChannelException;
use PhpAmqpLib\Exchange\AMQPExchangeType;
use PhpAmqpLib\Message\AMQPMessage;
use PhpAmqpLib\Wire\AMQPAbstractCollection;
use PhpAmqpLib\Wire\AMQPArray;
use PhpAmqpLib\Wire\AMQPDecimal;
use PhpAmqpLib\Wire\AMQPTable;

const DELIVERY_TIMEOUT = 5.0; // seconds, longest wait for one delivery or callback
const N_MESSAGES = 100;

/** [kind, name] of broker objects to delete if a scenario fails half-way. */
$GLOBALS['leftovers'] = [];

/** queue.declare arguments: passive, durable, exclusive, auto_delete. */
function declare_exclusive(AMQPChannel $ch, string $name, array $arguments = []): string
{
    [$queue] = $ch->queue_declare($name, false, false, true, false, false, new AMQPTable($arguments));
    return $queue;
}

/** [message_count, consumer_count] from a passive queue.declare. */
function queue_counts(AMQPChannel $ch, string $queue): array
{
    [, $messages, $consumers] = $ch->queue_declare($queue, true);
    return [$messages, $consumers];
}

function declare_exchange(AMQPChannel $ch, string $name, string $type): string
{
    // passive, durable, auto_delete
    $ch->exchange_declare($name, $type, false, false, false);
    $GLOBALS['leftovers'][] = ['exchange', $name];
    return $name;
}

/** Bodies of all messages in a queue, fetched with basic.get (no-ack). */
function drain(AMQPChannel $ch, string $queue): array
{
    $bodies = [];
    while (($msg = $ch->basic_get($queue, true)) !== null) {
        $bodies[] = $msg->getBody();
    }
    return $bodies;
}

/** Publishes in confirm mode and waits for every ack; fails on a nack. */
function confirmed_channel(AMQPStreamConnection $conn): AMQPChannel
{
    $ch = $conn->channel();
    $ch->set_nack_handler(function (AMQPMessage $msg) {
        throw new Failure('basic.nack for message ' . $msg->getDeliveryTag() . ' (' . show($msg->getBody()) . ')');
    });
    step('confirm.select');
    $ch->confirm_select();
    return $ch;
}

// ---------------------------------------------------------------- connect

function scenario_connect(string $url): void
{
    $conn = connect($url);
    // getServerProperties(): name => [type symbol, value]
    $props = $conn->getServerProperties();
    foreach (['product', 'version', 'platform'] as $key) {
        check(isset($props[$key]) && $props[$key][0] === 'S' && $props[$key][1] !== '',
            "server property $key is " . show($props[$key] ?? null));
    }
    check(isset($props['capabilities']) && $props['capabilities'][0] === 'F',
        'server properties have no capabilities table: ' . show($props));
    $caps = $props['capabilities'][1];
    foreach (['publisher_confirms', 'basic.nack', 'consumer_cancel_notify', 'exchange_exchange_bindings'] as $cap) {
        check(isset($caps[$cap]) && $caps[$cap][0] === 't' && $caps[$cap][1] === 1,
            "capability $cap is " . show($caps[$cap] ?? null) . ", expected ['t', 1]");
    }
    step('channel.open');
    $ch = $conn->channel();
    check($ch->is_open(), 'channel not open after channel.open-ok');
    step('channel.close');
    $ch->close();
    check(!$ch->is_open(), 'channel still open after channel.close-ok');
    step('connection.close');
    $conn->close();
    check(!$conn->isConnected(), 'connection still open after connection.close-ok');

    // The default login method is AMQPLAIN; PLAIN must work as well.
    $plain = connect($url, ['login_method' => 'PLAIN', 'step' => 'connection handshake (PLAIN)']);
    check($plain->isConnected(), 'PLAIN login did not connect');
    $plain->channel()->close();
    $plain->close();
}

// ---------------------------------------------------------------- exchange_types

function scenario_exchange_types(string $url): void
{
    $conn = connect($url);
    $ch = confirmed_channel($conn);
    $base = unique_name('xt');
    step('exchange.declare x4');
    $direct = declare_exchange($ch, "$base.direct", AMQPExchangeType::DIRECT);
    $fanout = declare_exchange($ch, "$base.fanout", AMQPExchangeType::FANOUT);
    $topic = declare_exchange($ch, "$base.topic", AMQPExchangeType::TOPIC);
    $headers = declare_exchange($ch, "$base.headers", AMQPExchangeType::HEADERS);

    step('queue.declare + queue.bind');
    $bind = function (string $tag, string $exchange, string $key = '', array $args = []) use ($ch, $base): string {
        $q = declare_exclusive($ch, "$base.$tag");
        $ch->queue_bind($q, $exchange, $key, false, new AMQPTable($args));
        return $q;
    };
    $queues = [
        'd-red' => $bind('d-red', $direct, 'red'),
        'd-green' => $bind('d-green', $direct, 'green'),
        'f-one' => $bind('f-one', $fanout),
        'f-two' => $bind('f-two', $fanout, 'ignored'),
        't-star' => $bind('t-star', $topic, 'a.*'),
        't-hash' => $bind('t-hash', $topic, 'a.#'),
        't-end' => $bind('t-end', $topic, '#.z'),
        'h-all' => $bind('h-all', $headers, '', ['x-match' => 'all', 'format' => 'pdf', 'type' => 'report']),
        'h-any' => $bind('h-any', $headers, '', ['x-match' => 'any', 'format' => 'pdf', 'type' => 'report']),
    ];

    step('basic.publish');
    foreach (['red', 'green', 'blue'] as $key) {
        $ch->basic_publish(new AMQPMessage("direct $key"), $direct, $key);
    }
    $ch->basic_publish(new AMQPMessage('fanout 1'), $fanout, 'whatever');
    foreach (['a.b', 'a.b.c', 'a', 'x.z', 'z', 'b.a'] as $key) {
        $ch->basic_publish(new AMQPMessage("topic $key"), $topic, $key);
    }
    $withHeaders = fn (string $body, array $h) => new AMQPMessage($body, ['application_headers' => new AMQPTable($h)]);
    $ch->basic_publish($withHeaders('headers both', ['format' => 'pdf', 'type' => 'report']), $headers);
    $ch->basic_publish($withHeaders('headers one', ['format' => 'pdf', 'type' => 'log']), $headers);
    $ch->basic_publish($withHeaders('headers none', ['format' => 'zip']), $headers);
    step('wait_for_pending_acks');
    $ch->wait_for_pending_acks(DELIVERY_TIMEOUT);

    $expected = [
        'd-red' => ['direct red'],
        'd-green' => ['direct green'],
        'f-one' => ['fanout 1'],
        'f-two' => ['fanout 1'],
        't-star' => ['topic a.b'],
        't-hash' => ['topic a.b', 'topic a.b.c', 'topic a'],
        't-end' => ['topic x.z', 'topic z'],
        'h-all' => ['headers both'],
        'h-any' => ['headers both', 'headers one'],
    ];
    foreach ($expected as $tag => $want) {
        step("basic.get from $tag");
        $got = drain($ch, $queues[$tag]);
        check($got === $want, "queue $tag got " . show($got) . ', expected ' . show($want));
    }

    step('exchange.delete x4');
    foreach ([$direct, $fanout, $topic, $headers] as $x) {
        $ch->exchange_delete($x);
    }
    foreach ([$direct, $fanout, $topic, $headers] as $x) {
        step("exchange.declare passive $x (after delete)");
        $probe = $conn->channel();
        try {
            $probe->exchange_declare($x, AMQPExchangeType::DIRECT, true);
            throw new Failure("exchange $x still exists after exchange.delete");
        } catch (AMQPProtocolChannelException $e) {
            check($e->getCode() === 404, "passive declare of a deleted exchange: {$e->getCode()} {$e->getMessage()}");
        }
    }
    $conn->close();
}

// ---------------------------------------------------------------- publish_consume_ack

function scenario_publish_consume_ack(string $url): void
{
    $conn = connect($url);
    $ch = confirmed_channel($conn);
    step('queue.declare');
    $q = declare_exclusive($ch, unique_name('pca'));
    step('basic.publish x' . N_MESSAGES);
    for ($i = 0; $i < N_MESSAGES; $i++) {
        $ch->basic_publish(new AMQPMessage("message $i", [
            'message_id' => "m$i",
            'delivery_mode' => $i % 2 === 0 ? AMQPMessage::DELIVERY_MODE_PERSISTENT : AMQPMessage::DELIVERY_MODE_NON_PERSISTENT,
            'application_headers' => new AMQPTable(['seq' => $i]),
        ]), '', $q);
    }
    step('wait_for_pending_acks');
    $ch->wait_for_pending_acks(DELIVERY_TIMEOUT);
    step('queue.declare passive (after publishing)');
    [$count] = queue_counts($ch, $q);
    check($count === N_MESSAGES, "queue holds $count messages, expected " . N_MESSAGES);

    $received = [];
    step('basic.consume');
    $tag = $ch->basic_consume($q, '', false, false, false, false, function (AMQPMessage $msg) use (&$received) {
        $msg->ack();
        $received[] = $msg;
    });
    step('waiting for ' . N_MESSAGES . ' deliveries');
    wait_until($ch, function () use (&$received) { return count($received) >= N_MESSAGES; }, DELIVERY_TIMEOUT, 'delivery #' . count($received));
    $last = 0;
    foreach ($received as $i => $msg) {
        check($msg->getBody() === "message $i", "delivery #$i has body " . show($msg->getBody()) . ' (out of order?)');
        check($msg->get('message_id') === "m$i", "delivery #$i has message_id " . show($msg->get('message_id')));
        check($msg->get('application_headers')->getNativeData() === ['seq' => $i],
            "delivery #$i has headers " . show($msg->get('application_headers')->getNativeData()));
        $mode = $i % 2 === 0 ? 2 : 1;
        check($msg->get('delivery_mode') === $mode, "delivery #$i has delivery_mode " . show($msg->get('delivery_mode')));
        check($msg->getConsumerTag() === $tag, "delivery #$i for consumer " . show($msg->getConsumerTag()));
        check($msg->getExchange() === '' && $msg->getRoutingKey() === $q,
            "delivery #$i via exchange " . show($msg->getExchange()) . ' key ' . show($msg->getRoutingKey()));
        check(!$msg->isRedelivered(), "delivery #$i flagged redelivered");
        check($msg->getDeliveryTag() > $last, "delivery tag {$msg->getDeliveryTag()} not increasing");
        $last = $msg->getDeliveryTag();
    }
    step('basic.cancel');
    $ch->basic_cancel($tag);
    check(count($received) === N_MESSAGES, (count($received) - N_MESSAGES) . ' deliveries beyond the ' . N_MESSAGES . ' published');
    step('queue.declare passive (after acks)');
    [$count, $consumers] = queue_counts($ch, $q);
    check($count === 0, "queue holds $count messages after all were acked");
    check($consumers === 0, "queue has $consumers consumers after basic.cancel");
    $ch->close();
    $conn->close();
}

// ---------------------------------------------------------------- nack_requeue

function scenario_nack_requeue(string $url): void
{
    $conn = connect($url);
    $ch = confirmed_channel($conn);
    step('queue.declare');
    $q = declare_exclusive($ch, unique_name('nack'));
    step('basic.publish');
    $ch->basic_publish(new AMQPMessage('bounce', ['message_id' => 'nack-1']), '', $q);
    $ch->wait_for_pending_acks(DELIVERY_TIMEOUT);

    $deliveries = [];
    step('basic.consume');
    $ch->basic_consume($q, '', false, false, false, false, function (AMQPMessage $msg) use (&$deliveries) {
        $deliveries[] = $msg;
    });
    step('first delivery');
    wait_until($ch, function () use (&$deliveries) { return count($deliveries) >= 1; }, DELIVERY_TIMEOUT, 'first delivery');
    $first = $deliveries[0];
    check($first->getBody() === 'bounce' && $first->get('message_id') === 'nack-1', 'first delivery: ' . show($first->getBody()));
    check(!$first->isRedelivered(), 'first delivery flagged redelivered');
    $first->nack(true); // basic.nack, requeue

    step('delivery after basic.nack(requeue=true)');
    wait_until($ch, function () use (&$deliveries) { return count($deliveries) >= 2; }, DELIVERY_TIMEOUT, 'redelivery after basic.nack(requeue=true)');
    $second = $deliveries[1];
    check($second->getBody() === 'bounce' && $second->get('message_id') === 'nack-1', 'second delivery: ' . show($second->getBody()));
    check($second->isRedelivered(), 'delivery after nack(requeue=true) not flagged redelivered');
    check($second->getDeliveryTag() > $first->getDeliveryTag(), 'redelivery reused delivery tag ' . $second->getDeliveryTag());
    $second->reject(true); // basic.reject, requeue

    step('delivery after basic.reject(requeue=true)');
    wait_until($ch, function () use (&$deliveries) { return count($deliveries) >= 3; }, DELIVERY_TIMEOUT, 'redelivery after basic.reject(requeue=true)');
    $third = $deliveries[2];
    check($third->getBody() === 'bounce', 'third delivery: ' . show($third->getBody()));
    check($third->isRedelivered(), 'delivery after reject(requeue=true) not flagged redelivered');
    $third->nack(false); // basic.nack, no requeue: dropped

    step('after basic.nack(requeue=false)');
    wait_quietly($ch, 0.3); // a wrongly requeued message would come back at once
    check(count($deliveries) === 3, 'message delivered again after nack(requeue=false)');
    [$count] = queue_counts($ch, $q);
    check($count === 0, "queue holds $count messages after nack(requeue=false)");
    $conn->close();
}

// ---------------------------------------------------------------- basic_get

function scenario_basic_get(string $url): void
{
    $conn = connect($url);
    $ch = confirmed_channel($conn);
    step('queue.declare');
    $q = declare_exclusive($ch, unique_name('get'));
    step('basic.get on an empty queue');
    check($ch->basic_get($q) === null, 'basic.get on an empty queue returned a message');

    step('basic.publish x3');
    for ($i = 1; $i <= 3; $i++) {
        $ch->basic_publish(new AMQPMessage("get $i"), '', $q);
    }
    $ch->wait_for_pending_acks(DELIVERY_TIMEOUT);

    step('basic.get #1 (manual ack)');
    $msg = $ch->basic_get($q, false);
    check($msg !== null && $msg->getBody() === 'get 1', 'first get returned ' . show($msg ? $msg->getBody() : null));
    check(!$msg->isRedelivered(), 'first get flagged redelivered');
    check($msg->getMessageCount() === 2, 'first get-ok message_count ' . show($msg->getMessageCount()) . ', expected 2');
    check($msg->getExchange() === '' && $msg->getRoutingKey() === $q,
        'first get: exchange ' . show($msg->getExchange()) . ' key ' . show($msg->getRoutingKey()));
    $msg->ack();

    step('basic.get #2 (no-ack)');
    $msg = $ch->basic_get($q, true);
    check($msg !== null && $msg->getBody() === 'get 2', 'second get returned ' . show($msg ? $msg->getBody() : null));
    check($msg->getMessageCount() === 1, 'second get-ok message_count ' . show($msg->getMessageCount()) . ', expected 1');

    step('basic.get #3 (manual ack)');
    $msg = $ch->basic_get($q, false);
    check($msg !== null && $msg->getBody() === 'get 3', 'third get returned ' . show($msg ? $msg->getBody() : null));
    check($msg->getMessageCount() === 0, 'third get-ok message_count ' . show($msg->getMessageCount()) . ', expected 0');
    $msg->reject(true);

    step('basic.get #4 (after reject with requeue)');
    $msg = $ch->basic_get($q, false);
    check($msg !== null && $msg->getBody() === 'get 3', 'get after reject returned ' . show($msg ? $msg->getBody() : null));
    check($msg->isRedelivered(), 'get after reject(requeue=true) not flagged redelivered');
    check($msg->getMessageCount() === 0, 'fourth get-ok message_count ' . show($msg->getMessageCount()) . ', expected 0');
    $msg->ack();

    step('basic.get on the drained queue');
    check($ch->basic_get($q, false) === null, 'basic.get on the drained queue returned a message, expected get-empty');
    step('queue.declare passive');
    [$count] = queue_counts($ch, $q);
    check($count === 0, "queue holds $count messages after all gets");
    $conn->close();
}

// ---------------------------------------------------------------- prefetch

function scenario_prefetch(string $url): void
{
    $conn = connect($url);
    $ch = confirmed_channel($conn);
    step('queue.declare');
    $q = declare_exclusive($ch, unique_name('qos'));
    step('basic.publish x20');
    for ($i = 0; $i < 20; $i++) {
        $ch->basic_publish(new AMQPMessage("qos $i"), '', $q);
    }
    $ch->wait_for_pending_acks(DELIVERY_TIMEOUT);

    step('basic.qos(5)');
    $ch->basic_qos(0, 5, false);
    $held = [];
    step('basic.consume');
    $ch->basic_consume($q, '', false, false, false, false, function (AMQPMessage $msg) use (&$held) {
        $held[] = $msg;
    });
    step('waiting for 5 deliveries');
    wait_until($ch, function () use (&$held) { return count($held) >= 5; }, DELIVERY_TIMEOUT, 'delivery #' . count($held) . ' of the first 5');
    step('waiting for a 6th unacked delivery');
    wait_quietly($ch, 0.5);
    check(count($held) === 5, count($held) . ' deliveries outstanding with prefetch 5 and nothing acked');
    $bodies = array_map(fn ($m) => $m->getBody(), $held);
    check($bodies === ['qos 0', 'qos 1', 'qos 2', 'qos 3', 'qos 4'], 'first deliveries ' . show($bodies));

    step('basic.ack of one delivery');
    $held[0]->ack();
    wait_until($ch, function () use (&$held) { return count($held) >= 6; }, DELIVERY_TIMEOUT, 'delivery after acking one');
    check($held[5]->getBody() === 'qos 5', 'delivery after the ack was ' . show($held[5]->getBody()) . ', expected "qos 5"');
    step('waiting for a 7th delivery');
    wait_quietly($ch, 0.3);
    check(count($held) === 6, (count($held) - 6) . ' extra deliveries after acking only one');
    $conn->close();
}

// ---------------------------------------------------------------- publisher_confirms

function scenario_publisher_confirms(string $url): void
{
    $conn = connect($url);
    $ch = $conn->channel();
    step('queue.declare');
    $q = declare_exclusive($ch, unique_name('confirm'));
    $acked = [];
    $nacked = [];
    $ch->set_ack_handler(function (AMQPMessage $msg) use (&$acked) {
        $acked[] = $msg->getDeliveryTag();
    });
    $ch->set_nack_handler(function (AMQPMessage $msg) use (&$nacked) {
        $nacked[] = $msg->getDeliveryTag();
    });
    step('confirm.select');
    $ch->confirm_select();
    step('basic.publish x' . N_MESSAGES);
    $sent = [];
    for ($i = 0; $i < N_MESSAGES; $i++) {
        $msg = new AMQPMessage("confirm $i");
        $ch->basic_publish($msg, '', $q);
        $sent[] = $msg->getDeliveryTag(); // the publish sequence number
    }
    check($sent === range(1, N_MESSAGES), 'publish sequence numbers ' . show(array_slice($sent, 0, 5)) . '...');
    step('wait_for_pending_acks');
    $ch->wait_for_pending_acks(DELIVERY_TIMEOUT);
    check($nacked === [], 'basic.nack for ' . show($nacked));
    sort($acked);
    check($acked === $sent, 'acked tags ' . show(array_slice(array_values(array_diff($sent, $acked)), 0, 10)) . ' missing');
    step('queue.declare passive');
    [$count] = queue_counts($ch, $q);
    check($count === N_MESSAGES, "queue holds $count of " . N_MESSAGES . ' confirmed messages');
    $conn->close();
}

// ---------------------------------------------------------------- mandatory_return

function scenario_mandatory_return(string $url): void
{
    $conn = connect($url);
    $ch = confirmed_channel($conn);
    step('exchange.declare');
    $x = declare_exchange($ch, unique_name('return'), AMQPExchangeType::DIRECT);
    $returns = [];
    $acks = 0;
    $ch->set_return_listener(function ($code, $text, $exchange, $key, AMQPMessage $msg) use (&$returns) {
        $returns[] = [$code, $text, $exchange, $key, $msg];
    });
    $ch->set_ack_handler(function () use (&$acks) {
        $acks++;
    });
    step('basic.publish mandatory');
    $ch->basic_publish(new AMQPMessage('nobody wants me', [
        'message_id' => 'ret-1',
        'application_headers' => new AMQPTable(['why' => 'unroutable']),
    ]), $x, 'no.such.binding', true);
    step('wait_for_pending_acks_returns');
    $ch->wait_for_pending_acks_returns(DELIVERY_TIMEOUT);
    check($acks === 1, "$acks basic.ack for the unroutable message, expected 1");
    check(count($returns) === 1, count($returns) . ' basic.return frames, expected 1');
    [$code, $text, $exchange, $key, $msg] = $returns[0];
    check($code === 312, "basic.return reply_code $code, expected 312");
    check($text === 'NO_ROUTE', 'basic.return reply_text ' . show($text) . ', expected "NO_ROUTE"');
    check($exchange === $x && $key === 'no.such.binding', 'basic.return for exchange ' . show($exchange) . ' key ' . show($key));
    check($msg->getBody() === 'nobody wants me', 'returned body ' . show($msg->getBody()));
    check($msg->get('message_id') === 'ret-1' && $msg->get('application_headers')->getNativeData() === ['why' => 'unroutable'],
        'returned properties ' . show($msg->get_properties()));
    step('exchange.delete');
    $ch->exchange_delete($x);
    $conn->close();
}

// ---------------------------------------------------------------- transactions

function scenario_transactions(string $url): void
{
    $conn = connect($url);
    $ch = $conn->channel();
    step('queue.declare');
    $q = declare_exclusive($ch, unique_name('tx'));
    step('tx.select');
    $ch->tx_select();
    step('basic.publish + tx.rollback');
    $ch->basic_publish(new AMQPMessage('rolled back'), '', $q);
    $ch->tx_rollback();
    step('queue.declare passive (after rollback)');
    [$count] = queue_counts($ch, $q);
    check($count === 0, "queue holds $count messages after tx.rollback");
    step('basic.publish (uncommitted)');
    $ch->basic_publish(new AMQPMessage('committed'), '', $q);
    [$count] = queue_counts($ch, $q);
    check($count === 0, "uncommitted publish visible: queue holds $count messages");
    step('tx.commit');
    $ch->tx_commit();
    step('basic.get (after commit)');
    $msg = $ch->basic_get($q, false);
    check($msg !== null && $msg->getBody() === 'committed',
        'basic.get after commit returned ' . show($msg ? $msg->getBody() : null) . ', expected "committed"');
    $msg->ack();
    step('tx.commit (ack)');
    $ch->tx_commit();
    step('basic.get (drained)');
    check($ch->basic_get($q, true) === null, 'queue still holds a message after the committed ack');
    $conn->close();
}

// ---------------------------------------------------------------- rpc / direct_reply_to

/** Reads one line from a worker's stdout, waiting at most $timeout seconds. */
function read_line($pipe, float $timeout, string $what): string
{
    $deadline = microtime(true) + $timeout;
    $line = '';
    while (!str_ends_with($line, "\n")) {
        $left = $deadline - microtime(true);
        if ($left <= 0) {
            throw new Failure("no $what from the RPC server process within $timeout s");
        }
        $r = [$pipe];
        $w = $e = null;
        if (stream_select($r, $w, $e, (int)$left, (int)(fmod($left, 1.0) * 1e6)) === 1) {
            $chunk = fgets($pipe);
            if ($chunk === false) {
                throw new Failure("RPC server process exited before $what (got " . show($line) . ')');
            }
            $line .= $chunk;
        }
    }
    $line = rtrim($line, "\n");
    check(!str_starts_with($line, 'ERROR'), "RPC server process: $line");
    return $line;
}

/**
 * Starts rpc_server.php as its own process, calls it $count times with
 * $replyTo, and returns the reply_to values the server saw.
 */
function rpc_round_trip(string $url, AMQPChannel $ch, string $replyTo, int $count): array
{
    $queue = unique_name('rpc-requests');
    step('starting the RPC server process');
    $proc = proc_open(
        [PHP_BINARY, __DIR__ . '/rpc_server.php', $url, $queue, (string)$count, '15'],
        [0 => ['file', '/dev/null', 'r'], 1 => ['pipe', 'w'], 2 => STDERR],
        $pipes
    );
    check(is_resource($proc), 'cannot start rpc_server.php');
    try {
        $ready = read_line($pipes[1], 10.0, 'READY line');
        check($ready === 'READY', 'RPC server process said ' . show($ready));

        $replies = [];
        $pending = [];
        step("publishing $count requests");
        for ($i = 0; $i < $count; $i++) {
            $corr = bin2hex(random_bytes(8));
            $pending[$corr] = "request $i";
            $ch->basic_publish(new AMQPMessage("request $i", ['reply_to' => $replyTo, 'correlation_id' => $corr]), '', $queue);
        }
        step('waiting for replies');
        // The reply consumer (set up by the caller) appends to $GLOBALS['rpc_replies'].
        wait_until($ch, fn () => count($GLOBALS['rpc_replies']) >= $count, DELIVERY_TIMEOUT, 'RPC reply #' . count($GLOBALS['rpc_replies']));
        foreach ($GLOBALS['rpc_replies'] as $reply) {
            $corr = $reply->has('correlation_id') ? $reply->get('correlation_id') : null;
            check(isset($pending[$corr]), 'reply with unknown correlation_id ' . show($corr) . ': ' . show($reply->getBody()));
            check($reply->getBody() === 'reply to ' . $pending[$corr],
                'reply for ' . show($pending[$corr]) . ' was ' . show($reply->getBody()));
            unset($pending[$corr]);
        }
        $seen = [];
        for ($i = 0; $i < $count; $i++) {
            $line = read_line($pipes[1], 2.0, "REPLY_TO line #$i");
            check(str_starts_with($line, 'REPLY_TO '), 'RPC server process said ' . show($line));
            $seen[] = substr($line, strlen('REPLY_TO '));
        }
        return $seen;
    } finally {
        $status = proc_get_status($proc);
        $deadline = microtime(true) + 3.0;
        while ($status['running'] && microtime(true) < $deadline) {
            usleep(20000);
            $status = proc_get_status($proc);
        }
        if ($status['running']) {
            proc_terminate($proc, 9);
        }
        fclose($pipes[1]);
        proc_close($proc);
    }
}

function scenario_rpc(string $url): void
{
    $conn = connect($url);
    $ch = $conn->channel();
    step('queue.declare (server-named, exclusive)');
    [$replyQueue] = $ch->queue_declare('', false, false, true, false);
    check($replyQueue !== '', 'server-named queue has an empty name');
    $GLOBALS['rpc_replies'] = [];
    step('basic.consume (reply queue)');
    $ch->basic_consume($replyQueue, '', false, true, false, false, function (AMQPMessage $msg) {
        $GLOBALS['rpc_replies'][] = $msg;
    });
    $seen = rpc_round_trip($url, $ch, $replyQueue, 5);
    foreach ($seen as $got) {
        check($got === $replyQueue, 'server saw reply_to ' . show($got) . ', expected ' . show($replyQueue));
    }
    $conn->close();
}

function scenario_direct_reply_to(string $url): void
{
    $conn = connect($url);
    $ch = $conn->channel();
    $GLOBALS['rpc_replies'] = [];
    step('basic.consume amq.rabbitmq.reply-to (no-ack)');
    $ch->basic_consume('amq.rabbitmq.reply-to', '', false, true, false, false, function (AMQPMessage $msg) {
        $GLOBALS['rpc_replies'][] = $msg;
    });
    $seen = rpc_round_trip($url, $ch, 'amq.rabbitmq.reply-to', 3);
    foreach ($seen as $got) {
        check(str_starts_with($got, 'amq.rabbitmq.reply-to.') && strlen($got) > 22,
            'server saw reply_to ' . show($got) . ', expected amq.rabbitmq.reply-to.<token>');
    }
    $conn->close();
}

// ---------------------------------------------------------------- dead_letter / ttl

/** [type symbol, value] of each field of a received table. */
function typed_fields(AMQPAbstractCollection $table): array
{
    $out = [];
    foreach ($table as $key => [$type, $value]) {
        $out[$key] = [AMQPAbstractCollection::getSymbolForDataType($type), $value];
    }
    return $out;
}

function check_x_death(AMQPMessage $msg, string $reason, string $queue, string $what): array
{
    check($msg->has('application_headers'), "$what: no headers");
    $headers = typed_fields($msg->get('application_headers'));
    check(isset($headers['x-death']) && $headers['x-death'][0] === 'A', "$what: x-death header is " . show($headers['x-death'] ?? null));
    $deaths = $headers['x-death'][1];
    check($deaths instanceof AMQPArray, "$what: x-death is " . show($deaths));
    $entries = [];
    foreach ($deaths as [$type, $entry]) {
        $entries[] = [$type, $entry];
    }
    check(count($entries) >= 1, "$what: empty x-death array");
    check($entries[0][0] === AMQPAbstractCollection::T_TABLE, "$what: x-death entry is not a table");
    $death = typed_fields($entries[0][1]);
    check(($death['count'] ?? null) === ['l', 1], "$what: x-death count " . show($death['count'] ?? null) . ", expected ['l', 1] (long, as RabbitMQ sends)");
    check(($death['reason'] ?? null) === ['S', $reason], "$what: x-death reason " . show($death['reason'] ?? null) . ", expected $reason");
    check(($death['queue'] ?? null) === ['S', $queue], "$what: x-death queue " . show($death['queue'] ?? null) . ", expected $queue");
    check(($death['exchange'] ?? null) === ['S', ''], "$what: x-death exchange " . show($death['exchange'] ?? null));
    check(isset($death['routing-keys']) && $death['routing-keys'][0] === 'A'
        && $death['routing-keys'][1]->getNativeData() === [$queue],
        "$what: x-death routing-keys " . show(isset($death['routing-keys']) ? $death['routing-keys'][1]->getNativeData() : null));
    check(isset($death['time']) && $death['time'][0] === 'T', "$what: x-death time " . show($death['time'] ?? null));
    check(($headers['x-first-death-reason'] ?? null) === ['S', $reason]
        && ($headers['x-first-death-queue'] ?? null) === ['S', $queue],
        "$what: x-first-death-* headers " . show($msg->get('application_headers')->getNativeData()));
    return $death;
}

function dead_letter_setup(AMQPChannel $ch, string $base, string $key): array
{
    step('exchange.declare (dead-letter exchange)');
    $dlx = declare_exchange($ch, "$base.dlx", AMQPExchangeType::DIRECT);
    step('queue.declare + queue.bind (dead-letter queue)');
    $dlq = declare_exclusive($ch, "$base.dlq");
    $ch->queue_bind($dlq, $dlx, $key);
    return [$dlx, $dlq];
}

function scenario_dead_letter(string $url): void
{
    $conn = connect($url);
    $ch = confirmed_channel($conn);
    $base = unique_name('dlx');
    [$dlx, $dlq] = dead_letter_setup($ch, $base, 'dead');
    step('queue.declare (with x-dead-letter-exchange)');
    $src = declare_exclusive($ch, "$base.src", ['x-dead-letter-exchange' => $dlx, 'x-dead-letter-routing-key' => 'dead']);
    $dead = [];
    step('basic.consume (dead-letter queue)');
    $ch->basic_consume($dlq, '', false, false, false, false, function (AMQPMessage $msg) use (&$dead) {
        $msg->ack();
        $dead[] = $msg;
    });
    step('basic.publish');
    $ch->basic_publish(new AMQPMessage('doomed', [
        'message_id' => 'dl-1',
        'application_headers' => new AMQPTable(['keep' => 'me']),
    ]), '', $src);
    $ch->wait_for_pending_acks(DELIVERY_TIMEOUT);
    step('basic.get + basic.reject(requeue=false)');
    $msg = $ch->basic_get($src, false);
    check($msg !== null && $msg->getBody() === 'doomed', 'basic.get from the source queue returned ' . show($msg ? $msg->getBody() : null));
    $msg->reject(false);

    step('waiting for the dead-lettered message');
    wait_until($ch, function () use (&$dead) { return count($dead) >= 1; }, DELIVERY_TIMEOUT, 'dead-lettered message');
    $d = $dead[0];
    check($d->getBody() === 'doomed' && $d->get('message_id') === 'dl-1', 'dead-lettered ' . show($d->getBody()));
    check($d->getExchange() === $dlx && $d->getRoutingKey() === 'dead',
        'dead-lettered via exchange ' . show($d->getExchange()) . ' key ' . show($d->getRoutingKey()));
    check(($d->get('application_headers')->getNativeData()['keep'] ?? null) === 'me', 'original header lost');
    check_x_death($d, 'rejected', $src, 'dead-lettered message');
    [$count] = queue_counts($ch, $src);
    check($count === 0, "source queue holds $count messages after the reject");
    step('exchange.delete');
    $ch->exchange_delete($dlx);
    $conn->close();
}

const TTL_MS = 400;

function scenario_ttl(string $url): void
{
    $conn = connect($url);
    $ch = confirmed_channel($conn);
    $base = unique_name('ttl');
    [$dlx, $dlq] = dead_letter_setup($ch, $base, 'expired');
    $dlArgs = ['x-dead-letter-exchange' => $dlx, 'x-dead-letter-routing-key' => 'expired'];
    step('queue.declare (x-message-ttl)');
    $queueTtl = declare_exclusive($ch, "$base.queue-ttl", $dlArgs + ['x-message-ttl' => TTL_MS]);
    step('queue.declare (for per-message expiration)');
    $msgTtl = declare_exclusive($ch, "$base.msg-ttl", $dlArgs);
    $dead = [];
    step('basic.consume (dead-letter queue)');
    $ch->basic_consume($dlq, '', false, true, false, false, function (AMQPMessage $msg) use (&$dead) {
        $dead[$msg->getBody()] = $msg;
    });
    step('basic.publish x2');
    $ch->basic_publish(new AMQPMessage('queue ttl'), '', $queueTtl);
    $ch->basic_publish(new AMQPMessage('message ttl', ['expiration' => (string)TTL_MS]), '', $msgTtl);
    $ch->wait_for_pending_acks(DELIVERY_TIMEOUT);

    step('waiting for 2 expired messages');
    wait_until($ch, function () use (&$dead) { return count($dead) >= 2; }, TTL_MS / 1000 + DELIVERY_TIMEOUT, 'expired message #' . count($dead));
    $bodies = array_keys($dead);
    sort($bodies);
    check($bodies === ['message ttl', 'queue ttl'], 'dead-lettered ' . show($bodies));
    check_x_death($dead['queue ttl'], 'expired', $queueTtl, 'x-message-ttl');
    $death = check_x_death($dead['message ttl'], 'expired', $msgTtl, 'expiration');
    check(($death['original-expiration'] ?? null) === ['S', (string)TTL_MS],
        'expiration: x-death original-expiration ' . show($death['original-expiration'] ?? null));
    check(!$dead['message ttl']->has('expiration'),
        'dead-lettered message kept its expiration ' . show($dead['message ttl']->get_properties()['expiration'] ?? null));

    step('basic.get from the expired queues');
    foreach ([$queueTtl, $msgTtl] as $q) {
        $msg = $ch->basic_get($q, true);
        check($msg === null, "$q still returns " . show($msg ? $msg->getBody() : null) . ' after the TTL');
    }
    step('exchange.delete');
    $ch->exchange_delete($dlx);
    $conn->close();
}

// ---------------------------------------------------------------- priority

function scenario_priority(string $url): void
{
    $conn = connect($url);
    $ch = confirmed_channel($conn);
    step('queue.declare (x-max-priority)');
    $q = declare_exclusive($ch, unique_name('prio'), ['x-max-priority' => 10]);
    step('basic.publish priorities 1, 5, 9');
    foreach ([1, 5, 9] as $p) {
        $ch->basic_publish(new AMQPMessage("priority $p", ['priority' => $p]), '', $q);
    }
    $ch->wait_for_pending_acks(DELIVERY_TIMEOUT);
    $order = [];
    step('basic.consume');
    $ch->basic_consume($q, '', false, false, false, false, function (AMQPMessage $msg) use (&$order) {
        $msg->ack();
        $order[] = [$msg->get('priority'), $msg->getBody()];
    });
    wait_until($ch, function () use (&$order) { return count($order) >= 3; }, DELIVERY_TIMEOUT, 'delivery #' . count($order));
    $want = [[9, 'priority 9'], [5, 'priority 5'], [1, 'priority 1']];
    check($order === $want, 'deliveries in order ' . show($order) . ', expected ' . show($want));
    $conn->close();
}

// ---------------------------------------------------------------- large_message / empty_message

function scenario_large_message(string $url): void
{
    $conn = connect($url);
    $ch = confirmed_channel($conn);
    step('queue.declare');
    $q = declare_exclusive($ch, unique_name('large'));
    $payload = random_bytes(5 * 1024 * 1024);
    step('basic.publish 5 MiB');
    $ch->basic_publish(new AMQPMessage($payload, ['content_type' => 'application/octet-stream']), '', $q);
    $ch->wait_for_pending_acks(DELIVERY_TIMEOUT);
    $got = null;
    step('basic.consume');
    $ch->basic_consume($q, '', false, false, false, false, function (AMQPMessage $msg) use (&$got) {
        $msg->ack();
        $got = $msg->getBody();
    });
    wait_until($ch, function () use (&$got) { return $got !== null; }, DELIVERY_TIMEOUT * 2, '5 MiB delivery');
    check(strlen($got) === strlen($payload), 'body is ' . strlen($got) . ' bytes, sent ' . strlen($payload));
    if ($got !== $payload) {
        $first = strspn($got ^ $payload, "\0");
        throw new Failure("body differs from byte $first");
    }
    $conn->close();
}

function scenario_empty_message(string $url): void
{
    $conn = connect($url);
    $ch = confirmed_channel($conn);
    step('queue.declare');
    $q = declare_exclusive($ch, unique_name('empty'));
    step('basic.publish (empty body) x2');
    $props = [
        'content_type' => 'text/plain',
        'message_id' => 'empty-1',
        'delivery_mode' => AMQPMessage::DELIVERY_MODE_PERSISTENT,
        'application_headers' => new AMQPTable(['empty' => true]),
    ];
    $ch->basic_publish(new AMQPMessage('', $props), '', $q);
    $ch->basic_publish(new AMQPMessage('', ['message_id' => 'empty-2']), '', $q);
    $ch->wait_for_pending_acks(DELIVERY_TIMEOUT);

    step('basic.get (empty body)');
    $msg = $ch->basic_get($q, false);
    check($msg !== null, 'basic.get returned get-empty');
    check($msg->getBody() === '' && $msg->getBodySize() === 0, 'body ' . show($msg->getBody()) . ', expected empty');
    check($msg->get('message_id') === 'empty-1', 'first message is ' . show($msg->get_properties()));
    $msg->ack();

    $got = null;
    step('basic.consume (empty body)');
    $ch->basic_consume($q, '', false, false, false, false, function (AMQPMessage $m) use (&$got) {
        $m->ack();
        $got = $m;
    });
    wait_until($ch, function () use (&$got) { return $got !== null; }, DELIVERY_TIMEOUT, 'empty delivery');
    check($got->getBody() === '', 'consumed body ' . show($got->getBody()) . ', expected empty');
    check($got->get('message_id') === 'empty-2', 'second message is ' . show($got->get_properties()));
    $p = $msg->get_properties();
    check(($p['content_type'] ?? null) === 'text/plain' && ($p['delivery_mode'] ?? null) === 2
        && $p['application_headers']->getNativeData() === ['empty' => true],
        'properties of the empty message ' . show($p));
    $conn->close();
}

// ---------------------------------------------------------------- properties

/**
 * One value of every field-table type php-amqplib can send in its default
 * ("rabbit") type map: b B s u I i l D T V t S x A F. Its decoder reads 'f'
 * and 'd', but its encoder has no case for them (AMQPWriter throws
 * "Unsupported type", and native PHP floats are sent as strings), so floats
 * are left out.
 */
function all_types_table(): AMQPTable
{
    $t = new AMQPTable();
    $t->set('x-string', 'héllo wörld ✓', AMQPTable::T_STRING_LONG);
    $t->set('x-empty-string', '', AMQPTable::T_STRING_LONG);
    $t->set('x-byte', -5, AMQPTable::T_INT_SHORTSHORT);
    $t->set('x-ubyte', 200, AMQPTable::T_INT_SHORTSHORT_U);
    $t->set('x-short', -300, AMQPTable::T_INT_SHORT);
    $t->set('x-ushort', 60000, AMQPTable::T_INT_SHORT_U);
    $t->set('x-int', -70000, AMQPTable::T_INT_LONG);
    $t->set('x-uint', 4000000000, AMQPTable::T_INT_LONG_U);
    $t->set('x-long', 2 ** 40 + 7, AMQPTable::T_INT_LONGLONG);
    $t->set('x-min-long', PHP_INT_MIN, AMQPTable::T_INT_LONGLONG);
    $t->set('x-decimal', new AMQPDecimal(12345, 3), AMQPTable::T_DECIMAL);
    $t->set('x-timestamp', 1795000000, AMQPTable::T_TIMESTAMP);
    $t->set('x-void', null, AMQPTable::T_VOID);
    $t->set('x-true', true, AMQPTable::T_BOOL);
    $t->set('x-false', false, AMQPTable::T_BOOL);
    $t->set('x-bytes', "\x00\x01\xfe\xff", AMQPTable::T_BYTES);
    $array = new AMQPArray();
    $array->push(1, AMQPArray::T_INT_LONG);
    $array->push('two', AMQPArray::T_STRING_LONG);
    $array->push(true, AMQPArray::T_BOOL);
    $array->push(null, AMQPArray::T_VOID);
    $array->push(new AMQPArray([3]));
    $array->push(new AMQPTable(['k' => 'v']));
    $t->set('x-array', $array);
    $t->set('x-empty-array', new AMQPArray());
    $t->set('x-table', new AMQPTable(['nested' => 'yes', 'depth' => new AMQPTable(['n' => 2, 'list' => new AMQPArray([false])])]));
    $t->set('x-empty-table', new AMQPTable());
    return $t;
}

/** Compares two collections field by field, types included; null if equal, else where they differ. */
function typed_diff(AMQPAbstractCollection $got, AMQPAbstractCollection $want, string $path): ?string
{
    $g = [];
    foreach ($got as $k => $pair) {
        $g[$k] = $pair;
    }
    $w = [];
    foreach ($want as $k => $pair) {
        $w[$k] = $pair;
    }
    if (array_keys($g) !== array_keys($w)) {
        return "$path: keys " . show(array_keys($g)) . ', sent ' . show(array_keys($w));
    }
    foreach ($w as $k => [$wType, $wVal]) {
        [$gType, $gVal] = $g[$k];
        $where = "$path.$k";
        $wSym = AMQPAbstractCollection::getSymbolForDataType($wType);
        $gSym = AMQPAbstractCollection::getSymbolForDataType($gType);
        if ($gSym !== $wSym) {
            return "$where came back as type '$gSym' " . show($gVal instanceof AMQPAbstractCollection ? $gVal->getNativeData() : $gVal) . ", sent '$wSym'";
        }
        if ($wVal instanceof AMQPAbstractCollection) {
            $d = typed_diff($gVal, $wVal, $where);
            if ($d !== null) {
                return $d;
            }
            continue;
        }
        $same = match ($wType) {
            AMQPAbstractCollection::T_DECIMAL => $gVal instanceof AMQPDecimal && $gVal->getN() === $wVal->getN() && $gVal->getE() === $wVal->getE(),
            AMQPAbstractCollection::T_BOOL => $gVal === (int)$wVal, // read back as the octet 0/1
            AMQPAbstractCollection::T_FLOAT, AMQPAbstractCollection::T_DOUBLE => is_float($gVal) && $gVal === $wVal,
            default => $gVal === $wVal,
        };
        if (!$same) {
            $shown = $gVal instanceof AMQPDecimal ? "{$gVal->getN()}e-{$gVal->getE()}" : show($gVal);
            return "$where came back as $shown, sent " . show($wVal instanceof AMQPDecimal ? "{$wVal->getN()}e-{$wVal->getE()}" : $wVal);
        }
    }
    return null;
}

function scenario_properties(string $url): void
{
    $conn = connect($url);
    $user = parse_amqp_url($url)['user'];
    $ch = confirmed_channel($conn);
    step('queue.declare');
    $q = declare_exclusive($ch, unique_name('props'));
    $headers = all_types_table();
    $sent = [
        'content_type' => 'application/json',
        'content_encoding' => 'utf-8',
        'application_headers' => $headers,
        'delivery_mode' => AMQPMessage::DELIVERY_MODE_PERSISTENT,
        'priority' => 7,
        'correlation_id' => 'corr-' . bin2hex(random_bytes(4)),
        'reply_to' => 'php-amqplib.reply.queue',
        'expiration' => '60000',
        'message_id' => 'msg-' . bin2hex(random_bytes(4)),
        'timestamp' => 1795000000,
        'type' => 'interop.test',
        'user_id' => $user,
        'app_id' => 'warren-interop',
    ];
    step('basic.publish (every property)');
    $ch->basic_publish(new AMQPMessage('{"all": "properties"}', $sent), '', $q);
    $ch->wait_for_pending_acks(DELIVERY_TIMEOUT);
    $got = null;
    step('basic.consume');
    $ch->basic_consume($q, '', false, false, false, false, function (AMQPMessage $msg) use (&$got) {
        $msg->ack();
        $got = $msg;
    });
    wait_until($ch, function () use (&$got) { return $got !== null; }, DELIVERY_TIMEOUT, 'delivery');
    check($got->getBody() === '{"all": "properties"}', 'body ' . show($got->getBody()));
    $props = $got->get_properties();
    foreach ($sent as $key => $want) {
        check(array_key_exists($key, $props), "property $key missing");
        if ($key === 'application_headers') {
            $d = typed_diff($props[$key], $want, 'headers');
            check($d === null, (string)$d);
        } else {
            check($props[$key] === $want, "property $key came back as " . show($props[$key]) . ', sent ' . show($want));
        }
    }
    $extra = array_diff(array_keys($props), array_keys($sent));
    check($extra === [], 'unset properties came back: ' . show($extra));
    $conn->close();
}

// ---------------------------------------------------------------- cancel_notify

function scenario_cancel_notify(string $url): void
{
    $conn = connect($url);
    $ch = $conn->channel();
    step('queue.declare');
    $q = declare_exclusive($ch, unique_name('cancel'));
    step('basic.consume');
    $tag = $ch->basic_consume($q, '', false, false, false, false, function (AMQPMessage $msg) {
    });
    step('queue.delete on another channel');
    $other = $conn->channel();
    $other->queue_delete($q);
    step('waiting for basic.cancel');
    // php-amqplib turns the broker's basic.cancel into an AMQPBasicCancelException
    // thrown from wait().
    try {
        $ch->wait(null, false, DELIVERY_TIMEOUT);
        throw new Failure('wait() returned without the broker\'s basic.cancel');
    } catch (AMQPBasicCancelException $e) {
        check($e->consumerTag === $tag, 'basic.cancel for consumer ' . show($e->consumerTag) . ', expected ' . show($tag));
    } catch (\PhpAmqpLib\Exception\AMQPTimeoutException $e) {
        throw new Failure('no basic.cancel from the broker within ' . DELIVERY_TIMEOUT . ' s');
    }
    step('channel still usable after the cancel');
    check($ch->is_open(), 'consumer channel closed by the cancel');
    [$probe] = $ch->queue_declare('', false, false, true, false);
    check($probe !== '', 'queue.declare on the consumer channel failed after the cancel');
    $other->close();
    $conn->close();
}

// ---------------------------------------------------------------- heartbeat

const HEARTBEAT = 2; // seconds

function scenario_heartbeat(string $url): void
{
    $conn = connect($url, ['heartbeat' => HEARTBEAT]);
    check($conn->getHeartbeat() === HEARTBEAT, 'negotiated heartbeat ' . show($conn->getHeartbeat()) . ', asked for ' . HEARTBEAT);
    $ch = $conn->channel();
    step('queue.declare');
    $q = declare_exclusive($ch, unique_name('hb'));
    // php-amqplib only sends heartbeats when the program calls into it. The
    // library's PCNTLHeartbeatSender does it from a SIGALRM handler while the
    // program is busy elsewhere (here: idle).
    $sender = new PCNTLHeartbeatSender($conn);
    $sender->register();
    $idle = 2 * HEARTBEAT + 0.5;
    step("idle for $idle s");
    try {
        $until = microtime(true) + $idle;
        while (microtime(true) < $until) {
            usleep(50000); // interrupted by SIGALRM, the loop goes on
        }
    } finally {
        $sender->unregister();
    }
    check($conn->isConnected(), 'connection no longer open after idling');
    step('basic.publish + basic.get after idling');
    $ch->basic_publish(new AMQPMessage('still alive'), '', $q);
    $deadline = microtime(true) + DELIVERY_TIMEOUT;
    while (($msg = $ch->basic_get($q, true)) === null && microtime(true) < $deadline) {
        usleep(20000);
    }
    check($msg !== null && $msg->getBody() === 'still alive', 'basic.get after idling returned ' . show($msg ? $msg->getBody() : null));
    $conn->close();
}

// ---------------------------------------------------------------- runner

const SCENARIOS = [
    'connect', 'exchange_types', 'publish_consume_ack', 'nack_requeue', 'basic_get', 'prefetch',
    'publisher_confirms', 'mandatory_return', 'transactions', 'rpc', 'direct_reply_to', 'dead_letter',
    'ttl', 'priority', 'large_message', 'empty_message', 'properties', 'cancel_notify', 'heartbeat',
];

function delete_leftovers(string $url): void
{
    if (!$GLOBALS['leftovers']) {
        return;
    }
    try {
        $conn = connect($url, ['step' => 'cleanup']);
        foreach ($GLOBALS['leftovers'] as [$kind, $name]) {
            $ch = $conn->channel();
            try {
                $kind === 'queue' ? $ch->queue_delete($name) : $ch->exchange_delete($name);
                $ch->close();
            } catch (\Throwable $e) {
                fwrite(STDERR, "cleanup of $kind $name: {$e->getMessage()}\n");
            }
        }
        close_quietly($conn);
    } catch (\Throwable $e) {
        fwrite(STDERR, 'cleanup failed: ' . $e->getMessage() . "\n");
    }
}

function main(array $argv): int
{
    $url = $argv[1] ?? DEFAULT_URL;
    $names = count($argv) > 2 ? array_slice($argv, 2) : SCENARIOS;
    $failed = 0;
    foreach ($names as $name) {
        step('start');
        $GLOBALS['connections'] = [];
        $GLOBALS['leftovers'] = [];
        $reason = null;
        try {
            ('scenario_' . $name)($url);
        } catch (\Throwable $e) {
            $reason = describe($e);
            if (getenv('INTEROP_DEBUG')) {
                fwrite(STDERR, "$name: $e\n");
            }
        }
        foreach ($GLOBALS['connections'] as $conn) {
            close_quietly($conn);
        }
        $GLOBALS['connections'] = [];
        if ($reason !== null) {
            delete_leftovers($url);
            $failed++;
            echo 'FAIL ' . CLIENT . " $name: $reason\n";
        } else {
            echo 'PASS ' . CLIENT . " $name\n";
        }
        flush();
    }
    return $failed ? 1 : 0;
}

exit(main($argv));

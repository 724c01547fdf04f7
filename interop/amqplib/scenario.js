#!/usr/bin/env node
// Warren interop scenarios driven by the amqplib client.
//
// Usage: node scenario.js [AMQP_URL]
//
// Prints exactly one line per scenario:
//   PASS amqplib <scenario>
//   FAIL amqplib <scenario>: <reason>
// and exits non-zero if any scenario failed.
//
// "publish_consume_ack" uses the promise API (require('amqplib')),
// "get_and_reject" the callback API (require('amqplib/callback_api')).
// Each scenario runs under a watchdog timer and connects with a socket
// timeout, so an unresponsive broker makes the script fail within about
// 20 s instead of hanging.
'use strict';

const crypto = require('node:crypto');
const { isDeepStrictEqual, inspect } = require('node:util');
const amqp = require('amqplib');
const amqpCb = require('amqplib/callback_api');

const CLIENT = 'amqplib';
const DEFAULT_URL = 'amqp://guest:guest@127.0.0.1:5672/%2F';
const SCENARIO_TIMEOUT_MS = 9000; // hard limit for one scenario
const CONNECT_TIMEOUT_MS = 5000; // TCP connect + AMQP handshake
const DELIVERY_TIMEOUT_MS = 5000; // longest wait for a single delivery
const N_MESSAGES = 100;
const PREFETCH = 10;
const SOCKET_OPTIONS = {
  timeout: CONNECT_TIMEOUT_MS,
  clientProperties: { connection_name: 'warren-interop-amqplib' },
};

class Failure extends Error {}

function check(cond, reason) {
  if (!cond) throw new Failure(reason);
}

function show(v) {
  return inspect(v, { depth: 4, breakLength: Infinity });
}

function uniqueQueue(scenario) {
  return `warren-interop.${CLIENT}.${scenario}.${crypto.randomBytes(6).toString('hex')}`;
}

// Each scenario records what it is waiting on, for the timeout message.
let currentStep = 'start';
function step(desc) {
  currentStep = desc;
}

// Connections opened by the running scenario, torn down if it times out.
const openConnections = new Set();

// ------------------------------------------------------------ publish_consume_ack

// One value of every field-table type amqplib can encode. amqplib picks the
// narrowest integer tag for plain numbers ('b', 's', 'I', 'l') and 'd' for
// fractional ones; the rest are forced with its {'!': type, value} notation.
const BASE_HEADERS = {
  'x-string': 'héllo wörld ✓', // S
  'x-byte': -5, // b
  'x-short': 300, // s
  'x-int': 70000, // I
  'x-long': 2 ** 40 + 7, // l
  'x-negative': -123456, // I
  'x-double': 3.25, // d
  'x-float': { '!': 'float', value: 1.5 }, // f
  'x-ubyte': { '!': 'uint8', value: 200 }, // B
  'x-ushort': { '!': 'uint16', value: 60000 }, // u
  'x-uint': { '!': 'uint32', value: 4000000000 }, // i
  'x-bool-true': true, // t
  'x-bool-false': false, // t
  'x-decimal': { '!': 'decimal', value: { places: 3, digits: 12345 } }, // D
  'x-timestamp': { '!': 'timestamp', value: 1795000000 }, // T
  'x-void': null, // V
  'x-bytes': Buffer.from([0x00, 0x01, 0xfe, 0xff]), // x
  'x-array': [1, 'two', true, [3]], // A
  'x-table': { nested: 'yes', depth: { n: 2 } }, // F
};

// How each header is expected to decode: amqplib returns plain numbers for
// the typed integer and float tags, and keeps the {'!': ...} wrapper only for
// decimal and timestamp.
function expectedHeader(value) {
  if (value && typeof value === 'object' && Object.hasOwn(value, '!') && !['decimal', 'timestamp'].includes(value['!'])) {
    return value.value;
  }
  return value;
}

function publishOptions(i, runId) {
  return {
    contentType: 'application/json',
    contentEncoding: 'utf-8',
    headers: { ...BASE_HEADERS, seq: i },
    deliveryMode: i % 2 === 0 ? 2 : 1,
    priority: i % 10,
    correlationId: `corr-${i}`,
    messageId: `msg-${i}-${runId}`,
    timestamp: 1795000000 + i,
    type: 'interop.test',
    appId: 'warren-interop',
    mandatory: true,
  };
}

function bodyFor(i) {
  return Buffer.from(JSON.stringify({ seq: i, pad: 'x'.repeat(i % 17) }));
}

const PROPERTY_FIELDS = [
  'contentType',
  'contentEncoding',
  'deliveryMode',
  'priority',
  'correlationId',
  'messageId',
  'timestamp',
  'type',
  'appId',
];

function compareProperties(i, got, sent) {
  for (const field of PROPERTY_FIELDS) {
    check(got[field] === sent[field], `message ${i}: property ${field} round-tripped as ${show(got[field])}, sent ${show(sent[field])}`);
  }
  for (const field of ['replyTo', 'expiration', 'userId', 'clusterId']) {
    check(got[field] === undefined, `message ${i}: unset property ${field} came back as ${show(got[field])}`);
  }
  const headers = got.headers;
  check(headers && typeof headers === 'object', `message ${i}: headers missing (got ${show(headers)})`);
  const keys = new Set([...Object.keys(headers), ...Object.keys(sent.headers)]);
  for (const key of keys) {
    check(Object.hasOwn(headers, key), `message ${i}: header ${key} missing`);
    check(Object.hasOwn(sent.headers, key), `message ${i}: unexpected header ${key}=${show(headers[key])}`);
    const want = expectedHeader(sent.headers[key]);
    check(isDeepStrictEqual(headers[key], want), `message ${i}: header ${key} round-tripped as ${show(headers[key])}, sent ${show(want)}`);
  }
}

// Turns push-style deliveries into awaitable pulls with a timeout.
class DeliveryQueue {
  constructor() {
    this.items = [];
    this.waiter = null;
  }

  push(msg) {
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      w(msg);
    } else {
      this.items.push(msg);
    }
  }

  get length() {
    return this.items.length;
  }

  next(timeoutMs) {
    if (this.items.length > 0) return Promise.resolve(this.items.shift());
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = null;
        reject(new Failure(`no delivery within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      this.waiter = (msg) => {
        clearTimeout(timer);
        resolve(msg);
      };
    });
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function publishConsumeAck(url) {
  step('connection handshake');
  const conn = await amqp.connect(url, SOCKET_OPTIONS);
  openConnections.add(conn);
  let connError = null;
  conn.on('error', (err) => {
    connError = err;
  });

  step('channel.open + confirm.select');
  const ch = await conn.createConfirmChannel();
  let channelError = null;
  ch.on('error', (err) => {
    channelError = err;
  });
  const returned = [];
  ch.on('return', (msg) => returned.push(msg));

  const queue = uniqueQueue('pca');
  step('queue.declare');
  // exclusive: the queue goes away with the connection. Not auto-delete: that
  // would delete it when the consumer is cancelled, before the final check.
  const declared = await ch.assertQueue(queue, { exclusive: true, durable: false, autoDelete: false });
  check(declared.queue === queue, `declare-ok names queue ${show(declared.queue)}`);
  check(declared.messageCount === 0, `fresh queue has ${declared.messageCount} messages`);

  step('basic.publish x100 + confirms');
  const runId = crypto.randomBytes(4).toString('hex');
  const sent = [];
  const confirms = [];
  for (let i = 0; i < N_MESSAGES; i++) {
    const opts = publishOptions(i, runId);
    sent.push(opts);
    confirms.push(
      new Promise((resolve) => {
        ch.publish('', queue, bodyFor(i), opts, (err) => resolve(err ? `message ${i} was nacked: ${err.message}` : null));
      }),
    );
  }
  await ch.waitForConfirms();
  const nacks = (await Promise.all(confirms)).filter((r) => r !== null);
  check(nacks.length === 0, nacks[0]);
  check(returned.length === 0, `${returned.length} messages were returned as unroutable`);

  step('queue.declare passive (after publishing)');
  let info = await ch.checkQueue(queue);
  check(info.messageCount === N_MESSAGES, `after confirms queue holds ${info.messageCount} messages, expected ${N_MESSAGES}`);

  step('basic.qos');
  await ch.prefetch(PREFETCH);
  const deliveries = new DeliveryQueue();
  let cancelledByBroker = false;
  step('basic.consume');
  const { consumerTag } = await ch.consume(
    queue,
    (msg) => {
      if (msg === null) cancelledByBroker = true;
      else deliveries.push(msg);
    },
    { noAck: false },
  );
  check(typeof consumerTag === 'string' && consumerTag.length > 0, `consume-ok gave consumer tag ${show(consumerTag)}`);

  let lastTag = 0;
  for (let i = 0; i < N_MESSAGES; i++) {
    step(`waiting for delivery #${i}`);
    let msg;
    try {
      msg = await deliveries.next(DELIVERY_TIMEOUT_MS);
    } catch (err) {
      check(!cancelledByBroker, `consumer cancelled by broker after ${i} deliveries`);
      throw new Failure(`${err.message} after ${i} of ${N_MESSAGES} messages`);
    }
    const want = bodyFor(i);
    check(msg.content.equals(want), `message ${i}: body ${show(msg.content.toString())}, expected ${show(want.toString())} (out of order?)`);
    const f = msg.fields;
    check(f.consumerTag === consumerTag, `message ${i}: consumer tag ${show(f.consumerTag)}, expected ${show(consumerTag)}`);
    check(f.exchange === '' && f.routingKey === queue, `message ${i}: delivered with exchange=${show(f.exchange)} routingKey=${show(f.routingKey)}`);
    check(f.redelivered === false, `message ${i}: redelivered flag set on first delivery`);
    check(f.deliveryTag > lastTag, `message ${i}: delivery tag ${f.deliveryTag} not increasing`);
    lastTag = f.deliveryTag;
    compareProperties(i, msg.properties, sent[i]);
    if (i === 0) {
      // Hold the first message unacked for a moment: with prefetch 10 the
      // broker may have at most 9 more in flight, never more.
      step('checking prefetch limit');
      await sleep(500);
      check(deliveries.length <= PREFETCH - 1, `prefetch ${PREFETCH} not honoured: ${deliveries.length + 1} unacked deliveries outstanding`);
    }
    ch.ack(msg);
  }

  step('basic.cancel');
  await ch.cancel(consumerTag);
  check(deliveries.length === 0, `${deliveries.length} unexpected extra deliveries`);
  // Acks have no reply; this round trip on the same channel orders them first.
  step('queue.declare passive (after acks)');
  info = await ch.checkQueue(queue);
  check(info.messageCount === 0, `queue still holds ${info.messageCount} messages after acking all`);
  check(info.consumerCount === 0, `queue still has ${info.consumerCount} consumers after cancel`);
  check(channelError === null, `channel error: ${channelError && channelError.message}`);

  step('channel.close');
  await ch.close();
  step('connection.close');
  await conn.close();
  openConnections.delete(conn);
  check(connError === null, `connection error: ${connError && connError.message}`);
}

// ------------------------------------------------------------ get_and_reject

function getAndReject(url, done) {
  const queue = uniqueQueue('gar');
  const body = Buffer.from('reject me once');
  const props = { contentType: 'text/plain', messageId: 'gar-1', headers: { attempt: 1 }, mandatory: true };
  let conn = null;
  let ch = null;
  let finished = false;

  // Every path ends here exactly once; a failure tears the connection down.
  function finish(err) {
    if (finished) return;
    finished = true;
    if (err && conn) {
      try {
        conn.connection.stream.destroy();
      } catch (_) {
        /* best effort */
      }
    }
    done(err || null);
  }

  // Wraps a node-style callback so failures, including failed checks thrown
  // inside it, are routed to finish().
  function guard(fn) {
    return (err, ...args) => {
      if (err) return finish(err);
      try {
        fn(...args);
      } catch (e) {
        finish(e);
      }
    };
  }

  step('connection handshake');
  amqpCb.connect(
    url,
    SOCKET_OPTIONS,
    guard((c) => {
      conn = c;
      openConnections.add(conn);
      conn.on('error', (err) => finish(err));
      step('channel.open + confirm.select');
      conn.createConfirmChannel(guard(onChannel));
    }),
  );

  function onChannel(c) {
    ch = c;
    ch.on('error', (err) => finish(err));
    ch.on('return', () => finish(new Failure('message returned as unroutable')));
    step('queue.declare');
    ch.assertQueue(queue, { exclusive: true, durable: false, autoDelete: false }, guard(onDeclared));
  }

  function onDeclared(ok) {
    check(ok.queue === queue, `declare-ok names queue ${show(ok.queue)}`);
    step('basic.publish + confirm');
    ch.publish('', queue, body, props, guard(onConfirmed));
  }

  function onConfirmed() {
    step('first basic.get');
    ch.get(queue, { noAck: false }, guard(onFirstGet));
  }

  function checkMessage(which, msg) {
    check(msg !== false, `${which} get returned get-empty`);
    check(msg.content.equals(body), `${which} get: body ${show(msg.content.toString())}`);
    check(msg.properties.messageId === 'gar-1' && isDeepStrictEqual(msg.properties.headers, { attempt: 1 }), `${which} get: properties ${show(msg.properties)}`);
    check(msg.fields.messageCount === 0, `${which} get: message_count ${msg.fields.messageCount}, expected 0`);
  }

  let firstTag;
  function onFirstGet(msg) {
    checkMessage('first', msg);
    check(msg.fields.redelivered === false, 'first get: redelivered=true on a fresh message');
    firstTag = msg.fields.deliveryTag;
    ch.reject(msg, true);
    step('second basic.get (after reject)');
    ch.get(queue, { noAck: false }, guard(onSecondGet));
  }

  function onSecondGet(msg) {
    checkMessage('second', msg);
    check(msg.fields.redelivered === true, 'second get: redelivered flag not set after reject(requeue=true)');
    check(msg.fields.deliveryTag !== firstTag, `second get reused delivery tag ${firstTag}`);
    ch.ack(msg);
    step('third basic.get (after ack)');
    ch.get(queue, { noAck: false }, guard(onThirdGet));
  }

  function onThirdGet(msg) {
    check(msg === false, 'third get returned a message after ack');
    step('queue.declare passive');
    ch.checkQueue(queue, guard(onChecked));
  }

  function onChecked(ok) {
    check(ok.messageCount === 0, `queue holds ${ok.messageCount} messages after ack`);
    step('channel.close');
    ch.close(guard(onChannelClosed));
  }

  function onChannelClosed() {
    step('connection.close');
    conn.close(
      guard(() => {
        openConnections.delete(conn);
        finish(null);
      }),
    );
  }
}

// ------------------------------------------------------------ runner

const SCENARIOS = [
  ['publish_consume_ack', publishConsumeAck],
  ['get_and_reject', (url) => new Promise((resolve, reject) => getAndReject(url, (err) => (err ? reject(err) : resolve())))],
];

function describe(err) {
  let text = err && err.message ? err.message : String(err);
  if (!(err instanceof Failure)) text = `${(err && err.name) || 'Error'}: ${text} (during ${currentStep})`;
  text = text.split(/\s+/).join(' ').trim(); // keep the result on one line
  return text.length <= 300 ? text : `${text.slice(0, 297)}...`;
}

function withTimeout(promise, ms) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Failure(`timed out during ${currentStep}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function dropConnections() {
  for (const conn of openConnections) {
    try {
      conn.connection.stream.destroy();
    } catch (_) {
      /* best effort */
    }
  }
  openConnections.clear();
}

async function main() {
  const url = process.argv[2] || DEFAULT_URL;
  let failed = 0;
  for (const [name, fn] of SCENARIOS) {
    currentStep = 'start';
    try {
      await withTimeout(Promise.resolve().then(() => fn(url)), SCENARIO_TIMEOUT_MS);
      console.log(`PASS ${CLIENT} ${name}`);
    } catch (err) {
      failed++;
      console.log(`FAIL ${CLIENT} ${name}: ${describe(err)}`);
    }
    dropConnections();
  }
  return failed ? 1 : 0;
}

// A stray error from a torn-down connection must not replace the result lines.
process.on('uncaughtException', (err) => {
  process.stderr.write(`amqplib scenario: uncaught ${err && err.stack ? err.stack : err}\n`);
});

main().then(
  (code) => {
    process.exitCode = code;
    // Do not wait for sockets of timed-out scenarios to drain.
    setImmediate(() => process.exit(code));
  },
  (err) => {
    console.log(`FAIL ${CLIENT} runner: ${describe(err)}`);
    process.exit(1);
  },
);

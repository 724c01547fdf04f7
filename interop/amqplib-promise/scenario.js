#!/usr/bin/env node
// Warren interop scenarios (interop/SCENARIOS.md) written with amqplib's
// promise API: `require('amqplib')`, async/await, event listeners for
// deliveries, returns and errors.
//
// Usage: node scenario.js [AMQP_URL] [scenario ...]
//
// Prints one line per scenario, `PASS amqplib-promise <scenario>` or
// `FAIL amqplib-promise <scenario>: <reason>`, and exits non-zero if any failed.
'use strict';

const crypto = require('node:crypto');
const path = require('node:path');
const { isDeepStrictEqual, inspect } = require('node:util');
const amqp = require('amqplib');

const CLIENT = path.basename(__dirname);
const DEFAULT_URL = 'amqp://guest:guest@127.0.0.1:5672/%2F';
const SCENARIO_TIMEOUT_MS = 15000; // watchdog for a whole scenario
const WAIT_MS = 5000; // longest wait for one delivery, return or confirm
const QUIET_MS = 300; // how long "nothing more arrives" is watched

class Failure extends Error {}

function check(cond, reason) {
  if (!cond) throw new Failure(reason);
}

function show(v) {
  return inspect(v, { depth: 6, breakLength: Infinity, maxStringLength: 80 });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// What the running scenario is doing, for failure and timeout messages.
let currentStep = 'start';
function step(desc) {
  currentStep = desc;
}

// Broker-side names: client name, scenario, random suffix.
function brokerName(scenario, what) {
  return `${CLIENT}.${scenario}.${what}.${crypto.randomBytes(4).toString('hex')}`;
}

// Turns push-style callbacks (consumer, 'return' listener) into awaitable
// pulls with a timeout.
class Inbox {
  constructor(what) {
    this.what = what;
    this.items = [];
    this.waiters = [];
  }

  push = (item) => {
    const waiter = this.waiters.shift();
    if (waiter) waiter(item);
    else this.items.push(item);
  };

  get length() {
    return this.items.length;
  }

  next(timeoutMs = WAIT_MS) {
    if (this.items.length > 0) return Promise.resolve(this.items.shift());
    return new Promise((resolve, reject) => {
      const waiter = (item) => {
        clearTimeout(timer);
        resolve(item);
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Failure(`${currentStep}: no ${this.what} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  async nothingMore(ms = QUIET_MS) {
    await sleep(ms);
    check(this.items.length === 0, `${currentStep}: unexpected ${this.what}: ${show(this.items.map(describeMessage))}`);
  }
}

function describeMessage(m) {
  if (!m || !m.content) return m;
  return { body: m.content.toString().slice(0, 60), fields: m.fields };
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Failure(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// ------------------------------------------------------------ per-scenario context

// Opens connections for a scenario and tears down whatever is left at its end:
// connections still open, exchanges not yet deleted.
class Context {
  constructor(url, scenario) {
    this.url = url;
    this.scenario = scenario;
    this.connections = new Set();
    this.exchanges = new Set();
  }

  name(what) {
    return brokerName(this.scenario, what);
  }

  async connect(options = {}) {
    const target = options.heartbeat === undefined ? this.url : withQuery(this.url, { heartbeat: options.heartbeat });
    const conn = await amqp.connect(target, {
      timeout: 5000,
      clientProperties: { connection_name: `${CLIENT} ${this.scenario}` },
    });
    conn.errors = [];
    conn.closed = false;
    conn.on('error', (err) => conn.errors.push(err));
    conn.on('close', () => {
      conn.closed = true;
    });
    this.connections.add(conn);
    return conn;
  }

  // A channel whose errors are recorded instead of thrown.
  async channel(conn, { confirm = false } = {}) {
    const ch = confirm ? await conn.createConfirmChannel() : await conn.createChannel();
    ch.errors = [];
    ch.on('error', (err) => ch.errors.push(err));
    return ch;
  }

  async declareExchange(ch, name, type, options = {}) {
    this.exchanges.add(name);
    await ch.assertExchange(name, type, { durable: false, ...options });
  }

  async deleteExchange(ch, name) {
    await ch.deleteExchange(name);
    this.exchanges.delete(name);
  }

  async close(conn) {
    await conn.close();
    this.connections.delete(conn);
  }

  async teardown() {
    if (this.exchanges.size > 0) {
      try {
        const deleteLeftovers = async () => {
          const conn = await this.connect();
          const ch = await this.channel(conn);
          for (const ex of this.exchanges) await ch.deleteExchange(ex);
          this.exchanges.clear();
        };
        await withTimeout(deleteLeftovers(), 3000, 'deleting leftover exchanges');
      } catch (err) {
        process.stderr.write(`${CLIENT} ${this.scenario}: cleanup failed: ${err}\n`);
      }
    }
    for (const conn of this.connections) {
      if (conn.closed) continue;
      try {
        await withTimeout(conn.close(), 2000, 'connection.close');
      } catch (_) {
        conn.connection.stream.destroy();
      }
    }
    this.connections.clear();
  }
}

function withQuery(url, params) {
  const u = new URL(url);
  for (const [k, v] of Object.entries(params)) u.searchParams.set(k, String(v));
  return u.toString();
}

function loginUser(url) {
  const u = new URL(url);
  return u.username ? decodeURIComponent(u.username) : 'guest';
}

function checkNoErrors(...emitters) {
  for (const e of emitters) {
    check(e.errors.length === 0, `${e.constructor.name} error: ${e.errors.map((x) => x.message).join('; ')}`);
  }
}

// ------------------------------------------------------------ scenarios

const REQUIRED_CAPABILITIES = ['publisher_confirms', 'basic.nack', 'consumer_cancel_notify', 'exchange_exchange_bindings'];

async function connect(ctx) {
  step('connection.open');
  const conn = await ctx.connect();
  const props = conn.connection.serverProperties;
  check(typeof props.product === 'string' && props.product.length > 0, `server properties name no product: ${show(props)}`);
  const caps = props.capabilities;
  check(caps && typeof caps === 'object', `server properties have no capabilities table: ${show(props)}`);
  for (const cap of REQUIRED_CAPABILITIES) {
    check(caps[cap] === true, `capability ${cap} is ${show(caps[cap])}, expected true`);
  }
  step('channel.open');
  const ch = await ctx.channel(conn);
  step('channel.close');
  await ch.close();
  step('connection.close');
  await ctx.close(conn);
  checkNoErrors(conn, ch);
}

// Publishes each [exchange, routingKey, headers] and returns, per queue, the
// sorted list of bodies found in it.
async function exchangeTypes(ctx) {
  step('connection.open');
  const conn = await ctx.connect();
  const ch = await ctx.channel(conn, { confirm: true });

  const ex = {
    direct: ctx.name('direct'),
    fanout: ctx.name('fanout'),
    topic: ctx.name('topic'),
    headers: ctx.name('headers'),
  };
  for (const [type, name] of Object.entries(ex)) {
    step(`exchange.declare ${type}`);
    await ctx.declareExchange(ch, name, type);
  }

  // queue label -> [exchange, binding key, binding arguments]
  const bindings = {
    directRed: [ex.direct, 'red'],
    directGreen: [ex.direct, 'green'],
    fanout1: [ex.fanout, 'ignored'],
    fanout2: [ex.fanout, ''],
    topicStar: [ex.topic, 'a.*'],
    topicHash: [ex.topic, 'a.#'],
    topicEnd: [ex.topic, '#.z'],
    headersAll: [ex.headers, '', { 'x-match': 'all', color: 'red', size: 'big' }],
    headersAny: [ex.headers, '', { 'x-match': 'any', color: 'red', size: 'big' }],
  };
  const queues = {};
  for (const [label, [exchange, key, args]] of Object.entries(bindings)) {
    step(`queue.declare + queue.bind ${label}`);
    const { queue } = await ch.assertQueue('', { exclusive: true });
    await ch.bindQueue(queue, exchange, key, args);
    queues[label] = queue;
  }

  const publishes = [
    ['d-red', ex.direct, 'red'],
    ['d-green', ex.direct, 'green'],
    ['d-blue', ex.direct, 'blue'],
    ['f-1', ex.fanout, 'anything'],
    ['t-a.b', ex.topic, 'a.b'],
    ['t-a.b.c', ex.topic, 'a.b.c'],
    ['t-a', ex.topic, 'a'],
    ['t-x.z', ex.topic, 'x.z'],
    ['t-a.z', ex.topic, 'a.z'],
    ['t-b.a', ex.topic, 'b.a'],
    ['h-both', ex.headers, '', { color: 'red', size: 'big' }],
    ['h-color', ex.headers, '', { color: 'red', size: 'small' }],
    ['h-none', ex.headers, '', { color: 'blue' }],
  ];
  step('basic.publish to every exchange');
  for (const [body, exchange, key, headers] of publishes) {
    ch.publish(exchange, key, Buffer.from(body), { headers });
  }
  step('waiting for confirms');
  await withTimeout(ch.waitForConfirms(), WAIT_MS, 'waitForConfirms');

  const expected = {
    directRed: ['d-red'],
    directGreen: ['d-green'],
    fanout1: ['f-1'],
    fanout2: ['f-1'],
    topicStar: ['t-a.b', 't-a.z'],
    topicHash: ['t-a', 't-a.b', 't-a.b.c', 't-a.z'],
    topicEnd: ['t-a.z', 't-x.z'],
    headersAll: ['h-both'],
    headersAny: ['h-both', 'h-color'],
  };
  for (const [label, want] of Object.entries(expected)) {
    step(`basic.get from ${label}`);
    const got = [];
    for (;;) {
      const msg = await ch.get(queues[label], { noAck: true });
      if (msg === false) break;
      got.push(msg.content.toString());
      check(got.length <= 20, `queue ${label} never runs empty`);
    }
    got.sort();
    check(isDeepStrictEqual(got, want), `queue ${label} got ${show(got)}, expected ${show(want)}`);
  }

  for (const [type, name] of Object.entries(ex)) {
    step(`exchange.delete ${type}`);
    await ctx.deleteExchange(ch, name);
  }
  checkNoErrors(conn, ch);
  step('connection.close');
  await ctx.close(conn);
}

async function publishConsumeAck(ctx) {
  const N = 100;
  step('connection.open');
  const conn = await ctx.connect();
  const ch = await ctx.channel(conn);
  step('queue.declare');
  const { queue } = await ch.assertQueue(ctx.name('q'), { exclusive: true });

  step('basic.publish x100');
  for (let i = 0; i < N; i++) ch.sendToQueue(queue, Buffer.from(`message ${i}`), { messageId: String(i) });

  const inbox = new Inbox('delivery');
  step('basic.consume');
  const { consumerTag } = await ch.consume(queue, (msg) => inbox.push(msg), { noAck: false });
  let lastTag = 0;
  for (let i = 0; i < N; i++) {
    step(`waiting for delivery ${i}`);
    const msg = await inbox.next();
    check(msg !== null, `consumer cancelled by the broker after ${i} deliveries`);
    check(msg.content.toString() === `message ${i}`, `delivery ${i} has body ${show(msg.content.toString())}, expected "message ${i}"`);
    check(msg.fields.consumerTag === consumerTag, `delivery ${i}: consumer tag ${show(msg.fields.consumerTag)}, expected ${show(consumerTag)}`);
    check(msg.fields.redelivered === false, `delivery ${i}: redelivered is set`);
    check(msg.fields.deliveryTag > lastTag, `delivery ${i}: delivery tag ${msg.fields.deliveryTag} after ${lastTag}`);
    lastTag = msg.fields.deliveryTag;
    ch.ack(msg);
  }
  step('basic.cancel');
  await ch.cancel(consumerTag);
  check(inbox.length === 0, `${inbox.length} deliveries beyond the ${N} published`);
  step('queue.declare passive after acking all');
  const info = await ch.checkQueue(queue);
  check(info.messageCount === 0, `queue holds ${info.messageCount} messages after all were acked, expected 0`);
  checkNoErrors(conn, ch);
  step('connection.close');
  await ctx.close(conn);
}

async function nackRequeue(ctx) {
  step('connection.open');
  const conn = await ctx.connect();
  const ch = await ctx.channel(conn);
  step('queue.declare');
  const { queue } = await ch.assertQueue(ctx.name('q'), { exclusive: true });
  ch.sendToQueue(queue, Buffer.from('nack me'));

  const inbox = new Inbox('delivery');
  step('basic.consume');
  await ch.consume(queue, inbox.push, { noAck: false });
  step('first delivery');
  const first = await inbox.next();
  check(first.content.toString() === 'nack me', `first delivery has body ${show(first.content.toString())}`);
  check(first.fields.redelivered === false, 'first delivery: redelivered is already set');
  ch.nack(first, false, true);

  step('delivery after nack with requeue');
  const second = await inbox.next();
  check(second.content.toString() === 'nack me', `requeued delivery has body ${show(second.content.toString())}`);
  check(second.fields.redelivered === true, 'requeued delivery: redelivered is false, expected true');
  check(second.fields.deliveryTag !== first.fields.deliveryTag, `requeued delivery reuses delivery tag ${first.fields.deliveryTag}`);
  ch.nack(second, false, false);

  step('after nack without requeue');
  await inbox.nothingMore();
  const info = await ch.checkQueue(queue);
  check(info.messageCount === 0, `queue holds ${info.messageCount} messages after nack without requeue, expected 0`);
  checkNoErrors(conn, ch);
  step('connection.close');
  await ctx.close(conn);
}

async function basicGet(ctx) {
  step('connection.open');
  const conn = await ctx.connect();
  const ch = await ctx.channel(conn, { confirm: true });
  step('queue.declare');
  const { queue } = await ch.assertQueue(ctx.name('q'), { exclusive: true });

  step('get-empty on a fresh queue');
  check((await ch.get(queue)) === false, 'basic.get on an empty queue returned a message');

  step('publish 3 + confirms');
  for (const body of ['one', 'two', 'three']) ch.sendToQueue(queue, Buffer.from(body));
  await withTimeout(ch.waitForConfirms(), WAIT_MS, 'waitForConfirms');

  step('basic.get with manual ack');
  const m1 = await ch.get(queue, { noAck: false });
  check(m1 !== false, 'got get-empty, expected message "one"');
  check(m1.content.toString() === 'one', `got ${show(m1.content.toString())}, expected "one"`);
  check(m1.fields.messageCount === 2, `message count ${m1.fields.messageCount}, expected 2`);
  check(m1.fields.redelivered === false, 'redelivered is set on a fresh message');
  check(m1.fields.exchange === '' && m1.fields.routingKey === queue, `exchange/routing key ${show(m1.fields)}`);
  ch.ack(m1);

  step('basic.get with no-ack');
  const m2 = await ch.get(queue, { noAck: true });
  check(m2 !== false, 'got get-empty, expected message "two"');
  check(m2.content.toString() === 'two', `got ${show(m2.content.toString())}, expected "two"`);
  check(m2.fields.messageCount === 1, `message count ${m2.fields.messageCount}, expected 1`);

  step('basic.get the last message, then get-empty');
  const m3 = await ch.get(queue, { noAck: true });
  check(m3 !== false && m3.content.toString() === 'three', `got ${show(describeMessage(m3))}, expected "three"`);
  check(m3.fields.messageCount === 0, `message count ${m3.fields.messageCount}, expected 0`);
  check((await ch.get(queue, { noAck: false })) === false, 'basic.get on the drained queue returned a message');

  step('queue.declare passive');
  const info = await ch.checkQueue(queue);
  check(info.messageCount === 0, `queue holds ${info.messageCount} messages, expected 0 (the acked get came back?)`);
  checkNoErrors(conn, ch);
  step('connection.close');
  await ctx.close(conn);
}

async function prefetch(ctx) {
  step('connection.open');
  const conn = await ctx.connect();
  const ch = await ctx.channel(conn, { confirm: true });
  step('queue.declare');
  const { queue } = await ch.assertQueue(ctx.name('q'), { exclusive: true });
  step('publish 20 + confirms');
  for (let i = 0; i < 20; i++) ch.sendToQueue(queue, Buffer.from(`m${i}`));
  await withTimeout(ch.waitForConfirms(), WAIT_MS, 'waitForConfirms');

  step('basic.qos 5');
  await ch.prefetch(5);
  const inbox = new Inbox('delivery');
  step('basic.consume');
  await ch.consume(queue, inbox.push, { noAck: false });
  const held = [];
  for (let i = 0; i < 5; i++) {
    step(`delivery ${i + 1} of the first 5`);
    held.push(await inbox.next());
  }
  step('nothing beyond the prefetch of 5');
  await inbox.nothingMore();
  ch.ack(held[0]);
  step('delivery after acking one');
  const sixth = await inbox.next();
  check(sixth.content.toString() === 'm5', `delivery after the ack has body ${show(sixth.content.toString())}, expected "m5"`);
  step('nothing beyond one more');
  await inbox.nothingMore();
  checkNoErrors(conn, ch);
  step('connection.close');
  await ctx.close(conn);
}

async function publisherConfirms(ctx) {
  const N = 100;
  step('connection.open');
  const conn = await ctx.connect();
  step('confirm.select');
  const ch = await ctx.channel(conn, { confirm: true });
  step('queue.declare');
  const { queue } = await ch.assertQueue(ctx.name('q'), { exclusive: true });
  const acks = [];
  const nacks = [];
  ch.on('ack', (f) => acks.push(f));
  ch.on('nack', (f) => nacks.push(f));
  const results = [];
  step('publish 100 with confirm callbacks');
  for (let i = 0; i < N; i++) {
    results.push(
      new Promise((resolve) => {
        ch.sendToQueue(queue, Buffer.from(`confirm ${i}`), {}, (err) => resolve(err));
      }),
    );
  }
  step('waitForConfirms');
  await withTimeout(ch.waitForConfirms(), WAIT_MS, 'waitForConfirms');
  const outcomes = await withTimeout(Promise.all(results), WAIT_MS, 'publish callbacks');
  const failed = outcomes.map((err, i) => (err ? `${i}: ${err.message}` : null)).filter(Boolean);
  check(failed.length === 0, `${failed.length} publishes not acked: ${failed.slice(0, 3).join(', ')}`);
  check(nacks.length === 0, `broker sent basic.nack: ${show(nacks)}`);
  const highest = Math.max(...acks.map((f) => f.deliveryTag));
  check(highest === N, `highest confirmed delivery tag ${highest}, expected ${N}`);
  step('queue.declare passive');
  const info = await ch.checkQueue(queue);
  check(info.messageCount === N, `queue holds ${info.messageCount} messages, expected ${N}`);
  checkNoErrors(conn, ch);
  step('connection.close');
  await ctx.close(conn);
}

async function mandatoryReturn(ctx) {
  step('connection.open');
  const conn = await ctx.connect();
  const ch = await ctx.channel(conn, { confirm: true });
  const returns = new Inbox('basic.return');
  ch.on('return', returns.push);
  const key = ctx.name('unrouted');
  const events = [];
  ch.on('return', () => events.push('return'));

  step('basic.publish mandatory to an unbound key');
  const confirmed = new Promise((resolve) => {
    ch.publish('amq.direct', key, Buffer.from('come back'), { mandatory: true, messageId: 'ret-1' }, (err) => {
      events.push(err ? 'nack' : 'ack');
      resolve(err);
    });
  });
  step('waiting for basic.return');
  const msg = await returns.next();
  check(msg.fields.replyCode === 312, `reply code ${msg.fields.replyCode}, expected 312`);
  check(msg.fields.replyText === 'NO_ROUTE', `reply text ${show(msg.fields.replyText)}, expected "NO_ROUTE"`);
  check(msg.fields.exchange === 'amq.direct', `returned exchange ${show(msg.fields.exchange)}`);
  check(msg.fields.routingKey === key, `returned routing key ${show(msg.fields.routingKey)}, expected ${show(key)}`);
  check(msg.content.toString() === 'come back', `returned body ${show(msg.content.toString())}`);
  check(msg.properties.messageId === 'ret-1', `returned message id ${show(msg.properties.messageId)}`);
  step('waiting for the publish confirm');
  const err = await withTimeout(confirmed, WAIT_MS, 'confirm of the returned message');
  check(!err, `returned message was nacked: ${err && err.message}`);
  check(isDeepStrictEqual(events, ['return', 'ack']), `events in order ${show(events)}, expected basic.return before basic.ack`);
  checkNoErrors(conn, ch);
  step('connection.close');
  await ctx.close(conn);
}

// The request handler of the RPC server: upper-cases the body.
async function startRpcServer(ctx, requestQueue, seenReplyTo) {
  const conn = await ctx.connect();
  const ch = await ctx.channel(conn);
  await ch.assertQueue(requestQueue, { exclusive: true });
  await ch.prefetch(1);
  await ch.consume(requestQueue, (msg) => {
    seenReplyTo.push(msg.properties.replyTo);
    ch.sendToQueue(msg.properties.replyTo, Buffer.from(msg.content.toString().toUpperCase()), {
      correlationId: msg.properties.correlationId,
    });
    ch.ack(msg);
  });
  return { conn, ch };
}

// Sends requests to `requestQueue` with reply_to `replyTo` and checks that
// each reply carries the request's correlation id and the right answer.
async function rpcCalls(ch, requestQueue, replyTo, replies) {
  const pending = new Map();
  for (const word of ['alpha', 'beta', 'gamma']) {
    const correlationId = crypto.randomUUID();
    pending.set(correlationId, word);
    ch.sendToQueue(requestQueue, Buffer.from(word), { replyTo, correlationId });
  }
  while (pending.size > 0) {
    step(`waiting for ${pending.size} RPC replies`);
    const reply = await replies.next();
    const id = reply.properties.correlationId;
    check(pending.has(id), `reply with unknown correlation id ${show(id)}`);
    const want = pending.get(id).toUpperCase();
    check(reply.content.toString() === want, `reply ${show(reply.content.toString())}, expected ${show(want)}`);
    pending.delete(id);
  }
}

async function rpc(ctx) {
  const requestQueue = ctx.name('requests');
  step('server: connect, declare, consume');
  const seen = [];
  const server = await startRpcServer(ctx, requestQueue, seen);

  step('client: connect, declare reply queue');
  const conn = await ctx.connect();
  const ch = await ctx.channel(conn);
  const { queue: replyQueue } = await ch.assertQueue('', { exclusive: true });
  check(replyQueue.length > 0, 'server-named queue has an empty name');
  const replies = new Inbox('RPC reply');
  await ch.consume(replyQueue, replies.push, { noAck: true });
  await rpcCalls(ch, requestQueue, replyQueue, replies);
  check(
    seen.every((r) => r === replyQueue),
    `server saw reply_to ${show(seen)}, expected ${show(replyQueue)}`,
  );
  checkNoErrors(conn, ch, server.conn, server.ch);
  step('connection.close');
  await ctx.close(conn);
  await ctx.close(server.conn);
}

async function directReplyTo(ctx) {
  const requestQueue = ctx.name('requests');
  step('server: connect, declare, consume');
  const seen = [];
  const server = await startRpcServer(ctx, requestQueue, seen);

  step('client: consume amq.rabbitmq.reply-to (no-ack)');
  const conn = await ctx.connect();
  const ch = await ctx.channel(conn);
  const replies = new Inbox('direct reply');
  await ch.consume('amq.rabbitmq.reply-to', replies.push, { noAck: true });
  await rpcCalls(ch, requestQueue, 'amq.rabbitmq.reply-to', replies);
  check(
    seen.every((r) => typeof r === 'string' && r.startsWith('amq.rabbitmq.reply-to.')),
    `server saw reply_to ${show(seen)}, expected amq.rabbitmq.reply-to.<suffix>`,
  );
  checkNoErrors(conn, ch, server.conn, server.ch);
  step('connection.close');
  await ctx.close(conn);
  await ctx.close(server.conn);
}

function xDeath(msg) {
  const headers = msg.properties.headers || {};
  const deaths = headers['x-death'];
  check(Array.isArray(deaths) && deaths.length > 0, `dead-lettered message has x-death ${show(deaths)}`);
  return deaths[0];
}

async function deadLetter(ctx) {
  step('connection.open');
  const conn = await ctx.connect();
  const ch = await ctx.channel(conn);
  const dlx = ctx.name('dlx');
  step('declare dead-letter exchange and queue');
  await ctx.declareExchange(ch, dlx, 'direct');
  const { queue: dlq } = await ch.assertQueue(ctx.name('dlq'), { exclusive: true });
  await ch.bindQueue(dlq, dlx, 'dead');
  step('declare the source queue');
  const { queue: source } = await ch.assertQueue(ctx.name('source'), {
    exclusive: true,
    deadLetterExchange: dlx,
    deadLetterRoutingKey: 'dead',
  });
  ch.sendToQueue(source, Buffer.from('doomed'), { messageId: 'dl-1' });

  const inbox = new Inbox('delivery');
  step('consume the source queue');
  await ch.consume(source, inbox.push, { noAck: false });
  const msg = await inbox.next();
  check(msg.content.toString() === 'doomed', `source delivery ${show(msg.content.toString())}`);
  ch.reject(msg, false);

  const dead = new Inbox('dead-lettered message');
  step('consume the dead-letter queue');
  await ch.consume(dlq, dead.push, { noAck: true });
  const d = await dead.next();
  check(d.content.toString() === 'doomed' && d.properties.messageId === 'dl-1', `dead-lettered message ${show(describeMessage(d))}`);
  check(d.fields.exchange === dlx && d.fields.routingKey === 'dead', `dead-lettered via ${show(d.fields.exchange)}/${show(d.fields.routingKey)}, expected ${dlx}/dead`);
  const death = xDeath(d);
  check(death.count === 1, `x-death count ${show(death.count)}, expected 1`);
  check(death.reason === 'rejected', `x-death reason ${show(death.reason)}, expected "rejected"`);
  check(death.queue === source, `x-death queue ${show(death.queue)}, expected ${show(source)}`);
  check(death.exchange === '', `x-death exchange ${show(death.exchange)}, expected ""`);
  check(isDeepStrictEqual(death['routing-keys'], [source]), `x-death routing-keys ${show(death['routing-keys'])}`);
  step('source queue is empty');
  const info = await ch.checkQueue(source);
  check(info.messageCount === 0, `source queue holds ${info.messageCount} messages`);
  step('exchange.delete');
  await ctx.deleteExchange(ch, dlx);
  checkNoErrors(conn, ch);
  step('connection.close');
  await ctx.close(conn);
}

async function ttl(ctx) {
  const TTL = 300;
  step('connection.open');
  const conn = await ctx.connect();
  const ch = await ctx.channel(conn, { confirm: true });
  const dlx = ctx.name('dlx');
  step('declare dead-letter exchange and queue');
  await ctx.declareExchange(ch, dlx, 'fanout');
  const { queue: dlq } = await ch.assertQueue(ctx.name('dlq'), { exclusive: true });
  await ch.bindQueue(dlq, dlx, '');
  step('declare a queue with x-message-ttl and a plain one');
  const { queue: ttlQueue } = await ch.assertQueue(ctx.name('ttl'), { exclusive: true, messageTtl: TTL, deadLetterExchange: dlx });
  const { queue: plainQueue } = await ch.assertQueue(ctx.name('plain'), { exclusive: true, deadLetterExchange: dlx });
  const dead = new Inbox('expired message');
  await ch.consume(dlq, dead.push, { noAck: true });

  step('publish to both');
  const start = Date.now();
  ch.sendToQueue(ttlQueue, Buffer.from('queue ttl'));
  ch.sendToQueue(plainQueue, Buffer.from('message ttl'), { expiration: String(TTL) });
  await withTimeout(ch.waitForConfirms(), WAIT_MS, 'waitForConfirms');

  const got = {};
  for (let i = 0; i < 2; i++) {
    step(`waiting for expired message ${i + 1} of 2`);
    const d = await dead.next();
    const elapsed = Date.now() - start;
    check(elapsed >= TTL - 50, `${show(d.content.toString())} dead-lettered after ${elapsed} ms, before its ${TTL} ms TTL`);
    got[d.content.toString()] = d;
  }
  check(got['queue ttl'] && got['message ttl'], `expired messages ${show(Object.keys(got))}`);
  const q = xDeath(got['queue ttl']);
  check(q.reason === 'expired' && q.queue === ttlQueue && q.count === 1, `x-death of the queue-TTL message ${show(q)}, expected reason expired, queue ${ttlQueue}, count 1`);
  const m = xDeath(got['message ttl']);
  check(m.reason === 'expired' && m.queue === plainQueue && m.count === 1, `x-death of the per-message-TTL message ${show(m)}, expected reason expired, queue ${plainQueue}, count 1`);
  check(m['original-expiration'] === String(TTL), `x-death original-expiration ${show(m['original-expiration'])}, expected "${TTL}"`);
  check(got['message ttl'].properties.expiration === undefined, `dead-lettered message kept expiration ${show(got['message ttl'].properties.expiration)}`);

  step('both queues are empty');
  for (const queue of [ttlQueue, plainQueue]) {
    const info = await ch.checkQueue(queue);
    check(info.messageCount === 0, `${queue} holds ${info.messageCount} messages after the TTL`);
  }
  step('exchange.delete');
  await ctx.deleteExchange(ch, dlx);
  checkNoErrors(conn, ch);
  step('connection.close');
  await ctx.close(conn);
}

async function priority(ctx) {
  step('connection.open');
  const conn = await ctx.connect();
  const ch = await ctx.channel(conn, { confirm: true });
  step('queue.declare x-max-priority 10');
  const { queue } = await ch.assertQueue(ctx.name('q'), { exclusive: true, maxPriority: 10 });
  step('publish priorities 1, 5, 9');
  for (const p of [1, 5, 9]) ch.sendToQueue(queue, Buffer.from(`priority ${p}`), { priority: p });
  await withTimeout(ch.waitForConfirms(), WAIT_MS, 'waitForConfirms');
  const inbox = new Inbox('delivery');
  step('basic.consume');
  await ch.consume(queue, inbox.push, { noAck: true });
  const order = [];
  for (let i = 0; i < 3; i++) {
    step(`delivery ${i + 1} of 3`);
    order.push((await inbox.next()).properties.priority);
  }
  check(isDeepStrictEqual(order, [9, 5, 1]), `priorities arrived as ${show(order)}, expected [9, 5, 1]`);
  checkNoErrors(conn, ch);
  step('connection.close');
  await ctx.close(conn);
}

async function largeMessage(ctx) {
  const body = crypto.randomBytes(5 * 1024 * 1024);
  step('connection.open');
  const conn = await ctx.connect();
  const ch = await ctx.channel(conn, { confirm: true });
  step('queue.declare');
  const { queue } = await ch.assertQueue(ctx.name('q'), { exclusive: true });
  step('publish 5 MiB + confirm');
  ch.sendToQueue(queue, body, { contentType: 'application/octet-stream' });
  await withTimeout(ch.waitForConfirms(), 10000, 'waitForConfirms');
  const inbox = new Inbox('delivery');
  step('basic.consume');
  await ch.consume(queue, inbox.push, { noAck: false });
  const msg = await inbox.next(10000);
  check(msg.content.length === body.length, `body is ${msg.content.length} bytes, expected ${body.length}`);
  check(msg.content.equals(body), `body differs from the one sent (first differing byte at ${firstDiff(msg.content, body)})`);
  ch.ack(msg);
  checkNoErrors(conn, ch);
  step('connection.close');
  await ctx.close(conn);
}

function firstDiff(a, b) {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return i;
  return Math.min(a.length, b.length);
}

async function emptyMessage(ctx) {
  step('connection.open');
  const conn = await ctx.connect();
  const ch = await ctx.channel(conn, { confirm: true });
  step('queue.declare');
  const { queue } = await ch.assertQueue(ctx.name('q'), { exclusive: true });
  step('publish an empty body + confirm');
  ch.sendToQueue(queue, Buffer.alloc(0), { contentType: 'text/plain', messageId: 'empty-1', headers: { kind: 'empty' } });
  await withTimeout(ch.waitForConfirms(), WAIT_MS, 'waitForConfirms');
  const inbox = new Inbox('delivery');
  step('basic.consume');
  await ch.consume(queue, inbox.push, { noAck: true });
  const msg = await inbox.next();
  check(msg.content.length === 0, `body is ${msg.content.length} bytes, expected 0`);
  const p = msg.properties;
  check(p.contentType === 'text/plain' && p.messageId === 'empty-1', `properties ${show(p)}`);
  check(isDeepStrictEqual(p.headers, { kind: 'empty' }), `headers ${show(p.headers)}`);
  checkNoErrors(conn, ch);
  step('connection.close');
  await ctx.close(conn);
}

// Every field-table type amqplib can encode. Plain numbers get the narrowest
// signed tag ('b', 's', 'I', 'l') or 'd'; other tags need {'!': type, value}.
const HEADERS = {
  string: 'héllo wörld ✓', // S
  int8: -5, // b
  int16: 300, // s
  int32: -70000, // I
  int64: 2 ** 40 + 7, // l
  int64Negative: -(2 ** 40), // l
  forcedInt64: { '!': 'int64', value: 7 }, // l
  double: 3.25, // d
  float: { '!': 'float', value: 1.5 }, // f
  uint8: { '!': 'uint8', value: 200 }, // B
  uint16: { '!': 'uint16', value: 60000 }, // u
  uint32: { '!': 'uint32', value: 4000000000 }, // i
  true: true, // t
  false: false, // t
  decimal: { '!': 'decimal', value: { places: 2, digits: 12345 } }, // D
  timestamp: { '!': 'timestamp', value: 1700000000 }, // T
  void: null, // V
  bytes: Buffer.from([0, 1, 0xfe, 0xff]), // x
  array: [1, 'two', true, null, [3, 'four'], { k: 'v' }, { '!': 'timestamp', value: 5 }], // A
  table: { nested: 'yes', deeper: { n: -2, list: [] } }, // F
  emptyTable: {}, // F
  emptyString: '', // S
};

// How amqplib decodes each value: plain numbers for every integer and
// float tag; decimals and timestamps keep their {'!': ...} wrapper.
function decoded(value) {
  if (Array.isArray(value)) return value.map(decoded);
  if (value && typeof value === 'object' && !Buffer.isBuffer(value)) {
    if (Object.hasOwn(value, '!')) return ['decimal', 'timestamp'].includes(value['!']) ? value : value.value;
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, decoded(v)]));
  }
  return value;
}

async function properties(ctx) {
  const user = loginUser(ctx.url);
  const sent = {
    contentType: 'application/json',
    contentEncoding: 'gzip',
    headers: HEADERS,
    deliveryMode: 2,
    priority: 7,
    correlationId: 'corr-42',
    replyTo: 'reply-here',
    expiration: '60000',
    messageId: 'msg-42',
    timestamp: 1700000000,
    type: 'interop.properties',
    userId: user,
    appId: 'warren-interop',
  };
  step('connection.open');
  const conn = await ctx.connect();
  const ch = await ctx.channel(conn, { confirm: true });
  step('queue.declare');
  const { queue } = await ch.assertQueue(ctx.name('q'), { exclusive: true });
  step('publish with every property + confirm');
  ch.sendToQueue(queue, Buffer.from('{"all":"properties"}'), sent);
  await withTimeout(ch.waitForConfirms(), WAIT_MS, 'waitForConfirms');
  const inbox = new Inbox('delivery');
  step('basic.consume');
  await ch.consume(queue, inbox.push, { noAck: true });
  const msg = await inbox.next();
  const got = msg.properties;
  for (const [field, want] of Object.entries(sent)) {
    if (field === 'headers') continue;
    check(got[field] === want, `property ${field} came back as ${show(got[field])}, sent ${show(want)}`);
  }
  check(got.clusterId === undefined, `unset cluster id came back as ${show(got.clusterId)}`);
  const headers = got.headers || {};
  const keys = new Set([...Object.keys(headers), ...Object.keys(HEADERS)]);
  for (const key of keys) {
    check(Object.hasOwn(headers, key), `header ${key} missing`);
    check(Object.hasOwn(HEADERS, key), `unexpected header ${key} = ${show(headers[key])}`);
    const want = decoded(HEADERS[key]);
    check(isDeepStrictEqual(headers[key], want), `header ${key} came back as ${show(headers[key])}, sent ${show(want)}`);
  }
  checkNoErrors(conn, ch);
  step('connection.close');
  await ctx.close(conn);
}

async function cancelNotify(ctx) {
  step('connection.open');
  const conn = await ctx.connect();
  const ch = await ctx.channel(conn);
  step('queue.declare');
  const { queue } = await ch.assertQueue(ctx.name('q'), { exclusive: true });
  const inbox = new Inbox('consumer notification');
  step('basic.consume');
  const { consumerTag } = await ch.consume(queue, inbox.push, { noAck: false });
  const cancels = [];
  ch.on('cancel', (fields) => cancels.push(fields));

  step('queue.delete from another channel');
  const other = await ctx.channel(conn);
  await other.deleteQueue(queue);
  step('waiting for basic.cancel');
  const notification = await inbox.next();
  check(notification === null, `consumer got ${show(describeMessage(notification))} instead of the cancel (null)`);
  check(cancels.length === 1 && cancels[0].consumerTag === consumerTag, `basic.cancel fields ${show(cancels)}, expected consumer tag ${consumerTag}`);
  step('consumer channel still usable');
  await ch.assertQueue('', { exclusive: true });
  checkNoErrors(conn, ch, other);
  step('connection.close');
  await ctx.close(conn);
}

async function heartbeat(ctx) {
  step('connection.open with heartbeat=1');
  const conn = await ctx.connect({ heartbeat: 1 });
  check(conn.connection.heartbeat === 1, `negotiated heartbeat ${conn.connection.heartbeat}, expected 1`);
  const ch = await ctx.channel(conn);
  step('queue.declare');
  const { queue } = await ch.assertQueue(ctx.name('q'), { exclusive: true });
  step('idle for 2.5 heartbeat intervals');
  await sleep(2500);
  check(!conn.closed, `connection closed while idle: ${conn.errors.map((e) => e.message).join('; ') || 'no error'}`);
  step('publish + basic.get after the idle period');
  ch.sendToQueue(queue, Buffer.from('still here'));
  const msg = await ch.get(queue, { noAck: true });
  check(msg !== false && msg.content.toString() === 'still here', `basic.get after idling returned ${show(describeMessage(msg))}`);
  checkNoErrors(conn, ch);
  step('connection.close');
  await ctx.close(conn);
}

// ------------------------------------------------------------ runner

const SCENARIOS = {
  connect,
  exchange_types: exchangeTypes,
  publish_consume_ack: publishConsumeAck,
  nack_requeue: nackRequeue,
  basic_get: basicGet,
  prefetch,
  publisher_confirms: publisherConfirms,
  mandatory_return: mandatoryReturn,
  rpc,
  direct_reply_to: directReplyTo,
  dead_letter: deadLetter,
  ttl,
  priority,
  large_message: largeMessage,
  empty_message: emptyMessage,
  properties,
  cancel_notify: cancelNotify,
  heartbeat,
};

function describe(err) {
  let text = err && err.message ? err.message : String(err);
  if (!(err instanceof Failure)) text = `${(err && err.name) || 'Error'}: ${text} (during ${currentStep})`;
  text = text.split(/\s+/).join(' ').trim();
  return text.length <= 400 ? text : `${text.slice(0, 397)}...`;
}

async function main() {
  const url = process.argv[2] || DEFAULT_URL;
  const only = process.argv.slice(3);
  let failed = 0;
  for (const [name, fn] of Object.entries(SCENARIOS)) {
    if (only.length > 0 && !only.includes(name)) continue;
    currentStep = 'start';
    const ctx = new Context(url, name);
    try {
      await withTimeout(fn(ctx), SCENARIO_TIMEOUT_MS, 'scenario').catch((err) => {
        if (err instanceof Failure && err.message.startsWith('scenario:')) {
          throw new Failure(`timed out after ${SCENARIO_TIMEOUT_MS} ms during ${currentStep}`);
        }
        throw err;
      });
      console.log(`PASS ${CLIENT} ${name}`);
    } catch (err) {
      failed++;
      console.log(`FAIL ${CLIENT} ${name}: ${describe(err)}`);
    }
    await ctx.teardown();
  }
  return failed ? 1 : 0;
}

// A stray error from a torn-down connection must not replace the result lines.
process.on('uncaughtException', (err) => {
  process.stderr.write(`${CLIENT}: uncaught ${err && err.stack ? err.stack : err}\n`);
});

main().then(
  (code) => process.exit(code),
  (err) => {
    console.log(`FAIL ${CLIENT} runner: ${describe(err)}`);
    process.exit(1);
  },
);

#!/usr/bin/env node
// Warren interop scenarios (interop/SCENARIOS.md) written with amqplib's
// callback API, `require('amqplib/callback_api')`: node-style callbacks,
// nested or named, consumer callbacks and event listeners.
//
// Usage: node scenario.js [AMQP_URL] [scenario ...]
//
// Prints one line per scenario, `PASS amqplib-callback <scenario>` or
// `FAIL amqplib-callback <scenario>: <reason>`, and exits non-zero if any failed.
'use strict';

const crypto = require('node:crypto');
const path = require('node:path');
const { isDeepStrictEqual, inspect } = require('node:util');
const amqp = require('amqplib/callback_api');

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

function body(msg) {
  return msg && msg.content ? msg.content.toString() : msg;
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

// ------------------------------------------------------------ per-scenario context

// One scenario run: its step, its connections and exchanges, and `done`, the
// end of the scenario, called at most once (success, failure or watchdog).
class Context {
  constructor(url, scenario, done) {
    this.url = url;
    this.scenario = scenario;
    this.currentStep = 'start';
    this.connections = [];
    this.exchanges = new Set();
    this.finished = false;
    this.watchdog = setTimeout(() => {
      this.fail(new Failure(`timed out after ${SCENARIO_TIMEOUT_MS} ms during ${this.currentStep}`));
    }, SCENARIO_TIMEOUT_MS);
    this.done = done;
  }

  step(desc) {
    this.currentStep = desc;
  }

  name(what) {
    return `${CLIENT}.${this.scenario}.${what}.${crypto.randomBytes(4).toString('hex')}`;
  }

  fail(err) {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.watchdog);
    this.done(err);
  }

  pass() {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.watchdog);
    this.done(null);
  }

  // Wraps a node-style callback: an error or a failed check inside it ends
  // the scenario.
  guard(fn) {
    return (err, ...args) => {
      if (this.finished) return;
      if (err) return this.fail(err);
      try {
        fn(...args);
      } catch (e) {
        this.fail(e);
      }
    };
  }

  // The same for callbacks without an error argument (consumers, listeners).
  safe(fn) {
    return (...args) => {
      if (this.finished) return;
      try {
        fn(...args);
      } catch (e) {
        this.fail(e);
      }
    };
  }

  // Fails the scenario unless the returned `clear` is called within ms.
  deadline(ms, what) {
    const step = this.currentStep;
    const timer = setTimeout(() => this.fail(new Failure(`${step}: no ${what} within ${ms} ms`)), ms);
    return () => clearTimeout(timer);
  }

  connect(options, cb) {
    const target = options.heartbeat === undefined ? this.url : withQuery(this.url, { heartbeat: options.heartbeat });
    const socketOptions = { timeout: 5000, clientProperties: { connection_name: `${CLIENT} ${this.scenario}` } };
    amqp.connect(
      target,
      socketOptions,
      this.guard((conn) => {
        conn.closed = false;
        conn.on('error', this.safe((err) => this.fail(new Failure(`connection error: ${err.message}`))));
        conn.on('close', () => {
          conn.closed = true;
        });
        this.connections.push(conn);
        cb(conn);
      }),
    );
  }

  channel(conn, cb) {
    conn.createChannel(
      this.guard((ch) => {
        ch.on('error', this.safe((err) => this.fail(new Failure(`channel error: ${err.message}`))));
        cb(ch);
      }),
    );
  }

  confirmChannel(conn, cb) {
    conn.createConfirmChannel(
      this.guard((ch) => {
        ch.on('error', this.safe((err) => this.fail(new Failure(`channel error: ${err.message}`))));
        cb(ch);
      }),
    );
  }

  declareExchange(ch, name, type, cb) {
    this.exchanges.add(name);
    ch.assertExchange(name, type, { durable: false }, this.guard(() => cb()));
  }

  deleteExchange(ch, name, cb) {
    ch.deleteExchange(
      name,
      {},
      this.guard(() => {
        this.exchanges.delete(name);
        cb();
      }),
    );
  }

  // Closes the connection and passes the scenario.
  closeAndPass(conn) {
    this.step('connection.close');
    conn.close(this.guard(() => this.pass()));
  }

  // After the scenario: delete leftover exchanges, drop leftover connections.
  teardown(cb) {
    const dropConnections = () => {
      for (const conn of this.connections) {
        if (!conn.closed) conn.connection.stream.destroy();
      }
      cb();
    };
    if (this.exchanges.size === 0) return dropConnections();
    const timer = setTimeout(dropConnections, 3000);
    amqp.connect(this.url, { timeout: 2000 }, (err, conn) => {
      if (err) return;
      conn.on('error', () => {});
      conn.createChannel((err, ch) => {
        if (err) return;
        let left = this.exchanges.size;
        for (const ex of this.exchanges) {
          ch.deleteExchange(ex, {}, () => {
            if (--left === 0) {
              conn.close(() => {
                clearTimeout(timer);
                dropConnections();
              });
            }
          });
        }
      });
    });
  }
}

// Collects pushed items (deliveries, returns) and hands them out one at a time.
class Inbox {
  constructor(ctx, what) {
    this.ctx = ctx;
    this.what = what;
    this.items = [];
    this.waiter = null;
    this.push = this.push.bind(this);
  }

  push(item) {
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      w(item);
    } else this.items.push(item);
  }

  next(cb, ms = WAIT_MS) {
    if (this.items.length > 0) return this.ctx.safe(cb)(this.items.shift());
    const clear = this.ctx.deadline(ms, this.what);
    this.waiter = this.ctx.safe((item) => {
      clear();
      cb(item);
    });
  }

  nothingMore(cb) {
    setTimeout(
      this.ctx.safe(() => {
        check(this.items.length === 0, `${this.ctx.currentStep}: unexpected ${this.what}: ${show(this.items.map(body))}`);
        cb();
      }),
      QUIET_MS,
    );
  }
}

// ------------------------------------------------------------ scenarios

const REQUIRED_CAPABILITIES = ['publisher_confirms', 'basic.nack', 'consumer_cancel_notify', 'exchange_exchange_bindings'];

function connect(ctx) {
  ctx.step('connection.open');
  ctx.connect({}, (conn) => {
    const props = conn.connection.serverProperties;
    check(typeof props.product === 'string' && props.product.length > 0, `server properties name no product: ${show(props)}`);
    const caps = props.capabilities;
    check(caps && typeof caps === 'object', `server properties have no capabilities table: ${show(props)}`);
    for (const cap of REQUIRED_CAPABILITIES) {
      check(caps[cap] === true, `capability ${cap} is ${show(caps[cap])}, expected true`);
    }
    ctx.step('channel.open');
    ctx.channel(conn, (ch) => {
      ctx.step('channel.close');
      ch.close(ctx.guard(() => ctx.closeAndPass(conn)));
    });
  });
}

function exchangeTypes(ctx) {
  const ex = {
    direct: ctx.name('direct'),
    fanout: ctx.name('fanout'),
    topic: ctx.name('topic'),
    headers: ctx.name('headers'),
  };
  const bindings = [
    ['directRed', ex.direct, 'red'],
    ['directGreen', ex.direct, 'green'],
    ['fanout1', ex.fanout, 'ignored'],
    ['fanout2', ex.fanout, ''],
    ['topicStar', ex.topic, 'a.*'],
    ['topicHash', ex.topic, 'a.#'],
    ['topicEnd', ex.topic, '#.z'],
    ['headersAll', ex.headers, '', { 'x-match': 'all', color: 'red', size: 'big' }],
    ['headersAny', ex.headers, '', { 'x-match': 'any', color: 'red', size: 'big' }],
  ];
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
  const queues = {};

  ctx.step('connection.open');
  ctx.connect({}, (conn) => {
    ctx.confirmChannel(conn, (ch) => {
      declareExchanges(Object.entries(ex));

      function declareExchanges(todo) {
        if (todo.length === 0) return bindQueues(bindings);
        const [type, name] = todo[0];
        ctx.step(`exchange.declare ${type}`);
        ctx.declareExchange(ch, name, type, () => declareExchanges(todo.slice(1)));
      }

      function bindQueues(todo) {
        if (todo.length === 0) return publishAll();
        const [label, exchange, key, args] = todo[0];
        ctx.step(`queue.declare + queue.bind ${label}`);
        ch.assertQueue(
          '',
          { exclusive: true },
          ctx.guard((ok) => {
            queues[label] = ok.queue;
            ch.bindQueue(
              ok.queue,
              exchange,
              key,
              args,
              ctx.guard(() => bindQueues(todo.slice(1))),
            );
          }),
        );
      }

      function publishAll() {
        ctx.step('basic.publish to every exchange');
        for (const [text, exchange, key, headers] of publishes) {
          ch.publish(exchange, key, Buffer.from(text), { headers });
        }
        ctx.step('waitForConfirms');
        const clear = ctx.deadline(WAIT_MS, 'confirms');
        ch.waitForConfirms(
          ctx.guard(() => {
            clear();
            drain(Object.keys(expected), []);
          }),
        );
      }

      // basic.get each queue until get-empty, then compare with what it should hold.
      function drain(labels, got) {
        if (labels.length === 0) return deleteExchanges(Object.values(ex));
        const label = labels[0];
        ctx.step(`basic.get from ${label}`);
        ch.get(
          queues[label],
          { noAck: true },
          ctx.guard((msg) => {
            if (msg !== false) {
              check(got.length < 20, `queue ${label} never runs empty`);
              return drain(labels, got.concat(body(msg)));
            }
            got.sort();
            check(isDeepStrictEqual(got, expected[label]), `queue ${label} got ${show(got)}, expected ${show(expected[label])}`);
            drain(labels.slice(1), []);
          }),
        );
      }

      function deleteExchanges(names) {
        if (names.length === 0) return ctx.closeAndPass(conn);
        ctx.step(`exchange.delete ${names[0]}`);
        ctx.deleteExchange(ch, names[0], () => deleteExchanges(names.slice(1)));
      }
    });
  });
}

function publishConsumeAck(ctx) {
  const N = 100;
  ctx.step('connection.open');
  ctx.connect({}, (conn) => {
    ctx.channel(conn, (ch) => {
      ctx.step('queue.declare');
      ch.assertQueue(
        ctx.name('q'),
        { exclusive: true },
        ctx.guard((q) => {
          ctx.step('basic.publish x100');
          for (let i = 0; i < N; i++) ch.sendToQueue(q.queue, Buffer.from(`message ${i}`));

          let received = 0;
          let lastTag = 0;
          let consumerTag = null;
          const clear = ctx.deadline(WAIT_MS, `all ${N} deliveries`);
          ctx.step('basic.consume');
          ch.consume(
            q.queue,
            ctx.safe((msg) => {
              check(msg !== null, `consumer cancelled by the broker after ${received} deliveries`);
              const i = received++;
              check(i < N, `delivery ${i} beyond the ${N} published`);
              check(body(msg) === `message ${i}`, `delivery ${i} has body ${show(body(msg))}, expected "message ${i}"`);
              check(msg.fields.redelivered === false, `delivery ${i}: redelivered is set`);
              check(msg.fields.deliveryTag > lastTag, `delivery ${i}: delivery tag ${msg.fields.deliveryTag} after ${lastTag}`);
              lastTag = msg.fields.deliveryTag;
              ch.ack(msg);
              if (received === N) {
                clear();
                cancel();
              }
            }),
            { noAck: false },
            ctx.guard((ok) => {
              consumerTag = ok.consumerTag;
            }),
          );

          function cancel() {
            ctx.step('basic.cancel');
            ch.cancel(
              consumerTag,
              ctx.guard(() => {
                ctx.step('queue.declare passive after acking all');
                ch.checkQueue(
                  q.queue,
                  ctx.guard((info) => {
                    check(info.messageCount === 0, `queue holds ${info.messageCount} messages after all were acked, expected 0`);
                    ctx.closeAndPass(conn);
                  }),
                );
              }),
            );
          }
        }),
      );
    });
  });
}

function nackRequeue(ctx) {
  ctx.step('connection.open');
  ctx.connect({}, (conn) => {
    ctx.channel(conn, (ch) => {
      ctx.step('queue.declare');
      ch.assertQueue(
        ctx.name('q'),
        { exclusive: true },
        ctx.guard((q) => {
          ch.sendToQueue(q.queue, Buffer.from('nack me'));
          const inbox = new Inbox(ctx, 'delivery');
          ctx.step('basic.consume');
          ch.consume(q.queue, inbox.push, { noAck: false });
          ctx.step('first delivery');
          inbox.next((first) => {
            check(body(first) === 'nack me', `first delivery has body ${show(body(first))}`);
            check(first.fields.redelivered === false, 'first delivery: redelivered is already set');
            ch.nack(first, false, true);
            ctx.step('delivery after nack with requeue');
            inbox.next((second) => {
              check(body(second) === 'nack me', `requeued delivery has body ${show(body(second))}`);
              check(second.fields.redelivered === true, 'requeued delivery: redelivered is false, expected true');
              check(second.fields.deliveryTag !== first.fields.deliveryTag, `requeued delivery reuses delivery tag ${first.fields.deliveryTag}`);
              ch.nack(second, false, false);
              ctx.step('after nack without requeue');
              inbox.nothingMore(() => {
                ch.checkQueue(
                  q.queue,
                  ctx.guard((info) => {
                    check(info.messageCount === 0, `queue holds ${info.messageCount} messages after nack without requeue, expected 0`);
                    ctx.closeAndPass(conn);
                  }),
                );
              });
            });
          });
        }),
      );
    });
  });
}

function basicGet(ctx) {
  ctx.step('connection.open');
  ctx.connect({}, (conn) => {
    ctx.confirmChannel(conn, (ch) => {
      ctx.step('queue.declare');
      ch.assertQueue(
        ctx.name('q'),
        { exclusive: true },
        ctx.guard((q) => {
          const queue = q.queue;
          ctx.step('get-empty on a fresh queue');
          ch.get(
            queue,
            {},
            ctx.guard((none) => {
              check(none === false, 'basic.get on an empty queue returned a message');
              ctx.step('publish 3 + confirms');
              for (const text of ['one', 'two', 'three']) ch.sendToQueue(queue, Buffer.from(text));
              ch.waitForConfirms(ctx.guard(getWithAck));
            }),
          );

          function getWithAck() {
            ctx.step('basic.get with manual ack');
            ch.get(
              queue,
              { noAck: false },
              ctx.guard((m1) => {
                check(m1 !== false, 'got get-empty, expected message "one"');
                check(body(m1) === 'one', `got ${show(body(m1))}, expected "one"`);
                check(m1.fields.messageCount === 2, `message count ${m1.fields.messageCount}, expected 2`);
                check(m1.fields.redelivered === false, 'redelivered is set on a fresh message');
                check(m1.fields.exchange === '' && m1.fields.routingKey === queue, `exchange/routing key ${show(m1.fields)}`);
                ch.ack(m1);
                getNoAck();
              }),
            );
          }

          function getNoAck() {
            ctx.step('basic.get with no-ack');
            ch.get(
              queue,
              { noAck: true },
              ctx.guard((m2) => {
                check(m2 !== false, 'got get-empty, expected message "two"');
                check(body(m2) === 'two', `got ${show(body(m2))}, expected "two"`);
                check(m2.fields.messageCount === 1, `message count ${m2.fields.messageCount}, expected 1`);
                ctx.step('basic.get the last message, then get-empty');
                ch.get(
                  queue,
                  { noAck: true },
                  ctx.guard((m3) => {
                    check(m3 !== false && body(m3) === 'three', `got ${show(body(m3))}, expected "three"`);
                    check(m3.fields.messageCount === 0, `message count ${m3.fields.messageCount}, expected 0`);
                    ch.get(
                      queue,
                      { noAck: false },
                      ctx.guard((m4) => {
                        check(m4 === false, 'basic.get on the drained queue returned a message');
                        ctx.step('queue.declare passive');
                        ch.checkQueue(
                          queue,
                          ctx.guard((info) => {
                            check(info.messageCount === 0, `queue holds ${info.messageCount} messages, expected 0 (the acked get came back?)`);
                            ctx.closeAndPass(conn);
                          }),
                        );
                      }),
                    );
                  }),
                );
              }),
            );
          }
        }),
      );
    });
  });
}

function prefetch(ctx) {
  ctx.step('connection.open');
  ctx.connect({}, (conn) => {
    ctx.confirmChannel(conn, (ch) => {
      ctx.step('queue.declare');
      ch.assertQueue(
        ctx.name('q'),
        { exclusive: true },
        ctx.guard((q) => {
          ctx.step('publish 20 + confirms');
          for (let i = 0; i < 20; i++) ch.sendToQueue(q.queue, Buffer.from(`m${i}`));
          ch.waitForConfirms(
            ctx.guard(() => {
              ctx.step('basic.qos 5');
              ch.prefetch(
                5,
                false,
                ctx.guard(() => {
                  const held = [];
                  const clear = ctx.deadline(WAIT_MS, 'first 5 deliveries');
                  let afterAck = null;
                  ctx.step('basic.consume');
                  ch.consume(
                    q.queue,
                    ctx.safe((msg) => {
                      held.push(msg);
                      if (held.length === 5) {
                        clear();
                        ctx.step('nothing beyond the prefetch of 5');
                        setTimeout(ctx.safe(ackOne), QUIET_MS);
                      } else if (held.length === 6 && afterAck) {
                        afterAck(msg);
                      }
                    }),
                    { noAck: false },
                  );

                  function ackOne() {
                    check(held.length === 5, `${held.length} unacked deliveries with prefetch 5`);
                    const clearSixth = ctx.deadline(WAIT_MS, 'delivery after acking one');
                    afterAck = (sixth) => {
                      clearSixth();
                      check(body(sixth) === 'm5', `delivery after the ack has body ${show(body(sixth))}, expected "m5"`);
                      ctx.step('nothing beyond one more');
                      setTimeout(
                        ctx.safe(() => {
                          check(held.length === 6, `${held.length} deliveries after acking one, expected 6`);
                          ctx.closeAndPass(conn);
                        }),
                        QUIET_MS,
                      );
                    };
                    ctx.step('delivery after acking one');
                    ch.ack(held[0]);
                  }
                }),
              );
            }),
          );
        }),
      );
    });
  });
}

function publisherConfirms(ctx) {
  const N = 100;
  ctx.step('connection.open');
  ctx.connect({}, (conn) => {
    ctx.step('confirm.select');
    ctx.confirmChannel(conn, (ch) => {
      ctx.step('queue.declare');
      ch.assertQueue(
        ctx.name('q'),
        { exclusive: true },
        ctx.guard((q) => {
          let acked = 0;
          const nacked = [];
          const clear = ctx.deadline(WAIT_MS, `${N} confirms`);
          ctx.step('publish 100 with confirm callbacks');
          for (let i = 0; i < N; i++) {
            ch.sendToQueue(
              q.queue,
              Buffer.from(`confirm ${i}`),
              {},
              ctx.safe((err) => {
                if (err) nacked.push(i);
                else acked++;
              }),
            );
          }
          ctx.step('waitForConfirms');
          ch.waitForConfirms(
            ctx.guard(() => {
              clear();
              check(nacked.length === 0, `messages ${nacked.slice(0, 5).join(', ')} were nacked`);
              check(acked === N, `${acked} publish callbacks acked, expected ${N}`);
              ctx.step('queue.declare passive');
              ch.checkQueue(
                q.queue,
                ctx.guard((info) => {
                  check(info.messageCount === N, `queue holds ${info.messageCount} messages, expected ${N}`);
                  ctx.closeAndPass(conn);
                }),
              );
            }),
          );
        }),
      );
    });
  });
}

function mandatoryReturn(ctx) {
  ctx.step('connection.open');
  ctx.connect({}, (conn) => {
    ctx.confirmChannel(conn, (ch) => {
      const key = ctx.name('unrouted');
      const events = [];
      const clear = ctx.deadline(WAIT_MS, 'basic.return and confirm');
      ch.on(
        'return',
        ctx.safe((msg) => {
          events.push('return');
          check(msg.fields.replyCode === 312, `reply code ${msg.fields.replyCode}, expected 312`);
          check(msg.fields.replyText === 'NO_ROUTE', `reply text ${show(msg.fields.replyText)}, expected "NO_ROUTE"`);
          check(msg.fields.exchange === 'amq.direct', `returned exchange ${show(msg.fields.exchange)}`);
          check(msg.fields.routingKey === key, `returned routing key ${show(msg.fields.routingKey)}, expected ${show(key)}`);
          check(body(msg) === 'come back', `returned body ${show(body(msg))}`);
          check(msg.properties.messageId === 'ret-1', `returned message id ${show(msg.properties.messageId)}`);
        }),
      );
      ctx.step('basic.publish mandatory to an unbound key');
      ch.publish(
        'amq.direct',
        key,
        Buffer.from('come back'),
        { mandatory: true, messageId: 'ret-1' },
        ctx.guard(() => {
          clear();
          events.push('ack');
          check(isDeepStrictEqual(events, ['return', 'ack']), `events in order ${show(events)}, expected basic.return before basic.ack`);
          ctx.closeAndPass(conn);
        }),
      );
    });
  });
}

// RPC server on its own connection: upper-cases each request's body and
// answers to its reply_to with its correlation id.
function startRpcServer(ctx, requestQueue, seenReplyTo, cb) {
  ctx.connect({}, (conn) => {
    ctx.channel(conn, (ch) => {
      ch.assertQueue(
        requestQueue,
        { exclusive: true },
        ctx.guard(() => {
          ch.prefetch(1);
          ch.consume(
            requestQueue,
            ctx.safe((msg) => {
              seenReplyTo.push(msg.properties.replyTo);
              ch.sendToQueue(msg.properties.replyTo, Buffer.from(body(msg).toUpperCase()), {
                correlationId: msg.properties.correlationId,
              });
              ch.ack(msg);
            }),
            {},
            ctx.guard(() => cb(conn)),
          );
        }),
      );
    });
  });
}

// Consumes replies on `replyQueue` (no-ack), sends three requests with
// reply_to `replyTo` and calls back once each came back with its
// correlation id and the right answer.
function rpcCalls(ctx, ch, requestQueue, replyQueue, replyTo, cb) {
  const pending = new Map();
  let clear = null;
  ch.consume(
    replyQueue,
    ctx.safe((reply) => {
      const id = reply.properties.correlationId;
      check(pending.has(id), `reply with unknown correlation id ${show(id)}`);
      const want = pending.get(id).toUpperCase();
      check(body(reply) === want, `reply ${show(body(reply))}, expected ${show(want)}`);
      pending.delete(id);
      if (pending.size === 0) {
        clear();
        cb();
      }
    }),
    { noAck: true },
    ctx.guard(() => {
      ctx.step('waiting for 3 RPC replies');
      clear = ctx.deadline(WAIT_MS, 'RPC replies');
      for (const word of ['alpha', 'beta', 'gamma']) {
        const correlationId = crypto.randomUUID();
        pending.set(correlationId, word);
        ch.sendToQueue(requestQueue, Buffer.from(word), { replyTo, correlationId });
      }
    }),
  );
}

function rpc(ctx) {
  const requestQueue = ctx.name('requests');
  const seen = [];
  ctx.step('server: connect, declare, consume');
  startRpcServer(ctx, requestQueue, seen, (serverConn) => {
    ctx.step('client: connect, declare reply queue');
    ctx.connect({}, (conn) => {
      ctx.channel(conn, (ch) => {
        ch.assertQueue(
          '',
          { exclusive: true },
          ctx.guard((q) => {
            check(q.queue.length > 0, 'server-named queue has an empty name');
            rpcCalls(ctx, ch, requestQueue, q.queue, q.queue, () => {
              check(
                seen.every((r) => r === q.queue),
                `server saw reply_to ${show(seen)}, expected ${show(q.queue)}`,
              );
              serverConn.close(ctx.guard(() => ctx.closeAndPass(conn)));
            });
          }),
        );
      });
    });
  });
}

function directReplyTo(ctx) {
  const requestQueue = ctx.name('requests');
  const seen = [];
  ctx.step('server: connect, declare, consume');
  startRpcServer(ctx, requestQueue, seen, (serverConn) => {
    ctx.step('client: consume amq.rabbitmq.reply-to (no-ack)');
    ctx.connect({}, (conn) => {
      ctx.channel(conn, (ch) => {
        rpcCalls(ctx, ch, requestQueue, 'amq.rabbitmq.reply-to', 'amq.rabbitmq.reply-to', () => {
          check(
            seen.every((r) => typeof r === 'string' && r.startsWith('amq.rabbitmq.reply-to.')),
            `server saw reply_to ${show(seen)}, expected amq.rabbitmq.reply-to.<suffix>`,
          );
          serverConn.close(ctx.guard(() => ctx.closeAndPass(conn)));
        });
      });
    });
  });
}

function xDeath(msg) {
  const headers = msg.properties.headers || {};
  const deaths = headers['x-death'];
  check(Array.isArray(deaths) && deaths.length > 0, `dead-lettered message has x-death ${show(deaths)}`);
  return deaths[0];
}

function deadLetter(ctx) {
  const dlx = ctx.name('dlx');
  ctx.step('connection.open');
  ctx.connect({}, (conn) => {
    ctx.channel(conn, (ch) => {
      ctx.step('declare dead-letter exchange and queue');
      ctx.declareExchange(ch, dlx, 'direct', () => {
        ch.assertQueue(
          ctx.name('dlq'),
          { exclusive: true },
          ctx.guard((dlq) => {
            ch.bindQueue(dlq.queue, dlx, 'dead', {});
            ctx.step('declare the source queue');
            ch.assertQueue(
              ctx.name('source'),
              { exclusive: true, deadLetterExchange: dlx, deadLetterRoutingKey: 'dead' },
              ctx.guard((src) => rejectOne(dlq.queue, src.queue)),
            );
          }),
        );
      });

      function rejectOne(dlq, source) {
        ch.sendToQueue(source, Buffer.from('doomed'), { messageId: 'dl-1' });
        const inbox = new Inbox(ctx, 'delivery');
        ctx.step('consume the source queue');
        ch.consume(source, inbox.push, { noAck: false });
        inbox.next((msg) => {
          check(body(msg) === 'doomed', `source delivery ${show(body(msg))}`);
          ch.reject(msg, false);
          const dead = new Inbox(ctx, 'dead-lettered message');
          ctx.step('consume the dead-letter queue');
          ch.consume(dlq, dead.push, { noAck: true });
          dead.next((d) => {
            check(body(d) === 'doomed' && d.properties.messageId === 'dl-1', `dead-lettered message ${show(body(d))} ${show(d.properties)}`);
            check(d.fields.exchange === dlx && d.fields.routingKey === 'dead', `dead-lettered via ${show(d.fields.exchange)}/${show(d.fields.routingKey)}, expected ${dlx}/dead`);
            const death = xDeath(d);
            check(death.count === 1, `x-death count ${show(death.count)}, expected 1`);
            check(death.reason === 'rejected', `x-death reason ${show(death.reason)}, expected "rejected"`);
            check(death.queue === source, `x-death queue ${show(death.queue)}, expected ${show(source)}`);
            check(death.exchange === '', `x-death exchange ${show(death.exchange)}, expected ""`);
            check(isDeepStrictEqual(death['routing-keys'], [source]), `x-death routing-keys ${show(death['routing-keys'])}`);
            ctx.step('source queue is empty');
            ch.checkQueue(
              source,
              ctx.guard((info) => {
                check(info.messageCount === 0, `source queue holds ${info.messageCount} messages`);
                ctx.step('exchange.delete');
                ctx.deleteExchange(ch, dlx, () => ctx.closeAndPass(conn));
              }),
            );
          });
        });
      }
    });
  });
}

function ttl(ctx) {
  const TTL = 300;
  const dlx = ctx.name('dlx');
  ctx.step('connection.open');
  ctx.connect({}, (conn) => {
    ctx.confirmChannel(conn, (ch) => {
      ctx.step('declare dead-letter exchange and queue');
      ctx.declareExchange(ch, dlx, 'fanout', () => {
        ch.assertQueue(
          ctx.name('dlq'),
          { exclusive: true },
          ctx.guard((dlq) => {
            ch.bindQueue(dlq.queue, dlx, '', {});
            ctx.step('declare a queue with x-message-ttl and a plain one');
            ch.assertQueue(
              ctx.name('ttl'),
              { exclusive: true, messageTtl: TTL, deadLetterExchange: dlx },
              ctx.guard((ttlQ) => {
                ch.assertQueue(
                  ctx.name('plain'),
                  { exclusive: true, deadLetterExchange: dlx },
                  ctx.guard((plainQ) => publishBoth(dlq.queue, ttlQ.queue, plainQ.queue)),
                );
              }),
            );
          }),
        );
      });

      function publishBoth(dlq, ttlQueue, plainQueue) {
        const got = {};
        let start = 0;
        const clear = ctx.deadline(WAIT_MS, 'expired messages');
        ch.consume(
          dlq,
          ctx.safe((d) => {
            const elapsed = Date.now() - start;
            check(elapsed >= TTL - 50, `${show(body(d))} dead-lettered after ${elapsed} ms, before its ${TTL} ms TTL`);
            got[body(d)] = d;
            if (Object.keys(got).length === 2) {
              clear();
              checkDeaths(got, ttlQueue, plainQueue);
            }
          }),
          { noAck: true },
          ctx.guard(() => {
            ctx.step('publish to both');
            start = Date.now();
            ch.sendToQueue(ttlQueue, Buffer.from('queue ttl'));
            ch.sendToQueue(plainQueue, Buffer.from('message ttl'), { expiration: String(TTL) });
            ch.waitForConfirms(ctx.guard(() => ctx.step('waiting for 2 expired messages')));
          }),
        );
      }

      function checkDeaths(got, ttlQueue, plainQueue) {
        check(got['queue ttl'] && got['message ttl'], `expired messages ${show(Object.keys(got))}`);
        const q = xDeath(got['queue ttl']);
        check(q.reason === 'expired' && q.queue === ttlQueue && q.count === 1, `x-death of the queue-TTL message ${show(q)}, expected reason expired, queue ${ttlQueue}, count 1`);
        const m = xDeath(got['message ttl']);
        check(m.reason === 'expired' && m.queue === plainQueue && m.count === 1, `x-death of the per-message-TTL message ${show(m)}, expected reason expired, queue ${plainQueue}, count 1`);
        check(m['original-expiration'] === String(TTL), `x-death original-expiration ${show(m['original-expiration'])}, expected "${TTL}"`);
        check(got['message ttl'].properties.expiration === undefined, `dead-lettered message kept expiration ${show(got['message ttl'].properties.expiration)}`);
        ctx.step('both queues are empty');
        ch.checkQueue(
          ttlQueue,
          ctx.guard((a) => {
            check(a.messageCount === 0, `${ttlQueue} holds ${a.messageCount} messages after the TTL`);
            ch.checkQueue(
              plainQueue,
              ctx.guard((b) => {
                check(b.messageCount === 0, `${plainQueue} holds ${b.messageCount} messages after the TTL`);
                ctx.step('exchange.delete');
                ctx.deleteExchange(ch, dlx, () => ctx.closeAndPass(conn));
              }),
            );
          }),
        );
      }
    });
  });
}

function priority(ctx) {
  ctx.step('connection.open');
  ctx.connect({}, (conn) => {
    ctx.confirmChannel(conn, (ch) => {
      ctx.step('queue.declare x-max-priority 10');
      ch.assertQueue(
        ctx.name('q'),
        { exclusive: true, maxPriority: 10 },
        ctx.guard((q) => {
          ctx.step('publish priorities 1, 5, 9');
          for (const p of [1, 5, 9]) ch.sendToQueue(q.queue, Buffer.from(`priority ${p}`), { priority: p });
          ch.waitForConfirms(
            ctx.guard(() => {
              const order = [];
              const clear = ctx.deadline(WAIT_MS, '3 deliveries');
              ctx.step('basic.consume');
              ch.consume(
                q.queue,
                ctx.safe((msg) => {
                  order.push(msg.properties.priority);
                  if (order.length < 3) return;
                  clear();
                  check(isDeepStrictEqual(order, [9, 5, 1]), `priorities arrived as ${show(order)}, expected [9, 5, 1]`);
                  ctx.closeAndPass(conn);
                }),
                { noAck: true },
              );
            }),
          );
        }),
      );
    });
  });
}

function largeMessage(ctx) {
  const payload = crypto.randomBytes(5 * 1024 * 1024);
  ctx.step('connection.open');
  ctx.connect({}, (conn) => {
    ctx.confirmChannel(conn, (ch) => {
      ctx.step('queue.declare');
      ch.assertQueue(
        ctx.name('q'),
        { exclusive: true },
        ctx.guard((q) => {
          ctx.step('publish 5 MiB + confirm');
          const clear = ctx.deadline(10000, 'confirm of the 5 MiB message');
          ch.sendToQueue(
            q.queue,
            payload,
            { contentType: 'application/octet-stream' },
            ctx.guard(() => {
              clear();
              ctx.step('basic.get the 5 MiB message');
              ch.get(
                q.queue,
                { noAck: true },
                ctx.guard((msg) => {
                  check(msg !== false, 'basic.get returned get-empty');
                  check(msg.content.length === payload.length, `body is ${msg.content.length} bytes, expected ${payload.length}`);
                  check(msg.content.equals(payload), 'body differs from the one sent');
                  ctx.closeAndPass(conn);
                }),
              );
            }),
          );
        }),
      );
    });
  });
}

function emptyMessage(ctx) {
  ctx.step('connection.open');
  ctx.connect({}, (conn) => {
    ctx.confirmChannel(conn, (ch) => {
      ctx.step('queue.declare');
      ch.assertQueue(
        ctx.name('q'),
        { exclusive: true },
        ctx.guard((q) => {
          ctx.step('publish an empty body + confirm');
          ch.sendToQueue(
            q.queue,
            Buffer.alloc(0),
            { contentType: 'text/plain', messageId: 'empty-1', headers: { kind: 'empty' } },
            ctx.guard(() => {
              ctx.step('basic.get');
              ch.get(
                q.queue,
                { noAck: true },
                ctx.guard((msg) => {
                  check(msg !== false, 'basic.get returned get-empty');
                  check(msg.content.length === 0, `body is ${msg.content.length} bytes, expected 0`);
                  const p = msg.properties;
                  check(p.contentType === 'text/plain' && p.messageId === 'empty-1', `properties ${show(p)}`);
                  check(isDeepStrictEqual(p.headers, { kind: 'empty' }), `headers ${show(p.headers)}`);
                  ctx.closeAndPass(conn);
                }),
              );
            }),
          );
        }),
      );
    });
  });
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

function properties(ctx) {
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
    userId: loginUser(ctx.url),
    appId: 'warren-interop',
  };
  ctx.step('connection.open');
  ctx.connect({}, (conn) => {
    ctx.confirmChannel(conn, (ch) => {
      ctx.step('queue.declare');
      ch.assertQueue(
        ctx.name('q'),
        { exclusive: true },
        ctx.guard((q) => {
          ctx.step('publish with every property + confirm');
          ch.sendToQueue(
            q.queue,
            Buffer.from('{"all":"properties"}'),
            sent,
            ctx.guard(() => {
              const inbox = new Inbox(ctx, 'delivery');
              ctx.step('basic.consume');
              ch.consume(q.queue, inbox.push, { noAck: true });
              inbox.next((msg) => {
                const got = msg.properties;
                for (const [field, want] of Object.entries(sent)) {
                  if (field === 'headers') continue;
                  check(got[field] === want, `property ${field} came back as ${show(got[field])}, sent ${show(want)}`);
                }
                check(got.clusterId === undefined, `unset cluster id came back as ${show(got.clusterId)}`);
                const headers = got.headers || {};
                for (const key of new Set([...Object.keys(headers), ...Object.keys(HEADERS)])) {
                  check(Object.hasOwn(headers, key), `header ${key} missing`);
                  check(Object.hasOwn(HEADERS, key), `unexpected header ${key} = ${show(headers[key])}`);
                  const want = decoded(HEADERS[key]);
                  check(isDeepStrictEqual(headers[key], want), `header ${key} came back as ${show(headers[key])}, sent ${show(want)}`);
                }
                ctx.closeAndPass(conn);
              });
            }),
          );
        }),
      );
    });
  });
}

function cancelNotify(ctx) {
  ctx.step('connection.open');
  ctx.connect({}, (conn) => {
    ctx.channel(conn, (ch) => {
      ctx.step('queue.declare');
      ch.assertQueue(
        ctx.name('q'),
        { exclusive: true },
        ctx.guard((q) => {
          let consumerTag = null;
          const cancels = [];
          ch.on('cancel', (fields) => cancels.push(fields));
          const clear = ctx.deadline(WAIT_MS, 'basic.cancel from the broker');
          ctx.step('basic.consume');
          ch.consume(
            q.queue,
            ctx.safe((msg) => {
              check(msg === null, `consumer got a message ${show(body(msg))} instead of the cancel (null)`);
              clear();
              // The channel's 'cancel' listeners run after the consumer callback.
              setImmediate(ctx.safe(afterCancel));
            }),
            { noAck: false },
            ctx.guard((ok) => {
              consumerTag = ok.consumerTag;
              ctx.step('queue.delete from another channel');
              ctx.channel(conn, (other) => {
                other.deleteQueue(
                  q.queue,
                  {},
                  ctx.guard(() => ctx.step('waiting for basic.cancel')),
                );
              });
            }),
          );

          function afterCancel() {
            check(cancels.length === 1 && cancels[0].consumerTag === consumerTag, `basic.cancel fields ${show(cancels)}, expected consumer tag ${consumerTag}`);
            ctx.step('consumer channel still usable');
            ch.assertQueue('', { exclusive: true }, ctx.guard(() => ctx.closeAndPass(conn)));
          }
        }),
      );
    });
  });
}

function heartbeat(ctx) {
  ctx.step('connection.open with heartbeat=1');
  ctx.connect({ heartbeat: 1 }, (conn) => {
    check(conn.connection.heartbeat === 1, `negotiated heartbeat ${conn.connection.heartbeat}, expected 1`);
    ctx.channel(conn, (ch) => {
      ctx.step('queue.declare');
      ch.assertQueue(
        ctx.name('q'),
        { exclusive: true },
        ctx.guard((q) => {
          ctx.step('idle for 2.5 heartbeat intervals');
          setTimeout(
            ctx.safe(() => {
              check(!conn.closed, 'connection closed while idle');
              ctx.step('publish + basic.get after the idle period');
              ch.sendToQueue(q.queue, Buffer.from('still here'));
              ch.get(
                q.queue,
                { noAck: true },
                ctx.guard((msg) => {
                  check(msg !== false && body(msg) === 'still here', `basic.get after idling returned ${show(body(msg))}`);
                  ctx.closeAndPass(conn);
                }),
              );
            }),
            2500,
          );
        }),
      );
    });
  });
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

function describe(err, step) {
  let text = err && err.message ? err.message : String(err);
  if (!(err instanceof Failure)) text = `${(err && err.name) || 'Error'}: ${text} (during ${step})`;
  text = text.split(/\s+/).join(' ').trim();
  return text.length <= 400 ? text : `${text.slice(0, 397)}...`;
}

function runAll(url, names, failed, cb) {
  if (names.length === 0) return cb(failed);
  const name = names[0];
  const ctx = new Context(url, name, (err) => {
    if (err) console.log(`FAIL ${CLIENT} ${name}: ${describe(err, ctx.currentStep)}`);
    else console.log(`PASS ${CLIENT} ${name}`);
    // Let the callback that finished the scenario unwind before tearing down.
    setImmediate(() => ctx.teardown(() => runAll(url, names.slice(1), failed + (err ? 1 : 0), cb)));
  });
  try {
    SCENARIOS[name](ctx);
  } catch (err) {
    ctx.fail(err);
  }
}

// A stray error from a torn-down connection must not replace the result lines.
process.on('uncaughtException', (err) => {
  process.stderr.write(`${CLIENT}: uncaught ${err && err.stack ? err.stack : err}\n`);
});

const url = process.argv[2] || DEFAULT_URL;
const only = process.argv.slice(3);
const names = Object.keys(SCENARIOS).filter((n) => only.length === 0 || only.includes(n));
runAll(url, names, 0, (failed) => process.exit(failed ? 1 : 0));

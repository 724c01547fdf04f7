//! Random sequences of well-formed methods, in any order, with arguments good and bad,
//! over real sockets: the connection and channel state machines must answer each with
//! a reply or a close, never panic, never hang, and leave the broker serving.
//!
//! The frame decoder has its own fuzz target (`fuzz/`); this reaches what lies behind
//! it: declares with odd arguments, acks of tags never given, consumers cancelled twice,
//! transactions and confirms mixed, content interrupted. Deterministic for a seed:
//! `WARREN_STORM_SEED` and `WARREN_STORM_ROUNDS` repeat or lengthen a run.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is the failure report"
)]

use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use warren_codec::dialect::Dialect;
use warren_codec::method::{Method, MethodId};
use warren_codec::spec::{AMQPClass, basic, channel, confirm, connection, exchange, queue, tx};
use warren_codec::types::{AMQPValue, FieldTable};
use warren_e2e::raw::{frame, method_frame};
use warren_e2e::{RawClient, TestBroker, channel as lapin_channel, consume, declare, next};

/// Every panic in this process, whichever thread or task it was on.
static PANICS: AtomicUsize = AtomicUsize::new(0);
static FIRST_PANIC: Mutex<Option<String>> = Mutex::new(None);

fn count_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut first) = FIRST_PANIC.lock() {
            first.get_or_insert_with(|| info.to_string());
        }
        default(info);
    }));
}

/// xorshift64*: small, seedable, and the same on every platform; and whether to use
/// what Warren offers beyond RabbitMQ (docs/compatibility.md), which a comparison with
/// RabbitMQ must leave out.
struct Rng {
    state: u64,
    extensions: bool,
}

impl Rng {
    fn next(&mut self) -> u64 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// One time in about seventy: for the mistakes that close the whole connection,
    /// so that most runs get past them.
    fn rare(&mut self) -> bool {
        self.below(1000) < 15
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

const QUEUES: &[&str] = &[
    "",
    "storm.q0",
    "storm.q1",
    "storm.q2",
    "storm.dlq",
    "amq.storm",
    "amq.rabbitmq.reply-to",
];
const EXCHANGES: &[&str] = &[
    "",
    "amq.direct",
    "amq.topic",
    "amq.fanout",
    "amq.headers",
    "amq.match",
    "storm.x0",
    "storm.x1",
    "storm.dlx",
    "amq.storm",
];
const KINDS: &[&str] = &["direct", "topic", "fanout", "headers"];
const KEYS: &[&str] = &[
    "", "storm.q0", "storm.q1", "a", "a.b", "a.b.c", "#", "*.b", "a.#", "*",
];
const TAGS: &[&str] = &["", "c0", "c1", "amq.ctag-x"];

fn short_strings(rng: &mut Rng) -> AMQPValue {
    match rng.below(6) {
        0 => AMQPValue::LongString("".into()),
        1 => AMQPValue::LongString("storm.dlx".into()),
        2 => AMQPValue::LongString("reject-publish".into()),
        3 => AMQPValue::LongString("drop-head".into()),
        4 => AMQPValue::LongString("reject-publish-dlx".into()),
        _ => AMQPValue::LongString("nonsense".into()),
    }
}

/// `value` as some integer type it fits in (a 600,000 ms expiry cut to 16 bits
/// would expire during the run), or now and then as a value of the wrong type.
fn typed(rng: &mut Rng, value: i64) -> AMQPValue {
    match rng.below(8) {
        0 if let Ok(v) = i8::try_from(value) => AMQPValue::ShortShortInt(v),
        1 if let Ok(v) = i16::try_from(value) => AMQPValue::ShortInt(v),
        5 if let Ok(v) = u32::try_from(value) => AMQPValue::LongUInt(v),
        6 => AMQPValue::Boolean(value % 2 == 0),
        7 => AMQPValue::LongString(value.to_string().into()),
        4 => AMQPValue::LongLongInt(value),
        _ => AMQPValue::LongInt(i32::try_from(value).unwrap_or(i32::MAX)),
    }
}

/// A small count (lengths, priorities, limits).
fn count(rng: &mut Rng) -> AMQPValue {
    let n = rng.pick(&[-1, 0, 1, 2, 3, 10, 300]);
    typed(rng, n)
}

/// A time in milliseconds. None is short enough to expire during a run, so that a
/// run's answers do not depend on how fast the broker is.
fn duration(rng: &mut Rng) -> AMQPValue {
    let n = rng.pick(&[-1, 0, 600_000]);
    typed(rng, n)
}

fn queue_arguments(rng: &mut Rng) -> FieldTable {
    let mut args = FieldTable::default();
    for _ in 0..rng.below(4) {
        let (key, value) = match rng.below(13) {
            0 => ("x-message-ttl", duration(rng)),
            1 => ("x-expires", duration(rng)),
            2 => ("x-max-length", count(rng)),
            3 => ("x-max-length-bytes", count(rng)),
            4 => ("x-overflow", short_strings(rng)),
            5 => ("x-dead-letter-exchange", short_strings(rng)),
            6 => (
                "x-dead-letter-routing-key",
                AMQPValue::LongString(rng.pick(KEYS).into()),
            ),
            7 => ("x-max-priority", count(rng)),
            8 => (
                "x-queue-type",
                // Not quorum or stream: RabbitMQ has them and Warren refuses them (540).
                // Not an unknown type beside RabbitMQ: with a server-named queue it
                // fails there with 541 INTERNAL_ERROR.
                AMQPValue::LongString(if rng.extensions && rng.chance(30) {
                    "x".into()
                } else {
                    "classic".into()
                }),
            ),
            9 => ("x-single-active-consumer", count(rng)),
            10 => ("x-queue-mode", AMQPValue::LongString("lazy".into())),
            11 if rng.extensions => ("x-delivery-limit", count(rng)),
            _ => ("x-storm", count(rng)),
        };
        args.insert(key.into(), value);
    }
    args
}

fn binding_arguments(rng: &mut Rng) -> FieldTable {
    let mut args = FieldTable::default();
    if rng.chance(40) {
        args.insert(
            "x-match".into(),
            AMQPValue::LongString(rng.pick(&["all", "any", "all-with-x", "nope"]).into()),
        );
    }
    if rng.chance(50) {
        args.insert("h".into(), count(rng));
    }
    args
}

/// A content header with a random choice of properties, some of them invalid
/// (expiration "abc", a user-id that is not the login, priority 255).
fn content_header(rng: &mut Rng, channel: u16, body_size: u64) -> Vec<u8> {
    fn short(out: &mut BytesMut, s: &str) {
        out.put_u8(s.len() as u8);
        out.put_slice(s.as_bytes());
    }
    let mut flags = 0u16;
    let mut fields = BytesMut::new();
    if rng.chance(30) {
        flags |= 1 << 15;
        short(&mut fields, "text/plain");
    }
    if rng.chance(40) {
        flags |= 1 << 13;
        let mut table = BytesMut::new();
        short(&mut table, "h");
        table.put_u8(b'I');
        table.put_i32(rng.below(3) as i32);
        if rng.chance(30) {
            short(&mut table, "x-death");
            table.put_u8(b'S');
            table.put_u32(3);
            table.put_slice(b"odd");
        }
        // Sender-selected distribution: routing keys in CC or BCC, or a CC of the
        // wrong type.
        if rng.chance(20) {
            short(&mut table, rng.pick(&["BCC", "CC"]));
            if rng.chance(15) {
                table.put_u8(b'S');
                table.put_u32(1);
                table.put_slice(b"a");
            } else {
                let mut keys = BytesMut::new();
                for _ in 0..1 + rng.below(2) {
                    let key = rng.pick(KEYS);
                    keys.put_u8(b'S');
                    keys.put_u32(key.len() as u32);
                    keys.put_slice(key.as_bytes());
                }
                table.put_u8(b'A');
                table.put_u32(keys.len() as u32);
                table.put_slice(&keys);
            }
        }
        fields.put_u32(table.len() as u32);
        fields.put_slice(&table);
    }
    if rng.chance(50) {
        flags |= 1 << 12;
        fields.put_u8(rng.pick(&[1u8, 2, 0, 7]));
    }
    if rng.chance(30) {
        flags |= 1 << 11;
        fields.put_u8(rng.pick(&[0u8, 3, 9, 255]));
    }
    if rng.chance(20) {
        flags |= 1 << 9;
        short(
            &mut fields,
            rng.pick(&["amq.rabbitmq.reply-to", "storm.q1", ""]),
        );
    }
    if rng.chance(30) {
        flags |= 1 << 8;
        // "0" only with extensions: Warren expires such a message wherever it is in
        // the queue, RabbitMQ only at the head (docs/compatibility.md).
        let expiration = match rng.pick(&["0", "600000", "-1", "abc", "99999999999999999999", ""]) {
            "0" if !rng.extensions => "600000",
            other => other,
        };
        short(&mut fields, expiration);
    }
    if rng.chance(10) {
        flags |= 1 << 4;
        short(&mut fields, rng.pick(&["guest", "mallory"]));
    }
    let mut payload = BytesMut::new();
    payload.put_u16(60);
    payload.put_u16(0);
    payload.put_u64(body_size);
    payload.put_u16(flags);
    payload.put_slice(&fields);
    frame(2, channel, &payload)
}

/// What a step sends.
enum Step {
    /// These frames, then the ping.
    Frames(Vec<u8>),
    /// These frames, then (once this reply or a close is in) the ping. RabbitMQ's
    /// queue sends `consume-ok` and `cancel-ok` to the channel process as messages of
    /// their own, so a method pipelined behind them may be answered first.
    Awaiting(Vec<u8>, MethodId),
    /// `channel.close`, then (after its close-ok, as the spec asks) `channel.open`.
    Reopen,
}

/// One step on channel `ch`: usually a single method (with its content when it is a
/// publish).
fn step(rng: &mut Rng, ch: u16) -> Step {
    let nowait = rng.chance(15);
    let method = match rng.below(30) {
        // Mostly a close and a reopen (the channel's state starts over); now and then
        // an open of a channel already open, which is a connection error.
        0 if rng.rare() => AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
        0 => return Step::Reopen,
        // Only ever active=false (refused with 540): flow-ok answers the ping alone.
        1 if rng.rare() => {
            AMQPClass::Channel(channel::AMQPMethod::Flow(channel::Flow { active: false }))
        }
        2 => AMQPClass::Exchange(exchange::AMQPMethod::Declare(exchange::Declare {
            exchange: rng.pick(EXCHANGES).into(),
            kind: if rng.rare() {
                rng.pick(&["x-storm", ""]).into()
            } else {
                rng.pick(KINDS).into()
            },
            passive: rng.chance(15),
            durable: rng.chance(30),
            auto_delete: rng.chance(20),
            internal: rng.chance(10),
            nowait,
            arguments: {
                let mut args = FieldTable::default();
                if rng.chance(30) {
                    args.insert(
                        "alternate-exchange".into(),
                        AMQPValue::LongString(rng.pick(EXCHANGES).into()),
                    );
                }
                args
            },
        })),
        3 => AMQPClass::Exchange(exchange::AMQPMethod::Delete(exchange::Delete {
            exchange: rng.pick(EXCHANGES).into(),
            if_unused: rng.chance(50),
            nowait,
        })),
        4 => AMQPClass::Exchange(exchange::AMQPMethod::Bind(exchange::Bind {
            destination: rng.pick(EXCHANGES).into(),
            source: rng.pick(EXCHANGES).into(),
            routing_key: rng.pick(KEYS).into(),
            nowait,
            arguments: binding_arguments(rng),
        })),
        5 => AMQPClass::Exchange(exchange::AMQPMethod::Unbind(exchange::Unbind {
            destination: rng.pick(EXCHANGES).into(),
            source: rng.pick(EXCHANGES).into(),
            routing_key: rng.pick(KEYS).into(),
            nowait,
            arguments: binding_arguments(rng),
        })),
        6 | 7 => AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
            queue: rng.pick(QUEUES).into(),
            passive: rng.chance(15),
            durable: rng.chance(30),
            exclusive: rng.chance(25),
            auto_delete: rng.chance(25),
            nowait,
            arguments: queue_arguments(rng),
        })),
        8 | 9 => AMQPClass::Queue(queue::AMQPMethod::Bind(queue::Bind {
            queue: rng.pick(QUEUES).into(),
            exchange: rng.pick(EXCHANGES).into(),
            routing_key: rng.pick(KEYS).into(),
            nowait,
            arguments: binding_arguments(rng),
        })),
        10 => AMQPClass::Queue(queue::AMQPMethod::Unbind(queue::Unbind {
            queue: rng.pick(QUEUES).into(),
            exchange: rng.pick(EXCHANGES).into(),
            routing_key: rng.pick(KEYS).into(),
            arguments: binding_arguments(rng),
        })),
        11 => AMQPClass::Queue(queue::AMQPMethod::Purge(queue::Purge {
            queue: rng.pick(QUEUES).into(),
            nowait,
        })),
        12 => AMQPClass::Queue(queue::AMQPMethod::Delete(queue::Delete {
            queue: rng.pick(QUEUES).into(),
            if_unused: rng.chance(30),
            if_empty: rng.chance(30),
            nowait,
        })),
        13 => AMQPClass::Basic(basic::AMQPMethod::Qos(basic::Qos {
            prefetch_count: rng.pick(&[0u16, 1, 2, 10, 65_535]),
            global: rng.chance(30),
        })),
        14 | 15 => AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
            queue: rng.pick(QUEUES).into(),
            consumer_tag: rng.pick(TAGS).into(),
            no_local: rng.chance(10),
            no_ack: rng.chance(40),
            exclusive: rng.chance(15),
            nowait,
            arguments: {
                let mut args = FieldTable::default();
                if rng.chance(20) {
                    args.insert("x-priority".into(), count(rng));
                }
                args
            },
        })),
        16 => AMQPClass::Basic(basic::AMQPMethod::Cancel(basic::Cancel {
            consumer_tag: rng.pick(TAGS).into(),
            nowait,
        })),
        17..=20 => {
            let publish = AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
                exchange: rng.pick(EXCHANGES).into(),
                routing_key: rng.pick(KEYS).into(),
                mandatory: rng.chance(40),
                immediate: rng.rare() && rng.chance(20),
            }));
            let body_len = rng.pick(&[0u64, 1, 16, 300, 5_000]);
            let mut out = method_frame(ch, &publish);
            // Now and then the declared size and the body disagree, or the content
            // stops short and the next method arrives in its place.
            let declared = if rng.rare() && rng.chance(20) {
                body_len + 1
            } else {
                body_len
            };
            out.extend(content_header(rng, ch, declared));
            if !(rng.rare() && rng.chance(20)) {
                let body = vec![b's'; body_len as usize];
                for chunk in body.chunks(4_096) {
                    out.extend(frame(3, ch, chunk));
                }
            }
            return Step::Frames(out);
        }
        21 => AMQPClass::Basic(basic::AMQPMethod::Get(basic::Get {
            queue: rng.pick(QUEUES).into(),
            no_ack: rng.chance(40),
        })),
        22 | 23 => AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
            delivery_tag: rng.below(12),
            multiple: rng.chance(30),
        })),
        24 => AMQPClass::Basic(basic::AMQPMethod::Nack(basic::Nack {
            delivery_tag: rng.below(12),
            multiple: rng.chance(30),
            requeue: rng.chance(50),
        })),
        25 => AMQPClass::Basic(basic::AMQPMethod::Reject(basic::Reject {
            delivery_tag: rng.below(12),
            requeue: rng.chance(50),
        })),
        26 => {
            if rng.chance(50) {
                AMQPClass::Basic(basic::AMQPMethod::Recover(basic::Recover {
                    requeue: !rng.rare(),
                }))
            } else {
                AMQPClass::Basic(basic::AMQPMethod::RecoverAsync(basic::RecoverAsync {
                    requeue: !rng.rare(),
                }))
            }
        }
        27 => match rng.below(3) {
            0 => AMQPClass::Tx(tx::AMQPMethod::Select(tx::Select {})),
            1 => AMQPClass::Tx(tx::AMQPMethod::Commit(tx::Commit {})),
            _ => AMQPClass::Tx(tx::AMQPMethod::Rollback(tx::Rollback {})),
        },
        28 => AMQPClass::Confirm(confirm::AMQPMethod::Select(confirm::Select { nowait })),
        _ => {
            if !rng.rare() {
                AMQPClass::Basic(basic::AMQPMethod::Qos(basic::Qos {
                    prefetch_count: rng.pick(&[1u16, 3]),
                    global: false,
                }))
            } else {
                // A stray content frame, or a heartbeat on a channel.
                return Step::Frames(if rng.chance(50) {
                    content_header(rng, ch, 3)
                } else {
                    frame(8, ch, &[])
                });
            }
        }
    };
    let frames = method_frame(ch, &method);
    let awaited = match &method {
        AMQPClass::Basic(basic::AMQPMethod::Consume(c)) if !c.nowait => MethodId::new(60, 21),
        AMQPClass::Basic(basic::AMQPMethod::Cancel(c)) if !c.nowait => MethodId::new(60, 31),
        // RabbitMQ refuses any method that arrives while a commit is under way (504).
        AMQPClass::Tx(tx::AMQPMethod::Commit(_)) => MethodId::new(90, 21),
        _ => return Step::Frames(frames),
    };
    Step::Awaiting(frames, awaited)
}

/// Server methods whose timing is the broker's own business (deliveries, confirms,
/// cancels when a queue goes, flow control): left out of a run's answers.
fn asynchronous(id: MethodId) -> bool {
    matches!(
        (id.class_id, id.method_id),
        (60, 30 | 60 | 80 | 120) | (10, 60 | 61)
    )
}

/// Generated names differ from broker to broker and run to run.
fn normalized(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("amq.gen-").or_else(|| rest.find("amq.ctag-")) {
        out.push_str(&rest[..at]);
        let name_end = rest[at..]
            .find(['\'', ' ', ','])
            .map_or(rest.len(), |e| at + e);
        let prefix = if rest[at..].starts_with("amq.gen-") {
            "amq.gen-*"
        } else {
            "amq.ctag-*"
        };
        out.push_str(prefix);
        rest = &rest[name_end..];
    }
    out.push_str(rest);
    out
}

/// The properties of the content that follows a `basic.get-ok` (the frames of one
/// channel's content are never interleaved with another's), with the values a broker
/// makes up itself left out; `None` if the socket closed.
async fn content_properties(c: &mut RawClient) -> Option<String> {
    let header = loop {
        let f = c.read_frame().await?;
        if f.frame_type == warren_codec::frame::FrameType::Header {
            break f;
        }
    };
    let properties = header
        .payload
        .get(12..)
        .and_then(|p| warren_codec::properties::decode_properties(p).ok())
        .map_or_else(|| "undecodable properties".to_owned(), |p| format!("{p:?}"));
    Some(without_made_up_values(&properties))
}

/// What a broker makes up itself left out: `Timestamp(1764000000)` (`x-death`'s clock
/// reading) becomes `Timestamp(*)`, and a direct reply-to address (opaque, and made
/// differently by each broker) `amq.rabbitmq.reply-to.*`.
fn without_made_up_values(text: &str) -> String {
    let text = masked(text, "Timestamp(", |ch| ch.is_ascii_digit());
    masked(&text, "amq.rabbitmq.reply-to.", |ch| ch != '"')
}

/// `text` with each run of characters `part` accepts right after `tag` replaced by `*`.
fn masked(text: &str, tag: &str, part: impl Fn(char) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(tag) {
        out.push_str(&rest[..at + tag.len()]);
        rest = &rest[at + tag.len()..];
        let end = rest.find(|ch: char| !part(ch)).unwrap_or(rest.len());
        out.push('*');
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

fn close_ok(channel: u16) -> Vec<u8> {
    method_frame(
        channel,
        &AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
    )
}

/// What one connection's run heard, step by step: every synchronous reply and every
/// close, with its code, failing method and text.
#[derive(Debug, Default)]
struct Trace {
    events: Vec<String>,
    closed_by_broker: bool,
    /// The asynchronous methods too (deliveries, confirms), whose timing may differ:
    /// shown when the queues' contents part ways, never compared.
    log: Vec<String>,
}

impl PartialEq for Trace {
    fn eq(&self, other: &Self) -> bool {
        (&self.events, self.closed_by_broker) == (&other.events, other.closed_by_broker)
    }
}

/// What ends a step: the ping's answer, or the answers to a client's close and reopen.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Until {
    FlowOk,
    Reply(MethodId),
    CloseOk,
    OpenOk,
}

/// Whether the connection is still open after the step.
enum Went {
    On,
    Closed,
}

/// Read to the end of step `i` on channel `ch`, recording what the broker answered.
/// A channel the broker closes is reopened at once (the close swallowed the ping if
/// it was `ch`); a connection it closes ends the run.
async fn answers(c: &mut RawClient, trace: &mut Trace, i: usize, ch: u16, until: Until) -> Went {
    let mut reopening: Option<u16> = None;
    loop {
        let Some((on, method)) = c.read_method().await else {
            trace.events.push(format!("{i}: socket closed"));
            trace.closed_by_broker = true;
            return Went::Closed;
        };
        let id = method.id();
        match method {
            Method::Other(AMQPClass::Connection(connection::AMQPMethod::Close(m))) => {
                trace.events.push(format!(
                    "{i}: connection.close {} {}/{} {}",
                    m.reply_code,
                    m.class_id,
                    m.method_id,
                    normalized(m.reply_text.as_str())
                ));
                c.send_method(
                    0,
                    &AMQPClass::Connection(connection::AMQPMethod::CloseOk(connection::CloseOk {})),
                )
                .await;
                c.expect_eof().await;
                trace.closed_by_broker = true;
                return Went::Closed;
            }
            Method::Other(AMQPClass::Channel(channel::AMQPMethod::Close(m))) => {
                trace.events.push(format!(
                    "{i}: channel.close on {on}: {} {}/{} {}",
                    m.reply_code,
                    m.class_id,
                    m.method_id,
                    normalized(m.reply_text.as_str())
                ));
                let mut again = close_ok(on);
                again.extend(open(on));
                c.send(&again).await;
                reopening = Some(on);
            }
            Method::Other(AMQPClass::Channel(channel::AMQPMethod::OpenOk(_)))
                if reopening == Some(on) =>
            {
                reopening = None;
                // The ping (or the reply awaited) went with the channel that closed.
                if on == ch && matches!(until, Until::FlowOk | Until::Reply(_)) {
                    return Went::On;
                }
            }
            Method::Other(AMQPClass::Channel(channel::AMQPMethod::FlowOk(_)))
                if on == ch && until == Until::FlowOk =>
            {
                return Went::On;
            }
            Method::Other(AMQPClass::Channel(channel::AMQPMethod::CloseOk(_)))
                if on == ch && until == Until::CloseOk =>
            {
                trace.events.push(format!("{i}: channel.close-ok on {on}"));
                return Went::On;
            }
            Method::Other(AMQPClass::Channel(channel::AMQPMethod::OpenOk(_)))
                if on == ch && until == Until::OpenOk =>
            {
                return Went::On;
            }
            _ if on == ch && until == Until::Reply(id) => {
                trace
                    .events
                    .push(format!("{i}: {} on {on}", id.name().unwrap_or("?")));
                return Went::On;
            }
            _ if asynchronous(id) => trace.log.push(format!("{i} on {on}: {method:?}")),
            // What a get returns is decided in step: which message, from where, and
            // how many are left.
            Method::Other(AMQPClass::Basic(basic::AMQPMethod::GetOk(m))) => {
                let Some(properties) = content_properties(c).await else {
                    trace.events.push(format!("{i}: socket closed"));
                    trace.closed_by_broker = true;
                    return Went::Closed;
                };
                trace.events.push(format!(
                    "{i}: basic.get-ok on {on}: redelivered {} from '{}' with '{}', {} left, \
                     {properties}",
                    m.redelivered,
                    m.exchange.as_str(),
                    m.routing_key.as_str(),
                    m.message_count
                ));
            }
            _ => trace.events.push(format!(
                "{i}: {} on {on}",
                id.name().unwrap_or("unknown method")
            )),
        }
    }
}

fn open(channel: u16) -> Vec<u8> {
    method_frame(
        channel,
        &AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
    )
}

/// How long the comparison with RabbitMQ lets deliveries land after a step that may
/// start some: 3 ms, or `WARREN_STORM_SETTLE_MS`.
fn settle_time() -> Duration {
    let ms = std::env::var("WARREN_STORM_SETTLE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    Duration::from_millis(ms)
}

/// The methods a step sends (a publish's content frames aside).
fn methods(step: &Step) -> Vec<Method> {
    let (Step::Frames(out) | Step::Awaiting(out, _)) = step else {
        return Vec::new();
    };
    let mut rest = BytesMut::from(&out[..]);
    let mut sent = Vec::new();
    while let Ok(Some(f)) = warren_codec::frame::decode_frame(&mut rest, 0) {
        sent.extend(warren_codec::method::decode_method(&f.payload).ok());
    }
    sent
}

/// Can this method make a message ready for a consumer, or give one credit?
fn may_deliver(m: &Method) -> bool {
    match m {
        Method::BasicPublish(_) | Method::BasicAck(_) | Method::BasicNack(_) => true,
        Method::BasicReject(_) => true,
        Method::Other(AMQPClass::Basic(
            basic::AMQPMethod::Get(_) | basic::AMQPMethod::Cancel(_),
        )) => false,
        Method::Other(
            AMQPClass::Basic(_)
            | AMQPClass::Tx(tx::AMQPMethod::Commit(_))
            | AMQPClass::Channel(channel::AMQPMethod::Close(_)),
        ) => true,
        Method::Other(_) => false,
    }
}

/// With `WARREN_STORM_SHOW=<port>`, print the steps sent to the broker on that port.
fn show(addr: SocketAddr, i: usize, out: &[u8]) {
    if std::env::var("WARREN_STORM_SHOW").is_ok_and(|v| v == addr.port().to_string()) {
        let mut rest = BytesMut::from(out);
        while let Ok(Some(f)) = warren_codec::frame::decode_frame(&mut rest, 0) {
            let method = warren_codec::method::decode_method(&f.payload)
                .map(|m| format!("{m:?}"))
                .unwrap_or_default();
            let props = if f.frame_type == warren_codec::frame::FrameType::Header {
                warren_codec::properties::decode_properties(&f.payload[12..])
                    .map(|p| format!("size {:?} {p:?}", &f.payload[4..12]))
                    .unwrap_or_default()
            } else {
                String::new()
            };
            eprintln!(
                "step {i} on {}: {:?} {method}{props}",
                f.channel, f.frame_type
            );
        }
    }
}

/// One connection: `steps` random steps, each followed by a `channel.flow` that the
/// broker answers only after the step, so that every answer is tied to its step.
/// Can a 0-8 client send it? (`basic.consume`'s table is dropped on the way: 0-8 has
/// none.)
fn in_0_8(m: &Method) -> bool {
    !matches!(
        m,
        Method::BasicNack(_)
            | Method::Other(
                AMQPClass::Confirm(_)
                    | AMQPClass::Exchange(
                        exchange::AMQPMethod::Bind(_) | exchange::AMQPMethod::Unbind(_)
                    )
            )
    )
}

async fn round(addr: SocketAddr, rng: &mut Rng, steps: usize, dialect: Dialect) -> Trace {
    let mut c = RawClient::open_in(addr, dialect).await;
    let channels = 1 + rng.below(3) as u16;
    for id in 2..=channels {
        c.open_channel(id).await;
    }
    let mut trace = Trace::default();
    let ping = |ch| {
        method_frame(
            ch,
            &AMQPClass::Channel(channel::AMQPMethod::Flow(channel::Flow { active: true })),
        )
    };
    // Compared with RabbitMQ, once the connection may have a consumer: deliveries
    // cross from one task (or Erlang process) to another, so one triggered by a step
    // may arrive after the next step on another channel has cancelled its consumer,
    // in one broker and not the other. A pause after each step lets them land first.
    let settle = !rng.extensions && !settle_time().is_zero();
    let pause = settle_time();
    let mut consuming = false;
    let mut delivering = false;
    for i in 0..steps {
        if settle && consuming && delivering {
            tokio::time::sleep(pause).await;
        }
        let ch = 1 + rng.below(u64::from(channels)) as u16;
        let mut step = step(rng, ch);
        if dialect == Dialect::Amqp08 && !methods(&step).iter().all(in_0_8) {
            step = Step::Frames(Vec::new());
        }
        let sent = methods(&step);
        consuming = consuming
            || sent.iter().any(|m| {
                matches!(
                    m,
                    Method::Other(AMQPClass::Basic(basic::AMQPMethod::Consume(_)))
                )
            });
        delivering = matches!(step, Step::Reopen) || sent.iter().any(may_deliver);
        let went = match step {
            Step::Awaiting(out, reply) => {
                show(addr, i, &out);
                c.send(&out).await;
                match answers(&mut c, &mut trace, i, ch, Until::Reply(reply)).await {
                    Went::On => {
                        c.send(&ping(ch)).await;
                        answers(&mut c, &mut trace, i, ch, Until::FlowOk).await
                    }
                    Went::Closed => Went::Closed,
                }
            }
            Step::Frames(mut out) => {
                show(addr, i, &out);
                out.extend(ping(ch));
                c.send(&out).await;
                answers(&mut c, &mut trace, i, ch, Until::FlowOk).await
            }
            Step::Reopen => {
                c.send(&method_frame(
                    ch,
                    &AMQPClass::Channel(channel::AMQPMethod::Close(channel::Close {
                        reply_code: 200,
                        reply_text: "storm".into(),
                        class_id: 0,
                        method_id: 0,
                    })),
                ))
                .await;
                match answers(&mut c, &mut trace, i, ch, Until::CloseOk).await {
                    Went::On => {
                        c.send(&open(ch)).await;
                        answers(&mut c, &mut trace, i, ch, Until::OpenOk).await
                    }
                    Went::Closed => Went::Closed,
                }
            }
        };
        // Debugging a difference in the queues' contents, to see where it starts:
        // `all` counts on both brokers after each step, `warren` on Warren only (with
        // less effect on timing).
        let count_steps = std::env::var("WARREN_STORM_COUNT_STEPS").unwrap_or_default();
        let is_rabbitmq =
            std::env::var("WARREN_STORM_RABBITMQ").is_ok_and(|a| a == addr.to_string());
        if count_steps == "all" || (count_steps == "warren" && !is_rabbitmq) {
            if count_steps == "all" {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            trace
                .log
                .push(format!("{i}: counts {:?}", counts(addr).await));
        }
        if let Went::Closed = went {
            return trace;
        }
    }
    c.send_method(
        0,
        &AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
            reply_code: 200,
            reply_text: "done".into(),
            class_id: 0,
            method_id: 0,
        })),
    )
    .await;
    // Deliveries may still be on their way; the close-ok comes after them.
    loop {
        match c.read_method().await {
            Some((_, Method::Other(AMQPClass::Connection(connection::AMQPMethod::CloseOk(_)))))
            | None => break,
            Some(_) => {}
        }
    }
    trace
}

fn seed_and_rounds() -> (u64, usize) {
    let seed = std::env::var("WARREN_STORM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x005E_ED0F_570E_u64);
    let rounds = std::env::var("WARREN_STORM_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(150);
    (seed, rounds)
}

/// Each round has its own seed, so that a failing round can be replayed alone.
fn round_rng(seed: u64, round: usize, extensions: bool) -> Rng {
    Rng {
        state: (seed.wrapping_mul(0xBF58_476D_1CE4_E5B9)
            ^ (round as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
            | 1,
        extensions,
    }
}

const STEPS: usize = 80;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_method_sequences_never_panic_or_hang_the_broker() {
    count_panics();
    let (seed, rounds) = seed_and_rounds();
    eprintln!("storm: seed {seed}, {rounds} rounds");
    let broker = TestBroker::start().await;
    let (mut closed_by_broker, mut events) = (0, 0);
    for r in 0..rounds {
        // Every fourth connection speaks AMQP 0-8.
        let dialect = if r % 4 == 3 {
            Dialect::Amqp08
        } else {
            Dialect::Amqp091
        };
        let trace = round(broker.addr(), &mut round_rng(seed, r, true), STEPS, dialect).await;
        closed_by_broker += usize::from(trace.closed_by_broker);
        events += trace.events.len();
        assert_eq!(
            PANICS.load(Ordering::SeqCst),
            0,
            "round {r} (seed {seed}) panicked: {:?}",
            FIRST_PANIC.lock().ok().and_then(|p| p.clone())
        );
    }
    eprintln!(
        "storm: {events} answers; the broker closed {closed_by_broker} of {rounds} connections"
    );
    // Some rounds must end in a connection error and most must not: otherwise the
    // generator has stopped reaching past the first mistake.
    assert!(closed_by_broker > 0 && closed_by_broker * 2 < rounds);

    // Still serving, and every connection task ends on shutdown.
    let (conn, ch) = lapin_channel(&broker).await;
    declare(&ch, "storm.after").await;
    let mut consumer = consume(&ch, "storm.after", "after", true).await;
    ch.basic_publish(
        "".into(),
        "storm.after".into(),
        Default::default(),
        b"still here",
        Default::default(),
    )
    .await
    .unwrap();
    assert_eq!(next(&mut consumer).await.data, b"still here");
    drop(consumer);
    drop(conn);
    tokio::time::timeout(Duration::from_secs(30), broker.shutdown())
        .await
        .expect("every connection ended on shutdown");
    assert_eq!(PANICS.load(Ordering::SeqCst), 0);
}

/// Delete every queue and exchange the storm names, so that a broker kept from an
/// earlier run (RabbitMQ keeps durable ones) starts from the same state.
async fn clear(addr: SocketAddr) {
    let url = format!("amqp://guest:guest@{addr}/%2f");
    let conn = lapin::Connection::connect(&url, lapin::ConnectionProperties::default())
        .await
        .expect("connects");
    for name in QUEUES.iter().filter(|n| n.starts_with("storm.")) {
        let ch = conn.create_channel().await.unwrap();
        ch.queue_delete((*name).into(), Default::default())
            .await
            .unwrap();
    }
    for name in EXCHANGES.iter().filter(|n| n.starts_with("storm.")) {
        let ch = conn.create_channel().await.unwrap();
        ch.exchange_delete((*name).into(), Default::default())
            .await
            .unwrap();
    }
    // lapin reports the channels it closes along the way; the deletes are done.
    let _ = conn.close(200, "cleared".into()).await;
}

/// How many messages each queue the storm names holds (`None`: no such queue).
async fn counts(addr: SocketAddr) -> Vec<(&'static str, Option<u32>)> {
    let mut c = RawClient::open(addr).await;
    let mut out = Vec::new();
    for name in QUEUES.iter().filter(|n| n.starts_with("storm.")) {
        c.send(&warren_e2e::raw::queue_declare_frame(1, name, true))
            .await;
        match c.read_method().await.expect("an answer") {
            (_, Method::Other(AMQPClass::Queue(queue::AMQPMethod::DeclareOk(ok)))) => {
                out.push((*name, Some(ok.message_count)));
            }
            _ => {
                c.send(&close_ok(1)).await;
                c.open_channel(1).await;
                out.push((*name, None));
            }
        }
    }
    out
}

/// Where the first message of `queue` came from (basic.get without ack, so it stays).
async fn first_message(addr: SocketAddr, queue: &str) -> Option<String> {
    let mut c = RawClient::open(addr).await;
    c.send_method(
        1,
        &AMQPClass::Basic(basic::AMQPMethod::Get(basic::Get {
            queue: queue.into(),
            no_ack: false,
        })),
    )
    .await;
    match c.read_method().await? {
        (_, Method::Other(AMQPClass::Basic(basic::AMQPMethod::GetOk(m)))) => Some(format!(
            "from '{}' with '{}', redelivered {}",
            m.exchange.as_str(),
            m.routing_key.as_str(),
            m.redelivered
        )),
        (_, other) => Some(format!("{other:?}")),
    }
}

/// The same runs against RabbitMQ and Warren: every answer, code, failing method and
/// text must match. Start RabbitMQ 3.10 (`rabbitmq-server -detached`), then:
///
/// ```sh
/// WARREN_STORM_RABBITMQ=127.0.0.1:5672 cargo test -p warren-e2e --test method_storm -- --ignored
/// ```
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs RabbitMQ: set WARREN_STORM_RABBITMQ to its address"]
async fn random_method_sequences_get_the_answers_rabbitmq_gives() {
    compare_with_rabbitmq(Dialect::Amqp091).await;
}

/// The same in AMQP 0-8 (`WARREN_STORM_DIALECT=0-8 bash tests/storm-vs-rabbitmq.sh`),
/// leaving out what 0-8 lacks (`exchange.bind`, `confirm.select`, `basic.nack`). Run
/// one of the two at a time: they share RabbitMQ's queues.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs RabbitMQ: set WARREN_STORM_RABBITMQ to its address"]
async fn random_amqp_0_8_sequences_get_the_answers_rabbitmq_gives() {
    compare_with_rabbitmq(Dialect::Amqp08).await;
}

async fn compare_with_rabbitmq(dialect: Dialect) {
    let rabbit: SocketAddr = std::env::var("WARREN_STORM_RABBITMQ")
        .expect("WARREN_STORM_RABBITMQ names RabbitMQ's address")
        .parse()
        .expect("an address such as 127.0.0.1:5672");
    let (seed, rounds) = seed_and_rounds();
    let broker = TestBroker::start().await;
    clear(rabbit).await;
    for r in 0..rounds {
        if std::env::var("WARREN_STORM_SHOW").is_ok() {
            eprintln!("round {r}");
        }
        let ours = round(
            broker.addr(),
            &mut round_rng(seed, r, false),
            STEPS,
            dialect,
        )
        .await;
        let theirs = round(rabbit, &mut round_rng(seed, r, false), STEPS, dialect).await;
        // RabbitMQ deletes a closed connection's exclusive queues in the background.
        tokio::time::sleep(Duration::from_millis(50)).await;
        if ours != theirs {
            let at = ours
                .events
                .iter()
                .zip(&theirs.events)
                .position(|(a, b)| a != b)
                .unwrap_or(ours.events.len().min(theirs.events.len()));
            let around = |events: &[String]| {
                events[at.saturating_sub(3)..]
                    .iter()
                    .take(6)
                    .cloned()
                    .collect::<Vec<_>>()
            };
            panic!(
                "round {r} (seed {seed}) differs at answer {at}:\n  Warren:   {:#?}\n  RabbitMQ: {:#?}",
                around(&ours.events),
                around(&theirs.events),
            );
        }
        if std::env::var("WARREN_STORM_SHOW").is_ok() {
            eprintln!("round {r} answers: {:#?}", ours.events);
        }
        let (our_counts, their_counts) = (counts(broker.addr()).await, counts(rabbit).await);
        if our_counts != their_counts {
            for ((name, ours), (_, theirs)) in our_counts.iter().zip(&their_counts) {
                if ours != theirs {
                    eprintln!(
                        "{name}: Warren's first message {:?}; RabbitMQ's {:?}",
                        first_message(broker.addr(), name).await,
                        first_message(rabbit, name).await
                    );
                }
            }
        }
        assert_eq!(
            our_counts, their_counts,
            "after round {r} (seed {seed}) the queues hold different numbers of messages \
             (left Warren, right RabbitMQ)\nWarren heard: {:#?}\nRabbitMQ heard: {:#?}",
            ours.log, theirs.log
        );
    }
}

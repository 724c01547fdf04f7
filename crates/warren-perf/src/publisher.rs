//! Publishing connections: messages encoded once into a reused buffer and written many
//! frames per system call, with an optional rate, confirm window and message limit.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::Semaphore;
use warren_codec::encode::{encode_content, encode_method};
use warren_codec::frame::{FrameType, decode_frame};
use warren_codec::properties::encode_properties;
use warren_codec::spec::{AMQPClass, BasicProperties, basic, connection};
use warren_codec::{FRAME_HEADER_SIZE, FRAME_OVERHEAD};

use crate::client::Client;
use crate::latency::{Recorder, now_nanos};
use crate::{Res, Shared};

/// `count` identical publishes (method, header and body frames) back to back, and
/// where each body starts, so a send time can be stamped into it before each write.
#[derive(Debug, Clone)]
pub struct Batch {
    bytes: Vec<u8>,
    body_offsets: Vec<usize>,
    message_len: usize,
}

/// Bytes of publishes one write may carry: enough to amortise the system call, small
/// enough that large bodies are not held many times over.
const BATCH_BYTES: usize = 256 * 1024;
const MAX_BATCH: usize = 64;

impl Batch {
    pub fn encode(
        exchange: &str,
        routing_key: &str,
        properties: &BasicProperties,
        size: usize,
        frame_max: u32,
    ) -> Res<Self> {
        let publish = AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
            exchange: exchange.into(),
            routing_key: routing_key.into(),
            mandatory: false,
            immediate: false,
        }));
        let raw_properties = encode_properties(properties)?;
        let raw_properties = if raw_properties.is_empty() {
            vec![0, 0]
        } else {
            raw_properties
        };
        let body = vec![b'x'; size];
        let mut one = BytesMut::new();
        encode_method(&mut one, 1, &publish)?;
        let method_len = one.len();
        encode_content(&mut one, 1, &raw_properties, &body, frame_max)?;
        let header_len = FRAME_OVERHEAD + 12 + raw_properties.len();
        let body_offset = method_len + header_len + FRAME_HEADER_SIZE;
        let count = (BATCH_BYTES / one.len()).clamp(1, MAX_BATCH);
        let mut bytes = Vec::with_capacity(one.len() * count);
        let mut body_offsets = Vec::with_capacity(count);
        for _ in 0..count {
            body_offsets.push(bytes.len() + body_offset);
            bytes.extend_from_slice(&one);
        }
        Ok(Self {
            bytes,
            body_offsets,
            message_len: one.len(),
        })
    }

    pub fn count(&self) -> usize {
        self.body_offsets.len()
    }

    /// The first `n` messages, each body starting with the current time when `stamp`.
    fn prefix(&mut self, n: usize, stamp: bool) -> &[u8] {
        if stamp {
            let now = now_nanos().to_be_bytes();
            for &off in &self.body_offsets[..n] {
                self.bytes[off..off + 8].copy_from_slice(&now);
            }
        }
        &self.bytes[..n * self.message_len]
    }

    /// One message, stamped when `stamp`.
    pub fn one(&mut self, stamp: bool) -> &[u8] {
        self.prefix(1, stamp)
    }
}

/// How one producer publishes.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub confirm: Option<u32>,
    pub rate: Option<u64>,
    pub limit: Option<u64>,
    pub stamp: bool,
}

pub async fn produce(c: Client, mut batch: Batch, plan: Plan, shared: Arc<Shared>) -> Res<()> {
    let Client { rd, mut wr, .. } = c;
    let window = plan
        .confirm
        .map(|w| Arc::new(Semaphore::new(w.max(1) as usize)));
    let reader = tokio::spawn(read_confirms(rd, window.clone(), shared.clone()));
    let started = Instant::now();
    let mut sent = 0u64;
    while !shared.stop.load(Ordering::Relaxed) {
        let mut n = batch.count() as u64;
        if let Some(w) = plan.confirm {
            n = n.min(u64::from(w.max(1)));
        }
        if let Some(rate) = plan.rate {
            let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
            if due <= sent {
                let next = started + Duration::from_secs_f64((sent + 1) as f64 / rate as f64);
                pace_until(next).await;
                continue;
            }
            n = n.min(due - sent);
        }
        if let Some(limit) = plan.limit {
            let before = shared.reserved.fetch_add(n, Ordering::Relaxed);
            if before >= limit {
                break;
            }
            n = n.min(limit - before);
        }
        if let Some(w) = &window {
            w.acquire_many(n as u32).await?.forget();
        }
        wr.write_all(batch.prefix(n as usize, plan.stamp)).await?;
        sent += n;
        shared.stats.published.fetch_add(n, Ordering::Relaxed);
    }
    // Keep reading confirms for what was sent until the run ends.
    while !shared.stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Close politely: the broker answers only once it has handled every publish before
    // the close, so nothing of this run reaches the next one's queues.
    let mut close = BytesMut::with_capacity(64);
    encode_method(
        &mut close,
        0,
        &AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
            reply_code: 200,
            reply_text: "run over".into(),
            class_id: 0,
            method_id: 0,
        })),
    )?;
    wr.write_all(&close).await?;
    if tokio::time::timeout(CLOSE_TIMEOUT, reader).await.is_err() {
        return Err("the broker did not answer a producer's connection.close".into());
    }
    Ok(())
}

/// `connection.blocked` (with its reason) or `connection.unblocked` for a producer:
/// counted, and said on stderr, since a blocked run otherwise only looks slow.
fn note_blocking(blocked: bool, payload: &bytes::Bytes, shared: &Shared) {
    if blocked {
        shared.stats.blocked.fetch_add(1, Ordering::Relaxed);
        let reason = match warren_codec::method::decode_method(payload) {
            Ok(warren_codec::method::Method::Other(AMQPClass::Connection(
                connection::AMQPMethod::Blocked(b),
            ))) => b.reason.to_string(),
            _ => String::new(),
        };
        eprintln!("warren-perf: the broker blocked a producer ({reason})");
    } else {
        eprintln!("warren-perf: the broker unblocked a producer");
    }
}

/// Waits until `due`, to within the kernel's timer precision. Tokio's timer ticks once
/// a millisecond: on it alone, 5,000 msg/s becomes bursts of five a millisecond apart,
/// and a latency run measures the wait behind the burst rather than one message's
/// trip. So only the bulk of a long wait is spent on it; the last stretch is a thread
/// sleep, off the runtime so the other tasks go on.
async fn pace_until(due: Instant) {
    let now = Instant::now();
    if due <= now {
        return;
    }
    if due - now > TOKIO_TIMER_SLACK {
        tokio::time::sleep_until((due - TOKIO_TIMER_SLACK).into()).await;
    }
    let now = Instant::now();
    if due > now {
        tokio::task::block_in_place(|| std::thread::sleep(due - now));
    }
}

/// How late a tokio timer may fire: one tick of its wheel, and a tick of margin.
const TOKIO_TIMER_SLACK: Duration = Duration::from_millis(2);

/// How long a producer waits for the broker to work through what it sent.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(30);

/// Count confirms (acks and nacks) and give their window slots back.
async fn read_confirms(mut rd: OwnedReadHalf, window: Option<Arc<Semaphore>>, shared: Arc<Shared>) {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut confirmed = 0u64;
    loop {
        if rd.read_buf(&mut buf).await.unwrap_or(0) == 0 {
            return;
        }
        while let Ok(Some(frame)) = decode_frame(&mut buf, 0) {
            if frame.frame_type != FrameType::Method || frame.payload.len() < 4 {
                continue;
            }
            let mut p = frame.payload.clone();
            let (class, method) = (p.get_u16(), p.get_u16());
            if class == 60 && (method == 80 || method == 120) && p.remaining() >= 9 {
                let tag = p.get_u64();
                let multiple = p.get_u8() & 1 == 1;
                let n = if multiple {
                    tag.saturating_sub(confirmed)
                } else {
                    1
                };
                confirmed = confirmed.max(tag);
                shared.stats.confirmed.fetch_add(n, Ordering::Relaxed);
                if method == 120 {
                    shared.stats.nacked.fetch_add(n, Ordering::Relaxed);
                }
                if let Some(w) = &window {
                    w.add_permits(n as usize);
                }
            } else if class == 10 && method == 50 {
                eprintln!(
                    "warren-perf: the broker closed a producer: {:?}",
                    warren_codec::method::decode_method(&frame.payload)
                );
                return;
            } else if class == 10 && method == 51 {
                return;
            } else if class == 10 && (method == 60 || method == 61) {
                note_blocking(method == 60, &frame.payload, &shared);
            }
        }
    }
}

/// Publish one message, wait for its confirm, record the time taken, repeat.
pub async fn produce_one_at_a_time(
    c: Client,
    mut batch: Batch,
    plan: Plan,
    shared: Arc<Shared>,
    recorder: Arc<Recorder>,
) -> Res<()> {
    let Client {
        mut rd,
        mut wr,
        mut rbuf,
        ..
    } = c;
    let started = Instant::now();
    let mut count = 0u64;
    while !shared.stop.load(Ordering::Relaxed) {
        if let Some(rate) = plan.rate {
            pace_until(started + Duration::from_secs_f64(count as f64 / rate as f64)).await;
        }
        if let Some(limit) = plan.limit
            && shared.reserved.fetch_add(1, Ordering::Relaxed) >= limit
        {
            break;
        }
        count += 1;
        let sent = Instant::now();
        wr.write_all(batch.one(false)).await?;
        shared.stats.published.fetch_add(1, Ordering::Relaxed);
        'wait: loop {
            while let Some(frame) = decode_frame(&mut rbuf, 0)? {
                if frame.frame_type != FrameType::Method || frame.payload.len() < 4 {
                    continue;
                }
                let mut p = frame.payload.clone();
                let (class, method) = (p.get_u16(), p.get_u16());
                if class == 60 && (method == 80 || method == 120) {
                    break 'wait;
                }
                if class == 10 && method == 50 {
                    return Err("the broker closed the publisher".into());
                }
                if class == 10 && (method == 60 || method == 61) {
                    note_blocking(method == 60, &frame.payload, &shared);
                }
            }
            if rd.read_buf(&mut rbuf).await? == 0 {
                return Err("the broker closed the publisher".into());
            }
        }
        recorder.record_all(&[u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX)]);
        shared.stats.confirmed.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pacing_never_wakes_before_the_due_time_short_or_long() {
        for wait in [Duration::from_micros(200), Duration::from_millis(5)] {
            let due = Instant::now() + wait;
            pace_until(due).await;
            assert!(Instant::now() >= due, "woke early for {wait:?}");
        }
        // A due time already past returns at once, without sleeping on either timer.
        pace_until(Instant::now() - Duration::from_millis(1)).await;
    }
}

//! What a connection's channels share: identity, vhost, negotiated limits, the handle
//! queues deliver through, and the write buffer every reply is encoded into.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use smallvec::SmallVec;
use tracing::error;
use warren_codec::dialect::Dialect;
use warren_codec::encode::{
    encode_body_frame_header, encode_content, encode_content_header, encode_method_in,
};
use warren_codec::frame::max_payload;
use warren_codec::spec::AMQPClass;
use warren_store::{Body, MessageRef};

use super::ConnectionHandle;
use crate::Broker;
use crate::queue::{ConnectionId, QueueCmd, QueueRef, TrySendError};
use crate::vhost::VHost;

/// Gathered publishes for one queue sent as one command at most, so that one command
/// never takes more than a quarter of a queue's default inbox (512 messages).
const MAX_PUBLISH_RUN: usize = 128;
/// Room reserved once a second publish for the same queue is gathered: a lone one
/// (a lightly loaded publisher's usual batch) allocates nothing.
const PUBLISH_RUN_CAPACITY: usize = 16;

/// The publishes gathered for one queue.
type PublishRun = SmallVec<[MessageRef; 1]>;
/// Bodies from this size on are written from the message itself, not copied.
const ZERO_COPY_BODY: usize = 32 * 1024;
/// Slices handed to one vectored write (Linux takes up to 1024).
const MAX_IO_SLICES: usize = 64;
/// Stop taking deliveries while this much encoded (copied) output waits for the socket.
const COPIED_HIGH_WATER: usize = 512 * 1024;
/// ... or this much in all. Bodies written from the messages cost no memory of their
/// own, and a deeper pipeline of them keeps a large-message consumer's socket busy: with
/// one 1 MiB body at a time, the writer stalled between messages (1 MiB bodies: +7-12%
/// throughput and 12-16% less CPU per message, docs/benchmarks.md).
const TOTAL_HIGH_WATER: usize = 4 * 1024 * 1024;

/// The command for publishes gathered for one queue: a lone one as it always went.
fn publish_command(mut messages: PublishRun) -> QueueCmd {
    match (messages.len(), messages.pop()) {
        (1, Some(message)) => QueueCmd::Publish {
            message,
            confirm: None,
        },
        (_, last) => {
            messages.extend(last);
            QueueCmd::PublishMany(messages.into_vec())
        }
    }
}

/// The slices of one vectored write; on the stack in the usual case of a few.
pub(crate) type IoSlices<'a> = SmallVec<[IoSlice<'a>; 8]>;

/// Per-connection context handed to channel handlers.
#[derive(Debug)]
pub(crate) struct Session {
    pub id: ConnectionId,
    pub broker: Arc<Broker>,
    pub vhost: Arc<VHost>,
    pub user: Arc<str>,
    /// Negotiated frame_max for the frames we send.
    pub frame_max: u32,
    /// The client asked to be told when the queue of one of its consumers goes away.
    pub consumer_cancel_notify: bool,
    /// The client understands `connection.blocked` and `connection.unblocked`.
    pub connection_blocked: bool,
    /// The protocol the client speaks; methods are encoded for it.
    pub dialect: Dialect,
    pub handle: ConnectionHandle,
    /// Encoded frames waiting for the socket; flushed in batches by the connection loop.
    /// Goes out after everything in `sealed`.
    pub out: BytesMut,
    /// Output that goes before `out`: earlier frames, split off, and large bodies as
    /// slices of the messages themselves (marked `true`), so they are written without
    /// being copied.
    pub(super) sealed: VecDeque<(Bytes, bool)>,
    pub(super) sealed_len: usize,
    /// Octets of `sealed` that are slices of messages.
    pub(super) borrowed_len: usize,
    /// Exclusive queues this connection declared: deleted when it closes.
    pub exclusive_queues: Vec<QueueRef>,
    /// Channels with publisher confirms to send once the current batch of input is handled.
    pub confirms_due: Vec<u16>,
    /// The earliest consumer-timeout deadline of any outstanding delivery.
    pub ack_deadline: Option<tokio::time::Instant>,
    /// Commands (publishes, gathered or not) for queues whose inbox was full, in the
    /// order they were routed. The connection sends them (waiting: this is publisher
    /// back-pressure) before it handles another frame, so routing itself never waits and
    /// the order per queue holds.
    pub parked: Vec<(QueueRef, QueueCmd)>,
    /// Publishes that wait for no verdict, gathered per queue while one batch of input
    /// is handled and sent as one command per queue ([`Session::send_publishes`]): a
    /// queue's inbox is the busiest channel in the broker, and one operation per batch
    /// instead of one per message is a visible share of a small message's cost.
    pub(super) publishes: SmallVec<[(QueueRef, PublishRun); 2]>,
}

impl Session {
    /// Hand a command to a queue without waiting: at once if its inbox has room,
    /// otherwise parked for [`Session::send_parked`]. `false` if the queue is gone.
    pub fn send_to_queue(&mut self, queue: &QueueRef, cmd: QueueCmd) -> bool {
        // Whatever was gathered goes first, so each queue sees commands in the order
        // they were routed.
        self.send_publishes();
        self.hand_to_queue(queue, cmd)
    }

    /// Gather a publish that waits for no verdict; it goes to the queue with the
    /// rest of this batch of input by [`Session::send_publishes`], which the connection
    /// calls (through [`Session::send_parked`]) before it handles any other kind of
    /// frame and when the batch is done.
    pub fn gather_publish(&mut self, queue: &QueueRef, message: MessageRef) {
        let at = match self.publishes.iter().position(|(q, _)| q == queue) {
            Some(at) => at,
            None => {
                self.publishes.push((queue.clone(), PublishRun::new()));
                self.publishes.len() - 1
            }
        };
        let messages = &mut self.publishes[at].1;
        if messages.len() == 1 {
            messages.reserve_exact(PUBLISH_RUN_CAPACITY - 1);
        }
        messages.push(message);
        if messages.len() >= MAX_PUBLISH_RUN {
            let (queue, messages) = self.publishes.swap_remove(at);
            self.hand_to_queue(&queue, publish_command(messages));
        }
    }

    /// Hand every gathered publish to its queue (or park it, if the queue's inbox is
    /// full).
    pub fn send_publishes(&mut self) {
        if self.publishes.is_empty() {
            return;
        }
        for (queue, messages) in std::mem::take(&mut self.publishes) {
            self.hand_to_queue(&queue, publish_command(messages));
        }
    }

    /// At once if the queue's inbox has room and nothing is parked ahead, else parked.
    /// A queue that is gone drops the command.
    fn hand_to_queue(&mut self, queue: &QueueRef, cmd: QueueCmd) -> bool {
        if !self.parked.is_empty() {
            self.parked.push((queue.clone(), cmd));
            return true;
        }
        match queue.try_send(cmd) {
            Ok(()) => true,
            Err(TrySendError::Full(cmd)) => {
                self.parked.push((queue.clone(), cmd));
                true
            }
            Err(TrySendError::Closed) => false,
        }
    }

    /// Send every gathered and parked command, waiting for room in each queue's inbox.
    /// A command for a queue deleted meanwhile is dropped, and with it any confirm
    /// ticket, which then answers for itself.
    pub async fn send_parked(&mut self) {
        self.send_publishes();
        for (queue, cmd) in std::mem::take(&mut self.parked) {
            queue.send(cmd).await;
        }
    }

    /// Encode a method for sending.
    pub fn send_method(&mut self, channel: u16, method: &AMQPClass) {
        if let Err(e) = encode_method_in(&mut self.out, channel, method, self.dialect) {
            // Only our own oversize strings can fail to encode; they are bugs, not input.
            error!(channel, error = %e, ?method, "could not encode a method");
        }
    }

    /// Encode a content header and body frames for sending. Large bodies are not
    /// copied: their frames point into the message's parts, a frame spanning two parts
    /// as two slices, so the framing is the same however the body arrived.
    pub fn send_content(&mut self, channel: u16, properties: &[u8], body: &Body) {
        if body.len() < ZERO_COPY_BODY {
            let result = match body.parts() {
                [one] => encode_content(&mut self.out, channel, properties, one, self.frame_max),
                _ => encode_content(
                    &mut self.out,
                    channel,
                    properties,
                    &body.to_bytes(),
                    self.frame_max,
                ),
            };
            if let Err(e) = result {
                error!(channel, error = %e, "could not encode content");
            }
            return;
        }
        let chunk = max_payload(self.frame_max).max(1) as usize;
        let result = encode_content_header(&mut self.out, channel, properties, body.len() as u64)
            .and_then(|()| {
                for at in (0..body.len()).step_by(chunk) {
                    let end = (at + chunk).min(body.len());
                    encode_body_frame_header(&mut self.out, channel, end - at)?;
                    let framing = self.out.split().freeze();
                    self.seal(framing, false);
                    for slice in body.slices(at..end) {
                        self.seal(slice, true);
                    }
                    self.out.put_u8(warren_codec::FRAME_END);
                }
                Ok(())
            });
        if let Err(e) = result {
            error!(channel, error = %e, "could not encode content");
        }
    }

    fn seal(&mut self, bytes: Bytes, borrowed: bool) {
        if !bytes.is_empty() {
            self.sealed_len += bytes.len();
            if borrowed {
                self.borrowed_len += bytes.len();
            }
            self.sealed.push_back((bytes, borrowed));
        }
    }

    /// Octets waiting for the socket.
    pub fn pending_len(&self) -> usize {
        self.sealed_len + self.out.len()
    }

    /// The writer can take more deliveries: what waits for the socket is below both
    /// high-water marks.
    pub fn has_room(&self) -> bool {
        let pending = self.pending_len();
        pending - self.borrowed_len < COPIED_HIGH_WATER && pending < TOTAL_HIGH_WATER
    }

    /// The waiting output as slices for one vectored write, in order.
    pub fn io_slices<'a>(&'a self, slices: &mut IoSlices<'a>) {
        slices.clear();
        for (b, _) in self.sealed.iter().take(MAX_IO_SLICES - 1) {
            slices.push(IoSlice::new(b));
        }
        if self.sealed.len() < MAX_IO_SLICES && !self.out.is_empty() {
            slices.push(IoSlice::new(&self.out));
        }
    }

    /// Drop the first `n` octets of the waiting output: they were written.
    pub fn advance_written(&mut self, mut n: usize) {
        while n > 0 {
            let Some((front, borrowed)) = self.sealed.front_mut() else {
                self.out.advance(n.min(self.out.len()));
                return;
            };
            let k = n.min(front.len());
            front.advance(k);
            self.sealed_len -= k;
            if *borrowed {
                self.borrowed_len -= k;
            }
            n -= k;
            if front.is_empty() {
                self.sealed.pop_front();
            }
        }
    }
}

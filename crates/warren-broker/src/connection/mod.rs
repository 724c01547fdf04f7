//! One task per connection: the handshake, then a loop that reads frames, dispatches them
//! to channels, takes deliveries from queues, keeps heartbeats, and writes everything it
//! encoded in batches.

mod blocking;
mod frames;
mod handle;
mod handshake;
mod read_plan;
mod session;

use foldhash::{HashMap, HashMapExt};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{Instrument, debug, info, info_span, warn};
use warren_codec::ReplyCode;
use warren_codec::dialect::Dialect;
use warren_codec::encode::encode_heartbeat;
use warren_codec::frame::{FrameType, decode_frame};
use warren_codec::spec::{AMQPClass, connection};

pub(crate) use handle::{ConnectionHandle, Delivery, Outbound};
pub(crate) use session::Session;

use crate::Broker;
use crate::channel::Channel;
use crate::credit::Credit;
use crate::error::{AmqpException, is_fatal_framing};
use crate::queue::QueueCmd;
use crate::server::stopped;
use handshake::{Refused, handshake, refuse};
use read_plan::{READ_CHUNK, ReadPlan};

/// Read at most `limit` octets onto the end of `buf`.
async fn read_some(
    rd: &mut OwnedReadHalf,
    buf: &mut BytesMut,
    limit: usize,
) -> std::io::Result<usize> {
    rd.read_buf(&mut buf.limit(limit)).await
}

/// RabbitMQ accepts frames whose *payload* reaches frame_max (it measures 8 octets
/// generously); so do we, so that clients it accepts are not refused here.
const FRAME_SIZE_FUDGE: u32 = 8;

/// The socket halves and the read buffer.
#[derive(Debug)]
pub(crate) struct Io {
    rd: OwnedReadHalf,
    wr: OwnedWriteHalf,
    rbuf: BytesMut,
    /// The protocol the peer opened with: AMQP 0-9-1, or 0-8 translated at the edge.
    dialect: Dialect,
}

/// Whether the connection loop goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    Continue,
    Stop,
}

/// Serve one accepted socket until it closes.
pub(crate) async fn run(
    socket: TcpStream,
    peer: SocketAddr,
    broker: Arc<Broker>,
    stop: watch::Receiver<bool>,
) {
    let id = broker.next_connection_id();
    let span = info_span!("connection", conn = id, %peer);
    serve_socket(socket, peer, broker, stop, id)
        .instrument(span)
        .await;
}

async fn serve_socket(
    socket: TcpStream,
    peer: SocketAddr,
    broker: Arc<Broker>,
    mut stop: watch::Receiver<bool>,
    id: u64,
) {
    debug!("accepted");
    let (rd, wr) = socket.into_split();
    let mut io = Io {
        rd,
        wr,
        rbuf: BytesMut::with_capacity(READ_CHUNK),
        dialect: Dialect::Amqp091,
    };
    let config = broker.config().clone();
    let outcome = tokio::select! {
        r = tokio::time::timeout(config.handshake_timeout, handshake(&mut io, &broker, peer)) => r,
        () = stopped(&mut stop) => return,
    };
    let opened = match outcome {
        Err(_) => {
            info!("handshake not completed in time, closing");
            return;
        }
        Ok(Err(Refused::Gone)) => return,
        Ok(Err(Refused::Close(e))) => {
            refuse(&mut io, &e, config.close_timeout).await;
            return;
        }
        Ok(Ok(opened)) => opened,
    };
    let (tx, out_rx) = mpsc::unbounded_channel();
    let session = Session {
        id,
        broker: broker.clone(),
        vhost: opened.vhost,
        user: opened.user,
        frame_max: opened.frame_max,
        consumer_cancel_notify: opened.consumer_cancel_notify,
        connection_blocked: opened.connection_blocked,
        dialect: io.dialect,
        handle: ConnectionHandle {
            tx,
            window: Credit::new(config.connection_delivery_window),
        },
        out: BytesMut::with_capacity(READ_CHUNK),
        exclusive_queues: Vec::new(),
        confirms_due: Vec::new(),
        ack_deadline: None,
        parked: Vec::new(),
        publishes: smallvec::SmallVec::new(),
        sealed: std::collections::VecDeque::new(),
        sealed_len: 0,
        borrowed_len: 0,
    };
    let now = Instant::now();
    let connection = Connection {
        io,
        session,
        channels: HashMap::new(),
        out_rx,
        channel_max: opened.channel_max,
        heartbeat: (opened.heartbeat > 0).then(|| Duration::from_secs(opened.heartbeat.into())),
        close_timeout: config.close_timeout,
        last_read: now,
        last_write: now,
        closing: None,
        read_plan: ReadPlan::default(),
        alarm: broker.watch_alarms(),
        blocked: false,
    };
    connection.serve(stop).await;
    debug!("closed");
}

/// A connection we asked to close: waiting for `close-ok` until `deadline`.
#[derive(Debug, Clone, Copy)]
struct Closing {
    deadline: Instant,
    /// The input can no longer be split into frames; it is discarded.
    framing_lost: bool,
}

pub(crate) struct Connection {
    io: Io,
    session: Session,
    channels: HashMap<u16, Channel>,
    out_rx: mpsc::UnboundedReceiver<Outbound>,
    channel_max: u16,
    heartbeat: Option<Duration>,
    close_timeout: Duration,
    last_read: Instant,
    /// Last time bytes went out (a write or a heartbeat queued).
    last_write: Instant,
    closing: Option<Closing>,
    read_plan: ReadPlan,
    /// The broker's resource alarms, to learn when they clear.
    alarm: watch::Receiver<crate::Alarms>,
    /// Held back by a resource alarm: the socket is not read meanwhile (unless we are
    /// closing the connection and wait for `close-ok`).
    blocked: bool,
}

impl Connection {
    async fn serve(mut self, mut stop: watch::Receiver<bool>) {
        loop {
            let read_limit = self.read_plan.prepare(&mut self.io.rbuf);
            let deadline = self.next_deadline();
            let take_outbound = self.session.has_room();
            let blocked = self.blocked;
            let flow = tokio::select! {
                read = read_some(&mut self.io.rd, &mut self.io.rbuf, read_limit), if !blocked || self.closing.is_some() => match read {
                    Ok(0) | Err(_) => Flow::Stop,
                    Ok(_) => {
                        self.last_read = Instant::now();
                        self.on_input().await
                    }
                },
                item = self.out_rx.recv(), if take_outbound => {
                    if let Some(item) = item {
                        self.on_outbound(item);
                        self.drain_outbound();
                    }
                    Flow::Continue
                }
                written = write_some(&mut self.io.wr, &self.session), if self.session.pending_len() > 0 => match written {
                    Ok(n) => {
                        self.session.advance_written(n);
                        self.last_write = Instant::now();
                        Flow::Continue
                    }
                    Err(_) => Flow::Stop,
                },
                changed = self.alarm.changed(), if blocked => {
                    self.on_alarm_change(changed.is_err()).await
                }
                () = tokio::time::sleep_until(deadline) => self.on_timer(),
                () = stopped(&mut stop), if self.closing.is_none() => {
                    self.close_connection(
                        AmqpException::connection(
                            ReplyCode::ConnectionForced,
                            "broker forced connection closure with reason 'shutdown'",
                        ),
                        false,
                    );
                    Flow::Continue
                }
            };
            if flow == Flow::Stop {
                break;
            }
        }
        self.finish().await;
    }

    /// Split and handle every complete frame in the read buffer.
    async fn on_input(&mut self) -> Flow {
        let frame_max = match self.session.frame_max {
            0 => 0,
            n => n.saturating_add(FRAME_SIZE_FUDGE),
        };
        loop {
            if self.closing.is_some_and(|c| c.framing_lost) {
                self.io.rbuf.clear();
                break;
            }
            let frame = match decode_frame(&mut self.io.rbuf, frame_max) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => {
                    let fatal = is_fatal_framing(&e);
                    self.close_connection(e.into(), fatal);
                    continue;
                }
            };
            let publish = frame.frame_type == FrameType::Method
                && frame.payload.starts_with(&frames::BASIC_PUBLISH_ID);
            let flow = match self.on_publish_frame(frame) {
                Ok(flow) => flow,
                Err(frame) => {
                    // Any other method may depend on what was published before it (a
                    // passive declare counts it, a get takes it): queues get it first,
                    // waiting for room if need be.
                    self.session.send_parked().await;
                    self.on_frame(frame).await
                }
            };
            if flow == Flow::Stop {
                self.session.send_publishes();
            }
            if !self.session.parked.is_empty() {
                self.session.send_parked().await;
            }
            if flow == Flow::Stop {
                return Flow::Stop;
            }
            if publish && self.block_if_alarmed() {
                break;
            }
        }
        self.session.send_publishes();
        if !self.session.parked.is_empty() {
            self.session.send_parked().await;
        }
        self.flush_confirms();
        Flow::Continue
    }

    fn flush_confirms(&mut self) {
        for id in std::mem::take(&mut self.session.confirms_due) {
            if let Some(channel) = self.channels.get_mut(&id) {
                channel.flush_confirms(&mut self.session);
            }
        }
    }

    fn on_outbound(&mut self, item: Outbound) {
        match item {
            Outbound::Deliver(delivery) => {
                let n = u32::try_from(delivery.messages.len()).unwrap_or(u32::MAX);
                self.session.handle.window.release(n);
                self.deliver(delivery);
            }
            Outbound::Confirm { channel, seq, ack } => {
                if let Some(ch) = self.channels.get_mut(&channel) {
                    ch.confirm_verdict(&mut self.session, seq, ack);
                }
                self.flush_confirms();
            }
            Outbound::Reply {
                channel,
                consumer_tag,
                message,
            } => {
                if let Some(ch) = self.channels.get_mut(&channel) {
                    ch.deliver_reply(&mut self.session, &consumer_tag, &message);
                }
            }
            Outbound::ConsumerCancelled {
                channel,
                consumer_id,
                consumer_tag,
            } => {
                if let Some(ch) = self.channels.get_mut(&channel) {
                    ch.consumer_cancelled(&mut self.session, consumer_id, &consumer_tag);
                }
            }
        }
    }

    fn deliver(&mut self, delivery: Delivery) {
        match self.channels.get_mut(&delivery.channel) {
            Some(channel) => channel.deliver(&mut self.session, delivery),
            None => bounce(delivery),
        }
    }

    /// Take whatever else queues have sent, up to the write high-water mark, so that
    /// many deliveries go out in one write.
    fn drain_outbound(&mut self) {
        while self.session.has_room() {
            match self.out_rx.try_recv() {
                Ok(item) => self.on_outbound(item),
                Err(_) => break,
            }
        }
    }

    fn next_deadline(&self) -> Instant {
        let mut deadline = Instant::now() + Duration::from_secs(3600);
        if let Some(closing) = self.closing {
            deadline = deadline.min(closing.deadline);
        }
        if let Some(hb) = self.heartbeat {
            deadline = deadline.min(self.last_write + hb / 2);
            if !self.blocked {
                deadline = deadline.min(self.last_read + hb * 2);
            }
        }
        if let Some(ack) = self.session.ack_deadline {
            deadline = deadline.min(ack);
        }
        deadline
    }

    /// Close every channel holding a delivery unacknowledged past its consumer timeout,
    /// as RabbitMQ does (406); its messages return to their queues, redelivered.
    fn check_consumer_timeouts(&mut self, now: Instant) {
        if self.session.ack_deadline.is_none_or(|d| d > now) {
            return;
        }
        let expired: Vec<(u16, Duration)> = self
            .channels
            .iter()
            .filter(|(_, ch)| ch.state() == crate::channel::ChannelState::Open)
            .filter_map(|(id, ch)| ch.timed_out(now).map(|t| (*id, t)))
            .collect();
        for (id, timeout) in expired {
            let text = format!(
                "delivery acknowledgement on channel {id} timed out. Timeout value used: {} ms. \
                 This timeout value can be configured, see consumers doc guide to learn more",
                timeout.as_millis()
            );
            self.close_channel(
                id,
                &AmqpException::channel(ReplyCode::PreconditionFailed, text),
            );
        }
        self.session.ack_deadline = self
            .channels
            .values()
            .filter_map(Channel::ack_deadline)
            .min();
    }

    fn on_timer(&mut self) -> Flow {
        let now = Instant::now();
        if self.closing.is_some_and(|c| now >= c.deadline) {
            debug!("no close-ok in time");
            return Flow::Stop;
        }
        if self.closing.is_none() {
            self.check_consumer_timeouts(now);
        }
        if let Some(hb) = self.heartbeat {
            // A blocked connection is not read, so its heartbeats cannot be seen.
            if !self.blocked && now >= self.last_read + hb * 2 {
                warn!(
                    timeout_secs = hb.as_secs(),
                    "missed heartbeats from client, closing"
                );
                return Flow::Stop;
            }
            if now >= self.last_write + hb / 2 {
                encode_heartbeat(&mut self.session.out);
                self.last_write = now;
            }
        }
        Flow::Continue
    }

    /// Send `connection.close` and wait for `close-ok`. Channels are torn down at once,
    /// so their unacknowledged messages return to their queues without waiting.
    fn close_connection(&mut self, e: AmqpException, framing_lost: bool) {
        if self.closing.is_some() {
            return;
        }
        if e.code == ReplyCode::ConnectionForced {
            info!(reason = %e, "closing connection");
        } else {
            warn!(error = %e, class_id = e.method.class_id, method_id = e.method.method_id, "connection error");
        }
        self.session.send_method(
            0,
            &AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
                reply_code: e.code.code(),
                reply_text: e.reply_text().as_str().into(),
                class_id: e.method.class_id,
                method_id: e.method.method_id,
            })),
        );
        self.teardown_channels();
        // A peer whose input we cannot frame any more gets less time, as in RabbitMQ.
        let wait = if framing_lost {
            self.close_timeout.min(Duration::from_secs(3))
        } else {
            self.close_timeout
        };
        self.closing = Some(Closing {
            deadline: Instant::now() + wait,
            framing_lost,
        });
    }

    fn teardown_channels(&mut self) {
        for (_, mut channel) in self.channels.drain() {
            channel.teardown(&self.session);
        }
    }

    /// Return everything this connection held to its queues, delete its exclusive
    /// queues, and flush what is left to write.
    async fn finish(mut self) {
        self.teardown_channels();
        // No queue may send us anything from now on; what was sent comes back.
        self.out_rx.close();
        while let Ok(item) = self.out_rx.try_recv() {
            if let Outbound::Deliver(delivery) = item {
                bounce(delivery);
            }
        }
        for queue in std::mem::take(&mut self.session.exclusive_queues) {
            queue.send_soon(QueueCmd::Delete {
                if_unused: false,
                if_empty: false,
                reply: None,
            });
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while self.session.pending_len() > 0 {
                match write_some(&mut self.io.wr, &self.session).await {
                    Ok(n) if n > 0 => self.session.advance_written(n),
                    _ => break,
                }
            }
        })
        .await;
        let _ = self.io.wr.shutdown().await;
    }
}

/// One vectored write of the waiting output.
async fn write_some(wr: &mut OwnedWriteHalf, session: &Session) -> std::io::Result<usize> {
    let mut slices = session::IoSlices::new();
    session.io_slices(&mut slices);
    wr.write_vectored(&slices).await
}

/// A delivery its consumer can no longer take goes back to its queue as it was.
pub(crate) fn bounce(delivery: Delivery) {
    if let Some(credit) = &delivery.channel_credit {
        credit.release(u32::try_from(delivery.messages.len()).unwrap_or(u32::MAX));
    }
    let cmd = if delivery.no_ack {
        QueueCmd::Undelivered {
            tracked: smallvec::SmallVec::new(),
            untracked: delivery.messages.into_vec(),
        }
    } else {
        QueueCmd::Undelivered {
            tracked: delivery.messages.iter().map(|m| m.id).collect(),
            untracked: Vec::new(),
        }
    };
    delivery.queue.send_soon(cmd);
}

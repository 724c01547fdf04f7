//! A channel's state and the handlers for the methods it receives, one per method and
//! named after it (`queue_declare`, `basic_publish`...).

mod ack;
mod basic;
mod confirm;
mod declare;
mod expiration;
mod publish;
mod reply_to;
mod unacked;

use foldhash::{HashMap, HashMapExt};
use std::sync::Arc;

use bytes::Bytes;
use warren_codec::content::ContentAssembly;
use warren_codec::method::{BasicPublish, Method, MethodId};
use warren_codec::spec::{
    AMQPClass, access, basic as b, channel as c, confirm as cf, exchange as x, queue as q, tx,
};

use crate::connection::Session;
use crate::credit::Credit;
use crate::error::{AmqpResult, command_invalid, no_previous_queue, not_implemented};
use crate::queue::{QueueCmd, QueueRef};
use confirm::Confirms;
use publish::Transaction;
use unacked::Unacked;

/// The method a completed message is reported against in exceptions.
const PUBLISH: MethodId = MethodId::new(60, 40);

/// Open, or closed by us and waiting for the client's `close-ok`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChannelState {
    Open,
    Closing,
}

/// A consumer as its channel sees it.
#[derive(Debug)]
struct ChannelConsumer {
    id: u64,
    queue: QueueRef,
    /// Per-consumer prefetch credit (acking consumers only).
    prefetch: Option<Arc<Credit>>,
}

/// One channel of a connection.
#[derive(Debug)]
pub(crate) struct Channel {
    id: u16,
    state: ChannelState,
    content: ContentAssembly<BasicPublish>,
    next_delivery_tag: u64,
    unacked: Unacked,
    consumers: HashMap<Arc<str>, ChannelConsumer>,
    /// `basic.qos` prefetch for consumers created from now on (global=false).
    prefetch_count: u16,
    /// `basic.qos` prefetch shared by all the channel's acking consumers (global=true).
    channel_prefetch: Arc<Credit>,
    confirms: Option<Confirms>,
    tx: Option<Transaction>,
    /// The queue `""` stands for in later methods (the spec's "current queue").
    last_queue: Option<Arc<str>>,
    /// The direct reply-to consumer, if the channel has one.
    reply_consumer: Option<reply_to::ReplyConsumer>,
}

impl Channel {
    pub(crate) fn new(id: u16) -> Self {
        Self {
            id,
            state: ChannelState::Open,
            content: ContentAssembly::default(),
            next_delivery_tag: 1,
            unacked: Unacked::default(),
            consumers: HashMap::new(),
            prefetch_count: 0,
            channel_prefetch: Credit::new(0),
            confirms: None,
            tx: None,
            last_queue: None,
            reply_consumer: None,
        }
    }

    pub(crate) fn state(&self) -> ChannelState {
        self.state
    }

    pub(crate) fn set_closing(&mut self) {
        self.state = ChannelState::Closing;
    }

    /// A method may arrive only between messages.
    pub(crate) fn check_method_allowed(&self) -> AmqpResult {
        Ok(self.content.check_method_allowed()?)
    }

    /// Dispatch one method to its handler.
    pub(crate) async fn on_method(&mut self, s: &mut Session, method: Method) -> AmqpResult {
        let id = method.id();
        let result = match method {
            Method::BasicPublish(m) => self.basic_publish(m),
            Method::BasicAck(m) => self.basic_ack(m).await,
            Method::BasicNack(m) => self.basic_nack(m).await,
            Method::BasicReject(m) => self.basic_reject(m).await,
            Method::Other(AMQPClass::Basic(m)) => match m {
                b::AMQPMethod::Qos(m) => self.basic_qos(s, &m),
                b::AMQPMethod::Consume(m) => self.basic_consume(s, m).await,
                b::AMQPMethod::Cancel(m) => self.basic_cancel(s, &m).await,
                b::AMQPMethod::Get(m) => self.basic_get(s, &m).await,
                b::AMQPMethod::Recover(m) => self.basic_recover(s, m.requeue, true).await,
                b::AMQPMethod::RecoverAsync(m) => self.basic_recover(s, m.requeue, false).await,
                _ => Err(command_invalid("unimplemented method")),
            },
            Method::Other(AMQPClass::Exchange(m)) => match m {
                x::AMQPMethod::Declare(m) => self.exchange_declare(s, &m).await,
                x::AMQPMethod::Delete(m) => self.exchange_delete(s, &m).await,
                x::AMQPMethod::Bind(m) => self.exchange_bind(s, m).await,
                x::AMQPMethod::Unbind(m) => self.exchange_unbind(s, &m).await,
                _ => Err(command_invalid("unimplemented method")),
            },
            Method::Other(AMQPClass::Queue(m)) => match m {
                q::AMQPMethod::Declare(m) => self.queue_declare(s, &m).await,
                q::AMQPMethod::Bind(m) => self.queue_bind(s, m).await,
                q::AMQPMethod::Unbind(m) => self.queue_unbind(s, &m).await,
                q::AMQPMethod::Purge(m) => self.queue_purge(s, &m).await,
                q::AMQPMethod::Delete(m) => self.queue_delete(s, &m).await,
                _ => Err(command_invalid("unimplemented method")),
            },
            Method::Other(AMQPClass::Channel(c::AMQPMethod::Flow(m))) => {
                self.channel_flow(s, m.active)
            }
            Method::Other(AMQPClass::Confirm(cf::AMQPMethod::Select(m))) => {
                self.confirm_select(s, m.nowait)
            }
            Method::Other(AMQPClass::Tx(m)) => match m {
                tx::AMQPMethod::Select(_) => self.tx_select(s),
                tx::AMQPMethod::Commit(_) => self.tx_commit(s).await,
                tx::AMQPMethod::Rollback(_) => self.tx_rollback(s),
                _ => Err(command_invalid("unimplemented method")),
            },
            Method::Other(AMQPClass::Access(access::AMQPMethod::Request(_))) => {
                s.send_method(
                    self.id,
                    &AMQPClass::Access(access::AMQPMethod::RequestOk(access::RequestOk {})),
                );
                Ok(())
            }
            // Replies only a server sends, and connection methods off channel 0.
            Method::Other(_) => Err(command_invalid("unimplemented method")),
        };
        result.map_err(|e| e.during(id))
    }

    /// A content header frame.
    pub(crate) fn on_header(&mut self, s: &mut Session, payload: Bytes) -> AmqpResult {
        let max = s.broker.config().max_message_size;
        match self
            .content
            .header(payload, warren_codec::BASIC_CLASS_ID, max)?
        {
            // An empty body ends the message here; its failures are still basic.publish's.
            Some(content) => self
                .publish_content(s, content)
                .map_err(|e| e.during(PUBLISH)),
            None => Ok(()),
        }
    }

    /// A content body frame.
    pub(crate) fn on_body(&mut self, s: &mut Session, payload: Bytes) -> AmqpResult {
        match self.content.body(payload)? {
            Some(content) => self
                .publish_content(s, content)
                .map_err(|e| e.during(PUBLISH)),
            None => Ok(()),
        }
    }

    /// `channel.flow`: RabbitMQ refuses to be paused with 540, and so do we.
    fn channel_flow(&mut self, s: &mut Session, active: bool) -> AmqpResult {
        if !active {
            return Err(not_implemented("active=false"));
        }
        s.send_method(
            self.id,
            &AMQPClass::Channel(c::AMQPMethod::FlowOk(c::FlowOk { active })),
        );
        Ok(())
    }

    /// The queue a method names; `""` is the last queue declared on this channel.
    fn resolve_queue(&self, name: &str) -> AmqpResult<Arc<str>> {
        if name.is_empty() {
            self.last_queue.clone().ok_or_else(no_previous_queue)
        } else {
            Ok(Arc::from(name))
        }
    }

    /// The earliest time an outstanding delivery must be acknowledged by.
    pub(crate) fn ack_deadline(&self) -> Option<tokio::time::Instant> {
        self.unacked.earliest_deadline()
    }

    /// The consumer timeout of the oldest delivery past its deadline, if any.
    pub(crate) fn timed_out(&self, now: tokio::time::Instant) -> Option<std::time::Duration> {
        self.unacked.timed_out(now)
    }

    /// Release everything the channel holds: consumers are cancelled and unacknowledged
    /// messages go back to their queues. Used when the channel or its connection closes.
    pub(crate) fn teardown(&mut self, s: &Session) {
        if let Some(reply) = self.reply_consumer.take() {
            s.broker.unregister_reply_consumer(&reply.token);
        }
        for (_, consumer) in self.consumers.drain() {
            consumer.queue.send_soon(QueueCmd::Cancel {
                consumer_id: consumer.id,
                reply: None,
            });
        }
        let pending = self.unacked.take_all();
        for (queue, cmd) in self.settle_commands(pending, ack::Settle::Requeue) {
            queue.send_soon(cmd);
        }
        self.tx = None;
        self.content = ContentAssembly::default();
    }
}

pub(crate) use reply_to::REPLY_TO;

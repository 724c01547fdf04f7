//! Direct reply-to (`amq.rabbitmq.reply-to`): an RPC client consumes from the pseudo-queue
//! with no-ack, publishes requests whose `reply_to` is the pseudo-queue's name, and gets
//! the replies delivered straight to its consumer, with no queue in between. The broker
//! rewrites `reply_to` to `amq.rabbitmq.reply-to.<token>`; a reply published to the
//! default exchange with that routing key finds the consumer by its token.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use warren_codec::encode::encode_basic_deliver;
use warren_codec::properties::{decode_properties, encode_properties};
use warren_codec::spec::{AMQPClass, basic};

use super::Channel;
use crate::broker::ReplyTarget;
use crate::connection::Session;
use crate::error::{AmqpResult, precondition};

/// The pseudo-queue's name.
pub(crate) const REPLY_TO: &str = "amq.rabbitmq.reply-to";
/// The prefix of the routing keys replies are published with.
pub(crate) const REPLY_TO_PREFIX: &[u8] = b"amq.rabbitmq.reply-to.";

/// A channel's direct reply-to consumer.
#[derive(Debug)]
pub(super) struct ReplyConsumer {
    pub tag: Arc<str>,
    pub token: String,
}

impl Channel {
    /// `basic.consume` on the pseudo-queue.
    pub(super) fn consume_replies(
        &mut self,
        s: &mut Session,
        tag: Arc<str>,
        no_ack: bool,
        nowait: bool,
    ) -> AmqpResult {
        if !no_ack {
            return Err(precondition("reply consumer cannot acknowledge"));
        }
        if self.reply_consumer.is_some() {
            return Err(precondition("reply consumer already set"));
        }
        let bytes: [u8; 16] = rand::random();
        let token = STANDARD.encode(bytes);
        s.broker.register_reply_consumer(
            token.clone(),
            ReplyTarget {
                tx: s.handle.tx.clone(),
                channel: self.id,
                consumer_tag: tag.clone(),
            },
        );
        self.reply_consumer = Some(ReplyConsumer {
            tag: tag.clone(),
            token,
        });
        if !nowait {
            s.send_method(
                self.id,
                &AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(basic::ConsumeOk {
                    consumer_tag: tag.as_ref().into(),
                })),
            );
        }
        Ok(())
    }

    /// Stop the reply consumer if `tag` is it. True when it was.
    pub(super) fn cancel_replies(&mut self, s: &Session, tag: &str) -> bool {
        match &self.reply_consumer {
            Some(r) if &*r.tag == tag => {
                s.broker.unregister_reply_consumer(&r.token);
                self.reply_consumer = None;
                true
            }
            _ => false,
        }
    }

    /// A request's `reply_to` naming the pseudo-queue becomes this channel's reply
    /// address; a channel without a reply consumer may not ask for replies.
    pub(super) fn rewrite_reply_to(&self, properties: &Bytes) -> AmqpResult<Bytes> {
        let Some(reply) = &self.reply_consumer else {
            return Err(precondition("fast reply consumer does not exist"));
        };
        let props = decode_properties(properties)?;
        let address = format!("{REPLY_TO}.{}", reply.token);
        Ok(Bytes::from(encode_properties(
            &props.with_reply_to(address.as_str().into()),
        )?))
    }

    /// Encode a reply for this channel's reply consumer (no-ack: nothing to track).
    pub(crate) fn deliver_reply(
        &mut self,
        s: &mut Session,
        consumer_tag: &str,
        message: &warren_store::Message,
    ) {
        if self
            .reply_consumer
            .as_ref()
            .is_none_or(|r| &*r.tag != consumer_tag)
        {
            return;
        }
        let tag = self.next_tag();
        let _ = encode_basic_deliver(
            &mut s.out,
            self.id,
            consumer_tag.as_bytes(),
            tag,
            false,
            &message.exchange,
            &message.routing_key,
        );
        s.send_content(self.id, &message.properties, &message.body);
    }
}

/// The reply consumer a routing key addresses, if it is a live reply address.
pub(crate) fn reply_target(s: &Session, exchange: &str, routing_key: &[u8]) -> Option<ReplyTarget> {
    if !exchange.is_empty() {
        return None;
    }
    let token = routing_key.strip_prefix(REPLY_TO_PREFIX)?;
    s.broker.reply_consumer(std::str::from_utf8(token).ok()?)
}

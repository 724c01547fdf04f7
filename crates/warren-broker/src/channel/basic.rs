//! Consumers and deliveries: `basic.qos`, `basic.consume`, `basic.cancel`, `basic.get`,
//! and encoding what queues deliver.

use std::sync::Arc;

use tokio::sync::oneshot;
use warren_codec::encode::{encode_basic_deliver, encode_basic_get_ok};
use warren_codec::spec::{AMQPClass, basic};

use super::unacked::Pending;
use super::{Channel, ChannelConsumer};
use crate::connection::{Delivery, Session, bounce};
use crate::credit::Credit;
use crate::error::{AmqpResult, not_allowed, queue_not_found};
use crate::names;
use crate::queue::{Consumer, QueueCmd};

impl Channel {
    /// `basic.qos`. `global=false` sets the prefetch of consumers created afterwards;
    /// `global=true` the limit shared by all the channel's consumers (RabbitMQ's
    /// semantics). `prefetch_size` is not used.
    pub(super) fn basic_qos(&mut self, s: &mut Session, m: &basic::Qos) -> AmqpResult {
        if m.global {
            self.channel_prefetch.set_limit(m.prefetch_count.into());
        } else {
            self.prefetch_count = m.prefetch_count;
        }
        s.send_method(
            self.id,
            &AMQPClass::Basic(basic::AMQPMethod::QosOk(basic::QosOk {})),
        );
        Ok(())
    }

    pub(super) async fn basic_consume(&mut self, s: &mut Session, m: basic::Consume) -> AmqpResult {
        let queue_name = self.resolve_queue(m.queue.as_str())?;
        let tag: Arc<str> = if m.consumer_tag.as_str().is_empty() {
            Arc::from(names::consumer_tag())
        } else {
            Arc::from(m.consumer_tag.as_str())
        };
        // Only queue consumers count: RabbitMQ keeps the direct reply-to consumer
        // apart, so its tag may be taken again (and a second one is refused below).
        if self.consumers.contains_key(&tag) {
            return Err(not_allowed(format!(
                "attempt to reuse consumer tag '{tag}'"
            )));
        }
        if &*queue_name == super::REPLY_TO {
            return self.consume_replies(s, tag, m.no_ack, m.nowait);
        }
        // The queue first: RabbitMQ checks the consumer's arguments once it has it.
        let queue = s.vhost.queue(&queue_name, s.id)?;
        let priority =
            crate::queue_args::consumer_priority(&queue_name, s.vhost.name(), &m.arguments)?;
        let id = s.broker.next_consumer_id();
        let prefetch = (!m.no_ack).then(|| Credit::new(self.prefetch_count.into()));
        let consumer = Consumer {
            id,
            tag: tag.clone(),
            channel: self.id,
            conn: s.handle.clone(),
            no_ack: m.no_ack,
            exclusive: m.exclusive,
            priority,
            prefetch: prefetch.clone(),
            channel_prefetch: (!m.no_ack).then(|| self.channel_prefetch.clone()),
        };
        let (reply, answer) = oneshot::channel();
        let gone = || queue_not_found(&queue_name, s.vhost.name());
        if !queue.send(QueueCmd::Consume { consumer, reply }).await {
            return Err(gone());
        }
        answer.await.map_err(|_| gone())??;
        self.consumers.insert(
            tag.clone(),
            ChannelConsumer {
                id,
                queue,
                prefetch,
            },
        );
        if !m.nowait {
            s.send_method(
                self.id,
                &AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(basic::ConsumeOk {
                    consumer_tag: tag.as_ref().into(),
                })),
            );
        }
        Ok(())
    }

    /// `basic.cancel`. Deliveries already on their way are returned to the queue, so
    /// nothing reaches the client after `cancel-ok`. Unknown tags are fine, as in RabbitMQ.
    pub(super) async fn basic_cancel(&mut self, s: &mut Session, m: &basic::Cancel) -> AmqpResult {
        if self.cancel_replies(s, m.consumer_tag.as_str()) {
            // A reply consumer has no queue to tell.
        } else if let Some(consumer) = self.consumers.remove(m.consumer_tag.as_str()) {
            let (reply, done) = oneshot::channel();
            if consumer
                .queue
                .send(QueueCmd::Cancel {
                    consumer_id: consumer.id,
                    reply: Some(reply),
                })
                .await
            {
                let _ = done.await;
            }
        }
        if !m.nowait {
            s.send_method(
                self.id,
                &AMQPClass::Basic(basic::AMQPMethod::CancelOk(basic::CancelOk {
                    consumer_tag: m.consumer_tag.clone(),
                })),
            );
        }
        Ok(())
    }

    pub(super) async fn basic_get(&mut self, s: &mut Session, m: &basic::Get) -> AmqpResult {
        let queue_name = self.resolve_queue(m.queue.as_str())?;
        let queue = s.vhost.queue(&queue_name, s.id)?;
        let (reply, answer) = oneshot::channel();
        let got = if queue
            .send(QueueCmd::Get {
                track: !m.no_ack,
                reply,
            })
            .await
        {
            answer.await.ok().flatten()
        } else {
            None
        };
        let Some(got) = got else {
            s.send_method(
                self.id,
                &AMQPClass::Basic(basic::AMQPMethod::GetEmpty(basic::GetEmpty {})),
            );
            return Ok(());
        };
        let tag = self.next_tag();
        let message = &got.message.message;
        let _ = encode_basic_get_ok(
            &mut s.out,
            self.id,
            tag,
            got.message.redelivered,
            &message.exchange,
            &message.routing_key,
            got.remaining,
        );
        s.send_content(self.id, &message.properties, &message.body);
        if !m.no_ack {
            let deadline = self.ack_deadline_for(s, &queue);
            self.unacked.push(Pending {
                tag,
                queue,
                id: got.message.id,
                credit: None,
                deadline,
            });
        }
        Ok(())
    }

    /// When a delivery from `queue` must be acknowledged by: the queue's
    /// `x-consumer-timeout`, else the broker's consumer timeout. Records the earliest
    /// deadline with the connection, which checks it.
    fn ack_deadline_for(
        &self,
        s: &mut Session,
        queue: &crate::queue::QueueRef,
    ) -> Option<(tokio::time::Instant, std::time::Duration)> {
        let timeout = queue
            .spec
            .config
            .consumer_timeout
            .map(std::time::Duration::from_millis)
            .or(s.broker.config().consumer_timeout)?;
        let at = tokio::time::Instant::now() + timeout;
        s.ack_deadline = Some(s.ack_deadline.map_or(at, |d| d.min(at)));
        Some((at, timeout))
    }

    pub(super) fn next_tag(&mut self) -> u64 {
        let tag = self.next_delivery_tag;
        self.next_delivery_tag += 1;
        tag
    }

    /// Encode a delivery from a queue, or send it back if its consumer is gone.
    pub(crate) fn deliver(&mut self, s: &mut Session, delivery: Delivery) {
        let credit = match self.consumers.get(&*delivery.consumer_tag) {
            Some(c) if c.id == delivery.consumer_id => c.prefetch.clone(),
            _ => return bounce(delivery),
        };
        let deadline = if delivery.no_ack {
            None
        } else {
            self.ack_deadline_for(s, &delivery.queue)
        };
        for queued in &delivery.messages {
            let tag = self.next_tag();
            let message = &queued.message;
            let _ = encode_basic_deliver(
                &mut s.out,
                self.id,
                delivery.consumer_tag.as_bytes(),
                tag,
                queued.redelivered,
                &message.exchange,
                &message.routing_key,
            );
            s.send_content(self.id, &message.properties, &message.body);
            if !delivery.no_ack {
                self.unacked.push(Pending {
                    tag,
                    queue: delivery.queue.clone(),
                    id: queued.id,
                    credit: credit.clone(),
                    deadline,
                });
            }
        }
    }

    /// The queue of a consumer was deleted: forget the consumer and, if the client asked
    /// for it (`consumer_cancel_notify`), tell it with a server-sent `basic.cancel`.
    pub(crate) fn consumer_cancelled(&mut self, s: &mut Session, consumer_id: u64, tag: &Arc<str>) {
        if self.consumers.get(tag).is_none_or(|c| c.id != consumer_id) {
            return;
        }
        self.consumers.remove(tag);
        if s.consumer_cancel_notify {
            s.send_method(
                self.id,
                &AMQPClass::Basic(basic::AMQPMethod::Cancel(basic::Cancel {
                    consumer_tag: tag.as_ref().into(),
                    nowait: true,
                })),
            );
        }
    }
}

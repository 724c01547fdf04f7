//! The queue task: the single owner of one queue's contents and consumers.

use std::sync::Weak;

use tokio::sync::mpsc;
use tracing::{debug, trace};
use warren_codec::ReplyCode;
use warren_store::{MessageQueue, QueuedMessage};

use super::{Consumer, GetReply, QueueCmd, QueueRef, QueueSpec, consumers::Consumers};
use crate::connection::{Delivery, Outbound};
use crate::error::AmqpException;
use crate::vhost::VHost;

/// Commands handled before the task delivers again, so a burst of publishes is delivered
/// in batches rather than one message per wake-up.
const COMMAND_BATCH: usize = 256;

/// Create a queue and start its task.
pub(crate) fn spawn_queue(spec: QueueSpec, vhost: Weak<VHost>, capacity: usize) -> QueueRef {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let queue = QueueRef::new(spec, tx);
    let task = QueueTask {
        queue: queue.clone(),
        vhost,
        store: MessageQueue::new(),
        consumers: Consumers::default(),
        had_consumer: false,
    };
    tokio::spawn(task.run(rx));
    queue
}

#[derive(Debug, PartialEq, Eq)]
enum Next {
    Continue,
    Stop,
}

struct QueueTask {
    queue: QueueRef,
    vhost: Weak<VHost>,
    store: MessageQueue,
    consumers: Consumers,
    /// Auto-delete applies only once a consumer has come and gone.
    had_consumer: bool,
}

impl QueueTask {
    async fn run(mut self, mut rx: mpsc::Receiver<QueueCmd>) {
        let kick = self.queue.kick.clone();
        'run: loop {
            tokio::select! {
                cmd = rx.recv() => {
                    let Some(cmd) = cmd else { break };
                    if self.handle(cmd) == Next::Stop {
                        break;
                    }
                }
                () = kick.notified() => {}
            }
            for _ in 0..COMMAND_BATCH {
                let Ok(cmd) = rx.try_recv() else { break };
                if self.handle(cmd) == Next::Stop {
                    break 'run;
                }
            }
            if self.deliver() == Next::Stop {
                break;
            }
        }
        debug!(queue = %self.queue.name(), "queue task ended");
    }

    fn handle(&mut self, cmd: QueueCmd) -> Next {
        match cmd {
            QueueCmd::Publish { message } => {
                self.store.push(message);
            }
            QueueCmd::Consume { consumer, reply } => {
                let result = self.consume(consumer);
                let _ = reply.send(result);
            }
            QueueCmd::Cancel { consumer_id, reply } => {
                self.consumers.remove(consumer_id);
                if let Some(reply) = reply {
                    let _ = reply.send(());
                }
                return self.maybe_auto_delete();
            }
            QueueCmd::Get { track, reply } => self.get(track, reply),
            QueueCmd::Ack { ids } | QueueCmd::Discard { ids } => {
                for id in ids {
                    self.store.ack(id);
                }
            }
            QueueCmd::Requeue { ids } => {
                self.store.requeue(ids);
            }
            QueueCmd::Undelivered { tracked, untracked } => {
                self.store.return_undelivered(tracked);
                for message in untracked {
                    self.store.put_back(message);
                }
            }
            QueueCmd::Stat { reply } => {
                let ready = u32::try_from(self.store.ready_len()).unwrap_or(u32::MAX);
                let consumers = u32::try_from(self.consumers.len()).unwrap_or(u32::MAX);
                let _ = reply.send((ready, consumers));
            }
            QueueCmd::Purge { reply } => {
                let purged = self.store.purge();
                let _ = reply.send(u32::try_from(purged).unwrap_or(u32::MAX));
            }
            QueueCmd::Delete {
                if_unused,
                if_empty,
                reply,
            } => return self.delete(if_unused, if_empty, reply),
        }
        Next::Continue
    }

    fn consume(&mut self, consumer: Consumer) -> Result<(), AmqpException> {
        if self.consumers.has_exclusive() || (consumer.exclusive && !self.consumers.is_empty()) {
            return Err(AmqpException::channel(
                ReplyCode::AccessRefused,
                format!(
                    "queue '{}' in vhost '{}' in exclusive use",
                    self.queue.name(),
                    self.vhost_name()
                ),
            ));
        }
        self.consumers.add(consumer);
        self.had_consumer = true;
        Ok(())
    }

    fn get(&mut self, track: bool, reply: tokio::sync::oneshot::Sender<Option<GetReply>>) {
        let got = self.store.pop(track).map(|message| GetReply {
            message,
            remaining: u32::try_from(self.store.ready_len()).unwrap_or(u32::MAX),
        });
        if let Err(Some(unsent)) = reply.send(got) {
            self.put_back(unsent.message, track);
        }
    }

    fn put_back(&mut self, message: QueuedMessage, tracked: bool) {
        if tracked {
            self.store.return_undelivered([message.id]);
        } else {
            self.store.put_back(message);
        }
    }

    /// Hand ready messages to consumers with credit, round-robin.
    fn deliver(&mut self) -> Next {
        while !self.store.is_empty() {
            let Some(at) = self.consumers.next_with_credit(&self.queue.kick) else {
                break;
            };
            let consumer = self.consumers.get(at);
            let Some(message) = self.store.pop(!consumer.no_ack) else {
                consumer.untake();
                break;
            };
            let delivery = Delivery {
                channel: consumer.channel,
                consumer_id: consumer.id,
                consumer_tag: consumer.tag.clone(),
                queue: self.queue.clone(),
                message,
                no_ack: consumer.no_ack,
            };
            trace!(queue = %self.queue.name(), tag = %consumer.tag, "deliver");
            if let Err(mpsc::error::SendError(Outbound::Deliver(bounced))) =
                consumer.conn.tx.send(Outbound::Deliver(delivery))
            {
                // The consumer's connection has gone: take the message back, drop the consumer.
                consumer.untake();
                let tracked = !bounced.no_ack;
                self.put_back(bounced.message, tracked);
                self.consumers.remove_at(at);
                if self.maybe_auto_delete() == Next::Stop {
                    return Next::Stop;
                }
            }
        }
        Next::Continue
    }

    fn maybe_auto_delete(&mut self) -> Next {
        if self.queue.spec.auto_delete && self.had_consumer && self.consumers.is_empty() {
            debug!(queue = %self.queue.name(), "auto-delete: last consumer gone");
            self.finish();
            return Next::Stop;
        }
        Next::Continue
    }

    fn delete(
        &mut self,
        if_unused: bool,
        if_empty: bool,
        reply: Option<tokio::sync::oneshot::Sender<Result<u32, AmqpException>>>,
    ) -> Next {
        let refusal = if if_unused && !self.consumers.is_empty() {
            Some("in use")
        } else if if_empty && !self.store.is_empty() {
            Some("not empty")
        } else {
            None
        };
        if let Some(why) = refusal {
            if let Some(reply) = reply {
                let text = format!(
                    "queue '{}' in vhost '{}' {why}",
                    self.queue.name(),
                    self.vhost_name()
                );
                let _ = reply.send(Err(AmqpException::channel(
                    ReplyCode::PreconditionFailed,
                    text,
                )));
            }
            return Next::Continue;
        }
        let count = u32::try_from(self.store.ready_len()).unwrap_or(u32::MAX);
        self.finish();
        if let Some(reply) = reply {
            let _ = reply.send(Ok(count));
        }
        Next::Stop
    }

    /// Leave the routing table and tell every consumer the queue is gone.
    fn finish(&mut self) {
        if let Some(vhost) = self.vhost.upgrade() {
            vhost.forget_queue(&self.queue);
        }
        for consumer in self.consumers.drain() {
            let _ = consumer.conn.tx.send(Outbound::ConsumerCancelled {
                channel: consumer.channel,
                consumer_id: consumer.id,
                consumer_tag: consumer.tag,
            });
        }
        self.store.purge();
    }

    fn vhost_name(&self) -> String {
        self.vhost
            .upgrade()
            .map(|v| v.name().to_string())
            .unwrap_or_default()
    }
}

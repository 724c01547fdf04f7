//! `exchange.*` and `queue.*`: declarations, bindings, purge and delete.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::oneshot;
use warren_codec::spec::{AMQPClass, exchange, queue};
use warren_router::ExchangeFlags;

use super::Channel;
use crate::connection::Session;
use crate::error::{AmqpResult, queue_not_found};
use crate::names;
use crate::queue::QueueCmd;
use crate::vhost::QueueDeclare;

impl Channel {
    pub(super) async fn exchange_declare(
        &mut self,
        s: &mut Session,
        m: &exchange::Declare,
    ) -> AmqpResult {
        let flags = ExchangeFlags {
            durable: m.durable,
            auto_delete: m.auto_delete,
            internal: m.internal,
        };
        s.vhost.exchange_declare(
            m.exchange.as_str(),
            m.kind.as_str(),
            m.passive,
            flags,
            &m.arguments,
        )?;
        s.vhost.persist_definitions().await?;
        if !m.nowait {
            s.send_method(
                self.id,
                &AMQPClass::Exchange(exchange::AMQPMethod::DeclareOk(exchange::DeclareOk {})),
            );
        }
        Ok(())
    }

    pub(super) async fn exchange_delete(
        &mut self,
        s: &mut Session,
        m: &exchange::Delete,
    ) -> AmqpResult {
        s.vhost.exchange_delete(m.exchange.as_str(), m.if_unused)?;
        s.vhost.persist_definitions().await?;
        if !m.nowait {
            s.send_method(
                self.id,
                &AMQPClass::Exchange(exchange::AMQPMethod::DeleteOk(exchange::DeleteOk {})),
            );
        }
        Ok(())
    }

    pub(super) async fn exchange_bind(&mut self, s: &mut Session, m: exchange::Bind) -> AmqpResult {
        let key = Bytes::copy_from_slice(m.routing_key.as_str().as_bytes());
        s.vhost
            .exchange_bind(m.destination.as_str(), m.source.as_str(), key, m.arguments)?;
        s.vhost.persist_definitions().await?;
        if !m.nowait {
            s.send_method(
                self.id,
                &AMQPClass::Exchange(exchange::AMQPMethod::BindOk(exchange::BindOk {})),
            );
        }
        Ok(())
    }

    pub(super) async fn exchange_unbind(
        &mut self,
        s: &mut Session,
        m: &exchange::Unbind,
    ) -> AmqpResult {
        let key = Bytes::copy_from_slice(m.routing_key.as_str().as_bytes());
        s.vhost.exchange_unbind(
            m.destination.as_str(),
            m.source.as_str(),
            &key,
            &m.arguments,
        )?;
        s.vhost.persist_definitions().await?;
        if !m.nowait {
            s.send_method(
                self.id,
                &AMQPClass::Exchange(exchange::AMQPMethod::UnbindOk(exchange::UnbindOk {})),
            );
        }
        Ok(())
    }

    pub(super) async fn queue_declare(
        &mut self,
        s: &mut Session,
        m: &queue::Declare,
    ) -> AmqpResult {
        if m.queue.as_str() == super::REPLY_TO {
            // The direct reply-to pseudo-queue always "exists", as in RabbitMQ, and
            // becomes the queue an empty name stands for.
            self.last_queue = Some(Arc::from(super::REPLY_TO));
            if !m.nowait {
                s.send_method(
                    self.id,
                    &AMQPClass::Queue(queue::AMQPMethod::DeclareOk(queue::DeclareOk {
                        queue: super::REPLY_TO.into(),
                        message_count: 0,
                        consumer_count: 1,
                    })),
                );
            }
            return Ok(());
        }
        let generated;
        let name = if m.queue.as_str().is_empty() && !m.passive {
            generated = names::queue_name();
            generated.as_str()
        } else {
            m.queue.as_str()
        };
        let request = QueueDeclare {
            name,
            server_named: name.len() != m.queue.as_str().len(),
            passive: m.passive,
            durable: m.durable,
            exclusive: m.exclusive,
            auto_delete: m.auto_delete,
            arguments: &m.arguments,
        };
        let (queue, created) = s.vhost.queue_declare(&request, s.id)?;
        s.vhost.persist_definitions().await?;
        if created && m.exclusive {
            s.exclusive_queues.push(queue.clone());
        }
        self.last_queue = Some(queue.name().clone());
        if m.nowait {
            return Ok(());
        }
        let (messages, consumers) = if created {
            (0, 0)
        } else {
            // Ask the queue itself, so publishes this connection sent before are counted.
            let (reply, answer) = oneshot::channel();
            let gone = || queue_not_found(name, s.vhost.name());
            if !queue.send(QueueCmd::Stat { reply }).await {
                return Err(gone());
            }
            answer.await.map_err(|_| gone())?
        };
        s.send_method(
            self.id,
            &AMQPClass::Queue(queue::AMQPMethod::DeclareOk(queue::DeclareOk {
                queue: queue.name().as_ref().into(),
                message_count: messages,
                consumer_count: consumers,
            })),
        );
        Ok(())
    }

    pub(super) async fn queue_bind(&mut self, s: &mut Session, m: queue::Bind) -> AmqpResult {
        let queue = self.resolve_queue(m.queue.as_str())?;
        // As in RabbitMQ: with the queue name left empty, an empty key is the queue's name.
        let key = if m.queue.as_str().is_empty() && m.routing_key.as_str().is_empty() {
            Bytes::copy_from_slice(queue.as_bytes())
        } else {
            Bytes::copy_from_slice(m.routing_key.as_str().as_bytes())
        };
        s.vhost
            .queue_bind(&queue, m.exchange.as_str(), key, m.arguments, s.id)?;
        s.vhost.persist_definitions().await?;
        if !m.nowait {
            s.send_method(
                self.id,
                &AMQPClass::Queue(queue::AMQPMethod::BindOk(queue::BindOk {})),
            );
        }
        Ok(())
    }

    pub(super) async fn queue_unbind(&mut self, s: &mut Session, m: &queue::Unbind) -> AmqpResult {
        let queue = self.resolve_queue(m.queue.as_str())?;
        let key = if m.queue.as_str().is_empty() && m.routing_key.as_str().is_empty() {
            Bytes::copy_from_slice(queue.as_bytes())
        } else {
            Bytes::copy_from_slice(m.routing_key.as_str().as_bytes())
        };
        s.vhost
            .queue_unbind(&queue, m.exchange.as_str(), &key, &m.arguments)?;
        s.vhost.persist_definitions().await?;
        s.send_method(
            self.id,
            &AMQPClass::Queue(queue::AMQPMethod::UnbindOk(queue::UnbindOk {})),
        );
        Ok(())
    }

    pub(super) async fn queue_purge(&mut self, s: &mut Session, m: &queue::Purge) -> AmqpResult {
        let name = self.resolve_queue(m.queue.as_str())?;
        let queue = s.vhost.queue(&name, s.id)?;
        let (reply, answer) = oneshot::channel();
        let purged = if queue.send(QueueCmd::Purge { reply }).await {
            answer.await.unwrap_or(0)
        } else {
            0
        };
        if !m.nowait {
            s.send_method(
                self.id,
                &AMQPClass::Queue(queue::AMQPMethod::PurgeOk(queue::PurgeOk {
                    message_count: purged,
                })),
            );
        }
        Ok(())
    }

    pub(super) async fn queue_delete(&mut self, s: &mut Session, m: &queue::Delete) -> AmqpResult {
        let name: Arc<str> = self.resolve_queue(m.queue.as_str())?;
        let deleted = match s.vhost.queue(&name, s.id) {
            // Deleting what does not exist succeeds, as in RabbitMQ 3.10.
            Err(e) if e.code == warren_codec::ReplyCode::NotFound => 0,
            Err(e) => return Err(e),
            Ok(queue) => {
                let (reply, answer) = oneshot::channel();
                let cmd = QueueCmd::Delete {
                    if_unused: m.if_unused,
                    if_empty: m.if_empty,
                    reply: Some(reply),
                };
                if queue.send(cmd).await {
                    answer.await.unwrap_or(Ok(0))?
                } else {
                    0
                }
            }
        };
        s.vhost.persist_definitions().await?;
        if !m.nowait {
            s.send_method(
                self.id,
                &AMQPClass::Queue(queue::AMQPMethod::DeleteOk(queue::DeleteOk {
                    message_count: deleted,
                })),
            );
        }
        Ok(())
    }
}

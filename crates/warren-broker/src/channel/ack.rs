//! Settling deliveries: `basic.ack`, `basic.nack`, `basic.reject`, `basic.recover`.

use smallvec::SmallVec;
use warren_codec::method::{BasicAck, BasicNack, BasicReject};
use warren_codec::spec::{AMQPClass, basic};

use super::Channel;
use super::unacked::Pending;
use crate::connection::Session;
use crate::error::{AmqpResult, not_implemented, unknown_delivery_tag};
use crate::queue::{Ids, QueueCmd, QueueRef};

/// What becomes of settled deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settle {
    /// Acknowledged: gone from the queue.
    Ack,
    /// Back to the queue, marked redelivered.
    Requeue,
    /// Rejected without requeue: dropped.
    Discard,
}

impl Channel {
    pub(super) async fn basic_ack(&mut self, m: BasicAck) -> AmqpResult {
        let pending = self
            .unacked
            .take(m.delivery_tag, m.multiple)
            .ok_or_else(|| unknown_delivery_tag(m.delivery_tag))?;
        self.settle_or_defer(pending, Settle::Ack).await;
        Ok(())
    }

    pub(super) async fn basic_nack(&mut self, m: BasicNack) -> AmqpResult {
        let pending = self
            .unacked
            .take(m.delivery_tag, m.multiple)
            .ok_or_else(|| unknown_delivery_tag(m.delivery_tag))?;
        let how = if m.requeue {
            Settle::Requeue
        } else {
            Settle::Discard
        };
        self.settle_or_defer(pending, how).await;
        Ok(())
    }

    pub(super) async fn basic_reject(&mut self, m: BasicReject) -> AmqpResult {
        let pending = self
            .unacked
            .take(m.delivery_tag, false)
            .ok_or_else(|| unknown_delivery_tag(m.delivery_tag))?;
        let how = if m.requeue {
            Settle::Requeue
        } else {
            Settle::Discard
        };
        self.settle_or_defer(pending, how).await;
        Ok(())
    }

    /// `basic.recover` / `basic.recover-async`: requeue every outstanding delivery.
    /// RabbitMQ implements only `requeue=true` and refuses the rest with 540.
    pub(super) async fn basic_recover(
        &mut self,
        s: &mut Session,
        requeue: bool,
        reply: bool,
    ) -> AmqpResult {
        if !requeue {
            return Err(not_implemented("requeue=false"));
        }
        let pending = self.unacked.take_all();
        self.settle(pending, Settle::Requeue).await;
        if reply {
            s.send_method(
                self.id,
                &AMQPClass::Basic(basic::AMQPMethod::RecoverOk(basic::RecoverOk {})),
            );
        }
        Ok(())
    }

    /// Inside a transaction, settlements wait for `tx.commit`.
    async fn settle_or_defer(&mut self, pending: Vec<Pending>, how: Settle) {
        match &mut self.tx {
            Some(tx) => tx.settlements.push((pending, how)),
            None => self.settle(pending, how).await,
        }
    }

    /// Settle now, sending the queue commands in order.
    pub(super) async fn settle(&mut self, pending: Vec<Pending>, how: Settle) {
        for (queue, cmd) in self.settle_commands(pending, how) {
            queue.send(cmd).await;
        }
    }

    /// Return the deliveries' credit and build the commands that tell their queues.
    pub(super) fn settle_commands(
        &mut self,
        pending: Vec<Pending>,
        how: Settle,
    ) -> SmallVec<[(QueueRef, QueueCmd); 2]> {
        let mut groups: SmallVec<[(QueueRef, Ids); 2]> = SmallVec::new();
        let mut channel_credit = 0;
        for p in pending {
            if let Some(credit) = &p.credit {
                credit.release(1);
                channel_credit += 1;
            }
            match groups.iter_mut().find(|(q, _)| *q == p.queue) {
                Some((_, ids)) => ids.push(p.id),
                None => groups.push((p.queue, smallvec::smallvec![p.id])),
            }
        }
        self.channel_prefetch.release(channel_credit);
        groups
            .into_iter()
            .map(|(queue, ids)| {
                let cmd = match how {
                    Settle::Ack => QueueCmd::Ack { ids },
                    Settle::Requeue => QueueCmd::Requeue { ids },
                    Settle::Discard => QueueCmd::Discard { ids },
                };
                (queue, cmd)
            })
            .collect()
    }
}

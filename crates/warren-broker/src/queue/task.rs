//! The queue task: the single owner of one queue's contents and consumers. It enqueues,
//! delivers, expires (on time, not only at the head), enforces length limits,
//! dead-letters, and deletes itself when auto-delete or `x-expires` says so.

use std::sync::Weak;
use std::time::Duration;

use smallvec::SmallVec;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{debug, error, trace, warn};
use warren_codec::ReplyCode;
use warren_codec::table::encode_field_table;
use warren_store::definitions::{QueueDef, mark_deleted};
use warren_store::segment::Location;
use warren_store::{MessageId, MessageQueue, MessageRef, QueuedMessage};

use super::dead_letter::{Reason, dead_letter, is_cycle};
use super::durable::{DurableLog, unix_ms};
use super::inbox::{InboxReceiver, inbox};
use super::{
    ConfirmTicket, Consumer, GetReply, Ids, QueueCmd, QueueRef, QueueSpec, QueueStorage,
    consumers::Consumers,
};
use crate::connection::{Delivery, Outbound};
use crate::error::AmqpException;
use crate::queue_args::{Overflow, QueueConfig};
use crate::vhost::{Targets, VHost};

/// Commands handled before the task delivers again, so a burst of publishes is delivered
/// in batches rather than one message per wake-up. (A command may carry up to 128
/// publishes; the inbox's bound in messages, 512 by default, is what limits a batch.)
const COMMAND_BATCH: usize = 256;

/// Deliveries prepared before they are sent: for a durable queue, their "delivered"
/// records are written in one go before any of them leaves.
const DELIVER_BATCH: usize = 256;

/// A durable queue keeps at most this many ready messages (or body octets) in memory;
/// beyond, new messages wait on disk only, in its backlog.
const HEAD_MESSAGES: usize = 16 * 1024;
const HEAD_BYTES: usize = 16 * 1024 * 1024;

/// Octets of messages read from the backlog at a time, once the in-memory part is
/// below half its limits: ahead of consumers, in sequential reads.
const PAGE_IN_BYTES: usize = 2 * 1024 * 1024;

/// Create a queue and start its task.
pub(crate) fn spawn_queue(spec: QueueSpec, vhost: Weak<VHost>, capacity: usize) -> QueueRef {
    let (tx, rx) = inbox(capacity);
    let config = spec.config.clone();
    let queue = QueueRef::new(spec, tx);
    let now = Instant::now();
    let task = QueueTask {
        queue: queue.clone(),
        vhost,
        store: MessageQueue::with_max_priority(config.max_priority.unwrap_or(0)),
        consumers: Consumers::new(config.single_active_consumer),
        had_consumer: false,
        epoch: now,
        last_used: now,
        config,
        finished: false,
        durable: None,
        broken: false,
        outbox: Vec::new(),
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
    /// Zero of the queue's millisecond clock (tokio's, so tests can pause it).
    epoch: Instant,
    /// When the queue was last used, for `x-expires`.
    last_used: Instant,
    config: QueueConfig,
    /// The queue was deleted (auto-delete, from inside a delivery): the task must end.
    finished: bool,
    /// A durable queue's message log.
    durable: Option<DurableLog>,
    /// A durable queue whose log cannot be opened: it takes no messages.
    broken: bool,
    /// Deliveries being prepared (kept to reuse its allocation).
    outbox: Vec<(usize, QueuedMessage)>,
}

impl QueueTask {
    async fn run(mut self, mut rx: InboxReceiver) {
        if let Some(storage) = self.queue.spec.storage.clone() {
            self.open_log(storage).await;
        }
        let kick = self.queue.kick.clone();
        'run: loop {
            let wake = self.next_wake();
            let durable = self.durable.as_mut();
            tokio::select! {
                cmd = rx.recv() => {
                    let Some(cmd) = cmd else { break };
                    if self.handle(cmd) == Next::Stop || self.finished {
                        break;
                    }
                }
                () = kick.notified() => {}
                () = sleep_until(wake) => {}
                result = sync_done(durable) => {
                    if let Some(log) = self.durable.as_mut() {
                        log.synced(result);
                    }
                }
            }
            for _ in 0..COMMAND_BATCH {
                let Some(cmd) = rx.try_recv() else { break };
                if self.handle(cmd) == Next::Stop || self.finished {
                    break 'run;
                }
            }
            self.expire();
            if self.deliver() == Next::Stop || self.finished {
                break;
            }
            self.enforce_drop_head();
            if self.unused_too_long() {
                debug!(queue = %self.queue.name(), "x-expires: unused, deleting");
                self.finish();
                break;
            }
            if let Some(log) = self.durable.as_mut() {
                log.maybe_sync();
            }
        }
        debug!(queue = %self.queue.name(), "queue task ended");
    }

    /// Open a durable queue's log and take back the messages it holds.
    async fn open_log(&mut self, storage: QueueStorage) {
        let name = self.queue.name().clone();
        let record = QueueDef {
            vhost: self.vhost_name(),
            name: name.to_string(),
            auto_delete: self.queue.spec.auto_delete,
            arguments: encode_field_table(&self.queue.spec.arguments).unwrap_or_default(),
            storage_id: storage.id,
        };
        let dir = storage.dir;
        let opened = tokio::task::spawn_blocking(move || {
            DurableLog::open(&dir, &name, &record).map_err(|e| (e, dir))
        })
        .await;
        match opened {
            Ok(Ok((log, next_id))) => {
                self.store.reserve_ids_below(next_id);
                self.durable = Some(log);
                if !self.pages() {
                    // Priority queues keep everything in memory: read it all now.
                    while self
                        .durable
                        .as_ref()
                        .is_some_and(|l| !l.backlog().is_empty())
                    {
                        self.page_in(usize::MAX);
                    }
                }
            }
            Ok(Err((e, dir))) => {
                error!(queue = %self.queue.name(), dir = %dir.display(), error = %e,
                    "cannot open the message store: the queue refuses messages");
                self.broken = true;
            }
            Err(e) => {
                error!(queue = %self.queue.name(), error = %e, "message store recovery failed");
                self.broken = true;
            }
        }
    }

    /// Does this queue keep a backlog on disk? Durable queues do, except priority
    /// queues (their order is not the disk's order).
    fn pages(&self) -> bool {
        self.durable.is_some() && self.config.max_priority.is_none()
    }

    /// Ready messages, in memory and on disk.
    fn ready_len(&self) -> u64 {
        self.store.ready_len() as u64 + self.durable.as_ref().map_or(0, |l| l.backlog().len())
    }

    /// Their body octets.
    fn ready_bytes(&self) -> u64 {
        self.store.ready_bytes() as u64 + self.durable.as_ref().map_or(0, |l| l.backlog().bytes())
    }

    fn has_backlog(&self) -> bool {
        self.durable
            .as_ref()
            .is_some_and(|l| !l.backlog().is_empty())
    }

    /// Is the in-memory part full, so a new message waits on disk?
    fn head_full(&self) -> bool {
        self.store.ready_len() >= HEAD_MESSAGES || self.store.ready_bytes() >= HEAD_BYTES
    }

    /// Read messages from the backlog when the in-memory part runs low.
    fn fill_head(&mut self) {
        if self.has_backlog()
            && (self.store.ready_len() < HEAD_MESSAGES / 2
                && self.store.ready_bytes() < HEAD_BYTES / 2)
        {
            self.page_in(PAGE_IN_BYTES);
        }
    }

    /// Move about `max_bytes` of messages from the backlog into memory.
    fn page_in(&mut self, max_bytes: usize) {
        let Some(log) = self.durable.as_mut() else {
            return;
        };
        let paged = log.page_in(max_bytes);
        let now = self.now();
        let now_unix = unix_ms();
        for r in paged {
            let expires_at = r
                .stored
                .expires_unix_ms
                .map(|at| now.saturating_add(at.saturating_sub(now_unix)));
            self.store.restore(QueuedMessage {
                id: r.stored.id,
                message: MessageRef::new(r.stored.message),
                redelivered: r.delivered,
                delivery_count: u32::from(r.delivered),
                priority: r.stored.priority,
                expires_at,
                location: Some(r.location),
            });
        }
    }

    /// A message left the queue for good: its record on disk goes too.
    fn forget(&mut self, m: &QueuedMessage) {
        if let (Some(at), Some(log)) = (m.location, self.durable.as_mut()) {
            log.removed(at, m.id, m.message.persistent);
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// When the task must wake by itself: the next message expiry, or `x-expires`.
    fn next_wake(&mut self) -> Option<Instant> {
        let expiry = self
            .store
            .next_expiry()
            .map(|ms| self.epoch + Duration::from_millis(ms));
        let expiry = match (expiry, self.durable.as_ref().and_then(DurableLog::wake_at)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let unused = self
            .config
            .expires
            .filter(|_| self.consumers.is_empty())
            .map(|ms| self.last_used + Duration::from_millis(ms));
        match (expiry, unused) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn unused_too_long(&self) -> bool {
        self.config.expires.is_some_and(|ms| {
            self.consumers.is_empty() && self.last_used.elapsed() >= Duration::from_millis(ms)
        })
    }

    fn handle(&mut self, cmd: QueueCmd) -> Next {
        match cmd {
            QueueCmd::Publish { message, confirm } => self.publish(message, confirm),
            QueueCmd::PublishMany(messages) => {
                for message in messages {
                    self.publish(message, None);
                }
            }
            QueueCmd::Consume { consumer, reply } => {
                self.last_used = Instant::now();
                let result = self.consume(consumer);
                let _ = reply.send(result);
            }
            QueueCmd::Cancel { consumer_id, reply } => {
                self.consumers.remove(consumer_id);
                self.last_used = Instant::now();
                if let Some(reply) = reply {
                    let _ = reply.send(());
                }
                return self.maybe_auto_delete();
            }
            QueueCmd::Get { track, reply } => {
                self.last_used = Instant::now();
                self.get(track, reply);
            }
            QueueCmd::Ack { ids } => {
                for id in ids {
                    if let Some(m) = self.store.ack(id) {
                        self.forget(&m);
                    }
                }
            }
            QueueCmd::Discard { ids } => {
                let dead: Vec<QueuedMessage> = ids
                    .into_iter()
                    .filter_map(|id| self.store.take_unacked(id))
                    .collect();
                self.dead_letter(dead, Reason::Rejected);
            }
            QueueCmd::Requeue { ids } => self.requeue(ids),
            QueueCmd::Undelivered { tracked, untracked } => {
                self.store.return_undelivered(tracked);
                for message in untracked {
                    self.put_back_untracked(message);
                }
            }
            QueueCmd::Stat { reply } => {
                self.last_used = Instant::now();
                self.expire();
                let ready = u32::try_from(self.ready_len()).unwrap_or(u32::MAX);
                let consumers = u32::try_from(self.consumers.len()).unwrap_or(u32::MAX);
                let _ = reply.send((ready, consumers));
            }
            QueueCmd::Purge { reply } => {
                let purged = self.purge();
                let _ = reply.send(u32::try_from(purged).unwrap_or(u32::MAX));
            }
            QueueCmd::Sync { reply } => {
                if let Some(log) = self.durable.as_mut()
                    && let Err(e) = log.sync_now()
                {
                    error!(queue = %self.queue.name(), error = %e, "final sync failed");
                }
                let _ = reply.send(());
            }
            QueueCmd::Delete {
                if_unused,
                if_empty,
                reply,
            } => return self.delete(if_unused, if_empty, reply),
        }
        Next::Continue
    }

    /// Enqueue a message: refuse it if a `reject-publish` limit says so, give it its
    /// deadline, and for a zero TTL deliver it now or let it expire.
    fn publish(&mut self, message: MessageRef, confirm: Option<ConfirmTicket>) {
        if self.broken || self.durable.as_ref().is_some_and(DurableLog::failed) {
            if let Some(ticket) = confirm {
                ticket.fail();
            }
            return;
        }
        let size = message.body_size();
        if self.config.overflow != Overflow::DropHead && self.would_overflow(size) {
            if let Some(ticket) = confirm {
                ticket.resolve(false);
            }
            if self.config.overflow == Overflow::RejectPublishDlx {
                let refused = QueuedMessage {
                    id: 0,
                    message,
                    redelivered: false,
                    delivery_count: 0,
                    priority: 0,
                    expires_at: None,
                    location: None,
                };
                self.dead_letter(vec![refused], Reason::MaxLen);
            }
            return;
        }
        let ttl = match (self.config.message_ttl, message.expiration) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let priority = message.priority;
        if self.pages() && (self.has_backlog() || self.head_full()) {
            // Behind a backlog (or with memory full), the message waits on disk, even a
            // transient one: order is kept, and its record dies at a restart.
            let expires_unix = ttl.map(|t| unix_ms().saturating_add(t));
            let id = self.store.next_id();
            self.store.reserve_ids_below(id + 1);
            let stored = self
                .durable
                .as_mut()
                .is_some_and(|log| log.append_to_backlog(id, expires_unix, &message));
            match (confirm, stored) {
                (Some(ticket), false) => ticket.fail(),
                (Some(ticket), true) if message.persistent => {
                    if let Some(log) = self.durable.as_mut() {
                        log.confirm_after_sync(ticket);
                    }
                }
                (Some(ticket), true) => ticket.resolve(true),
                (None, _) => {}
            }
            return;
        }
        let location = match self.durable.as_mut() {
            Some(log) if message.persistent => {
                let expires_unix = ttl.map(|t| unix_ms().saturating_add(t));
                let Some(at) = log.append(self.store.next_id(), expires_unix, &message) else {
                    if let Some(ticket) = confirm {
                        ticket.fail();
                    }
                    return;
                };
                Some(at)
            }
            _ => None,
        };
        self.store.push_stored(
            message,
            priority,
            ttl.map(|t| self.now().saturating_add(t)),
            location,
        );
        if let Some(ticket) = confirm {
            match (location, self.durable.as_mut()) {
                (Some(_), Some(log)) => log.confirm_after_sync(ticket),
                _ => ticket.resolve(true),
            }
        }
        // As in RabbitMQ, a consumer with credit takes the message at once: it never
        // counts against a length limit, and a zero TTL means "deliver now or expire".
        if !self.consumers.is_empty() {
            let _ = self.deliver();
        }
        if ttl == Some(0) {
            self.expire();
        }
        self.enforce_drop_head();
    }

    /// RabbitMQ's `will_overflow`: would one more message of `size` octets break a limit?
    fn would_overflow(&self, size: usize) -> bool {
        let len = self.ready_len();
        let bytes = self.ready_bytes();
        self.config.max_length.is_some_and(|max| len + 1 > max)
            || self
                .config
                .max_length_bytes
                .is_some_and(|max| bytes + size as u64 > max)
    }

    fn over_limit(&self) -> bool {
        let len = self.ready_len();
        let bytes = self.ready_bytes();
        self.config.max_length.is_some_and(|max| len > max)
            || self.config.max_length_bytes.is_some_and(|max| bytes > max)
    }

    /// `x-overflow=drop-head`: the oldest ready messages go (dead-lettered, reason
    /// `maxlen`) until the queue is within its limits.
    fn enforce_drop_head(&mut self) {
        if self.config.overflow != Overflow::DropHead {
            return;
        }
        let mut dropped = Vec::new();
        while self.over_limit() {
            if self.store.is_empty() {
                self.page_in(PAGE_IN_BYTES);
            }
            match self.store.drop_head() {
                Some(m) => dropped.push(m),
                None => break,
            }
        }
        self.dead_letter(dropped, Reason::MaxLen);
    }

    /// Dead-letter (or drop) every ready message whose TTL has passed.
    fn expire(&mut self) {
        // Reading the clock after every batch of commands showed in profiles of queues
        // that have no TTL at all.
        if !self.store.has_expiries() {
            return;
        }
        let now = self.now();
        let expired = self.store.expire(now);
        if !expired.is_empty() {
            trace!(queue = %self.queue.name(), count = expired.len(), "expired");
            self.dead_letter(expired, Reason::Expired);
        }
    }

    /// Return messages to the queue, unless they exceeded `x-delivery-limit`: those are
    /// dead-lettered with reason `delivery_limit`.
    fn requeue(&mut self, ids: Ids) {
        let Some(limit) = self.config.delivery_limit else {
            self.store.requeue(ids);
            return;
        };
        let mut poisoned = Vec::new();
        for id in ids {
            let Some(m) = self.store.take_unacked(id) else {
                continue;
            };
            if u64::from(m.delivery_count) + 1 > limit {
                poisoned.push(m);
            } else {
                self.store.requeue_taken(m);
            }
        }
        self.dead_letter(poisoned, Reason::DeliveryLimit);
    }

    /// Publish dead messages to the dead-letter exchange, or drop them when there is
    /// none (or it does not exist).
    fn dead_letter(&mut self, messages: Vec<QueuedMessage>, reason: Reason) {
        if messages.is_empty() {
            return;
        }
        for m in &messages {
            self.forget(m);
        }
        let (Some(dlx), Some(vhost)) = (
            self.config.dead_letter_exchange.as_deref(),
            self.vhost.upgrade(),
        ) else {
            return;
        };
        let name = self.queue.name().clone();
        for m in messages {
            let dl = dead_letter(
                &m.message,
                reason,
                &name,
                dlx,
                self.config.dead_letter_routing_key.as_deref(),
            );
            let mut targets = Targets::new();
            if !vhost.route_dead_letter(dlx, &dl.routing_key, &dl.extra_keys, &dl, &mut targets) {
                continue;
            }
            for target in targets {
                if is_cycle(&dl.headers, reason, target.name()) {
                    warn!(queue = %name, target = %target.name(), "dead-letter cycle without a rejection: message dropped");
                    continue;
                }
                target.send_soon(QueueCmd::Publish {
                    message: dl.message.clone(),
                    confirm: None,
                });
            }
        }
    }

    fn consume(&mut self, consumer: Consumer) -> Result<(), AmqpException> {
        // RabbitMQ refuses exclusive consumers on single-active-consumer queues outright.
        let refused = self.consumers.has_exclusive()
            || (consumer.exclusive
                && (!self.consumers.is_empty() || self.config.single_active_consumer));
        if refused {
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

    fn get(&mut self, track: bool, reply: oneshot::Sender<Option<GetReply>>) {
        self.fill_head();
        self.expire();
        let got = self.store.pop(track).map(|m| GetReply {
            message: self.with_delivery_count(m, true),
            remaining: 0,
        });
        let remaining = u32::try_from(self.ready_len()).unwrap_or(u32::MAX);
        let got = got.map(|g| GetReply { remaining, ..g });
        let stored = got.as_ref().and_then(|g| {
            g.message
                .location
                .map(|at| (at, g.message.id, g.message.message.persistent))
        });
        if let (Some((at, id, true)), Some(log)) = (stored, self.durable.as_mut()) {
            log.delivered(at, id);
            log.write_acks();
        }
        match reply.send(got) {
            Err(Some(unsent)) => self.put_back(unsent.message, track),
            Ok(()) if !track => {
                if let (Some((at, id, persistent)), Some(log)) = (stored, self.durable.as_mut()) {
                    log.removed(at, id, persistent);
                }
            }
            _ => {}
        }
    }

    /// A no-ack delivery came back unsent. Its record was removed when it left, so a
    /// persistent one is written again (as a new message, at the back).
    fn put_back_untracked(&mut self, mut m: QueuedMessage) {
        let now = self.now();
        if let (Some(_), Some(log)) = (m.location, self.durable.as_mut()) {
            let id = self.store.next_id();
            let expires_unix = m
                .expires_at
                .map(|at| unix_ms().saturating_add(at.saturating_sub(now)));
            m.location = log.append(id, expires_unix, &m.message);
            let message = m.message.clone();
            self.store
                .push_stored(message, m.priority, m.expires_at, m.location);
            return;
        }
        self.store.put_back(m);
    }

    fn put_back(&mut self, message: QueuedMessage, tracked: bool) {
        if tracked {
            self.store.return_undelivered([message.id]);
        } else {
            self.store.put_back(message);
        }
    }

    /// With `x-delivery-limit`, redelivered messages carry `x-delivery-count`; as in
    /// RabbitMQ's quorum queues, `basic.get` shows it from the first delivery (as 0).
    fn with_delivery_count(&self, mut m: QueuedMessage, always: bool) -> QueuedMessage {
        if self.config.delivery_limit.is_some() && (always || m.delivery_count > 0) {
            m.message = super::delivery_count::with_delivery_count(&m.message, m.delivery_count);
        }
        m
    }

    /// Hand ready messages to consumers with credit, in batches: take the messages and
    /// credit, write the durable queue's "delivered" records, then send.
    fn deliver(&mut self) -> Next {
        let mut outbox = std::mem::take(&mut self.outbox);
        let mut next = Next::Continue;
        loop {
            self.fill_head();
            while outbox.len() < DELIVER_BATCH && !self.store.is_empty() {
                let Some(at) = self.consumers.next_with_credit(&self.queue.kick) else {
                    break;
                };
                let no_ack = self.consumers.get(at).no_ack;
                let Some(message) = self.store.pop(!no_ack) else {
                    self.consumers.get(at).untake();
                    break;
                };
                if let (Some(loc), Some(log), true) = (
                    message.location,
                    self.durable.as_mut(),
                    message.message.persistent,
                ) {
                    log.delivered(loc, message.id);
                }
                let message = self.with_delivery_count(message, false);
                trace!(queue = %self.queue.name(), tag = %self.consumers.get(at).tag, "deliver");
                outbox.push((at, message));
            }
            if outbox.is_empty() {
                break;
            }
            if let Some(log) = self.durable.as_mut() {
                log.write_acks();
            }
            let mut gone: SmallVec<[u64; 2]> = SmallVec::new();
            // Runs of messages for one consumer: each goes to its connection as one item.
            let mut runs: SmallVec<[(usize, usize); 4]> = SmallVec::new();
            for (at, _) in &outbox {
                match runs.last_mut() {
                    Some((last, len)) if last == at => *len += 1,
                    _ => runs.push((*at, 1)),
                }
            }
            let mut drained = outbox.drain(..);
            for (at, len) in runs {
                let consumer = self.consumers.get(at);
                let delivery = Delivery {
                    channel: consumer.channel,
                    consumer_id: consumer.id,
                    consumer_tag: consumer.tag.clone(),
                    queue: self.queue.clone(),
                    no_ack: consumer.no_ack,
                    channel_credit: consumer.channel_prefetch.clone(),
                    messages: drained.by_ref().take(len).map(|(_, m)| m).collect(),
                };
                // No-ack deliveries of a durable queue leave its log once sent.
                let removed: SmallVec<[(Location, MessageId, bool); 8]> =
                    if self.durable.is_some() && delivery.no_ack {
                        delivery
                            .messages
                            .iter()
                            .filter_map(|m| m.location.map(|loc| (loc, m.id, m.message.persistent)))
                            .collect()
                    } else {
                        SmallVec::new()
                    };
                match consumer.conn.tx.send(Outbound::Deliver(delivery)) {
                    Ok(()) => {
                        if let Some(log) = self.durable.as_mut() {
                            for (loc, id, persistent) in removed {
                                log.removed(loc, id, persistent);
                            }
                        }
                    }
                    Err(mpsc::error::SendError(Outbound::Deliver(bounced))) => {
                        // The consumer's connection has gone: take the messages back, drop
                        // the consumer.
                        if !gone.contains(&consumer.id) {
                            gone.push(consumer.id);
                        }
                        for message in bounced.messages {
                            consumer.untake();
                            if bounced.no_ack {
                                self.store.put_back(message);
                            } else {
                                self.store.return_undelivered([message.id]);
                            }
                        }
                    }
                    Err(_) => {}
                }
            }
            drop(drained);
            for id in &gone {
                self.consumers.remove(*id);
            }
            if !gone.is_empty() && self.maybe_auto_delete() == Next::Stop {
                next = Next::Stop;
                break;
            }
        }
        self.outbox = outbox;
        next
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
        reply: Option<oneshot::Sender<Result<u32, AmqpException>>>,
    ) -> Next {
        let refusal = if if_unused && !self.consumers.is_empty() {
            Some("in use")
        } else if if_empty && self.ready_len() > 0 {
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
        let count = u32::try_from(self.ready_len()).unwrap_or(u32::MAX);
        self.finish();
        if let Some(reply) = reply {
            let _ = reply.send(Ok(count));
        }
        Next::Stop
    }

    /// Drop every ready message, in memory and on disk; returns how many.
    fn purge(&mut self) -> u64 {
        let mut purged = 0;
        loop {
            let (stored, n) = self.store.purge();
            purged += n as u64;
            if let Some(log) = self.durable.as_mut() {
                for (at, id, persistent) in stored {
                    log.removed(at, id, persistent);
                }
            }
            if !self.has_backlog() {
                return purged;
            }
            self.page_in(PAGE_IN_BYTES * 8);
        }
    }

    /// Leave the routing table and tell every consumer the queue is gone.
    fn finish(&mut self) {
        self.finished = true;
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
        if let (Some(log), Some(vhost)) = (self.durable.take(), self.vhost.upgrade()) {
            // The files go only once the definition's removal is on disk: a crash in
            // between must not bring back a queue without its messages.
            let definitions = vhost.definition_store();
            let name = self.queue.name().clone();
            let dir = self.queue.spec.storage.as_ref().map(|s| s.dir.clone());
            tokio::task::spawn_blocking(move || {
                let marked = dir.map_or(Ok(()), |d| mark_deleted(&d).map_err(|e| e.to_string()));
                let removed = marked.and_then(|()| definitions.flush().map_err(|e| e.to_string()));
                if let Err(e) = removed.and_then(|()| log.destroy().map_err(|e| e.to_string())) {
                    warn!(queue = %name, error = %e, "files of the deleted queue left behind");
                }
            });
        }
    }

    fn vhost_name(&self) -> String {
        self.vhost
            .upgrade()
            .map(|v| v.name().to_string())
            .unwrap_or_default()
    }
}

/// The running sync's end, or never.
async fn sync_done(log: Option<&mut DurableLog>) -> std::io::Result<()> {
    match log {
        Some(log) => log.sync_done().await,
        None => std::future::pending().await,
    }
}

/// Sleep until `at`, or forever when there is nothing to wait for.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

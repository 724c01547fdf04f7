//! The broker: configuration, virtual hosts, and id counters shared by all connections.

use std::collections::HashSet;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use dashmap::DashMap;
use tokio::sync::watch;
use tracing::{error, info, warn};
use warren_store::definitions::{
    DefinitionError, DefinitionStore, Definitions, SledDefinitions, is_marked_deleted,
    read_queue_record, read_witness, write_witness,
};

use crate::Config;
use crate::definitions::DurableDefinitions;
use crate::vhost::VHost;

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory cannot be used.
    #[error("data directory: {0}")]
    DataDir(#[from] io::Error),
    /// The definition store cannot be opened or read.
    #[error(transparent)]
    Definitions(#[from] DefinitionError),
}

/// Shared broker state. Connections hold an `Arc<Broker>`.
#[derive(Debug)]
pub struct Broker {
    config: Arc<Config>,
    /// Virtual hosts by name. A concurrent map because every connection looks its vhost
    /// up at `connection.open`, while vhosts are added rarely.
    vhosts: DashMap<String, Arc<VHost>>,
    next_connection_id: AtomicU64,
    next_consumer_id: AtomicU64,
    /// Direct reply-to consumers by token (the part after `amq.rabbitmq.reply-to.`).
    /// A concurrent map because any channel may publish a reply while channels on other
    /// connections register and leave.
    reply_consumers: DashMap<String, ReplyTarget>,
    /// The resource alarms in effect ([`Alarms`] bits): while any is, connections that
    /// publish are blocked. Read on every publish, so an atomic; the watch wakes
    /// blocked connections when they clear.
    alarms: AtomicU8,
    alarm_changes: watch::Sender<Alarms>,
}

/// Resource alarms in effect, as RabbitMQ names them in `connection.blocked`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Alarms(u8);

impl Alarms {
    const DISK: u8 = 1;
    const MEMORY: u8 = 2;

    /// None in effect.
    #[must_use]
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The disk alarm is in effect.
    #[must_use]
    pub fn disk(self) -> bool {
        self.0 & Self::DISK != 0
    }

    /// The memory alarm is in effect.
    #[must_use]
    pub fn memory(self) -> bool {
        self.0 & Self::MEMORY != 0
    }

    /// The reason `connection.blocked` gives, as RabbitMQ words it: "low on memory",
    /// "low on disk", "low on disk & memory".
    #[must_use]
    pub fn reason(self) -> String {
        let low: Vec<&str> = [(Self::DISK, "disk"), (Self::MEMORY, "memory")]
            .iter()
            .filter(|(bit, _)| self.0 & bit != 0)
            .map(|(_, name)| *name)
            .collect();
        format!("low on {}", low.join(" & "))
    }
}

/// Where a direct reply-to reply goes: a consumer on a channel, not a queue.
#[derive(Debug, Clone)]
pub(crate) struct ReplyTarget {
    pub tx: tokio::sync::mpsc::UnboundedSender<crate::connection::Outbound>,
    pub channel: u16,
    pub consumer_tag: Arc<str>,
}

impl Broker {
    /// Create the broker, its data directory, and the default vhost `/`, with every
    /// durable exchange, queue and binding found in the data directory. Must be called
    /// inside a tokio runtime: restored queues start their tasks.
    pub fn new(config: Config) -> Result<Arc<Self>, StartError> {
        std::fs::create_dir_all(&config.data_dir)?;
        let store: Arc<dyn DefinitionStore> =
            Arc::new(SledDefinitions::open(&config.data_dir.join("definitions"))?);
        let mut stored = store.load()?;
        for problem in &stored.problems {
            warn!(%problem, "durable definition skipped");
        }
        let witness = config.data_dir.join("definitions.witness");
        if let Some(expected) = read_witness(&witness)
            && store.generation() < expected
        {
            error!(
                expected,
                found = store.generation(),
                "the definition store lost changes it had made durable (damaged files?): \
                 some exchanges, queues or bindings may be missing"
            );
        }
        if adopt_queue_dirs(&config.data_dir.join("queues"), &mut stored, &*store) {
            store.flush()?;
        }
        if let Err(e) = write_witness(&witness, store.generation()) {
            warn!(error = %e, "cannot record the definition store's generation");
        }
        info!(
            data_dir = %config.data_dir.display(),
            exchanges = stored.exchanges.len(),
            queues = stored.queues.len(),
            bindings = stored.bindings.len(),
            "data directory ready"
        );
        let config = Arc::new(config);
        let definitions = Arc::new(DurableDefinitions::new(store, witness));
        let vhosts = DashMap::new();
        let default = VHost::new("/", config.clone(), definitions);
        for problem in default.restore(&stored) {
            warn!(%problem, "durable definition not restored");
        }
        vhosts.insert("/".to_owned(), default);
        for vhost in stored
            .queues
            .iter()
            .map(|q| &q.vhost)
            .collect::<HashSet<_>>()
        {
            if vhost != "/" {
                warn!(%vhost, "definitions for an unknown vhost ignored");
            }
        }
        Ok(Arc::new(Self {
            config,
            vhosts,
            next_connection_id: AtomicU64::new(1),
            next_consumer_id: AtomicU64::new(1),
            reply_consumers: DashMap::new(),
            alarms: AtomicU8::new(0),
            alarm_changes: watch::Sender::new(Alarms::default()),
        }))
    }

    /// Set or clear the memory alarm (RabbitMQ's `vm_memory_high_watermark` alarm).
    /// While any alarm is set, a connection that publishes stops being read, after
    /// telling a client that asked for it with `connection.blocked`; connections that
    /// only consume carry on, which is how the memory comes back.
    pub fn set_memory_alarm(&self, on: bool) {
        self.set_alarm(Alarms::MEMORY, "memory", on);
    }

    /// Set or clear the free disk space alarm (RabbitMQ's `disk_free_limit` alarm),
    /// with the same effect as the memory alarm.
    pub fn set_disk_alarm(&self, on: bool) {
        self.set_alarm(Alarms::DISK, "disk", on);
    }

    fn set_alarm(&self, bit: u8, resource: &str, on: bool) {
        // Under the watch's lock, so that the atomic and the watch change together even
        // when two resources' monitors set and clear at the same moment.
        let changed = self.alarm_changes.send_if_modified(|alarms| {
            let before = self.alarms.load(Ordering::SeqCst);
            let after = if on { before | bit } else { before & !bit };
            self.alarms.store(after, Ordering::SeqCst);
            *alarms = Alarms(after);
            before != after
        });
        if changed && on {
            warn!(
                resource,
                "resource alarm set: publishing connections are blocked"
            );
        } else if changed {
            info!(resource, "resource alarm cleared");
        }
    }

    /// The alarms in effect.
    #[must_use]
    pub fn alarms(&self) -> Alarms {
        Alarms(self.alarms.load(Ordering::Relaxed))
    }

    /// Told of every change of the alarms.
    pub(crate) fn watch_alarms(&self) -> watch::Receiver<Alarms> {
        self.alarm_changes.subscribe()
    }

    /// The configuration the broker runs with.
    #[must_use]
    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// A vhost by name.
    #[must_use]
    pub fn vhost(&self, name: &str) -> Option<Arc<VHost>> {
        self.vhosts.get(name).map(|v| v.value().clone())
    }

    pub(crate) fn next_connection_id(&self) -> u64 {
        self.next_connection_id.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn register_reply_consumer(&self, token: String, target: ReplyTarget) {
        self.reply_consumers.insert(token, target);
    }

    pub(crate) fn unregister_reply_consumer(&self, token: &str) {
        self.reply_consumers.remove(token);
    }

    /// The consumer a reply routed to `amq.rabbitmq.reply-to.<token>` goes to.
    pub(crate) fn reply_consumer(&self, token: &str) -> Option<ReplyTarget> {
        self.reply_consumers.get(token).map(|t| t.value().clone())
    }

    /// Write and sync every durable queue's messages (graceful shutdown, once no
    /// connection is left).
    pub async fn sync_queues(&self) {
        let vhosts: Vec<Arc<VHost>> = self.vhosts.iter().map(|v| v.value().clone()).collect();
        for vhost in vhosts {
            for queue in vhost.durable_queues() {
                let (reply, done) = tokio::sync::oneshot::channel();
                if queue.send(crate::queue::QueueCmd::Sync { reply }).await {
                    let _ = done.await;
                }
            }
        }
    }

    pub(crate) fn next_consumer_id(&self) -> u64 {
        self.next_consumer_id.fetch_add(1, Ordering::Relaxed)
    }
}

/// Sort out queue directories no stored queue points at: files of a queue whose deletion
/// was interrupted go; files of a queue the definition store lost (its own record says
/// what it was) bring the queue back, so damage to the definitions never throws
/// messages away; anything else is kept and reported. True if a queue was adopted.
fn adopt_queue_dirs(dir: &Path, stored: &mut Definitions, store: &dyn DefinitionStore) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    let mut adopted = false;
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if stored
            .queues
            .iter()
            .any(|q| format!("{:016x}", q.storage_id) == name)
        {
            continue;
        }
        if is_marked_deleted(&path) {
            match std::fs::remove_dir_all(&path) {
                Ok(()) => info!(dir = %path.display(), "removed the files of a deleted queue"),
                Err(e) => {
                    warn!(dir = %path.display(), error = %e, "cannot remove the files of a deleted queue");
                }
            }
            continue;
        }
        let record = read_queue_record(&path).filter(|def| {
            format!("{:016x}", def.storage_id) == name
                && !stored
                    .queues
                    .iter()
                    .any(|q| q.vhost == def.vhost && q.name == def.name)
        });
        match record.map(|def| store.put_queue(&def).map(|()| def)) {
            Some(Ok(def)) => {
                error!(
                    queue = %def.name,
                    vhost = %def.vhost,
                    dir = %path.display(),
                    "the definition store had lost this durable queue: restored from its own record"
                );
                stored.queues.push(def);
                adopted = true;
            }
            Some(Err(e)) => {
                error!(dir = %path.display(), error = %e, "cannot restore a queue the definition store lost");
            }
            None => {
                warn!(dir = %path.display(), "queue files without a definition kept as they are")
            }
        }
    }
    adopted
}

#[cfg(test)]
mod tests {
    use super::Alarms;

    #[test]
    fn alarm_reasons_are_worded_as_rabbitmq_words_them() {
        // As RabbitMQ 3.10 sends them (pika's blocked callback, against rabbitmqctl
        // set_vm_memory_high_watermark and set_disk_free_limit).
        assert_eq!(Alarms(Alarms::MEMORY).reason(), "low on memory");
        assert_eq!(Alarms(Alarms::DISK).reason(), "low on disk");
        assert_eq!(
            Alarms(Alarms::DISK | Alarms::MEMORY).reason(),
            "low on disk & memory"
        );
        assert!(Alarms::default().is_empty());
        assert!(Alarms(Alarms::DISK).disk() && !Alarms(Alarms::DISK).memory());
    }
}

//! The broker: configuration, virtual hosts, and id counters shared by all connections.

use std::collections::HashSet;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;
use tracing::{info, warn};
use warren_store::definitions::{DefinitionError, DefinitionStore, SledDefinitions};

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
        let stored = store.load()?;
        for problem in &stored.problems {
            warn!(%problem, "durable definition skipped");
        }
        info!(
            data_dir = %config.data_dir.display(),
            exchanges = stored.exchanges.len(),
            queues = stored.queues.len(),
            bindings = stored.bindings.len(),
            "data directory ready"
        );
        let config = Arc::new(config);
        let definitions = Arc::new(DurableDefinitions::new(store));
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
        let live: HashSet<String> = stored
            .queues
            .iter()
            .map(|q| format!("{:016x}", q.storage_id))
            .collect();
        remove_orphan_queue_dirs(&config.data_dir.join("queues"), &live);
        Ok(Arc::new(Self {
            config,
            vhosts,
            next_connection_id: AtomicU64::new(1),
            next_consumer_id: AtomicU64::new(1),
            reply_consumers: DashMap::new(),
        }))
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

/// Remove message logs of queues that no longer exist: a crash between deleting a queue's
/// definition and removing its files leaves them behind.
fn remove_orphan_queue_dirs(dir: &Path, live: &HashSet<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !live.contains(&name) {
            match std::fs::remove_dir_all(entry.path()) {
                Ok(()) => {
                    info!(dir = %entry.path().display(), "removed the files of a deleted queue")
                }
                Err(e) => {
                    warn!(dir = %entry.path().display(), error = %e, "cannot remove the files of a deleted queue")
                }
            }
        }
    }
}

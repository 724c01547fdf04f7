//! The broker: configuration, virtual hosts, and id counters shared by all connections.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;
use tracing::info;

use crate::Config;
use crate::vhost::VHost;

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
    /// Create the broker, its data directory, and the default vhost `/`.
    pub fn new(config: Config) -> io::Result<Arc<Self>> {
        std::fs::create_dir_all(&config.data_dir)?;
        info!(data_dir = %config.data_dir.display(), "data directory ready");
        let config = Arc::new(config);
        let vhosts = DashMap::new();
        vhosts.insert("/".to_owned(), VHost::new("/", config.clone()));
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

    pub(crate) fn next_consumer_id(&self) -> u64 {
        self.next_consumer_id.fetch_add(1, Ordering::Relaxed)
    }
}

//! Queues: the shared handle every routing table and channel holds, the commands a queue
//! task takes, and the task itself.

mod command;
mod consumers;
mod dead_letter;
mod delivery_count;
mod durable;
mod inbox;
mod task;

use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Notify;
use tracing::debug;
use warren_codec::types::FieldTable;

use crate::queue_args::QueueConfig;

pub(crate) use command::{ConfirmTicket, GetReply, Ids, QueueCmd};
pub(crate) use consumers::Consumer;
use inbox::InboxSender;
pub(crate) use inbox::TrySendError;
pub(crate) use task::spawn_queue;

/// Identifies a connection for exclusivity checks.
pub(crate) type ConnectionId = u64;

static NEXT_QUEUE_ID: AtomicU64 = AtomicU64::new(1);

/// What a queue was declared with.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct QueueSpec {
    pub name: Arc<str>,
    pub durable: bool,
    pub auto_delete: bool,
    /// The connection owning an exclusive queue.
    pub exclusive_owner: Option<ConnectionId>,
    pub arguments: FieldTable,
    /// What the arguments ask for.
    pub config: QueueConfig,
    /// Where a durable queue keeps its persistent messages.
    pub storage: Option<QueueStorage>,
}

/// A durable queue's message directory and the id that names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QueueStorage {
    pub id: u64,
    pub dir: std::path::PathBuf,
}

/// The part of a queue everyone may see: its declaration and its command inbox.
#[derive(Debug)]
pub(crate) struct QueueShared {
    id: u64,
    pub spec: QueueSpec,
    tx: InboxSender,
    /// Woken when credit a consumer of this queue was waiting for comes back.
    pub kick: Arc<Notify>,
}

/// A cheap, clonable handle on a queue; equal when it is the same queue instance (a
/// queue deleted and declared again under the same name is a different queue).
#[derive(Clone)]
pub(crate) struct QueueRef(Arc<QueueShared>);

impl QueueRef {
    fn new(spec: QueueSpec, tx: InboxSender) -> Self {
        Self(Arc::new(QueueShared {
            id: NEXT_QUEUE_ID.fetch_add(1, Ordering::Relaxed),
            spec,
            tx,
            kick: Arc::new(Notify::new()),
        }))
    }

    /// The queue's name.
    pub fn name(&self) -> &Arc<str> {
        &self.spec.name
    }

    /// Send a command, waiting while the queue's inbox is full (this is how publishers
    /// feel back-pressure). `false` if the queue is gone.
    pub async fn send(&self, cmd: QueueCmd) -> bool {
        self.tx.send(cmd).await
    }

    /// Send a command if the queue's inbox has room.
    pub fn try_send(&self, cmd: QueueCmd) -> Result<(), TrySendError> {
        self.tx.try_send(cmd)
    }

    /// Send a command from a context that must not wait: clean-up (a delivery bounced
    /// by a connection, a closing channel's consumers and unacknowledged messages) or
    /// a queue task's dead letters. In at once, ahead of senders waiting for room, and
    /// in order with what this sender sends next.
    pub fn send_soon(&self, cmd: QueueCmd) {
        if !self.tx.send_now(cmd) {
            debug!(queue = %self.name(), "command for a deleted queue dropped");
        }
    }
}

impl Deref for QueueRef {
    type Target = QueueShared;

    fn deref(&self) -> &QueueShared {
        &self.0
    }
}

impl PartialEq for QueueRef {
    fn eq(&self, other: &Self) -> bool {
        self.0.id == other.0.id
    }
}

impl Eq for QueueRef {}

impl Hash for QueueRef {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.id.hash(state);
    }
}

impl fmt::Debug for QueueRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "QueueRef({}#{})", self.spec.name, self.0.id)
    }
}

//! Durable definitions: exchanges, queues and bindings that survive a restart.
//!
//! The broker talks to them through [`DefinitionStore`], a narrow trait, so the storage
//! engine (sled, see [`SledDefinitions`]) can be swapped or faked. Declaration arguments
//! are kept as opaque encoded field tables: this crate does not know the wire format.

mod keys;
mod queue_record;
mod sled_store;
mod witness;

use serde::{Deserialize, Serialize};

pub use queue_record::{is_marked_deleted, mark_deleted, read_queue_record, write_queue_record};
pub use sled_store::SledDefinitions;
pub use witness::{read_witness, write_witness};

/// Why a definition could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum DefinitionError {
    /// The storage engine failed (I/O, or its own corruption check).
    #[error("definition store: {0}")]
    Storage(String),
    /// A stored record could not be decoded.
    #[error("definition record under {key} is unreadable: {reason}")]
    Corrupt {
        /// The record's key, printed for the operator.
        key: String,
        /// What was wrong with it.
        reason: String,
    },
}

/// A durable exchange.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExchangeDef {
    /// Its vhost.
    pub vhost: String,
    /// Its name.
    pub name: String,
    /// Its type, as declared (`direct`, `topic`, ...).
    pub kind: String,
    /// Deleted when its last binding goes.
    pub auto_delete: bool,
    /// Only reachable from other exchanges.
    pub internal: bool,
    /// Declaration arguments, as an encoded field table.
    pub arguments: Vec<u8>,
}

/// A durable queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueDef {
    /// Its vhost.
    pub vhost: String,
    /// Its name.
    pub name: String,
    /// Deleted when its last consumer goes.
    pub auto_delete: bool,
    /// Declaration arguments, as an encoded field table.
    pub arguments: Vec<u8>,
    /// Names the queue's message log directory. A fresh one per declaration, so a queue
    /// deleted and declared again never meets the old one's files.
    pub storage_id: u64,
}

/// What a binding leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DestKind {
    /// A queue.
    Queue,
    /// An exchange (exchange-to-exchange binding).
    Exchange,
}

/// A binding between two durable ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindingDef {
    /// Its vhost.
    pub vhost: String,
    /// Source exchange.
    pub source: String,
    /// Whether the destination is a queue or an exchange.
    pub dest_kind: DestKind,
    /// Destination name.
    pub destination: String,
    /// Binding key.
    pub routing_key: Vec<u8>,
    /// Binding arguments, as an encoded field table.
    pub arguments: Vec<u8>,
}

/// Everything stored, as loaded at start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Definitions {
    /// Durable exchanges (not the predeclared ones).
    pub exchanges: Vec<ExchangeDef>,
    /// Durable queues.
    pub queues: Vec<QueueDef>,
    /// Bindings between durable ends.
    pub bindings: Vec<BindingDef>,
    /// Records that could not be read, described for the log; they are skipped.
    pub problems: Vec<String>,
}

/// Where durable definitions live. Writes are ordered as they are made; [`Self::flush`]
/// makes every earlier write durable. Deleting an exchange or a queue deletes the
/// bindings it takes part in, so a cascade in the routing table is one call here.
pub trait DefinitionStore: Send + Sync + std::fmt::Debug {
    /// Everything stored.
    fn load(&self) -> Result<Definitions, DefinitionError>;
    /// Add or replace an exchange.
    fn put_exchange(&self, exchange: &ExchangeDef) -> Result<(), DefinitionError>;
    /// Remove an exchange and every binding it is the source or destination of; true if
    /// anything was removed.
    fn delete_exchange(&self, vhost: &str, name: &str) -> Result<bool, DefinitionError>;
    /// Add or replace a queue.
    fn put_queue(&self, queue: &QueueDef) -> Result<(), DefinitionError>;
    /// Remove a queue and every binding to it; true if anything was removed.
    fn delete_queue(&self, vhost: &str, name: &str) -> Result<bool, DefinitionError>;
    /// Add a binding (adding it twice stores it once).
    fn put_binding(&self, binding: &BindingDef) -> Result<(), DefinitionError>;
    /// Remove a binding; true if it was there.
    fn delete_binding(&self, binding: &BindingDef) -> Result<bool, DefinitionError>;
    /// Counts writes: every change raises it by one, atomically with the change. Kept
    /// outside the store after each flush ([`write_witness`]), it tells at the next
    /// start whether the store lost changes it had made durable (damage the storage
    /// engine may repair silently by cutting its log).
    fn generation(&self) -> u64;
    /// A number never handed out before, for [`QueueDef::storage_id`].
    fn new_storage_id(&self) -> Result<u64, DefinitionError>;
    /// Make every write so far durable. Blocks: call it off the async runtime.
    fn flush(&self) -> Result<(), DefinitionError>;
}

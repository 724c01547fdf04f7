//! Warren's queue contents.
//!
//! Owns: what a queue holds and in which order: the ready list, the set of messages
//! delivered but not yet acknowledged, and requeueing them to their original position
//! (as RabbitMQ's classic queues do). Messages are shared (`Arc`), so one publish routed
//! to ten queues is stored once.
//!
//! It also owns the on-disk message log of durable queues ([`segment`]): segment files
//! with CRC-framed records, group-committed syncs, and recovery that cuts damage
//! instead of panicking.
//!
//! And the durable definitions ([`definitions`]): exchanges, queues and bindings in
//! sled, behind a narrow trait.
//!
//! Must not know: consumers, channels, sockets, tokio, exchanges or the wire format. The
//! broker's queue task decides *who* gets a message; this crate only keeps *what* is
//! there, so it can be model-tested against a plain `VecDeque`.

mod body;
pub mod definitions;
mod message;
mod queue;
pub mod segment;

pub use body::Body;
pub use message::{Message, MessageRef};
pub use queue::{MessageId, MessageQueue, QueuedMessage};

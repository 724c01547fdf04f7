//! Warren's broker: the AMQP 0-9-1 state machines and the tasks that run them.
//!
//! Owns:
//! - one task per connection ([`connection`]): handshake, frame dispatch, channels and
//!   their state (content assembly, consumers, unacked deliveries, confirms,
//!   transactions), heartbeats, and batched socket writes;
//! - one task per queue ([`queue`]): its contents (a `warren-store` queue), consumers,
//!   round-robin delivery under prefetch credit;
//! - virtual hosts ([`vhost`]): the routing table (`warren-router`) behind one lock held
//!   only for synchronous calls, queue and exchange lifecycle;
//! - durability: definitions written through `warren-store`'s definition store and
//!   flushed before a declaration is answered ([`definitions`]), and each durable
//!   queue's message log, group-committed by its queue task;
//! - [`error`]: the ONE place where failures become AMQP reply codes;
//! - [`server::serve`]: the accept loop, and graceful shutdown with `320 CONNECTION_FORCED`.
//!
//! Must not know: command-line parsing, configuration files, signals or logging setup
//! (the `warren` binary's job). Dependencies point one way: this crate uses
//! `warren-codec`, `warren-router` and `warren-store`; none of them uses it.

pub mod auth;
pub mod broker;
mod channel;
pub mod config;
mod connection;
mod credit;
mod definitions;
pub mod error;
mod names;
mod queue;
mod queue_args;
pub mod server;
pub mod vhost;

pub use broker::{Alarms, Broker, StartError};
pub use config::{Config, User};
pub use server::{ServerHandle, serve, spawn};

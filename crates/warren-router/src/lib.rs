//! Warren's exchange and binding engine.
//!
//! Owns: exchanges (their type, flags, arguments), bindings from exchanges to queues and
//! to other exchanges, and [`Topology::route`], which turns an exchange name, routing keys
//! and headers into the set of destination queues. Routing follows RabbitMQ: direct and
//! fanout tables, a topic trie with dedicated `*` and `#` slots, headers matching with
//! RabbitMQ's typing rules, exchange-to-exchange chains with a visited set, and alternate
//! exchanges for what an exchange cannot route, and the consistent-hash exchange of
//! RabbitMQ's plugin.
//!
//! Must not know: sockets, tokio, queue contents or storage. It is synchronous and generic
//! over the queue handle `Q`, so the broker can route straight to its queue handles and
//! tests can route to plain strings.
//!
//! Maps on the routing path hash with `foldhash` (seeded per process): SipHash showed in
//! the per-message profile, and these lookups happen for every publish.

mod consistent_hash;
mod dest;
mod error;
mod exchange;
mod headers;
mod index;
mod kind;
mod topic;
mod topology;

pub use consistent_hash::Property;
pub use dest::Dest;
pub use error::RouteError;
pub use exchange::{Binding, Exchange, ExchangeFlags};
pub use headers::{HeadersMatch, erlang_equal, erlang_term, erlang_type_name, headers_match};
pub use kind::ExchangeKind;
pub use topic::{TopicTrie, split_topic_key};
pub use topology::{DEFAULT_EXCHANGE, MessageSource, RouteInput, Routed, Topology};

pub use amq_protocol::types::{AMQPValue, FieldTable};

/// What a binding or exchange argument table looks like.
pub type Arguments = FieldTable;

use std::sync::Arc;

/// Where a binding leads: a queue, or another exchange (an exchange-to-exchange binding).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Dest<Q> {
    /// A queue handle.
    Queue(Q),
    /// An exchange, by name, in the same vhost.
    Exchange(Arc<str>),
}

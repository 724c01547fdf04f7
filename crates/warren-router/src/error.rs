use thiserror::Error;

/// Why a routing-table operation was refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// No exchange of that name.
    #[error("no exchange '{0}'")]
    NoSuchExchange(String),
    /// No queue of that name.
    #[error("no queue '{0}'")]
    NoSuchQueue(String),
    /// Bindings to or from the default exchange are not allowed.
    #[error("operation not permitted on the default exchange")]
    DefaultExchange,
    /// Binding arguments the exchange type cannot use (a bad `x-match`, say).
    #[error("{0}")]
    InvalidArguments(String),
    /// An exchange of that name exists already.
    #[error("exchange '{0}' exists")]
    ExchangeExists(String),
    /// A queue of that name exists already.
    #[error("queue '{0}' exists")]
    QueueExists(String),
}

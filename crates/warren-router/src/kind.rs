use std::fmt;

/// The exchange types Warren routes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExchangeKind {
    /// Routing key equals binding key.
    Direct,
    /// Every bound destination.
    Fanout,
    /// Dotted words with `*` and `#` wildcards.
    Topic,
    /// Message headers against binding arguments (`x-match`).
    Headers,
    /// One destination per message, by consistent hashing (`x-consistent-hash`).
    ConsistentHash,
}

impl ExchangeKind {
    /// Parse the `type` field of `exchange.declare`; `None` for types we do not have.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "direct" => Self::Direct,
            "fanout" => Self::Fanout,
            "topic" => Self::Topic,
            "headers" => Self::Headers,
            "x-consistent-hash" => Self::ConsistentHash,
            _ => return None,
        })
    }

    /// The type name as declared.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Fanout => "fanout",
            Self::Topic => "topic",
            Self::Headers => "headers",
            Self::ConsistentHash => "x-consistent-hash",
        }
    }
}

impl fmt::Display for ExchangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

use std::fmt;

/// AMQP 0-9-1 reply codes, as named by the specification.
///
/// Codes 4xx are channel-level ("soft") unless RabbitMQ uses them to close the
/// connection (e.g. 403 during login); 5xx are connection-level ("hard"). The scope of an
/// exception is decided where it is raised, not here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ReplyCode {
    /// 200: normal completion.
    ReplySuccess = 200,
    /// 311: content too large.
    ContentTooLarge = 311,
    /// 312: a mandatory message could not be routed.
    NoRoute = 312,
    /// 313: an immediate message had no consumer.
    NoConsumers = 313,
    /// 320: an operator closed the connection.
    ConnectionForced = 320,
    /// 402: invalid virtual host path.
    InvalidPath = 402,
    /// 403: access refused.
    AccessRefused = 403,
    /// 404: entity not found.
    NotFound = 404,
    /// 405: resource locked (exclusive queue of another connection).
    ResourceLocked = 405,
    /// 406: precondition failed (inequivalent redeclare, unknown delivery tag...).
    PreconditionFailed = 406,
    /// 501: malformed frame.
    FrameError = 501,
    /// 502: malformed method arguments.
    SyntaxError = 502,
    /// 503: invalid command sequence or argument.
    CommandInvalid = 503,
    /// 504: invalid channel use.
    ChannelError = 504,
    /// 505: unexpected frame.
    UnexpectedFrame = 505,
    /// 506: server resource exhausted.
    ResourceError = 506,
    /// 530: not allowed.
    NotAllowed = 530,
    /// 540: not implemented.
    NotImplemented = 540,
    /// 541: internal error.
    InternalError = 541,
}

impl ReplyCode {
    /// The numeric code sent on the wire.
    #[must_use]
    pub fn code(self) -> u16 {
        self as u16
    }

    /// The name RabbitMQ prefixes reply texts with, e.g. `NOT_FOUND`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::ReplySuccess => "REPLY_SUCCESS",
            Self::ContentTooLarge => "CONTENT_TOO_LARGE",
            Self::NoRoute => "NO_ROUTE",
            Self::NoConsumers => "NO_CONSUMERS",
            Self::ConnectionForced => "CONNECTION_FORCED",
            Self::InvalidPath => "INVALID_PATH",
            Self::AccessRefused => "ACCESS_REFUSED",
            Self::NotFound => "NOT_FOUND",
            Self::ResourceLocked => "RESOURCE_LOCKED",
            Self::PreconditionFailed => "PRECONDITION_FAILED",
            Self::FrameError => "FRAME_ERROR",
            Self::SyntaxError => "SYNTAX_ERROR",
            Self::CommandInvalid => "COMMAND_INVALID",
            Self::ChannelError => "CHANNEL_ERROR",
            Self::UnexpectedFrame => "UNEXPECTED_FRAME",
            Self::ResourceError => "RESOURCE_ERROR",
            Self::NotAllowed => "NOT_ALLOWED",
            Self::NotImplemented => "NOT_IMPLEMENTED",
            Self::InternalError => "INTERNAL_ERROR",
        }
    }

    /// True for the codes the specification marks as connection ("hard") errors.
    #[must_use]
    pub fn is_hard_error(self) -> bool {
        matches!(
            self,
            Self::ConnectionForced
                | Self::InvalidPath
                | Self::FrameError
                | Self::SyntaxError
                | Self::CommandInvalid
                | Self::ChannelError
                | Self::UnexpectedFrame
                | Self::ResourceError
                | Self::NotAllowed
                | Self::NotImplemented
                | Self::InternalError
        )
    }

    /// Look a code up by its number.
    #[must_use]
    pub fn from_code(code: u16) -> Option<Self> {
        ALL.iter().copied().find(|c| c.code() == code)
    }
}

const ALL: [ReplyCode; 19] = [
    ReplyCode::ReplySuccess,
    ReplyCode::ContentTooLarge,
    ReplyCode::NoRoute,
    ReplyCode::NoConsumers,
    ReplyCode::ConnectionForced,
    ReplyCode::InvalidPath,
    ReplyCode::AccessRefused,
    ReplyCode::NotFound,
    ReplyCode::ResourceLocked,
    ReplyCode::PreconditionFailed,
    ReplyCode::FrameError,
    ReplyCode::SyntaxError,
    ReplyCode::CommandInvalid,
    ReplyCode::ChannelError,
    ReplyCode::UnexpectedFrame,
    ReplyCode::ResourceError,
    ReplyCode::NotAllowed,
    ReplyCode::NotImplemented,
    ReplyCode::InternalError,
];

impl fmt::Display for ReplyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code(), self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_through_their_numbers() {
        for code in ALL {
            assert_eq!(ReplyCode::from_code(code.code()), Some(code));
        }
        assert_eq!(ReplyCode::from_code(999), None);
    }

    #[test]
    fn hard_errors_are_the_5xx_and_320_402() {
        for code in ALL {
            let n = code.code();
            assert_eq!(
                code.is_hard_error(),
                n >= 500 || n == 320 || n == 402,
                "{code}"
            );
        }
    }
}

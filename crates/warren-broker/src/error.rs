//! The one place where failures become AMQP exceptions: a reply code, a scope (channel or
//! connection), a text, and the class and method that failed.
//!
//! Texts follow RabbitMQ 3.10's wording (`NOT_FOUND - no queue 'q' in vhost '/'`) so that
//! clients and operators who match on them keep working. Where RabbitMQ prints an Erlang
//! term (frame dumps, `{frame_too_large,...}`), we say the same thing in words.

use std::fmt;

use thiserror::Error;
use warren_codec::method::{Method, MethodId};
use warren_codec::{CodecError, ReplyCode};
use warren_router::RouteError;

/// Whether an exception closes one channel or the whole connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `channel.close`: the connection and its other channels carry on.
    Channel,
    /// `connection.close`: everything on the connection ends.
    Connection,
}

/// An AMQP exception, ready to be sent as `channel.close` or `connection.close`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub struct AmqpException {
    /// Channel or connection.
    pub scope: Scope,
    /// The reply code.
    pub code: ReplyCode,
    /// The explanation, without the `CODE_NAME - ` prefix.
    pub text: String,
    /// The method being handled when it failed (0, 0 when none).
    pub method: MethodId,
}

impl fmt::Display for AmqpException {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reply_text())
    }
}

impl AmqpException {
    /// A channel-scoped exception.
    pub fn channel(code: ReplyCode, text: impl Into<String>) -> Self {
        Self {
            scope: Scope::Channel,
            code,
            text: text.into(),
            method: MethodId::default(),
        }
    }

    /// A connection-scoped exception.
    pub fn connection(code: ReplyCode, text: impl Into<String>) -> Self {
        Self {
            scope: Scope::Connection,
            code,
            text: text.into(),
            method: MethodId::default(),
        }
    }

    /// Name the failing method, unless one is named already.
    #[must_use]
    pub fn during(mut self, method: MethodId) -> Self {
        if self.method == MethodId::default() {
            self.method = method;
        }
        self
    }

    /// The `reply-text` as RabbitMQ formats it: `NOT_FOUND - no queue 'q' in vhost '/'`.
    #[must_use]
    pub fn reply_text(&self) -> String {
        let mut text = format!("{} - {}", self.code.name(), self.text);
        // reply-text is a short string. RabbitMQ cuts a longer one to 252 octets and
        // marks the cut with "..."; so do we, on a character boundary.
        if text.len() > 255 {
            let mut end = 252;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            text.push_str("...");
        }
        text
    }
}

/// A result whose error is an AMQP exception.
pub type AmqpResult<T = ()> = Result<T, AmqpException>;

const CONTENT: MethodId = MethodId::new(60, 40);

/// How a codec failure is reported. Frame-level failures (size, end octet, type) are
/// connection errors after which the byte stream cannot be trusted; see
/// [`is_fatal_framing`].
impl From<CodecError> for AmqpException {
    fn from(e: CodecError) -> Self {
        use CodecError as E;
        use ReplyCode as R;
        match e {
            E::FrameTooLarge { .. }
            | E::BadFrameEnd { .. }
            | E::UnknownFrameType { .. }
            | E::ShortMethodFrame(_)
            | E::MalformedContentHeader(_) => Self::connection(R::FrameError, e.to_string()),
            E::UnknownClass {
                class_id,
                method_id,
            }
            | E::UnknownMethod {
                class_id,
                method_id,
            } => Self::connection(R::NotImplemented, e.to_string())
                .during(MethodId::new(class_id, method_id)),
            E::Unimplemented {
                class_id,
                method_id,
            } => Self::connection(R::CommandInvalid, e.to_string())
                .during(MethodId::new(class_id, method_id)),
            E::MalformedArguments {
                class_id,
                method_id,
                name,
            } => Self::connection(R::FrameError, format!("cannot decode {name} arguments"))
                .during(MethodId::new(class_id, method_id)),
            E::HeaderClassMismatch { .. } | E::BodyOverrun { .. } => {
                Self::connection(R::UnexpectedFrame, e.to_string()).during(CONTENT)
            }
            E::UnexpectedFrame { expected, .. } => {
                let text = match expected {
                    "content header" => {
                        "expected content header for class 60, got non content header frame instead"
                    }
                    "content body" => "expected content body, got non content body frame instead",
                    _ => "expected method frame, got non method frame instead",
                };
                let exc = Self::connection(R::UnexpectedFrame, text);
                if expected == "method" {
                    exc
                } else {
                    exc.during(CONTENT)
                }
            }
            E::BodyTooLarge { .. } => {
                Self::channel(R::PreconditionFailed, e.to_string()).during(CONTENT)
            }
            E::Encode(_) => Self::connection(R::InternalError, e.to_string()),
        }
    }
}

/// True for codec failures after which the rest of the input cannot be framed, so the
/// connection is closed without reading further frames.
#[must_use]
pub fn is_fatal_framing(e: &CodecError) -> bool {
    matches!(
        e,
        CodecError::FrameTooLarge { .. }
            | CodecError::BadFrameEnd { .. }
            | CodecError::UnknownFrameType { .. }
    )
}

/// Routing-table failures, in the words RabbitMQ uses for them.
pub(crate) fn route_error(e: RouteError, vhost: &str) -> AmqpException {
    use ReplyCode as R;
    match e {
        RouteError::NoSuchExchange(name) => exchange_not_found(&name, vhost),
        RouteError::NoSuchQueue(name) => queue_not_found(&name, vhost),
        RouteError::DefaultExchange => default_exchange_refused(),
        RouteError::InvalidArguments(text) => AmqpException::channel(R::PreconditionFailed, text),
        RouteError::ExchangeExists(name) | RouteError::QueueExists(name) => {
            AmqpException::channel(R::InternalError, format!("'{name}' exists already"))
        }
    }
}

/// `404` for a missing exchange.
pub(crate) fn exchange_not_found(name: &str, vhost: &str) -> AmqpException {
    AmqpException::channel(
        ReplyCode::NotFound,
        format!("no exchange '{name}' in vhost '{vhost}'"),
    )
}

/// `404` for a missing queue.
pub(crate) fn queue_not_found(name: &str, vhost: &str) -> AmqpException {
    AmqpException::channel(
        ReplyCode::NotFound,
        format!("no queue '{name}' in vhost '{vhost}'"),
    )
}

/// `404` when `""` names the channel's last declared queue and there is none.
pub(crate) fn no_previous_queue() -> AmqpException {
    AmqpException::channel(ReplyCode::NotFound, "no previously declared queue")
}

/// `403` for anything aimed at the default exchange.
pub(crate) fn default_exchange_refused() -> AmqpException {
    AmqpException::channel(
        ReplyCode::AccessRefused,
        "operation not permitted on the default exchange",
    )
}

/// `403` for creating a name in the reserved `amq.` space.
pub(crate) fn reserved_name(kind: &str, name: &str) -> AmqpException {
    AmqpException::channel(
        ReplyCode::AccessRefused,
        format!("{kind} name '{name}' contains reserved prefix 'amq.*'"),
    )
}

/// `405` for another connection's exclusive queue.
pub(crate) fn resource_locked(name: &str, vhost: &str) -> AmqpException {
    AmqpException::channel(
        ReplyCode::ResourceLocked,
        format!(
            "cannot obtain exclusive access to locked queue '{name}' in vhost '{vhost}'. It could be \
             originally declared on another connection or the exclusive property value does not \
             match that of the original declaration."
        ),
    )
}

/// `406` for a redeclaration that differs in one property.
pub(crate) fn inequivalent(
    arg: &str,
    kind: &str,
    name: &str,
    vhost: &str,
    detail: &str,
) -> AmqpException {
    AmqpException::channel(
        ReplyCode::PreconditionFailed,
        format!("inequivalent arg '{arg}' for {kind} '{name}' in vhost '{vhost}': {detail}"),
    )
}

/// `406` for an argument of the wrong type or range.
pub(crate) fn invalid_arg(arg: &str, queue: &str, vhost: &str, detail: &str) -> AmqpException {
    AmqpException::channel(
        ReplyCode::PreconditionFailed,
        format!("invalid arg '{arg}' for queue '{queue}' in vhost '{vhost}': {detail}"),
    )
}

/// `406` for an acknowledgement naming a tag that is not outstanding.
pub(crate) fn unknown_delivery_tag(tag: u64) -> AmqpException {
    AmqpException::channel(
        ReplyCode::PreconditionFailed,
        format!("unknown delivery tag {tag}"),
    )
}

/// `540` for a feature Warren does not offer (yet), instead of ignoring the request.
pub(crate) fn not_implemented(what: impl Into<String>) -> AmqpException {
    AmqpException::connection(ReplyCode::NotImplemented, what)
}

/// `503` for a method that is valid AMQP but not one a client may send here.
pub(crate) fn command_invalid(text: impl Into<String>) -> AmqpException {
    AmqpException::connection(ReplyCode::CommandInvalid, text)
}

/// `504` for a method arriving where the connection state does not allow it.
pub(crate) fn channel_error(text: impl Into<String>) -> AmqpException {
    AmqpException::connection(ReplyCode::ChannelError, text)
}

/// A method decoded where only a few are accepted, each other one `unexpected` (a 504):
/// a 0-8 method Warren does not implement is as unexpected there as any other, as
/// RabbitMQ checks the state before it gets to "unimplemented method".
pub(crate) fn decoded_or_unexpected(
    decoded: Result<Method, CodecError>,
    unexpected: impl FnOnce(MethodId) -> AmqpException,
) -> AmqpResult<Method> {
    decoded.map_err(|e| match e {
        CodecError::Unimplemented {
            class_id,
            method_id,
        } => unexpected(MethodId::new(class_id, method_id)),
        e => e.into(),
    })
}

/// `505` for a frame of the wrong type on channel 0 (RabbitMQ dumps the octets, as
/// Erlang prints a binary).
pub(crate) fn unexpected_frame(frame_type: u8, payload: &[u8]) -> AmqpException {
    AmqpException::connection(
        ReplyCode::UnexpectedFrame,
        format!("type {frame_type}, all octets = {}", erlang_binary(payload)),
    )
}

/// A binary as Erlang's `~p` prints it: `<<"text">>` when printable, else the octets.
fn erlang_binary(octets: &[u8]) -> String {
    let shown = &octets[..octets.len().min(64)];
    if !shown.is_empty()
        && shown
            .iter()
            .all(|b| (0x20..0x7f).contains(b) && *b != b'"' && *b != b'\\')
    {
        return format!("<<\"{}\">>", String::from_utf8_lossy(shown));
    }
    let list: Vec<String> = shown.iter().map(u8::to_string).collect();
    format!("<<{}>>", list.join(","))
}

/// `406` for `x-`arguments given with a wrong value.
pub(crate) fn precondition(text: impl Into<String>) -> AmqpException {
    AmqpException::channel(ReplyCode::PreconditionFailed, text)
}

/// `403` for an access rule.
pub(crate) fn access_refused(text: impl Into<String>) -> AmqpException {
    AmqpException::channel(ReplyCode::AccessRefused, text)
}

/// `530` for what the connection's limits forbid.
pub(crate) fn not_allowed(text: impl Into<String>) -> AmqpException {
    AmqpException::connection(ReplyCode::NotAllowed, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_text_has_rabbitmq_prefix_and_fits_a_short_string() {
        let e = queue_not_found("q", "/");
        assert_eq!(e.reply_text(), "NOT_FOUND - no queue 'q' in vhost '/'");
        let long = queue_not_found(&"é".repeat(200), "/");
        assert!(long.reply_text().len() <= 255);
        assert!(long.reply_text().ends_with("é..."));
        // What RabbitMQ 3.10 sent for a passive declare of 'q' x 221.
        let long = queue_not_found(&"q".repeat(221), "/");
        assert_eq!(long.reply_text().len(), 255);
        assert!(long.reply_text().ends_with("qqqq' in vhos..."));
    }

    #[test]
    fn codec_errors_map_to_rabbitmq_codes_and_scopes() {
        let e: AmqpException = CodecError::BadFrameEnd {
            octet: 0,
            channel: 1,
        }
        .into();
        assert_eq!(
            (e.code, e.scope),
            (ReplyCode::FrameError, Scope::Connection)
        );
        let e: AmqpException = CodecError::UnexpectedFrame {
            expected: "content body",
            got: "method",
        }
        .into();
        assert_eq!(e.code, ReplyCode::UnexpectedFrame);
        assert_eq!(e.method, MethodId::new(60, 40));
        let e: AmqpException = CodecError::BodyTooLarge { size: 10, max: 5 }.into();
        assert_eq!(
            (e.code, e.scope),
            (ReplyCode::PreconditionFailed, Scope::Channel)
        );
    }
}

//! Queue declaration arguments: validated as RabbitMQ 3.10 validates them, compared as
//! it compares them on redeclaration, and refused with `540` where Warren does not yet
//! implement the behaviour they ask for (never silently ignored).

use warren_codec::types::{AMQPValue, FieldTable};
use warren_router::{erlang_equal, erlang_term, erlang_type_name};

use crate::error::{AmqpException, inequivalent, invalid_arg, not_implemented, precondition};

/// RabbitMQ's `declare_args()` (read from a running 3.10.8 node): the arguments it
/// validates, in this order, and compares when a queue is declared again.
const DECLARE_ARGS: [&str; 20] = [
    "x-expires",
    "x-message-ttl",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-dead-letter-strategy",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-in-memory-length",
    "x-max-in-memory-bytes",
    "x-max-priority",
    "x-overflow",
    "x-queue-mode",
    "x-queue-version",
    "x-single-active-consumer",
    "x-queue-type",
    "x-quorum-initial-group-size",
    "x-max-age",
    "x-stream-max-segment-size-bytes",
    "x-initial-cluster-size",
    "x-queue-leader-locator",
];

/// The arguments a classic queue takes (RabbitMQ's `rabbit_classic_queue`
/// capabilities), plus `x-delivery-limit`, which Warren's classic queues honour
/// (docs/compatibility.md).
const CLASSIC_ARGS: &[&str] = &[
    "x-expires",
    "x-message-ttl",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-priority",
    "x-overflow",
    "x-queue-mode",
    "x-queue-version",
    "x-single-active-consumer",
    "x-queue-type",
    "x-queue-master-locator",
    "x-delivery-limit",
];

/// The arguments of RabbitMQ's quorum queues.
const QUORUM_ARGS: &[&str] = &[
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-dead-letter-strategy",
    "x-expires",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-in-memory-length",
    "x-max-in-memory-bytes",
    "x-overflow",
    "x-single-active-consumer",
    "x-queue-type",
    "x-quorum-initial-group-size",
    "x-delivery-limit",
    "x-message-ttl",
    "x-queue-leader-locator",
];

/// The arguments of RabbitMQ's streams.
const STREAM_ARGS: &[&str] = &[
    "x-max-length-bytes",
    "x-queue-type",
    "x-max-age",
    "x-stream-max-segment-size-bytes",
    "x-initial-cluster-size",
    "x-queue-leader-locator",
];

/// Whether some queue type takes `key`: RabbitMQ refuses such an argument on a queue
/// of another type, and ignores keys no type knows.
fn known_argument(key: &str) -> bool {
    [CLASSIC_ARGS, QUORUM_ARGS, STREAM_ARGS]
        .iter()
        .any(|args| args.contains(&key))
}

/// What a queue's `x-` arguments ask for, parsed once at declaration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct QueueConfig {
    /// `x-message-ttl`, in milliseconds.
    pub message_ttl: Option<u64>,
    /// `x-expires`: delete the queue after this many unused milliseconds.
    pub expires: Option<u64>,
    /// `x-max-length`: ready messages.
    pub max_length: Option<u64>,
    /// `x-max-length-bytes`: ready body octets.
    pub max_length_bytes: Option<u64>,
    /// `x-overflow`.
    pub overflow: Overflow,
    /// `x-dead-letter-exchange`.
    pub dead_letter_exchange: Option<String>,
    /// `x-dead-letter-routing-key`.
    pub dead_letter_routing_key: Option<String>,
    /// `x-max-priority`.
    pub max_priority: Option<u8>,
    /// `x-single-active-consumer`.
    pub single_active_consumer: bool,
    /// `x-delivery-limit`: redeliveries allowed before the message is dead-lettered.
    pub delivery_limit: Option<u64>,
    /// `x-consumer-timeout`, in milliseconds.
    pub consumer_timeout: Option<u64>,
}

/// What happens when a length limit is reached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Overflow {
    /// Drop (dead-letter) the oldest ready message.
    #[default]
    DropHead,
    /// Refuse the new message (nack in confirm mode).
    RejectPublish,
    /// Refuse the new message and dead-letter it.
    RejectPublishDlx,
}

impl QueueConfig {
    /// True when a publish to this queue may be refused, so publisher confirms must wait
    /// for the queue's verdict.
    pub(crate) fn may_refuse(&self) -> bool {
        self.overflow != Overflow::DropHead
            && (self.max_length.is_some() || self.max_length_bytes.is_some())
    }

    pub(crate) fn from_arguments(args: &FieldTable) -> Self {
        let int = |k: &str| {
            args.inner()
                .get(k)
                .and_then(integer)
                .and_then(|n| u64::try_from(n).ok())
        };
        let text = |k: &str| args.inner().get(k).and_then(long_string);
        Self {
            message_ttl: int("x-message-ttl"),
            expires: int("x-expires"),
            max_length: int("x-max-length"),
            max_length_bytes: int("x-max-length-bytes"),
            overflow: match text("x-overflow").as_deref() {
                Some("reject-publish") => Overflow::RejectPublish,
                Some("reject-publish-dlx") => Overflow::RejectPublishDlx,
                _ => Overflow::DropHead,
            },
            dead_letter_exchange: text("x-dead-letter-exchange"),
            dead_letter_routing_key: text("x-dead-letter-routing-key"),
            max_priority: int("x-max-priority").map(|p| u8::try_from(p).unwrap_or(u8::MAX)),
            single_active_consumer: matches!(
                args.inner().get("x-single-active-consumer"),
                Some(AMQPValue::Boolean(true))
            ),
            delivery_limit: int("x-delivery-limit"),
            consumer_timeout: int("x-consumer-timeout"),
        }
    }
}

fn integer(v: &AMQPValue) -> Option<i64> {
    use AMQPValue as V;
    Some(match *v {
        V::ShortShortInt(n) => n.into(),
        V::ShortShortUInt(n) => n.into(),
        V::ShortInt(n) => n.into(),
        V::ShortUInt(n) => n.into(),
        V::LongInt(n) => n.into(),
        V::LongUInt(n) => n.into(),
        V::LongLongInt(n) => n,
        _ => return None,
    })
}

fn long_string(v: &AMQPValue) -> Option<String> {
    match v {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        _ => None,
    }
}

/// RabbitMQ's largest TTL or expiry: ten years, in milliseconds.
const MAX_EXPIRY: i64 = 315_360_000_000;

/// Check each argument RabbitMQ checks; `Err` carries RabbitMQ's reason text.
fn check_one(key: &str, value: &AMQPValue, all: &FieldTable) -> Result<(), String> {
    let expected = |what: &str| format!("\"expected {what}, got {}\"", erlang_type_name(value));
    let unacceptable = || format!("{{unacceptable_type,{}}}", erlang_type_name(value));
    let int = || integer(value).ok_or_else(|| expected("integer"));
    let non_negative = |n: i64| {
        if n < 0 {
            Err(format!("{{value_negative,{n}}}"))
        } else {
            Ok(())
        }
    };
    let expiry = |n: i64| {
        if n > MAX_EXPIRY {
            Err(format!("{{value_too_large,{n}}}"))
        } else {
            Ok(())
        }
    };
    match key {
        "x-expires" => {
            let n = int()?;
            if n == 0 {
                return Err("{value_zero,0}".into());
            }
            non_negative(n)?;
            expiry(n)
        }
        "x-message-ttl" => {
            let n = int()?;
            non_negative(n)?;
            expiry(n)
        }
        "x-max-length"
        | "x-max-length-bytes"
        | "x-max-in-memory-length"
        | "x-max-in-memory-bytes"
        | "x-delivery-limit"
        | "x-consumer-timeout" => non_negative(int()?),
        "x-max-priority" => match int()? {
            n if n < 0 => Err(format!("{{value_negative,{n}}}")),
            n if n > 255 => Err(format!("{{max_value_exceeded,{n}}}")),
            _ => Ok(()),
        },
        "x-dead-letter-routing-key" => {
            long_string(value).ok_or_else(unacceptable)?;
            if all.inner().contains_key("x-dead-letter-exchange") {
                Ok(())
            } else {
                Err("routing_key_but_no_dlx_defined".into())
            }
        }
        "x-overflow" => match long_string(value).as_deref() {
            Some("drop-head" | "reject-publish" | "reject-publish-dlx") => Ok(()),
            Some(_) => Err("invalid_overflow".into()),
            None => Err(unacceptable()),
        },
        "x-queue-version" => match int()? {
            1 | 2 => Ok(()),
            n if n < 0 => Err(format!("{{value_negative,{n}}}")),
            n => Err(format!("\"unsupported queue version '{n}'\"")),
        },
        "x-queue-mode" => match long_string(value).as_deref() {
            Some("default" | "lazy") => Ok(()),
            Some(other) => Err(format!("\"unsupported queue mode '{other}'\"")),
            None => Err(unacceptable()),
        },
        "x-single-active-consumer" => match value {
            AMQPValue::Boolean(_) => Ok(()),
            _ => Err(unacceptable()),
        },
        "x-queue-type" => match long_string(value).as_deref() {
            Some("classic" | "quorum" | "stream") => Ok(()),
            Some(other) => Err(format!("\"unsupported queue type '{other}'\"")),
            None => Err(unacceptable()),
        },
        _ => Ok(()),
    }
}

/// Validate a new queue's arguments as RabbitMQ does (406 with its texts) and parse
/// them. Quorum and stream queues are refused with 540: Warren offers classic queues.
pub(crate) fn validate(
    queue: &str,
    vhost: &str,
    args: &FieldTable,
) -> Result<QueueConfig, AmqpException> {
    if let Some(dlx) = args.inner().get("x-dead-letter-exchange")
        && long_string(dlx).is_none()
    {
        return Err(precondition(format!(
            "invalid type '{}' for arg 'x-dead-letter-exchange' in queue '{queue}' in vhost '{vhost}'",
            erlang_type_name(dlx)
        )));
    }
    let check = |key: &str| match args.inner().get(key) {
        Some(value) => {
            check_one(key, value, args).map_err(|why| invalid_arg(key, queue, vhost, &why))
        }
        None => Ok(()),
    };
    // The queue type first, for it decides which arguments are allowed; then each
    // allowed argument in RabbitMQ's order; then the arguments of other queue types.
    check("x-queue-type")?;
    let kind = args
        .inner()
        .get("x-queue-type")
        .and_then(long_string)
        .unwrap_or_else(|| "classic".to_owned());
    let allowed = match kind.as_str() {
        "quorum" => QUORUM_ARGS,
        "stream" => STREAM_ARGS,
        _ => CLASSIC_ARGS,
    };
    for key in DECLARE_ARGS.iter().filter(|k| allowed.contains(k)) {
        check(key)?;
    }
    // Not RabbitMQ arguments for classic queues, but Warren's (see CLASSIC_ARGS).
    check("x-delivery-limit")?;
    check("x-consumer-timeout")?;
    // RabbitMQ names the first in the order the client sent them; the table we decode
    // into is sorted, so with several we name the first in that order.
    if let Some(key) = args
        .inner()
        .keys()
        .map(|k| k.as_str())
        .find(|k| known_argument(k) && !allowed.contains(k))
    {
        return Err(precondition(format!(
            "invalid arg '{key}' for queue '{queue}' in vhost '{vhost}' of queue type rabbit_{kind}_queue"
        )));
    }
    if kind != "classic" {
        return Err(not_implemented(format!(
            "queue type '{kind}' is not supported; Warren offers classic queues"
        )));
    }
    Ok(QueueConfig::from_arguments(args))
}

/// `x-priority` on `basic.consume`: any integer type, as RabbitMQ accepts.
pub(crate) fn consumer_priority(
    queue: &str,
    vhost: &str,
    args: &FieldTable,
) -> Result<i64, AmqpException> {
    match args.inner().get("x-priority") {
        None => Ok(0),
        Some(value) => integer(value).ok_or_else(|| {
            invalid_arg(
                "x-priority",
                queue,
                vhost,
                &format!("\"expected integer, got {}\"", erlang_type_name(value)),
            )
        }),
    }
}

/// RabbitMQ's `assert_args_equivalence`: only `keys` are compared, by value.
pub(crate) fn assert_equivalent(
    kind: &str,
    name: &str,
    vhost: &str,
    current: &FieldTable,
    requested: &FieldTable,
    keys: &[&str],
) -> Result<(), AmqpException> {
    for key in keys {
        let detail = match (requested.inner().get(*key), current.inner().get(*key)) {
            (None, None) => continue,
            // A queue is classic whether it says so or not (RabbitMQ 3.10 agrees).
            (Some(v), None) | (None, Some(v))
                if *key == "x-queue-type" && long_string(v).as_deref() == Some("classic") =>
            {
                continue;
            }
            (Some(new), Some(old)) if erlang_equal(new, old) => continue,
            (Some(new), Some(old)) => format!(
                "received '{}' but current is '{}'",
                erlang_term(new),
                erlang_term(old)
            ),
            (Some(new), None) => format!(
                "received the value '{}' of type '{}' but current is none",
                erlang_term(new),
                erlang_type_name(new)
            ),
            (None, Some(old)) => format!(
                "received none but current is the value '{}' of type '{}'",
                erlang_term(old),
                erlang_type_name(old)
            ),
        };
        return Err(inequivalent(key, kind, name, vhost, &detail));
    }
    Ok(())
}

/// Compare a queue redeclaration's arguments with the queue's.
pub(crate) fn assert_queue_args(
    name: &str,
    vhost: &str,
    current: &FieldTable,
    requested: &FieldTable,
) -> Result<(), AmqpException> {
    assert_equivalent("queue", name, vhost, current, requested, &DECLARE_ARGS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_codec::ReplyCode;

    fn table(entries: &[(&str, AMQPValue)]) -> FieldTable {
        let mut t = FieldTable::default();
        for (k, v) in entries {
            t.insert((*k).into(), v.clone());
        }
        t
    }

    #[test]
    fn rabbitmq_validation_texts() {
        let e = validate(
            "q",
            "/",
            &table(&[("x-message-ttl", AMQPValue::LongInt(-1))]),
        )
        .unwrap_err();
        assert_eq!(
            e.reply_text(),
            "PRECONDITION_FAILED - invalid arg 'x-message-ttl' for queue 'q' in vhost '/': {value_negative,-1}"
        );
        let e = validate(
            "q",
            "/",
            &table(&[("x-message-ttl", AMQPValue::LongString("abc".into()))]),
        )
        .unwrap_err();
        assert_eq!(
            e.reply_text(),
            "PRECONDITION_FAILED - invalid arg 'x-message-ttl' for queue 'q' in vhost '/': \"expected integer, got longstr\""
        );
        let e = validate(
            "q",
            "/",
            &table(&[("x-max-priority", AMQPValue::LongInt(300))]),
        )
        .unwrap_err();
        assert!(e.text.ends_with("{max_value_exceeded,300}"));
        let e = validate("q", "/", &table(&[("x-expires", AMQPValue::LongInt(0))])).unwrap_err();
        assert!(e.text.ends_with("{value_zero,0}"));
    }

    #[test]
    fn arguments_parse_into_the_queue_config() {
        let c = validate(
            "q",
            "/",
            &table(&[
                ("x-message-ttl", AMQPValue::LongInt(5)),
                ("x-max-length", AMQPValue::ShortInt(3)),
                ("x-overflow", AMQPValue::LongString("reject-publish".into())),
                (
                    "x-dead-letter-exchange",
                    AMQPValue::LongString("dlx".into()),
                ),
                ("x-single-active-consumer", AMQPValue::Boolean(true)),
            ]),
        )
        .unwrap();
        assert_eq!(c.message_ttl, Some(5));
        assert_eq!(c.max_length, Some(3));
        assert_eq!(c.overflow, Overflow::RejectPublish);
        assert!(c.may_refuse() && c.single_active_consumer);
        assert_eq!(c.dead_letter_exchange.as_deref(), Some("dlx"));
        let e = validate(
            "q",
            "/",
            &table(&[("x-queue-type", AMQPValue::LongString("quorum".into()))]),
        )
        .unwrap_err();
        assert_eq!(e.code, ReplyCode::NotImplemented);
        validate(
            "q",
            "/",
            &table(&[("x-queue-type", AMQPValue::LongString("classic".into()))]),
        )
        .unwrap();
        validate(
            "q",
            "/",
            &table(&[("x-queue-mode", AMQPValue::LongString("lazy".into()))]),
        )
        .unwrap();
        validate("q", "/", &table(&[("x-custom", AMQPValue::LongInt(5))])).unwrap();
    }

    #[test]
    fn equivalence_texts() {
        let old = table(&[("x-max-length", AMQPValue::LongInt(10))]);
        let e = assert_queue_args("q", "/", &old, &FieldTable::default()).unwrap_err();
        assert_eq!(
            e.text,
            "inequivalent arg 'x-max-length' for queue 'q' in vhost '/': received none but current is the value '10' of type 'signedint'"
        );
        let same_value_other_width = table(&[("x-max-length", AMQPValue::LongLongInt(10))]);
        assert_queue_args("q", "/", &old, &same_value_other_width).unwrap();
        let ignored = table(&[
            ("x-max-length", AMQPValue::LongInt(10)),
            ("x-foo", AMQPValue::Boolean(true)),
        ]);
        assert_queue_args("q", "/", &old, &ignored).unwrap();
    }
}

//! Queue declaration arguments: validated as RabbitMQ 3.10 validates them, compared as
//! it compares them on redeclaration, and refused with `540` where Warren does not yet
//! implement the behaviour they ask for (never silently ignored).

use warren_codec::types::{AMQPValue, FieldTable};
use warren_router::{erlang_equal, erlang_term, erlang_type_name};

use crate::error::{AmqpException, inequivalent, invalid_arg, not_implemented};

/// The arguments RabbitMQ compares when a queue is declared again (its `declare_args`).
const EQUIVALENCE_KEYS: [&str; 18] = [
    "x-expires",
    "x-message-ttl",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-in-memory-length",
    "x-max-in-memory-bytes",
    "x-max-priority",
    "x-overflow",
    "x-queue-mode",
    "x-single-active-consumer",
    "x-queue-type",
    "x-quorum-initial-group-size",
    "x-max-age",
    "x-stream-max-segment-size-bytes",
    "x-initial-cluster-size",
    "x-queue-leader-locator",
];

/// Arguments whose behaviour Warren does not implement yet: declaring them is refused
/// rather than accepted and ignored.
const NOT_YET: [&str; 10] = [
    "x-expires",
    "x-message-ttl",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-max-length",
    "x-max-length-bytes",
    "x-overflow",
    "x-max-priority",
    "x-single-active-consumer",
    "x-delivery-limit",
];

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

/// Check each argument RabbitMQ checks; `Err` carries RabbitMQ's reason text.
fn check_one(key: &str, value: &AMQPValue, all: &FieldTable) -> Result<(), String> {
    let expected = |what: &str| format!("\"expected {what}, got {}\"", erlang_type_name(value));
    let int = || integer(value).ok_or_else(|| expected("integer"));
    match key {
        "x-expires" => match int()? {
            0 => Err("{value_zero,0}".into()),
            n if n < 0 => Err(format!("{{value_negative,{n}}}")),
            _ => Ok(()),
        },
        "x-message-ttl"
        | "x-max-length"
        | "x-max-length-bytes"
        | "x-max-in-memory-length"
        | "x-max-in-memory-bytes"
        | "x-delivery-limit" => match int()? {
            n if n < 0 => Err(format!("{{value_negative,{n}}}")),
            _ => Ok(()),
        },
        "x-max-priority" => match int()? {
            n if n < 0 => Err(format!("{{value_negative,{n}}}")),
            n if n > 255 => Err(format!("{{max_value_exceeded,{n}}}")),
            _ => Ok(()),
        },
        "x-dead-letter-exchange" => long_string(value)
            .map(|_| ())
            .ok_or_else(|| expected("longstr")),
        "x-dead-letter-routing-key" => {
            long_string(value).ok_or_else(|| expected("longstr"))?;
            if all.inner().contains_key("x-dead-letter-exchange") {
                Ok(())
            } else {
                Err("routing_key_but_no_dlx_defined".into())
            }
        }
        "x-overflow" => match long_string(value).as_deref() {
            Some("drop-head" | "reject-publish" | "reject-publish-dlx") => Ok(()),
            _ => Err("invalid_overflow".into()),
        },
        "x-queue-mode" => match long_string(value).as_deref() {
            Some("default" | "lazy") => Ok(()),
            Some(other) => Err(format!("\"unsupported queue mode '{other}'\"")),
            None => Err(expected("longstr")),
        },
        "x-single-active-consumer" => match value {
            AMQPValue::Boolean(_) => Ok(()),
            _ => Err(expected("bool")),
        },
        "x-queue-type" => match long_string(value).as_deref() {
            Some("classic" | "quorum" | "stream") => Ok(()),
            Some(other) => Err(format!("\"unsupported queue type '{other}'\"")),
            None => Err(expected("longstr")),
        },
        _ => Ok(()),
    }
}

/// Validate a new queue's arguments: RabbitMQ's checks first (406), then what Warren
/// cannot honour yet (540).
pub(crate) fn validate(queue: &str, vhost: &str, args: &FieldTable) -> Result<(), AmqpException> {
    for (key, value) in args.inner() {
        check_one(key.as_str(), value, args)
            .map_err(|why| invalid_arg(key.as_str(), queue, vhost, &why))?;
    }
    for (key, value) in args.inner() {
        let key = key.as_str();
        if NOT_YET.contains(&key) {
            return Err(not_implemented(format!(
                "queue argument '{key}' is not supported yet"
            )));
        }
        if key == "x-queue-type" && long_string(value).as_deref() != Some("classic") {
            return Err(not_implemented(format!(
                "queue type '{}' is not supported; Warren offers classic queues",
                erlang_term(value)
            )));
        }
    }
    Ok(())
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
    assert_equivalent("queue", name, vhost, current, requested, &EQUIVALENCE_KEYS)
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
    fn unimplemented_features_are_refused_not_ignored() {
        let e = validate(
            "q",
            "/",
            &table(&[("x-message-ttl", AMQPValue::LongInt(5))]),
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

//! Dead-lettering, as RabbitMQ 3.10 does it: the message gets an `x-death` entry (one
//! per queue and reason, with a count), `x-first-death-*` headers on its first death,
//! loses its `expiration`, and is published to the dead-letter exchange with the
//! dead-letter routing key or its original routing keys. A message that would come
//! back to a queue it already died in, with no rejection anywhere in that cycle, is
//! dropped for that queue.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use warren_codec::properties::{decode_properties, encode_properties};
use warren_codec::spec::BasicProperties;
use warren_codec::types::{AMQPValue, FieldArray, FieldTable, LongString};
use warren_router::MessageSource;
use warren_store::{Message, MessageRef};

/// Why a message died: the `reason` of its `x-death` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    /// `basic.reject` or `basic.nack` without requeue.
    Rejected,
    /// Its TTL passed.
    Expired,
    /// A length limit pushed it out (or refused it, with `reject-publish-dlx`).
    MaxLen,
    /// It was returned more often than `x-delivery-limit` allows.
    DeliveryLimit,
}

impl Reason {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Rejected => "rejected",
            Self::Expired => "expired",
            Self::MaxLen => "maxlen",
            Self::DeliveryLimit => "delivery_limit",
        }
    }
}

fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

fn octets(b: &[u8]) -> AMQPValue {
    AMQPValue::LongString(LongString::from(b.to_vec()))
}

fn long_string_of(table: &FieldTable, key: &str) -> Option<Vec<u8>> {
    match table.inner().get(key) {
        Some(AMQPValue::LongString(s)) => Some(s.as_bytes().to_vec()),
        _ => None,
    }
}

/// The `CC` routing keys carried in `headers`.
pub(crate) fn cc_keys(headers: &FieldTable) -> Vec<Bytes> {
    match headers.inner().get("CC") {
        Some(AMQPValue::FieldArray(keys)) => keys
            .as_slice()
            .iter()
            .filter_map(|k| match k {
                AMQPValue::LongString(s) => Some(Bytes::copy_from_slice(s.as_bytes())),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn count_of(v: Option<&AMQPValue>) -> i64 {
    match v {
        Some(AMQPValue::LongLongInt(n)) => *n,
        Some(AMQPValue::LongInt(n)) => (*n).into(),
        Some(AMQPValue::LongUInt(n)) => (*n).into(),
        Some(AMQPValue::ShortInt(n)) => (*n).into(),
        Some(AMQPValue::ShortUInt(n)) => (*n).into(),
        Some(AMQPValue::ShortShortInt(n)) => (*n).into(),
        Some(AMQPValue::ShortShortUInt(n)) => (*n).into(),
        _ => 0,
    }
}

/// A dead-lettered copy of a message, ready to route.
#[derive(Debug)]
pub(crate) struct DeadLetter {
    pub message: MessageRef,
    /// Routing keys to route it with: the dead-letter key, or its original keys.
    pub routing_key: Bytes,
    pub extra_keys: Vec<Bytes>,
    /// Its headers after the death was recorded (for cycle detection and routing).
    pub headers: FieldTable,
}

impl MessageSource for DeadLetter {
    fn headers(&self) -> Option<&FieldTable> {
        Some(&self.headers)
    }
}

/// Record a death of `message` in `queue` and build the copy to publish to
/// `exchange` (the queue's dead-letter exchange).
pub(crate) fn dead_letter(
    message: &Message,
    reason: Reason,
    queue: &str,
    exchange: &str,
    dead_letter_routing_key: Option<&str>,
) -> DeadLetter {
    // Properties that do not decode cannot be re-encoded; they were validated on publish.
    let mut props = decode_properties(&message.properties).unwrap_or_default();
    let mut headers = props.headers().clone().unwrap_or_default();
    let cc = cc_keys(&headers);
    let mut routing_keys = vec![AMQPValue::LongString(LongString::from(
        message.routing_key.to_vec(),
    ))];
    routing_keys.extend(cc.iter().map(|k| octets(k)));
    let time = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut info = FieldTable::default();
    info.insert("count".into(), AMQPValue::LongLongInt(1));
    info.insert("reason".into(), text(reason.name()));
    info.insert("queue".into(), text(queue));
    info.insert("time".into(), AMQPValue::Timestamp(time));
    info.insert("exchange".into(), octets(&message.exchange));
    info.insert(
        "routing-keys".into(),
        AMQPValue::FieldArray(FieldArray::from(routing_keys)),
    );
    if let Some(expiration) = props.expiration() {
        info.insert("original-expiration".into(), text(expiration.as_str()));
    }
    let deaths = match headers.inner().get("x-death") {
        None => {
            headers.insert("x-first-death-reason".into(), text(reason.name()));
            headers.insert("x-first-death-queue".into(), text(queue));
            headers.insert("x-first-death-exchange".into(), octets(&message.exchange));
            vec![AMQPValue::FieldTable(info)]
        }
        Some(AMQPValue::FieldArray(existing)) => {
            let mut others = Vec::with_capacity(existing.as_slice().len() + 1);
            let mut matched = None;
            for entry in existing.as_slice() {
                let same = matches!(entry, AMQPValue::FieldTable(t)
                    if long_string_of(t, "queue").as_deref() == Some(queue.as_bytes())
                        && long_string_of(t, "reason").as_deref() == Some(reason.name().as_bytes()));
                match entry {
                    AMQPValue::FieldTable(t) if same && matched.is_none() => {
                        matched = Some(t.clone())
                    }
                    other => others.push(other.clone()),
                }
            }
            // An earlier death in the same queue for the same reason is counted again and
            // moves to the front, keeping its first time, exchange and keys.
            let front = match matched {
                Some(mut t) => {
                    let n = count_of(t.inner().get("count"));
                    t.insert("count".into(), AMQPValue::LongLongInt(n + 1));
                    t
                }
                None => info,
            };
            // RabbitMQ regroups the other entries with a fold that reverses them each time.
            let mut all = vec![AMQPValue::FieldTable(front)];
            all.extend(others.into_iter().rev());
            all
        }
        // Not an array: RabbitMQ replaces it.
        Some(_) => vec![AMQPValue::FieldTable(info)],
    };
    headers.insert(
        "x-death".into(),
        AMQPValue::FieldArray(FieldArray::from(deaths)),
    );
    let (routing_key, extra_keys) = match dead_letter_routing_key {
        Some(key) => {
            // With an explicit key the CC keys no longer apply.
            let mut without_cc = FieldTable::default();
            for (k, v) in headers.inner() {
                if k.as_str() != "CC" {
                    without_cc.insert(k.clone(), v.clone());
                }
            }
            headers = without_cc;
            (Bytes::copy_from_slice(key.as_bytes()), Vec::new())
        }
        None => (message.routing_key.clone(), cc),
    };
    props = props.with_headers(headers.clone());
    let props = strip_expiration(props);
    let properties = encode_properties(&props)
        .map(Bytes::from)
        .unwrap_or_else(|_| message.properties.clone());
    DeadLetter {
        message: MessageRef::new(Message {
            exchange: Bytes::copy_from_slice(exchange.as_bytes()),
            routing_key: routing_key.clone(),
            properties,
            body: message.body.clone(),
            persistent: message.persistent,
            priority: message.priority,
            expiration: None,
        }),
        routing_key,
        extra_keys,
        headers,
    }
}

/// The same properties without `expiration` (amq-protocol has no setter to clear one).
fn strip_expiration(props: BasicProperties) -> BasicProperties {
    if props.expiration().is_none() {
        return props;
    }
    let mut out = BasicProperties::default();
    if let Some(v) = props.content_type() {
        out = out.with_content_type(v.clone());
    }
    if let Some(v) = props.content_encoding() {
        out = out.with_content_encoding(v.clone());
    }
    if let Some(v) = props.headers() {
        out = out.with_headers(v.clone());
    }
    if let Some(v) = props.delivery_mode() {
        out = out.with_delivery_mode(*v);
    }
    if let Some(v) = props.priority() {
        out = out.with_priority(*v);
    }
    if let Some(v) = props.correlation_id() {
        out = out.with_correlation_id(v.clone());
    }
    if let Some(v) = props.reply_to() {
        out = out.with_reply_to(v.clone());
    }
    if let Some(v) = props.message_id() {
        out = out.with_message_id(v.clone());
    }
    if let Some(v) = props.timestamp() {
        out = out.with_timestamp(*v);
    }
    if let Some(v) = props.kind() {
        out = out.with_type(v.clone());
    }
    if let Some(v) = props.user_id() {
        out = out.with_user_id(v.clone());
    }
    if let Some(v) = props.app_id() {
        out = out.with_app_id(v.clone());
    }
    if let Some(v) = props.cluster_id() {
        out = out.with_cluster_id(v.clone());
    }
    out
}

/// RabbitMQ's cycle rule: dropping `target` if the message already died there and no
/// death since then (that one included) was a rejection. Rejections never cycle.
pub(crate) fn is_cycle(headers: &FieldTable, reason: Reason, target: &str) -> bool {
    if reason == Reason::Rejected {
        return false;
    }
    let Some(AMQPValue::FieldArray(deaths)) = headers.inner().get("x-death") else {
        return false;
    };
    let mut saw_reject = false;
    for entry in deaths.as_slice() {
        let AMQPValue::FieldTable(t) = entry else {
            continue;
        };
        saw_reject |= long_string_of(t, "reason").as_deref() == Some(b"rejected".as_slice());
        if long_string_of(t, "queue").as_deref() == Some(target.as_bytes()) {
            return !saw_reject;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(props: &BasicProperties) -> Message {
        Message {
            exchange: Bytes::from_static(b"src"),
            routing_key: Bytes::from_static(b"rk"),
            properties: Bytes::from(encode_properties(props).unwrap()),
            body: Bytes::from_static(b"body").into(),
            persistent: false,
            priority: 0,
            expiration: None,
        }
    }

    fn deaths(h: &FieldTable) -> Vec<FieldTable> {
        match h.inner().get("x-death") {
            Some(AMQPValue::FieldArray(a)) => a
                .as_slice()
                .iter()
                .map(|v| match v {
                    AMQPValue::FieldTable(t) => t.clone(),
                    _ => panic!(),
                })
                .collect(),
            _ => panic!("no x-death"),
        }
    }

    #[test]
    fn first_death_and_repeat_deaths() {
        let m = message(&BasicProperties::default().with_expiration("60000".into()));
        let first = dead_letter(&m, Reason::Rejected, "A", "dlx", None);
        assert_eq!(
            long_string_of(&first.headers, "x-first-death-queue").unwrap(),
            b"A"
        );
        let d = deaths(&first.headers);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].inner().get("count"), Some(&AMQPValue::LongLongInt(1)));
        assert_eq!(
            long_string_of(&d[0], "original-expiration").unwrap(),
            b"60000"
        );
        let props = decode_properties(&first.message.properties).unwrap();
        assert!(props.expiration().is_none());
        assert_eq!(&first.message.exchange[..], b"dlx");
        // Dies in B, then in A again: A's entry is counted and moves to the front.
        let second = dead_letter(&first.message, Reason::Expired, "B", "back", None);
        let third = dead_letter(&second.message, Reason::Rejected, "A", "dlx", None);
        let d = deaths(&third.headers);
        assert_eq!(long_string_of(&d[0], "queue").unwrap(), b"A");
        assert_eq!(d[0].inner().get("count"), Some(&AMQPValue::LongLongInt(2)));
        assert_eq!(long_string_of(&d[1], "queue").unwrap(), b"B");
        assert_eq!(
            long_string_of(&third.headers, "x-first-death-queue").unwrap(),
            b"A"
        );
    }

    #[test]
    fn cycles_without_a_rejection_are_detected() {
        let m = message(&BasicProperties::default());
        let once = dead_letter(&m, Reason::Expired, "A", "x", None);
        assert!(is_cycle(&once.headers, Reason::Expired, "A"));
        assert!(!is_cycle(&once.headers, Reason::Expired, "B"));
        assert!(!is_cycle(&once.headers, Reason::Rejected, "A"));
        let rejected = dead_letter(&m, Reason::Rejected, "A", "x", None);
        let then_expired = dead_letter(&rejected.message, Reason::Expired, "B", "x", None);
        assert!(!is_cycle(&then_expired.headers, Reason::Expired, "A"));
    }

    #[test]
    fn dead_letter_routing_key_replaces_keys_and_cc() {
        let mut h = FieldTable::default();
        h.insert(
            "CC".into(),
            AMQPValue::FieldArray(FieldArray::from(vec![text("cc1")])),
        );
        let m = message(&BasicProperties::default().with_headers(h));
        let plain = dead_letter(&m, Reason::Rejected, "A", "x", None);
        assert_eq!(plain.extra_keys, vec![Bytes::from_static(b"cc1")]);
        let keyed = dead_letter(&m, Reason::Rejected, "A", "x", Some("dl"));
        assert_eq!(&keyed.routing_key[..], b"dl");
        assert!(keyed.extra_keys.is_empty());
        assert!(!keyed.headers.contains_key("CC"));
        let d = deaths(&keyed.headers);
        assert!(
            matches!(d[0].inner().get("routing-keys"), Some(AMQPValue::FieldArray(a)) if a.as_slice().len() == 2)
        );
    }
}

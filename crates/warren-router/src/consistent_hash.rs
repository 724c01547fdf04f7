//! The consistent-hash exchange (`x-consistent-hash`), as RabbitMQ's plugin defines it:
//! each binding's key is a weight, the number of buckets it owns; a message goes to the
//! one destination owning the bucket that jump consistent hashing picks for the hash of
//! its routing key, or of the header (`hash-header`) or property (`hash-property`) the
//! exchange names. Adding a binding appends buckets, so only about 1/n of the keys move.

use amq_protocol::types::{AMQPValue, FieldTable};
use bytes::Bytes;

use crate::{Dest, MessageSource, RouteError};

/// What a consistent-hash exchange hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HashOn {
    RoutingKey,
    Header(String),
    Property(Property),
}

/// The properties RabbitMQ's plugin can hash on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Property {
    /// `correlation_id`.
    CorrelationId,
    /// `message_id`.
    MessageId,
    /// `timestamp`, hashed as its decimal digits.
    Timestamp,
}

#[derive(Debug)]
pub(crate) struct ConsistentHash<Q> {
    hash_on: HashOn,
    /// Bindings in the order they were made, with their weights.
    bindings: Vec<(Dest<Q>, Bytes, u32)>,
    /// Bucket number -> index into `bindings`.
    buckets: Vec<u32>,
}

fn text_arg(args: &FieldTable, key: &str) -> Option<String> {
    match args.inner().get(key)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

/// A binding key must be a positive integer: the binding's weight.
pub(crate) fn weight(key: &[u8]) -> Result<u32, RouteError> {
    let parsed = std::str::from_utf8(key)
        .ok()
        .and_then(|k| k.parse::<i64>().ok());
    match parsed {
        None => Err(RouteError::InvalidArguments(format!(
            "The binding key must be an integer: <<\"{}\">>",
            String::from_utf8_lossy(key)
        ))),
        Some(w) if w < 1 => Err(RouteError::InvalidArguments(
            "The binding key must be greater than 0".into(),
        )),
        Some(w) => Ok(u32::try_from(w).unwrap_or(u32::MAX).min(100_000)),
    }
}

impl<Q: Clone + Eq> ConsistentHash<Q> {
    pub(crate) fn new(args: &FieldTable) -> Result<Self, RouteError> {
        let hash_on = match (
            text_arg(args, "hash-header"),
            text_arg(args, "hash-property"),
        ) {
            (None, None) => HashOn::RoutingKey,
            (Some(h), None) => HashOn::Header(h),
            (None, Some(p)) => HashOn::Property(match p.as_str() {
                "correlation_id" => Property::CorrelationId,
                "message_id" => Property::MessageId,
                "timestamp" => Property::Timestamp,
                other => {
                    return Err(RouteError::InvalidArguments(format!(
                        "Unsupported property: {other}"
                    )));
                }
            }),
            (Some(_), Some(_)) => {
                return Err(RouteError::InvalidArguments(
                    "hash-header and hash-property are mutually exclusive".into(),
                ));
            }
        };
        Ok(Self {
            hash_on,
            bindings: Vec::new(),
            buckets: Vec::new(),
        })
    }

    pub(crate) fn add(&mut self, dest: Dest<Q>, key: &Bytes) -> Result<(), RouteError> {
        let w = weight(key)?;
        let index = u32::try_from(self.bindings.len()).unwrap_or(u32::MAX);
        self.bindings.push((dest, key.clone(), w));
        self.buckets.extend(std::iter::repeat_n(index, w as usize));
        Ok(())
    }

    pub(crate) fn remove(&mut self, dest: &Dest<Q>, key: &Bytes) {
        if let Some(pos) = self
            .bindings
            .iter()
            .position(|(d, k, _)| d == dest && k == key)
        {
            self.bindings.remove(pos);
            // Later bindings' buckets shift down, as in RabbitMQ's plugin.
            self.buckets = self
                .bindings
                .iter()
                .enumerate()
                .flat_map(|(i, (_, _, w))| std::iter::repeat_n(i as u32, *w as usize))
                .collect();
        }
    }

    pub(crate) fn route<'a>(
        &'a self,
        routing_key: &[u8],
        message: &dyn MessageSource,
        emit: &mut dyn FnMut(&'a Dest<Q>),
    ) {
        if self.buckets.is_empty() {
            return;
        }
        let hash = match &self.hash_on {
            HashOn::RoutingKey => fnv1a(routing_key),
            HashOn::Header(name) => {
                match message.headers().and_then(|h| h.inner().get(name.as_str())) {
                    Some(value) => fnv1a(&value_octets(value)),
                    None => fnv1a(b"undefined"),
                }
            }
            HashOn::Property(p) => match message.property(*p) {
                Some(value) => fnv1a(&value),
                None => fnv1a(b"undefined"),
            },
        };
        let bucket = jump_consistent_hash(hash, self.buckets.len());
        if let Some(&index) = self.buckets.get(bucket) {
            emit(&self.bindings[index as usize].0);
        }
    }
}

fn value_octets(value: &AMQPValue) -> Vec<u8> {
    match value {
        AMQPValue::LongString(s) => s.as_bytes().to_vec(),
        AMQPValue::ShortString(s) => s.as_str().as_bytes().to_vec(),
        AMQPValue::ByteArray(b) => b.as_slice().to_vec(),
        other => crate::erlang_term(other).into_bytes(),
    }
}

/// FNV-1a, 64-bit: stable across builds and platforms, unlike the standard hasher.
fn fnv1a(octets: &[u8]) -> u64 {
    octets.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Lamping and Veach's jump consistent hash: a bucket in `0..buckets`.
fn jump_consistent_hash(mut key: u64, buckets: usize) -> usize {
    let mut b: i64 = -1;
    let mut j: i64 = 0;
    let n = i64::try_from(buckets).unwrap_or(i64::MAX);
    while j < n {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        #[allow(
            clippy::cast_precision_loss,
            reason = "the algorithm is defined in floating point"
        )]
        let next = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
        j = next;
    }
    usize::try_from(b).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_validate_like_rabbitmq() {
        assert_eq!(weight(b"10").unwrap(), 10);
        assert_eq!(
            weight(b"abc").unwrap_err().to_string(),
            "The binding key must be an integer: <<\"abc\">>"
        );
        assert_eq!(
            weight(b"0").unwrap_err().to_string(),
            "The binding key must be greater than 0"
        );
    }

    #[test]
    fn jump_hash_moves_few_keys_when_buckets_are_added() {
        let moved = (0u64..10_000)
            .filter(|k| {
                let h = fnv1a(&k.to_be_bytes());
                jump_consistent_hash(h, 10) != jump_consistent_hash(h, 11)
            })
            .count();
        // About 1/11 of the keys should move.
        assert!((600..1300).contains(&moved), "{moved}");
        for k in 0..1000u64 {
            assert!(jump_consistent_hash(k, 7) < 7);
        }
    }
}

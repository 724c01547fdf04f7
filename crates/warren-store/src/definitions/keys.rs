//! Record keys. Every component is length-prefixed, so a key prefix (say, "bindings of
//! this source") can never match a longer name that merely starts the same way.

use super::{BindingDef, DestKind};

const EXCHANGE: u8 = b'x';
const QUEUE: u8 = b'q';
/// Bindings by source: what deleting an exchange as a source scans.
const BINDING: u8 = b'b';
/// Bindings by destination: what deleting a queue (or a destination exchange) scans.
const BINDING_BY_DEST: u8 = b'r';

fn push(key: &mut Vec<u8>, part: &[u8]) {
    // Names are short strings (at most 255 octets on the wire); tables are small.
    let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
    key.extend_from_slice(&len.to_be_bytes());
    key.extend_from_slice(part);
}

fn key(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + parts.iter().map(|p| p.len() + 4).sum::<usize>());
    k.push(tag);
    for p in parts {
        push(&mut k, p);
    }
    k
}

fn kind_octet(kind: DestKind) -> &'static [u8] {
    match kind {
        DestKind::Queue => b"q",
        DestKind::Exchange => b"x",
    }
}

pub(super) fn exchange(vhost: &str, name: &str) -> Vec<u8> {
    key(EXCHANGE, &[vhost.as_bytes(), name.as_bytes()])
}

pub(super) fn queue(vhost: &str, name: &str) -> Vec<u8> {
    key(QUEUE, &[vhost.as_bytes(), name.as_bytes()])
}

pub(super) fn binding(b: &BindingDef) -> Vec<u8> {
    key(
        BINDING,
        &[
            b.vhost.as_bytes(),
            b.source.as_bytes(),
            kind_octet(b.dest_kind),
            b.destination.as_bytes(),
            &b.routing_key,
            &b.arguments,
        ],
    )
}

pub(super) fn binding_by_dest(b: &BindingDef) -> Vec<u8> {
    key(
        BINDING_BY_DEST,
        &[
            b.vhost.as_bytes(),
            kind_octet(b.dest_kind),
            b.destination.as_bytes(),
            b.source.as_bytes(),
            &b.routing_key,
            &b.arguments,
        ],
    )
}

/// Prefix of every binding whose source is `source`.
pub(super) fn bindings_from(vhost: &str, source: &str) -> Vec<u8> {
    key(BINDING, &[vhost.as_bytes(), source.as_bytes()])
}

/// Prefix of every by-destination entry for bindings to `destination`.
pub(super) fn bindings_to(vhost: &str, kind: DestKind, destination: &str) -> Vec<u8> {
    key(
        BINDING_BY_DEST,
        &[vhost.as_bytes(), kind_octet(kind), destination.as_bytes()],
    )
}

/// The generation of the last write (see `DefinitionStore::generation`).
pub(super) const GENERATION: &[u8] = b"m\0generation";

/// Prefixes for loading each kind of record.
pub(super) const EXCHANGES: &[u8] = &[EXCHANGE];
pub(super) const QUEUES: &[u8] = &[QUEUE];
pub(super) const BINDINGS: &[u8] = &[BINDING];

/// A key, printable for an operator.
pub(super) fn describe(key: &[u8]) -> String {
    String::from_utf8_lossy(key)
        .chars()
        .map(|c| if c.is_control() { '.' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_do_not_match_longer_names() {
        let b = BindingDef {
            vhost: "/".into(),
            source: "orders-eu".into(),
            dest_kind: DestKind::Queue,
            destination: "q".into(),
            routing_key: vec![],
            arguments: vec![],
        };
        assert!(!binding(&b).starts_with(&bindings_from("/", "orders")));
        assert!(binding(&b).starts_with(&bindings_from("/", "orders-eu")));
        assert!(binding_by_dest(&b).starts_with(&bindings_to("/", DestKind::Queue, "q")));
        assert!(!binding_by_dest(&b).starts_with(&bindings_to("/", DestKind::Exchange, "q")));
    }
}

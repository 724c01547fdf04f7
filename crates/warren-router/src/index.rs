//! Per-exchange-type routing indexes. Each answers "which destinations does this key (or
//! these headers) reach?" and nothing else; binding identity lives in `Exchange`.

use foldhash::{HashMap, HashMapExt};
use std::hash::Hash;

use amq_protocol::types::FieldTable;
use bytes::Bytes;
use smallvec::SmallVec;

use crate::consistent_hash::{ConsistentHash, weight};
use crate::headers::HeadersPattern;
use crate::{Dest, ExchangeKind, MessageSource, RouteError, TopicTrie};

/// Destinations with how many bindings lead to each.
type Counted<Q> = SmallVec<[(Dest<Q>, u32); 1]>;

#[derive(Debug)]
pub(crate) struct HeadersEntry<Q> {
    dest: Dest<Q>,
    routing_key: Bytes,
    arguments: FieldTable,
    pattern: HeadersPattern,
}

#[derive(Debug)]
pub(crate) enum Index<Q> {
    Direct(HashMap<Bytes, Counted<Q>>),
    Fanout(Vec<(Dest<Q>, u32)>),
    Topic(TopicTrie<Dest<Q>>),
    Headers(Vec<HeadersEntry<Q>>),
    ConsistentHash(ConsistentHash<Q>),
}

/// Remove one binding's count from `list`; false if `dest` was not there.
fn count_out<Q: Eq, A: smallvec::Array<Item = (Dest<Q>, u32)>>(
    list: &mut SmallVec<A>,
    dest: &Dest<Q>,
) -> bool {
    let Some(pos) = list.iter().position(|(d, _)| d == dest) else {
        return false;
    };
    list[pos].1 -= 1;
    if list[pos].1 == 0 {
        list.swap_remove(pos);
    }
    true
}

impl<Q: Clone + Eq + Hash> Index<Q> {
    /// An empty index; the exchange's arguments are checked where the type uses them.
    pub(crate) fn new(kind: ExchangeKind, exchange_args: &FieldTable) -> Result<Self, RouteError> {
        Ok(match kind {
            ExchangeKind::Direct => Self::Direct(HashMap::new()),
            ExchangeKind::Fanout => Self::Fanout(Vec::new()),
            ExchangeKind::Topic => Self::Topic(TopicTrie::default()),
            ExchangeKind::Headers => Self::Headers(Vec::new()),
            ExchangeKind::ConsistentHash => {
                Self::ConsistentHash(ConsistentHash::new(exchange_args)?)
            }
        })
    }

    /// Check that a binding's key and arguments suit this index, before anything changes.
    pub(crate) fn validate(&self, key: &[u8], arguments: &FieldTable) -> Result<(), RouteError> {
        match self {
            Self::Headers(_) => HeadersPattern::new(arguments).map(|_| ()),
            Self::ConsistentHash(_) => weight(key).map(|_| ()),
            Self::Direct(_) | Self::Fanout(_) | Self::Topic(_) => Ok(()),
        }
    }

    pub(crate) fn add(
        &mut self,
        dest: Dest<Q>,
        key: &Bytes,
        arguments: &FieldTable,
    ) -> Result<(), RouteError> {
        match self {
            Self::Direct(map) => {
                let list = map.entry(key.clone()).or_default();
                let found = list.iter().position(|(d, _)| *d == dest);
                match found {
                    Some(i) => list[i].1 += 1,
                    None => list.push((dest, 1)),
                }
            }
            Self::Fanout(list) => {
                let found = list.iter().position(|(d, _)| *d == dest);
                match found {
                    Some(i) => list[i].1 += 1,
                    None => list.push((dest, 1)),
                }
            }
            Self::Topic(trie) => trie.insert(key, dest),
            Self::ConsistentHash(ch) => ch.add(dest, key)?,
            Self::Headers(entries) => entries.push(HeadersEntry {
                pattern: HeadersPattern::new(arguments)?,
                dest,
                routing_key: key.clone(),
                arguments: arguments.clone(),
            }),
        }
        Ok(())
    }

    pub(crate) fn remove(&mut self, dest: &Dest<Q>, key: &Bytes, arguments: &FieldTable) {
        match self {
            Self::Direct(map) => {
                if let Some(list) = map.get_mut(key) {
                    count_out(list, dest);
                    if list.is_empty() {
                        map.remove(key);
                    }
                }
            }
            Self::Fanout(list) => {
                if let Some(pos) = list.iter().position(|(d, _)| d == dest) {
                    list[pos].1 -= 1;
                    if list[pos].1 == 0 {
                        list.swap_remove(pos);
                    }
                }
            }
            Self::Topic(trie) => {
                trie.remove(key, dest);
            }
            Self::ConsistentHash(ch) => ch.remove(dest, key),
            Self::Headers(entries) => {
                if let Some(pos) = entries.iter().position(|e| {
                    e.dest == *dest && e.routing_key == *key && e.arguments == *arguments
                }) {
                    entries.swap_remove(pos);
                }
            }
        }
    }

    /// Emit every destination `key` (or the message's headers) reaches. Fanout, headers
    /// and consistent-hash exchanges use only the first key of a delivery (`first_key`),
    /// as RabbitMQ does.
    pub(crate) fn route<'a>(
        &'a self,
        key: &[u8],
        first_key: bool,
        message: &dyn MessageSource,
        emit: &mut dyn FnMut(&'a Dest<Q>),
    ) {
        match self {
            Self::Direct(map) => {
                if let Some(list) = map.get(key) {
                    list.iter().for_each(|(d, _)| emit(d));
                }
            }
            Self::Fanout(list) if first_key => list.iter().for_each(|(d, _)| emit(d)),
            Self::Topic(trie) => trie.route(key, &mut *emit),
            Self::ConsistentHash(ch) if first_key => ch.route(key, message, emit),
            Self::Headers(entries) if first_key => {
                let headers = message.headers();
                entries
                    .iter()
                    .filter(|e| e.pattern.matches(headers))
                    .for_each(|e| emit(&e.dest));
            }
            Self::Fanout(_) | Self::Headers(_) | Self::ConsistentHash(_) => {}
        }
    }
}

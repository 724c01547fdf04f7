//! One exchange: its declaration and its bindings as a source.

use foldhash::{HashMap, HashMapExt};
use std::hash::Hash;
use std::sync::Arc;

use amq_protocol::types::{AMQPValue, FieldTable};
use bytes::Bytes;
use smallvec::SmallVec;

use crate::index::Index;
use crate::{Dest, ExchangeKind, RouteError};

/// The boolean properties given at declaration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExchangeFlags {
    /// Survives a broker restart.
    pub durable: bool,
    /// Deleted when its last binding as a source goes.
    pub auto_delete: bool,
    /// Publishers may not use it directly; only other exchanges route into it.
    pub internal: bool,
}

/// A binding, as listed or persisted.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding<Q> {
    /// Source exchange.
    pub source: Arc<str>,
    /// Destination queue or exchange.
    pub dest: Dest<Q>,
    /// Binding key.
    pub routing_key: Bytes,
    /// Binding arguments.
    pub arguments: FieldTable,
}

/// An exchange and the bindings it is the source of.
#[derive(Debug)]
pub struct Exchange<Q> {
    name: Arc<str>,
    kind: ExchangeKind,
    flags: ExchangeFlags,
    arguments: FieldTable,
    alternate: Option<Arc<str>>,
    /// Binding identity: destination, then key, then the argument tables seen with it.
    bindings: HashMap<Dest<Q>, HashMap<Bytes, SmallVec<[FieldTable; 1]>>>,
    binding_count: usize,
    index: Index<Q>,
}

impl<Q: Clone + Eq + Hash> Exchange<Q> {
    /// The default exchange: direct, with no arguments to validate.
    pub(crate) fn direct_default(name: Arc<str>, flags: ExchangeFlags) -> Self {
        Self {
            name,
            kind: ExchangeKind::Direct,
            flags,
            arguments: FieldTable::default(),
            alternate: None,
            bindings: HashMap::new(),
            binding_count: 0,
            index: Index::Direct(HashMap::new()),
        }
    }

    pub(crate) fn new(
        name: Arc<str>,
        kind: ExchangeKind,
        flags: ExchangeFlags,
        arguments: FieldTable,
    ) -> Result<Self, RouteError> {
        let alternate = match arguments.inner().get("alternate-exchange") {
            Some(AMQPValue::LongString(s)) => {
                Some(Arc::from(String::from_utf8_lossy(s.as_bytes()).as_ref()))
            }
            Some(AMQPValue::ShortString(s)) => Some(Arc::from(s.as_str())),
            _ => None,
        };
        let index = Index::new(kind, &arguments)?;
        Ok(Self {
            name,
            kind,
            flags,
            arguments,
            alternate,
            bindings: HashMap::new(),
            binding_count: 0,
            index,
        })
    }

    /// The exchange's name.
    #[must_use]
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// Its type.
    #[must_use]
    pub fn kind(&self) -> ExchangeKind {
        self.kind
    }

    /// Durable, auto-delete, internal.
    #[must_use]
    pub fn flags(&self) -> ExchangeFlags {
        self.flags
    }

    /// The arguments it was declared with.
    #[must_use]
    pub fn arguments(&self) -> &FieldTable {
        &self.arguments
    }

    /// The `alternate-exchange` argument, if any.
    #[must_use]
    pub fn alternate(&self) -> Option<&Arc<str>> {
        self.alternate.as_ref()
    }

    /// How many bindings have this exchange as their source.
    #[must_use]
    pub fn binding_count(&self) -> usize {
        self.binding_count
    }

    /// Every binding with this exchange as source.
    pub fn bindings(&self) -> impl Iterator<Item = Binding<Q>> + '_ {
        self.bindings.iter().flat_map(move |(dest, keys)| {
            keys.iter().flat_map(move |(key, tables)| {
                tables.iter().map(move |args| Binding {
                    source: self.name.clone(),
                    dest: dest.clone(),
                    routing_key: key.clone(),
                    arguments: args.clone(),
                })
            })
        })
    }

    /// True if a binding to `dest` exists (any key).
    #[must_use]
    pub fn binds_to(&self, dest: &Dest<Q>) -> bool {
        self.bindings.contains_key(dest)
    }

    /// Add a binding; `Ok(false)` if it existed already (binding is idempotent).
    pub(crate) fn bind(
        &mut self,
        dest: Dest<Q>,
        key: Bytes,
        arguments: FieldTable,
    ) -> Result<bool, RouteError> {
        self.index.validate(&key, &arguments)?;
        let tables = self
            .bindings
            .entry(dest.clone())
            .or_default()
            .entry(key.clone())
            .or_default();
        if tables.contains(&arguments) {
            return Ok(false);
        }
        self.index.add(dest, &key, &arguments)?;
        tables.push(arguments);
        self.binding_count += 1;
        Ok(true)
    }

    /// Remove a binding; false if it did not exist.
    pub(crate) fn unbind(&mut self, dest: &Dest<Q>, key: &Bytes, arguments: &FieldTable) -> bool {
        let Some(keys) = self.bindings.get_mut(dest) else {
            return false;
        };
        let Some(tables) = keys.get_mut(key) else {
            return false;
        };
        let Some(pos) = tables.iter().position(|t| t == arguments) else {
            return false;
        };
        tables.swap_remove(pos);
        if tables.is_empty() {
            keys.remove(key);
            if keys.is_empty() {
                self.bindings.remove(dest);
            }
        }
        self.index.remove(dest, key, arguments);
        self.binding_count -= 1;
        true
    }

    /// Remove every binding to `dest`; returns how many went.
    pub(crate) fn unbind_all(&mut self, dest: &Dest<Q>) -> usize {
        let Some(keys) = self.bindings.remove(dest) else {
            return 0;
        };
        let mut removed = 0;
        for (key, tables) in keys {
            for args in tables {
                self.index.remove(dest, &key, &args);
                removed += 1;
            }
        }
        self.binding_count -= removed;
        removed
    }

    /// The destinations this exchange has bindings to.
    pub(crate) fn destinations(&self) -> impl Iterator<Item = &Dest<Q>> {
        self.bindings.keys()
    }

    pub(crate) fn index(&self) -> &Index<Q> {
        &self.index
    }
}

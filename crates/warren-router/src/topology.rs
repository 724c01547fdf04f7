//! All exchanges, queues and bindings of one virtual host, and routing across them.

use foldhash::{HashMap, HashMapExt, HashSet};
use std::hash::Hash;
use std::sync::Arc;

use amq_protocol::types::FieldTable;
use bytes::Bytes;
use smallvec::SmallVec;

use crate::{Dest, Exchange, ExchangeFlags, ExchangeKind, RouteError};

/// The name of the default exchange, which reaches every queue by its name.
pub const DEFAULT_EXCHANGE: &str = "";

/// What one publish asks the router.
#[derive(Debug, Clone, Copy)]
pub struct RouteInput<'a> {
    /// The exchange published to.
    pub exchange: &'a str,
    /// The publish's routing key.
    pub routing_key: &'a [u8],
    /// Further routing keys (the `CC` and `BCC` headers).
    pub extra_keys: &'a [Bytes],
    /// The message's headers and properties, asked for only by the exchange types that
    /// use them.
    pub message: &'a dyn MessageSource,
}

/// Gives a message's headers and properties on demand, so a publish that never meets a
/// headers or consistent-hash exchange never decodes them.
pub trait MessageSource: std::fmt::Debug {
    /// The headers table, if the message has one.
    fn headers(&self) -> Option<&FieldTable>;

    /// A property a consistent-hash exchange may hash on, as octets (the timestamp as
    /// its decimal digits).
    fn property(&self, _property: crate::consistent_hash::Property) -> Option<Vec<u8>> {
        None
    }
}

impl MessageSource for Option<FieldTable> {
    fn headers(&self) -> Option<&FieldTable> {
        self.as_ref()
    }
}

/// What a route reached besides its queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Routed {
    /// How many exchanges the message passed through (1 for a plain route).
    pub exchanges_visited: usize,
}

/// The routing table of one virtual host.
#[derive(Debug)]
pub struct Topology<Q> {
    exchanges: HashMap<Arc<str>, Exchange<Q>>,
    queues: HashMap<Arc<str>, Q>,
    /// Reverse index: for each destination, the exchanges with bindings to it.
    sources: HashMap<Dest<Q>, HashSet<Arc<str>>>,
}

impl<Q: Clone + Eq + Hash> Default for Topology<Q> {
    fn default() -> Self {
        Self::new()
    }
}

impl<Q: Clone + Eq + Hash> Topology<Q> {
    /// A topology holding only the default exchange.
    #[must_use]
    pub fn new() -> Self {
        let mut exchanges = HashMap::new();
        let name: Arc<str> = Arc::from(DEFAULT_EXCHANGE);
        let flags = ExchangeFlags {
            durable: true,
            ..ExchangeFlags::default()
        };
        exchanges.insert(name.clone(), Exchange::direct_default(name, flags));
        Self {
            exchanges,
            queues: HashMap::new(),
            sources: HashMap::new(),
        }
    }

    /// Look an exchange up.
    #[must_use]
    pub fn exchange(&self, name: &str) -> Option<&Exchange<Q>> {
        self.exchanges.get(name)
    }

    /// Every exchange, the default one included.
    pub fn exchanges(&self) -> impl Iterator<Item = &Exchange<Q>> {
        self.exchanges.values()
    }

    /// Look a queue up.
    #[must_use]
    pub fn queue(&self, name: &str) -> Option<&Q> {
        self.queues.get(name)
    }

    /// Every queue.
    pub fn queues(&self) -> impl Iterator<Item = (&Arc<str>, &Q)> {
        self.queues.iter()
    }

    /// Create an exchange.
    pub fn declare_exchange(
        &mut self,
        name: Arc<str>,
        kind: ExchangeKind,
        flags: ExchangeFlags,
        arguments: FieldTable,
    ) -> Result<(), RouteError> {
        if self.exchanges.contains_key(&name) {
            return Err(RouteError::ExchangeExists(name.to_string()));
        }
        let exchange = Exchange::new(name.clone(), kind, flags, arguments)?;
        self.exchanges.insert(name, exchange);
        Ok(())
    }

    /// Delete an exchange and every binding it takes part in. Returns the names of the
    /// exchanges deleted: this one (empty if it did not exist) and any auto-delete
    /// exchanges left without bindings as a result.
    pub fn delete_exchange(&mut self, name: &str) -> Vec<Arc<str>> {
        let mut deleted = Vec::new();
        if name != DEFAULT_EXCHANGE {
            self.delete_exchange_into(name, &mut deleted);
        }
        deleted
    }

    /// Register a queue, so the default exchange reaches it and bindings may name it.
    pub fn add_queue(&mut self, name: Arc<str>, queue: Q) -> Result<(), RouteError> {
        if self.queues.contains_key(&name) {
            return Err(RouteError::QueueExists(name.to_string()));
        }
        self.queues.insert(name, queue);
        Ok(())
    }

    /// Remove a queue and its bindings. Returns the queue and the auto-delete exchanges
    /// this left without bindings (deleted too).
    pub fn remove_queue(&mut self, name: &str) -> Option<(Q, Vec<Arc<str>>)> {
        let queue = self.queues.remove(name)?;
        let mut deleted = Vec::new();
        self.remove_bindings_to(&Dest::Queue(queue.clone()), &mut deleted);
        Some((queue, deleted))
    }

    /// Bind `dest` to `source`. `Ok(false)` when the identical binding existed already.
    pub fn bind(
        &mut self,
        source: &str,
        dest: Dest<Q>,
        routing_key: Bytes,
        arguments: FieldTable,
    ) -> Result<bool, RouteError> {
        self.check_binding_ends(source, &dest)?;
        let exchange = self
            .exchanges
            .get_mut(source)
            .ok_or_else(|| RouteError::NoSuchExchange(source.to_owned()))?;
        let added = exchange.bind(dest.clone(), routing_key, arguments)?;
        if added {
            let source = exchange.name().clone();
            self.sources.entry(dest).or_default().insert(source);
        }
        Ok(added)
    }

    /// Remove a binding (a missing binding is not an error, as in RabbitMQ). Returns the
    /// auto-delete exchanges this left without bindings, which are deleted.
    pub fn unbind(
        &mut self,
        source: &str,
        dest: &Dest<Q>,
        routing_key: &Bytes,
        arguments: &FieldTable,
    ) -> Result<Vec<Arc<str>>, RouteError> {
        self.check_binding_ends(source, dest)?;
        let exchange = self
            .exchanges
            .get_mut(source)
            .ok_or_else(|| RouteError::NoSuchExchange(source.to_owned()))?;
        let mut deleted = Vec::new();
        if !exchange.unbind(dest, routing_key, arguments) {
            return Ok(deleted);
        }
        let still_bound = exchange.binds_to(dest);
        let orphaned = exchange.flags().auto_delete && exchange.binding_count() == 0;
        if !still_bound {
            self.forget_source(dest, source);
        }
        if orphaned {
            self.delete_exchange_into(source, &mut deleted);
        }
        Ok(deleted)
    }

    /// Route one message. The queues it reaches are appended to `out`, each once.
    ///
    /// Follows RabbitMQ: exchange-to-exchange bindings are followed once per exchange (a
    /// visited set, so loops end); an exchange that routes to nothing hands the message to
    /// its alternate exchange, if that exists.
    pub fn route<A: smallvec::Array<Item = Q>>(
        &self,
        input: &RouteInput<'_>,
        out: &mut SmallVec<A>,
    ) -> Result<Routed, RouteError> {
        let start = self
            .exchanges
            .get(input.exchange)
            .ok_or_else(|| RouteError::NoSuchExchange(input.exchange.to_owned()))?;
        let mut collector = Collector::new(out);
        if input.exchange == DEFAULT_EXCHANGE {
            for key in
                std::iter::once(input.routing_key).chain(input.extra_keys.iter().map(|k| &k[..]))
            {
                let queue = std::str::from_utf8(key)
                    .ok()
                    .and_then(|k| self.queues.get(k));
                if let Some(queue) = queue {
                    collector.push(queue);
                }
            }
            return Ok(Routed {
                exchanges_visited: 1,
            });
        }
        let mut work: SmallVec<[&Exchange<Q>; 4]> = SmallVec::new();
        let mut seen: SmallVec<[&str; 4]> = SmallVec::new();
        work.push(start);
        seen.push(start.name());
        while let Some(exchange) = work.pop() {
            let mut reached_any = false;
            let keys =
                std::iter::once(input.routing_key).chain(input.extra_keys.iter().map(|k| &k[..]));
            for (i, key) in keys.enumerate() {
                exchange
                    .index()
                    .route(key, i == 0, input.message, &mut |dest| {
                        reached_any = true;
                        match dest {
                            Dest::Queue(q) => collector.push(q),
                            Dest::Exchange(name) => self.enqueue(name, &mut seen, &mut work),
                        }
                    });
            }
            if !reached_any && let Some(ae) = exchange.alternate() {
                self.enqueue(ae, &mut seen, &mut work);
            }
        }
        Ok(Routed {
            exchanges_visited: seen.len(),
        })
    }

    fn check_binding_ends(&self, source: &str, dest: &Dest<Q>) -> Result<(), RouteError> {
        if source == DEFAULT_EXCHANGE
            || matches!(dest, Dest::Exchange(d) if &**d == DEFAULT_EXCHANGE)
        {
            return Err(RouteError::DefaultExchange);
        }
        if let Dest::Exchange(d) = dest
            && !self.exchanges.contains_key(d)
        {
            return Err(RouteError::NoSuchExchange(d.to_string()));
        }
        Ok(())
    }

    /// Queue exchange `name` for routing unless it was visited already or does not exist.
    fn enqueue<'t>(
        &'t self,
        name: &str,
        seen: &mut SmallVec<[&'t str; 4]>,
        work: &mut SmallVec<[&'t Exchange<Q>; 4]>,
    ) {
        if !seen.contains(&name)
            && let Some(next) = self.exchanges.get(name)
        {
            seen.push(next.name());
            work.push(next);
        }
    }

    fn forget_source(&mut self, dest: &Dest<Q>, source: &str) {
        if let Some(set) = self.sources.get_mut(dest) {
            set.remove(source);
            if set.is_empty() {
                self.sources.remove(dest);
            }
        }
    }

    fn delete_exchange_into(&mut self, name: &str, deleted: &mut Vec<Arc<str>>) {
        let Some(exchange) = self.exchanges.remove(name) else {
            return;
        };
        for dest in exchange.destinations() {
            self.forget_source(dest, name);
        }
        let me = exchange.name().clone();
        deleted.push(me.clone());
        self.remove_bindings_to(&Dest::Exchange(me), deleted);
    }

    /// Remove every binding leading to `dest`, deleting auto-delete sources left empty.
    fn remove_bindings_to(&mut self, dest: &Dest<Q>, deleted: &mut Vec<Arc<str>>) {
        let Some(sources) = self.sources.remove(dest) else {
            return;
        };
        let mut orphans = Vec::new();
        for source in sources {
            if let Some(exchange) = self.exchanges.get_mut(&source) {
                exchange.unbind_all(dest);
                if exchange.flags().auto_delete && exchange.binding_count() == 0 {
                    orphans.push(source);
                }
            }
        }
        for orphan in orphans {
            self.delete_exchange_into(&orphan, deleted);
        }
    }
}

/// Appends queues to the caller's list once each: a linear check while the list is short,
/// a hash set once a fanout makes it long.
struct Collector<'o, Q, A: smallvec::Array<Item = Q>> {
    out: &'o mut SmallVec<A>,
    set: Option<HashSet<Q>>,
}

impl<'o, Q: Clone + Eq + Hash, A: smallvec::Array<Item = Q>> Collector<'o, Q, A> {
    const LINEAR_LIMIT: usize = 16;

    fn new(out: &'o mut SmallVec<A>) -> Self {
        Self { out, set: None }
    }

    fn push(&mut self, q: &Q) {
        if let Some(set) = &mut self.set {
            if set.insert(q.clone()) {
                self.out.push(q.clone());
            }
            return;
        }
        if self.out.contains(q) {
            return;
        }
        self.out.push(q.clone());
        if self.out.len() > Self::LINEAR_LIMIT {
            self.set = Some(self.out.iter().cloned().collect());
        }
    }
}

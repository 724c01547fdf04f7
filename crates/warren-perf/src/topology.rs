//! The queues, exchange and bindings of a run: declared before it, removed after it.

use warren_codec::spec::BasicProperties;
use warren_codec::types::{AMQPValue, FieldTable, LongString};

use crate::Res;
use crate::args::{Args, ExchangeKind};
use crate::client::Client;

/// Where producers publish and what consumers consume.
#[derive(Debug, Clone)]
pub struct Topology {
    pub queues: Vec<String>,
    /// Empty for the default exchange.
    pub exchange: String,
    /// Routing key of each producer's messages, indexed by producer.
    routing_key: Option<String>,
    /// Headers every message carries (for a headers exchange).
    pub headers: Option<FieldTable>,
}

fn headers_match() -> FieldTable {
    let mut t = FieldTable::default();
    t.insert("perf".into(), AMQPValue::LongString(LongString::from("1")));
    t
}

impl Topology {
    pub async fn declare(setup: &mut Client, args: &Args) -> Res<Self> {
        let queues = args.queue_names();
        for q in &queues {
            setup
                .declare_queue(q, args.durable, &args.queue_args)
                .await?;
            if !args.no_purge {
                setup.purge_queue(q).await?;
            }
        }
        let Some(kind) = args.exchange_type else {
            return Ok(Self {
                queues,
                exchange: String::new(),
                routing_key: None,
                headers: None,
            });
        };
        let exchange = format!("warren-perf-{}", kind.name());
        setup
            .declare_exchange(&exchange, kind.name(), args.durable)
            .await?;
        let routing_key = args
            .routing_key
            .clone()
            .unwrap_or_else(|| "perf.key".to_owned());
        let binding_key = match (kind, &args.binding_key) {
            (ExchangeKind::Fanout | ExchangeKind::Headers, _) => String::new(),
            (_, Some(k)) => k.clone(),
            (ExchangeKind::Topic, None) => "perf.#".to_owned(),
            (ExchangeKind::Direct, None) => routing_key.clone(),
        };
        let (bind_args, headers) = if kind == ExchangeKind::Headers {
            let mut a = headers_match();
            a.insert("x-match".into(), AMQPValue::LongString("all".into()));
            (a, Some(headers_match()))
        } else {
            (FieldTable::default(), None)
        };
        for q in &queues {
            setup
                .bind_queue(q, &exchange, &binding_key, bind_args.clone())
                .await?;
        }
        Ok(Self {
            queues,
            exchange,
            routing_key: Some(routing_key),
            headers,
        })
    }

    /// The routing key producer `i` publishes with.
    pub fn routing_key(&self, producer: usize) -> &str {
        match &self.routing_key {
            Some(k) => k,
            None => &self.queues[producer % self.queues.len()],
        }
    }

    /// The queue consumer `i` consumes from.
    pub fn queue_of_consumer(&self, consumer: usize) -> &str {
        &self.queues[consumer % self.queues.len()]
    }

    /// The properties every message carries.
    pub fn properties(&self, args: &Args) -> BasicProperties {
        let mut p = BasicProperties::default();
        if args.persistent {
            p = p.with_delivery_mode(2);
        }
        if let Some(ms) = args.expiration {
            p = p.with_expiration(ms.to_string().into());
        }
        if let Some(h) = &self.headers {
            p = p.with_headers(h.clone());
        }
        p
    }

    pub async fn remove(&self, setup: &mut Client) -> Res<()> {
        for q in &self.queues {
            setup.delete_queue(q).await?;
        }
        if !self.exchange.is_empty() {
            setup.delete_exchange(&self.exchange).await?;
        }
        Ok(())
    }
}

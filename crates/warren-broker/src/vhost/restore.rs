//! Rebuilding a vhost's durable exchanges, queues and bindings from disk at start.

use std::sync::Arc;

use bytes::Bytes;
use warren_codec::table::decode_field_table;
use warren_codec::types::FieldTable;
use warren_router::{Dest, ExchangeFlags, ExchangeKind};
use warren_store::definitions::{Definitions, DestKind};

use super::VHost;
use crate::queue::{QueueSpec, QueueStorage, spawn_queue};
use crate::queue_args;

fn arguments(raw: &[u8], what: &str, problems: &mut Vec<String>) -> Option<FieldTable> {
    match decode_field_table(raw) {
        Ok(t) => Some(t),
        Err(e) => {
            problems.push(format!("{what}: unreadable arguments ({e}); skipped"));
            None
        }
    }
}

impl VHost {
    /// Recreate what `definitions` holds for this vhost. Returns what could not be
    /// restored, one line each, for the log; a bad record never stops the start.
    pub(crate) fn restore(&self, definitions: &Definitions) -> Vec<String> {
        let mut problems = Vec::new();
        let mut topology = self.topology.write();
        for x in definitions
            .exchanges
            .iter()
            .filter(|x| *x.vhost == *self.name)
        {
            let what = format!("exchange '{}' in vhost '{}'", x.name, self.name);
            let Some(kind) = ExchangeKind::parse(&x.kind) else {
                problems.push(format!("{what}: unknown type '{}'; skipped", x.kind));
                continue;
            };
            let Some(args) = arguments(&x.arguments, &what, &mut problems) else {
                continue;
            };
            let flags = ExchangeFlags {
                durable: true,
                auto_delete: x.auto_delete,
                internal: x.internal,
            };
            if let Err(e) = topology.declare_exchange(Arc::from(x.name.as_str()), kind, flags, args)
            {
                problems.push(format!("{what}: {e}; skipped"));
            }
        }
        for q in definitions.queues.iter().filter(|q| *q.vhost == *self.name) {
            let what = format!("queue '{}' in vhost '{}'", q.name, self.name);
            let Some(args) = arguments(&q.arguments, &what, &mut problems) else {
                continue;
            };
            // A stored queue was accepted when it was declared; rules tightened since
            // (arguments of other queue types, say) must not strand its messages.
            let config = match queue_args::validate(&q.name, &self.name, &args) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(queue = %q.name, vhost = %self.name, refusal = %e.text,
                        "restored a durable queue that a new declaration would be refused");
                    queue_args::QueueConfig::from_arguments(&args)
                }
            };
            let spec = QueueSpec {
                config,
                name: Arc::from(q.name.as_str()),
                durable: true,
                auto_delete: q.auto_delete,
                exclusive_owner: None,
                arguments: args,
                storage: Some(QueueStorage {
                    id: q.storage_id,
                    dir: self.queue_dir(q.storage_id),
                }),
            };
            let queue = spawn_queue(spec, self.me.clone(), self.config.queue_command_capacity);
            if let Err(e) = topology.add_queue(queue.name().clone(), queue) {
                problems.push(format!("{what}: {e}; skipped"));
            }
        }
        for b in definitions
            .bindings
            .iter()
            .filter(|b| *b.vhost == *self.name)
        {
            let what = format!(
                "binding of '{}' to {} '{}' in vhost '{}'",
                b.source,
                if b.dest_kind == DestKind::Queue {
                    "queue"
                } else {
                    "exchange"
                },
                b.destination,
                self.name
            );
            let Some(args) = arguments(&b.arguments, &what, &mut problems) else {
                continue;
            };
            let dest = match b.dest_kind {
                DestKind::Queue => match topology.queue(&b.destination) {
                    Some(q) => Dest::Queue(q.clone()),
                    None => {
                        problems.push(format!("{what}: no such queue; skipped"));
                        continue;
                    }
                },
                DestKind::Exchange => Dest::Exchange(Arc::from(b.destination.as_str())),
            };
            let key = Bytes::copy_from_slice(&b.routing_key);
            if let Err(e) = topology.bind(&b.source, dest, key, args) {
                problems.push(format!("{what}: {e}; skipped"));
            }
        }
        problems
    }
}

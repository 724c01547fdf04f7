//! Durable definitions: what the routing table writes to disk when it changes, and
//! making those writes durable before a declaration is answered.
//!
//! Records are written under the vhost's topology lock (sled's writes are in-memory and
//! quick), so the order on disk is the order of the changes. Making them durable is a
//! flush (an fsync), done off the async threads by whichever channel must answer next;
//! one flush covers every change made before it.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use tracing::error;
use warren_codec::ReplyCode;
use warren_codec::table::encode_field_table;
use warren_codec::types::FieldTable;
use warren_router::{Dest, ExchangeFlags, ExchangeKind};
use warren_store::definitions::{
    BindingDef, DefinitionError, DefinitionStore, DestKind, ExchangeDef, QueueDef, write_witness,
};

use crate::error::{AmqpException, AmqpResult};
use crate::queue::QueueRef;

/// The definition store with a count of writes made and flushed.
#[derive(Debug)]
pub(crate) struct DurableDefinitions {
    store: Arc<dyn DefinitionStore>,
    written: AtomicU64,
    flushed: AtomicU64,
    /// Where the store's generation is recorded after each flush.
    witness: PathBuf,
}

fn failed(e: &DefinitionError) -> AmqpException {
    error!(error = %e, "cannot write durable definitions");
    AmqpException::connection(
        ReplyCode::InternalError,
        format!("cannot store definitions: {e}"),
    )
}

fn table(arguments: &FieldTable) -> AmqpResult<Vec<u8>> {
    encode_field_table(arguments)
        .map_err(|e| AmqpException::connection(ReplyCode::InternalError, format!("arguments: {e}")))
}

impl DurableDefinitions {
    pub(crate) fn new(store: Arc<dyn DefinitionStore>, witness: PathBuf) -> Self {
        Self {
            store,
            written: AtomicU64::new(0),
            flushed: AtomicU64::new(0),
            witness,
        }
    }

    pub(crate) fn store(&self) -> &Arc<dyn DefinitionStore> {
        &self.store
    }

    fn wrote(&self, changed: Result<bool, DefinitionError>) -> AmqpResult {
        match changed {
            Ok(true) => {
                self.written.fetch_add(1, Ordering::AcqRel);
                Ok(())
            }
            Ok(false) => Ok(()),
            Err(e) => Err(failed(&e)),
        }
    }

    pub(crate) fn put_exchange(
        &self,
        vhost: &str,
        name: &str,
        kind: ExchangeKind,
        flags: ExchangeFlags,
        arguments: &FieldTable,
    ) -> AmqpResult {
        let def = ExchangeDef {
            vhost: vhost.to_owned(),
            name: name.to_owned(),
            kind: kind.name().to_owned(),
            auto_delete: flags.auto_delete,
            internal: flags.internal,
            arguments: table(arguments)?,
        };
        self.wrote(self.store.put_exchange(&def).map(|()| true))
    }

    /// Forget exchanges (and their bindings); transient ones are simply not found.
    pub(crate) fn delete_exchanges(&self, vhost: &str, names: &[Arc<str>]) -> AmqpResult {
        for name in names {
            self.wrote(self.store.delete_exchange(vhost, name))?;
        }
        Ok(())
    }

    /// Record a new durable queue; returns its storage id.
    pub(crate) fn put_queue(
        &self,
        vhost: &str,
        name: &str,
        auto_delete: bool,
        arguments: &FieldTable,
    ) -> AmqpResult<u64> {
        let storage_id = self.store.new_storage_id().map_err(|e| failed(&e))?;
        let def = QueueDef {
            vhost: vhost.to_owned(),
            name: name.to_owned(),
            auto_delete,
            arguments: table(arguments)?,
            storage_id,
        };
        self.wrote(self.store.put_queue(&def).map(|()| true))?;
        Ok(storage_id)
    }

    pub(crate) fn delete_queue(&self, vhost: &str, name: &str) -> AmqpResult {
        self.wrote(self.store.delete_queue(vhost, name))
    }

    pub(crate) fn put_binding(&self, def: &BindingDef) -> AmqpResult {
        self.wrote(self.store.put_binding(def).map(|()| true))
    }

    pub(crate) fn delete_binding(&self, def: &BindingDef) -> AmqpResult {
        self.wrote(self.store.delete_binding(def))
    }

    /// Wait until every change made so far is on disk.
    pub(crate) async fn persist(&self) -> AmqpResult {
        let target = self.written.load(Ordering::Acquire);
        if self.flushed.load(Ordering::Acquire) >= target {
            return Ok(());
        }
        let store = self.store.clone();
        let witness = self.witness.clone();
        let flushed = tokio::task::spawn_blocking(move || {
            let generation = store.generation();
            store.flush()?;
            if let Err(e) = write_witness(&witness, generation) {
                // Only the damage check at the next start is weakened.
                tracing::warn!(error = %e, "cannot record the definition store's generation");
            }
            Ok::<(), DefinitionError>(())
        })
        .await;
        match flushed {
            Ok(Ok(())) => {
                self.flushed.fetch_max(target, Ordering::AcqRel);
                Ok(())
            }
            Ok(Err(e)) => Err(failed(&e)),
            Err(e) => Err(AmqpException::connection(
                ReplyCode::InternalError,
                format!("definition flush did not finish: {e}"),
            )),
        }
    }
}

/// A binding as stored, when both its ends are durable.
pub(crate) fn binding_def(
    vhost: &str,
    source: &str,
    dest: &Dest<QueueRef>,
    routing_key: &Bytes,
    arguments: &FieldTable,
) -> AmqpResult<BindingDef> {
    let (dest_kind, destination) = match dest {
        Dest::Queue(q) => (DestKind::Queue, q.name().to_string()),
        Dest::Exchange(x) => (DestKind::Exchange, x.to_string()),
    };
    Ok(BindingDef {
        vhost: vhost.to_owned(),
        source: source.to_owned(),
        dest_kind,
        destination,
        routing_key: routing_key.to_vec(),
        arguments: table(arguments)?,
    })
}

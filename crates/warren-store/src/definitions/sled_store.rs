//! [`DefinitionStore`] on sled 0.34: small records, written rarely, read once at start,
//! which is the workload sled handles well (see `docs/storage.md`).

use std::path::Path;
use std::sync::Mutex;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{
    BindingDef, DefinitionError, DefinitionStore, Definitions, DestKind, ExchangeDef, QueueDef,
    keys,
};

/// sled's page cache for definitions; they are few and read once, so keep it small.
const CACHE_BYTES: u64 = 8 * 1024 * 1024;

/// Definitions in a sled database directory.
#[derive(Debug)]
pub struct SledDefinitions {
    db: sled::Db,
    /// The generation of the last write; held while writing, so generations on disk
    /// increase in write order.
    generation: Mutex<u64>,
}

fn storage(e: sled::Error) -> DefinitionError {
    DefinitionError::Storage(e.to_string())
}

fn encode(value: &impl Serialize) -> Result<Vec<u8>, DefinitionError> {
    serde_json::to_vec(value).map_err(|e| DefinitionError::Storage(e.to_string()))
}

impl SledDefinitions {
    /// Open (or create) the database in `dir`.
    ///
    /// sled locks the directory. A previous instance in this process may hold the lock
    /// for a moment after it is dropped (its threads finish first), so a held lock is
    /// retried for a few seconds; another live process keeps it, and then we fail.
    pub fn open(dir: &Path) -> Result<Self, DefinitionError> {
        let mut attempts = 0;
        loop {
            let opened = sled::Config::new()
                .path(dir)
                .cache_capacity(CACHE_BYTES)
                // We flush when a declaration needs it; no background flusher thread.
                .flush_every_ms(None)
                .open();
            match opened {
                Ok(db) => {
                    let generation = match db.get(keys::GENERATION).map_err(storage)? {
                        Some(raw) => raw.as_ref().try_into().map(u64::from_be_bytes).unwrap_or(0),
                        None => 0,
                    };
                    return Ok(Self {
                        db,
                        generation: Mutex::new(generation),
                    });
                }
                Err(e) if attempts < 50 && e.to_string().contains("could not acquire lock") => {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Err(e) => return Err(storage(e)),
            }
        }
    }

    fn load_kind<T: DeserializeOwned>(
        &self,
        prefix: &[u8],
        out: &mut Vec<T>,
        problems: &mut Vec<String>,
    ) -> Result<(), DefinitionError> {
        for entry in self.db.scan_prefix(prefix) {
            let (key, value) = entry.map_err(storage)?;
            match serde_json::from_slice(&value) {
                Ok(v) => out.push(v),
                Err(e) => problems.push(
                    DefinitionError::Corrupt {
                        key: keys::describe(&key),
                        reason: e.to_string(),
                    }
                    .to_string(),
                ),
            }
        }
        Ok(())
    }

    /// Queue the removal of every binding in `batch` whose by-source key starts with
    /// `prefix`, and of its by-destination twin (computed from the stored binding).
    fn remove_bindings_from(
        &self,
        prefix: &[u8],
        batch: &mut sled::Batch,
    ) -> Result<bool, DefinitionError> {
        self.remove_with_twins(prefix, batch, |value| {
            serde_json::from_slice::<BindingDef>(value)
                .ok()
                .map(|b| keys::binding_by_dest(&b))
        })
    }

    /// Queue the removal of every binding whose by-destination key starts with `prefix`,
    /// and of its by-source twin (the entry's value).
    fn remove_bindings_to(
        &self,
        prefix: &[u8],
        batch: &mut sled::Batch,
    ) -> Result<bool, DefinitionError> {
        self.remove_with_twins(prefix, batch, |forward| Some(forward.to_vec()))
    }

    fn remove_with_twins(
        &self,
        prefix: &[u8],
        batch: &mut sled::Batch,
        twin: impl Fn(&[u8]) -> Option<Vec<u8>>,
    ) -> Result<bool, DefinitionError> {
        let mut any = false;
        for entry in self.db.scan_prefix(prefix) {
            let (key, value) = entry.map_err(storage)?;
            if let Some(other) = twin(&value) {
                batch.remove(other);
            }
            batch.remove(key);
            any = true;
        }
        Ok(any)
    }

    fn contains(&self, key: &[u8]) -> Result<bool, DefinitionError> {
        self.db.contains_key(key).map_err(storage)
    }

    /// Apply `batch` atomically with the next generation number.
    fn commit(&self, mut batch: sled::Batch) -> Result<(), DefinitionError> {
        let mut generation = self
            .generation
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let next = *generation + 1;
        batch.insert(keys::GENERATION, &next.to_be_bytes());
        self.db.apply_batch(batch).map_err(storage)?;
        *generation = next;
        Ok(())
    }
}

impl DefinitionStore for SledDefinitions {
    fn load(&self) -> Result<Definitions, DefinitionError> {
        let mut d = Definitions::default();
        self.load_kind(keys::EXCHANGES, &mut d.exchanges, &mut d.problems)?;
        self.load_kind(keys::QUEUES, &mut d.queues, &mut d.problems)?;
        self.load_kind(keys::BINDINGS, &mut d.bindings, &mut d.problems)?;
        Ok(d)
    }

    fn put_exchange(&self, exchange: &ExchangeDef) -> Result<(), DefinitionError> {
        let mut batch = sled::Batch::default();
        batch.insert(
            keys::exchange(&exchange.vhost, &exchange.name),
            encode(exchange)?,
        );
        self.commit(batch)
    }

    fn delete_exchange(&self, vhost: &str, name: &str) -> Result<bool, DefinitionError> {
        let key = keys::exchange(vhost, name);
        let mut any = self.contains(&key)?;
        let mut batch = sled::Batch::default();
        batch.remove(key);
        any |= self.remove_bindings_from(&keys::bindings_from(vhost, name), &mut batch)?;
        any |= self.remove_bindings_to(
            &keys::bindings_to(vhost, DestKind::Exchange, name),
            &mut batch,
        )?;
        if any {
            self.commit(batch)?;
        }
        Ok(any)
    }

    fn put_queue(&self, queue: &QueueDef) -> Result<(), DefinitionError> {
        let mut batch = sled::Batch::default();
        batch.insert(keys::queue(&queue.vhost, &queue.name), encode(queue)?);
        self.commit(batch)
    }

    fn delete_queue(&self, vhost: &str, name: &str) -> Result<bool, DefinitionError> {
        let key = keys::queue(vhost, name);
        let mut any = self.contains(&key)?;
        let mut batch = sled::Batch::default();
        batch.remove(key);
        any |=
            self.remove_bindings_to(&keys::bindings_to(vhost, DestKind::Queue, name), &mut batch)?;
        if any {
            self.commit(batch)?;
        }
        Ok(any)
    }

    fn put_binding(&self, binding: &BindingDef) -> Result<(), DefinitionError> {
        let forward = keys::binding(binding);
        let mut batch = sled::Batch::default();
        batch.insert(keys::binding_by_dest(binding), forward.clone());
        batch.insert(forward, encode(binding)?);
        self.commit(batch)
    }

    fn delete_binding(&self, binding: &BindingDef) -> Result<bool, DefinitionError> {
        let forward = keys::binding(binding);
        if !self.contains(&forward)? {
            return Ok(false);
        }
        let mut batch = sled::Batch::default();
        batch.remove(keys::binding_by_dest(binding));
        batch.remove(forward);
        self.commit(batch)?;
        Ok(true)
    }

    fn new_storage_id(&self) -> Result<u64, DefinitionError> {
        self.db.generate_id().map_err(storage)
    }

    fn generation(&self) -> u64 {
        *self
            .generation
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn flush(&self) -> Result<(), DefinitionError> {
        self.db.flush().map(|_| ()).map_err(storage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(source: &str, kind: DestKind, dest: &str, key: &str) -> BindingDef {
        BindingDef {
            vhost: "/".into(),
            source: source.into(),
            dest_kind: kind,
            destination: dest.into(),
            routing_key: key.as_bytes().to_vec(),
            arguments: vec![0, 0, 0, 0],
        }
    }

    fn exchange(name: &str) -> ExchangeDef {
        ExchangeDef {
            vhost: "/".into(),
            name: name.into(),
            kind: "topic".into(),
            auto_delete: false,
            internal: false,
            arguments: vec![0, 0, 0, 0],
        }
    }

    #[test]
    fn definitions_survive_reopen_and_cascade_on_delete() {
        let dir = tempfile::tempdir().unwrap();
        let queue = QueueDef {
            vhost: "/".into(),
            name: "orders".into(),
            auto_delete: false,
            arguments: vec![0, 0, 0, 0],
            storage_id: 0,
        };
        {
            let store = SledDefinitions::open(dir.path()).unwrap();
            let id = store.new_storage_id().unwrap();
            store.put_exchange(&exchange("x")).unwrap();
            store.put_exchange(&exchange("y")).unwrap();
            store
                .put_queue(&QueueDef {
                    storage_id: id,
                    ..queue.clone()
                })
                .unwrap();
            store
                .put_queue(&QueueDef {
                    name: "other".into(),
                    ..queue.clone()
                })
                .unwrap();
            store
                .put_binding(&binding("x", DestKind::Queue, "orders", "a.*"))
                .unwrap();
            store
                .put_binding(&binding("x", DestKind::Queue, "orders", "a.*"))
                .unwrap();
            store
                .put_binding(&binding("y", DestKind::Queue, "other", ""))
                .unwrap();
            store
                .put_binding(&binding("x", DestKind::Exchange, "y", "k"))
                .unwrap();
            store.flush().unwrap();
            assert!(store.new_storage_id().unwrap() > id);
        }
        let store = SledDefinitions::open(dir.path()).unwrap();
        let d = store.load().unwrap();
        assert_eq!(d.exchanges.len(), 2);
        assert_eq!(d.queues.len(), 2);
        assert_eq!(d.bindings.len(), 3);
        assert!(d.problems.is_empty());

        assert!(store.delete_queue("/", "orders").unwrap());
        assert!(!store.delete_queue("/", "orders").unwrap());
        let d = store.load().unwrap();
        assert_eq!(
            d.bindings.len(),
            2,
            "the binding to the deleted queue went with it"
        );

        store.delete_exchange("/", "y").unwrap();
        let d = store.load().unwrap();
        assert_eq!(d.exchanges, vec![exchange("x")]);
        assert!(d.bindings.is_empty(), "bindings to and from y went with it");
        assert_eq!(d.queues.len(), 1);

        store
            .put_binding(&binding("x", DestKind::Queue, "other", ""))
            .unwrap();
        assert!(
            store
                .delete_binding(&binding("x", DestKind::Queue, "other", ""))
                .unwrap()
        );
        assert!(store.load().unwrap().bindings.is_empty());
    }
}

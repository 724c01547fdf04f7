//! A durable queue's own copy of its definition, kept in its message directory, and the
//! marker saying the queue was deleted. With them, start-up can tell "files of a queue
//! whose deletion did not finish" (remove them) from "files of a queue the definition
//! store lost" (restore the queue): messages are never thrown away because definitions
//! were damaged.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use super::QueueDef;

const RECORD: &str = "queue.def";
const DELETED: &str = "deleted";

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Write `def` into `dir` durably (write, sync, rename, sync the directory).
pub fn write_queue_record(dir: &Path, def: &QueueDef) -> io::Result<()> {
    let data = serde_json::to_vec(def).map_err(io::Error::other)?;
    let tmp = dir.join(format!("{RECORD}.tmp"));
    let mut file = File::create(&tmp)?;
    file.write_all(&data)?;
    file.sync_data()?;
    fs::rename(&tmp, dir.join(RECORD))?;
    sync_dir(dir)
}

/// The definition kept in `dir`, if there is a readable one.
#[must_use]
pub fn read_queue_record(dir: &Path) -> Option<QueueDef> {
    serde_json::from_slice(&fs::read(dir.join(RECORD)).ok()?).ok()
}

/// Mark `dir` as belonging to a deleted queue, durably, before its definition goes.
pub fn mark_deleted(dir: &Path) -> io::Result<()> {
    File::create(dir.join(DELETED))?.sync_all()?;
    sync_dir(dir)
}

/// Was the queue owning `dir` deleted?
#[must_use]
pub fn is_marked_deleted(dir: &Path) -> bool {
    dir.join(DELETED).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_deletion_is_marked() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_queue_record(dir.path()), None);
        let def = QueueDef {
            vhost: "/".into(),
            name: "orders".into(),
            auto_delete: false,
            arguments: vec![0, 0, 0, 0],
            storage_id: 9,
        };
        write_queue_record(dir.path(), &def).unwrap();
        assert_eq!(read_queue_record(dir.path()), Some(def));
        assert!(!is_marked_deleted(dir.path()));
        mark_deleted(dir.path()).unwrap();
        assert!(is_marked_deleted(dir.path()));
    }
}

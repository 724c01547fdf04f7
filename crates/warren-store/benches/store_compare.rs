//! sled against the segment log for a queue's messages: the measurement behind the
//! message store choice in `docs/storage.md`.
//!
//! Run: `cargo bench -p warren-store --bench store_compare` (`STORE_COMPARE_MESSAGES`
//! sets the backlog size, 300000 by default; bodies are 1 KiB). Each store, in a fresh
//! temporary directory on the same disk:
//!
//! 1. steady state: publish, sync every 100 messages (a confirm batch), and acknowledge
//!    (remove) each message 1000 messages later, as a consumer keeping up would;
//! 2. a growing backlog: publish N messages, syncing every 1000;
//! 3. reopen the store holding that backlog (recovery);
//! 4. drain it: remove every message, syncing every 1000; then report disk space.
//!
//! sled is used the way a message store would use it: key = message id, value = the
//! message; a sync is `flush()`. It runs with its defaults except that it flushes only
//! when asked (as the segment log does).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a measurement program: a panic is the report"
)]

use std::collections::VecDeque;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use warren_store::Message;
use warren_store::segment::{DEFAULT_SEGMENT_BYTES, FsStorage, Location, SegmentLog};

const BODY: usize = 1024;

fn message(id: u64) -> Message {
    Message {
        exchange: Bytes::new(),
        routing_key: Bytes::from_static(b"orders"),
        properties: Bytes::from_static(&[0x10, 0, 2]),
        body: Bytes::from(vec![(id % 251) as u8; BODY]).into(),
        persistent: true,
        priority: 0,
        expiration: None,
    }
}

/// The operations a queue needs from its message store.
trait Store {
    fn publish(&mut self, id: u64, m: &Message);
    fn remove(&mut self, id: u64);
    fn sync(&mut self);
}

struct Segments {
    log: SegmentLog<FsStorage>,
    at: VecDeque<(u64, Location)>,
}

impl Segments {
    fn open(dir: &Path) -> (Self, u64) {
        let (log, recovery) =
            SegmentLog::open(FsStorage::new(dir).unwrap(), "bench", DEFAULT_SEGMENT_BYTES).unwrap();
        let backlog = recovery.backlog.len();
        (
            Self {
                log,
                at: VecDeque::new(),
            },
            backlog,
        )
    }
}

impl Store for Segments {
    fn publish(&mut self, id: u64, m: &Message) {
        let loc = self.log.append(id, 0, None, m).unwrap();
        self.at.push_back((id, loc));
    }

    fn remove(&mut self, id: u64) {
        // Removals come in publish order here.
        let (first, loc) = self.at.pop_front().unwrap();
        assert_eq!(first, id);
        self.log.removed(loc, id).unwrap();
    }

    fn sync(&mut self) {
        self.log.sync().unwrap();
    }
}

struct Sled {
    db: sled::Db,
}

impl Sled {
    fn open(dir: &Path) -> (Self, u64) {
        let db = sled::Config::new()
            .path(dir)
            .flush_every_ms(None)
            .open()
            .unwrap();
        let backlog = db.len() as u64;
        (Self { db }, backlog)
    }
}

fn sled_value(m: &Message) -> Vec<u8> {
    let mut v = Vec::with_capacity(m.body.len() + 64);
    v.extend_from_slice(&m.routing_key);
    v.extend_from_slice(&m.properties);
    v.extend_from_slice(&m.body.to_bytes());
    v
}

impl Store for Sled {
    fn publish(&mut self, id: u64, m: &Message) {
        self.db.insert(id.to_be_bytes(), sled_value(m)).unwrap();
    }

    fn remove(&mut self, id: u64) {
        self.db.remove(id.to_be_bytes()).unwrap();
    }

    fn sync(&mut self) {
        self.db.flush().unwrap();
    }
}

/// (apparent octets, allocated octets) of everything under `dir`.
fn disk_usage(dir: &Path) -> (u64, u64) {
    let mut total = (0, 0);
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let meta = entry.metadata().unwrap();
        if meta.is_dir() {
            let sub = disk_usage(&entry.path());
            total.0 += sub.0;
            total.1 += sub.1;
        } else {
            total.0 += meta.len();
            total.1 += meta.blocks() * 512;
        }
    }
    total
}

fn rate(n: u64, d: Duration) -> String {
    format!("{:.0}", n as f64 / d.as_secs_f64())
}

fn mib(octets: u64) -> String {
    format!("{:.1}", octets as f64 / (1024.0 * 1024.0))
}

struct Report {
    steady: String,
    backlog: String,
    backlog_disk: u64,
    reopen: Duration,
    reopened: u64,
    drain: String,
    drained_disk: (u64, u64),
}

fn measure<S: Store>(name: &str, open: fn(&Path) -> (S, u64), n: u64) -> Report {
    eprintln!("{name}: steady state...");
    let dir = tempfile::tempdir().unwrap();
    let steady = {
        let (mut s, _) = open(dir.path());
        let count = n.min(200_000);
        let started = Instant::now();
        for id in 0..count {
            s.publish(id, &message(id));
            if id >= 1000 {
                s.remove(id - 1000);
            }
            if id % 100 == 99 {
                s.sync();
            }
        }
        s.sync();
        rate(count, started.elapsed())
    };
    drop(dir);

    eprintln!("{name}: growing backlog...");
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _) = open(dir.path());
    let started = Instant::now();
    for id in 0..n {
        s.publish(id, &message(id));
        if id % 1000 == 999 {
            s.sync();
        }
    }
    s.sync();
    let backlog = rate(n, started.elapsed());
    let backlog_disk = disk_usage(dir.path()).0;
    drop(s);

    eprintln!("{name}: reopen...");
    let started = Instant::now();
    let (_, reopened) = open(dir.path());
    let reopen = started.elapsed();

    eprintln!("{name}: drain...");
    // Reopened stores know their messages by id only for sled; the segment store
    // needs its locations again, so drain a store that published them itself.
    drop(dir);
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _) = open(dir.path());
    for id in 0..n {
        s.publish(id, &message(id));
    }
    s.sync();
    let started = Instant::now();
    for id in 0..n {
        s.remove(id);
        if id % 1000 == 999 {
            s.sync();
        }
    }
    s.sync();
    let drain = rate(n, started.elapsed());
    let drained_disk = disk_usage(dir.path());
    Report {
        steady,
        backlog,
        backlog_disk,
        reopen,
        reopened,
        drain,
        drained_disk,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let n: u64 = std::env::var("STORE_COMPARE_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300_000);
    let segments = measure("segment log", Segments::open, n);
    let sled = measure("sled", Sled::open, n);
    println!("{n} messages of {BODY} B");
    println!();
    println!("| | segment log | sled 0.34 |");
    println!("|---|---|---|");
    println!(
        "| steady state: publish, sync per 100, ack 1000 behind (msg/s) | {} | {} |",
        segments.steady, sled.steady
    );
    println!(
        "| growing backlog: publish, sync per 1000 (msg/s) | {} | {} |",
        segments.backlog, sled.backlog
    );
    println!(
        "| disk used by the backlog (MiB) | {} | {} |",
        mib(segments.backlog_disk),
        mib(sled.backlog_disk)
    );
    println!(
        "| reopen with the backlog (ms; messages found) | {} ({}) | {} ({}) |",
        segments.reopen.as_millis(),
        segments.reopened,
        sled.reopen.as_millis(),
        sled.reopened
    );
    println!(
        "| drain: remove all, sync per 1000 (msg/s) | {} | {} |",
        segments.drain, sled.drain
    );
    println!(
        "| disk used after draining (MiB apparent / allocated) | {} / {} | {} / {} |",
        mib(segments.drained_disk.0),
        mib(segments.drained_disk.1),
        mib(sled.drained_disk.0),
        mib(sled.drained_disk.1)
    );
}

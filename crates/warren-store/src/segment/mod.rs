//! A durable queue's message log: append-only segment files of CRC-framed message
//! records, each with an ack file recording which of its messages were delivered and
//! which are gone. A segment is deleted once all its messages are gone, so disk space
//! comes back as consumers drain the queue.
//!
//! Writes are buffered and written in batches ([`SegmentLog::flush`]); durability comes
//! from [`SegmentLog::sync_jobs`], which the owner runs off its async threads, so one
//! `fdatasync` covers everything written since the last (group commit). Recovery cuts
//! torn or corrupted records and reports them; it never panics.

mod io;
mod record;

use std::collections::{BTreeMap, HashSet};

pub use io::{FsFile, FsStorage, SimHandle, SimStorage, Storage, StoreFile, SyncJob};
pub use record::StoredMessage;

use crate::Message;
use record::{AckKind, Stop, decode_acks, decode_message, encode_ack, encode_message};

/// Where a message record lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Location {
    /// Segment number.
    pub segment: u32,
    /// Offset of the record in the segment file.
    pub offset: u32,
    /// Size of the record.
    pub len: u32,
}

/// A message found on disk at recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// The message and its queue metadata.
    pub stored: StoredMessage,
    /// Where it is.
    pub location: Location,
    /// It had been delivered (and not acknowledged) before the restart.
    pub delivered: bool,
}

/// What recovery found.
#[derive(Debug, Default)]
pub struct Recovery {
    /// Live messages, in id order.
    pub messages: Vec<Recovered>,
    /// Damage found and skipped, one line each.
    pub problems: Vec<String>,
}

#[derive(Debug)]
struct Segment<F> {
    msgs: F,
    acks: F,
    /// Octets in the message file, written or buffered.
    size: u64,
    /// Messages in the segment that are not gone yet.
    live: u32,
    msg_buf: Vec<u8>,
    ack_buf: Vec<u8>,
    /// Written since the last sync.
    dirty: bool,
}

/// Size at which a new segment is started.
pub const DEFAULT_SEGMENT_BYTES: u64 = 8 * 1024 * 1024;

/// A queue's message log on a [`Storage`].
#[derive(Debug)]
pub struct SegmentLog<S: Storage> {
    storage: S,
    segments: BTreeMap<u32, Segment<S::File>>,
    current: u32,
    segment_bytes: u64,
    /// Files were created or removed since the directory was last synced.
    dir_dirty: bool,
}

fn msg_name(segment: u32) -> String {
    format!("{segment:010}.msg")
}

fn ack_name(segment: u32) -> String {
    format!("{segment:010}.ack")
}

impl<S: Storage> SegmentLog<S> {
    /// Open the log, recovering what is on disk. `label` names the queue in reports.
    pub fn open(storage: S, label: &str, segment_bytes: u64) -> std::io::Result<(Self, Recovery)> {
        let mut numbers: Vec<u32> = storage
            .list()?
            .iter()
            .filter_map(|n| n.strip_suffix(".msg").and_then(|s| s.parse().ok()))
            .collect();
        numbers.sort_unstable();
        let mut log = Self {
            storage,
            segments: BTreeMap::new(),
            current: 0,
            segment_bytes: segment_bytes.max(1),
            dir_dirty: false,
        };
        let mut recovery = Recovery::default();
        let mut removed: HashSet<u64> = HashSet::new();
        let mut delivered: HashSet<u64> = HashSet::new();
        let mut found: Vec<Recovered> = Vec::new();
        for &n in &numbers {
            let mut msgs = log.storage.open(&msg_name(n))?;
            let mut acks = log.storage.open(&ack_name(n))?;
            let data = msgs.read_all()?;
            let mut at = 0usize;
            loop {
                match decode_message(&data[at..]) {
                    Ok(None) => break,
                    Ok(Some((stored, size))) => {
                        let location = Location {
                            segment: n,
                            offset: u32::try_from(at).unwrap_or(u32::MAX),
                            len: u32::try_from(size).unwrap_or(u32::MAX),
                        };
                        // A transient message written out to save memory dies with the
                        // process, as it would have in RAM.
                        if stored.message.persistent {
                            found.push(Recovered {
                                stored,
                                location,
                                delivered: false,
                            });
                        }
                        at += size;
                    }
                    Err(stop) => {
                        let what = if stop == Stop::Torn {
                            "torn record"
                        } else {
                            "corrupted record"
                        };
                        recovery.problems.push(format!(
                            "queue {label}: segment {n}: {what} at offset {at}; {} octets after it skipped",
                            data.len() - at
                        ));
                        break;
                    }
                }
            }
            let (records, stop) = decode_acks(&acks.read_all()?);
            if let Some(stop) = stop {
                recovery.problems.push(format!(
                    "queue {label}: segment {n}: {} ack record after {} good ones skipped",
                    if stop == Stop::Torn {
                        "torn"
                    } else {
                        "corrupted"
                    },
                    records.len()
                ));
            }
            for (kind, id) in records {
                match kind {
                    AckKind::Removed => removed.insert(id),
                    AckKind::Delivered => delivered.insert(id),
                };
            }
            log.segments.insert(
                n,
                Segment {
                    msgs,
                    acks,
                    size: data.len() as u64,
                    live: 0,
                    msg_buf: Vec::new(),
                    ack_buf: Vec::new(),
                    dirty: false,
                },
            );
        }
        found.retain(|r| !removed.contains(&r.stored.id));
        for r in &mut found {
            r.delivered = delivered.contains(&r.stored.id);
            if let Some(seg) = log.segments.get_mut(&r.location.segment) {
                seg.live += 1;
            }
        }
        found.sort_by_key(|r| r.stored.id);
        // Segments with nothing live are garbage; appends go to a fresh segment so no
        // record is ever written after a damaged one.
        let empty: Vec<u32> = log
            .segments
            .iter()
            .filter(|(_, s)| s.live == 0)
            .map(|(n, _)| *n)
            .collect();
        for n in empty {
            log.delete_segment(n)?;
        }
        log.current = numbers.last().map_or(0, |n| n + 1);
        log.start_segment(log.current)?;
        recovery.messages = found;
        Ok((log, recovery))
    }

    fn start_segment(&mut self, n: u32) -> std::io::Result<()> {
        let msgs = self.storage.open(&msg_name(n))?;
        let acks = self.storage.open(&ack_name(n))?;
        self.segments.insert(
            n,
            Segment {
                msgs,
                acks,
                size: 0,
                live: 0,
                msg_buf: Vec::new(),
                ack_buf: Vec::new(),
                dirty: false,
            },
        );
        self.dir_dirty = true;
        Ok(())
    }

    fn delete_segment(&mut self, n: u32) -> std::io::Result<()> {
        self.segments.remove(&n);
        self.storage.remove(&msg_name(n))?;
        self.storage.remove(&ack_name(n))?;
        self.dir_dirty = true;
        Ok(())
    }

    /// Append a message; returns where it will be.
    pub fn append(
        &mut self,
        id: u64,
        priority: u8,
        expires_unix_ms: Option<u64>,
        message: &Message,
    ) -> std::io::Result<Location> {
        if self
            .segments
            .get(&self.current)
            .is_some_and(|s| s.size >= self.segment_bytes)
        {
            self.current += 1;
            self.start_segment(self.current)?;
        }
        let n = self.current;
        let Some(seg) = self.segments.get_mut(&n) else {
            return Err(std::io::Error::other("current segment missing"));
        };
        let before = seg.msg_buf.len();
        encode_message(&mut seg.msg_buf, id, priority, expires_unix_ms, message);
        let len = seg.msg_buf.len() - before;
        let location = Location {
            segment: n,
            offset: u32::try_from(seg.size).unwrap_or(u32::MAX),
            len: u32::try_from(len).unwrap_or(u32::MAX),
        };
        seg.size += len as u64;
        seg.live += 1;
        seg.dirty = true;
        Ok(location)
    }

    /// Record that a message was delivered (so it comes back redelivered after a crash).
    pub fn delivered(&mut self, location: Location, id: u64) {
        if let Some(seg) = self.segments.get_mut(&location.segment) {
            encode_ack(&mut seg.ack_buf, AckKind::Delivered, id);
            seg.dirty = true;
        }
    }

    /// Record that a message is gone (acknowledged, expired, dead-lettered, purged).
    /// A segment whose messages are all gone is deleted.
    pub fn removed(&mut self, location: Location, id: u64) -> std::io::Result<()> {
        let n = location.segment;
        let Some(seg) = self.segments.get_mut(&n) else {
            return Ok(());
        };
        encode_ack(&mut seg.ack_buf, AckKind::Removed, id);
        seg.dirty = true;
        seg.live = seg.live.saturating_sub(1);
        if seg.live == 0 && n != self.current {
            self.delete_segment(n)?;
        }
        Ok(())
    }

    /// Write buffered records to the files.
    pub fn flush(&mut self) -> std::io::Result<()> {
        for seg in self.segments.values_mut() {
            if !seg.msg_buf.is_empty() {
                seg.msgs.append(&seg.msg_buf)?;
                seg.msg_buf.clear();
            }
            if !seg.ack_buf.is_empty() {
                seg.acks.append(&seg.ack_buf)?;
                seg.ack_buf.clear();
            }
        }
        Ok(())
    }

    /// True when something was written since the last sync.
    #[must_use]
    pub fn needs_sync(&self) -> bool {
        self.dir_dirty || self.segments.values().any(|s| s.dirty)
    }

    /// Flush, then return the jobs that make everything written so far durable.
    pub fn sync_jobs(&mut self) -> std::io::Result<Vec<SyncJob>> {
        self.flush()?;
        let mut jobs = Vec::new();
        for seg in self.segments.values_mut().filter(|s| s.dirty) {
            jobs.push(seg.msgs.sync_job()?);
            jobs.push(seg.acks.sync_job()?);
            seg.dirty = false;
        }
        if self.dir_dirty {
            jobs.push(self.storage.sync_dir_job()?);
            self.dir_dirty = false;
        }
        Ok(jobs)
    }

    /// Flush and sync here and now.
    pub fn sync(&mut self) -> std::io::Result<()> {
        for job in self.sync_jobs()? {
            job()?;
        }
        Ok(())
    }

    /// Read a message back (paging a body in).
    pub fn read(&mut self, location: Location) -> std::io::Result<StoredMessage> {
        self.flush()?;
        let seg = self
            .segments
            .get_mut(&location.segment)
            .ok_or_else(|| std::io::Error::other("segment is gone"))?;
        let data = seg
            .msgs
            .read_at(u64::from(location.offset), location.len as usize)?;
        match decode_message(&data) {
            Ok(Some((m, _))) => Ok(m),
            _ => Err(std::io::Error::other("record does not decode")),
        }
    }

    /// Segment files present (for tests and reports).
    #[must_use]
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Remove every file: the queue is deleted.
    pub fn destroy(self) -> std::io::Result<()> {
        self.storage.destroy()
    }
}

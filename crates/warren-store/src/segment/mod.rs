//! A durable queue's message log: append-only segment files of CRC-framed message
//! records, each with an ack file recording which of its messages were delivered and
//! which are gone. A segment is deleted once all its messages are gone, so disk space
//! comes back as consumers drain the queue.
//!
//! Writes are buffered and written in batches ([`SegmentLog::flush`]); durability comes
//! from [`SegmentLog::sync_jobs`], which the owner runs off its async threads, so one
//! `fdatasync` covers everything written since the last (group commit). Recovery cuts
//! torn or corrupted records and reports them; it never panics.
//!
//! Recovery does not load messages: it returns a [`Backlog`], ranges of segments with
//! counts, and the owner pages messages in ([`SegmentLog::page_in`]) as it needs them.
//! A sealed segment's [`summary`] lets recovery count it without reading it, so start-up
//! time and memory do not grow with the backlog.

mod backlog;
mod io;
mod record;
mod summary;

use std::collections::{BTreeMap, HashSet, VecDeque};

use bytes::Bytes;

pub use backlog::Backlog;
pub use io::{FsFile, FsStorage, KeepWrite, SimHandle, SimStorage, Storage, StoreFile, SyncJob};
pub use record::StoredMessage;

use crate::Message;
use backlog::Run;
use record::{
    AckKind, Stop, claimed_size, decode_acks, decode_message, encode_ack, encode_message,
    scan_message,
};
use summary::Summary;

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

/// A message read back from disk.
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
    /// The messages on disk, to be paged in.
    pub backlog: Backlog,
    /// The first id never used by a recovered message.
    pub next_id: u64,
    /// Damage found and skipped, one line each.
    pub problems: Vec<String>,
}

#[derive(Debug)]
struct Segment<F> {
    /// Open lazily: a long backlog must not hold two descriptors per segment.
    msgs: Option<F>,
    acks: Option<F>,
    /// Octets in the message file, written or buffered.
    size: u64,
    /// Messages in the segment that are not gone yet.
    live: u64,
    /// What it holds, for its summary when it is sealed.
    summary: Summary,
    msg_buf: Vec<u8>,
    ack_buf: Vec<u8>,
    /// Message records written since the last sync.
    msgs_dirty: bool,
    /// Ack records written since the last sync of the ack file.
    acks_dirty: bool,
}

impl<F> Segment<F> {
    fn new(msgs: Option<F>, acks: Option<F>) -> Self {
        Self {
            msgs,
            acks,
            size: 0,
            live: 0,
            summary: Summary::default(),
            msg_buf: Vec::new(),
            ack_buf: Vec::new(),
            msgs_dirty: false,
            acks_dirty: false,
        }
    }
}

/// Size at which a new segment is started.
pub const DEFAULT_SEGMENT_BYTES: u64 = 8 * 1024 * 1024;

/// The smallest read when paging in, so small messages come in useful batches.
const MIN_READ: usize = 64 * 1024;

/// Segments besides the current one whose files stay open (least recently used are
/// closed): reads walk the backlog in order and acks land mostly on its oldest
/// segments, so a few suffice.
const OPEN_SEGMENTS: usize = 8;

/// Buffers larger than these are given back after a flush.
const KEEP_BUFFER: usize = 256 * 1024;
const KEEP_ACK_BUFFER: usize = 16 * 1024;

/// A queue's message log on a [`Storage`].
#[derive(Debug)]
pub struct SegmentLog<S: Storage> {
    storage: S,
    label: String,
    segments: BTreeMap<u32, Segment<S::File>>,
    current: u32,
    segment_bytes: u64,
    /// Summaries of sealed segments, written after the next data sync.
    summaries: Vec<(u32, Summary)>,
    /// Segments (not the current one) with open files, least recently used first.
    open_lru: VecDeque<u32>,
    /// Files were created or removed since the directory was last synced.
    dir_dirty: bool,
}

fn msg_name(segment: u32) -> String {
    format!("{segment:010}.msg")
}

fn ack_name(segment: u32) -> String {
    format!("{segment:010}.ack")
}

fn sum_name(segment: u32) -> String {
    format!("{segment:010}.sum")
}

fn to_u32(n: impl TryInto<u32>) -> u32 {
    n.try_into().unwrap_or(u32::MAX)
}

/// One segment as recovery found it.
struct Found {
    run: Run,
    last_id: Option<u64>,
    /// The summary to write for it, when it had none.
    summary: Option<Summary>,
}

impl<S: Storage> SegmentLog<S> {
    /// Open the log, recovering what is on disk. `label` names the queue in reports.
    pub fn open(storage: S, label: &str, segment_bytes: u64) -> std::io::Result<(Self, Recovery)> {
        let names = storage.list()?;
        let mut numbers: Vec<u32> = names
            .iter()
            .filter_map(|n| n.strip_suffix(".msg").and_then(|s| s.parse().ok()))
            .collect();
        numbers.sort_unstable();
        let mut log = Self {
            storage,
            label: label.to_owned(),
            segments: BTreeMap::new(),
            current: 0,
            segment_bytes: segment_bytes.max(1),
            summaries: Vec::new(),
            open_lru: VecDeque::new(),
            dir_dirty: false,
        };
        // Summaries whose segment is gone (deleted before the summary was).
        let known: HashSet<u32> = numbers.iter().copied().collect();
        for orphan in names
            .iter()
            .filter_map(|n| n.strip_suffix(".sum").and_then(|s| s.parse::<u32>().ok()))
            .filter(|n| !known.contains(n))
        {
            log.storage.remove(&sum_name(orphan))?;
            log.dir_dirty = true;
        }
        let mut recovery = Recovery::default();
        let mut next_id = 0u64;
        for &n in &numbers {
            let found = log.recover_segment(n, &names, &mut recovery)?;
            if let Some(last) = found.last_id {
                next_id = next_id.max(last + 1);
            }
            if found.run.count == 0 {
                // Nothing live: garbage.
                log.delete_segment(n)?;
                continue;
            }
            if let Some(summary) = found.summary {
                log.summaries.push((n, summary));
            }
            recovery.backlog.len += found.run.count;
            recovery.backlog.bytes += found.run.bytes;
            recovery.backlog.runs.push_back(found.run);
        }
        recovery.backlog.dead_below = next_id;
        recovery.next_id = next_id;
        // Appends go to a fresh segment, so no record is ever written after a damaged one.
        log.current = numbers.last().map_or(0, |n| n + 1);
        log.start_segment(log.current)?;
        log.open_lru.clear();
        Ok((log, recovery))
    }

    /// Read one segment's acks, and its summary or (if that cannot be trusted) its
    /// records, into a run of live messages.
    fn recover_segment(
        &mut self,
        n: u32,
        names: &[String],
        recovery: &mut Recovery,
    ) -> std::io::Result<Found> {
        let mut msgs = self.storage.open(&msg_name(n))?;
        let mut acks = self.storage.open(&ack_name(n))?;
        let (records, stop) = decode_acks(&acks.read_all()?);
        if stop.is_some() {
            // Later records go after the last good one, where recovery will find them.
            acks.truncate((records.len() * record::ACK_RECORD) as u64)?;
        }
        if let Some(stop) = stop {
            recovery.problems.push(format!(
                "queue {}: segment {n}: {} ack record after {} good ones skipped",
                self.label,
                if stop == Stop::Torn {
                    "torn"
                } else {
                    "corrupted"
                },
                records.len()
            ));
        }
        let mut removed = HashSet::new();
        let mut delivered = Vec::new();
        for (kind, id) in records {
            match kind {
                AckKind::Removed => {
                    removed.insert(id);
                }
                AckKind::Delivered => delivered.push(id),
            }
        }
        let summary = if removed.is_empty() && names.contains(&sum_name(n)) {
            let mut file = self.storage.open(&sum_name(n))?;
            Summary::decode(&file.read_all()?)
        } else {
            None
        };
        let found = match summary {
            Some(s) => Found {
                run: Run {
                    segment: n,
                    start: 0,
                    end: s.data_end,
                    count: s.persistent,
                    bytes: s.body_bytes,
                },
                last_id: Some(s.last_id),
                summary: None,
            },
            None => self.scan_segment(n, &mut msgs, &removed, recovery)?,
        };
        drop((msgs, acks));
        let mut segment = Segment::new(None, None);
        segment.size = found.run.end;
        segment.live = found.run.count;
        if found.run.count > 0 {
            recovery.backlog.skip.extend(removed);
            recovery.backlog.delivered.extend(delivered);
        }
        self.segments.insert(n, segment);
        Ok(found)
    }

    /// Read a segment's records to count what is live in it.
    fn scan_segment(
        &self,
        n: u32,
        msgs: &mut S::File,
        removed: &HashSet<u64>,
        recovery: &mut Recovery,
    ) -> std::io::Result<Found> {
        let data = msgs.read_all()?;
        let mut at = 0usize;
        let mut live = 0u64;
        let mut bytes = 0u64;
        let mut summary = Summary::default();
        let mut last_id = None;
        loop {
            match scan_message(&data[at..]) {
                Ok(None) => break,
                Ok(Some((info, size))) => {
                    last_id = Some(last_id.map_or(info.id, |l: u64| l.max(info.id)));
                    // A transient message written out to save memory dies with the
                    // process, as it would have in RAM.
                    if info.persistent {
                        summary.persistent += 1;
                        summary.body_bytes += info.body_len;
                        if !removed.contains(&info.id) {
                            live += 1;
                            bytes += info.body_len;
                        }
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
                        "queue {}: segment {n}: {what} at offset {at}; {} octets after it skipped",
                        self.label,
                        data.len() - at
                    ));
                    break;
                }
            }
        }
        summary.last_id = last_id.unwrap_or(0);
        summary.data_end = at as u64;
        Ok(Found {
            run: Run {
                segment: n,
                start: 0,
                end: at as u64,
                count: live,
                bytes,
            },
            last_id,
            // A summary is only worth writing for an untouched segment: one with
            // removals is read at every start anyway.
            summary: removed.is_empty().then_some(summary),
        })
    }

    fn start_segment(&mut self, n: u32) -> std::io::Result<()> {
        let msgs = self.storage.open(&msg_name(n))?;
        let acks = self.storage.open(&ack_name(n))?;
        let previous = self.current;
        self.segments
            .insert(n, Segment::new(Some(msgs), Some(acks)));
        self.current = n;
        if previous != n && self.segments.contains_key(&previous) {
            self.touch(previous);
        }
        self.dir_dirty = true;
        Ok(())
    }

    /// Note that segment `n`'s files are in use, closing the least recently used ones
    /// beyond [`OPEN_SEGMENTS`].
    fn touch(&mut self, n: u32) {
        if n == self.current {
            return;
        }
        if let Some(at) = self.open_lru.iter().position(|&x| x == n) {
            self.open_lru.remove(at);
        }
        self.open_lru.push_back(n);
        while self.open_lru.len() > OPEN_SEGMENTS {
            if let Some(old) = self.open_lru.pop_front()
                && let Some(seg) = self.segments.get_mut(&old)
            {
                seg.msgs = None;
                seg.acks = None;
            }
        }
    }

    /// Segment `n`'s message file, opened if needed.
    fn msgs_file(&mut self, n: u32) -> std::io::Result<&mut S::File> {
        self.touch(n);
        let seg = self
            .segments
            .get_mut(&n)
            .ok_or_else(|| std::io::Error::other("segment is gone"))?;
        if seg.msgs.is_none() {
            seg.msgs = Some(self.storage.open(&msg_name(n))?);
        }
        seg.msgs
            .as_mut()
            .ok_or_else(|| std::io::Error::other("segment file not open"))
    }

    /// Segment `n`'s ack file, opened if needed.
    fn acks_file(&mut self, n: u32) -> std::io::Result<&mut S::File> {
        self.touch(n);
        let seg = self
            .segments
            .get_mut(&n)
            .ok_or_else(|| std::io::Error::other("segment is gone"))?;
        if seg.acks.is_none() {
            seg.acks = Some(self.storage.open(&ack_name(n))?);
        }
        seg.acks
            .as_mut()
            .ok_or_else(|| std::io::Error::other("segment file not open"))
    }

    fn delete_segment(&mut self, n: u32) -> std::io::Result<()> {
        self.segments.remove(&n);
        self.open_lru.retain(|&x| x != n);
        self.summaries.retain(|(s, _)| *s != n);
        self.storage.remove(&msg_name(n))?;
        self.storage.remove(&ack_name(n))?;
        self.storage.remove(&sum_name(n))?;
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
            if let Some(sealed) = self.segments.get(&self.current) {
                self.summaries.push((self.current, sealed.summary));
            }
            self.start_segment(self.current + 1)?;
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
            offset: to_u32(seg.size),
            len: to_u32(len),
        };
        seg.size += len as u64;
        seg.live += 1;
        seg.msgs_dirty = true;
        if message.persistent {
            seg.summary.persistent += 1;
            seg.summary.body_bytes += message.body.len() as u64;
        }
        seg.summary.last_id = seg.summary.last_id.max(id);
        seg.summary.data_end = seg.size;
        Ok(location)
    }

    /// Record that a message was delivered (so it comes back redelivered after a crash).
    pub fn delivered(&mut self, location: Location, id: u64) {
        if let Some(seg) = self.segments.get_mut(&location.segment) {
            encode_ack(&mut seg.ack_buf, AckKind::Delivered, id);
            seg.acks_dirty = true;
        }
    }

    /// Record that a persistent message is gone (acknowledged, expired, dead-lettered,
    /// purged). A segment whose messages are all gone is deleted.
    pub fn removed(&mut self, location: Location, id: u64) -> std::io::Result<()> {
        if let Some(seg) = self.segments.get_mut(&location.segment) {
            encode_ack(&mut seg.ack_buf, AckKind::Removed, id);
            seg.acks_dirty = true;
        }
        self.release(location.segment, 1)
    }

    /// A transient message written to the log is gone: nothing to record (it would not
    /// survive a restart anyway), but its segment may now be garbage.
    pub fn forget_transient(&mut self, location: Location) -> std::io::Result<()> {
        self.release(location.segment, 1)
    }

    fn release(&mut self, n: u32, count: u64) -> std::io::Result<()> {
        let Some(seg) = self.segments.get_mut(&n) else {
            return Ok(());
        };
        seg.live = seg.live.saturating_sub(count);
        if seg.live == 0 && n != self.current {
            self.delete_segment(n)?;
        }
        Ok(())
    }

    /// Write buffered records to the files.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.flush_buffers(true)
    }

    /// Write buffered ack-file records only (before deliveries leave, their "delivered"
    /// records must be in the files; message records can wait for the next sync).
    pub fn flush_acks(&mut self) -> std::io::Result<()> {
        self.flush_buffers(false)
    }

    fn flush_buffers(&mut self, messages: bool) -> std::io::Result<()> {
        let pending: Vec<u32> = self
            .segments
            .iter()
            .filter(|(_, s)| (messages && !s.msg_buf.is_empty()) || !s.ack_buf.is_empty())
            .map(|(n, _)| *n)
            .collect();
        for n in pending {
            for (is_msgs, buf) in [(true, messages), (false, true)] {
                if !buf {
                    continue;
                }
                let Some(seg) = self.segments.get_mut(&n) else {
                    continue;
                };
                let data = std::mem::take(if is_msgs {
                    &mut seg.msg_buf
                } else {
                    &mut seg.ack_buf
                });
                if data.is_empty() {
                    continue;
                }
                let file = if is_msgs {
                    self.msgs_file(n)?
                } else {
                    self.acks_file(n)?
                };
                file.append(&data)?;
                // Reuse the buffer unless a burst made it large; sealed segments take
                // no more messages, so theirs goes.
                let keep = if is_msgs {
                    n == self.current && data.capacity() <= KEEP_BUFFER
                } else {
                    data.capacity() <= KEEP_ACK_BUFFER
                };
                if keep && let Some(seg) = self.segments.get_mut(&n) {
                    let mut data = data;
                    data.clear();
                    if is_msgs {
                        seg.msg_buf = data;
                    } else {
                        seg.ack_buf = data;
                    }
                }
            }
        }
        Ok(())
    }

    /// True when something was written since the last sync.
    #[must_use]
    pub fn needs_sync(&self) -> bool {
        self.dir_dirty
            || !self.summaries.is_empty()
            || self.segments.values().any(|s| s.msgs_dirty || s.acks_dirty)
    }

    /// Flush, then return the jobs that make everything written so far durable, to be
    /// run in order: data first, then summaries of sealed segments (so a summary on
    /// disk always describes synced data), then the directory.
    pub fn sync_jobs(&mut self) -> std::io::Result<Vec<SyncJob>> {
        self.sync_jobs_for(true)
    }

    /// Like [`Self::sync_jobs`], but ack files are left unsynced: enough for publisher
    /// confirms (a lost ack record means a redelivery, never a lost message), and one
    /// `fdatasync` cheaper while consumers are acking.
    pub fn message_sync_jobs(&mut self) -> std::io::Result<Vec<SyncJob>> {
        self.sync_jobs_for(false)
    }

    fn sync_jobs_for(&mut self, acks: bool) -> std::io::Result<Vec<SyncJob>> {
        self.flush()?;
        let mut jobs = Vec::new();
        let dirty: Vec<(u32, bool, bool)> = self
            .segments
            .iter()
            .filter(|(_, s)| s.msgs_dirty || (acks && s.acks_dirty))
            .map(|(n, s)| (*n, s.msgs_dirty, acks && s.acks_dirty))
            .collect();
        for (n, msgs, ack_file) in dirty {
            // A file closed since it was written is reopened: a sync covers the file,
            // whichever descriptor wrote it.
            if msgs {
                jobs.push(self.msgs_file(n)?.sync_job()?);
            }
            if ack_file {
                jobs.push(self.acks_file(n)?.sync_job()?);
            }
            if let Some(seg) = self.segments.get_mut(&n) {
                seg.msgs_dirty &= !msgs;
                seg.acks_dirty &= !ack_file;
            }
        }
        for (n, summary) in std::mem::take(&mut self.summaries) {
            jobs.push(
                self.storage
                    .write_file_job(&sum_name(n), summary.encode())?,
            );
            self.dir_dirty = true;
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

    /// Read messages from the front of `backlog`, about `max_bytes` of records (at least
    /// one message while any is left), into `out`. Records that cannot be read are
    /// reported in `problems` and their range is dropped; never a panic.
    pub fn page_in(
        &mut self,
        backlog: &mut Backlog,
        max_bytes: usize,
        out: &mut Vec<Recovered>,
        problems: &mut Vec<String>,
    ) -> std::io::Result<()> {
        self.flush()?;
        let mut read = 0usize;
        let first = out.len();
        while read < max_bytes.max(1) || out.len() == first {
            let Some(run) = backlog.runs.front().cloned() else {
                break;
            };
            if run.count == 0 || run.start >= run.end {
                backlog.drop_front();
                continue;
            }
            match self.read_run(&run, max_bytes.saturating_sub(read).max(MIN_READ)) {
                Ok((chunk, consumed)) => {
                    read += consumed;
                    let mut count = 0;
                    let mut bytes = 0;
                    let mut at = 0usize;
                    while at < consumed {
                        let Ok(Some((stored, size))) = decode_message(&chunk.slice(at..)) else {
                            break;
                        };
                        let location = Location {
                            segment: run.segment,
                            offset: to_u32(run.start + at as u64),
                            len: to_u32(size),
                        };
                        at += size;
                        let id = stored.id;
                        if (!stored.message.persistent && id < backlog.dead_below)
                            || backlog.skip.remove(&id)
                        {
                            continue;
                        }
                        count += 1;
                        bytes += stored.message.body.len() as u64;
                        out.push(Recovered {
                            delivered: backlog.delivered.remove(&id),
                            stored,
                            location,
                        });
                    }
                    if let Some(front) = backlog.runs.front_mut() {
                        front.start += consumed as u64;
                        front.count = front.count.saturating_sub(count);
                        front.bytes = front.bytes.saturating_sub(bytes);
                    }
                    backlog.len = backlog.len.saturating_sub(count);
                    backlog.bytes = backlog.bytes.saturating_sub(bytes);
                }
                Err(why) => {
                    problems.push(format!(
                        "queue {}: segment {}: {why} at offset {}; {} messages skipped",
                        self.label, run.segment, run.start, run.count
                    ));
                    backlog.drop_front();
                    // Those messages will never be removed one by one.
                    self.release(run.segment, run.count)?;
                }
            }
        }
        if backlog.runs.is_empty() {
            backlog.skip.clear();
            backlog.delivered.clear();
        }
        Ok(())
    }

    /// Read whole records from the front of `run`: about `want` octets, at least one
    /// record. Returns the data and how many octets of whole, valid records it holds.
    fn read_run(&mut self, run: &Run, want: usize) -> Result<(Bytes, usize), String> {
        let file = self
            .msgs_file(run.segment)
            .map_err(|e| format!("segment file missing ({e})"))?;
        let left = usize::try_from(run.end - run.start).unwrap_or(usize::MAX);
        let mut len = want.min(left);
        loop {
            let data = file
                .read_at(run.start, len)
                .map_err(|e| format!("read failed ({e})"))?;
            let data = Bytes::from(data);
            let mut at = 0usize;
            loop {
                match decode_message(&data.slice(at..)) {
                    Ok(Some((_, size))) => at += size,
                    Ok(None) => break,
                    Err(Stop::Torn) if at > 0 => break,
                    Err(Stop::Torn) => {
                        // The first record is larger than what was read: read it whole.
                        match claimed_size(&data) {
                            Some(size) if size > len && size <= left => break,
                            _ => return Err("torn record".to_owned()),
                        }
                    }
                    Err(Stop::Corrupt) if at > 0 => break,
                    Err(Stop::Corrupt) => return Err("corrupted record".to_owned()),
                }
            }
            if at > 0 {
                return Ok((data, at));
            }
            len = claimed_size(&data).unwrap_or(left).min(left);
        }
    }

    /// Read every message of `backlog` (for queues kept wholly in memory).
    pub fn page_in_all(
        &mut self,
        backlog: &mut Backlog,
        problems: &mut Vec<String>,
    ) -> std::io::Result<Vec<Recovered>> {
        let mut out = Vec::new();
        while !backlog.is_empty() {
            self.page_in(backlog, 16 * 1024 * 1024, &mut out, problems)?;
        }
        Ok(out)
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

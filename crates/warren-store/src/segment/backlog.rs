//! The part of a durable queue that is only on disk: ranges of segment files, in
//! publish order, with a count and a size but no per-message memory. Messages enter it
//! when the queue's in-memory part is full (or at recovery) and leave it when paged in
//! ([`super::SegmentLog::page_in`]).

use std::collections::{HashSet, VecDeque};

use super::Location;

/// A contiguous range of one segment's records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Run {
    pub segment: u32,
    /// Offset of the next record to read.
    pub start: u64,
    /// Where the range ends.
    pub end: u64,
    /// Live messages left in the range.
    pub count: u64,
    /// Their body octets.
    pub bytes: u64,
}

/// Messages on disk only, oldest first.
#[derive(Debug, Default)]
pub struct Backlog {
    pub(super) runs: VecDeque<Run>,
    pub(super) len: u64,
    pub(super) bytes: u64,
    /// Messages removed before a restart whose records are still inside a run.
    pub(super) skip: HashSet<u64>,
    /// Messages delivered (unacknowledged) before a restart: they page in redelivered.
    pub(super) delivered: HashSet<u64>,
    /// Transient records with smaller ids were written before the restart: dead.
    pub(super) dead_below: u64,
}

impl Backlog {
    /// Messages in the backlog.
    #[must_use]
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Their body octets.
    #[must_use]
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// True when nothing waits on disk.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A message just appended at `at` joins the backlog (instead of memory).
    pub fn push(&mut self, at: Location, body_len: u64) {
        let end = u64::from(at.offset) + u64::from(at.len);
        match self.runs.back_mut() {
            Some(run) if run.segment == at.segment && run.end == u64::from(at.offset) => {
                run.end = end;
                run.count += 1;
                run.bytes += body_len;
            }
            _ => self.runs.push_back(Run {
                segment: at.segment,
                start: u64::from(at.offset),
                end,
                count: 1,
                bytes: body_len,
            }),
        }
        self.len += 1;
        self.bytes += body_len;
    }

    /// Drop the front run (its messages are gone or unreadable).
    pub(super) fn drop_front(&mut self) -> Option<Run> {
        let run = self.runs.pop_front()?;
        self.len -= run.count;
        self.bytes -= run.bytes;
        if self.runs.is_empty() {
            self.skip.clear();
            self.delivered.clear();
        }
        Some(run)
    }
}

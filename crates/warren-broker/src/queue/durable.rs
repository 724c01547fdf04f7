//! A durable queue's message log as its task drives it: group commit, and what happens
//! when the disk fails.
//!
//! Records are buffered. Ack-file records are written (`write`, not `fsync`) before any
//! delivery leaves the queue, so a process crash never loses a "delivered" record for a
//! message a client has seen; everything is written when a sync starts (at once when a
//! publisher waits for a confirm, within 200 ms otherwise). Syncs run on tokio's
//! blocking pool, one at a time: everything written while one runs is covered by the
//! next, so a burst of publishes costs one `fdatasync` and confirms grow with load.
//! Publisher confirms and transaction commits wait for the sync covering their message.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::{error, info, warn};
use warren_store::definitions::{QueueDef, read_queue_record, write_queue_record};
use warren_store::segment::{
    Backlog, DEFAULT_SEGMENT_BYTES, FsStorage, Location, Recovered, SegmentLog, SyncJob,
};
use warren_store::{Message, MessageId};

use super::ConfirmTicket;

/// How long writes without a waiting publisher may stay unsynced.
const LAZY_SYNC: Duration = Duration::from_millis(200);

/// Milliseconds since the Unix epoch: deadlines on disk must outlive the process.
pub(super) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The log, the confirms waiting for it, and the sync in flight.
#[derive(Debug)]
pub(super) struct DurableLog {
    log: SegmentLog<FsStorage>,
    /// Messages only on disk, oldest first, behind those in memory.
    backlog: Backlog,
    queue: Arc<str>,
    dir: PathBuf,
    /// Confirms for messages written since the running sync (if any) began.
    waiting: Vec<ConfirmTicket>,
    /// The running sync's result, and the confirms it settles.
    syncing: Option<(oneshot::Receiver<io::Result<()>>, Vec<ConfirmTicket>)>,
    /// Unsynced writes nobody waits for are synced by then.
    sync_by: Option<Instant>,
    /// A write or sync failed: the queue takes no more messages.
    failed: bool,
}

impl DurableLog {
    /// Open the log in `dir`, recovering its messages (as a backlog, not read yet);
    /// returns the log and the first message id not used on disk. Blocking: run it off
    /// the async threads.
    /// `record` is the queue's definition, kept in its directory too (see
    /// `warren_store::definitions::write_queue_record`).
    pub(super) fn open(
        dir: &Path,
        queue: &Arc<str>,
        record: &QueueDef,
    ) -> io::Result<(Self, MessageId)> {
        let storage = FsStorage::new(dir)?;
        if read_queue_record(dir).as_ref() != Some(record) {
            write_queue_record(dir, record)?;
        }
        let (log, recovery) = SegmentLog::open(storage, queue, DEFAULT_SEGMENT_BYTES)?;
        for problem in &recovery.problems {
            warn!(queue = %queue, %problem, "message store damage skipped");
        }
        if !recovery.backlog.is_empty() {
            info!(
                queue = %queue,
                messages = recovery.backlog.len(),
                bytes = recovery.backlog.bytes(),
                "messages recovered"
            );
        }
        Ok((
            Self {
                log,
                backlog: recovery.backlog,
                queue: queue.clone(),
                dir: dir.to_path_buf(),
                waiting: Vec::new(),
                syncing: None,
                sync_by: None,
                failed: false,
            },
            recovery.next_id,
        ))
    }

    /// Messages waiting on disk only.
    pub(super) fn backlog(&self) -> &Backlog {
        &self.backlog
    }

    /// Write a message that joins the on-disk backlog instead of memory.
    pub(super) fn append_to_backlog(
        &mut self,
        id: MessageId,
        expires_unix_ms: Option<u64>,
        message: &Message,
    ) -> bool {
        match self.append(id, expires_unix_ms, message) {
            Some(at) => {
                self.backlog.push(at, message.body.len() as u64);
                true
            }
            None => false,
        }
    }

    /// Read about `max_bytes` of messages from the front of the backlog.
    pub(super) fn page_in(&mut self, max_bytes: usize) -> Vec<Recovered> {
        let mut out = Vec::new();
        let mut problems = Vec::new();
        if let Err(e) = self
            .log
            .page_in(&mut self.backlog, max_bytes, &mut out, &mut problems)
        {
            self.fail("read", &e);
        }
        for problem in problems {
            error!(queue = %self.queue, %problem, "message store damage: messages lost");
        }
        out
    }

    pub(super) fn failed(&self) -> bool {
        self.failed
    }

    /// Write a message record; `None` when the log has failed.
    pub(super) fn append(
        &mut self,
        id: MessageId,
        expires_unix_ms: Option<u64>,
        message: &Message,
    ) -> Option<Location> {
        if self.failed {
            return None;
        }
        match self
            .log
            .append(id, message.priority, expires_unix_ms, message)
        {
            Ok(at) => {
                self.dirty();
                Some(at)
            }
            Err(e) => {
                self.fail("append", &e);
                None
            }
        }
    }

    /// The message went to a consumer that must acknowledge it.
    pub(super) fn delivered(&mut self, at: Location, id: MessageId) {
        if !self.failed {
            self.log.delivered(at, id);
            self.dirty();
        }
    }

    /// The message left the queue for good.
    pub(super) fn removed(&mut self, at: Location, id: MessageId, persistent: bool) {
        if self.failed {
            return;
        }
        let done = if persistent {
            self.dirty();
            self.log.removed(at, id)
        } else {
            self.log.forget_transient(at)
        };
        if let Err(e) = done {
            self.fail("remove", &e);
        }
    }

    fn dirty(&mut self) {
        if self.sync_by.is_none() {
            self.sync_by = Some(Instant::now() + LAZY_SYNC);
        }
    }

    /// Settle `ticket` once everything written so far is synced.
    pub(super) fn confirm_after_sync(&mut self, ticket: ConfirmTicket) {
        if self.failed {
            ticket.fail();
        } else {
            self.waiting.push(ticket);
        }
    }

    /// Hand buffered "delivered" and "removed" records to the operating system (no
    /// sync): done before deliveries leave, so a crashed process never forgets that a
    /// client saw a message. Message records wait for the next sync.
    pub(super) fn write_acks(&mut self) {
        if self.failed {
            return;
        }
        if let Err(e) = self.log.flush_acks() {
            self.fail("write", &e);
        }
    }

    /// When the task must wake to sync writes nobody is waiting for.
    pub(super) fn wake_at(&self) -> Option<Instant> {
        if self.syncing.is_some() || self.failed {
            None
        } else {
            self.sync_by
        }
    }

    /// Start a sync if one is due and none is running: confirms are waiting, or lazy
    /// writes reached their deadline.
    pub(super) fn maybe_sync(&mut self) {
        if self.syncing.is_some() || self.failed {
            return;
        }
        let lazy_due = self.sync_by.is_some_and(|at| at <= Instant::now());
        if self.waiting.is_empty() && !lazy_due {
            return;
        }
        // Confirms need the message records only; ack records follow lazily.
        let jobs = if lazy_due {
            self.log.sync_jobs()
        } else {
            self.log.message_sync_jobs()
        };
        let jobs = match jobs {
            Ok(jobs) => jobs,
            Err(e) => {
                self.fail("write", &e);
                return;
            }
        };
        if lazy_due {
            self.sync_by = None;
        }
        let (done, result) = oneshot::channel();
        tokio::task::spawn_blocking(move || {
            let _ = done.send(run(jobs));
        });
        self.syncing = Some((result, std::mem::take(&mut self.waiting)));
    }

    /// Resolves when the running sync ends (never, if none runs).
    pub(super) async fn sync_done(&mut self) -> io::Result<()> {
        match &mut self.syncing {
            Some((result, _)) => result
                .await
                .unwrap_or_else(|_| Err(io::Error::other("sync task ended"))),
            None => std::future::pending().await,
        }
    }

    /// Settle the confirms the finished sync covered.
    pub(super) fn synced(&mut self, result: io::Result<()>) {
        let Some((_, tickets)) = self.syncing.take() else {
            return;
        };
        match result {
            Ok(()) => {
                for ticket in tickets {
                    ticket.resolve(true);
                }
            }
            Err(e) => {
                for ticket in tickets {
                    ticket.fail();
                }
                self.fail("sync", &e);
            }
        }
    }

    /// Write and sync everything now (graceful shutdown). Blocking.
    pub(super) fn sync_now(&mut self) -> io::Result<()> {
        if self.failed {
            return Err(io::Error::other("message store failed earlier"));
        }
        self.log.sync()?;
        for ticket in self.waiting.drain(..) {
            ticket.resolve(true);
        }
        Ok(())
    }

    /// The disk refused: never confirm anything again, say so loudly.
    fn fail(&mut self, what: &str, e: &io::Error) {
        error!(
            queue = %self.queue,
            dir = %self.dir.display(),
            error = %e,
            "message store {what} failed: the queue refuses new messages until restarted"
        );
        self.failed = true;
        for ticket in self.waiting.drain(..) {
            ticket.fail();
        }
    }

    /// Remove the files (the queue was deleted). Blocking.
    pub(super) fn destroy(self) -> io::Result<()> {
        // A running sync may still create files (a segment summary): let it finish.
        if let Some((result, _tickets)) = self.syncing {
            let _ = result.blocking_recv();
        }
        self.log.destroy()
    }
}

fn run(jobs: Vec<SyncJob>) -> io::Result<()> {
    for job in jobs {
        job()?;
    }
    Ok(())
}

//! Publisher confirms: sequence numbers, and coalescing acknowledgements into
//! `basic.ack` with `multiple=true` where a run allows it.

use warren_codec::encode::{encode_basic_ack, encode_basic_nack};

use crate::connection::Session;

/// A confirm-mode channel's bookkeeping.
///
/// Every publish is resolved in sequence order today (it is confirmed once enqueued), so
/// a run of acks since the last flush is one `basic.ack(multiple=true)`.
#[derive(Debug, Default)]
pub(crate) struct Confirms {
    last_seq: u64,
    /// Resolved, not yet sent: (sequence number, ack?).
    resolved: Vec<(u64, bool)>,
}

impl Confirms {
    /// The sequence number of the next publish.
    pub(crate) fn next_seq(&mut self) -> u64 {
        self.last_seq += 1;
        self.last_seq
    }

    /// Record the outcome of publish `seq`. True when this is the first outcome waiting
    /// to be sent (the channel must then be flushed after the current input).
    pub(crate) fn resolve(&mut self, seq: u64, ack: bool) -> bool {
        self.resolved.push((seq, ack));
        self.resolved.len() == 1
    }

    /// Encode what was resolved: runs of acks as one (multiple when longer than one),
    /// nacks one by one.
    pub(crate) fn flush(&mut self, s: &mut Session, channel: u16) {
        self.resolved.sort_unstable_by_key(|(seq, _)| *seq);
        let mut run: Option<(u64, u64)> = None; // (last seq, length)
        for (seq, ack) in std::mem::take(&mut self.resolved) {
            if ack {
                run = Some(run.map_or((seq, 1), |(_, n)| (seq, n + 1)));
                continue;
            }
            if let Some((last, n)) = run.take() {
                encode_basic_ack(&mut s.out, channel, last, n > 1);
            }
            encode_basic_nack(&mut s.out, channel, seq, false);
        }
        if let Some((last, n)) = run {
            encode_basic_ack(&mut s.out, channel, last, n > 1);
        }
    }
}

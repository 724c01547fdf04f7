//! Publisher confirms: sequence numbers, the publishes still waiting for a queue's
//! verdict, and coalescing acknowledgements into `basic.ack` with `multiple=true` where
//! that is correct.

use std::collections::BTreeMap;

use bytes::BytesMut;
use warren_codec::encode::{encode_basic_ack, encode_basic_nack};

/// A confirm-mode channel's bookkeeping.
#[derive(Debug, Default)]
pub(crate) struct Confirms {
    last_seq: u64,
    /// Publishes waiting for queues: sequence number -> (verdicts still due, nacked?).
    outstanding: BTreeMap<u64, (u32, bool)>,
    /// Resolved, not yet sent: (sequence number, ack?).
    resolved: Vec<(u64, bool)>,
}

impl Confirms {
    /// The sequence number of the next publish.
    pub(crate) fn next_seq(&mut self) -> u64 {
        self.last_seq += 1;
        self.last_seq
    }

    /// Publish `seq` is resolved now. True when this is the first outcome waiting to be
    /// sent (the channel must then be flushed after the current input).
    pub(crate) fn resolve(&mut self, seq: u64, ack: bool) -> bool {
        self.resolved.push((seq, ack));
        self.resolved.len() == 1
    }

    /// Publish `seq` waits for `queues` verdicts.
    pub(crate) fn expect(&mut self, seq: u64, queues: u32) {
        self.outstanding.insert(seq, (queues, false));
    }

    /// One queue's verdict on `seq`. True when the publish is now resolved and is the
    /// first outcome waiting to be sent. A single nack makes the publish a nack.
    pub(crate) fn verdict(&mut self, seq: u64, ack: bool) -> bool {
        let Some((due, nacked)) = self.outstanding.get_mut(&seq) else {
            return false;
        };
        *due -= 1;
        *nacked |= !ack;
        if *due > 0 {
            return false;
        }
        let nacked = *nacked;
        self.outstanding.remove(&seq);
        self.resolve(seq, !nacked)
    }

    /// Encode what was resolved. Below the oldest publish still waiting, runs of acks
    /// become one `basic.ack` (multiple when longer than one) and nacks go one by one;
    /// above it, everything goes one by one, since `multiple` would also cover the
    /// publishes still waiting.
    pub(crate) fn flush(&mut self, out: &mut BytesMut, channel: u16) {
        self.resolved.sort_unstable_by_key(|(seq, _)| *seq);
        let waiting = self.outstanding.keys().next().copied().unwrap_or(u64::MAX);
        let mut run: Option<(u64, u64)> = None; // (last seq, length)
        for (seq, ack) in std::mem::take(&mut self.resolved) {
            if ack && seq < waiting {
                run = Some(run.map_or((seq, 1), |(_, n)| (seq, n + 1)));
                continue;
            }
            if let Some((last, n)) = run.take() {
                encode_basic_ack(out, channel, last, n > 1);
            }
            if ack {
                encode_basic_ack(out, channel, seq, false);
            } else {
                encode_basic_nack(out, channel, seq, false);
            }
        }
        if let Some((last, n)) = run {
            encode_basic_ack(out, channel, last, n > 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use warren_codec::frame::decode_frame;
    use warren_codec::method::{Method, decode_method};

    use super::*;

    fn sent(out: &mut BytesMut) -> Vec<(bool, u64, bool)> {
        let mut v = Vec::new();
        while let Some(f) = decode_frame(out, 0).unwrap() {
            match decode_method(&Bytes::from(f.payload.to_vec())).unwrap() {
                Method::BasicAck(a) => v.push((true, a.delivery_tag, a.multiple)),
                Method::BasicNack(n) => v.push((false, n.delivery_tag, n.multiple)),
                other => panic!("{other:?}"),
            }
        }
        v
    }

    #[test]
    fn runs_of_acks_coalesce_and_nacks_stand_alone() {
        let mut c = Confirms::default();
        let mut out = BytesMut::new();
        for _ in 0..5 {
            c.next_seq();
        }
        assert!(c.resolve(1, true));
        assert!(!c.resolve(3, true));
        c.resolve(2, true);
        c.resolve(4, false);
        c.resolve(5, true);
        c.flush(&mut out, 1);
        assert_eq!(
            sent(&mut out),
            vec![(true, 3, true), (false, 4, false), (true, 5, false)]
        );
        c.flush(&mut out, 1);
        assert!(sent(&mut out).is_empty());
    }

    #[test]
    fn waiting_publishes_are_never_covered_by_multiple() {
        let mut c = Confirms::default();
        let mut out = BytesMut::new();
        let (a, b, d) = (c.next_seq(), c.next_seq(), c.next_seq());
        c.resolve(a, true);
        c.expect(b, 2);
        c.resolve(d, true);
        c.flush(&mut out, 1);
        assert_eq!(sent(&mut out), vec![(true, 1, false), (true, 3, false)]);
        assert!(!c.verdict(b, true));
        assert!(c.verdict(b, false));
        c.flush(&mut out, 1);
        assert_eq!(sent(&mut out), vec![(false, 2, false)]);
    }
}

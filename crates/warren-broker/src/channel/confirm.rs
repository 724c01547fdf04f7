//! Publisher confirms: sequence numbers, and coalescing acknowledgements into
//! `basic.ack` with `multiple=true` where a run allows it.

use bytes::BytesMut;
use warren_codec::encode::{encode_basic_ack, encode_basic_nack};

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
    pub(crate) fn flush(&mut self, out: &mut BytesMut, channel: u16) {
        self.resolved.sort_unstable_by_key(|(seq, _)| *seq);
        let mut run: Option<(u64, u64)> = None; // (last seq, length)
        for (seq, ack) in std::mem::take(&mut self.resolved) {
            if ack {
                run = Some(run.map_or((seq, 1), |(_, n)| (seq, n + 1)));
                continue;
            }
            if let Some((last, n)) = run.take() {
                encode_basic_ack(out, channel, last, n > 1);
            }
            encode_basic_nack(out, channel, seq, false);
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
}

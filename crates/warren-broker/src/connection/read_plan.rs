//! How much the connection reads next. Frames are split off the read buffer without
//! copying, so the buffer is shared with every frame still alive and cannot grow in
//! place: growing it copies what it holds into a new allocation. A large frame should
//! therefore arrive in a buffer that already has room for all of it.

use bytes::BytesMut;
use warren_codec::FRAME_HEADER_SIZE;

/// Read buffer kept free before each ordinary read.
pub(super) const READ_CHUNK: usize = 64 * 1024;

/// The most the read buffer reserves ahead for one frame (the size is the peer's claim;
/// `decode_frame` refuses frames over `frame_max` once it is negotiated).
const MAX_FRAME_RESERVATION: usize = 4 << 20;

/// A frame with at least this much still to come is read on its own, up to the next
/// frame's header, so that the next frame's size is known before any of its payload
/// lands in a buffer too small for it.
const LARGE_REST: usize = 16 * 1024;

/// The first read after a large frame: short, because it probably ends inside the next
/// large frame, whose beginning is copied when the buffer grows for the rest of it.
const AFTER_LARGE_CHUNK: usize = 4 * 1024;

/// The whole size of the frame whose header opens `buf`, when the header is in.
fn partial_frame_len(buf: &[u8]) -> usize {
    match buf.get(3..7) {
        Some(&[a, b, c, d]) => (u32::from_be_bytes([a, b, c, d]) as usize)
            .saturating_add(warren_codec::FRAME_OVERHEAD)
            .min(MAX_FRAME_RESERVATION),
        _ => 0,
    }
}

/// Reads are planned from what the buffer holds (the unfinished frame at its front,
/// every complete frame having been split off) and whether the last read was a large
/// frame's.
#[derive(Debug, Default)]
pub(super) struct ReadPlan {
    after_large: bool,
}

impl ReadPlan {
    /// Make room in `rbuf` for the next read and return the most it may take.
    pub(super) fn prepare(&mut self, rbuf: &mut BytesMut) -> usize {
        let rest = partial_frame_len(rbuf).saturating_sub(rbuf.len());
        if rest >= LARGE_REST {
            self.after_large = true;
            let want = rest + FRAME_HEADER_SIZE;
            if rbuf.capacity() - rbuf.len() < want {
                rbuf.reserve(want);
            }
            return want;
        }
        let limit = if std::mem::take(&mut self.after_large) {
            AFTER_LARGE_CHUNK
        } else {
            usize::MAX
        };
        let need = rest.max(READ_CHUNK / 4);
        if rbuf.capacity() - rbuf.len() < need {
            rbuf.reserve(need.max(READ_CHUNK));
        }
        limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;
    use warren_codec::FRAME_OVERHEAD;
    use warren_codec::frame::decode_frame;

    fn frame_header(size: u32) -> Vec<u8> {
        let mut h = vec![3, 0, 1];
        h.extend_from_slice(&size.to_be_bytes());
        h
    }

    /// Feed `wire` through the plan in reads as large as it allows and the socket has
    /// (`arrives` octets at a time), splitting frames off as the connection does, and
    /// count the frames and the octets moved when the buffer grew.
    fn copied_while_reading(wire: &[u8], arrives: usize) -> (usize, usize) {
        let mut plan = ReadPlan::default();
        let mut rbuf = BytesMut::with_capacity(READ_CHUNK);
        let mut keep = Vec::new();
        let (mut at, mut copied, mut frames) = (0, 0, 0);
        while at < wire.len() {
            let limit = counting_moves(&mut rbuf, &mut copied, |b| plan.prepare(b));
            let n = limit
                .min(rbuf.capacity() - rbuf.len())
                .min(wire.len() - at)
                .min(arrives);
            rbuf.put_slice(&wire[at..at + n]);
            at += n;
            // Frames stay alive, as bodies waiting in a queue do.
            while let Some(frame) =
                counting_moves(&mut rbuf, &mut copied, |b| decode_frame(b, 0).unwrap())
            {
                frames += 1;
                keep.push(frame);
            }
        }
        (frames, copied)
    }

    /// Run `f` on the buffer, adding to `copied` what it held if `f` moved it.
    fn counting_moves<T>(
        rbuf: &mut BytesMut,
        copied: &mut usize,
        f: impl FnOnce(&mut BytesMut) -> T,
    ) -> T {
        let (held, at) = (rbuf.len(), rbuf.as_ptr());
        let out = f(rbuf);
        if held > 0 && rbuf.len() == held && rbuf.as_ptr() != at {
            *copied += held;
        }
        out
    }

    fn message(body_frames: &[u32]) -> Vec<u8> {
        let mut wire = Vec::new();
        for &size in [40, 20].iter().chain(body_frames) {
            wire.extend(frame_header(size));
            wire.extend(std::iter::repeat_n(b'x', size as usize));
            wire.push(0xCE);
        }
        wire
    }

    #[test]
    fn large_frames_are_copied_only_by_the_first_read_after_one() {
        let frame = 128 * 1024 - FRAME_OVERHEAD as u32;
        // 1 MiB in frames of 128 KiB: eight full ones and a short one.
        let mib = [frame, frame, frame, frame, frame, frame, frame, frame, 64];
        for (body, arrives) in [
            (&mib[..8], usize::MAX),
            (&mib[..8], 48 * 1024 + 5),
            (&mib[..], usize::MAX),
            (&mib[..], 100_000),
        ] {
            let wire = message(body).repeat(16);
            let (frames, copied) = copied_while_reading(&wire, arrives);
            assert_eq!(frames, 16 * (2 + body.len()));
            // The first read, before any large frame was seen, then per message at most
            // the short read after the previous message's last frame.
            assert!(
                copied <= READ_CHUNK + 16 * AFTER_LARGE_CHUNK,
                "{arrives}: copied {copied} octets"
            );
        }
    }

    #[test]
    fn small_frames_are_read_in_large_chunks() {
        let mut plan = ReadPlan::default();
        let mut rbuf = BytesMut::new();
        assert_eq!(plan.prepare(&mut rbuf), usize::MAX);
        assert!(rbuf.capacity() >= READ_CHUNK);
        let wire = message(&[16]).repeat(10_000);
        let (frames, copied) = copied_while_reading(&wire, usize::MAX);
        assert_eq!(frames, 30_000);
        // Only the unfinished frame at the end of a read moves, each under 60 octets.
        assert!(
            copied < wire.len().div_ceil(READ_CHUNK / 4) * 60,
            "copied {copied}"
        );
    }

    #[test]
    fn a_large_frame_claim_reserves_no_more_than_the_cap() {
        let mut plan = ReadPlan::default();
        let mut rbuf = BytesMut::from(&frame_header(u32::MAX)[..]);
        let limit = plan.prepare(&mut rbuf);
        assert!(limit <= MAX_FRAME_RESERVATION + FRAME_HEADER_SIZE);
        assert!(rbuf.capacity() <= 2 * (MAX_FRAME_RESERVATION + FRAME_HEADER_SIZE));
    }
}

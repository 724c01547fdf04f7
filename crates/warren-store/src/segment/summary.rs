//! A sealed segment's summary (`NNNNNNNNNN.sum`): how many persistent messages it holds
//! and their size, so a restart with a large backlog counts it without reading it.
//!
//! Layout: `magic:u32 | persistent:u64 | body_bytes:u64 | last_id:u64 | data_end:u64 |
//! crc:u32`. It is written only after the segment's data was synced, and trusted only if
//! its CRC holds and no message of the segment was removed since (then the segment is
//! read instead).

use bytes::{Buf, BufMut};

const MAGIC: u32 = 0x5752_5331; // "WRS1"
const SIZE: usize = 4 + 8 * 4 + 4;

/// What a sealed segment holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Summary {
    /// Persistent messages written to it.
    pub persistent: u64,
    /// Their body octets.
    pub body_bytes: u64,
    /// The largest message id in it.
    pub last_id: u64,
    /// Where its last record ends.
    pub data_end: u64,
}

impl Summary {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(SIZE);
        out.put_u32(MAGIC);
        out.put_u64(self.persistent);
        out.put_u64(self.body_bytes);
        out.put_u64(self.last_id);
        out.put_u64(self.data_end);
        let crc = crc32c::crc32c(&out);
        out.put_u32(crc);
        out
    }

    pub(crate) fn decode(raw: &[u8]) -> Option<Self> {
        if raw.len() != SIZE {
            return None;
        }
        let (body, crc) = raw.split_at(SIZE - 4);
        if crc32c::crc32c(body) != u32::from_be_bytes(crc.try_into().ok()?) {
            return None;
        }
        let mut b = body;
        if b.get_u32() != MAGIC {
            return None;
        }
        Some(Self {
            persistent: b.get_u64(),
            body_bytes: b.get_u64(),
            last_id: b.get_u64(),
            data_end: b.get_u64(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_damage() {
        let s = Summary {
            persistent: 3,
            body_bytes: 300,
            last_id: 41,
            data_end: 999,
        };
        let raw = s.encode();
        assert_eq!(Summary::decode(&raw), Some(s));
        for i in 0..raw.len() {
            let mut bad = raw.clone();
            bad[i] ^= 1;
            assert_eq!(Summary::decode(&bad), None, "flip {i}");
        }
        assert_eq!(Summary::decode(&raw[..10]), None);
    }
}

//! What a 0-8 client sends, made from the 0-9-1 frames tests build: so that a test (the
//! method storm) can speak AMQP 0-8 to Warren and RabbitMQ alike. It renumbers
//! `connection.close` and `close-ok` (60 and 61 in 0-8) and the failed method a close
//! names, and drops `basic.consume`'s arguments table, which 0-8 does not have. Methods
//! 0-8 lacks altogether are the test's to leave out.

use warren_codec::dialect::renumber_close;

/// `bytes` (whole frames) as a 0-8 client sends them. A truncated frame at the end is
/// passed on as it is.
#[must_use]
pub fn as_0_8(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    while rest.len() >= 8 {
        let size = u32::from_be_bytes([rest[3], rest[4], rest[5], rest[6]]) as usize;
        let Some(frame) = rest.get(..8 + size) else {
            break;
        };
        let payload = &frame[7..7 + size];
        if frame[0] == 1 && size >= 4 {
            let translated = method_as_0_8(payload);
            out.extend_from_slice(&frame[..3]);
            out.extend_from_slice(&u32::try_from(translated.len()).unwrap_or(0).to_be_bytes());
            out.extend_from_slice(&translated);
            out.push(frame[7 + size]);
        } else {
            out.extend_from_slice(frame);
        }
        rest = &rest[8 + size..];
    }
    out.extend_from_slice(rest);
    out
}

fn method_as_0_8(payload: &[u8]) -> Vec<u8> {
    match payload.get(..4) {
        Some([0, 10, 0, 50 | 51] | [0, 20, 0, 40]) => {
            renumber_close(payload).unwrap_or_else(|| payload.to_vec())
        }
        Some([0, 60, 0, 20]) => payload[..consume_without_table(payload)].to_vec(),
        _ => payload.to_vec(),
    }
}

/// Where `basic.consume`'s arguments table starts: after the ids, the ticket, the queue
/// and consumer tag short strings and the bits.
fn consume_without_table(payload: &[u8]) -> usize {
    let queue = 6;
    let tag = queue + 1 + usize::from(payload.get(queue).copied().unwrap_or(0));
    let bits = tag + 1 + usize::from(payload.get(tag).copied().unwrap_or(0));
    (bits + 1).min(payload.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_consume_loses_its_table_and_a_close_is_renumbered() {
        let consume =
            crate::raw::frame(1, 1, &[0, 60, 0, 20, 0, 0, 1, b'q', 1, b't', 2, 0, 0, 0, 0]);
        assert_eq!(
            as_0_8(&consume),
            crate::raw::frame(1, 1, &[0, 60, 0, 20, 0, 0, 1, b'q', 1, b't', 2])
        );
        let close = crate::raw::frame(1, 0, &[0, 10, 0, 50, 1, 0x94, 0, 0, 10, 0, 51]);
        assert_eq!(
            as_0_8(&close),
            crate::raw::frame(1, 0, &[0, 10, 0, 60, 1, 0x94, 0, 0, 10, 0, 61])
        );
    }
}

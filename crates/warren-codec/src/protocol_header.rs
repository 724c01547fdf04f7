//! The 8-octet protocol header a client sends before anything else.

/// The header for AMQP 0-9-1, which is also what a server answers a wrong header with.
pub const PROTOCOL_HEADER: [u8; 8] = *b"AMQP\x00\x00\x09\x01";

/// What the first 8 octets of a connection said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolHeader {
    /// `AMQP 0 0 9 1`: the protocol we speak (or 0-9's header, the same on the wire).
    Amqp091,
    /// AMQP 0-8, which RabbitMQ serves too: `AMQP 1 1 8 0`, or `AMQP 1 1 9 1` as the 0-8
    /// document printed it (py-amqplib sends that).
    Amqp08,
    /// Anything else: answer with [`PROTOCOL_HEADER`] and close, as the spec asks.
    Unsupported([u8; 8]),
}

/// The AMQP 0-9 header (`AMQP 1 1 0 9`), which RabbitMQ accepts and serves as 0-9-1, the
/// two being the same on the wire for what clients of that era send.
pub const PROTOCOL_HEADER_0_9: [u8; 8] = *b"AMQP\x01\x01\x00\x09";

/// The AMQP 0-8 header most 0-8 clients send (the 0-8 document calls the version 8-0).
pub const PROTOCOL_HEADER_0_8: [u8; 8] = *b"AMQP\x01\x01\x08\x00";

/// The AMQP 0-8 header as the 0-8 document printed it; RabbitMQ serves 0-8 for it.
pub const PROTOCOL_HEADER_0_8_AS_PRINTED: [u8; 8] = *b"AMQP\x01\x01\x09\x01";

/// Classify the first 8 octets of a connection; `None` until 8 octets have arrived.
#[must_use]
pub fn parse_protocol_header(buf: &[u8]) -> Option<ProtocolHeader> {
    let head: [u8; 8] = buf.get(..8)?.try_into().ok()?;
    Some(if head == PROTOCOL_HEADER || head == PROTOCOL_HEADER_0_9 {
        ProtocolHeader::Amqp091
    } else if head == PROTOCOL_HEADER_0_8 || head == PROTOCOL_HEADER_0_8_AS_PRINTED {
        ProtocolHeader::Amqp08
    } else {
        ProtocolHeader::Unsupported(head)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_0_9_1_and_0_8_and_rejects_others() {
        assert_eq!(parse_protocol_header(b"AMQP\x00\x00\x09"), None);
        assert_eq!(
            parse_protocol_header(b"AMQP\x00\x00\x09\x01rest"),
            Some(ProtocolHeader::Amqp091)
        );
        assert_eq!(
            parse_protocol_header(b"AMQP\x01\x01\x00\x09"),
            Some(ProtocolHeader::Amqp091)
        );
        assert_eq!(
            parse_protocol_header(b"AMQP\x01\x01\x08\x00"),
            Some(ProtocolHeader::Amqp08)
        );
        assert_eq!(
            parse_protocol_header(b"AMQP\x01\x01\x09\x01"),
            Some(ProtocolHeader::Amqp08)
        );
        assert!(matches!(
            parse_protocol_header(b"AMQP\x00\x00\x09\x02"),
            Some(ProtocolHeader::Unsupported(_))
        ));
        assert!(matches!(
            parse_protocol_header(b"GET / HTTP/1.1"),
            Some(ProtocolHeader::Unsupported(_))
        ));
    }
}

//! Field tables outside method arguments: in content headers and SASL responses.

use amq_protocol::frame::WriteContext;
use amq_protocol::types::FieldTable;
use amq_protocol::types::generation::gen_field_table;
use amq_protocol::types::parsing::parse_field_table;

use crate::CodecError;

/// Decode a field table with its 4-octet length prefix, refusing trailing octets.
pub fn decode_field_table(raw: &[u8]) -> Result<FieldTable, CodecError> {
    match parse_field_table(raw) {
        Ok(([], table)) => Ok(table),
        _ => Err(CodecError::MalformedContentHeader("field table")),
    }
}

/// Encode a field table with its 4-octet length prefix (the inverse of
/// [`decode_field_table`]); used to keep declaration arguments on disk.
pub fn encode_field_table(table: &FieldTable) -> Result<Vec<u8>, CodecError> {
    gen_field_table(table)(WriteContext::from(Vec::with_capacity(64)))
        .map(|ctx| ctx.into_inner().0)
        .map_err(|_| CodecError::Encode("field table"))
}

/// Decode a field table's entries given without the length prefix, as the AMQPLAIN
/// mechanism sends them.
pub fn decode_table_entries(raw: &[u8]) -> Result<FieldTable, CodecError> {
    let len =
        u32::try_from(raw.len()).map_err(|_| CodecError::MalformedContentHeader("field table"))?;
    let mut framed = Vec::with_capacity(raw.len() + 4);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(raw);
    decode_field_table(&framed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amqplain_response_decodes() {
        let raw = b"\x05LOGINS\x00\x00\x00\x05guest\x08PASSWORDS\x00\x00\x00\x05guest";
        let t = decode_table_entries(raw).unwrap();
        assert!(t.contains_key("LOGIN") && t.contains_key("PASSWORD"));
        assert!(decode_table_entries(b"\xff\xfe\x01").is_err());
        assert!(decode_field_table(b"\x00\x00\x00\x01").is_err());
    }

    #[test]
    fn tables_round_trip() {
        let t = decode_table_entries(b"\x05LOGINS\x00\x00\x00\x05guest").unwrap();
        assert_eq!(
            decode_field_table(&encode_field_table(&t).unwrap()).unwrap(),
            t
        );
    }
}

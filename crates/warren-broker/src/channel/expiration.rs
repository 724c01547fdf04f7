//! The `expiration` property: a per-message TTL, validated as RabbitMQ 3.10 validates
//! it (Erlang's `string:to_integer`, then a range check).

/// RabbitMQ's largest accepted TTL: ten years, in milliseconds.
const MAX_EXPIRY: u64 = 315_360_000_000;

/// Parse an `expiration` value; `Err` carries RabbitMQ's reason term, e.g.
/// `{leftover_string,".5"}`.
pub(crate) fn parse_expiration(raw: &[u8]) -> Result<u64, String> {
    let (negative, unsigned) = match raw.first() {
        Some(b'-') => (true, &raw[1..]),
        Some(b'+') => (false, &raw[1..]),
        _ => (false, raw),
    };
    let digits = unsigned.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return Err("no_integer".into());
    }
    let (number, rest) = unsigned.split_at(digits);
    if !rest.is_empty() {
        return Err(format!(
            "{{leftover_string,\"{}\"}}",
            String::from_utf8_lossy(rest)
        ));
    }
    let trimmed = std::str::from_utf8(number)
        .unwrap_or("0")
        .trim_start_matches('0');
    if trimmed.is_empty() {
        return Ok(0);
    }
    match (negative, trimmed.parse::<u64>()) {
        (true, _) => Err(format!("{{value_negative,-{trimmed}}}")),
        (false, Ok(n)) if n <= MAX_EXPIRY => Ok(n),
        (false, _) => Err(format!("{{value_too_large,{trimmed}}}")),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_expiration as p;

    #[test]
    fn matches_rabbitmq_3_10() {
        assert_eq!(p(b"100"), Ok(100));
        assert_eq!(p(b"+100"), Ok(100));
        assert_eq!(p(b"0100"), Ok(100));
        assert_eq!(p(b"0"), Ok(0));
        assert_eq!(p(b"-0"), Ok(0));
        assert_eq!(p(b"315360000000"), Ok(315_360_000_000));
        assert_eq!(p(b"abc").unwrap_err(), "no_integer");
        assert_eq!(p(b"").unwrap_err(), "no_integer");
        assert_eq!(p(b" 100").unwrap_err(), "no_integer");
        assert_eq!(p(b"-1").unwrap_err(), "{value_negative,-1}");
        assert_eq!(p(b"1.5").unwrap_err(), "{leftover_string,\".5\"}");
        assert_eq!(p(b"100 ").unwrap_err(), "{leftover_string,\" \"}");
        assert_eq!(
            p(b"315360000001").unwrap_err(),
            "{value_too_large,315360000001}"
        );
        assert_eq!(
            p(b"99999999999999999999").unwrap_err(),
            "{value_too_large,99999999999999999999}"
        );
    }
}

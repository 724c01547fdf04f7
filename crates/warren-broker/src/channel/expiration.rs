//! The `expiration` property: a per-message TTL, validated as RabbitMQ 3.10 validates
//! it (Erlang's `string:to_integer`, then a range check).

/// RabbitMQ's largest accepted TTL: ten years, in milliseconds.
const MAX_EXPIRY: u64 = 315_360_000_000;

/// Why an `expiration` was refused, printed as RabbitMQ prints its reason term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BadExpiration {
    /// `no_integer`.
    NoInteger,
    /// `{tag,value}`, e.g. `{leftover_string,".5"}`.
    Tagged(&'static str, String),
}

/// Erlang's `~p` breaks a tuple that would reach past column 78 after its first
/// element and lines the rest up under it (measured against RabbitMQ 3.10).
const PRETTY_WIDTH: usize = 78;

impl BadExpiration {
    /// The term as `~p` prints it when it starts at `column` of the reply text
    /// (counted without the `PRECONDITION_FAILED - ` prefix, which RabbitMQ adds after
    /// formatting).
    pub(crate) fn printed_at(&self, column: usize) -> String {
        match self {
            Self::NoInteger => "no_integer".to_owned(),
            Self::Tagged(tag, value) => {
                let flat = format!("{{{tag},{value}}}");
                // Erlang measures the octets it prints (a binary's, here).
                if column + flat.len() <= PRETTY_WIDTH {
                    flat
                } else {
                    format!("{{{tag},\n{:indent$}{value}}}", "", indent = column + 1)
                }
            }
        }
    }
}

impl std::fmt::Display for BadExpiration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.printed_at(0))
    }
}

/// The reply text for a refused `expiration`, laid out as RabbitMQ lays it out.
pub(crate) fn invalid_expiration_text(raw: &[u8], why: &BadExpiration) -> String {
    let head = format!("invalid expiration '{}': ", String::from_utf8_lossy(raw));
    let column = "invalid expiration '': ".len() + raw.len();
    head + &why.printed_at(column)
}

/// Parse an `expiration` value as RabbitMQ does.
pub(crate) fn parse_expiration(raw: &[u8]) -> Result<u64, BadExpiration> {
    let (negative, unsigned) = match raw.first() {
        Some(b'-') => (true, &raw[1..]),
        Some(b'+') => (false, &raw[1..]),
        _ => (false, raw),
    };
    let digits = unsigned.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return Err(BadExpiration::NoInteger);
    }
    let (number, rest) = unsigned.split_at(digits);
    if !rest.is_empty() {
        return Err(BadExpiration::Tagged(
            "leftover_string",
            format!("\"{}\"", String::from_utf8_lossy(rest)),
        ));
    }
    let trimmed = std::str::from_utf8(number)
        .unwrap_or("0")
        .trim_start_matches('0');
    if trimmed.is_empty() {
        return Ok(0);
    }
    match (negative, trimmed.parse::<u64>()) {
        (true, _) => Err(BadExpiration::Tagged(
            "value_negative",
            format!("-{trimmed}"),
        )),
        (false, Ok(n)) if n <= MAX_EXPIRY => Ok(n),
        (false, _) => Err(BadExpiration::Tagged("value_too_large", trimmed.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::{invalid_expiration_text, parse_expiration};

    fn p(raw: &[u8]) -> Result<u64, String> {
        parse_expiration(raw).map_err(|e| e.to_string())
    }

    /// Texts RabbitMQ 3.10.8 sent (without the `PRECONDITION_FAILED - ` prefix).
    #[test]
    fn long_terms_break_where_rabbitmq_breaks_them() {
        let text = |raw: &[u8]| invalid_expiration_text(raw, &parse_expiration(raw).unwrap_err());
        // 78 columns: one line.
        assert_eq!(
            text(b"-999999999999999999"),
            "invalid expiration '-999999999999999999': {value_negative,-999999999999999999}"
        );
        assert_eq!(
            text(b"1xxxxxxxxxxxxxxxxx"),
            "invalid expiration '1xxxxxxxxxxxxxxxxx': {leftover_string,\"xxxxxxxxxxxxxxxxx\"}"
        );
        // 79 and 80 columns: broken after the tag.
        assert_eq!(
            text(b"9999999999999999999"),
            format!(
                "invalid expiration '9999999999999999999': {{value_too_large,\n{}9999999999999999999}}",
                " ".repeat(43)
            )
        );
        assert_eq!(
            text(b"1xxxxxxxxxxxxxxxxxx"),
            format!(
                "invalid expiration '1xxxxxxxxxxxxxxxxxx': {{leftover_string,\n{}\"xxxxxxxxxxxxxxxxxx\"}}",
                " ".repeat(43)
            )
        );
        assert_eq!(text(b"abc"), "invalid expiration 'abc': no_integer");
    }

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

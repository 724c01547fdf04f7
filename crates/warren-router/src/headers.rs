//! Headers-exchange matching, with RabbitMQ's rules.
//!
//! - `x-match` picks the mode: `all` (the default), `any`, `all-with-x`, `any-with-x`.
//! - Binding arguments whose key starts with `x-` take no part in matching, except under
//!   the `-with-x` modes (`x-match` itself never does).
//! - A binding argument of type void matches on the header's presence alone.
//! - Values compare as Erlang's `==` compares RabbitMQ's decoded values: numbers by value
//!   whatever their width or signedness (so `1` equals `1.0`), strings and byte arrays by
//!   octets, arrays and tables element by element including their types.

use amq_protocol::types::{AMQPValue, FieldTable, ShortString};

use crate::RouteError;

/// The four `x-match` modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadersMatch {
    /// Every considered binding argument must match.
    All,
    /// At least one must match.
    Any,
    /// `all`, with `x-` arguments considered too.
    AllWithX,
    /// `any`, with `x-` arguments considered too.
    AnyWithX,
}

impl HeadersMatch {
    /// Read `x-match` from binding arguments, refusing what RabbitMQ refuses.
    pub fn from_arguments(args: &FieldTable) -> Result<Self, RouteError> {
        let Some(value) = args.inner().get("x-match") else {
            return Ok(Self::All);
        };
        let AMQPValue::LongString(s) = value else {
            return Err(RouteError::InvalidArguments(format!(
                "Invalid x-match field type {} (value {}); expected longstr",
                erlang_type_name(value),
                erlang_term(value)
            )));
        };
        match s.as_bytes() {
            b"all" => Ok(Self::All),
            b"any" => Ok(Self::Any),
            b"all-with-x" => Ok(Self::AllWithX),
            b"any-with-x" => Ok(Self::AnyWithX),
            other => Err(RouteError::InvalidArguments(format!(
                "Invalid x-match field value <<\"{}\">>; expected all, any, all-with-x, or any-with-x",
                String::from_utf8_lossy(other)
            ))),
        }
    }

    fn considers_x_keys(self) -> bool {
        matches!(self, Self::AllWithX | Self::AnyWithX)
    }

    fn is_all(self) -> bool {
        matches!(self, Self::All | Self::AllWithX)
    }
}

/// A headers binding's arguments prepared for matching: the mode, and the arguments that
/// take part, in key order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HeadersPattern {
    mode: HeadersMatch,
    pattern: Vec<(ShortString, AMQPValue)>,
}

impl HeadersPattern {
    pub(crate) fn new(args: &FieldTable) -> Result<Self, RouteError> {
        let mode = HeadersMatch::from_arguments(args)?;
        let pattern = args
            .inner()
            .iter()
            .filter(|(k, _)| {
                let k = k.as_str();
                k != "x-match" && (mode.considers_x_keys() || !k.starts_with("x-"))
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Ok(Self { mode, pattern })
    }

    pub(crate) fn matches(&self, headers: Option<&FieldTable>) -> bool {
        let empty = FieldTable::default();
        headers_match(self.mode, &self.pattern, headers.unwrap_or(&empty))
    }
}

/// Does a message with `headers` match a binding of `mode` whose (already filtered)
/// arguments are `pattern`?
#[must_use]
pub fn headers_match(
    mode: HeadersMatch,
    pattern: &[(ShortString, AMQPValue)],
    headers: &FieldTable,
) -> bool {
    let mut matched = pattern
        .iter()
        .map(|(key, expected)| match headers.inner().get(key) {
            None => false,
            Some(_) if matches!(expected, AMQPValue::Void) => true,
            Some(actual) => erlang_equal(expected, actual),
        });
    if mode.is_all() {
        matched.all(|m| m)
    } else {
        matched.any(|m| m)
    }
}

/// A number as Erlang sees it after RabbitMQ decodes it.
enum Number {
    Int(i128),
    Float(f64),
}

fn number(v: &AMQPValue) -> Option<Number> {
    use AMQPValue as V;
    Some(match *v {
        V::ShortShortInt(n) => Number::Int(n.into()),
        V::ShortShortUInt(n) => Number::Int(n.into()),
        V::ShortInt(n) => Number::Int(n.into()),
        V::ShortUInt(n) => Number::Int(n.into()),
        V::LongInt(n) => Number::Int(n.into()),
        V::LongUInt(n) => Number::Int(n.into()),
        V::LongLongInt(n) => Number::Int(n.into()),
        V::Timestamp(n) => Number::Int(n.into()),
        V::Float(f) => Number::Float(f.into()),
        V::Double(f) => Number::Float(f),
        _ => return None,
    })
}

fn octets(v: &AMQPValue) -> Option<&[u8]> {
    match v {
        AMQPValue::LongString(s) => Some(s.as_bytes()),
        AMQPValue::ShortString(s) => Some(s.as_str().as_bytes()),
        AMQPValue::ByteArray(b) => Some(b.as_slice()),
        _ => None,
    }
}

/// Erlang's `==` over two top-level header values, as RabbitMQ compares header values
/// and queue arguments on redeclaration.
#[must_use]
pub fn erlang_equal(a: &AMQPValue, b: &AMQPValue) -> bool {
    if let (Some(x), Some(y)) = (number(a), number(b)) {
        #[allow(
            clippy::cast_precision_loss,
            reason = "Erlang compares int and float this way"
        )]
        return match (x, y) {
            (Number::Int(x), Number::Int(y)) => x == y,
            (Number::Float(x), Number::Float(y)) => x == y,
            (Number::Int(i), Number::Float(f)) | (Number::Float(f), Number::Int(i)) => {
                i as f64 == f
            }
        };
    }
    if let (Some(x), Some(y)) = (octets(a), octets(b)) {
        return x == y;
    }
    // Booleans, void, decimals, and nested arrays and tables (which carry their element
    // types in RabbitMQ's representation, so the types must agree too).
    a == b
}

/// The name RabbitMQ gives a value's type in error texts (`longstr`, `signedint`...).
#[must_use]
pub fn erlang_type_name(v: &AMQPValue) -> &'static str {
    use AMQPValue as V;
    match v {
        V::Boolean(_) => "bool",
        V::ShortShortInt(_) => "byte",
        V::ShortShortUInt(_) => "unsignedbyte",
        V::ShortInt(_) => "short",
        V::ShortUInt(_) => "unsignedshort",
        V::LongInt(_) => "signedint",
        V::LongUInt(_) => "unsignedint",
        V::LongLongInt(_) => "long",
        V::Float(_) => "float",
        V::Double(_) => "double",
        V::DecimalValue(_) => "decimal",
        V::ShortString(_) => "shortstr",
        V::LongString(_) => "longstr",
        V::FieldArray(_) => "array",
        V::Timestamp(_) => "timestamp",
        V::FieldTable(_) => "table",
        V::ByteArray(_) => "binary",
        V::Void => "void",
    }
}

/// A value printed as RabbitMQ prints it in error texts.
#[must_use]
pub fn erlang_term(v: &AMQPValue) -> String {
    use AMQPValue as V;
    match v {
        V::Boolean(b) => b.to_string(),
        V::ShortShortInt(n) => n.to_string(),
        V::ShortShortUInt(n) => n.to_string(),
        V::ShortInt(n) => n.to_string(),
        V::ShortUInt(n) => n.to_string(),
        V::LongInt(n) => n.to_string(),
        V::LongUInt(n) => n.to_string(),
        V::LongLongInt(n) => n.to_string(),
        V::Timestamp(n) => n.to_string(),
        V::Float(f) => f.to_string(),
        V::Double(f) => f.to_string(),
        V::Void => "undefined".into(),
        V::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        V::ShortString(s) => s.as_str().to_owned(),
        V::ByteArray(b) => String::from_utf8_lossy(b.as_slice()).into_owned(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::types::LongString;

    fn table(entries: &[(&str, AMQPValue)]) -> FieldTable {
        let mut t = FieldTable::default();
        for (k, v) in entries {
            t.insert((*k).into(), v.clone());
        }
        t
    }

    fn s(v: &str) -> AMQPValue {
        AMQPValue::LongString(LongString::from(v))
    }

    fn matches(binding: &[(&str, AMQPValue)], headers: &[(&str, AMQPValue)]) -> bool {
        HeadersPattern::new(&table(binding))
            .unwrap()
            .matches(Some(&table(headers)))
    }

    #[test]
    fn all_and_any() {
        let b = [("x-match", s("all")), ("a", s("1")), ("b", s("2"))];
        assert!(matches(&b, &[("a", s("1")), ("b", s("2")), ("c", s("3"))]));
        assert!(!matches(&b, &[("a", s("1"))]));
        let b = [("x-match", s("any")), ("a", s("1")), ("b", s("2"))];
        assert!(matches(&b, &[("a", s("1"))]));
        assert!(!matches(&b, &[("a", s("2"))]));
    }

    #[test]
    fn default_mode_is_all_and_empty_patterns() {
        assert!(matches(&[("a", s("1"))], &[("a", s("1"))]));
        assert!(matches(&[], &[]));
        assert!(matches(&[("x-match", s("all"))], &[("z", s("1"))]));
        assert!(!matches(&[("x-match", s("any"))], &[("z", s("1"))]));
    }

    #[test]
    fn x_keys_only_count_with_x() {
        let h = [("x-id", s("7"))];
        assert!(matches(&[("x-match", s("all")), ("x-id", s("8"))], &h));
        assert!(!matches(
            &[("x-match", s("all-with-x")), ("x-id", s("8"))],
            &h
        ));
        assert!(matches(
            &[("x-match", s("any-with-x")), ("x-id", s("7"))],
            &h
        ));
        assert!(!matches(&[("x-match", s("any")), ("x-id", s("7"))], &h));
    }

    #[test]
    fn void_matches_on_presence_and_numbers_compare_by_value() {
        assert!(matches(&[("a", AMQPValue::Void)], &[("a", s("anything"))]));
        assert!(!matches(&[("a", AMQPValue::Void)], &[("b", s("x"))]));
        assert!(matches(
            &[("n", AMQPValue::LongInt(1))],
            &[("n", AMQPValue::LongLongInt(1))]
        ));
        assert!(matches(
            &[("n", AMQPValue::ShortShortUInt(1))],
            &[("n", AMQPValue::Double(1.0))]
        ));
        assert!(!matches(&[("n", AMQPValue::LongInt(1))], &[("n", s("1"))]));
        assert!(!matches(
            &[("n", AMQPValue::Boolean(true))],
            &[("n", AMQPValue::LongInt(1))]
        ));
    }

    #[test]
    fn bad_x_match_is_refused_with_rabbitmq_text() {
        let err = HeadersPattern::new(&table(&[("x-match", s("most"))])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Invalid x-match field value <<\"most\">>; expected all, any, all-with-x, or any-with-x"
        );
        assert!(HeadersPattern::new(&table(&[("x-match", AMQPValue::LongInt(1))])).is_err());
    }
}

//! SASL PLAIN and AMQPLAIN against the configured users.

use std::net::IpAddr;

use thiserror::Error;
use warren_codec::table::decode_table_entries;
use warren_codec::types::AMQPValue;

use crate::Config;

/// The mechanisms offered in `connection.start`, in RabbitMQ's order.
pub const MECHANISMS: &str = "AMQPLAIN PLAIN";

/// Why a login failed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// The client chose a mechanism we do not offer.
    #[error("unknown authentication mechanism '{0}'")]
    UnknownMechanism(String),
    /// The response could not be parsed for its mechanism.
    #[error("malformed {0} response")]
    Malformed(&'static str),
    /// Wrong user or password.
    #[error("user '{user}' - invalid credentials")]
    Refused {
        /// The mechanism used, for the reply text.
        mechanism: &'static str,
        /// The user named.
        user: String,
    },
    /// A loopback-only user connected from elsewhere.
    #[error("user '{0}' can only connect via localhost")]
    LoopbackOnly(String),
}

/// Check a `connection.start-ok` response; returns the authenticated user name.
pub fn authenticate(
    config: &Config,
    mechanism: &str,
    response: &[u8],
    peer: IpAddr,
) -> Result<String, AuthError> {
    let (mechanism, user, password) = match mechanism {
        "PLAIN" => {
            let (user, password) = parse_plain(response)?;
            ("PLAIN", user, password)
        }
        "AMQPLAIN" => {
            let (user, password) = parse_amqplain(response)?;
            ("AMQPLAIN", user, password)
        }
        other => return Err(AuthError::UnknownMechanism(other.to_owned())),
    };
    let known = config
        .users
        .iter()
        .any(|u| u.name == user && u.password == password);
    if !known {
        return Err(AuthError::Refused { mechanism, user });
    }
    if config.loopback_users.contains(&user) && !peer.is_loopback() && !is_mapped_loopback(peer) {
        return Err(AuthError::LoopbackOnly(user));
    }
    Ok(user)
}

fn is_mapped_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
        IpAddr::V4(_) => false,
    }
}

/// RFC 4616: `[authzid] NUL authcid NUL passwd`. An authorisation identity other than
/// the user itself is not supported.
fn parse_plain(response: &[u8]) -> Result<(String, String), AuthError> {
    let mut parts = response.split(|b| *b == 0);
    let (Some(authz), Some(user), Some(pass), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed("PLAIN"));
    };
    let user = String::from_utf8(user.to_vec()).map_err(|_| AuthError::Malformed("PLAIN"))?;
    let pass = String::from_utf8(pass.to_vec()).map_err(|_| AuthError::Malformed("PLAIN"))?;
    if !authz.is_empty() && authz != user.as_bytes() {
        return Err(AuthError::Malformed("PLAIN"));
    }
    Ok((user, pass))
}

/// AMQPLAIN: a field table's entries (without its length prefix) holding LOGIN and
/// PASSWORD.
fn parse_amqplain(response: &[u8]) -> Result<(String, String), AuthError> {
    let table = decode_table_entries(response).map_err(|_| AuthError::Malformed("AMQPLAIN"))?;
    let text = |key: &str| match table.inner().get(key) {
        Some(AMQPValue::LongString(s)) => String::from_utf8(s.as_bytes().to_vec()).ok(),
        Some(AMQPValue::ShortString(s)) => Some(s.as_str().to_owned()),
        _ => None,
    };
    match (text("LOGIN"), text("PASSWORD")) {
        (Some(user), Some(pass)) => Ok((user, pass)),
        _ => Err(AuthError::Malformed("AMQPLAIN")),
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    fn config() -> Config {
        Config::new(std::env::temp_dir())
    }

    const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    #[test]
    fn plain_and_amqplain_accept_guest_on_loopback() {
        let c = config();
        assert_eq!(
            authenticate(&c, "PLAIN", b"\0guest\0guest", LOCAL).unwrap(),
            "guest"
        );
        assert_eq!(
            authenticate(&c, "PLAIN", b"guest\0guest\0guest", LOCAL).unwrap(),
            "guest"
        );
        let amqplain = b"\x05LOGINS\x00\x00\x00\x05guest\x08PASSWORDS\x00\x00\x00\x05guest";
        assert_eq!(
            authenticate(&c, "AMQPLAIN", amqplain, IpAddr::V6(Ipv6Addr::LOCALHOST)).unwrap(),
            "guest"
        );
    }

    #[test]
    fn failures() {
        let c = config();
        assert!(matches!(
            authenticate(&c, "PLAIN", b"\0guest\0nope", LOCAL),
            Err(AuthError::Refused { .. })
        ));
        assert!(matches!(
            authenticate(&c, "PLAIN", b"guestguest", LOCAL),
            Err(AuthError::Malformed(_))
        ));
        assert!(matches!(
            authenticate(&c, "FOO", b"", LOCAL),
            Err(AuthError::UnknownMechanism(_))
        ));
        let remote = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(
            authenticate(&c, "PLAIN", b"\0guest\0guest", remote),
            Err(AuthError::LoopbackOnly("guest".into()))
        );
    }
}

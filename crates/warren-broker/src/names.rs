//! Server-generated names: `amq.gen-…` queues and `amq.ctag-…` consumer tags, in
//! RabbitMQ's format (a prefix and 16 random octets in unpadded URL-safe base64).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

fn random_suffix() -> String {
    let bytes: [u8; 16] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A name for a queue declared with an empty name.
pub(crate) fn queue_name() -> String {
    format!("amq.gen-{}", random_suffix())
}

/// A tag for a consumer registered with an empty tag.
pub(crate) fn consumer_tag() -> String {
    format!("amq.ctag-{}", random_suffix())
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_match_rabbitmq() {
        let q = super::queue_name();
        assert!(q.starts_with("amq.gen-") && q.len() == 8 + 22, "{q}");
        let c = super::consumer_tag();
        assert!(c.starts_with("amq.ctag-") && c.len() == 9 + 22, "{c}");
        assert_ne!(super::queue_name(), q);
    }
}

//! A byte-level AMQP 0-9-1 client: it sends exactly the frames a test builds, valid or
//! not, and decodes what comes back. It can speak AMQP 0-8 too ([`RawClient::open_in`]),
//! sending the same frames as a 0-8 client would ([`crate::client_0_8`]).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use warren_codec::dialect::Dialect;
use warren_codec::encode::encode_method;
use warren_codec::frame::{Frame, FrameType, decode_frame};
use warren_codec::method::{Method, decode_method_in};
use warren_codec::protocol_header::{PROTOCOL_HEADER, PROTOCOL_HEADER_0_8};
use warren_codec::spec::{AMQPClass, channel, connection};
use warren_codec::types::{AMQPValue, FieldTable};

/// How long a read waits before the test fails.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A raw connection.
#[derive(Debug)]
pub struct RawClient {
    stream: TcpStream,
    buf: BytesMut,
    /// A method read ahead by the handshake that the test should still see.
    stashed: Option<(u16, Method)>,
    /// The protocol spoken: the header sent, and how methods are written and read.
    dialect: Dialect,
}

/// What a `connection.close` or `channel.close` said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    /// Channel the close came on.
    pub channel: u16,
    /// Reply code.
    pub code: u16,
    /// Reply text.
    pub text: String,
    /// Failing class id.
    pub class_id: u16,
    /// Failing method id.
    pub method_id: u16,
}

/// Build one frame by hand.
#[must_use]
pub fn frame(frame_type: u8, channel: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(payload.len() + 8);
    v.push(frame_type);
    v.extend_from_slice(&channel.to_be_bytes());
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    v.extend_from_slice(payload);
    v.push(0xCE);
    v
}

/// The frame for a method.
#[must_use]
pub fn method_frame(channel: u16, method: &AMQPClass) -> Vec<u8> {
    let mut buf = BytesMut::new();
    encode_method(&mut buf, channel, method).expect("encodable method");
    buf.to_vec()
}

/// A `queue.declare` of a plain queue (not durable, exclusive or auto-delete, no
/// arguments), or a passive one to read its counts.
#[must_use]
pub fn queue_declare_frame(channel: u16, queue: &str, passive: bool) -> Vec<u8> {
    method_frame(
        channel,
        &AMQPClass::Queue(warren_codec::spec::queue::AMQPMethod::Declare(
            warren_codec::spec::queue::Declare {
                queue: queue.into(),
                passive,
                durable: false,
                exclusive: false,
                auto_delete: false,
                nowait: false,
                arguments: Default::default(),
            },
        )),
    )
}

/// A `basic.publish` + header + body, with an optional raw property section.
#[must_use]
pub fn publish_frames(
    channel: u16,
    exchange: &str,
    routing_key: &str,
    properties: &[u8],
    body: &[u8],
) -> Vec<u8> {
    let publish = AMQPClass::Basic(warren_codec::spec::basic::AMQPMethod::Publish(
        warren_codec::spec::basic::Publish {
            exchange: exchange.into(),
            routing_key: routing_key.into(),
            mandatory: false,
            immediate: false,
        },
    ));
    let mut out = method_frame(channel, &publish);
    out.extend(content_frames(channel, properties, body));
    out
}

/// A content header (class 60, with `properties` raw or none) and one body frame.
#[must_use]
pub fn content_frames(channel: u16, properties: &[u8], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut header = BytesMut::new();
    header.put_u16(60);
    header.put_u16(0);
    header.put_u64(body.len() as u64);
    if properties.is_empty() {
        header.put_u16(0);
    } else {
        header.put_slice(properties);
    }
    out.extend(frame(2, channel, &header));
    if !body.is_empty() {
        out.extend(frame(3, channel, body));
    }
    out
}

fn client_properties(capabilities: bool) -> FieldTable {
    let mut props = FieldTable::default();
    props.insert(
        "product".into(),
        AMQPValue::LongString("warren-testkit".into()),
    );
    if capabilities {
        let mut caps = FieldTable::default();
        for cap in [
            "authentication_failure_close",
            "consumer_cancel_notify",
            "publisher_confirms",
            "basic.nack",
            "connection.blocked",
        ] {
            caps.insert(cap.into(), AMQPValue::Boolean(true));
        }
        props.insert("capabilities".into(), AMQPValue::FieldTable(caps));
    }
    props
}

impl RawClient {
    /// Connect, nothing sent yet.
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Self {
            stream,
            buf: BytesMut::with_capacity(64 * 1024),
            stashed: None,
            dialect: Dialect::Amqp091,
        }
    }

    /// [`RawClient::open`] in `dialect`: with AMQP 0-8, frames the test builds in 0-9-1
    /// terms go out as a 0-8 client sends them, and what comes back is read as 0-8.
    pub async fn open_in(addr: SocketAddr, dialect: Dialect) -> Self {
        let mut c = Self::connect(addr).await;
        c.dialect = dialect;
        c.handshake_with(true, b"\0guest\0guest", "PLAIN", None)
            .await;
        c.open_connection("/").await;
        c.open_channel(1).await;
        c
    }

    /// Connect and complete the handshake as guest with every capability, accepting
    /// the server's tuning, then open channel 1.
    pub async fn open(addr: SocketAddr) -> Self {
        let mut c = Self::connect(addr).await;
        c.handshake_with(true, b"\0guest\0guest", "PLAIN", None)
            .await;
        c.open_connection("/").await;
        c.open_channel(1).await;
        c
    }

    /// Header, start-ok (with `response` for `mechanism`), and tune-ok (the server's
    /// values, or `tune` = (channel_max, frame_max, heartbeat)). Stops before
    /// `connection.open`.
    pub async fn handshake_with(
        &mut self,
        capabilities: bool,
        response: &[u8],
        mechanism: &str,
        tune: Option<(u16, u32, u16)>,
    ) {
        self.send(match self.dialect {
            Dialect::Amqp091 => &PROTOCOL_HEADER,
            Dialect::Amqp08 => &PROTOCOL_HEADER_0_8,
        })
        .await;
        let start = self.read_method().await.expect("connection.start");
        assert!(matches!(
            start.1,
            Method::Other(AMQPClass::Connection(connection::AMQPMethod::Start(_)))
        ));
        self.send_method(
            0,
            &AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
                client_properties: client_properties(capabilities),
                mechanism: mechanism.into(),
                response: response.to_vec().into(),
                locale: "en_US".into(),
            })),
        )
        .await;
        let server = match self.read_method().await {
            Some((
                _,
                Method::Other(AMQPClass::Connection(connection::AMQPMethod::Tune(server))),
            )) => server,
            // Refused: leave what the server said for the test to read.
            other => {
                self.stashed = other;
                return;
            }
        };
        let (channel_max, frame_max, heartbeat) =
            tune.unwrap_or((server.channel_max, server.frame_max, 0));
        self.send_method(
            0,
            &AMQPClass::Connection(connection::AMQPMethod::TuneOk(connection::TuneOk {
                channel_max,
                frame_max,
                heartbeat,
            })),
        )
        .await;
    }

    /// Send `connection.open` and expect `open-ok`.
    pub async fn open_connection(&mut self, vhost: &str) {
        self.send_method(
            0,
            &AMQPClass::Connection(connection::AMQPMethod::Open(connection::Open {
                virtual_host: vhost.into(),
            })),
        )
        .await;
        let (_, m) = self.read_method().await.expect("connection.open-ok");
        assert!(
            matches!(
                m,
                Method::Other(AMQPClass::Connection(connection::AMQPMethod::OpenOk(_)))
            ),
            "expected open-ok, got {m:?}"
        );
    }

    /// Open a channel and expect `open-ok`.
    pub async fn open_channel(&mut self, id: u16) {
        self.send_method(
            id,
            &AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
        )
        .await;
        let (ch, m) = self.read_method().await.expect("channel.open-ok");
        assert_eq!(ch, id);
        assert!(
            matches!(
                m,
                Method::Other(AMQPClass::Channel(channel::AMQPMethod::OpenOk(_)))
            ),
            "expected channel.open-ok, got {m:?}"
        );
    }

    /// The socket and whatever was read but not yet decoded, for a test that reads
    /// and writes from separate tasks.
    #[must_use]
    pub fn into_parts(self) -> (TcpStream, BytesMut) {
        (self.stream, self.buf)
    }

    /// Write raw bytes.
    pub async fn send(&mut self, bytes: &[u8]) {
        // The peer may already have closed; tests then see it on the next read.
        let _ = match self.dialect {
            Dialect::Amqp091 => self.stream.write_all(bytes).await,
            // The protocol header goes as it is: it has no frames to translate.
            Dialect::Amqp08 if bytes.starts_with(b"AMQP") => self.stream.write_all(bytes).await,
            Dialect::Amqp08 => {
                self.stream
                    .write_all(&crate::client_0_8::as_0_8(bytes))
                    .await
            }
        };
    }

    /// Write one method frame.
    pub async fn send_method(&mut self, channel: u16, method: &AMQPClass) {
        self.send(&method_frame(channel, method)).await;
    }

    /// The next frame, or `None` once the server has closed the socket.
    pub async fn read_frame(&mut self) -> Option<Frame> {
        tokio::time::timeout(READ_TIMEOUT, async {
            loop {
                if let Some(frame) =
                    decode_frame(&mut self.buf, 0).expect("server sent a valid frame")
                {
                    return Some(frame);
                }
                match self.stream.read_buf(&mut self.buf).await {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {}
                }
            }
        })
        .await
        .expect("server answered in time")
    }

    /// The next method (heartbeats and content frames are skipped).
    pub async fn read_method(&mut self) -> Option<(u16, Method)> {
        if let Some(stashed) = self.stashed.take() {
            return Some(stashed);
        }
        loop {
            let frame = self.read_frame().await?;
            if frame.frame_type == FrameType::Method {
                let method = decode_method_in(&frame.payload, self.dialect)
                    .expect("server sent a valid method");
                return Some((frame.channel, method));
            }
        }
    }

    /// Read until `connection.close` arrives, answer `close-ok`, and return it.
    pub async fn expect_connection_close(&mut self) -> Closed {
        loop {
            let Some((channel, method)) = self.read_method().await else {
                panic!("socket closed without connection.close");
            };
            if let Method::Other(AMQPClass::Connection(connection::AMQPMethod::Close(c))) = method {
                self.send_method(
                    0,
                    &AMQPClass::Connection(connection::AMQPMethod::CloseOk(connection::CloseOk {})),
                )
                .await;
                return Closed {
                    channel,
                    code: c.reply_code,
                    text: c.reply_text.to_string(),
                    class_id: c.class_id,
                    method_id: c.method_id,
                };
            }
        }
    }

    /// Read until `channel.close` arrives on `channel`, answer `close-ok`, return it.
    pub async fn expect_channel_close(&mut self, id: u16) -> Closed {
        loop {
            let Some((channel, method)) = self.read_method().await else {
                panic!("socket closed without channel.close");
            };
            match method {
                Method::Other(AMQPClass::Channel(channel::AMQPMethod::Close(c)))
                    if channel == id =>
                {
                    self.send_method(
                        id,
                        &AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
                    )
                    .await;
                    return Closed {
                        channel,
                        code: c.reply_code,
                        text: c.reply_text.to_string(),
                        class_id: c.class_id,
                        method_id: c.method_id,
                    };
                }
                Method::Other(AMQPClass::Connection(connection::AMQPMethod::Close(c))) => {
                    panic!("expected channel.close, got connection.close {c:?}");
                }
                _ => {}
            }
        }
    }

    /// Expect the server to close the socket (within [`READ_TIMEOUT`]); frames before
    /// that are returned.
    pub async fn expect_eof(&mut self) -> Vec<Frame> {
        let mut seen = Vec::new();
        while let Some(frame) = self.read_frame().await {
            seen.push(frame);
        }
        seen
    }

    /// Read raw bytes until EOF or `limit` elapses.
    pub async fn read_raw(&mut self, limit: Duration) -> Vec<u8> {
        let mut out = self.buf.split().to_vec();
        let _ = tokio::time::timeout(limit, async {
            let mut chunk = [0u8; 4096];
            loop {
                match self.stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => out.extend_from_slice(&chunk[..n]),
                }
            }
        })
        .await;
        out
    }
}

//! A minimal AMQP 0-9-1 client for load generation: enough protocol to connect,
//! declare, publish, consume and ack, with frames encoded into reused buffers.

use std::io;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use warren_codec::encode::encode_method;
use warren_codec::frame::{Frame, decode_frame};
use warren_codec::method::{Method, decode_method};
use warren_codec::protocol_header::PROTOCOL_HEADER;
use warren_codec::spec::{AMQPClass, basic, channel, confirm, connection, exchange, queue};
use warren_codec::types::{AMQPValue, FieldTable};

/// Where and as whom to connect, from an `amqp://user:pass@host:port/vhost` URL.
#[derive(Debug, Clone)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub vhost: String,
}

impl Target {
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("amqp://")
            .ok_or("the URL must start with amqp://")?;
        let (auth, rest) = rest.split_once('@').unwrap_or(("guest:guest", rest));
        let (user, password) = auth.split_once(':').unwrap_or((auth, ""));
        let (hostport, vhost) = rest.split_once('/').unwrap_or((rest, ""));
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().map_err(|_| format!("bad port {p:?}"))?),
            None => (hostport, 5672),
        };
        let vhost = match vhost {
            "" => "/".to_owned(),
            v => v.replace("%2f", "/").replace("%2F", "/"),
        };
        Ok(Self {
            host: host.trim_matches(['[', ']']).to_owned(),
            port,
            user: user.to_owned(),
            password: password.to_owned(),
            vhost,
        })
    }
}

fn err(text: impl Into<String>) -> io::Error {
    io::Error::other(text.into())
}

/// An open connection with channel 1 open.
pub struct Client {
    pub rd: OwnedReadHalf,
    pub wr: OwnedWriteHalf,
    pub rbuf: BytesMut,
    pub frame_max: u32,
}

impl Client {
    pub async fn connect(target: &Target) -> io::Result<Self> {
        let stream = TcpStream::connect((target.host.as_str(), target.port)).await?;
        stream.set_nodelay(true)?;
        let (rd, wr) = stream.into_split();
        let mut c = Self {
            rd,
            wr,
            rbuf: BytesMut::with_capacity(256 * 1024),
            frame_max: 131_072,
        };
        c.wr.write_all(&PROTOCOL_HEADER).await?;
        c.expect(|m| matches!(m, AMQPClass::Connection(connection::AMQPMethod::Start(_))))
            .await?;
        c.send(
            0,
            &AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
                client_properties: client_properties(),
                mechanism: "PLAIN".into(),
                response: format!("\0{}\0{}", target.user, target.password).into(),
                locale: "en_US".into(),
            })),
        )
        .await?;
        let tune = match c.next_method().await? {
            (_, Method::Other(AMQPClass::Connection(connection::AMQPMethod::Tune(t)))) => t,
            (_, other) => return Err(err(format!("login failed: {other:?}"))),
        };
        c.frame_max = tune.frame_max.min(131_072);
        c.send(
            0,
            &AMQPClass::Connection(connection::AMQPMethod::TuneOk(connection::TuneOk {
                channel_max: tune.channel_max,
                frame_max: c.frame_max,
                heartbeat: 0,
            })),
        )
        .await?;
        c.send(
            0,
            &AMQPClass::Connection(connection::AMQPMethod::Open(connection::Open {
                virtual_host: target.vhost.as_str().into(),
            })),
        )
        .await?;
        c.expect(|m| matches!(m, AMQPClass::Connection(connection::AMQPMethod::OpenOk(_))))
            .await?;
        c.send(
            1,
            &AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
        )
        .await?;
        c.expect(|m| matches!(m, AMQPClass::Channel(channel::AMQPMethod::OpenOk(_))))
            .await?;
        Ok(c)
    }

    pub async fn send(&mut self, ch: u16, method: &AMQPClass) -> io::Result<()> {
        let mut buf = BytesMut::with_capacity(256);
        encode_method(&mut buf, ch, method).map_err(|e| err(e.to_string()))?;
        self.wr.write_all(&buf).await
    }

    pub async fn next_frame(&mut self) -> io::Result<Frame> {
        loop {
            if let Some(frame) = decode_frame(&mut self.rbuf, 0).map_err(|e| err(e.to_string()))? {
                return Ok(frame);
            }
            if self.rd.read_buf(&mut self.rbuf).await? == 0 {
                return Err(err("the broker closed the connection"));
            }
        }
    }

    pub async fn next_method(&mut self) -> io::Result<(u16, Method)> {
        loop {
            let frame = self.next_frame().await?;
            if frame.frame_type == warren_codec::frame::FrameType::Method {
                let m = decode_method(&frame.payload).map_err(|e| err(e.to_string()))?;
                return Ok((frame.channel, m));
            }
        }
    }

    pub async fn expect(&mut self, want: impl Fn(&AMQPClass) -> bool) -> io::Result<()> {
        match self.next_method().await? {
            (_, Method::Other(m)) if want(&m) => Ok(()),
            (_, other) => Err(err(format!("unexpected reply: {other:?}"))),
        }
    }

    pub async fn declare_queue(
        &mut self,
        name: &str,
        durable: bool,
        args: &[String],
    ) -> io::Result<()> {
        self.send_declare_queue(name, durable, args).await?;
        self.expect_declare_ok().await
    }

    /// Send a `queue.declare` without waiting for its reply (to pipeline many).
    pub async fn send_declare_queue(
        &mut self,
        name: &str,
        durable: bool,
        args: &[String],
    ) -> io::Result<()> {
        let mut arguments = FieldTable::default();
        for arg in args {
            let (k, v) = arg
                .split_once('=')
                .ok_or_else(|| err(format!("queue argument {arg:?} is not key=value")))?;
            let value = match v.parse::<i64>() {
                Ok(n) => AMQPValue::LongLongInt(n),
                Err(_) => AMQPValue::LongString(v.into()),
            };
            arguments.insert(k.into(), value);
        }
        self.send(
            1,
            &AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
                queue: name.into(),
                durable,
                arguments,
                ..Default::default()
            })),
        )
        .await
    }

    pub async fn expect_declare_ok(&mut self) -> io::Result<()> {
        self.expect(|m| matches!(m, AMQPClass::Queue(queue::AMQPMethod::DeclareOk(_))))
            .await
    }

    pub async fn declare_exchange(
        &mut self,
        name: &str,
        kind: &str,
        durable: bool,
    ) -> io::Result<()> {
        self.send(
            1,
            &AMQPClass::Exchange(exchange::AMQPMethod::Declare(exchange::Declare {
                exchange: name.into(),
                kind: kind.into(),
                durable,
                ..Default::default()
            })),
        )
        .await?;
        self.expect(|m| matches!(m, AMQPClass::Exchange(exchange::AMQPMethod::DeclareOk(_))))
            .await
    }

    pub async fn delete_exchange(&mut self, name: &str) -> io::Result<()> {
        self.send(
            1,
            &AMQPClass::Exchange(exchange::AMQPMethod::Delete(exchange::Delete {
                exchange: name.into(),
                ..Default::default()
            })),
        )
        .await?;
        self.expect(|m| matches!(m, AMQPClass::Exchange(exchange::AMQPMethod::DeleteOk(_))))
            .await
    }

    pub async fn bind_queue(
        &mut self,
        queue_name: &str,
        exchange_name: &str,
        key: &str,
        arguments: FieldTable,
    ) -> io::Result<()> {
        self.send(
            1,
            &AMQPClass::Queue(queue::AMQPMethod::Bind(queue::Bind {
                queue: queue_name.into(),
                exchange: exchange_name.into(),
                routing_key: key.into(),
                nowait: false,
                arguments,
            })),
        )
        .await?;
        self.expect(|m| matches!(m, AMQPClass::Queue(queue::AMQPMethod::BindOk(_))))
            .await
    }

    /// Declare `name` passively; its message count.
    pub async fn passive_count(&mut self, name: &str) -> io::Result<u32> {
        self.send(
            1,
            &AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
                queue: name.into(),
                passive: true,
                ..Default::default()
            })),
        )
        .await?;
        match self.next_method().await? {
            (_, Method::Other(AMQPClass::Queue(queue::AMQPMethod::DeclareOk(ok)))) => {
                Ok(ok.message_count)
            }
            (_, other) => Err(err(format!("unexpected reply: {other:?}"))),
        }
    }

    pub async fn purge_queue(&mut self, name: &str) -> io::Result<()> {
        self.send(
            1,
            &AMQPClass::Queue(queue::AMQPMethod::Purge(queue::Purge {
                queue: name.into(),
                nowait: false,
            })),
        )
        .await?;
        self.expect(|m| matches!(m, AMQPClass::Queue(queue::AMQPMethod::PurgeOk(_))))
            .await
    }

    pub async fn delete_queue(&mut self, name: &str) -> io::Result<()> {
        self.send_delete_queue(name).await?;
        self.expect_delete_ok().await
    }

    /// Send a `queue.delete` without waiting for its reply (to pipeline many).
    pub async fn send_delete_queue(&mut self, name: &str) -> io::Result<()> {
        self.send(
            1,
            &AMQPClass::Queue(queue::AMQPMethod::Delete(queue::Delete {
                queue: name.into(),
                ..Default::default()
            })),
        )
        .await
    }

    pub async fn expect_delete_ok(&mut self) -> io::Result<()> {
        self.expect(|m| matches!(m, AMQPClass::Queue(queue::AMQPMethod::DeleteOk(_))))
            .await
    }

    pub async fn qos(&mut self, prefetch: u16) -> io::Result<()> {
        self.send(
            1,
            &AMQPClass::Basic(basic::AMQPMethod::Qos(basic::Qos {
                prefetch_count: prefetch,
                global: false,
            })),
        )
        .await?;
        self.expect(|m| matches!(m, AMQPClass::Basic(basic::AMQPMethod::QosOk(_))))
            .await
    }

    pub async fn consume(&mut self, queue: &str, no_ack: bool) -> io::Result<()> {
        self.send(
            1,
            &AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
                queue: queue.into(),
                consumer_tag: "perf".into(),
                no_ack,
                ..Default::default()
            })),
        )
        .await?;
        self.expect(|m| matches!(m, AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(_))))
            .await
    }

    pub async fn confirm_select(&mut self) -> io::Result<()> {
        self.send(
            1,
            &AMQPClass::Confirm(confirm::AMQPMethod::Select(confirm::Select {
                nowait: false,
            })),
        )
        .await?;
        self.expect(|m| matches!(m, AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(_))))
            .await
    }
}

/// We ask to be told when the broker blocks a connection (`connection.blocked`), so
/// that a run held back by a resource alarm says so rather than just looking slow.
fn client_properties() -> FieldTable {
    let mut capabilities = FieldTable::default();
    capabilities.insert("connection.blocked".into(), AMQPValue::Boolean(true));
    let mut props = FieldTable::default();
    props.insert(
        "product".into(),
        AMQPValue::LongString("warren-perf".into()),
    );
    props.insert("capabilities".into(), AMQPValue::FieldTable(capabilities));
    props
}

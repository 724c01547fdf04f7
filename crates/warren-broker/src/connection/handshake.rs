//! From the protocol header to `connection.open-ok`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::{debug, info, warn};
use warren_codec::dialect::Dialect;
use warren_codec::encode::encode_method_in;
use warren_codec::frame::{Frame, FrameType, decode_frame};
use warren_codec::method::{Method, MethodId, decode_method_in};
use warren_codec::protocol_header::{PROTOCOL_HEADER, ProtocolHeader, parse_protocol_header};
use warren_codec::spec::{AMQPClass, connection};
use warren_codec::types::{AMQPValue, FieldTable, LongString};
use warren_codec::{FRAME_OVERHEAD, ReplyCode};

use super::Io;
use crate::Broker;
use crate::auth::{AuthError, MECHANISMS, authenticate};
use crate::error::{
    AmqpException, channel_error, command_invalid, decoded_or_unexpected, not_allowed,
};
use crate::vhost::VHost;

/// The smallest frame_max a client may ask for (RabbitMQ's `?FRAME_MIN_SIZE`).
const FRAME_MIN_SIZE: u32 = 4096;

/// Frame size accepted before frame_max is negotiated: the protocol's ceiling for a
/// start-ok or open, generous for large client-property tables.
const HANDSHAKE_FRAME_MAX: u32 = 131_072 + FRAME_OVERHEAD as u32;

/// What the handshake settled.
#[derive(Debug)]
pub(crate) struct Opened {
    pub user: Arc<str>,
    pub vhost: Arc<VHost>,
    pub channel_max: u16,
    pub frame_max: u32,
    pub heartbeat: u16,
    pub consumer_cancel_notify: bool,
    /// The client understands `connection.blocked` and `connection.unblocked`.
    pub connection_blocked: bool,
}

/// How the handshake ended, short of success.
#[derive(Debug)]
pub(crate) enum Refused {
    /// The peer left, or broke the protocol before we could say anything useful.
    Gone,
    /// We owe the peer a `connection.close` with this exception.
    Close(AmqpException),
}

impl From<std::io::Error> for Refused {
    fn from(e: std::io::Error) -> Self {
        debug!(error = %e, "socket error during handshake");
        Self::Gone
    }
}

impl From<AmqpException> for Refused {
    fn from(e: AmqpException) -> Self {
        Self::Close(e)
    }
}

/// The capabilities we advertise: only what works.
fn capabilities() -> FieldTable {
    let mut caps = FieldTable::default();
    for cap in [
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
        "authentication_failure_close",
        "per_consumer_qos",
        "connection.blocked",
    ] {
        caps.insert(cap.into(), AMQPValue::Boolean(true));
    }
    caps
}

/// `connection.start`'s server properties. A 0-8 peer gets an empty capabilities table,
/// as from RabbitMQ: 0-8 tables have no boolean type, and none of the capabilities
/// exists in 0-8.
fn server_properties(dialect: Dialect) -> FieldTable {
    let text = |s: &str| AMQPValue::LongString(LongString::from(s));
    let mut props = FieldTable::default();
    let capabilities = match dialect {
        Dialect::Amqp091 => capabilities(),
        Dialect::Amqp08 => FieldTable::default(),
    };
    props.insert("capabilities".into(), AMQPValue::FieldTable(capabilities));
    props.insert("product".into(), text("Warren"));
    props.insert("version".into(), text(env!("CARGO_PKG_VERSION")));
    props.insert(
        "platform".into(),
        text(&format!("Rust, {}", std::env::consts::OS)),
    );
    props.insert("copyright".into(), text("Copyright (c) the Warren authors"));
    props.insert(
        "information".into(),
        text("Licensed under the Apache License 2.0. An AMQP 0-9-1 broker."),
    );
    props.insert("cluster_name".into(), text("warren"));
    props
}

fn client_capability(props: &FieldTable, name: &str) -> bool {
    match props.inner().get("capabilities") {
        Some(AMQPValue::FieldTable(caps)) => {
            matches!(caps.inner().get(name), Some(AMQPValue::Boolean(true)))
        }
        _ => false,
    }
}

/// Run the handshake. `Ok` carries the opened connection's settings.
pub(crate) async fn handshake(
    io: &mut Io,
    broker: &Broker,
    peer: SocketAddr,
) -> Result<Opened, Refused> {
    let config = broker.config();
    // 1. Protocol header.
    while io.rbuf.len() < 8 {
        if io.rd.read_buf(&mut io.rbuf).await? == 0 {
            return Err(Refused::Gone);
        }
    }
    match parse_protocol_header(&io.rbuf) {
        None | Some(ProtocolHeader::Amqp091) => {
            let _ = io.rbuf.split_to(8);
        }
        Some(ProtocolHeader::Amqp08) => {
            debug!("AMQP 0-8 client");
            io.dialect = Dialect::Amqp08;
            let _ = io.rbuf.split_to(8);
        }
        Some(ProtocolHeader::Unsupported(head)) => {
            debug!(?head, "unsupported protocol header");
            io.wr.write_all(&PROTOCOL_HEADER).await?;
            return Err(Refused::Gone);
        }
    }

    // 2. connection.start / start-ok, and authentication.
    let (version_major, version_minor) = io.dialect.version();
    send(
        io,
        &AMQPClass::Connection(connection::AMQPMethod::Start(connection::Start {
            version_major,
            version_minor,
            server_properties: server_properties(io.dialect),
            mechanisms: MECHANISMS.into(),
            locales: "en_US".into(),
        })),
    )
    .await?;
    let start_ok = match next_connection_method(io, "starting").await? {
        connection::AMQPMethod::StartOk(m) => m,
        other => return Err(unexpected(&other, "starting")),
    };
    let auth_failure_close =
        client_capability(&start_ok.client_properties, "authentication_failure_close");
    let consumer_cancel_notify =
        client_capability(&start_ok.client_properties, "consumer_cancel_notify");
    // 0-8 has no `connection.blocked`, whatever the client claims.
    let connection_blocked = io.dialect == Dialect::Amqp091
        && client_capability(&start_ok.client_properties, "connection.blocked");
    let user = match authenticate(
        config,
        start_ok.mechanism.as_str(),
        start_ok.response.as_bytes(),
        peer.ip(),
    ) {
        Ok(user) => user,
        Err(e) => {
            return Err(login_refused(e, config.auth_failure_delay, auth_failure_close).await);
        }
    };

    // 3. connection.tune / tune-ok.
    send(
        io,
        &AMQPClass::Connection(connection::AMQPMethod::Tune(connection::Tune {
            channel_max: config.channel_max,
            frame_max: config.frame_max,
            heartbeat: config.heartbeat,
        })),
    )
    .await?;
    let tune_ok = match next_connection_method(io, "tuning").await? {
        connection::AMQPMethod::TuneOk(m) => m,
        other => return Err(unexpected(&other, "tuning")),
    };
    check_negotiated(
        "frame_max",
        tune_ok.frame_max,
        FRAME_MIN_SIZE,
        config.frame_max,
    )?;
    check_negotiated(
        "channel_max",
        u32::from(tune_ok.channel_max),
        1,
        u32::from(config.channel_max),
    )?;

    // 4. connection.open.
    let open = match next_connection_method(io, "opening").await? {
        connection::AMQPMethod::Open(m) => m,
        other => return Err(unexpected(&other, "opening")),
    };
    let Some(vhost) = broker.vhost(open.virtual_host.as_str()) else {
        return Err(
            not_allowed(format!("vhost {} not found", open.virtual_host.as_str()))
                .during(MethodId::new(10, 40))
                .into(),
        );
    };
    send(
        io,
        &AMQPClass::Connection(connection::AMQPMethod::OpenOk(connection::OpenOk {})),
    )
    .await?;
    info!(user = %user, vhost = %vhost.name(), "connection opened");
    Ok(Opened {
        user: Arc::from(user),
        vhost,
        channel_max: tune_ok.channel_max,
        frame_max: tune_ok.frame_max,
        heartbeat: tune_ok.heartbeat,
        consumer_cancel_notify,
        connection_blocked,
    })
}

/// RabbitMQ's `validate_negotiated_integer_value`: 0 means "no limit", which is above any
/// limit of ours.
fn check_negotiated(field: &str, client: u32, min: u32, max: u32) -> Result<(), AmqpException> {
    let tune = MethodId::new(10, 30);
    if client != 0 && client < min {
        return Err(not_allowed(format!(
            "negotiated {field} = {client} is lower than the minimum allowed value ({min})"
        ))
        .during(tune));
    }
    if client == 0 || client > max {
        let detail = if client == 0 && field == "channel_max" {
            " (no limit)"
        } else {
            ""
        };
        return Err(not_allowed(format!(
            "negotiated {field} = {client}{detail} is higher than the maximum allowed value ({max})"
        ))
        .during(tune));
    }
    Ok(())
}

async fn login_refused(e: AuthError, delay: Duration, auth_failure_close: bool) -> Refused {
    warn!(error = %e, "login refused");
    // Slow down password guessing before answering.
    tokio::time::sleep(delay).await;
    let mechanism = match &e {
        AuthError::Refused { mechanism, .. } => *mechanism,
        AuthError::UnknownMechanism(_) => {
            return Refused::Close(command_invalid(e.to_string()));
        }
        _ => "PLAIN",
    };
    if auth_failure_close {
        Refused::Close(AmqpException::connection(
            ReplyCode::AccessRefused,
            format!(
                "Login was refused using authentication mechanism {mechanism}. For details see the broker logfile."
            ),
        ))
    } else {
        // Without the capability the spec's answer is to close the socket.
        Refused::Gone
    }
}

fn unexpected(method: &connection::AMQPMethod, state: &str) -> Refused {
    let class = AMQPClass::Connection(method.clone());
    Refused::Close(
        channel_error(format!("unexpected method in connection state {state}")).during(
            MethodId::new(class.get_amqp_class_id(), class.get_amqp_method_id()),
        ),
    )
}

async fn send(io: &mut Io, method: &AMQPClass) -> Result<(), Refused> {
    let mut buf = BytesMut::with_capacity(512);
    encode_method_in(&mut buf, 0, method, io.dialect).map_err(AmqpException::from)?;
    io.wr.write_all(&buf).await?;
    Ok(())
}

/// Read frames until a connection-class method arrives on channel 0. Heartbeats are
/// ignored; a client `connection.close` ends the handshake.
async fn next_connection_method(
    io: &mut Io,
    state: &str,
) -> Result<connection::AMQPMethod, Refused> {
    loop {
        let frame = next_frame(io).await?;
        match frame.frame_type {
            FrameType::Heartbeat if frame.channel == 0 => continue,
            FrameType::Method if frame.channel == 0 => {}
            _ => return Err(super::frames::unexpected_frame_on_zero(&frame).into()),
        }
        let unexpected =
            |id| channel_error(format!("unexpected method in connection state {state}")).during(id);
        match decoded_or_unexpected(decode_method_in(&frame.payload, io.dialect), unexpected)? {
            Method::Other(AMQPClass::Connection(connection::AMQPMethod::Close(_))) => {
                send(
                    io,
                    &AMQPClass::Connection(connection::AMQPMethod::CloseOk(connection::CloseOk {})),
                )
                .await?;
                return Err(Refused::Gone);
            }
            Method::Other(AMQPClass::Connection(m)) => return Ok(m),
            other => return Err(unexpected(other.id()).into()),
        }
    }
}

async fn next_frame(io: &mut Io) -> Result<Frame, Refused> {
    loop {
        // Before tune-ok no frame_max is agreed; the largest we would offer applies.
        if let Some(frame) =
            decode_frame(&mut io.rbuf, HANDSHAKE_FRAME_MAX).map_err(AmqpException::from)?
        {
            return Ok(frame);
        }
        if io.rd.read_buf(&mut io.rbuf).await? == 0 {
            return Err(Refused::Gone);
        }
    }
}

/// Tell the peer why the handshake failed, and wait briefly for its `close-ok`.
pub(crate) async fn refuse(io: &mut Io, exception: &AmqpException, wait: Duration) {
    debug!(error = %exception, "handshake refused");
    let close = AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
        reply_code: exception.code.code(),
        reply_text: exception.reply_text().as_str().into(),
        class_id: exception.method.class_id,
        method_id: exception.method.method_id,
    }));
    if send(io, &close).await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(wait, async {
        loop {
            match next_frame(io).await {
                Ok(frame) if frame.frame_type == FrameType::Method => {
                    if let Ok(Method::Other(AMQPClass::Connection(
                        connection::AMQPMethod::CloseOk(_) | connection::AMQPMethod::Close(_),
                    ))) = decode_method_in(&frame.payload, io.dialect)
                    {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    })
    .await;
}

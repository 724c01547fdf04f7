//! Frame dispatch for an open connection: channel 0 to connection methods, other
//! channels to their [`Channel`], exceptions to `channel.close` or `connection.close`.

use tracing::{debug, warn};
use warren_codec::ReplyCode;
use warren_codec::frame::{Frame, FrameType};
use warren_codec::method::{Method, MethodId, decode_method, decode_method_in};
use warren_codec::spec::{AMQPClass, channel, connection};

use super::{Connection, Flow};
use crate::channel::{Channel, ChannelState};
use crate::error::{
    AmqpException, AmqpResult, Scope, channel_error, decoded_or_unexpected, not_allowed,
    unexpected_frame,
};

/// Class and method id of `basic.publish` (60, 40), as they open its method payload.
pub(super) const BASIC_PUBLISH_ID: [u8; 4] = [0, 60, 0, 40];

/// A content or heartbeat-with-payload frame where it cannot be: RabbitMQ's
/// `UNEXPECTED_FRAME - type N, all octets = <<...>>`.
pub(crate) fn unexpected_frame_on_zero(frame: &Frame) -> AmqpException {
    unexpected_frame(frame.frame_type.octet(), &frame.payload)
}

impl Connection {
    pub(super) async fn on_frame(&mut self, frame: Frame) -> Flow {
        if self.closing.is_some() {
            return self.on_frame_while_closing(&frame);
        }
        let result = if frame.channel == 0 {
            self.on_channel_zero(frame)
        } else {
            self.on_channel_frame(frame).await
        };
        match result {
            Ok(flow) => flow,
            Err(e) => {
                self.close_connection(e, false);
                Flow::Continue
            }
        }
    }

    /// After our `connection.close`, only `close-ok` (or a crossing `close`) matters.
    fn on_frame_while_closing(&mut self, frame: &Frame) -> Flow {
        if frame.channel != 0 || frame.frame_type != FrameType::Method {
            return Flow::Continue;
        }
        match decode_method_in(&frame.payload, self.session.dialect) {
            Ok(Method::Other(AMQPClass::Connection(connection::AMQPMethod::CloseOk(_)))) => {
                Flow::Stop
            }
            Ok(Method::Other(AMQPClass::Connection(connection::AMQPMethod::Close(_)))) => {
                self.send_close_ok();
                Flow::Stop
            }
            _ => Flow::Continue,
        }
    }

    fn send_close_ok(&mut self) {
        self.session.send_method(
            0,
            &AMQPClass::Connection(connection::AMQPMethod::CloseOk(connection::CloseOk {})),
        );
    }

    fn on_channel_zero(&mut self, frame: Frame) -> AmqpResult<Flow> {
        match frame.frame_type {
            FrameType::Heartbeat if frame.payload.is_empty() => Ok(Flow::Continue),
            FrameType::Heartbeat => Err(AmqpException::connection(
                ReplyCode::FrameError,
                "heartbeat frame with a payload",
            )),
            FrameType::Header | FrameType::Body => Err(unexpected_frame_on_zero(&frame)),
            FrameType::Method => {
                let unexpected =
                    |id| channel_error("unexpected method in connection state running").during(id);
                match decoded_or_unexpected(
                    decode_method_in(&frame.payload, self.session.dialect),
                    unexpected,
                )? {
                    Method::Other(AMQPClass::Connection(connection::AMQPMethod::Close(close))) => {
                        debug!(code = close.reply_code, text = %close.reply_text, "client closed the connection");
                        self.teardown_channels();
                        self.send_close_ok();
                        Ok(Flow::Stop)
                    }
                    other => Err(unexpected(other.id())),
                }
            }
        }
    }

    async fn on_channel_frame(&mut self, frame: Frame) -> AmqpResult<Flow> {
        let id = frame.channel;
        if frame.frame_type == FrameType::Heartbeat {
            return Err(unexpected_frame_on_zero(&frame));
        }
        let Some(ch) = self.channels.get_mut(&id) else {
            return self.on_unopened_channel(frame);
        };
        if ch.state() == ChannelState::Closing {
            self.on_closing_channel(id, &frame);
            return Ok(Flow::Continue);
        }
        let result = match frame.frame_type {
            FrameType::Method => {
                let method = decode_method_in(&frame.payload, self.session.dialect)?;
                ch.check_method_allowed()?;
                match method {
                    Method::Other(AMQPClass::Channel(channel::AMQPMethod::Close(close))) => {
                        debug!(
                            channel = id,
                            code = close.reply_code,
                            "client closed the channel"
                        );
                        if let Some(mut ch) = self.channels.remove(&id) {
                            ch.teardown(&self.session);
                        }
                        self.session.send_method(
                            id,
                            &AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
                        );
                        return Ok(Flow::Continue);
                    }
                    Method::Other(AMQPClass::Channel(channel::AMQPMethod::Open(_))) => {
                        Err(channel_error("second 'channel.open' seen")
                            .during(MethodId::new(20, 10)))
                    }
                    method => ch.on_method(&mut self.session, method).await,
                }
            }
            FrameType::Header => ch.on_header(&mut self.session, frame.payload),
            FrameType::Body => ch.on_body(&mut self.session, frame.payload),
            FrameType::Heartbeat => Ok(()),
        };
        self.after_channel_frame(id, result)
    }

    /// A channel exception closes the channel; anything worse goes up.
    fn after_channel_frame(&mut self, id: u16, result: AmqpResult) -> AmqpResult<Flow> {
        match result {
            Ok(()) => Ok(Flow::Continue),
            Err(e) if e.scope == Scope::Channel => {
                self.close_channel(id, &e);
                Ok(Flow::Continue)
            }
            Err(e) => Err(e),
        }
    }

    /// The three frames of a publish on an open channel, handled without awaiting
    /// anything: the path every message takes, kept free of the large future the
    /// general path builds. Any other frame is handed back for [`Connection::on_frame`].
    pub(super) fn on_publish_frame(&mut self, frame: Frame) -> Result<Flow, Frame> {
        if self.closing.is_some() || frame.channel == 0 {
            return Err(frame);
        }
        let id = frame.channel;
        let Some(ch) = self.channels.get_mut(&id) else {
            return Err(frame);
        };
        if ch.state() == ChannelState::Closing {
            return Err(frame);
        }
        let result = match frame.frame_type {
            FrameType::Header => ch.on_header(&mut self.session, frame.payload),
            FrameType::Body => ch.on_body(&mut self.session, frame.payload),
            // `basic.publish` reads the same in AMQP 0-8.
            FrameType::Method if frame.payload.starts_with(&BASIC_PUBLISH_ID) => {
                match decode_method(&frame.payload) {
                    Ok(Method::BasicPublish(m)) => ch.check_method_allowed().and_then(|()| {
                        ch.basic_publish(m)
                            .map_err(|e| e.during(MethodId::new(60, 40)))
                    }),
                    // The general path reports what is wrong with it.
                    _ => return Err(frame),
                }
            }
            _ => return Err(frame),
        };
        Ok(self.after_channel_frame(id, result).unwrap_or_else(|e| {
            self.close_connection(e, false);
            Flow::Continue
        }))
    }

    /// A channel we closed: wait for its `close-ok`, ignoring everything else.
    fn on_closing_channel(&mut self, id: u16, frame: &Frame) {
        if frame.frame_type != FrameType::Method {
            return;
        }
        match decode_method_in(&frame.payload, self.session.dialect) {
            Ok(Method::Other(AMQPClass::Channel(channel::AMQPMethod::CloseOk(_)))) => {
                self.channels.remove(&id);
            }
            Ok(Method::Other(AMQPClass::Channel(channel::AMQPMethod::Close(_)))) => {
                self.channels.remove(&id);
                self.session.send_method(
                    id,
                    &AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
                );
            }
            _ => {}
        }
    }

    fn on_unopened_channel(&mut self, frame: Frame) -> AmqpResult<Flow> {
        let id = frame.channel;
        if frame.frame_type != FrameType::Method {
            return Err(AmqpException::connection(
                ReplyCode::UnexpectedFrame,
                "expected method frame, got non method frame instead",
            ));
        }
        let unexpected = |id| channel_error("expected 'channel.open'").during(id);
        match decoded_or_unexpected(
            decode_method_in(&frame.payload, self.session.dialect),
            unexpected,
        )? {
            Method::Other(AMQPClass::Channel(channel::AMQPMethod::Open(_))) => {
                if self.channels.len() >= usize::from(self.channel_max) {
                    return Err(not_allowed(format!(
                        "number of channels opened ({}) has reached the negotiated channel_max ({})",
                        self.channels.len(),
                        self.channel_max
                    )));
                }
                self.channels.insert(id, Channel::new(id));
                self.session.send_method(
                    id,
                    &AMQPClass::Channel(channel::AMQPMethod::OpenOk(channel::OpenOk {})),
                );
                Ok(Flow::Continue)
            }
            other => Err(unexpected(other.id())),
        }
    }

    /// Send `channel.close` for a channel exception and release what the channel held.
    pub(super) fn close_channel(&mut self, id: u16, e: &AmqpException) {
        warn!(channel = id, error = %e, class_id = e.method.class_id, method_id = e.method.method_id, "channel error");
        self.session.send_method(
            id,
            &AMQPClass::Channel(channel::AMQPMethod::Close(channel::Close {
                reply_code: e.code.code(),
                reply_text: e.reply_text().as_str().into(),
                class_id: e.method.class_id,
                method_id: e.method.method_id,
            })),
        );
        if let Some(ch) = self.channels.get_mut(&id) {
            ch.teardown(&self.session);
            ch.set_closing();
        }
    }
}

//! Flow control by resource alarm, as RabbitMQ does it: a connection that publishes
//! while the memory or disk alarm is set is not read again until every alarm clears
//! (unless it is closing and waits for `close-ok`). A client that announced the
//! `connection.blocked` capability is told so (`connection.blocked`, then
//! `connection.unblocked`). A connection that only consumes is never blocked: its
//! consumers are what brings the memory down.

use tokio::time::Instant;
use warren_codec::spec::{AMQPClass, connection};

use super::{Connection, Flow};

impl Connection {
    /// After a `basic.publish` method: block if the alarm is set. `true` if blocked;
    /// the frames after this one then wait in the read buffer.
    pub(super) fn block_if_alarmed(&mut self) -> bool {
        // The atomic first: this runs for every publish, the watch's lock only when the
        // alarm is on. Reading the watch marks its value seen, so its clearing wakes us.
        if self.closing.is_some() || self.session.broker.alarms().is_empty() {
            return false;
        }
        let alarms = *self.alarm.borrow_and_update();
        if alarms.is_empty() {
            return false;
        }
        let told = self.session.connection_blocked;
        let reason = alarms.reason();
        if told {
            self.session.send_method(
                0,
                &AMQPClass::Connection(connection::AMQPMethod::Blocked(connection::Blocked {
                    reason: reason.as_str().into(),
                })),
            );
        }
        tracing::info!(told, %reason, "publishing connection blocked by a resource alarm");
        self.blocked = true;
        true
    }

    /// The alarms changed (or their sender is gone) while blocked: go on once none is
    /// left.
    pub(super) async fn on_alarm_change(&mut self, alarm_gone: bool) -> Flow {
        if !alarm_gone && !self.alarm.borrow_and_update().is_empty() {
            return Flow::Continue;
        }
        if self.session.connection_blocked && self.closing.is_none() {
            self.session.send_method(
                0,
                &AMQPClass::Connection(connection::AMQPMethod::Unblocked(connection::Unblocked {})),
            );
        }
        self.blocked = false;
        tracing::info!("publishing connection unblocked");
        // The client's heartbeats went unread meanwhile; its clock starts again now.
        self.last_read = Instant::now();
        self.on_input().await
    }
}

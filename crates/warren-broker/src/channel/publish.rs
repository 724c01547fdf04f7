//! `basic.publish`: content assembly done, route, enqueue, return, confirm; and the
//! transaction that can hold publishes and settlements back until `tx.commit`.

use std::cell::OnceCell;
use std::sync::Arc;

use bytes::Bytes;
use warren_codec::content::Content;
use warren_codec::encode::encode_basic_return;
use warren_codec::method::BasicPublish;
use warren_codec::properties::{Span, decode_properties, encode_properties, scan_properties};
use warren_codec::spec::{AMQPClass, confirm, tx};
use warren_codec::table::decode_field_table;
use warren_codec::types::{AMQPValue, FieldTable};
use warren_router::{MessageSource, Property};
use warren_store::{Message, MessageRef};

use super::Channel;
use super::ack::Settle;
use super::confirm::Confirms;
use super::unacked::Pending;
use crate::connection::Session;
use crate::error::{AmqpResult, exchange_not_found, not_implemented, precondition};
use crate::queue::QueueCmd;
use crate::vhost::Targets;

/// Work held back by `tx.select` until `tx.commit`.
#[derive(Debug, Default)]
pub(crate) struct Transaction {
    publishes: Vec<HeldPublish>,
    pub(super) settlements: Vec<(Vec<Pending>, Settle)>,
}

/// A publish routed at publish time and enqueued at commit, as RabbitMQ does.
#[derive(Debug)]
struct HeldPublish {
    targets: Targets,
    message: MessageRef,
    mandatory: bool,
}

/// A message's headers and properties for routing, decoded at most once and only if an
/// exchange on the route needs them.
#[derive(Debug)]
struct LazyMessage<'a> {
    raw: &'a [u8],
    span: Option<Span>,
    table: OnceCell<Option<FieldTable>>,
}

impl MessageSource for LazyMessage<'_> {
    fn headers(&self) -> Option<&FieldTable> {
        self.table
            .get_or_init(|| {
                self.span
                    .and_then(|span| decode_field_table(span.of(self.raw)).ok())
            })
            .as_ref()
    }

    fn property(&self, property: Property) -> Option<Vec<u8>> {
        let props = decode_properties(self.raw).ok()?;
        match property {
            Property::CorrelationId => props
                .correlation_id()
                .as_ref()
                .map(|v| v.as_str().as_bytes().to_vec()),
            Property::MessageId => props
                .message_id()
                .as_ref()
                .map(|v| v.as_str().as_bytes().to_vec()),
            Property::Timestamp => props.timestamp().map(|t| t.to_string().into_bytes()),
        }
    }
}

/// The `CC` or `BCC` routing keys of a message (RabbitMQ's sender-selected distribution).
fn header_routes(headers: Option<&FieldTable>, key: &str) -> AmqpResult<Vec<Bytes>> {
    let Some(value) = headers.and_then(|h| h.inner().get(key)) else {
        return Ok(Vec::new());
    };
    let AMQPValue::FieldArray(routes) = value else {
        return Err(precondition(format!(
            "invalid message: {{unacceptable_type_in_header,\"{key}\",{}}}",
            warren_router::erlang_type_name(value)
        )));
    };
    Ok(routes
        .as_slice()
        .iter()
        .filter_map(|v| match v {
            AMQPValue::LongString(s) => Some(Bytes::copy_from_slice(s.as_bytes())),
            _ => None,
        })
        .collect())
}

/// The properties with the `BCC` header removed: it must not reach consumers.
fn without_bcc(raw: &[u8]) -> AmqpResult<Bytes> {
    let mut props = decode_properties(raw)?;
    if let Some(headers) = props.headers().clone() {
        let mut kept = FieldTable::default();
        for (k, v) in headers.inner() {
            if k.as_str() != "BCC" {
                kept.insert(k.clone(), v.clone());
            }
        }
        props = props.with_headers(kept);
    }
    Ok(Bytes::from(encode_properties(&props)?))
}

impl Channel {
    pub(super) fn basic_publish(&mut self, m: BasicPublish) -> AmqpResult {
        Ok(self.content.begin(m)?)
    }

    /// A whole message has arrived.
    pub(super) async fn publish_content(
        &mut self,
        s: &mut Session,
        content: Content<BasicPublish>,
    ) -> AmqpResult {
        let Content {
            method,
            mut properties,
            body,
        } = content;
        if method.immediate {
            return Err(not_implemented("immediate=true"));
        }
        let summary = scan_properties(&properties)?;
        if let Some(user_id) = summary.user_id {
            let claimed = user_id.of(&properties);
            if claimed != s.user.as_bytes() {
                return Err(precondition(format!(
                    "user_id property set to '{}' but authenticated user was '{}'",
                    String::from_utf8_lossy(claimed),
                    s.user
                )));
            }
        }
        if summary.expiration.is_some() {
            return Err(not_implemented(
                "per-message TTL (the expiration property) is not supported yet",
            ));
        }
        let exchange = std::str::from_utf8(&method.exchange).map_err(|_| {
            exchange_not_found(&String::from_utf8_lossy(&method.exchange), s.vhost.name())
        })?;
        let mut targets = Targets::new();
        let strip_bcc;
        {
            let headers = LazyMessage {
                raw: &properties,
                span: summary.headers,
                table: OnceCell::new(),
            };
            let mut extra = header_routes(headers.headers(), "CC")?;
            let bcc = header_routes(headers.headers(), "BCC")?;
            strip_bcc = !bcc.is_empty() || headers.headers().is_some_and(|h| h.contains_key("BCC"));
            extra.extend(bcc);
            s.vhost.route(
                exchange,
                &method.routing_key,
                &extra,
                &headers,
                &mut targets,
            )?;
        }
        if strip_bcc {
            properties = without_bcc(&properties)?;
        }
        let message = Arc::new(Message {
            exchange: method.exchange,
            routing_key: method.routing_key,
            properties,
            body,
            persistent: summary.delivery_mode == Some(2),
        });
        if let Some(tx) = &mut self.tx {
            tx.publishes.push(HeldPublish {
                targets,
                message,
                mandatory: method.mandatory,
            });
            return Ok(());
        }
        self.enqueue(s, targets, message, method.mandatory).await;
        if let Some(confirms) = &mut self.confirms {
            let seq = confirms.next_seq();
            if confirms.resolve(seq, true) {
                s.confirms_due.push(self.id);
            }
        }
        Ok(())
    }

    /// Hand a routed message to its queues, or return it if it is mandatory and
    /// reached none.
    async fn enqueue(
        &mut self,
        s: &mut Session,
        targets: Targets,
        message: MessageRef,
        mandatory: bool,
    ) {
        if targets.is_empty() {
            if mandatory {
                let _ = encode_basic_return(
                    &mut s.out,
                    self.id,
                    312,
                    b"NO_ROUTE",
                    &message.exchange,
                    &message.routing_key,
                );
                s.send_content(self.id, &message.properties, &message.body);
            }
            return;
        }
        for queue in targets {
            queue
                .send(QueueCmd::Publish {
                    message: message.clone(),
                })
                .await;
        }
    }

    pub(crate) fn flush_confirms(&mut self, s: &mut Session) {
        if let Some(confirms) = &mut self.confirms {
            confirms.flush(&mut s.out, self.id);
        }
    }

    pub(super) fn confirm_select(&mut self, s: &mut Session, nowait: bool) -> AmqpResult {
        if self.tx.is_some() {
            return Err(precondition("cannot switch from tx to confirm mode"));
        }
        self.confirms.get_or_insert_with(Confirms::default);
        if !nowait {
            s.send_method(
                self.id,
                &AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(confirm::SelectOk {})),
            );
        }
        Ok(())
    }

    pub(super) fn tx_select(&mut self, s: &mut Session) -> AmqpResult {
        if self.confirms.is_some() {
            return Err(precondition("cannot switch from confirm to tx mode"));
        }
        self.tx.get_or_insert_with(Transaction::default);
        s.send_method(
            self.id,
            &AMQPClass::Tx(tx::AMQPMethod::SelectOk(tx::SelectOk {})),
        );
        Ok(())
    }

    pub(super) async fn tx_commit(&mut self, s: &mut Session) -> AmqpResult {
        let Some(tx) = self.tx.as_mut() else {
            return Err(precondition("channel is not transactional"));
        };
        let work = std::mem::take(tx);
        for held in work.publishes {
            self.enqueue(s, held.targets, held.message, held.mandatory)
                .await;
        }
        for (pending, how) in work.settlements {
            self.settle(pending, how).await;
        }
        s.send_method(
            self.id,
            &AMQPClass::Tx(tx::AMQPMethod::CommitOk(tx::CommitOk {})),
        );
        Ok(())
    }

    pub(super) fn tx_rollback(&mut self, s: &mut Session) -> AmqpResult {
        let Some(tx) = self.tx.as_mut() else {
            return Err(precondition("channel is not transactional"));
        };
        let work = std::mem::take(tx);
        for (pending, _) in work.settlements {
            self.unacked.restore(pending);
        }
        s.send_method(
            self.id,
            &AMQPClass::Tx(tx::AMQPMethod::RollbackOk(tx::RollbackOk {})),
        );
        Ok(())
    }
}

//! `basic.publish`: content assembly done, route, enqueue, return, confirm; and the
//! transaction that can hold publishes and settlements back until `tx.commit`.

use std::cell::OnceCell;

use bytes::Bytes;
use tokio::sync::mpsc;
use warren_codec::content::Content;
use warren_codec::encode::encode_basic_return;
use warren_codec::method::BasicPublish;
use warren_codec::properties::{Span, decode_properties, encode_properties, scan_properties};
use warren_codec::spec::{AMQPClass, confirm, tx};
use warren_codec::table::decode_field_table;
use warren_codec::types::{AMQPValue, FieldTable};
use warren_router::{MessageSource, Property};
use warren_store::{Body, Message, MessageRef};

use super::Channel;
use super::ack::Settle;
use super::confirm::Confirms;
use super::expiration::{invalid_expiration_text, parse_expiration};
use super::reply_to::{REPLY_TO, reply_target};
use super::unacked::Pending;
use crate::broker::ReplyTarget;
use crate::connection::{Outbound, Session};
use crate::error::{AmqpResult, exchange_not_found, not_implemented, precondition};
use crate::queue::{ConfirmTicket, QueueCmd};
use crate::vhost::Targets;

/// Work held back by `tx.select` until `tx.commit`.
#[derive(Debug, Default)]
pub(crate) struct Transaction {
    publishes: Vec<HeldPublish>,
    pub(super) settlements: Vec<(Vec<Pending>, Settle)>,
}

/// A routed publish. In a transaction it is routed at publish time and enqueued at
/// commit, as RabbitMQ does.
#[derive(Debug)]
struct HeldPublish {
    targets: Targets,
    /// A direct reply-to consumer instead of queues.
    reply: Option<ReplyTarget>,
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
    pub(crate) fn basic_publish(&mut self, m: BasicPublish) -> AmqpResult {
        Ok(self.content.begin(m)?)
    }

    /// A whole message has arrived.
    pub(super) fn publish_content(
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
        // RabbitMQ refuses a message for the first of: its exchange, its direct
        // reply-to, its user-id, its expiration, then anything else invalid in it
        // (CC/BCC, then delivery-mode). The checks run in the order the work needs them
        // and the refusal is picked by that rank afterwards.
        let summary = scan_properties(&properties)?;
        let user_id_refusal = summary.user_id.and_then(|user_id| {
            let claimed = user_id.of(&properties);
            (claimed != s.user.as_bytes()).then(|| {
                precondition(format!(
                    "user_id property set to '{}' but authenticated user was '{}'",
                    String::from_utf8_lossy(claimed),
                    s.user
                ))
            })
        });
        let (expiration, expiration_refusal) = match summary.expiration {
            Some(span) => {
                let raw = span.of(&properties);
                match parse_expiration(raw) {
                    Ok(expiration) => (Some(expiration), None),
                    Err(why) => (None, Some(precondition(invalid_expiration_text(raw, &why)))),
                }
            }
            None => (None, None),
        };
        let delivery_mode_refusal = match summary.delivery_mode {
            None | Some(1 | 2) => None,
            Some(mode) => Some(precondition(format!(
                "invalid message: {{delivery_mode_unknown,{mode}}}"
            ))),
        };
        let mut reply_to_refusal = None;
        if summary
            .reply_to
            .is_some_and(|span| span.of(&properties) == REPLY_TO.as_bytes())
        {
            match self.rewrite_reply_to(&properties) {
                Ok(rewritten) => properties = rewritten,
                Err(e) => reply_to_refusal = Some(e),
            }
        }
        let exchange = std::str::from_utf8(&method.exchange).map_err(|_| {
            exchange_not_found(&String::from_utf8_lossy(&method.exchange), s.vhost.name())
        })?;
        let mut targets = Targets::new();
        let strip_bcc;
        let mut header_refusal = None;
        {
            let headers = LazyMessage {
                raw: &properties,
                span: summary.headers,
                table: OnceCell::new(),
            };
            let mut extra = Vec::new();
            match (
                header_routes(headers.headers(), "CC"),
                header_routes(headers.headers(), "BCC"),
            ) {
                (Ok(cc), Ok(bcc)) => {
                    extra = cc;
                    extra.extend(bcc);
                }
                (Err(e), _) | (_, Err(e)) => header_refusal = Some(e),
            }
            strip_bcc = headers.headers().is_some_and(|h| h.contains_key("BCC"));
            // An unknown or internal exchange outranks everything else.
            s.vhost.route(
                exchange,
                &method.routing_key,
                &extra,
                &headers,
                &mut targets,
            )?;
        }
        if let Some(refusal) = reply_to_refusal
            .or(user_id_refusal)
            .or(expiration_refusal)
            .or(header_refusal)
            .or(delivery_mode_refusal)
        {
            return Err(refusal);
        }
        let reply = reply_target(s, exchange, &method.routing_key);
        if strip_bcc {
            properties = without_bcc(&properties)?;
        }
        let message = MessageRef::new(Message {
            exchange: method.exchange,
            routing_key: method.routing_key,
            properties,
            body: Body::from_parts(body),
            persistent: summary.delivery_mode == Some(2),
            priority: summary.priority.unwrap_or(0),
            expiration,
        });
        let held = HeldPublish {
            targets,
            reply,
            message,
            mandatory: method.mandatory,
        };
        if let Some(tx) = &mut self.tx {
            tx.publishes.push(held);
            return Ok(());
        }
        let seq = self.confirms.as_mut().map(Confirms::next_seq);
        self.enqueue(s, held, seq, None);
        Ok(())
    }

    /// Hand a routed message to its queues (or its direct reply-to consumer), return it
    /// if it is mandatory and reached nothing, and settle its confirm: at once, or when
    /// every queue that may refuse it, or must first sync it to disk, has answered. In a
    /// committing transaction, `commit` collects the verdicts of queues that sync.
    fn enqueue(
        &mut self,
        s: &mut Session,
        held: HeldPublish,
        seq: Option<u64>,
        commit: Option<&mpsc::UnboundedSender<bool>>,
    ) {
        let HeldPublish {
            targets,
            reply,
            mut message,
            mandatory,
        } = held;
        let mut waiting = 0;
        if let Some(reply) = reply {
            let _ = reply.tx.send(Outbound::Reply {
                channel: reply.channel,
                consumer_tag: reply.consumer_tag,
                message,
            });
        } else if targets.is_empty() {
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
        } else {
            let last = targets.len() - 1;
            for (i, queue) in targets.into_iter().enumerate() {
                let syncs = queue.spec.durable && message.persistent;
                let confirm = match (seq, commit) {
                    (Some(seq), _) if syncs || queue.spec.config.may_refuse() => {
                        Some(ConfirmTicket::new(s.handle.tx.clone(), self.id, seq))
                    }
                    (None, Some(commit)) if syncs => {
                        Some(ConfirmTicket::for_commit(commit.clone()))
                    }
                    _ => None,
                };
                // The last queue takes the message itself rather than a count.
                let message = if i == last {
                    std::mem::take(&mut message)
                } else {
                    message.clone()
                };
                match confirm {
                    None => s.gather_publish(&queue, message),
                    Some(confirm) => {
                        let cmd = QueueCmd::Publish {
                            message,
                            confirm: Some(confirm),
                        };
                        if s.send_to_queue(&queue, cmd) {
                            waiting += 1;
                        }
                    }
                }
            }
        }
        let (Some(seq), Some(confirms)) = (seq, self.confirms.as_mut()) else {
            return;
        };
        let due = if waiting == 0 {
            confirms.resolve(seq, true)
        } else {
            confirms.expect(seq, waiting);
            false
        };
        if due {
            s.confirms_due.push(self.id);
        }
    }

    /// A queue's verdict on a publish waiting for its confirm.
    pub(crate) fn confirm_verdict(&mut self, s: &mut Session, seq: u64, ack: bool) {
        if let Some(confirms) = &mut self.confirms
            && confirms.verdict(seq, ack)
        {
            s.confirms_due.push(self.id);
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
        let (stored_tx, mut stored) = mpsc::unbounded_channel();
        for mut held in work.publishes {
            s.vhost.queues_at_commit(&mut held.targets);
            self.enqueue(s, held, None, Some(&stored_tx));
        }
        s.send_parked().await;
        drop(stored_tx);
        for (pending, how) in work.settlements {
            self.settle(pending, how).await;
        }
        // commit-ok only once every persistent message of the transaction is on disk.
        let mut all_stored = true;
        while let Some(ok) = stored.recv().await {
            all_stored &= ok;
        }
        if !all_stored {
            return Err(crate::error::AmqpException::connection(
                warren_codec::ReplyCode::InternalError,
                "cannot store the transaction's messages",
            ));
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

//! Consuming connections: count deliveries, ack them in batches, and read send times
//! out of bodies when measuring latency.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use warren_codec::encode::encode_basic_ack;
use warren_codec::frame::{FrameType, decode_frame};

use crate::client::Client;
use crate::latency::{Recorder, micros_since};
use crate::{Res, Shared};

/// How one consumer acknowledges.
#[derive(Debug, Clone, Copy)]
pub struct Acking {
    pub manual: bool,
    /// Ack with multiple=true once this many deliveries are unacked.
    pub every: u64,
}

pub async fn consume(
    c: Client,
    acking: Acking,
    shared: Arc<Shared>,
    recorder: Option<Arc<Recorder>>,
) -> Res<()> {
    let Client {
        mut rd,
        mut wr,
        mut rbuf,
        ..
    } = c;
    let mut since_ack = 0u64;
    let mut out = BytesMut::with_capacity(256);
    let mut samples = Vec::with_capacity(1024);
    // The next body frame is the first of a delivery's content: it holds the stamp.
    let mut stamp_next = false;
    while !shared.stop.load(Ordering::Relaxed) {
        if rd.read_buf(&mut rbuf).await? == 0 {
            return Err("the broker closed a consumer".into());
        }
        let mut delivered = 0;
        let mut last_tag = 0;
        while let Some(frame) = decode_frame(&mut rbuf, 0)? {
            match frame.frame_type {
                FrameType::Method if frame.payload.len() >= 4 => {}
                FrameType::Body if stamp_next => {
                    stamp_next = false;
                    if frame.payload.len() >= 8 {
                        let stamp = frame.payload.clone().get_u64();
                        samples.push(micros_since(stamp));
                    }
                    continue;
                }
                _ => continue,
            }
            let mut p = frame.payload.clone();
            let (class, method) = (p.get_u16(), p.get_u16());
            if class == 60 && method == 60 {
                delivered += 1;
                stamp_next = recorder.is_some();
                if acking.manual && p.remaining() >= 1 {
                    let tag_len = usize::from(p.get_u8());
                    if p.remaining() >= tag_len + 8 {
                        p.advance(tag_len);
                        last_tag = p.get_u64();
                    }
                }
            } else if class == 10 && method == 50 {
                return Err(format!(
                    "the broker closed a consumer: {:?}",
                    warren_codec::method::decode_method(&frame.payload)
                )
                .into());
            } else if class == 60 && method == 30 {
                return Err("the broker cancelled a consumer".into());
            }
        }
        if let Some(r) = &recorder {
            r.record_all(&samples);
            samples.clear();
        }
        shared
            .stats
            .consumed
            .fetch_add(delivered, Ordering::Relaxed);
        since_ack += delivered;
        if acking.manual && since_ack >= acking.every && last_tag > 0 {
            out.clear();
            encode_basic_ack(&mut out, 1, last_tag, true);
            wr.write_all(&out).await?;
            since_ack = 0;
        }
    }
    Ok(())
}

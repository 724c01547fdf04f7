//! Property tests: nothing decodes into a panic, and what we encode we decode back.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is the failure report"
)]

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use warren_codec::content::ContentAssembly;
use warren_codec::dialect::Dialect;
use warren_codec::encode::{encode_basic_deliver, encode_content, encode_method_in};
use warren_codec::frame::decode_frame;
use warren_codec::method::{Method, decode_method, decode_method_in};
use warren_codec::properties::scan_properties;
use warren_codec::spec::{AMQPClass, channel, connection};

fn short() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..=255)
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_the_decoders(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut buf = BytesMut::from(&bytes[..]);
        while let Ok(Some(frame)) = decode_frame(&mut buf, 4096) {
            let _ = decode_method(&frame.payload);
            let _ = scan_properties(&frame.payload);
            let mut a: ContentAssembly<()> = ContentAssembly::default();
            let _ = a.begin(());
            let _ = a.header(frame.payload.clone(), 60, 1 << 20);
            let _ = a.body(frame.payload);
        }
        let payload = Bytes::from(bytes);
        let _ = decode_method(&payload);
        let _ = decode_method_in(&payload, Dialect::Amqp08);
    }

    /// A close we send a 0-8 peer reads back as the same close: what renumbering does on
    /// the way out, it undoes on the way in, for the close's own id and the failed one.
    #[test]
    fn closes_round_trip_through_0_8(code: u16, text in "[ -~]{0,60}",
                                     (class_id, method_id) in prop_oneof![
                                         (Just(10u16), 48u16..64),
                                         any::<(u16, u16)>(),
                                     ],
                                     on_channel_zero: bool) {
        let close = if on_channel_zero {
            AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
                reply_code: code, reply_text: text.clone().into(), class_id, method_id,
            }))
        } else {
            AMQPClass::Channel(channel::AMQPMethod::Close(channel::Close {
                reply_code: code, reply_text: text.clone().into(), class_id, method_id,
            }))
        };
        let mut buf = BytesMut::new();
        encode_method_in(&mut buf, 0, &close, Dialect::Amqp08).unwrap();
        let frame = decode_frame(&mut buf, 4096).unwrap().unwrap();
        prop_assert_eq!(decode_method_in(&frame.payload, Dialect::Amqp08).unwrap(), Method::Other(close));
    }

    #[test]
    fn publish_round_trips(exchange in short(), routing_key in short(), mandatory: bool, immediate: bool) {
        let mut payload = vec![0, 60, 0, 40, 0, 0, exchange.len() as u8];
        payload.extend_from_slice(&exchange);
        payload.push(routing_key.len() as u8);
        payload.extend_from_slice(&routing_key);
        payload.push(u8::from(mandatory) | (u8::from(immediate) << 1));
        let Method::BasicPublish(p) = decode_method(&Bytes::from(payload)).unwrap() else {
            panic!("not a publish");
        };
        prop_assert_eq!(&p.exchange[..], &exchange[..]);
        prop_assert_eq!(&p.routing_key[..], &routing_key[..]);
        prop_assert_eq!((p.mandatory, p.immediate), (mandatory, immediate));
    }

    #[test]
    fn content_splits_and_reassembles(body in proptest::collection::vec(any::<u8>(), 0..5000),
                                      frame_max in 9u32..600) {
        let mut buf = BytesMut::new();
        encode_basic_deliver(&mut buf, 3, b"tag", 1, false, b"x", b"k").unwrap();
        encode_content(&mut buf, 3, &[0, 0], &body, frame_max).unwrap();
        let _deliver = decode_frame(&mut buf, frame_max.max(64)).unwrap().unwrap();
        let mut a = ContentAssembly::default();
        a.begin(()).unwrap();
        let header = decode_frame(&mut buf, frame_max.max(64)).unwrap().unwrap();
        let mut done = a.header(header.payload, 60, u64::MAX).unwrap();
        while done.is_none() {
            let frame = decode_frame(&mut buf, frame_max).unwrap().unwrap();
            prop_assert!(frame.payload.len() + 8 <= frame_max as usize);
            done = a.body(frame.payload).unwrap();
        }
        let got: Vec<u8> = done.unwrap().body.iter().flat_map(|b| b.to_vec()).collect();
        prop_assert_eq!(&got[..], &body[..]);
        prop_assert!(buf.is_empty());
    }
}

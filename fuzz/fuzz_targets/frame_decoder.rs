//! Any byte stream through the frame splitter, method decoder (0-9-1 and 0-8), content
//! assembly and
//! property scanner: errors are fine, panics and unbounded buffering are not.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use warren_codec::content::ContentAssembly;
use warren_codec::frame::{FrameType, decode_frame};
use warren_codec::dialect::Dialect;
use warren_codec::method::{Method, decode_method, decode_method_in};
use warren_codec::properties::scan_properties;

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    let mut content: ContentAssembly<()> = ContentAssembly::default();
    while let Ok(Some(frame)) = decode_frame(&mut buf, 4096) {
        match frame.frame_type {
            FrameType::Method => {
                if let Ok(Method::BasicPublish(_)) = decode_method(&frame.payload) {
                    let _ = content.begin(());
                }
                let _ = decode_method_in(&frame.payload, Dialect::Amqp08);
            }
            FrameType::Header => {
                if let Ok(Some(done)) = content.header(frame.payload, 60, 1 << 20) {
                    let _ = scan_properties(&done.properties);
                }
            }
            FrameType::Body => {
                let _ = content.body(frame.payload);
            }
            FrameType::Heartbeat => {}
        }
    }
    // A partial frame never makes the splitter hold more than frame_max.
    assert!(buf.len() <= 4096 + 8 || decode_frame(&mut buf, 4096).is_err());
});

//! Feeds arbitrary bytes to the frame decoder, as both sides would read them.
//! Run with `cargo +nightly fuzz run frame_decoder` from the repository root.
#![no_main]

use appforge_shared::codec;
use appforge_shared::protocol::{ClientFrame, ServerFrame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Ok(Some((_, used))) = codec::decode_frame::<ClientFrame>(rest) {
        rest = &rest[used..];
    }
    let _ = codec::decode_frame::<ServerFrame>(data);
    let _ = codec::decode_payload::<ClientFrame>(data);
});

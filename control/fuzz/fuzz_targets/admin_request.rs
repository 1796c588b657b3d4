//! The admin socket's request decoder on any bytes: it never panics, a
//! frame it accepts is a request that encodes back to the same value, and
//! a prefix of a frame is never taken for a request.
#![no_main]

use l4vs_control::admin::{decode_request, Request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(req)) = decode_request(data) {
        let body = serde_json::to_vec(&req).expect("a request always encodes");
        let again: Request = serde_json::from_slice(&body).expect("and decodes back");
        assert_eq!(again, req);
        if data.len() > 4 {
            assert_ne!(
                decode_request(&data[..data.len() - 1]).ok().flatten(),
                Some(req),
                "a cut frame was taken whole"
            );
        }
    }
});

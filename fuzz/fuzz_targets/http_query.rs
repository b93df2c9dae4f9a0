//! The HTTP face's paths and query strings (percent-decoding, the native and the AWS
//! agent routes' parameters): no input panics, and a decoded path is UTF-8 text.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    vaultbridge::fuzzing::http_query(text);
});

//! The file backend's json secrets-file parser.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vaultbridge_backend_file::fuzzing::{FileFormat, parse};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse(FileFormat::Json, text);
    }
});

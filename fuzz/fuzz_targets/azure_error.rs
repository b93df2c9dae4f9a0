//! Key Vault error answers: any status and body becomes a message, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vaultbridge_backend_azure::fuzzing::map_error_body;

fuzz_target!(|data: &[u8]| {
    let Some((status, body)) = data.split_first_chunk::<2>() else {
        return;
    };
    let status = 400 + u16::from_le_bytes(*status) % 200;
    let _ = map_error_body(status, body);
});

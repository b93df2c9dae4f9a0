//! The config loader: YAML, `${VAR}` interpolation and every section's checks.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = vaultbridge::fuzzing::config(text);
    }
});

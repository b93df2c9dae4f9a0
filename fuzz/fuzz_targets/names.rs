//! Definition and connection names: whatever the validator accepts is within the
//! documented rule.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if vaultbridge::fuzzing::name(text).is_ok() {
        assert!(!text.is_empty() && text.len() <= 256, "{text:?}");
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b)),
            "{text:?}"
        );
    }
});

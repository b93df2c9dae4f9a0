//! The config's duration values (`30s`, `1h30m`, `${VAR}` expansions).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use std::path::Path;
use vaultbridge_backend_core::config::{Checker, Location, Text};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let vars = BTreeMap::from([("D".to_owned(), "5m".to_owned())]);
    let mut checker = Checker::new(&vars, Path::new(""));
    let mut section = checker.section("cache", Location::START);
    let value = Text::new(text, Location::START);
    let _ = section.duration(&value, "ttl");
    let mut timeout = std::time::Duration::from_secs(1);
    section.timeout(Some(&value), "timeout", &mut timeout);
    assert!(!timeout.is_zero());
});

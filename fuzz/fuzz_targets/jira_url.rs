//! Jira site URLs as pasted: normalising is idempotent (a normalised URL is accepted
//! again unchanged).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vaultbridge::fuzzing::jira_site_url;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(url) = jira_site_url(text) {
        assert!(
            url.starts_with("https://") || url.starts_with("http://"),
            "{url:?}"
        );
        assert_eq!(
            jira_site_url(&url).as_deref(),
            Ok(url.as_str()),
            "from {text:?}"
        );
    }
});

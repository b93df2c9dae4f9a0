//! Token hygiene: pasted secrets pick up whitespace at their ends (a browser's trailing
//! space, a newline, CRLF, NBSP, a zero-width space, a BOM). Trimming is per definition
//! because a PEM or SSH key needs its final newline.

use vaultbridge_backend_core::SecretValue;

/// Characters removed from the ends of a value: Unicode White_Space, plus the invisible
/// format characters that pastes carry but White_Space does not include.
pub(crate) fn is_trimmable(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '\u{200B}' // zero-width space
            | '\u{200C}' // zero-width non-joiner
            | '\u{200D}' // zero-width joiner
            | '\u{2060}' // word joiner
            | '\u{FEFF}' // byte-order mark / zero-width no-break space
        )
}

/// Removes leading and trailing trimmable characters. Interior characters are never
/// touched, and a value that is not UTF-8 text is binary and passes unchanged.
/// Returns the value and whether it changed.
pub(crate) fn trim(value: SecretValue) -> (SecretValue, bool) {
    let Some(text) = value.expose_str() else {
        return (value, false);
    };
    let trimmed = text.trim_matches(is_trimmable);
    if trimmed.len() == text.len() {
        return (value, false);
    }
    // The untrimmed original is zeroized when `value` drops here.
    (SecretValue::from(trimmed), true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trimmed(input: &str) -> (String, bool) {
        let (value, changed) = trim(SecretValue::from(input));
        (value.expose_str().expect("text").to_owned(), changed)
    }

    #[test]
    fn trims_ascii_space_tab_cr_lf() {
        assert_eq!(trimmed(" \ttoken\r\n"), ("token".into(), true));
    }

    #[test]
    fn trims_nbsp_zero_width_space_and_bom() {
        assert_eq!(
            trimmed("\u{FEFF}token\u{A0}\u{200B}"),
            ("token".into(), true)
        );
        assert_eq!(
            trimmed("\u{2003}token\u{3000}\u{2060}"),
            ("token".into(), true)
        );
    }

    #[test]
    fn interior_whitespace_is_kept() {
        assert_eq!(
            trimmed(" a b\u{A0}c\u{200B}d "),
            ("a b\u{A0}c\u{200B}d".into(), true)
        );
    }

    #[test]
    fn clean_values_are_reported_unchanged() {
        assert_eq!(trimmed("token"), ("token".into(), false));
        assert_eq!(trimmed(""), ("".into(), false));
        assert_eq!(trimmed(" \n "), ("".into(), true));
    }

    #[test]
    fn binary_values_pass_unchanged() {
        let bytes = vec![b' ', 0xff, 0xfe, b'\n'];
        let (value, changed) = trim(SecretValue::new(bytes.clone()));
        assert!(!changed);
        assert_eq!(value.expose(), bytes.as_slice());
    }
}

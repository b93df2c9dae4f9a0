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

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Characters a paste brings: every trimmable one, and look-alikes that are not.
        fn pasted_char() -> impl Strategy<Value = char> {
            prop_oneof![
                prop::sample::select(vec![
                    ' ', '\t', '\r', '\n', '\u{A0}', '\u{2003}', '\u{3000}', '\u{200B}',
                    '\u{200C}', '\u{200D}', '\u{2060}', '\u{FEFF}', '\u{85}',
                    // Not trimmable: an invisible-looking format character and a soft hyphen.
                    '\u{200E}', '\u{AD}',
                ]),
                any::<char>(),
            ]
        }

        proptest! {
            #[test]
            fn trimming_removes_only_trimmable_ends_and_never_touches_the_interior(
                chars in prop::collection::vec(pasted_char(), 0..40)
            ) {
                let input: String = chars.into_iter().collect();
                let (output, changed) = trimmed(&input);
                // The output is one contiguous piece of the input...
                let start = input.len() - input.trim_start_matches(is_trimmable).len();
                prop_assert!(input[start..].starts_with(&output), "{input:?} -> {output:?}");
                // ...with only trimmable characters cut from either side of it...
                let (before, after) = (&input[..start], &input[start + output.len()..]);
                prop_assert!(before.chars().chain(after.chars()).all(is_trimmable));
                // ...and none left at its ends.
                prop_assert!(!output.starts_with(is_trimmable) && !output.ends_with(is_trimmable));
                prop_assert_eq!(changed, output.len() != input.len());
            }

            #[test]
            fn values_that_are_not_utf8_pass_unchanged(
                (start, middle, end) in (
                    "[ \t\r\n\u{A0}\u{FEFF}]{0,4}",
                    prop::collection::vec(any::<u8>(), 0..32),
                    "[ \t\r\n\u{A0}\u{200B}]{0,4}",
                )
            ) {
                // 0xFF never occurs in UTF-8, so the value is binary whatever surrounds it.
                let bytes = [start.as_bytes(), &[0xFF], &middle, end.as_bytes()].concat();
                let (value, changed) = trim(SecretValue::new(bytes.clone()));
                prop_assert!(!changed);
                prop_assert_eq!(value.expose(), bytes.as_slice());
            }
        }
    }
}

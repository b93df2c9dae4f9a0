use std::fmt;
use zeroize::Zeroizing;

const REDACTED: &str = "[REDACTED]";

/// Secret bytes. Debug and Display print a redaction marker, never the value, and the
/// memory is zeroized when the value is dropped.
///
/// There is deliberately no `Clone`: copies of a secret should be rare and visible
/// (`SecretValue::from(value.expose().to_vec())`), and sharing goes through `Arc`.
#[derive(PartialEq, Eq)]
pub struct SecretValue(Zeroizing<Vec<u8>>);

impl SecretValue {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The secret bytes. Named so that every place that reads a secret says so.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The value as text, when it is valid UTF-8.
    pub fn expose_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Vec<u8>> for SecretValue {
    fn from(bytes: Vec<u8>) -> Self {
        Self::new(bytes)
    }
}

impl From<String> for SecretValue {
    fn from(text: String) -> Self {
        Self::new(text.into_bytes())
    }
}

impl From<&str> for SecretValue {
    fn from(text: &str) -> Self {
        Self::new(text.as_bytes().to_vec())
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretValue({REDACTED}, {} bytes)", self.0.len())
    }
}

impl fmt::Display for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let value = SecretValue::from("hunter2-token");
        assert_eq!(format!("{value}"), "[REDACTED]");
        let debug = format!("{value:?} {value:#?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("13 bytes"), "{debug}");
    }

    #[test]
    fn expose_returns_the_exact_bytes() {
        let value = SecretValue::new(vec![0, 255, b' ', b'\n']);
        assert_eq!(value.expose(), &[0, 255, b' ', b'\n']);
        assert_eq!(value.expose_str(), None);
        assert_eq!(SecretValue::from("ok").expose_str(), Some("ok"));
    }
}

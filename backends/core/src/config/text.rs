//! A config value as written, with the place it was written, so that every check can
//! point at the value it refuses.

use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};
use serde_saphyr::Spanned;
use std::fmt;

/// A line and column in the config file, both from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Location {
    pub line: u32,
    pub column: u32,
}

impl Location {
    /// The top of the file, for problems that belong to no single value.
    pub const START: Self = Self { line: 1, column: 1 };
}

impl From<&serde_saphyr::Location> for Location {
    fn from(location: &serde_saphyr::Location) -> Self {
        let narrow = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        Self {
            line: narrow(location.line()),
            column: narrow(location.column()),
        }
    }
}

/// A scalar config value (text, number, boolean or duration, all kept as written) and
/// where it was written. Every scalar is read as text so that `${VAR}` interpolation
/// applies to all of them and a number keeps its spelling (`0660` stays octal).
///
/// serde-saphyr's `Spanned` keeps two full locations with byte spans, about 130 bytes a
/// value: a 100,000-definition config held 8 of them per definition at once, near
/// 100 MB, just to name a line in an error. This keeps one line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text {
    pub value: String,
    pub at: Location,
}

impl Text {
    pub fn new(value: impl Into<String>, at: Location) -> Self {
        Self {
            value: value.into(),
            at,
        }
    }
}

/// The newtype name by which [`Text`] asks a deserializer for its location. The YAML
/// deserializer passes it through; the [`Node`](super::Node) deserializer answers it.
pub(crate) const TEXT_NEWTYPE: &str = "vaultbridge::config::Text";

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_newtype_struct(TEXT_NEWTYPE, TextVisitor)
    }
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Text;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a single value (text, number or duration)")
    }

    /// Straight from the YAML file: serde-saphyr's own span protocol.
    fn visit_newtype_struct<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        let spanned = Spanned::<String>::deserialize(deserializer)?;
        Ok(Text {
            at: Location::from(&spanned.referenced),
            value: spanned.value,
        })
    }

    /// From a buffered [`Node`](super::Node): line, column, value.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let line = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(0, &self))?;
        let column = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(1, &self))?;
        let value = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(2, &self))?;
        Ok(Text {
            value,
            at: Location { line, column },
        })
    }
}

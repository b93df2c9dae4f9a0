//! The rule for definition names, shared by config validation and request validation
//! so that every configured definition can be requested.

/// Longest accepted name, in bytes.
pub(crate) const MAX_NAME_LEN: usize = 256;

/// The characters a name may contain, as said in errors and docs.
pub(crate) const ALLOWED: &str = "ASCII letters, digits, '-', '_', '.' and '/'";

/// Why a name breaks the rule. Displayed as said of a definition name; Jira connection
/// names follow the same rule and are described with [`NameError::describe`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe("definition"))]
pub enum NameError {
    Empty,
    TooLong { len: usize },
    BadCharacter { found: char, at: usize },
}

impl NameError {
    /// The problem, said of a `what` name (`definition`, `connection`).
    pub fn describe(&self, what: &str) -> String {
        match self {
            Self::Empty => format!("the {what} name is empty"),
            Self::TooLong { len } => {
                format!("the {what} name is {len} bytes long; the limit is {MAX_NAME_LEN}")
            }
            Self::BadCharacter { found, at } => format!(
                "the {what} name has {found:?} at byte {at}; names may contain only {ALLOWED}"
            ),
        }
    }
}

pub(crate) fn validate(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong { len: name.len() });
    }
    match name
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/')))
    {
        Some((at, found)) => Err(NameError::BadCharacter { found, at }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_set() {
        assert_eq!(validate("jira-api_token.prod/v2"), Ok(()));
        assert_eq!(validate(&"a".repeat(MAX_NAME_LEN)), Ok(()));
    }

    #[test]
    fn rejects_empty_long_and_odd_names() {
        assert_eq!(validate(""), Err(NameError::Empty));
        assert_eq!(
            validate(&"a".repeat(MAX_NAME_LEN + 1)),
            Err(NameError::TooLong { len: 257 })
        );
        assert_eq!(
            validate("jira token"),
            Err(NameError::BadCharacter { found: ' ', at: 4 })
        );
        assert!(validate("ünï").is_err());
    }

    #[test]
    fn the_rule_is_said_of_the_kind_of_name() {
        let err = validate("jira token").expect_err("a space");
        assert_eq!(
            err.to_string(),
            format!("the definition name has ' ' at byte 4; names may contain only {ALLOWED}")
        );
        assert!(
            err.describe("connection")
                .starts_with("the connection name has ' '")
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn a_name_is_accepted_exactly_when_every_byte_follows_the_rule(
                name in prop_oneof!["[A-Za-z0-9._/-]{0,300}", "[A-Za-z0-9._/ \\-:@\u{e9}\u{200B}]{0,40}", ".{0,40}"]
            ) {
                let follows = (1..=MAX_NAME_LEN).contains(&name.len())
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b));
                prop_assert_eq!(validate(&name).is_ok(), follows, "{:?}", name);
                if let Err(NameError::BadCharacter { found, at }) = validate(&name) {
                    prop_assert_eq!(name[at..].chars().next(), Some(found));
                }
            }
        }
    }
}

//! `${VAR}` interpolation inside config values, with variables read through [`Vars`] so
//! that tests can supply them and nothing else reads the process environment directly.

use std::collections::BTreeMap;

/// Where `${VAR}` values come from.
pub trait Vars {
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment: the one place the daemon reads a variable for its config.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessVars;

impl Vars for ProcessVars {
    #[allow(
        clippy::disallowed_methods,
        reason = "the one sanctioned read of the process environment for config values"
    )]
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Vars for BTreeMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

/// Why a value could not be interpolated. Messages name the variable, never its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum InterpolationError {
    #[error("`${{` is not closed by `}}`; write `$$` for a literal `$`")]
    Unclosed,
    #[error(
        "`${{{0}}}` is not a variable reference: names are letters, digits and `_`, not starting with a digit"
    )]
    BadName(String),
    #[error("environment variable `{0}` is not set; set it, or write `${{{0}:-default}}`")]
    Unset(String),
}

/// Expands `${NAME}` and `${NAME:-default}` (the default applies when the variable is
/// unset or empty, as in the shell). `$$` is a literal `$`; any other `$` is literal.
pub(crate) fn interpolate(input: &str, vars: &dyn Vars) -> Result<String, InterpolationError> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let Some(end) = body.find('}') else {
                return Err(InterpolationError::Unclosed);
            };
            let expression = &body[..end];
            let (name, default) = match expression.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (expression, None),
            };
            if !valid_var_name(name) {
                return Err(InterpolationError::BadName(expression.to_owned()));
            }
            match (vars.var(name), default) {
                (Some(value), Some(default)) if value.is_empty() => out.push_str(default),
                (Some(value), _) => out.push_str(&value),
                (None, Some(default)) => out.push_str(default),
                (None, None) => return Err(InterpolationError::Unset(name.to_owned())),
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Each `${...}` reference in `input` that expands to something, as written and as
/// expanded, so that a message can put the written form back in place of a value.
pub(crate) fn references(input: &str, vars: &dyn Vars) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{')
            && let Some(end) = body.find('}')
        {
            let written = &rest[at..at + 2 + end + 1];
            if let Ok(expanded) = interpolate(written, vars)
                && !expanded.is_empty()
            {
                found.push((written.to_owned(), expanded));
            }
            rest = &body[end + 1..];
        } else {
            rest = after;
        }
    }
    found
}

fn valid_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn interpolation_expands_defaults_and_escapes() {
        let env = vars(&[("SET", "v"), ("EMPTY", "")]);
        assert_eq!(interpolate("a${SET}b", &env).unwrap(), "avb");
        assert_eq!(interpolate("${UNSET:-d}", &env).unwrap(), "d");
        assert_eq!(interpolate("${EMPTY:-d}", &env).unwrap(), "d");
        assert_eq!(interpolate("${EMPTY}", &env).unwrap(), "");
        assert_eq!(
            interpolate("$$HOME $5 ${SET:-}", &env).unwrap(),
            "$HOME $5 v"
        );
        assert_eq!(interpolate("${UNSET:-}", &env).unwrap(), "");
    }

    #[test]
    fn references_pair_each_variable_as_written_with_its_value() {
        let env = vars(&[("A", "alpha"), ("EMPTY", "")]);
        assert_eq!(
            references("x${A}y$${A}${EMPTY}${B:-dflt}${NOPE}", &env),
            vec![
                ("${A}".to_owned(), "alpha".to_owned()),
                ("${B:-dflt}".to_owned(), "dflt".to_owned()),
            ]
        );
    }

    #[test]
    fn interpolation_errors_name_the_variable() {
        let env = vars(&[]);
        let err = interpolate("${MISSING}", &env).unwrap_err().to_string();
        assert!(err.contains("`MISSING` is not set"), "{err}");
        assert!(
            interpolate("${OPEN", &env)
                .unwrap_err()
                .to_string()
                .contains("not closed")
        );
        assert!(
            interpolate("${1BAD}", &env)
                .unwrap_err()
                .to_string()
                .contains("not a variable")
        );
    }
}

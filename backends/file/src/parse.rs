//! Turning a secrets file into entries. Every error here reports a position and a
//! reason, never file content: parser messages can quote input, and the input is
//! secrets.

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use std::collections::BTreeMap;
use std::fmt;
use vaultbridge_backend_core::SecretValue;
use zeroize::Zeroize;

/// One named entry of a secrets file.
#[derive(Debug)]
pub(crate) enum Entry {
    Value(SecretValue),
    /// A key/value secret. Kept as separate values so that picking one key copies no
    /// other secret.
    Map(BTreeMap<String, SecretValue>),
}

pub(crate) type Entries = BTreeMap<String, Entry>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    Yaml,
    Json,
    Dotenv,
}

impl FileFormat {
    pub fn name(self) -> &'static str {
        match self {
            Self::Yaml => "YAML",
            Self::Json => "JSON",
            Self::Dotenv => "dotenv",
        }
    }
}

pub(crate) fn parse(format: FileFormat, text: &str) -> Result<Entries, String> {
    match format {
        FileFormat::Yaml => parse_yaml(text),
        FileFormat::Json => parse_json(text),
        FileFormat::Dotenv => parse_dotenv(text),
    }
}

const QUOTE_HINT: &str = "YAML would read it as a number, boolean or null and change it; \
                          put the value in quotes";

fn parse_yaml(text: &str) -> Result<Entries, String> {
    let mut options = serde_saphyr::Options::default();
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::Error;
    // Room for very large secrets files; the default stops at 250,000 nodes. The
    // guard against YAML bombs (aliases, depth) stays.
    let mut budget = serde_saphyr::Budget::default();
    budget.max_nodes = 10_000_000;
    budget.max_events = 20_000_000;
    options.budget = Some(budget);
    let parsed: Option<BTreeMap<String, Entry>> =
        serde_saphyr::from_str_with_options(text, options).map_err(|err| {
            let position = err
                .location()
                .map(|at| format!(" at line {}, column {}", at.line(), at.column()))
                .unwrap_or_default();
            // Our own visitor messages are written to be safe; anything else from the
            // parser is summarised rather than quoted.
            let reason = match err.without_snippet() {
                serde_saphyr::Error::Message { msg, .. } if msg.starts_with(SAFE_MARK) => {
                    msg.trim_start_matches(SAFE_MARK).to_owned()
                }
                serde_saphyr::Error::DuplicateMappingKey { .. } => {
                    "an entry or key is defined twice".to_owned()
                }
                _ => "not valid YAML of the expected shape (name: value, or name: {key: value})"
                    .to_owned(),
            };
            format!("{reason}{position}")
        })?;
    Ok(parsed.unwrap_or_default())
}

/// Prefix for messages written here, which never contain file content.
const SAFE_MARK: &str = "\u{1}vb:";

fn safe_error<E: de::Error>(message: impl fmt::Display) -> E {
    E::custom(format_args!("{SAFE_MARK}{message}"))
}

impl<'de> Deserialize<'de> for Entry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(EntryVisitor)
    }
}

struct EntryVisitor;

impl<'de> Visitor<'de> for EntryVisitor {
    type Value = Entry;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string value or a map of string keys to string values")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Entry, E> {
        Ok(Entry::Value(SecretValue::from(text)))
    }

    fn visit_string<E: de::Error>(self, text: String) -> Result<Entry, E> {
        Ok(Entry::Value(SecretValue::from(text)))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Entry, E> {
        Err(safe_error(QUOTE_HINT))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Entry, E> {
        Err(safe_error(QUOTE_HINT))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Entry, E> {
        Err(safe_error(QUOTE_HINT))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Entry, E> {
        Err(safe_error(QUOTE_HINT))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Entry, E> {
        Err(safe_error(
            "the entry has no value; write an empty string as \"\" if that is intended",
        ))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<Entry, A::Error> {
        Err(safe_error(
            "lists are not supported; use name: value or name: {key: value}",
        ))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Entry, A::Error> {
        let mut map = BTreeMap::new();
        while let Some(key) = access.next_key::<String>()? {
            let FieldValue(value) = access.next_value()?;
            if map.insert(key, value).is_some() {
                return Err(safe_error("a key is defined twice in one entry"));
            }
        }
        Ok(Entry::Map(map))
    }
}

/// A value inside a key/value entry: text only, one level deep.
struct FieldValue(SecretValue);

impl<'de> Deserialize<'de> for FieldValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match deserializer.deserialize_any(EntryVisitor)? {
            Entry::Value(value) => Ok(Self(value)),
            Entry::Map(_) => Err(safe_error(
                "nested maps are not supported; values inside an entry must be strings",
            )),
        }
    }
}

fn parse_json(text: &str) -> Result<Entries, String> {
    let mut check = serde_json::Deserializer::from_str(text);
    if let Err(err) = de::DeserializeSeed::deserialize(Unique(None), &mut check) {
        let message = err.to_string();
        if let Some(safe) = message.strip_prefix(SAFE_MARK) {
            return Err(safe.to_owned());
        }
    }
    let mut document: serde_json::Value = serde_json::from_str(text).map_err(|err| {
        format!(
            "not valid JSON at line {}, column {}",
            err.line(),
            err.column()
        )
    })?;
    let entries = json_entries(&document);
    vaultbridge_backend_core::wipe_json(&mut document);
    entries
}

/// Walks a JSON document only to refuse a name or key written twice: serde_json keeps
/// the last silently, so a stale value left above an edit would hide the edit (the
/// YAML parser refuses the same). Messages name the entry and key, never a value.
struct Unique<'a>(Option<&'a str>);

impl<'de> de::DeserializeSeed<'de> for Unique<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Unique<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<(), A::Error> {
        let mut seen = std::collections::BTreeSet::new();
        while let Some(key) = access.next_key::<String>()? {
            if seen.contains(&key) {
                return Err(safe_error(match self.0 {
                    None => format!("entry `{key}` is defined twice"),
                    Some(entry) => format!("key `{key}` of entry `{entry}` is defined twice"),
                }));
            }
            access.next_value_seed(Unique(Some(self.0.unwrap_or(&key))))?;
            seen.insert(key);
        }
        Ok(())
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut access: A) -> Result<(), A::Error> {
        while access.next_element::<de::IgnoredAny>()?.is_some() {}
        Ok(())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

fn json_entries(document: &serde_json::Value) -> Result<Entries, String> {
    use serde_json::Value;
    let Value::Object(object) = document else {
        return Err("the top level must be a JSON object of name -> value".to_owned());
    };
    let mut entries = Entries::new();
    for (name, value) in object {
        let entry = match value {
            Value::String(text) => Entry::Value(SecretValue::from(text.as_str())),
            Value::Object(fields) => {
                let mut map = BTreeMap::new();
                for (key, field) in fields {
                    let field = match field {
                        Value::String(text) => SecretValue::from(text.as_str()),
                        Value::Number(_) | Value::Bool(_) => SecretValue::from(field.to_string()),
                        _ => {
                            return Err(format!(
                                "key `{key}` of entry `{name}` must be a string, number or boolean"
                            ));
                        }
                    };
                    map.insert(key.clone(), field);
                }
                Entry::Map(map)
            }
            Value::Number(_) | Value::Bool(_) => Entry::Value(SecretValue::from(value.to_string())),
            Value::Null | Value::Array(_) => {
                return Err(format!(
                    "entry `{name}` must be a string or an object of strings"
                ));
            }
        };
        entries.insert(name.clone(), entry);
    }
    Ok(entries)
}

/// dotenv, written by hand because the common crates expand `$VAR` inside values,
/// which would corrupt any token that contains a `$`. Rules:
/// `[export ]NAME=value`; `#` starts a comment line; single quotes are literal; double
/// quotes understand `\n \r \t \" \\ \$`; both may span lines (PEM keys). An unquoted
/// value runs to the end of the line or to ` #` (an inline comment), and keeps its
/// trailing spaces: trimming is the definition's policy, not the file's.
fn parse_dotenv(text: &str) -> Result<Entries, String> {
    let mut entries = Entries::new();
    let mut first_seen: BTreeMap<String, usize> = BTreeMap::new();
    let lines: Vec<&str> = text.split('\n').collect();
    let mut index = 0;
    while index < lines.len() {
        let line_number = index + 1;
        let line = lines[index].strip_suffix('\r').unwrap_or(lines[index]);
        index += 1;
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let statement = trimmed
            .strip_prefix("export ")
            .unwrap_or(trimmed)
            .trim_start();
        let Some((name, rest)) = statement.split_once('=') else {
            return Err(format!("line {line_number}: expected NAME=value"));
        };
        let name = name.trim_end();
        if !is_dotenv_name(name) {
            return Err(format!(
                "line {line_number}: a name must be letters, digits, `_`, `.` or `-`, not starting with a digit"
            ));
        }
        let rest = rest.trim_start_matches([' ', '\t']);
        let mut value = match rest.chars().next() {
            Some(quote @ ('\'' | '"')) => {
                let (value, consumed) = quoted_value(&lines, index - 1, rest, quote, line_number)?;
                index += consumed;
                value
            }
            _ => unquoted_value(rest).to_owned(),
        };
        if let Some(first) = first_seen.insert(name.to_owned(), line_number) {
            value.zeroize();
            return Err(format!(
                "line {line_number}: `{name}` is defined twice (first on line {first})"
            ));
        }
        entries.insert(name.to_owned(), Entry::Value(SecretValue::from(value)));
    }
    Ok(entries)
}

fn is_dotenv_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn unquoted_value(rest: &str) -> &str {
    let mut previous_blank = false;
    for (at, c) in rest.char_indices() {
        if c == '#' && previous_blank {
            return rest[..at].trim_end_matches([' ', '\t']);
        }
        previous_blank = c == ' ' || c == '\t';
    }
    rest
}

/// Reads a quoted value starting at `rest` (which begins with the quote) on line
/// `line_index`, continuing onto later lines until the closing quote. Returns the value
/// and how many extra lines it used.
fn quoted_value(
    lines: &[&str],
    line_index: usize,
    rest: &str,
    quote: char,
    line_number: usize,
) -> Result<(String, usize), String> {
    let mut value = String::new();
    let mut extra_lines = 0;
    let mut current = &rest[1..];
    loop {
        let mut chars = current.char_indices();
        while let Some((at, c)) = chars.next() {
            if c == quote {
                let tail = current[at + 1..].trim();
                if !(tail.is_empty() || tail.starts_with('#')) {
                    value.zeroize();
                    return Err(format!(
                        "line {}: unexpected text after the closing quote",
                        line_number + extra_lines
                    ));
                }
                return Ok((value, extra_lines));
            }
            if c == '\\' && quote == '"' {
                match chars.next().map(|(_, escaped)| escaped) {
                    Some('n') => value.push('\n'),
                    Some('r') => value.push('\r'),
                    Some('t') => value.push('\t'),
                    Some(escaped @ ('"' | '\\' | '$')) => value.push(escaped),
                    Some(other) => {
                        value.push('\\');
                        value.push(other);
                    }
                    None => value.push('\\'),
                }
                continue;
            }
            value.push(c);
        }
        extra_lines += 1;
        let Some(next) = lines.get(line_index + extra_lines) else {
            value.zeroize();
            return Err(format!(
                "line {line_number}: the {} quote is never closed",
                if quote == '"' { "double" } else { "single" }
            ));
        };
        // The line break inside a quoted value is part of the value; a CRLF file's CR
        // is kept as it is written.
        value.push('\n');
        current = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(entries: &Entries, name: &str) -> Vec<u8> {
        match entries.get(name) {
            Some(Entry::Value(value)) => value.expose().to_vec(),
            other => panic!("{name}: {other:?}"),
        }
    }

    #[test]
    fn dotenv_handles_quotes_comments_export_and_keeps_dollars() {
        let text = "# comment\nexport A=plain$VALUE\nB = 'single $X \\n'\nC=\"dq\\n\\\"x\\\" \\$Y\"\nD=trailing  \nE=val # note\nF=\"line1\nline2\"\r\nG=\n";
        let entries = parse_dotenv(text).unwrap();
        assert_eq!(value(&entries, "A"), b"plain$VALUE");
        assert_eq!(value(&entries, "B"), b"single $X \\n");
        assert_eq!(value(&entries, "C"), b"dq\n\"x\" $Y");
        assert_eq!(value(&entries, "D"), b"trailing  ");
        assert_eq!(value(&entries, "E"), b"val");
        assert_eq!(value(&entries, "F"), b"line1\nline2");
        assert_eq!(value(&entries, "G"), b"");
    }

    #[test]
    fn dotenv_crlf_line_endings_are_not_part_of_values() {
        let entries = parse_dotenv("A=one\r\nB=two\r\n").unwrap();
        assert_eq!(value(&entries, "A"), b"one");
        assert_eq!(value(&entries, "B"), b"two");
    }

    #[test]
    fn dotenv_errors_give_the_line_and_never_the_content() {
        let err = parse_dotenv("A=1\nthis-is-secret-text\n").unwrap_err();
        assert_eq!(err, "line 2: expected NAME=value");
        let err = parse_dotenv("A=1\nA=hunter2\n").unwrap_err();
        assert!(err.contains("line 2") && err.contains("line 1"), "{err}");
        assert!(!err.contains("hunter2"));
        let err = parse_dotenv("A=\"never closed hunter2\n").unwrap_err();
        assert!(
            err.contains("never closed") && !err.contains("hunter2"),
            "{err}"
        );
    }

    #[test]
    fn yaml_reads_values_and_maps() {
        let entries = parse_yaml("a: one\nb:\n  user: u\n  token: \"t \"\n").unwrap();
        assert_eq!(value(&entries, "a"), b"one");
        let Some(Entry::Map(map)) = entries.get("b") else {
            panic!("b is a map")
        };
        assert_eq!(map["token"].expose(), b"t ");
        assert!(parse_yaml("").unwrap().is_empty());
    }

    #[test]
    fn yaml_unquoted_numbers_and_booleans_must_be_quoted() {
        let err = parse_yaml("a: 012345\n").unwrap_err();
        assert!(err.contains("quotes") && err.contains("line 1"), "{err}");
        assert!(!err.contains("012345"), "{err}");
        let err = parse_yaml("a:\n  port: 5432\n").unwrap_err();
        assert!(err.contains("quotes") && err.contains("line 2"), "{err}");
    }

    #[test]
    fn yaml_syntax_errors_never_quote_the_file() {
        let err = parse_yaml("a: \"hunter2-secret\nb: [\n").unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(err.contains("line"), "{err}");
        let err = parse_yaml("a: x\na: hunter2\n").unwrap_err();
        assert!(err.contains("twice") && !err.contains("hunter2"), "{err}");
    }

    #[test]
    fn json_names_and_keys_written_twice_are_refused_without_their_values() {
        let err = parse_json(r#"{"a":"first-hunter2","b":"x","a":"second-hunter2"}"#).unwrap_err();
        assert_eq!(err, "entry `a` is defined twice at line 1 column 32");
        let err =
            parse_json(r#"{"jira":{"token":"old-hunter2","token":"new-hunter2"}}"#).unwrap_err();
        assert!(
            err.starts_with("key `token` of entry `jira` is defined twice at line 1"),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
        // The same key in two entries is fine.
        let entries = parse_json(r#"{"a":{"k":"1"},"b":{"k":"2"}}"#).unwrap();
        assert_eq!(entries.len(), 2);
    }

    #[test]
    fn json_reads_values_maps_and_rejects_nesting() {
        let entries = parse_json(r#"{"a":"one","b":{"token":"t","port":5432}}"#).unwrap();
        assert_eq!(value(&entries, "a"), b"one");
        let Some(Entry::Map(map)) = entries.get("b") else {
            panic!("b is a map")
        };
        assert_eq!(map["port"].expose(), b"5432");
        let err = parse_json(r#"{"a":{"b":{"c":"hunter2"}}}"#).unwrap_err();
        assert!(err.contains("`b`") && !err.contains("hunter2"), "{err}");
        let err = parse_json("{\"a\": \"hunter2").unwrap_err();
        assert!(err.starts_with("not valid JSON at line 1"), "{err}");
    }
}

//! A section of the config kept as a located tree until its reader is known.
//!
//! A backend's settings depend on its `type`, which may be written after them, so the
//! daemon cannot pick the backend's config type while the YAML is being read. serde's
//! own buffering (tagged enums, `flatten`) drops the locations errors need; a [`Node`]
//! keeps them, and is itself a serde `Deserializer`, so each backend's config type is an
//! ordinary `#[derive(Deserialize)]` struct of [`Text`] fields.

use super::text::{Location, TEXT_NEWTYPE, Text};
use serde::de::value::{StringDeserializer, U32Deserializer};
use serde::de::{
    self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};
use serde::{Deserialize, forward_to_deserialize_any};
use serde_saphyr::Spanned;
use std::cell::RefCell;
use std::fmt;

/// A located YAML value: a scalar kept as written, a map, a list or nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub value: NodeValue,
    pub at: Location,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeValue {
    Null,
    Scalar(String),
    Map(Vec<(Text, Node)>),
    List(Vec<Node>),
}

impl Node {
    /// This node as a single value; `None` for a map or a list.
    pub fn as_text(&self) -> Option<Text> {
        match &self.value {
            NodeValue::Scalar(text) => Some(Text::new(text.clone(), self.at)),
            NodeValue::Null => Some(Text::new("", self.at)),
            NodeValue::Map(_) | NodeValue::List(_) => None,
        }
    }

    /// The value under `key`, when this is a map that has it.
    pub fn get(&self, key: &str) -> Option<(&Text, &Node)> {
        match &self.value {
            NodeValue::Map(entries) => entries
                .iter()
                .find(|(name, _)| name.value == key)
                .map(|(name, node)| (name, node)),
            _ => None,
        }
    }
}

/// The newtype name by which [`Node`] asks a deserializer for its location. The YAML
/// deserializer passes it through (to serde-saphyr's span protocol); a [`Node`] read
/// from a node (a backend setting kept as a tree) gets its location from the node.
/// serde-saphyr's `Spanned` cannot be used there: it peeks at a map's first key as a
/// plain string, and the key would lose its location.
const NODE_NEWTYPE: &str = "vaultbridge::config::Node";

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_newtype_struct(NODE_NEWTYPE, LocatedNodeVisitor)
    }
}

struct LocatedNodeVisitor;

impl<'de> Visitor<'de> for LocatedNodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value, a map or a list")
    }

    /// Straight from the YAML file.
    fn visit_newtype_struct<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        let spanned = Spanned::<NodeValue>::deserialize(deserializer)?;
        Ok(Node {
            at: Location::from(&spanned.referenced),
            value: spanned.value,
        })
    }

    /// From a node: line, column, value.
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
        Ok(Node {
            value,
            at: Location { line, column },
        })
    }
}

impl<'de> Deserialize<'de> for NodeValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

/// Scalars arrive typed (the YAML reader infers numbers and booleans for an untyped
/// value); they are turned back into text because every setting is read as [`Text`].
/// The parse options keep leading zeros and underscores as written.
impl<'de> Visitor<'de> for NodeVisitor {
    type Value = NodeValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value, a map or a list")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
        Ok(NodeValue::Scalar(value.to_owned()))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Self::Value, E> {
        Ok(NodeValue::Scalar(value))
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Self::Value, E> {
        Ok(NodeValue::Scalar(value.to_string()))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
        Ok(NodeValue::Scalar(value.to_string()))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
        Ok(NodeValue::Scalar(value.to_string()))
    }

    fn visit_i128<E: de::Error>(self, value: i128) -> Result<Self::Value, E> {
        Ok(NodeValue::Scalar(value.to_string()))
    }

    fn visit_u128<E: de::Error>(self, value: u128) -> Result<Self::Value, E> {
        Ok(NodeValue::Scalar(value.to_string()))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Self::Value, E> {
        Ok(NodeValue::Scalar(value.to_string()))
    }

    fn visit_char<E: de::Error>(self, value: char) -> Result<Self::Value, E> {
        Ok(NodeValue::Scalar(value.to_string()))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(NodeValue::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(NodeValue::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Text>()? {
            entries.push((key, map.next_value::<Node>()?));
        }
        Ok(NodeValue::Map(entries))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(NodeValue::List(items))
    }
}

/// A field a config type does not have, found while reading a [`Node`]. It is collected
/// rather than returned as an error, so that every unknown field is reported at once and
/// the fields that are known are still checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UnknownField {
    pub path: String,
    pub field: String,
    pub at: Location,
    /// The fields the type has.
    pub expected: &'static [&'static str],
}

/// What stopped a [`Node`] from being read as a config type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NodeError {
    pub message: String,
    pub path: String,
    pub at: Location,
    located: bool,
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for NodeError {}

impl de::Error for NodeError {
    fn custom<T: fmt::Display>(message: T) -> Self {
        Self {
            message: message.to_string(),
            path: String::new(),
            at: Location::START,
            located: false,
        }
    }
}

impl NodeError {
    /// The innermost node an error passes through is where it was written.
    fn locate(mut self, at: Location, path: &str) -> Self {
        if !self.located {
            self.at = at;
            self.path = path.to_owned();
            self.located = true;
        }
        self
    }
}

/// Reads a [`Node`] as `T`. Fields named in `skip` at the top level are left to the
/// caller (a backend's `type`); fields `T` does not have are collected in `unknown`.
pub(crate) fn read_node<T: de::DeserializeOwned>(
    node: &Node,
    path: &str,
    skip: &[&str],
    unknown: &mut Vec<UnknownField>,
) -> Result<T, NodeError> {
    let collected = RefCell::new(Vec::new());
    let result = T::deserialize(NodeDeserializer {
        node,
        path: path.to_owned(),
        skip,
        unknown: &collected,
    });
    unknown.append(&mut collected.into_inner());
    result
}

struct NodeDeserializer<'a> {
    node: &'a Node,
    path: String,
    skip: &'a [&'a str],
    unknown: &'a RefCell<Vec<UnknownField>>,
}

impl<'a> NodeDeserializer<'a> {
    fn child(&self, key: &str, node: &'a Node) -> Self {
        NodeDeserializer {
            node,
            path: if self.path.is_empty() {
                key.to_owned()
            } else {
                format!("{}.{key}", self.path)
            },
            skip: &[],
            unknown: self.unknown,
        }
    }

    fn entries(
        &self,
        fields: Option<&'static [&'static str]>,
    ) -> Result<Vec<&'a (Text, Node)>, NodeError> {
        let NodeValue::Map(entries) = &self.node.value else {
            return Err(self.error("expected a map of settings"));
        };
        let mut kept = Vec::with_capacity(entries.len());
        for entry in entries {
            let name = entry.0.value.as_str();
            if self.skip.contains(&name) {
                continue;
            }
            if let Some(expected) = fields
                && !expected.contains(&name)
            {
                self.unknown.borrow_mut().push(UnknownField {
                    path: self.child(name, &entry.1).path,
                    field: name.to_owned(),
                    at: entry.0.at,
                    expected,
                });
                continue;
            }
            kept.push(entry);
        }
        Ok(kept)
    }

    fn error(&self, message: &str) -> NodeError {
        <NodeError as de::Error>::custom(message).locate(self.node.at, &self.path)
    }

    fn visit_entries<V: Visitor<'a>>(
        self,
        fields: Option<&'static [&'static str]>,
        visitor: V,
    ) -> Result<V::Value, NodeError> {
        let entries = self.entries(fields)?;
        let at = self.node.at;
        let path = self.path.clone();
        visitor
            .visit_map(Entries {
                parent: self,
                entries: entries.into_iter(),
                value: None,
            })
            .map_err(|err| err.locate(at, &path))
    }
}

impl<'de> Deserializer<'de> for NodeDeserializer<'de> {
    type Error = NodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NodeError> {
        let at = self.node.at;
        let path = self.path.clone();
        match &self.node.value {
            NodeValue::Null => visitor.visit_unit(),
            NodeValue::Scalar(text) => visitor.visit_str(text),
            NodeValue::Map(_) => return self.visit_entries(None, visitor),
            NodeValue::List(items) => visitor.visit_seq(Items {
                parent: &self,
                items: items.iter().enumerate(),
            }),
        }
        .map_err(|err| err.locate(at, &path))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NodeError> {
        match self.node.value {
            NodeValue::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, NodeError> {
        if name == NODE_NEWTYPE {
            let at = self.node.at;
            return visitor.visit_seq(NodeParts {
                at,
                node: Some(self),
                next: 0,
            });
        }
        if name != TEXT_NEWTYPE {
            return visitor.visit_newtype_struct(self);
        }
        let value = match &self.node.value {
            NodeValue::Scalar(text) => text.clone(),
            NodeValue::Null => String::new(),
            NodeValue::Map(_) | NodeValue::List(_) => {
                return Err(self.error(
                    "expected a single value (text, number or duration), not a list or map",
                ));
            }
        };
        visitor
            .visit_seq(TextParts {
                at: self.node.at,
                value: Some(value),
                next: 0,
            })
            .map_err(|err| err.locate(self.node.at, &self.path))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, NodeError> {
        self.visit_entries(Some(fields), visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NodeError> {
        self.visit_entries(None, visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NodeError> {
        visitor.visit_unit()
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct enum identifier
    }
}

struct Entries<'a> {
    parent: NodeDeserializer<'a>,
    entries: std::vec::IntoIter<&'a (Text, Node)>,
    value: Option<&'a (Text, Node)>,
}

impl<'de> MapAccess<'de> for Entries<'de> {
    type Error = NodeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, NodeError> {
        let Some(entry) = self.entries.next() else {
            return Ok(None);
        };
        self.value = Some(entry);
        seed.deserialize(KeyDeserializer(&entry.0))
            .map(Some)
            .map_err(|err| {
                err.locate(
                    entry.0.at,
                    &self.parent.child(&entry.0.value, &entry.1).path,
                )
            })
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, NodeError> {
        let Some((name, node)) = self.value.take() else {
            return Err(self.parent.error("a value was asked for before its key"));
        };
        seed.deserialize(self.parent.child(&name.value, node))
    }
}

/// A map key, for a reader that wants it located (a [`Text`], as a [`Node`] read inside
/// a node keeps its keys) or plain (a field name, a `String`).
struct KeyDeserializer<'a>(&'a Text);

impl<'de> Deserializer<'de> for KeyDeserializer<'_> {
    type Error = NodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NodeError> {
        visitor.visit_string(self.0.value.clone())
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, NodeError> {
        if name != TEXT_NEWTYPE {
            return visitor.visit_newtype_struct(self);
        }
        visitor.visit_seq(TextParts {
            at: self.0.at,
            value: Some(self.0.value.clone()),
            next: 0,
        })
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

struct Items<'s, 'a> {
    parent: &'s NodeDeserializer<'a>,
    items: std::iter::Enumerate<std::slice::Iter<'a, Node>>,
}

impl<'de> SeqAccess<'de> for Items<'_, 'de> {
    type Error = NodeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, NodeError> {
        match self.items.next() {
            Some((index, node)) => seed
                .deserialize(self.parent.child(&index.to_string(), node))
                .map(Some),
            None => Ok(None),
        }
    }
}

/// [`Node`]'s side of the protocol when read from a node: line, column, then the value.
struct NodeParts<'a> {
    at: Location,
    node: Option<NodeDeserializer<'a>>,
    next: u8,
}

impl<'de> SeqAccess<'de> for NodeParts<'de> {
    type Error = NodeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, NodeError> {
        self.next += 1;
        match self.next {
            1 => seed
                .deserialize(U32Deserializer::new(self.at.line))
                .map(Some),
            2 => seed
                .deserialize(U32Deserializer::new(self.at.column))
                .map(Some),
            _ => match self.node.take() {
                Some(node) => seed.deserialize(node).map(Some),
                None => Ok(None),
            },
        }
    }
}

/// [`Text`]'s side of the protocol: line, column, then the value.
struct TextParts {
    at: Location,
    value: Option<String>,
    next: u8,
}

impl<'de> SeqAccess<'de> for TextParts {
    type Error = NodeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, NodeError> {
        self.next += 1;
        match self.next {
            1 => seed
                .deserialize(IntoDeserializer::<NodeError>::into_deserializer(
                    self.at.line,
                ))
                .map(Some),
            2 => seed
                .deserialize(U32Deserializer::new(self.at.column))
                .map(Some),
            _ => match self.value.take() {
                Some(value) => seed.deserialize(StringDeserializer::new(value)).map(Some),
                None => Ok(None),
            },
        }
    }
}

#[cfg(test)]
#[path = "node_tests.rs"]
mod tests;

//! Messages as serde sees them: hand-written so that decoding borrows field
//! names from the input, keeps unknown fields, refuses duplicates and names
//! the field in every error. What is done per listed field comes from the
//! field list in [`fields`](super::fields).

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::fields::{Fields, Slots};
use super::{Message, MessageType};

impl Serialize for MessageType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for MessageType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Self::parse(Text::deserialize(deserializer)?.as_str()))
    }
}

impl Serialize for Message {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let fields = &*self.fields;
        let mut map = serializer.serialize_map(None)?;
        fields.serialize_known(&mut map)?;
        for (name, value) in &fields.extra {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Message {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(deserializer
            .deserialize_map(FieldsVisitor)?
            .into_message(None))
    }
}

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(FieldsVisitor)
    }
}

struct FieldsVisitor;

impl<'de> Visitor<'de> for FieldsVisitor {
    type Value = Fields;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a message object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
        let mut slots = Slots::default();
        let mut extra = Map::new();
        while let Some(key) = map.next_key::<Text<'de>>()? {
            if !slots.read(key.as_str(), &mut map)? {
                let other = key.into_string();
                if extra.contains_key(&other) {
                    return Err(de::Error::custom(format_args!("duplicate field `{other}`")));
                }
                let value = map.next_value::<Value>()?;
                extra.insert(other, value);
            }
        }
        slots.finish(extra)
    }
}

/// A string borrowed from the input unless it has escapes: field names and
/// the message type are read on every decode, and serde's `Cow<str>` always
/// allocates.
enum Text<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl Text<'_> {
    fn as_str(&self) -> &str {
        match self {
            Text::Borrowed(text) => text,
            Text::Owned(text) => text,
        }
    }

    fn into_string(self) -> String {
        match self {
            Text::Borrowed(text) => text.to_owned(),
            Text::Owned(text) => text,
        }
    }
}

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;

        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Text<'de>, E> {
                Ok(Text::Borrowed(text))
            }

            fn visit_str<E>(self, text: &str) -> Result<Text<'de>, E> {
                Ok(Text::Owned(text.to_owned()))
            }

            fn visit_string<E>(self, text: String) -> Result<Text<'de>, E> {
                Ok(Text::Owned(text))
            }

            fn visit_borrowed_bytes<E: de::Error>(self, bytes: &'de [u8]) -> Result<Text<'de>, E> {
                std::str::from_utf8(bytes)
                    .map(Text::Borrowed)
                    .map_err(|_| E::invalid_value(de::Unexpected::Bytes(bytes), &self))
            }

            fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Text<'de>, E> {
                std::str::from_utf8(bytes)
                    .map(|text| Text::Owned(text.to_owned()))
                    .map_err(|_| E::invalid_value(de::Unexpected::Bytes(bytes), &self))
            }
        }

        deserializer.deserialize_str(TextVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Result;
    use serde_json::json;

    fn decode(text: &str) -> Result<Message> {
        Message::from_json(text.as_bytes())
    }

    #[test]
    fn explicit_nulls_survive_a_round_trip() {
        let message =
            decode(r#"{"id":"1","type":"statement","sender":"s","content":null,"recipient":null}"#)
                .unwrap();
        assert_eq!(message.content(), Some(&Value::Null));
        assert_eq!(message.recipient(), None);
        let back: Value = serde_json::from_slice(&message.to_json().unwrap()).unwrap();
        assert_eq!(
            back,
            json!({"id":"1","type":"statement","sender":"s","content":null})
        );
    }

    #[test]
    fn escaped_keys_are_the_same_fields() {
        let message =
            decode(r#"{"typ\u0065":"statement","sender":"a","\u0069d":"m1","x\ty":1}"#).unwrap();
        assert_eq!(message.id(), "m1");
        assert_eq!(message.kind(), &MessageType::Statement);
        assert_eq!(message.extra().get("x\ty"), Some(&json!(1)));
        let e = decode(r#"{"type":"statement","sender":"a","\u0073ender":"b"}"#).unwrap_err();
        assert!(e.to_string().contains("duplicate field `sender`"), "{e}");
        let message = decode(r#"{"type":"\u0072equest","sender":"a"}"#).unwrap();
        assert_eq!(message.kind(), &MessageType::Request);
    }

    #[test]
    fn owned_input_decodes_the_same() {
        let value = json!({"type": "request", "sender": "a", "id": "m1", "x": 1});
        let message: Message = serde_json::from_value(value).unwrap();
        assert_eq!(message.id(), "m1");
        assert_eq!(message.kind(), &MessageType::Request);
        assert_eq!(message.extra().get("x"), Some(&json!(1)));
    }

    #[test]
    fn errors_name_the_field() {
        let e = decode(r#"{"type":"statement","sender":5}"#).unwrap_err();
        assert!(e.to_string().contains("field `sender`"), "{e}");
        assert_eq!(e.to_string().matches(" at line ").count(), 1, "{e}");
        let e = decode(r#"{"type":"statement","sender":"a","sender":"b"}"#).unwrap_err();
        assert!(e.to_string().contains("duplicate field `sender`"), "{e}");
    }
}

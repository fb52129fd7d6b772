//! Messages as serde sees them: hand-written so that decoding borrows field
//! names from the input, keeps unknown fields in order, refuses duplicates
//! and names the field in every error.

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::{Fields, Message, MessageType};

impl Serialize for MessageType {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for MessageType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        Ok(Self::parse(Text::deserialize(deserializer)?.as_str()))
    }
}

impl Serialize for Message {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let f = &*self.fields;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("id", &f.id)?;
        map.serialize_entry("type", &f.kind)?;
        map.serialize_entry("sender", &f.sender)?;
        if let Some(v) = &f.recipient {
            map.serialize_entry("recipient", v)?;
        }
        if let Some(v) = &f.content {
            map.serialize_entry("content", v)?;
        }
        if let Some(v) = &f.requires_sync {
            map.serialize_entry("requiresSync", v)?;
        }
        if let Some(v) = &f.timestamp {
            map.serialize_entry("timestamp", v)?;
        }
        if let Some(v) = &f.client_id {
            map.serialize_entry("clientId", v)?;
        }
        if let Some(v) = &f.mission_id {
            map.serialize_entry("missionId", v)?;
        }
        if let Some(v) = &f.visibility {
            map.serialize_entry("visibility", v)?;
        }
        if let Some(v) = &f.data {
            map.serialize_entry("data", v)?;
        }
        for (name, value) in &f.extra {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Message {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        Ok(deserializer
            .deserialize_map(FieldsVisitor)?
            .into_message(None))
    }
}

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        deserializer.deserialize_map(FieldsVisitor)
    }
}

struct FieldsVisitor;

/// Reads one field's value, refusing a second occurrence and naming the field
/// in type errors. Optional fields are read as `Option<Option<T>>`: the outer
/// level catches duplicates, the inner one lets TypeScript senders write
/// `null` for "absent". `content` and `data` keep an explicit `null`.
fn set_once<'de, A, T>(
    slot: &mut Option<T>,
    name: &str,
    map: &mut A,
) -> std::result::Result<(), A::Error>
where
    A: MapAccess<'de>,
    T: Deserialize<'de>,
{
    if slot.is_some() {
        return Err(de::Error::custom(format_args!("duplicate field `{name}`")));
    }
    let value = map.next_value::<T>().map_err(|e| {
        de::Error::custom(format_args!(
            "field `{name}`: {}",
            strip_position(&e.to_string())
        ))
    })?;
    *slot = Some(value);
    Ok(())
}

/// serde_json appends " at line L column C" to errors; the outer error gets
/// its own position, so the inner one is dropped to avoid saying it twice.
fn strip_position(text: &str) -> &str {
    text.rfind(" at line ").map_or(text, |at| &text[..at])
}

impl<'de> Visitor<'de> for FieldsVisitor {
    type Value = Fields;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a message object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Fields, A::Error> {
        let mut id: Option<String> = None;
        let mut kind: Option<MessageType> = None;
        let mut sender: Option<String> = None;
        let mut recipient: Option<Option<String>> = None;
        let mut content: Option<Value> = None;
        let mut requires_sync: Option<Option<bool>> = None;
        let mut timestamp: Option<Option<String>> = None;
        let mut client_id: Option<Option<String>> = None;
        let mut mission_id: Option<Option<String>> = None;
        let mut visibility: Option<Option<String>> = None;
        let mut data: Option<Value> = None;
        let mut extra = Map::new();

        while let Some(key) = map.next_key::<Text<'de>>()? {
            match key.as_str() {
                "id" => set_once(&mut id, "id", &mut map)?,
                "type" => set_once(&mut kind, "type", &mut map)?,
                "sender" => set_once(&mut sender, "sender", &mut map)?,
                "recipient" => set_once(&mut recipient, "recipient", &mut map)?,
                "content" => set_once(&mut content, "content", &mut map)?,
                "requiresSync" => set_once(&mut requires_sync, "requiresSync", &mut map)?,
                "timestamp" => set_once(&mut timestamp, "timestamp", &mut map)?,
                "clientId" => set_once(&mut client_id, "clientId", &mut map)?,
                "missionId" => set_once(&mut mission_id, "missionId", &mut map)?,
                "visibility" => set_once(&mut visibility, "visibility", &mut map)?,
                "data" => set_once(&mut data, "data", &mut map)?,
                _ => {
                    let other = key.into_string();
                    if extra.contains_key(&other) {
                        return Err(de::Error::custom(format_args!("duplicate field `{other}`")));
                    }
                    let value = map.next_value::<Value>()?;
                    extra.insert(other, value);
                }
            }
        }

        let kind = kind.ok_or_else(|| de::Error::custom("missing field `type`"))?;
        if kind.as_str().is_empty() {
            return Err(de::Error::custom("field `type` must not be empty"));
        }
        let sender = sender.ok_or_else(|| de::Error::custom("missing field `sender`"))?;
        if id.as_deref().is_some_and(str::is_empty) {
            return Err(de::Error::custom("field `id` must not be empty"));
        }
        Ok(Fields {
            id: id.unwrap_or_default(),
            kind,
            sender,
            recipient: recipient.flatten(),
            content,
            requires_sync: requires_sync.flatten(),
            timestamp: timestamp.flatten(),
            client_id: client_id.flatten(),
            mission_id: mission_id.flatten(),
            visibility: visibility.flatten(),
            data,
            extra,
        })
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
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct TextVisitor;

        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E>(self, text: &'de str) -> std::result::Result<Text<'de>, E> {
                Ok(Text::Borrowed(text))
            }

            fn visit_str<E>(self, text: &str) -> std::result::Result<Text<'de>, E> {
                Ok(Text::Owned(text.to_owned()))
            }

            fn visit_string<E>(self, text: String) -> std::result::Result<Text<'de>, E> {
                Ok(Text::Owned(text))
            }

            fn visit_borrowed_bytes<E: de::Error>(
                self,
                bytes: &'de [u8],
            ) -> std::result::Result<Text<'de>, E> {
                std::str::from_utf8(bytes)
                    .map(Text::Borrowed)
                    .map_err(|_| E::invalid_value(de::Unexpected::Bytes(bytes), &self))
            }

            fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> std::result::Result<Text<'de>, E> {
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

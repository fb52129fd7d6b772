//! The Stage7 message and its JSON wire format.
//!
//! A [`Message`] is what every Stage7 service sends: camelCase JSON with an
//! `id`, a [`MessageType`], a `sender`, an optional `recipient` and `content`,
//! and the WebSocket routing fields. Fields this crate does not know are kept
//! and written back unchanged, so a message decoded here and forwarded
//! elsewhere loses nothing.
//!
//! Cloning a message is one reference-count increment: retry and fallback
//! keep a copy of every request.
//!
//! ```
//! use serde_json::json;
//! use stage7_transport::{Message, MessageType};
//!
//! let message = Message::new(MessageType::Request)
//!     .with_recipient("Brain")
//!     .with_content(json!({"prompt": "hi"}))
//!     .with_sync(true);
//! let bytes = message.to_json()?;
//! let decoded = Message::from_json(&bytes)?;
//! assert_eq!(decoded, message);
//! assert_eq!(decoded.kind(), &MessageType::Request);
//! # Ok::<(), stage7_transport::Error>(())
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde_json::{Map, Value};
use tokio::time::Instant;

use crate::error::{Error, Result};

mod codec;
mod fields;
mod message_type;
mod serde;
mod shape;

pub use codec::Codec;
pub(crate) use codec::{APPLICATION_JSON, is_json};
pub use message_type::MessageType;

/// The recipient that reaches every entity, on every route.
pub const BROADCAST: &str = "all";

use fields::{Fields, KNOWN_FIELDS};

/// A Stage7 message. See the [module docs](self) for the wire format.
///
/// Besides its wire fields a message carries a call [`deadline`](Self::deadline)
/// that never goes on the wire: the [`Deadline`](crate::layer::deadline) layer
/// sets it and backends read it (the AMQP backend turns it into the message
/// expiration). It also carries, from the call
/// [metrics](crate::layer::metrics) layer to the deadline layer, the instant
/// the call started, so the stack reads the clock once per call rather than
/// once per layer.
///
/// # Clone
///
/// Cloning shares the fields; the `with_*` and `set_*` methods copy them only
/// when another clone still holds them.
#[derive(Clone)]
pub struct Message {
    fields: Arc<Fields>,
    deadline: Option<Instant>,
    started: Option<Instant>,
}

/// A fresh message id: a UUID v7, so ids sort by creation time (to the
/// millisecond). The random part comes from a thread-local generator rather
/// than the operating system: ids must be unique, not secret, and a system
/// call per message shows on the hot path.
pub fn new_id() -> String {
    let millis = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        });
    let mut random = [0u8; 10];
    random[..8].copy_from_slice(&fastrand::u64(..).to_le_bytes());
    random[8..].copy_from_slice(&fastrand::u16(..).to_le_bytes());
    let id = uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid();
    id.hyphenated()
        .encode_lower(&mut uuid::Uuid::encode_buffer())
        .to_owned()
}

/// The current time as ISO-8601 with milliseconds, as Stage7 stamps messages.
pub fn now_timestamp() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

impl Message {
    /// A message of the given type with a fresh id and nothing else set.
    pub fn new(kind: impl Into<MessageType>) -> Self {
        Self {
            fields: Arc::new(Fields::new(kind.into())),
            deadline: None,
            started: None,
        }
    }

    /// A synchronous [`Request`](MessageType::Request) to `recipient`: the
    /// caller waits for the reply.
    pub fn request(recipient: impl Into<String>, content: Value) -> Self {
        Self::new(MessageType::Request)
            .with_recipient(recipient)
            .with_content(content)
            .with_sync(true)
    }

    /// The reply to this message: type [`Response`](MessageType::Response),
    /// from this message's recipient back to its sender, with the same
    /// mission and client.
    pub fn reply(&self, content: Value) -> Self {
        let f = &self.fields;
        let mut reply = Self::new(MessageType::Response)
            .with_sender(f.recipient.clone().unwrap_or_default())
            .with_recipient(f.sender.clone())
            .with_content(content);
        let r = Arc::make_mut(&mut reply.fields);
        r.mission_id.clone_from(&f.mission_id);
        r.client_id.clone_from(&f.client_id);
        reply
    }

    fn fields_mut(&mut self) -> &mut Fields {
        Arc::make_mut(&mut self.fields)
    }

    /// The payload, taken out of the message: not copied when this is the
    /// only handle on the message, as a handler's message is.
    ///
    /// ```
    /// use serde_json::json;
    /// use stage7_transport::Message;
    ///
    /// let message = Message::request("brain", json!({"step": 7}));
    /// let reply = message.reply(json!(null));
    /// let echo = reply.with_content(message.into_content().unwrap_or_default());
    /// assert_eq!(echo.content(), Some(&json!({"step": 7})));
    /// ```
    pub fn into_content(self) -> Option<Value> {
        match Arc::try_unwrap(self.fields) {
            Ok(fields) => fields.content,
            Err(shared) => shared.content.clone(),
        }
    }

    /// Fields this crate does not name, kept verbatim.
    pub fn extra(&self) -> &Map<String, Value> {
        &self.fields.extra
    }

    /// When the current call must be over, if a deadline was set. Never on
    /// the wire.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Time left until the [`deadline`](Self::deadline), zero once passed.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|deadline| deadline.saturating_duration_since(Instant::now()))
    }

    /// Sets a field this crate does not name.
    ///
    /// # Errors
    ///
    /// [`InvalidMessage`](crate::ErrorKind::InvalidMessage) for the name of
    /// a known field, which has its own setter and cannot be written twice.
    pub fn with_extra(mut self, name: impl Into<String>, value: Value) -> Result<Self> {
        let name = name.into();
        if KNOWN_FIELDS.contains(&name.as_str()) {
            return Err(Error::invalid(format!(
                "`{name}` is a known message field; use its own setter"
            )));
        }
        self.fields_mut().extra.insert(name, value);
        Ok(self)
    }

    /// Sets the call deadline; `None` clears it.
    pub fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.deadline = deadline;
    }

    /// Records when the call carrying this message started.
    pub(crate) fn set_started(&mut self, started: Instant) {
        self.started = Some(started);
    }

    /// Takes the call's start instant, leaving none: it is meant for the one
    /// layer that turns it into a deadline, never for a later call.
    pub(crate) fn take_started(&mut self) -> Option<Instant> {
        self.started.take()
    }

    /// Fills what a sender must set before the message leaves: the sender
    /// (when empty) and the timestamp (when absent). The id is always set.
    pub fn stamp(&mut self, sender: &str) {
        if self.fields.sender.is_empty() || self.fields.timestamp.is_none() {
            let fields = self.fields_mut();
            if fields.sender.is_empty() {
                sender.clone_into(&mut fields.sender);
            }
            if fields.timestamp.is_none() {
                fields.timestamp = Some(now_timestamp());
            }
        }
    }

    /// Encodes to JSON, refusing messages over [`MAX_MESSAGE_SIZE`](crate::defaults::MAX_MESSAGE_SIZE).
    ///
    /// # Errors
    ///
    /// [`TooLarge`](crate::ErrorKind::TooLarge) past the limit.
    pub fn to_json(&self) -> Result<Bytes> {
        Codec::default().encode(self)
    }

    /// Decodes JSON, refusing input over [`MAX_MESSAGE_SIZE`](crate::defaults::MAX_MESSAGE_SIZE).
    ///
    /// # Errors
    ///
    /// [`InvalidMessage`](crate::ErrorKind::InvalidMessage) naming the
    /// problem, or [`TooLarge`](crate::ErrorKind::TooLarge).
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        Codec::default().decode(bytes)
    }
}

impl PartialEq for Message {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.fields, &other.fields) || self.fields == other.fields
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fields = &self.fields;
        let mut d = f.debug_struct("Message");
        d.field("id", &fields.id)
            .field("type", &fields.kind.as_str())
            .field("sender", &fields.sender)
            .field("recipient", &fields.recipient)
            .field("requires_sync", &self.requires_sync());
        if let Some(content) = &fields.content {
            d.field("content", content);
        }
        if !fields.extra.is_empty() {
            d.field("extra", &fields.extra);
        }
        d.finish_non_exhaustive()
    }
}

impl Fields {
    /// The message, with `fallback` or a fresh id when the JSON had none
    /// (decoding refuses an empty one, so empty means absent).
    fn into_message(mut self, fallback: Option<&str>) -> Message {
        if self.id.is_empty() {
            self.id = fallback
                .filter(|id| !id.is_empty())
                .map_or_else(new_id, str::to_owned);
        }
        Message {
            fields: Arc::new(self),
            deadline: None,
            started: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn decode(text: &str) -> Result<Message> {
        Message::from_json(text.as_bytes())
    }

    #[test]
    fn clone_shares_fields_and_setters_copy_on_write() {
        let a = Message::new(MessageType::Statement).with_sender("a");
        let b = a.clone();
        assert!(Arc::ptr_eq(&a.fields, &b.fields));
        let c = b.with_sender("c");
        assert_eq!(a.sender(), "a");
        assert_eq!(c.sender(), "c");
    }

    #[test]
    fn ids_are_generated_uuid_v7() {
        let message = decode(r#"{"type":"statement","sender":"s"}"#).unwrap();
        let id = uuid::Uuid::parse_str(message.id()).unwrap();
        assert_eq!(id.get_version_num(), 7);
        assert_ne!(Message::new(MessageType::Load).id(), message.id());
    }

    #[test]
    fn into_content_moves_or_copies() {
        let message = Message::request("brain", json!({"a": [1, 2]}));
        let array = |content: &Value| content["a"].as_array().map(|a| a.as_ptr());
        let before = message.content().and_then(array);
        assert_eq!(
            message.into_content().as_ref().and_then(array),
            before,
            "moved, not copied"
        );
        let message = Message::request("brain", json!({"a": [1, 2]}));
        let kept = message.clone();
        assert_eq!(message.into_content(), Some(json!({"a": [1, 2]})));
        assert_eq!(
            kept.content(),
            Some(&json!({"a": [1, 2]})),
            "a shared message keeps its content"
        );
        assert_eq!(kept.into_content(), Some(json!({"a": [1, 2]})));
        assert_eq!(Message::new(MessageType::Statement).into_content(), None);
    }

    #[test]
    fn extra_refuses_known_names() {
        let e = Message::new(MessageType::Load)
            .with_extra("sender", json!("x"))
            .unwrap_err();
        assert!(e.to_string().contains("`sender` is a known message field"));
    }

    #[test]
    fn reply_swaps_parties_and_keeps_mission() {
        let request = Message::request("brain-1", json!(1))
            .with_sender("agent-7")
            .with_mission_id("m1");
        let reply = request.reply(json!(2));
        assert_eq!(reply.kind(), &MessageType::Response);
        assert_eq!(reply.sender(), "brain-1");
        assert_eq!(reply.recipient(), Some("agent-7"));
        assert_eq!(reply.mission_id(), Some("m1"));
        assert_ne!(reply.id(), request.id());
    }

    #[test]
    fn stamp_fills_only_what_is_missing() {
        let mut message = Message::new(MessageType::Load).with_sender("keep");
        message.stamp("other");
        assert_eq!(message.sender(), "keep");
        let stamp = message.timestamp().unwrap().to_owned();
        assert!(humantime::parse_rfc3339(&stamp).is_ok(), "{stamp}");
        message.stamp("other");
        assert_eq!(message.timestamp(), Some(stamp.as_str()));
    }
}

//! The wire fields of a message, listed once.
//!
//! Each entry of the list below the macro gives a field's docs, its Rust name,
//! its [shape](super::shape), its wire name and, when it has one, its setter
//! with the setter's docs. From the list come the stored [`Fields`], the
//! accessors and setters on [`Message`], the names
//! [`with_extra`](Message::with_extra) refuses, and the encoding and decoding
//! of every listed field. The list's order is the order on the wire, before
//! the unknown fields.
//!
//! Adding a field is one entry and its test.

use serde::de::{self, MapAccess};
use serde::ser::SerializeMap;
use serde_json::{Map, Value};

use super::shape::{field_shape, set_once};
use super::{Message, MessageType};

macro_rules! message_fields {
    ($(
        $(#[$doc:meta])*
        $field:ident: $shape:ident = $wire:literal $(, $setter:ident $setter_doc:literal)?;
    )*) => {
        /// A message's wire fields: the listed ones, then the unknown ones.
        #[derive(Debug, Clone, PartialEq)]
        pub(super) struct Fields {
            $(pub(super) $field: field_shape!($shape stored),)*
            /// Fields this crate does not name, kept verbatim.
            pub(super) extra: Map<String, Value>,
        }

        /// The wire names of the listed fields.
        pub(super) const KNOWN_FIELDS: &[&str] = &[$($wire),*];

        impl Fields {
            /// The fields of a new message: a fresh id, the given type,
            /// nothing else.
            pub(super) fn new(kind: MessageType) -> Self {
                Self {
                    $($field: field_shape!($shape new kind),)*
                    extra: Map::new(),
                }
            }

            /// Writes the listed fields in list order, leaving absent ones
            /// out.
            pub(super) fn serialize_known<M: SerializeMap>(
                &self,
                map: &mut M,
            ) -> Result<(), M::Error> {
                $(field_shape!($shape write map, $wire, &self.$field)?;)*
                Ok(())
            }
        }

        /// The listed fields as a decoder finds them, each `None` until its
        /// key is read.
        #[derive(Default)]
        pub(super) struct Slots {
            $($field: Option<field_shape!($shape read)>,)*
        }

        impl Slots {
            /// Reads the value of `key` when it names a listed field;
            /// `false`, with the value left unread, for any other key.
            pub(super) fn read<'de, A: MapAccess<'de>>(
                &mut self,
                key: &str,
                map: &mut A,
            ) -> Result<bool, A::Error> {
                match key {
                    $($wire => set_once(&mut self.$field, $wire, map)?,)*
                    _ => return Ok(false),
                }
                Ok(true)
            }

            /// The fields read and `extra`, or the error for the first
            /// listed field that is missing or empty.
            pub(super) fn finish<E: de::Error>(
                self,
                extra: Map<String, Value>,
            ) -> Result<Fields, E> {
                Ok(Fields {
                    $($field: {
                        let value: Result<_, E> = field_shape!($shape finish self.$field, $wire);
                        value?
                    },)*
                    extra,
                })
            }
        }

        impl Message {
            $(field_shape!($shape get $field $(#[$doc])*);)*
            $($(field_shape!($shape set $field $setter $setter_doc);)?)*
        }
    };
}

message_fields! {
    /// The message id: the idempotency key receivers de-duplicate on.
    id: Id = "id", with_id "Sets the id.";
    /// The message type.
    kind: Type = "type";
    /// The sender's entity id; empty until set.
    sender: Str = "sender", with_sender "Sets the sender.";
    /// An entity id, a component type, `user` or `all`.
    recipient: OptStr = "recipient", with_recipient "Sets the recipient.";
    /// The payload.
    content: Json = "content", with_content "Sets the payload.";
    /// Whether the caller waits for a reply.
    requires_sync: Flag = "requiresSync", with_sync "Sets whether the caller waits for a reply.";
    /// ISO-8601 send time.
    timestamp: OptStr = "timestamp", with_timestamp "Sets the timestamp.";
    /// The WebSocket client this message concerns.
    client_id: OptStr = "clientId", with_client_id "Sets the WebSocket client id.";
    /// The mission this message belongs to.
    mission_id: OptStr = "missionId", with_mission_id "Sets the mission id.";
    /// Who may see the message in the user interface.
    visibility: OptStr = "visibility", with_visibility "Sets the visibility.";
    /// Extra payload for WebSocket clients.
    data: Json = "data", with_data "Sets the WebSocket data payload.";
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::message::{Message, MessageType};

    #[test]
    fn every_field_goes_on_the_wire_in_list_order_then_the_unknown_ones() {
        let message = Message::new(MessageType::Other("x".into()))
            .with_extra("zeta", json!(1))
            .unwrap()
            .with_data(json!([1]))
            .with_visibility("v")
            .with_mission_id("m")
            .with_client_id("c")
            .with_timestamp("t")
            .with_sync(false)
            .with_content(json!(null))
            .with_recipient("r")
            .with_sender("s")
            .with_id("i")
            .with_extra("alpha", json!({"b": 2}))
            .unwrap();
        let bytes = message.to_json().unwrap();
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            concat!(
                r#"{"id":"i","type":"x","sender":"s","recipient":"r","content":null,"#,
                r#""requiresSync":false,"timestamp":"t","clientId":"c","missionId":"m","#,
                r#""visibility":"v","data":[1],"alpha":{"b":2},"zeta":1}"#
            )
        );
        assert_eq!(Message::from_json(&bytes).unwrap(), message);
    }
}

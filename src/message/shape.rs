//! The shapes a wire field can have: how a field of each shape is stored,
//! read, checked, written and reached through [`Message`](super::Message).
//!
//! | shape    | on the wire                                 | stored           | accessor         | setter takes        |
//! |----------|---------------------------------------------|------------------|------------------|---------------------|
//! | `Str`    | string, required, may be empty              | `String`         | `&str`           | `impl Into<String>` |
//! | `Id`     | string, not empty, may be absent            | `String`         | `&str`           | `impl Into<String>` |
//! | `Type`   | string, required, not empty                 | `MessageType`    | `&MessageType`   | (no setter)         |
//! | `OptStr` | string; `null` is absent                    | `Option<String>` | `Option<&str>`   | `impl Into<String>` |
//! | `Flag`   | bool; `null` is absent, absent is `false`   | `Option<bool>`   | `bool`           | `bool`              |
//! | `Json`   | any JSON; an explicit `null` is kept        | `Option<Value>`  | `Option<&Value>` | `Value`             |
//!
//! A new message gets a fresh `Id`; a decoded one without it is stored empty
//! and filled in as the message is built, with the transport's id or a fresh
//! one.
//!
//! `field_shape!(Shape op …)` gives one piece of one shape; the field list in
//! [`fields`](super::fields) calls it for every field. A slot being decoded
//! is an `Option` of the shape's `read` type, `None` until its key is seen,
//! so a second occurrence is caught; `OptStr` and `Flag` read an `Option`
//! themselves, which lets TypeScript senders write `null` for "absent".

use serde::Deserialize;
use serde::de::{self, MapAccess};

macro_rules! field_shape {
    (Str stored) => { String };
    (Str read) => { String };
    (Str new $kind:ident) => { String::new() };
    (Str finish $slot:expr, $wire:literal) => {
        $crate::message::shape::required($slot, $wire)
    };
    (Str write $map:ident, $wire:literal, $value:expr) => {
        $map.serialize_entry($wire, $value)
    };
    (Str get $field:ident $(#[$doc:meta])*) => {
        $(#[$doc])*
        pub fn $field(&self) -> &str {
            &self.fields.$field
        }
    };
    (Str set $field:ident $setter:ident $doc:literal) => {
        #[doc = $doc]
        pub fn $setter(mut self, $field: impl Into<String>) -> Self {
            self.fields_mut().$field = $field.into();
            self
        }
    };

    (Id new $kind:ident) => { $crate::message::new_id() };
    (Id finish $slot:expr, $wire:literal) => {
        match $slot {
            Some(id) if id.is_empty() => Err($crate::message::shape::empty($wire)),
            id => Ok(id.unwrap_or_default()),
        }
    };
    (Id $($same_as_str:tt)*) => {
        $crate::message::shape::field_shape! { Str $($same_as_str)* }
    };

    (Type stored) => { $crate::message::MessageType };
    (Type read) => { $crate::message::MessageType };
    (Type finish $slot:expr, $wire:literal) => {
        $crate::message::shape::required($slot, $wire).and_then(
            |kind: $crate::message::MessageType| {
                if kind.as_str().is_empty() {
                    Err($crate::message::shape::empty($wire))
                } else {
                    Ok(kind)
                }
            },
        )
    };
    (Type new $kind:ident) => { $kind };
    (Type write $map:ident, $wire:literal, $value:expr) => {
        $map.serialize_entry($wire, $value)
    };
    (Type get $field:ident $(#[$doc:meta])*) => {
        $(#[$doc])*
        pub fn $field(&self) -> &$crate::message::MessageType {
            &self.fields.$field
        }
    };

    (OptStr stored) => { Option<String> };
    (OptStr read) => { Option<String> };
    (OptStr new $kind:ident) => { None };
    (OptStr finish $slot:expr, $wire:literal) => { Ok($slot.flatten()) };
    (OptStr write $map:ident, $wire:literal, $value:expr) => {
        match $value {
            Some(value) => $map.serialize_entry($wire, value),
            None => Ok(()),
        }
    };
    (OptStr get $field:ident $(#[$doc:meta])*) => {
        $(#[$doc])*
        pub fn $field(&self) -> Option<&str> {
            self.fields.$field.as_deref()
        }
    };
    (OptStr set $field:ident $setter:ident $doc:literal) => {
        #[doc = $doc]
        pub fn $setter(mut self, $field: impl Into<String>) -> Self {
            self.fields_mut().$field = Some($field.into());
            self
        }
    };

    (Flag stored) => { Option<bool> };
    (Flag read) => { Option<bool> };
    (Flag new $kind:ident) => { None };
    (Flag finish $slot:expr, $wire:literal) => { Ok($slot.flatten()) };
    (Flag write $map:ident, $wire:literal, $value:expr) => {
        $crate::message::shape::field_shape!(OptStr write $map, $wire, $value)
    };
    (Flag get $field:ident $(#[$doc:meta])*) => {
        $(#[$doc])*
        pub fn $field(&self) -> bool {
            self.fields.$field.unwrap_or(false)
        }
    };
    (Flag set $field:ident $setter:ident $doc:literal) => {
        #[doc = $doc]
        pub fn $setter(mut self, $field: bool) -> Self {
            self.fields_mut().$field = Some($field);
            self
        }
    };

    (Json stored) => { Option<::serde_json::Value> };
    (Json read) => { ::serde_json::Value };
    (Json new $kind:ident) => { None };
    (Json finish $slot:expr, $wire:literal) => { Ok($slot) };
    (Json write $map:ident, $wire:literal, $value:expr) => {
        $crate::message::shape::field_shape!(OptStr write $map, $wire, $value)
    };
    (Json get $field:ident $(#[$doc:meta])*) => {
        $(#[$doc])*
        pub fn $field(&self) -> Option<&::serde_json::Value> {
            self.fields.$field.as_ref()
        }
    };
    (Json set $field:ident $setter:ident $doc:literal) => {
        #[doc = $doc]
        pub fn $setter(mut self, $field: ::serde_json::Value) -> Self {
            self.fields_mut().$field = Some($field);
            self
        }
    };
}

pub(super) use field_shape;

/// Reads one field's value into `slot`, refusing a second occurrence and
/// naming the field in type errors.
pub(super) fn set_once<'de, A, T>(
    slot: &mut Option<T>,
    name: &str,
    map: &mut A,
) -> Result<(), A::Error>
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

/// The value of a field that must be present.
pub(super) fn required<T, E: de::Error>(slot: Option<T>, name: &str) -> Result<T, E> {
    slot.ok_or_else(|| E::custom(format_args!("missing field `{name}`")))
}

/// The error for a field that must not be empty.
pub(super) fn empty<E: de::Error>(name: &str) -> E {
    E::custom(format_args!("field `{name}` must not be empty"))
}

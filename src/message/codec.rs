//! [`Codec`]: messages to and from JSON bytes under a size limit.

use bytes::Bytes;

use super::{Fields, Message};
use crate::defaults;
use crate::error::{Error, Result};

/// The media type of an encoded message, on every route.
pub(crate) const APPLICATION_JSON: &str = "application/json";

/// Whether a `Content-Type` value is [`APPLICATION_JSON`], parameters such
/// as `charset` allowed.
pub(crate) fn is_json(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|media| media.trim().eq_ignore_ascii_case(APPLICATION_JSON))
}

/// Encodes and decodes messages under a size limit.
///
/// Backends and endpoints each hold one; the limit applies to the encoded
/// JSON in both directions, so an oversize message is refused before it is
/// sent and before it is parsed.
///
/// ```
/// use stage7_transport::{Codec, Message, MessageType};
///
/// let codec = Codec::new(64);
/// let big = Message::new(MessageType::Statement).with_content("x".repeat(100).into());
/// assert!(codec.encode(&big).unwrap_err().is_too_large());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Codec {
    max_size: usize,
}

impl Default for Codec {
    fn default() -> Self {
        Self::new(defaults::MAX_MESSAGE_SIZE)
    }
}

impl Codec {
    /// A codec refusing encoded messages larger than `max_size` bytes.
    pub const fn new(max_size: usize) -> Self {
        Self { max_size }
    }

    /// The size limit in bytes.
    pub const fn max_size(&self) -> usize {
        self.max_size
    }

    /// Encodes `message`, refusing the result if it passes the limit.
    ///
    /// # Errors
    ///
    /// [`TooLarge`](crate::ErrorKind::TooLarge) past the limit.
    pub fn encode(&self, message: &Message) -> Result<Bytes> {
        self.encode_vec(message).map(Bytes::from)
    }

    /// [`encode`](Self::encode) for senders that copy the bytes out anyway
    /// (lapin frames them): a `Vec` becomes `Bytes` at the cost of one more
    /// allocation unless its capacity is exactly its length.
    pub(crate) fn encode_vec(&self, message: &Message) -> Result<Vec<u8>> {
        let mut bounded = Bounded {
            buf: Vec::with_capacity(256.min(self.max_size)),
            limit: self.max_size,
        };
        match serde_json::to_writer(&mut bounded, message) {
            Ok(()) => Ok(bounded.buf),
            Err(e) if e.io_error_kind() == Some(std::io::ErrorKind::FileTooLarge) => {
                Err(Error::over_limit("message", self.max_size))
            }
            Err(e) => Err(Error::invalid(format!("message cannot be encoded: {e}")).with_source(e)),
        }
    }

    /// Decodes a message from JSON.
    ///
    /// # Errors
    ///
    /// [`TooLarge`](crate::ErrorKind::TooLarge) for input over the limit;
    /// [`InvalidMessage`](crate::ErrorKind::InvalidMessage) naming the
    /// problem (malformed JSON, not an object, a missing or mistyped field).
    pub fn decode(&self, bytes: &[u8]) -> Result<Message> {
        self.decode_received(bytes, None)
    }

    /// Decodes a message that arrived with an id outside its body — the AMQP
    /// `message_id`, HTTP's `X-Request-ID` — used when the JSON has none, so
    /// a redelivered message keeps its id and is recognised as a repeat.
    ///
    /// # Errors
    ///
    /// As [`decode`](Self::decode).
    pub fn decode_received(&self, bytes: &[u8], transport_id: Option<&str>) -> Result<Message> {
        if bytes.len() > self.max_size {
            return Err(Error::too_large(bytes.len(), self.max_size));
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(Error::invalid("invalid message: empty body"));
        }
        // Checked once for the whole body, so the parser need not check
        // every string again.
        let text = std::str::from_utf8(bytes).map_err(|e| {
            Error::invalid(format!("malformed JSON: the body is not UTF-8 ({e})")).with_source(e)
        })?;
        match serde_json::from_str::<Fields>(text) {
            Ok(fields) => Ok(fields.into_message(transport_id)),
            // Field errors wrap the parser's, hiding a syntax error inside a
            // field; a second, message-blind parse tells them apart.
            Err(error) => Err(match serde_json::from_str::<serde::de::IgnoredAny>(text) {
                Err(syntax) => {
                    Error::invalid(format!("malformed JSON: {syntax}")).with_source(syntax)
                }
                Ok(_) => Error::invalid(format!("invalid message: {error}")).with_source(error),
            }),
        }
    }
}

/// A buffer that refuses to grow past `limit`, so encoding an oversize
/// message stops there rather than building all of it to refuse it.
struct Bounded {
    buf: Vec<u8>,
    limit: usize,
}

impl std::io::Write for Bounded {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if data.len() > self.limit - self.buf.len() {
            return Err(std::io::ErrorKind::FileTooLarge.into());
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::MessageType;
    use serde_json::json;

    #[test]
    fn a_transport_id_stands_in_for_a_missing_one() {
        let codec = Codec::default();
        let body = br#"{"type":"statement","sender":"s"}"#;
        assert_eq!(
            codec.decode_received(body, Some("amqp-7")).unwrap().id(),
            "amqp-7"
        );
        let with_id = br#"{"id":"json-1","type":"statement","sender":"s"}"#;
        assert_eq!(
            codec.decode_received(with_id, Some("amqp-7")).unwrap().id(),
            "json-1"
        );
    }

    #[test]
    fn encoding_stops_at_the_limit() {
        let message = Message::new(MessageType::Statement).with_content(json!("x".repeat(1000)));
        let whole = Codec::default().encode(&message).unwrap().len();
        assert_eq!(Codec::new(whole).encode(&message).unwrap().len(), whole);
        let error = Codec::new(whole - 1).encode(&message).unwrap_err();
        assert!(error.is_too_large(), "{error}");
        assert!(
            error
                .to_string()
                .contains(&format!("limit of {} bytes", whole - 1)),
            "{error}"
        );
        assert!(Codec::new(0).encode(&message).unwrap_err().is_too_large());
    }

    #[test]
    fn encode_stops_at_the_limit() {
        let message = Message::new(MessageType::Statement).with_content(json!("x".repeat(2000)));
        let e = Codec::new(1000).encode(&message).unwrap_err();
        assert!(e.is_too_large());
        assert!(e.to_string().contains("limit of 1000 bytes"), "{e}");
        assert!(Codec::new(4000).encode(&message).is_ok());
    }
}

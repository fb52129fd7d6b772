//! Which `reply_to` addresses a receiver answers.
//!
//! A reply goes to the default exchange with the request's `reply_to` as
//! routing key, which reaches any queue of that name: trusted as it is, a
//! sender could make a receiver write into any queue. A receiver answers
//! only RabbitMQ's direct reply-to (`amq.rabbitmq.reply-to.…`, which reaches
//! nothing but the requesting channel) and queues whose names match one of
//! its reply-queue patterns — by default Stage7's `rpc-reply-{uuid}`, which
//! its TypeScript client declares exclusive per caller.

use crate::error::{Error, Result};

/// The prefix of the names RabbitMQ gives direct reply-to addresses when it
/// delivers a request.
const DIRECT_REPLY_TO: &str = "amq.rabbitmq.reply-to.";

/// The reply addresses a receiver answers: direct reply-to, and names
/// matching one of its patterns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ReplyQueues {
    patterns: Vec<Vec<Part>>,
}

/// A piece of a pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    /// These characters, exactly.
    Text(String),
    /// A UUID: 36 characters, hex digits (either case) in groups of 8, 4,
    /// 4, 4 and 12 joined by `-`.
    Uuid,
    /// Any run of characters, none included.
    Any,
}

impl ReplyQueues {
    /// Parses `patterns`: each a queue name in which `{uuid}` stands for a
    /// UUID and `*` for any run of characters.
    ///
    /// # Errors
    ///
    /// [`Config`](crate::ErrorKind::Config) for an empty pattern or one
    /// longer than the 255 bytes of an AMQP queue name.
    pub(crate) fn new<P: AsRef<str>>(patterns: impl IntoIterator<Item = P>) -> Result<Self> {
        let patterns = patterns
            .into_iter()
            .map(|pattern| parse(pattern.as_ref()))
            .collect::<Result<_>>()?;
        Ok(Self { patterns })
    }

    /// Whether a reply may be sent to `name`.
    pub(crate) fn allows(&self, name: &str) -> bool {
        name.strip_prefix(DIRECT_REPLY_TO)
            .is_some_and(|token| !token.is_empty())
            || self.patterns.iter().any(|pattern| matches(pattern, name))
    }
}

fn parse(pattern: &str) -> Result<Vec<Part>> {
    if pattern.is_empty() || pattern.len() > 255 {
        return Err(Error::config(format!(
            "reply-queue pattern `{pattern}` must be 1 to 255 bytes long"
        )));
    }
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut rest = pattern;
    while let Some(c) = rest.chars().next() {
        let (part, len) = if rest.starts_with("{uuid}") {
            (Some(Part::Uuid), "{uuid}".len())
        } else if c == '*' {
            (Some(Part::Any), 1)
        } else {
            text.push(c);
            (None, c.len_utf8())
        };
        if let Some(part) = part {
            if !text.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut text)));
            }
            parts.push(part);
        }
        rest = &rest[len..];
    }
    if !text.is_empty() {
        parts.push(Part::Text(text));
    }
    Ok(parts)
}

fn matches(parts: &[Part], name: &str) -> bool {
    match parts.split_first() {
        None => name.is_empty(),
        Some((Part::Text(text), rest)) => name
            .strip_prefix(text.as_str())
            .is_some_and(|name| matches(rest, name)),
        Some((Part::Uuid, rest)) => name
            .get(..36)
            .filter(|uuid| is_uuid(uuid))
            .is_some_and(|_| matches(rest, &name[36..])),
        Some((Part::Any, rest)) => name
            .char_indices()
            .map(|(at, _)| at)
            .chain([name.len()])
            .any(|at| matches(rest, &name[at..])),
    }
}

fn is_uuid(text: &str) -> bool {
    text.bytes().enumerate().all(|(at, byte)| match at {
        8 | 13 | 18 | 23 => byte == b'-',
        _ => byte.is_ascii_hexdigit(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::defaults;

    #[test]
    fn the_defaults_answer_direct_reply_to_and_stage7_reply_queues_only() {
        let queues = ReplyQueues::new(defaults::AMQP_REPLY_QUEUES).unwrap();
        for allowed in [
            "amq.rabbitmq.reply-to.g1h2AA5yZXBseUA2ODc4MTMzNAAAcEoAAAAAaS8eQg==",
            "rpc-reply-6f1c1a52-3b8e-4d7a-9a43-0e4f2d1b7c55",
            "rpc-reply-6F1C1A52-3B8E-4D7A-9A43-0E4F2D1B7C55",
        ] {
            assert!(queues.allows(allowed), "{allowed}");
        }
        for refused in [
            "amq.rabbitmq.reply-to",
            "amq.rabbitmq.reply-to.",
            "billing-1",
            "stage7.dead-letter",
            "rpc-reply-",
            "rpc-reply-6f1c1a52-3b8e-4d7a-9a43-0e4f2d1b7c5",
            "rpc-reply-6f1c1a52-3b8e-4d7a-9a43-0e4f2d1b7c55x",
            "rpc-reply-6f1c1a52_3b8e-4d7a-9a43-0e4f2d1b7c55",
            "xrpc-reply-6f1c1a52-3b8e-4d7a-9a43-0e4f2d1b7c55",
            "rpc-reply-6f1c1a52-3b8e-4d7a-9a43-0e4f2d1b7cé5",
        ] {
            assert!(!queues.allows(refused), "{refused}");
        }
    }

    #[test]
    fn patterns_take_uuids_and_wildcards() {
        let queues = ReplyQueues::new(["replies.*.{uuid}", "fixed", "*-inbox"]).unwrap();
        assert!(queues.allows("replies.brain.6f1c1a52-3b8e-4d7a-9a43-0e4f2d1b7c55"));
        assert!(queues.allows("replies..6f1c1a52-3b8e-4d7a-9a43-0e4f2d1b7c55"));
        assert!(!queues.allows("replies.brain.not-a-uuid"));
        assert!(queues.allows("fixed"));
        assert!(!queues.allows("fixed2"));
        assert!(queues.allows("é-inbox"));
        assert!(queues.allows("-inbox"));
        assert!(!queues.allows("inbox"));
        let none = ReplyQueues::new(std::iter::empty::<&str>()).unwrap();
        assert!(!none.allows("rpc-reply-6f1c1a52-3b8e-4d7a-9a43-0e4f2d1b7c55"));
        assert!(none.allows("amq.rabbitmq.reply-to.abc"));
    }

    #[test]
    fn empty_or_overlong_patterns_are_configuration_errors() {
        for pattern in [String::new(), "q".repeat(256)] {
            let error = ReplyQueues::new([pattern]).unwrap_err();
            assert!(error.is_config(), "{error}");
            assert!(error.to_string().contains("1 to 255 bytes"), "{error}");
        }
    }
}

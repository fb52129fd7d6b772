//! What an HTTP outcome means for the layers above: which [`ErrorClass`].
//! The table is in the [`http`](super) module docs.
//!
//! Why a `503` with our JSON error body is not delivered: our endpoint
//! answers `503` only before running the handler (overloaded, not ready);
//! a handler's own not-delivered error reaches the sender as an unknown
//! outcome ([`handler_error`](crate::handler::handler_error)), with `502`.
//! A `503` without our body may come from a proxy that had already
//! forwarded the request, so its outcome is unknown.
//!
//! An answer proves delivery, so a body cannot make it "not delivered" by
//! what it claims: only the refusals our endpoint sends before its handler
//! runs count as not delivered — `503` of kind `overloaded` or
//! `unavailable`, `404` of kind `no_route`, `429` of kind `overloaded`, each
//! claiming no class but `not_delivered`. Any other kind or class in an
//! error body is read as its status says (`4xx` rejected, `5xx` unknown
//! outcome), whatever class the body names: a peer whose handler ran and
//! answered "not delivered" would otherwise have the sender fall back and
//! run the message twice.

use std::error::Error as StdError;
use std::time::Duration;

use http::header::{HeaderMap, RETRY_AFTER};
use http::{StatusCode, Uri};

use crate::error::{Error, ErrorBody, ErrorClass, ErrorKind, Result};
use crate::message::Codec;
use crate::route::Route;
use crate::tls::tls_cause;
use crate::transport::Delivery;

/// Longest piece of a non-JSON error body quoted in an error.
const QUOTE_LIMIT: usize = 200;

/// The error for a request the client could not complete.
pub(crate) fn send_error(error: hyper_util::client::legacy::Error, base: &Uri) -> Error {
    let cause = causes(&error);
    let unsent = error.is_connect()
        || error
            .source()
            .and_then(|source| source.downcast_ref::<hyper::Error>())
            .is_some_and(hyper::Error::is_canceled);
    if let Some(tls) = tls_cause(&error).filter(|_| unsent) {
        let detail = format!(
            "request not sent: the TLS handshake with {base} failed: {tls} (is its certificate \
             signed by a CA the system or STAGE7_TLS_CA_FILE trusts, for this host name?)"
        );
        return Error::new(ErrorKind::Tls, ErrorClass::NotDelivered, detail).with_source(error);
    }
    let (kind, class, what) = if unsent {
        (
            ErrorKind::Unavailable,
            ErrorClass::NotDelivered,
            "request not sent",
        )
    } else {
        (
            ErrorKind::ConnectionLost,
            ErrorClass::UnknownOutcome,
            "connection lost after the request was sent",
        )
    };
    Error::new(kind, class, format!("{what} to {base}: {cause}")).with_source(error)
}

/// The error for a response body that could not be read.
pub(crate) fn body_error(error: Box<dyn StdError + Send + Sync>, limit: usize) -> Error {
    if error.is::<http_body_util::LengthLimitError>() {
        return Error::over_limit("reply", limit);
    }
    Error::new(
        ErrorKind::ConnectionLost,
        ErrorClass::UnknownOutcome,
        format!("reading the reply failed: {}", causes(&*error)),
    )
    .with_source(error)
}

/// What a response with `status`, `headers` and `body` means.
pub(crate) fn response(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    sync: bool,
    codec: &Codec,
) -> Result<Delivery> {
    if status.is_success() {
        if !sync {
            return Ok(Delivery::new(Route::Http, None));
        }
        if body.is_empty() {
            return Err(Error::new(
                ErrorKind::Protocol,
                ErrorClass::Rejected,
                format!("the peer answered a synchronous message with {status} and no reply"),
            ));
        }
        let reply = codec.decode(body).map_err(|e| {
            Error::new(
                ErrorKind::Protocol,
                ErrorClass::Rejected,
                format!("the peer's reply is not a message: {}", e.detail()),
            )
            .with_source(e)
        })?;
        return Ok(Delivery::new(Route::Http, Some(reply)));
    }
    // Only a body naming one of our kinds is our endpoint's; a gateway's
    // `{"error": ...}` is not.
    let peer = serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .filter(|peer| peer.kind().is_some());
    let error = match (status, peer) {
        (StatusCode::NOT_FOUND | StatusCode::TOO_MANY_REQUESTS, None) => {
            let kind = if status == StatusCode::NOT_FOUND {
                ErrorKind::NoRoute
            } else {
                ErrorKind::Overloaded
            };
            Error::new(kind, ErrorClass::NotDelivered, quote(status, body))
        }
        (status, Some(peer)) if refused_before_handling(status, &peer) => {
            peer.into_error().with_class(ErrorClass::NotDelivered)
        }
        (status, Some(peer)) if status.is_client_error() => {
            peer.into_error().with_class(ErrorClass::Rejected)
        }
        (status, None) if status.is_client_error() => {
            let kind = match status {
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ErrorKind::Unauthorized,
                StatusCode::PAYLOAD_TOO_LARGE => ErrorKind::TooLarge,
                StatusCode::BAD_REQUEST | StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                    ErrorKind::InvalidMessage
                }
                StatusCode::UNPROCESSABLE_ENTITY => ErrorKind::Handler,
                _ => ErrorKind::Protocol,
            };
            Error::new(kind, ErrorClass::Rejected, quote(status, body))
        }
        (status, Some(peer)) if status.is_server_error() => {
            peer.into_error().with_class(ErrorClass::UnknownOutcome)
        }
        (status, None) if status.is_server_error() => {
            let kind = match status {
                StatusCode::GATEWAY_TIMEOUT => ErrorKind::Timeout,
                StatusCode::SERVICE_UNAVAILABLE => ErrorKind::Unavailable,
                _ => ErrorKind::Protocol,
            };
            Error::new(kind, ErrorClass::UnknownOutcome, quote(status, body))
        }
        (status, _) => Error::new(
            ErrorKind::Protocol,
            ErrorClass::Rejected,
            format!("unexpected status {status}"),
        ),
    };
    Err(match retry_after(headers) {
        Some(wait) if error.is_not_delivered() => error.with_retry_after(wait),
        _ => error,
    })
}

/// Whether `status` and `peer` are one of the refusals our endpoint sends
/// before running the handler — `503` overloaded or unavailable, `404` no
/// route, `429` overloaded — claiming nothing but not delivered. The
/// endpoint never answers these after a handler ran (a handler's
/// not-delivered error is raised to an unknown outcome and answered `502`),
/// so any other kind or class in such a body is a claim a reply cannot
/// make, read as the status alone would be.
fn refused_before_handling(status: StatusCode, peer: &ErrorBody) -> bool {
    let kinds: &[ErrorKind] = match status {
        StatusCode::SERVICE_UNAVAILABLE => &[ErrorKind::Overloaded, ErrorKind::Unavailable],
        StatusCode::NOT_FOUND => &[ErrorKind::NoRoute],
        StatusCode::TOO_MANY_REQUESTS => &[ErrorKind::Overloaded],
        _ => return false,
    };
    let claims_not_delivered = peer
        .class
        .as_deref()
        .is_none_or(|class| ErrorClass::parse(class) == Some(ErrorClass::NotDelivered));
    claims_not_delivered && peer.kind().is_some_and(|kind| kinds.contains(&kind))
}

/// `Retry-After` in seconds; the HTTP-date form is not read.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds))
}

/// "peer answered STATUS: start of body".
fn quote(status: StatusCode, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return format!("peer answered {status}");
    }
    let end = text
        .char_indices()
        .nth(QUOTE_LIMIT)
        .map_or(text.len(), |(at, _)| at);
    format!("peer answered {status}: {}", &text[..end])
}

/// An error and its sources, joined with `: `.
pub(crate) fn causes(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(source) = next {
        text.push_str(": ");
        text.push_str(&source.to_string());
        next = source.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::HeaderValue;

    fn classify(status: u16, body: &str) -> Error {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("3"));
        let status = StatusCode::from_u16(status).unwrap();
        response(status, &headers, body.as_bytes(), true, &Codec::default()).unwrap_err()
    }

    const OVERLOADED: &str = r#"{"error":"endpoint busy","kind":"overloaded"}"#;

    #[test]
    fn a_gateway_503_is_not_taken_for_ours() {
        let error = classify(503, r#"{"error":"upstream reset"}"#);
        assert_eq!(error.class(), ErrorClass::UnknownOutcome, "{error}");
    }

    #[test]
    fn not_delivered_statuses_carry_retry_after() {
        for (status, body, kind) in [
            (503, OVERLOADED, ErrorKind::Overloaded),
            (429, "slow down", ErrorKind::Overloaded),
            (404, "", ErrorKind::NoRoute),
        ] {
            let error = classify(status, body);
            assert_eq!(
                (error.kind(), error.class()),
                (kind, ErrorClass::NotDelivered),
                "{status}"
            );
        }
        assert_eq!(
            classify(503, OVERLOADED).retry_after(),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            classify(429, "").retry_after(),
            Some(Duration::from_secs(3))
        );
    }

    #[test]
    fn a_body_cannot_claim_not_delivered_beyond_the_endpoints_own_refusals() {
        // What our endpoint sends before running the handler.
        for (status, body) in [
            (503, OVERLOADED),
            (
                503,
                r#"{"error":"not ready","kind":"unavailable","class":"not_delivered"}"#,
            ),
            (404, r#"{"error":"no such path","kind":"no_route"}"#),
            (429, r#"{"error":"slow down","kind":"overloaded"}"#),
        ] {
            let error = classify(status, body);
            assert_eq!(error.class(), ErrorClass::NotDelivered, "{status} {body}");
        }
        // Claims a reply cannot make: the status decides.
        for (status, body, class) in [
            (
                503,
                r#"{"error":"db down","kind":"handler","class":"not_delivered"}"#,
                ErrorClass::UnknownOutcome,
            ),
            (
                503,
                r#"{"error":"lost","kind":"connection_lost"}"#,
                ErrorClass::UnknownOutcome,
            ),
            (
                503,
                r#"{"error":"busy","kind":"overloaded","class":"unknown_outcome"}"#,
                ErrorClass::UnknownOutcome,
            ),
            (
                500,
                r#"{"error":"busy","kind":"unavailable","class":"not_delivered"}"#,
                ErrorClass::UnknownOutcome,
            ),
            (
                404,
                r#"{"error":"no such mission","kind":"handler","class":"not_delivered"}"#,
                ErrorClass::Rejected,
            ),
            (
                429,
                r#"{"error":"quota","kind":"unavailable"}"#,
                ErrorClass::Rejected,
            ),
        ] {
            let error = classify(status, body);
            assert_eq!(error.class(), class, "{status} {body}");
            assert_eq!(error.retry_after(), None, "{status} {body}");
        }
    }

    #[test]
    fn client_errors_are_rejected_with_the_peers_text() {
        let error = classify(422, r#"{"error":"no such mission","kind":"handler"}"#);
        assert_eq!(
            (error.kind(), error.class()),
            (ErrorKind::Handler, ErrorClass::Rejected)
        );
        assert_eq!(error.detail(), "peer replied: no such mission");
        assert_eq!(error.retry_after(), None);
        // A not-delivered kind in a 4xx body is still a rejection.
        let error = classify(400, OVERLOADED);
        assert_eq!(error.class(), ErrorClass::Rejected);
        let error = classify(401, "who are you?");
        assert_eq!(
            (error.kind(), error.class()),
            (ErrorKind::Unauthorized, ErrorClass::Rejected)
        );
        assert_eq!(
            error.detail(),
            "peer answered 401 Unauthorized: who are you?"
        );
        assert_eq!(classify(413, "").kind(), ErrorKind::TooLarge);
    }

    #[test]
    fn server_errors_are_unknown_outcomes() {
        let error = classify(503, "<html>bad gateway</html>");
        assert_eq!(
            (error.kind(), error.class()),
            (ErrorKind::Unavailable, ErrorClass::UnknownOutcome)
        );
        assert_eq!(classify(504, "").kind(), ErrorKind::Timeout);
        let error = classify(500, r#"{"error":"reply too large","kind":"too_large"}"#);
        assert_eq!(
            (error.kind(), error.class()),
            (ErrorKind::TooLarge, ErrorClass::UnknownOutcome)
        );
        assert_eq!(classify(302, "").class(), ErrorClass::Rejected);
    }

    #[test]
    fn success_needs_a_reply_only_when_sync() {
        let headers = HeaderMap::new();
        let delivery = response(
            StatusCode::ACCEPTED,
            &headers,
            b"",
            false,
            &Codec::default(),
        )
        .unwrap();
        assert_eq!(delivery.reply(), None);
        let error = response(StatusCode::OK, &headers, b"", true, &Codec::default()).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Protocol);
        let error =
            response(StatusCode::OK, &headers, b"[1]", true, &Codec::default()).unwrap_err();
        assert!(error.to_string().contains("not a message"), "{error}");
    }

    #[test]
    fn long_bodies_are_cut() {
        let error = classify(400, &"x".repeat(1000));
        assert_eq!(
            error.detail().len(),
            "peer answered 400 Bad Request: ".len() + QUOTE_LIMIT
        );
    }
}

//! One request: routing, the checks, the handler, the answer.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header::{
    ALLOW, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE,
};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body, Incoming};
use tokio::sync::Semaphore;

use super::super::{APPLICATION_JSON, MESSAGE_PATH, X_REQUEST_ID};
use crate::error::{Error, ErrorBody, ErrorClass, ErrorKind};
use crate::handler::{Handler, unsendable_reply};
use crate::layer::dedup::Dedup;
use crate::message::{Codec, is_json};
use crate::secret::Secret;

const HEALTHY_PATH: &str = "/healthy";
const READY_PATH: &str = "/ready";

/// What the endpoint needs to answer requests; shared by every connection.
pub(super) struct Endpoint<H> {
    pub(super) handler: Dedup<H>,
    pub(super) codec: Codec,
    /// The tokens accepted; none means no token is required.
    pub(super) tokens: Box<[Secret]>,
    pub(super) permits: Semaphore,
    pub(super) request_timeout: Duration,
    /// Also the limit on a TLS handshake.
    pub(super) header_read_timeout: Duration,
    pub(super) ready: Arc<AtomicBool>,
}

impl<H: Handler> Endpoint<H> {
    /// The answer to `request`; every failure is a JSON error, never a
    /// dropped connection.
    pub(super) async fn handle(
        self: Arc<Self>,
        request: Request<Incoming>,
    ) -> Response<Full<Bytes>> {
        match (request.method(), request.uri().path()) {
            (&Method::POST, MESSAGE_PATH) => self.message(request).await,
            (&Method::GET, HEALTHY_PATH) => json(StatusCode::OK, r#"{"status":"healthy"}"#),
            (&Method::GET, READY_PATH) if self.ready.load(Ordering::Relaxed) => {
                json(StatusCode::OK, r#"{"status":"ready"}"#)
            }
            (&Method::GET, READY_PATH) => failure(
                StatusCode::SERVICE_UNAVAILABLE,
                &Error::new(
                    ErrorKind::Unavailable,
                    ErrorClass::NotDelivered,
                    "not ready",
                ),
            ),
            (method, path @ (MESSAGE_PATH | HEALTHY_PATH | READY_PATH)) => {
                let allowed = if path == MESSAGE_PATH { "POST" } else { "GET" };
                let error = Error::new(
                    ErrorKind::Protocol,
                    ErrorClass::Rejected,
                    format!("{method} is not allowed on {path}; use {allowed}"),
                );
                let mut response = failure(StatusCode::METHOD_NOT_ALLOWED, &error);
                response
                    .headers_mut()
                    .insert(ALLOW, HeaderValue::from_static(allowed));
                response
            }
            (_, path) => failure(
                StatusCode::NOT_FOUND,
                &Error::new(
                    ErrorKind::NoRoute,
                    ErrorClass::NotDelivered,
                    format!("no such path `{path}`; messages go to POST {MESSAGE_PATH}"),
                ),
            ),
        }
    }

    async fn message(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        if !self.tokens.is_empty() && !authorized(request.headers(), &self.tokens) {
            return failure(
                StatusCode::UNAUTHORIZED,
                &Error::new(
                    ErrorKind::Unauthorized,
                    ErrorClass::Rejected,
                    "missing or invalid bearer token",
                ),
            );
        }
        let Ok(_permit) = self.permits.try_acquire() else {
            return failure(
                StatusCode::SERVICE_UNAVAILABLE,
                &Error::new(
                    ErrorKind::Overloaded,
                    ErrorClass::NotDelivered,
                    "too many requests in progress; try again shortly",
                ),
            );
        };
        if !request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(is_json)
        {
            let error = Error::invalid(format!(
                "content type must be {APPLICATION_JSON}, got {}",
                request
                    .headers()
                    .get(CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map_or_else(|| "none".to_owned(), |v| format!("`{v}`"))
            ));
            return failure(StatusCode::UNSUPPORTED_MEDIA_TYPE, &error);
        }
        let request_id = request
            .headers()
            .get(X_REQUEST_ID)
            .and_then(|id| id.to_str().ok())
            .map(str::to_owned);
        let body = request.into_body();
        let limit = self.codec.max_size();
        if body.size_hint().lower() > limit as u64 {
            return failure(
                StatusCode::PAYLOAD_TOO_LARGE,
                &Error::too_large(
                    usize::try_from(body.size_hint().lower()).unwrap_or(usize::MAX),
                    limit,
                ),
            );
        }
        match tokio::time::timeout(self.request_timeout, self.receive(body, request_id)).await {
            Ok(response) => response,
            Err(_) => failure(
                StatusCode::GATEWAY_TIMEOUT,
                &Error::timeout(format!(
                    "the message was not handled within the endpoint's request timeout of {} ms",
                    self.request_timeout.as_millis()
                )),
            ),
        }
    }

    /// Reads, decodes and hands the message to the handler.
    async fn receive(&self, body: Incoming, request_id: Option<String>) -> Response<Full<Bytes>> {
        let limit = self.codec.max_size();
        let bytes = match Limited::new(body, limit).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(error) if error.is::<http_body_util::LengthLimitError>() => {
                return failure(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &Error::over_limit("body", limit),
                );
            }
            Err(error) => {
                return failure(
                    StatusCode::BAD_REQUEST,
                    &Error::invalid(format!("the body could not be read: {error}")),
                );
            }
        };
        let message = match self.codec.decode_received(&bytes, request_id.as_deref()) {
            Ok(message) => message,
            Err(error) => return failure(status_for(&error), &error),
        };
        let sync = message.requires_sync();
        match self.handler.clone().handle(message).await {
            Ok(Some(reply)) if sync => match self.codec.encode(&reply) {
                Ok(body) => json(StatusCode::OK, body),
                Err(error) => failure(StatusCode::UNPROCESSABLE_ENTITY, &unsendable_reply(&error)),
            },
            Ok(None) if sync => failure(StatusCode::UNPROCESSABLE_ENTITY, &Error::no_reply()),
            Ok(_) => {
                let mut accepted = Response::new(Full::default());
                *accepted.status_mut() = StatusCode::ACCEPTED;
                accepted
            }
            Err(error) => failure(status_for(&error), &error),
        }
    }
}

/// The status that reports a decoding or handler `error`. The class decides
/// wherever the sender's reading of a status would differ from it: a
/// handler's own downstream "no route" is not a 404, and a handler refusing
/// its caller is a 403, not the endpoint's 401.
fn status_for(error: &Error) -> StatusCode {
    match (error.kind(), error.class()) {
        (ErrorKind::InvalidMessage, ErrorClass::Rejected) => StatusCode::BAD_REQUEST,
        (ErrorKind::Unauthorized, ErrorClass::Rejected) => StatusCode::FORBIDDEN,
        (ErrorKind::NoRoute, ErrorClass::NotDelivered) => StatusCode::NOT_FOUND,
        (ErrorKind::TooLarge, ErrorClass::Rejected) => StatusCode::PAYLOAD_TOO_LARGE,
        (ErrorKind::Timeout, ErrorClass::UnknownOutcome) => StatusCode::GATEWAY_TIMEOUT,
        (_, ErrorClass::Rejected) => StatusCode::UNPROCESSABLE_ENTITY,
        (_, ErrorClass::NotDelivered) => StatusCode::SERVICE_UNAVAILABLE,
        (_, ErrorClass::UnknownOutcome) => StatusCode::BAD_GATEWAY,
    }
}

/// A JSON [`ErrorBody`] reply; `503`s say when to come back, `401`s which
/// scheme to use.
fn failure(status: StatusCode, error: &Error) -> Response<Full<Bytes>> {
    tracing::debug!(%status, %error, "http endpoint: request refused");
    let mut response = json(status, ErrorBody::json(error));
    let headers = response.headers_mut();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        let seconds = error.retry_after().map_or(1, |wait| {
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        });
        headers.insert(RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    }
    if status == StatusCode::UNAUTHORIZED {
        headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

fn json(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(APPLICATION_JSON));
    response
}

/// `Authorization: Bearer {token}` with one of `tokens`, each compared in
/// constant time and all of them every time: how long a refusal takes
/// tells nothing about which token came closest.
fn authorized(headers: &HeaderMap, tokens: &[Secret]) -> bool {
    const SCHEME: &[u8] = b"bearer ";
    let Some(value) = headers.get(AUTHORIZATION).map(HeaderValue::as_bytes) else {
        return false;
    };
    match value.split_at_checked(SCHEME.len()) {
        Some((scheme, given)) if scheme.eq_ignore_ascii_case(SCHEME) => {
            tokens.iter().fold(false, |found, token| {
                found | constant_time_eq(given, token.expose().as_bytes())
            })
        }
        _ => false,
    }
}

/// Whether `given` equals `expected`, in a time that depends only on the
/// length of `given`: an attacker learns nothing about the token from how
/// long a refusal takes.
fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    let mut difference = u8::from(given.len() != expected.len());
    for (byte, other) in given.iter().zip(expected.iter().cycle()) {
        difference |= byte ^ other;
    }
    std::hint::black_box(difference) == 0 && !expected.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_compares_whole_tokens() {
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        for given in [&b"s3cre"[..], b"s3cret!", b"S3cret", b"", b"s3crets3cret"] {
            assert!(!constant_time_eq(given, b"s3cret"), "{given:?}");
        }
        assert!(!constant_time_eq(b"", b""));
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_required() {
        let token = [Secret::new("tok")];
        let headers = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(AUTHORIZATION, HeaderValue::from_static(value));
            headers
        };
        assert!(authorized(&headers("Bearer tok"), &token));
        assert!(authorized(&headers("bearer tok"), &token));
        assert!(!authorized(&headers("Basic tok"), &token));
        assert!(!authorized(&headers("Bearer"), &token));
        assert!(!authorized(&HeaderMap::new(), &token));
    }

    #[test]
    fn any_of_several_tokens_is_accepted() {
        let tokens = [Secret::new("old"), Secret::new("new")];
        let headers = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(AUTHORIZATION, HeaderValue::from_static(value));
            headers
        };
        assert!(authorized(&headers("Bearer old"), &tokens));
        assert!(authorized(&headers("Bearer new"), &tokens));
        assert!(!authorized(&headers("Bearer older"), &tokens));
        assert!(!authorized(&headers("Bearer"), &tokens));
    }

    #[test]
    fn statuses_follow_kind_and_class() {
        let status = |kind, class| status_for(&Error::new(kind, class, ""));
        assert_eq!(status(ErrorKind::InvalidMessage, ErrorClass::Rejected), 400);
        assert_eq!(status(ErrorKind::Unauthorized, ErrorClass::Rejected), 403);
        assert_eq!(status(ErrorKind::NoRoute, ErrorClass::NotDelivered), 404);
        assert_eq!(status(ErrorKind::NoRoute, ErrorClass::UnknownOutcome), 502);
        assert_eq!(status(ErrorKind::TooLarge, ErrorClass::Rejected), 413);
        assert_eq!(status(ErrorKind::Handler, ErrorClass::Rejected), 422);
        assert_eq!(status(ErrorKind::Overloaded, ErrorClass::NotDelivered), 503);
        assert_eq!(
            status(ErrorKind::Unavailable, ErrorClass::NotDelivered),
            503
        );
        assert_eq!(status(ErrorKind::Timeout, ErrorClass::UnknownOutcome), 504);
        assert_eq!(
            status(ErrorKind::ConnectionLost, ErrorClass::UnknownOutcome),
            502
        );
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let error = Error::new(ErrorKind::Overloaded, ErrorClass::NotDelivered, "busy")
            .with_retry_after(Duration::from_millis(1500));
        let response = failure(StatusCode::SERVICE_UNAVAILABLE, &error);
        assert_eq!(response.headers()[RETRY_AFTER], "2");
        assert_eq!(response.headers()[CONTENT_TYPE], APPLICATION_JSON);
    }
}

//! The HTTP endpoint against bad input on real sockets: each gets its
//! status and a JSON error naming the problem, and the endpoint keeps
//! serving afterwards.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::Full;
use serde_json::Value;
use stage7_transport::{HttpServer, Secret};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use support::peer::raw;

const TOKEN: &str = "tok-bad-input";
const MAX_BODY: usize = 1024;
const GOOD: &str =
    r#"{"type":"request","sender":"t","recipient":"echo","requiresSync":true,"content":1}"#;

async fn start() -> HttpServer {
    HttpServer::builder()
        .token(Secret::new(TOKEN))
        .max_body_size(MAX_BODY)
        .header_read_timeout(Duration::from_millis(300))
        .bind("127.0.0.1:0", support::echo())
        .await
        .expect("the endpoint starts")
}

/// A request to `addr`; `None` leaves a header out.
fn request(
    method: Method,
    path: &str,
    content_type: Option<&str>,
    token: Option<&str>,
    body: impl Into<Bytes>,
) -> Request<Full<Bytes>> {
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "test");
    if let Some(content_type) = content_type {
        builder = builder.header("content-type", content_type);
    }
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    builder
        .body(Full::new(body.into()))
        .expect("a valid request")
}

/// `POST /message` with the right token and content type.
async fn post(addr: SocketAddr, body: impl Into<Bytes>) -> (StatusCode, HeaderMap, Value) {
    send(
        addr,
        request(
            Method::POST,
            "/message",
            Some("application/json"),
            Some(TOKEN),
            body,
        ),
    )
    .await
}

/// The status, headers and JSON body of the answer to `request`.
async fn send(addr: SocketAddr, request: Request<Full<Bytes>>) -> (StatusCode, HeaderMap, Value) {
    let (status, headers, body) = raw(addr, request).await;
    assert_eq!(headers["content-type"], "application/json", "{status}");
    let body = serde_json::from_slice(&body).expect("a JSON body");
    (status, headers, body)
}

/// The error text of an error body, after checking its kind.
fn error_of(body: &Value, kind: &str) -> String {
    assert_eq!(body["kind"], kind, "{body}");
    body["error"].as_str().expect("an error text").to_owned()
}

async fn assert_still_serves(addr: SocketAddr) {
    let (status, _, body) = post(addr, GOOD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["content"], 1);
}

#[tokio::test]
async fn oversize_bodies_get_413() {
    let server = start().await;
    let addr = server.local_addr();
    let big = format!(
        r#"{{"type":"statement","sender":"t","content":"{}"}}"#,
        "x".repeat(MAX_BODY)
    );
    let (status, _, body) = post(addr, big.clone()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        error_of(&body, "too_large").contains("1024 bytes"),
        "{body}"
    );

    // Without a Content-Length the limit applies while reading.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /message HTTP/1.1\r\nhost: t\r\nauthorization: Bearer {TOKEN}\r\n\
         content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{big}\r\n0\r\n\r\n",
        big.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // The answer may come in more than one read: gather it until its body
    // is in, the peer closes, or ten seconds pass.
    let mut answer = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        let mut chunk = vec![0; 4096];
        while !answer.contains("too_large") {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.push_str(&String::from_utf8_lossy(&chunk[..n])),
            }
        }
    })
    .await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains(r#""kind":"too_large""#), "{answer}");
    assert_still_serves(addr).await;
}

#[tokio::test]
async fn wrong_or_missing_content_type_gets_415() {
    let server = start().await;
    let addr = server.local_addr();
    let (status, _, body) = send(
        addr,
        request(
            Method::POST,
            "/message",
            Some("text/plain"),
            Some(TOKEN),
            GOOD,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let error = error_of(&body, "invalid_message");
    assert!(
        error.contains("application/json") && error.contains("`text/plain`"),
        "{error}"
    );
    let (status, _, body) = send(
        addr,
        request(Method::POST, "/message", None, Some(TOKEN), GOOD),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(
        error_of(&body, "invalid_message").contains("got none"),
        "{body}"
    );
    // Parameters are fine.
    let with_charset = request(
        Method::POST,
        "/message",
        Some("application/json; charset=utf-8"),
        Some(TOKEN),
        GOOD,
    );
    assert_eq!(send(addr, with_charset).await.0, StatusCode::OK);
    assert_still_serves(addr).await;
}

#[tokio::test]
async fn truncated_json_gets_400() {
    let server = start().await;
    let (status, _, body) = post(server.local_addr(), r#"{"type":"statement","sender":"a""#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        error_of(&body, "invalid_message").starts_with("malformed JSON"),
        "{body}"
    );
    assert_still_serves(server.local_addr()).await;
}

#[tokio::test]
async fn non_object_json_gets_400() {
    let server = start().await;
    let (status, _, body) = post(server.local_addr(), "[1, 2, 3]").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let error = error_of(&body, "invalid_message");
    assert!(error.contains("a message object"), "{error}");
    assert_still_serves(server.local_addr()).await;
}

#[tokio::test]
async fn wrong_field_types_get_400_naming_the_field() {
    let server = start().await;
    let (status, _, body) = post(server.local_addr(), r#"{"type":"statement","sender":5}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        error_of(&body, "invalid_message").contains("field `sender`"),
        "{body}"
    );
    let (status, _, body) = post(server.local_addr(), r#"{"sender":"a"}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        error_of(&body, "invalid_message").contains("missing field `type`"),
        "{body}"
    );
    assert_still_serves(server.local_addr()).await;
}

#[tokio::test]
async fn empty_body_gets_400() {
    let server = start().await;
    let (status, _, body) = post(server.local_addr(), "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        error_of(&body, "invalid_message").contains("empty body"),
        "{body}"
    );
    assert_still_serves(server.local_addr()).await;
}

#[tokio::test]
async fn slow_loris_headers_are_cut_off() {
    let server = start().await;
    let addr = server.local_addr();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"POST /message HTTP/1.1\r\nhost: t\r\ncontent-ty")
        .await
        .unwrap();
    // The server closes the connection after its 300 ms header timeout; the
    // outer limit only keeps a broken server from hanging the test.
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut rest))
        .await
        .expect("the server closes a connection whose headers never end");
    assert!(closed.is_ok(), "{closed:?}");
    assert!(!String::from_utf8_lossy(&rest).contains("200 OK"));
    assert_still_serves(addr).await;
}

#[tokio::test]
async fn missing_or_wrong_token_gets_401() {
    let server = start().await;
    let addr = server.local_addr();
    for token in [
        None,
        Some("tok-bad-inpuT"),
        Some("tok-bad-input-and-more"),
        Some(""),
    ] {
        let (status, headers, body) = send(
            addr,
            request(
                Method::POST,
                "/message",
                Some("application/json"),
                token,
                GOOD,
            ),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:?}");
        assert_eq!(headers["www-authenticate"], "Bearer");
        assert!(
            error_of(&body, "unauthorized").contains("bearer token"),
            "{body}"
        );
    }
    assert_still_serves(addr).await;
}

#[tokio::test]
async fn unknown_path_gets_404() {
    let server = start().await;
    let addr = server.local_addr();
    let (status, _, body) = send(
        addr,
        request(
            Method::POST,
            "/messages",
            Some("application/json"),
            Some(TOKEN),
            GOOD,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        error_of(&body, "no_route").contains("`/messages`"),
        "{body}"
    );
    assert_still_serves(addr).await;
}

#[tokio::test]
async fn wrong_method_gets_405() {
    let server = start().await;
    let addr = server.local_addr();
    let (status, headers, body) = send(
        addr,
        request(Method::GET, "/message", None, Some(TOKEN), ""),
    )
    .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers["allow"], "POST");
    assert!(error_of(&body, "protocol").contains("use POST"), "{body}");
    let (status, headers, _) =
        send(addr, request(Method::DELETE, "/healthy", None, None, "")).await;
    assert_eq!(
        (status, &headers["allow"]),
        (StatusCode::METHOD_NOT_ALLOWED, &"GET".parse().unwrap())
    );
    assert_still_serves(addr).await;
}

//! How `HttpTransport` classifies a failing peer, and how recipients are
//! resolved — against real peers on 127.0.0.1.

mod support;

use std::convert::Infallible;
use std::time::Duration;

use serde_json::json;
use stage7_transport::http::{PostOfficeResolver, ResolverChain, StaticResolver};
use stage7_transport::layer::retry::RetryPolicy;
use stage7_transport::{
    BranchBuilder, ErrorClass, ErrorKind, HttpServer, HttpTransport, Message, Route, Stack,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tower::ServiceExt;

use support::peer::{Peer, reply, reply_retry_after};

fn to(url: String) -> HttpTransport {
    let routes = StaticResolver::new([("peer", url)]).expect("a valid route");
    HttpTransport::builder(routes)
        .request_timeout(Duration::from_millis(300))
        .build()
        .expect("a valid transport")
}

fn call() -> Message {
    Message::request("peer", json!({"q": 1}))
}

/// Reads one request's head from a raw connection.
async fn read_head(stream: &mut tokio::net::TcpStream) {
    let mut seen = Vec::new();
    let mut buffer = [0; 1024];
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => seen.extend_from_slice(&buffer[..n]),
        }
    }
}

#[tokio::test]
async fn a_peer_that_is_down_is_not_delivered() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let error = to(format!("http://{addr}"))
        .oneshot(call())
        .await
        .unwrap_err();
    assert_eq!(
        (error.kind(), error.class()),
        (ErrorKind::Unavailable, ErrorClass::NotDelivered)
    );
    assert_eq!(error.route(), Some(Route::Http));
    assert!(error.to_string().contains("request not sent"), "{error}");
}

#[tokio::test]
async fn a_slow_peer_times_out_as_unknown_outcome() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let silent = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        read_head(&mut stream).await;
        std::future::pending::<()>().await;
    });
    let error = to(format!("http://{addr}"))
        .oneshot(call())
        .await
        .unwrap_err();
    assert_eq!(
        (error.kind(), error.class()),
        (ErrorKind::Timeout, ErrorClass::UnknownOutcome)
    );
    assert_eq!(error.route(), Some(Route::Http));
    silent.abort();
}

#[tokio::test]
async fn a_peer_closing_after_the_request_is_an_unknown_outcome() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        read_head(&mut stream).await;
        let _ = stream.shutdown().await;
    });
    let error = to(format!("http://{addr}"))
        .oneshot(call())
        .await
        .unwrap_err();
    assert_eq!(
        (error.kind(), error.class()),
        (ErrorKind::ConnectionLost, ErrorClass::UnknownOutcome)
    );
    assert!(
        error.to_string().contains("after the request was sent"),
        "{error}"
    );
}

#[tokio::test]
async fn a_503_from_our_endpoint_is_not_delivered() {
    let peer = Peer::start(|_| {
        reply_retry_after(
            503,
            r#"{"error":"too many requests in progress","kind":"overloaded"}"#,
            2,
        )
    })
    .await;
    let error = to(peer.url()).oneshot(call()).await.unwrap_err();
    assert_eq!(
        (error.kind(), error.class()),
        (ErrorKind::Overloaded, ErrorClass::NotDelivered)
    );
    assert_eq!(error.retry_after(), Some(Duration::from_secs(2)));
    assert_eq!(
        error.detail(),
        "peer replied: too many requests in progress"
    );

    // A 503 without our error body may come from a proxy that forwarded it.
    let proxy = Peer::start(|_| reply(503, "<html>Service Unavailable</html>")).await;
    let error = to(proxy.url()).oneshot(call()).await.unwrap_err();
    assert_eq!(error.class(), ErrorClass::UnknownOutcome);
}

#[tokio::test]
async fn a_503_whose_body_claims_more_than_a_refusal_is_an_unknown_outcome() {
    // A peer whose handler ran, then answered "not delivered": believed,
    // its sender would fall back and run the message again.
    let peer = Peer::start(|_| {
        reply_retry_after(
            503,
            r#"{"error":"database down","kind":"handler","class":"not_delivered"}"#,
            1,
        )
    })
    .await;
    let error = to(peer.url()).oneshot(call()).await.unwrap_err();
    assert_eq!(
        (error.kind(), error.class()),
        (ErrorKind::Handler, ErrorClass::UnknownOutcome),
        "{error}"
    );
    assert_eq!(error.retry_after(), None);
}

#[tokio::test]
async fn a_429_is_not_delivered_with_retry_after() {
    let peer = Peer::start(|_| reply_retry_after(429, "slow down", 3)).await;
    let error = to(peer.url()).oneshot(call()).await.unwrap_err();
    assert_eq!(
        (error.kind(), error.class()),
        (ErrorKind::Overloaded, ErrorClass::NotDelivered)
    );
    assert_eq!(error.retry_after(), Some(Duration::from_secs(3)));
}

#[tokio::test]
async fn a_400_is_rejected_and_not_retried_by_the_stack() {
    let stack = |url: String| {
        Stack::builder(to(url))
            .primary_branch(BranchBuilder::new(Route::Http))
            .retry(
                RetryPolicy::builder()
                    .max_retries(2)
                    .min_delay(Duration::from_millis(1)),
            )
            .build()
            .unwrap()
    };
    let bad = Peer::start(|_| {
        reply(
            400,
            r#"{"error":"field `content`: expected a mission","kind":"invalid_message"}"#,
        )
    })
    .await;
    let error = stack(bad.url()).oneshot(call()).await.unwrap_err();
    assert_eq!(
        (error.kind(), error.class()),
        (ErrorKind::InvalidMessage, ErrorClass::Rejected)
    );
    assert_eq!(
        error.detail(),
        "peer replied: field `content`: expected a mission"
    );
    assert_eq!(bad.requests(), 1, "a rejection is never retried");

    // The same stack does retry what may succeed: a 502 is an unknown outcome.
    let flaky = Peer::start(|_| reply(502, "")).await;
    let error = stack(flaky.url()).oneshot(call()).await.unwrap_err();
    assert_eq!(error.class(), ErrorClass::UnknownOutcome);
    assert_eq!(flaky.requests(), 3);
}

#[tokio::test]
async fn an_unknown_recipient_is_not_delivered_and_named() {
    let transport =
        HttpTransport::builder(StaticResolver::new([("brain", "http://127.0.0.1:9")]).unwrap())
            .build()
            .unwrap();
    let error = transport
        .oneshot(Message::request("librarian-7", json!(1)))
        .await
        .unwrap_err();
    assert_eq!(
        (error.kind(), error.class()),
        (ErrorKind::NoRoute, ErrorClass::NotDelivered)
    );
    assert!(error.to_string().contains("`librarian-7`"), "{error}");
    assert_eq!(error.route(), Some(Route::Http));
}

#[tokio::test]
async fn the_postoffice_resolves_ids_and_types_and_is_cached() {
    let echo =
        tower::service_fn(
            |m: Message| async move { Ok::<_, Infallible>(Some(m.reply(json!("pong")))) },
        );
    let brain = HttpServer::builder()
        .bind("127.0.0.1:0", echo)
        .await
        .unwrap();
    let url = format!("http://{}", brain.local_addr());
    let registry =
        json!({"components": [{"id": "brain-1", "type": "Brain", "url": url}]}).to_string();
    let postoffice =
        Peer::start(
            move |(head, _)| match head.uri.path_and_query().map(|p| p.as_str()) {
                Some("/requestComponent?id=brain-1" | "/requestComponent?type=Brain") => {
                    reply(200, &registry)
                }
                _ => reply(200, r#"{"components":[]}"#),
            },
        )
        .await;
    let resolver = PostOfficeResolver::builder(postoffice.url())
        .build()
        .unwrap();
    let transport = HttpTransport::builder(resolver).build().unwrap();

    let delivery = transport
        .clone()
        .oneshot(Message::request("brain-1", json!(1)))
        .await
        .unwrap();
    assert_eq!(
        delivery.reply().and_then(Message::content),
        Some(&json!("pong"))
    );
    assert_eq!(postoffice.requests(), 1, "found by id");
    transport
        .clone()
        .oneshot(Message::request("brain-1", json!(2)))
        .await
        .unwrap();
    assert_eq!(postoffice.requests(), 1, "the answer is cached");

    transport
        .clone()
        .oneshot(Message::request("Brain", json!(3)))
        .await
        .unwrap();
    assert_eq!(postoffice.requests(), 3, "by id, then by type");

    let error = transport
        .oneshot(Message::request("nobody", json!(4)))
        .await
        .unwrap_err();
    assert_eq!(
        (error.kind(), error.class()),
        (ErrorKind::NoRoute, ErrorClass::NotDelivered)
    );
    assert!(error.to_string().contains("`nobody`"), "{error}");
}

#[tokio::test]
async fn an_address_that_refuses_connections_is_looked_up_again() {
    let pong = |answer: &'static str| {
        tower::service_fn(move |m: Message| async move {
            Ok::<_, Infallible>(Some(m.reply(json!(answer))))
        })
    };
    let first = HttpServer::builder()
        .bind("127.0.0.1:0", pong("first"))
        .await
        .unwrap();
    let second = HttpServer::builder()
        .bind("127.0.0.1:0", pong("second"))
        .await
        .unwrap();
    let registry = |server: &HttpServer| {
        json!({"components": [{"id": "brain-1", "type": "Brain",
            "url": format!("http://{}", server.local_addr())}]})
        .to_string()
    };
    let answer = std::sync::Arc::new(std::sync::Mutex::new(registry(&first)));
    let current = answer.clone();
    let postoffice = Peer::start(move |_| reply(200, &current.lock().unwrap())).await;
    // No idle connections kept: every call connects, as one does after the
    // peer's process is gone.
    let transport = HttpTransport::builder(
        PostOfficeResolver::builder(postoffice.url())
            .build()
            .unwrap(),
    )
    .pool_max_idle_per_host(0)
    .build()
    .unwrap();
    let send = |n: u32| {
        transport
            .clone()
            .oneshot(Message::request("brain-1", json!(n)))
    };
    let reply_of =
        |delivery: stage7_transport::Delivery| delivery.reply().and_then(Message::content).cloned();

    assert_eq!(reply_of(send(1).await.unwrap()), Some(json!("first")));
    assert_eq!(postoffice.requests(), 1);

    // The component moves: its old address refuses connections, the
    // PostOffice knows the new one.
    first.shutdown(Duration::ZERO).await.unwrap();
    *answer.lock().unwrap() = registry(&second);
    let error = send(2).await.unwrap_err();
    assert_eq!(
        (error.kind(), error.class()),
        (ErrorKind::Unavailable, ErrorClass::NotDelivered),
        "{error}"
    );
    assert_eq!(
        postoffice.requests(),
        1,
        "the first answer was still cached"
    );

    let moved = send(3).await.unwrap();
    assert_eq!(reply_of(moved), Some(json!("second")));
    assert_eq!(
        postoffice.requests(),
        2,
        "the refused address was forgotten and looked up again"
    );
    second.shutdown(Duration::ZERO).await.unwrap();
}

#[tokio::test]
async fn calls_that_need_the_same_recipient_share_one_lookup() {
    let brain = HttpServer::builder()
        .bind(
            "127.0.0.1:0",
            tower::service_fn(|m: Message| async move {
                Ok::<_, Infallible>(Some(m.reply(json!("pong"))))
            }),
        )
        .await
        .unwrap();
    let registry = json!({"components": [{"id": "brain-1", "type": "Brain",
        "url": format!("http://{}", brain.local_addr())}]})
    .to_string();
    let postoffice =
        Peer::start(
            move |(head, _)| match head.uri.path_and_query().map(|p| p.as_str()) {
                Some("/requestComponent?id=brain-1") => reply(200, &registry),
                _ => reply(200, r#"{"components":[]}"#),
            },
        )
        .await;
    let transport = HttpTransport::builder(
        PostOfficeResolver::builder(postoffice.url())
            .build()
            .unwrap(),
    )
    .build()
    .unwrap();
    // On this single-threaded runtime every call starts, and finds the
    // lookup in flight, before the PostOffice's first answer is read.
    let mut calls = tokio::task::JoinSet::new();
    for n in 0..50 {
        calls.spawn(
            transport
                .clone()
                .oneshot(Message::request("brain-1", json!(n))),
        );
        calls.spawn(
            transport
                .clone()
                .oneshot(Message::request("nobody", json!(n))),
        );
    }
    let (mut served, mut unknown) = (0, 0);
    while let Some(result) = calls.join_next().await {
        match result.unwrap() {
            Ok(delivery) => {
                assert_eq!(
                    delivery.reply().and_then(Message::content),
                    Some(&json!("pong"))
                );
                served += 1;
            }
            Err(error) => {
                assert_eq!(error.kind(), ErrorKind::NoRoute, "{error}");
                assert!(error.to_string().contains("`nobody`"), "{error}");
                unknown += 1;
            }
        }
    }
    assert_eq!((served, unknown), (50, 50));
    assert_eq!(
        postoffice.requests(),
        3,
        "one query for brain-1; for nobody, one by id and one by type"
    );
}

#[tokio::test]
async fn a_postoffice_that_is_down_or_confused_is_not_delivered() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let down = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let transport = HttpTransport::builder(PostOfficeResolver::builder(&*down).build().unwrap())
        .build()
        .unwrap();
    let error = transport.oneshot(call()).await.unwrap_err();
    assert_eq!(
        (error.kind(), error.class()),
        (ErrorKind::Unavailable, ErrorClass::NotDelivered)
    );
    assert!(
        error
            .to_string()
            .contains("cannot resolve `peer` at the PostOffice"),
        "{error}"
    );

    let confused = Peer::start(|_| reply(200, r#"{"services": []}"#)).await;
    let transport =
        HttpTransport::builder(PostOfficeResolver::builder(confused.url()).build().unwrap())
            .build()
            .unwrap();
    let error = transport.oneshot(call()).await.unwrap_err();
    assert_eq!(
        (error.kind(), error.class()),
        (ErrorKind::Protocol, ErrorClass::NotDelivered)
    );

    // Behind a static table in a chain, the PostOffice being down says more
    // than the table not knowing the name.
    let chain = ResolverChain::new()
        .or(StaticResolver::default())
        .or(PostOfficeResolver::builder(&*down).build().unwrap());
    let error = HttpTransport::builder(chain)
        .build()
        .unwrap()
        .oneshot(call())
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Unavailable);
}

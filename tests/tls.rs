//! TLS on both paths, over real sockets with a CA made at test time:
//! `amqps://` through a TLS hop in front of the real broker, `https://`
//! between two entities with no broker, and the clear error a client gets
//! when it does not trust the certificate.

mod support;

use std::time::Duration;

use serde_json::json;
use stage7_transport::http::{PostOfficeClient, StaticResolver};
use stage7_transport::{
    AmqpTransport, Config, ErrorClass, ErrorKind, HttpServer, HttpTransport, Message, Route, Secret,
};
use support::tls::{TestCa, TlsProxy};
use support::{amqp_url, echo, entity, host_port, require_broker, unique};
use tower::ServiceExt;

/// `url` (the test broker's) as an `amqps://` URL to `localhost:{port}`,
/// with its credentials and vhost.
fn amqps_url(url: &str, port: u16) -> String {
    let upstream = host_port(url);
    let through = format!("localhost:{port}");
    let url = url.replacen("amqp://", "amqps://", 1);
    if url.contains(&upstream) {
        url.replacen(&upstream, &through, 1)
    } else {
        url.replacen("@localhost", &format!("@{through}"), 1)
            .replacen("@127.0.0.1", &format!("@{through}"), 1)
    }
}

/// A broker behind the TLS hop, and the `amqps://` URL to reach it.
async fn tls_broker(ca: &TestCa) -> (TlsProxy, String) {
    require_broker().await;
    let proxy = TlsProxy::start(ca, host_port(&amqp_url())).await;
    let url = amqps_url(&amqp_url(), proxy.addr.port());
    (proxy, url)
}

#[tokio::test]
async fn amqps_through_a_tls_listener_carries_calls() {
    let ca = TestCa::new();
    let (proxy, url) = tls_broker(&ca).await;
    let mut config = Config::from_vars([("RABBITMQ_URL", url.as_str())]).unwrap();
    config.tls_ca = Some(ca.bundle());

    let server_id = unique("tls-echo");
    let server = entity("TlsEcho", &server_id, echo(), config.clone())
        .start()
        .await
        .unwrap();
    let client = entity("TlsCaller", &unique("tls-caller"), echo(), config)
        .start()
        .await
        .unwrap();
    let delivery = client
        .call(Message::request(&server_id, json!({"over": "amqps"})))
        .await
        .unwrap();
    assert_eq!(delivery.route(), Route::Amqp, "the call must go over AMQP");
    assert_eq!(
        delivery.reply().and_then(Message::content),
        Some(&json!({"over": "amqps"}))
    );
    assert!(
        proxy.handshakes() >= 2,
        "both entities connected through TLS: {} handshakes",
        proxy.handshakes()
    );
    client.shutdown().await.unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn amqps_with_a_ca_that_did_not_sign_the_broker_fails_as_tls() {
    let ca = TestCa::new();
    let (proxy, url) = tls_broker(&ca).await;
    for (trusted, what) in [
        (Some(TestCa::new().bundle()), "another CA"),
        (None, "the system's roots only"),
    ] {
        let mut builder =
            AmqpTransport::builder(url.clone()).connect_timeout(Duration::from_secs(2));
        if let Some(bundle) = trusted {
            builder = builder.tls_ca(bundle);
        }
        let transport = builder.build().unwrap();
        assert!(
            tokio::time::timeout(Duration::from_secs(10), transport.first_attempt())
                .await
                .is_ok(),
            "{what}: the first connection attempt never ended"
        );
        let error = transport
            .clone()
            .oneshot(Message::request("anyone", json!(1)))
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Tls, "{what}: {error}");
        assert_eq!(error.class(), ErrorClass::NotDelivered, "{what}: {error}");
        let text = error.to_string();
        assert!(text.contains("TLS handshake"), "{what}: {text}");
        assert!(text.contains("certificate"), "{what}: {text}");
        assert!(!text.contains("guest:guest"), "{what}: {text}");
        transport.close();
    }
    assert_eq!(proxy.handshakes(), 0, "no handshake may succeed");
}

/// An entity serving `https://` with the test CA's certificate, requiring
/// `token`, with no broker to reach.
async fn https_entity(ca: &TestCa, token: &str) -> stage7_transport::Entity {
    let dir = std::env::temp_dir().join(unique("stage7-tls"));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = ca.write_identity(&dir);
    let config = Config::from_vars([
        ("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:1/%2f"),
        ("STAGE7_HTTP_TOKEN", token),
        ("STAGE7_TLS_CERT_FILE", cert.to_str().unwrap()),
        ("STAGE7_TLS_KEY_FILE", key.to_str().unwrap()),
    ])
    .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    entity("TlsServer", &unique("https-server"), echo(), config)
        .start()
        .await
        .unwrap()
}

#[tokio::test]
async fn https_between_two_entities_without_a_broker() {
    let ca = TestCa::new();
    let server = https_entity(&ca, "s3cret").await;
    assert!(
        server.url().starts_with("https://127.0.0.1:"),
        "{}",
        server.url()
    );

    let dir = std::env::temp_dir().join(unique("stage7-ca"));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.ca_pem()).unwrap();
    let config = Config::from_vars([
        ("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:1/%2f"),
        ("STAGE7_HTTP_TOKEN", "s3cret"),
        ("STAGE7_TLS_CA_FILE", ca_file.to_str().unwrap()),
    ])
    .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let client = entity("TlsClient", &unique("https-client"), echo(), config)
        .route(server.id(), server.url())
        .start()
        .await
        .unwrap();
    let delivery = client
        .call(Message::request(server.id(), json!({"over": "https"})))
        .await
        .unwrap();
    assert_eq!(delivery.route(), Route::Http);
    assert_eq!(
        delivery.reply().and_then(Message::content),
        Some(&json!({"over": "https"}))
    );
    client.shutdown().await.unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn https_with_a_ca_that_did_not_sign_the_peer_fails_as_tls() {
    let ca = TestCa::new();
    let server = HttpServer::builder()
        .tls(ca.identity())
        .bind("127.0.0.1:0", echo())
        .await
        .unwrap();
    let url = format!("https://localhost:{}", server.local_addr().port());
    let routes = || StaticResolver::new([("peer", url.as_str())]).unwrap();

    let trusting = HttpTransport::builder(routes())
        .tls_ca(ca.bundle())
        .build()
        .unwrap();
    let delivery = trusting
        .oneshot(Message::request("peer", json!("hello")))
        .await
        .unwrap();
    assert_eq!(
        delivery.reply().and_then(Message::content),
        Some(&json!("hello"))
    );

    for (builder, what) in [
        (
            HttpTransport::builder(routes()).tls_ca(TestCa::new().bundle()),
            "another CA",
        ),
        (HttpTransport::builder(routes()), "the system's roots only"),
    ] {
        let error = builder
            .build()
            .unwrap()
            .oneshot(Message::request("peer", json!("hello")))
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Tls, "{what}: {error}");
        assert_eq!(error.class(), ErrorClass::NotDelivered, "{what}: {error}");
        let text = error.to_string();
        assert!(text.contains("TLS handshake"), "{what}: {text}");
        assert!(text.contains("certificate"), "{what}: {text}");
    }

    let error = PostOfficeClient::builder(url.as_str())
        .tls_ca(TestCa::new().bundle())
        .build()
        .unwrap()
        .lookup_id("anyone")
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Tls, "{error}");
    assert_eq!(error.class(), ErrorClass::NotDelivered, "{error}");

    server.shutdown(Duration::from_secs(1)).await.unwrap();
}

#[tokio::test]
async fn an_https_endpoint_refuses_a_wrong_token_and_plain_http() {
    let ca = TestCa::new();
    let server = HttpServer::builder()
        .tls(ca.identity())
        .token(Secret::new("old"))
        .token(Secret::new("new"))
        .bind("127.0.0.1:0", echo())
        .await
        .unwrap();
    let port = server.local_addr().port();
    let call = |base: String, token: &str| {
        let transport = HttpTransport::builder(StaticResolver::new([("peer", base)]).unwrap())
            .tls_ca(ca.bundle())
            .token(Secret::new(token))
            .build()
            .unwrap();
        transport.oneshot(Message::request("peer", json!(1)))
    };
    let https = format!("https://127.0.0.1:{port}");
    for token in ["old", "new"] {
        call(https.clone(), token).await.unwrap();
    }
    let error = call(https, "older").await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Unauthorized, "{error}");
    let error = call(format!("http://127.0.0.1:{port}"), "new")
        .await
        .unwrap_err();
    assert_ne!(error.class(), ErrorClass::Rejected, "{error}");
    server.shutdown(Duration::from_secs(1)).await.unwrap();
}

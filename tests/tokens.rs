//! Where the bearer token goes, watched by recording peers on real
//! sockets: never over plain `http://` to an address that is not loopback
//! (this machine's own network address, found at test time), never to a
//! host the PostOffice names outside the configured set, unless allowed.

mod support;

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use stage7_transport::http::{PostOfficeClient, PostOfficeResolver, StaticResolver};
use stage7_transport::{
    Config, ErrorKind, HttpServer, HttpTransport, Message, MessageType, Secret,
};
use support::echo;
use support::peer::{Peer, reply};
use tower::ServiceExt;

/// The `Authorization` header of every request a peer received, in order.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Option<String>>>>);

impl Seen {
    fn all(&self) -> Vec<Option<String>> {
        self.0.lock().unwrap().clone()
    }
}

/// A peer on `addr` that records the `Authorization` header of each
/// request and answers `status` with `body`.
async fn recording(addr: SocketAddr, status: u16, body: &'static str) -> (Peer, Seen) {
    let seen = Seen::default();
    let record = seen.clone();
    let peer = Peer::start_on(addr, move |(parts, _)| {
        let authorization = parts
            .headers
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_owned());
        record.0.lock().unwrap().push(authorization);
        reply(status, body)
    })
    .await;
    (peer, seen)
}

/// This machine's address on its network (not loopback): the source
/// address of a route out, found without sending anything (a UDP socket
/// only picks its route when it connects), else `hostname -I`.
fn machine_address() -> IpAddr {
    let routed = UdpSocket::bind("0.0.0.0:0")
        .and_then(|socket| {
            socket.connect("203.0.113.1:9")?;
            socket.local_addr()
        })
        .map(|addr| addr.ip())
        .ok()
        .filter(|ip| !ip.is_loopback() && !ip.is_unspecified());
    let listed = || {
        let output = std::process::Command::new("hostname")
            .arg("-I")
            .output()
            .ok()?;
        String::from_utf8_lossy(&output.stdout)
            .split_whitespace()
            .filter_map(|word| word.parse::<IpAddr>().ok())
            .find(|ip| ip.is_ipv4() && !ip.is_loopback())
    };
    routed.or_else(listed).expect(
        "this test needs a network address of this machine that is not loopback (a default \
         route or an address listed by `hostname -I`); none was found",
    )
}

fn statement(recipient: &str) -> Message {
    Message::new(MessageType::Statement)
        .with_recipient(recipient)
        .with_content(json!("hi"))
}

#[tokio::test]
async fn the_token_never_crosses_plain_http_to_an_address_that_is_not_loopback() {
    let address = machine_address();
    let (peer, seen) = recording(SocketAddr::new(address, 0), 202, "").await;
    let config = |allow: &str| {
        Config::from_vars([
            ("PEER_URL", peer.url()),
            ("STAGE7_HTTP_TOKEN", "s3cret".to_owned()),
            ("STAGE7_ALLOW_PLAINTEXT_TOKEN", allow.to_owned()),
        ])
        .unwrap()
    };

    let strict = HttpTransport::from_config(&config("0")).unwrap();
    strict.oneshot(statement("peer")).await.unwrap();
    let allowed = HttpTransport::from_config(&config("1")).unwrap();
    allowed.oneshot(statement("peer")).await.unwrap();
    assert_eq!(
        seen.all(),
        [None, Some("Bearer s3cret".to_owned())],
        "to {address}: no token by default, the token once allowed"
    );

    // The same rule for the PostOffice's own URL.
    let (postoffice, asked) =
        recording(SocketAddr::new(address, 0), 200, r#"{"components":[]}"#).await;
    for allow in [false, true] {
        PostOfficeClient::builder(postoffice.url())
            .token(Secret::new("s3cret"))
            .allow_plaintext_token(allow)
            .build()
            .unwrap()
            .lookup_id("anyone")
            .await
            .unwrap();
    }
    assert_eq!(asked.all(), [None, Some("Bearer s3cret".to_owned())]);
}

#[tokio::test]
async fn a_refused_call_says_why_the_token_stayed_home() {
    let (peer, seen) = recording(SocketAddr::new(machine_address(), 0), 401, "").await;
    let transport = HttpTransport::builder(StaticResolver::new([("peer", peer.url())]).unwrap())
        .token(Secret::new("s3cret"))
        .build()
        .unwrap();
    let error = transport.oneshot(statement("peer")).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Unauthorized, "{error}");
    let text = error.to_string();
    assert!(text.contains("the bearer token was not sent"), "{text}");
    assert!(text.contains("STAGE7_ALLOW_PLAINTEXT_TOKEN"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
    assert_eq!(seen.all(), [None]);
}

#[tokio::test]
async fn urls_the_postoffice_names_get_the_token_only_when_their_host_is_configured() {
    // Both on loopback, so only the host rule can withhold the token.
    let (collector, collected) = recording("127.0.0.1:0".parse().unwrap(), 202, "").await;
    let answer: &'static str = Box::leak(
        format!(
            r#"{{"components":[{{"id":"target","type":"Target","url":"{}"}}]}}"#,
            collector.url()
        )
        .into_boxed_str(),
    );
    let (postoffice, asked) = recording("127.0.0.1:0".parse().unwrap(), 200, answer).await;

    let send = |extra_host: Option<String>| {
        let resolver = PostOfficeResolver::builder(postoffice.url())
            .token(Secret::new("s3cret"))
            .ttl(Duration::ZERO)
            .build()
            .unwrap();
        let mut builder = HttpTransport::builder(resolver).token(Secret::new("s3cret"));
        if let Some(host) = extra_host {
            builder = builder.token_host(host);
        }
        builder.build().unwrap().oneshot(statement("target"))
    };
    send(None).await.unwrap();
    assert_eq!(
        collected.all(),
        [None],
        "a registered URL collects no token"
    );
    assert!(
        asked
            .all()
            .iter()
            .all(|seen| seen.as_deref() == Some("Bearer s3cret")),
        "the configured PostOffice gets it: {:?}",
        asked.all()
    );

    send(Some(collector.addr.to_string())).await.unwrap();
    assert_eq!(
        collected.all(),
        [None, Some("Bearer s3cret".to_owned())],
        "a host on the allow-list gets it"
    );

    let config = Config::from_vars([
        ("POSTOFFICE_URL", postoffice.url()),
        ("STAGE7_HTTP_TOKEN", "s3cret".to_owned()),
        (
            "STAGE7_HTTP_TOKEN_HOSTS",
            format!("other, {}", collector.addr),
        ),
    ])
    .unwrap();
    HttpTransport::from_config(&config)
        .unwrap()
        .oneshot(statement("target"))
        .await
        .unwrap();
    assert_eq!(
        collected.all().last(),
        Some(&Some("Bearer s3cret".to_owned())),
        "STAGE7_HTTP_TOKEN_HOSTS extends the set"
    );
}

#[tokio::test]
async fn an_endpoint_accepts_each_of_its_tokens() {
    let config = Config::from_vars([
        ("STAGE7_HTTP_TOKEN", "new"),
        ("STAGE7_HTTP_TOKENS", "old, older"),
    ])
    .unwrap();
    let mut server = HttpServer::builder();
    for token in config.http_token.iter().chain(&config.http_accepted_tokens) {
        server = server.token(token.clone());
    }
    let server = server.bind("127.0.0.1:0", echo()).await.unwrap();
    let url = format!("http://{}", server.local_addr());
    let call = |token: &str| {
        HttpTransport::builder(StaticResolver::new([("peer", url.as_str())]).unwrap())
            .token(Secret::new(token))
            .build()
            .unwrap()
            .oneshot(Message::request("peer", json!(1)))
    };
    for token in ["new", "old", "older"] {
        call(token).await.unwrap();
    }
    for token in ["ne", "newer", "Old"] {
        let error = call(token).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Unauthorized, "{token}: {error}");
    }
    server.shutdown(Duration::from_secs(1)).await.unwrap();
}

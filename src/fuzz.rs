//! Entry points for `cargo fuzz` (the `fuzz/` package) and the test that
//! replays its corpus: compiled only for tests and under `--cfg fuzzing`
//! (which cargo-fuzz sets), never part of the API.
//!
//! Each takes arbitrary bytes and must not panic; each checks what must
//! hold whatever the input:
//!
//! | target | code path | holds |
//! |---|---|---|
//! | `message` | [`Codec::decode`], [`Codec::decode_received`] | a decoded message encodes, and decodes back equal |
//! | `http_endpoint` | the endpoint serving one connection (hyper, token, checks, decode, dedup, handler) | what it writes back is HTTP responses |
//! | `amqp_delivery` | AMQP basic properties as parsed from a content header, then the consumer's and the reply consumer's decoding | no panic |

use std::cell::RefCell;

use crate::message::Codec;

/// A message decoder that accepts what it decodes back.
pub fn message(data: &[u8]) {
    let codec = Codec::default();
    let _ = codec.decode_received(data, Some("transport-id"));
    let Ok(message) = codec.decode(data) else {
        return;
    };
    let encoded = match codec.encode(&message) {
        Ok(encoded) => encoded,
        Err(error) if error.is_too_large() => return,
        Err(error) => panic!("a decoded message does not encode: {error}"),
    };
    let again = codec
        .decode(&encoded)
        .unwrap_or_else(|e| panic!("an encoded message does not decode: {e}"));
    assert!(again == message, "the message changed on the way back");
}

/// The HTTP endpoint serving a connection that sends `data`.
pub fn http_endpoint(data: &[u8]) {
    let answer = block_on(crate::http::server::fuzz_connection(data));
    // hyper answers an HTTP/1.0 request in HTTP/1.0.
    assert!(
        answer.is_empty() || answer.starts_with(b"HTTP/1.1 ") || answer.starts_with(b"HTTP/1.0 "),
        "the endpoint wrote something other than a response: {:?}",
        String::from_utf8_lossy(&answer[..answer.len().min(64)])
    );
}

/// An AMQP delivery's properties and body, decoded as received.
pub fn amqp_delivery(data: &[u8]) {
    crate::amqp::fuzz_delivery(data);
}

/// Runs `future` on this thread's runtime, made once: a runtime per input
/// would cost more than the input.
fn block_on<F: Future>(future: F) -> F::Output {
    thread_local! {
        static RUNTIME: RefCell<Option<tokio::runtime::Runtime>> = const { RefCell::new(None) };
    }
    RUNTIME.with(|runtime| {
        let mut runtime = runtime.borrow_mut();
        let runtime = runtime.get_or_insert_with(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap_or_else(|e| panic!("no runtime for fuzzing: {e}"))
        });
        runtime.block_on(future)
    })
}

/// Every input the fuzzers kept (`fuzz/corpus/<target>/`) and every crash
/// they found, fixed since (`fuzz/regressions/<target>/`), fed through the
/// same entry points: what fuzzing proved stays proven.
#[cfg(test)]
mod regressions {
    use std::path::PathBuf;

    fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz");
        let mut inputs = Vec::new();
        for dir in ["corpus", "regressions"] {
            let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
                continue;
            };
            for entry in entries {
                let path = entry.unwrap().path();
                let bytes = std::fs::read(&path).unwrap();
                inputs.push((path, bytes));
            }
        }
        inputs.sort();
        inputs
    }

    fn replay(target: &str, run: fn(&[u8])) {
        let inputs = inputs(target);
        assert!(
            !inputs.is_empty(),
            "no corpus in fuzz/corpus/{target}: run scripts/fuzz"
        );
        for (path, bytes) in inputs {
            let outcome = std::panic::catch_unwind(|| run(&bytes));
            assert!(outcome.is_ok(), "{} fails", path.display());
        }
    }

    #[test]
    fn message_corpus() {
        replay("message", super::message);
    }

    #[test]
    fn http_endpoint_corpus() {
        replay("http_endpoint", super::http_endpoint);
    }

    #[test]
    fn amqp_delivery_corpus() {
        replay("amqp_delivery", super::amqp_delivery);
    }

    #[test]
    fn a_valid_request_is_answered() {
        let body = r#"{"type":"request","sender":"s","requiresSync":true,"id":"a","content":7}"#;
        let request = format!(
            "POST /message HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            crate::http::server::FUZZ_TOKEN,
            body.len()
        );
        let answer = super::block_on(crate::http::server::fuzz_connection(request.as_bytes()));
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
        assert!(answer.contains(r#""content":7"#), "{answer}");
    }
}

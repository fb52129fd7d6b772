//! The wire format against JSON fixtures shaped like the TypeScript
//! services' messages (`tests/fixtures/`).

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use stage7_transport::{Codec, ErrorKind, Message, MessageType};

fn fixtures(kind: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(kind);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    files
        .into_iter()
        .map(|path| (name(&path), std::fs::read(&path).unwrap()))
        .collect()
}

fn name(path: &Path) -> String {
    path.file_stem().unwrap().to_string_lossy().into_owned()
}

/// What a round trip must give back: the original, with an id when it had
/// none, and without the `null`s of optional string fields (TypeScript's
/// way of writing "absent").
fn expected(original: &Value, id: &str) -> Value {
    let mut expected = original.clone();
    let object = expected.as_object_mut().unwrap();
    object.entry("id").or_insert_with(|| json!(id));
    for field in [
        "recipient",
        "timestamp",
        "clientId",
        "missionId",
        "visibility",
        "requiresSync",
    ] {
        if object.get(field) == Some(&Value::Null) {
            object.remove(field);
        }
    }
    expected
}

#[test]
fn valid_fixtures_survive_a_round_trip_unchanged() {
    for (name, bytes) in fixtures("valid") {
        let message = Message::from_json(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let encoded = message.to_json().unwrap();
        let original: Value = serde_json::from_slice(&bytes).unwrap();
        let back: Value = serde_json::from_slice(&encoded).unwrap();
        assert_eq!(back, expected(&original, message.id()), "{name}");
        assert_eq!(
            Message::from_json(&encoded).unwrap(),
            message,
            "{name}: decode(encode(m)) == m"
        );
    }
}

#[test]
fn fixture_fields_land_where_they_belong() {
    let valid: std::collections::HashMap<_, _> = fixtures("valid").into_iter().collect();
    let agent = Message::from_json(&valid["agent_message"]).unwrap();
    assert_eq!(agent.kind(), &MessageType::AgentMessage);
    assert_eq!(agent.client_id(), Some("client-7"));
    assert_eq!(agent.mission_id(), Some("mission-42"));
    assert_eq!(agent.visibility(), Some("user"));
    assert!(!agent.requires_sync());

    let register = Message::from_json(&valid["register_without_id"]).unwrap();
    assert_eq!(register.kind(), &MessageType::Register);
    assert_eq!(
        uuid::Uuid::parse_str(register.id())
            .unwrap()
            .get_version_num(),
        7
    );

    let extra = Message::from_json(&valid["extra_fields"]).unwrap();
    assert!(extra.requires_sync());
    assert_eq!(extra.extra()["priority"], json!(3));
    assert_eq!(extra.extra()["metadata"]["nested"], json!({"deep": null}));
    assert_eq!(extra.data(), Some(&json!({"anything": [1, 2.5, "three"]})));

    let custom = Message::from_json(&valid["unknown_type_and_nulls"]).unwrap();
    assert_eq!(custom.kind(), &MessageType::Other("customFlowEvent".into()));
    assert_eq!(custom.content(), Some(&Value::Null));
}

#[test]
fn invalid_fixtures_get_errors_that_name_the_problem() {
    let expectations = [
        ("array", "expected a message object"),
        ("empty", "empty body"),
        ("empty_id", "field `id` must not be empty"),
        ("missing_sender", "missing field `sender`"),
        ("missing_type", "missing field `type`"),
        ("not_utf8", "the body is not UTF-8"),
        ("numeric_id", "field `id`"),
        ("string", "expected a message object"),
        ("truncated", "malformed JSON"),
        ("wrong_type_requires_sync", "field `requiresSync`"),
        ("wrong_type_sender", "field `sender`"),
    ];
    let fixtures = fixtures("invalid");
    assert_eq!(
        fixtures.len(),
        expectations.len(),
        "every invalid fixture has an expectation"
    );
    for ((name, bytes), (expected_name, fragment)) in fixtures.iter().zip(expectations) {
        assert_eq!(name, expected_name);
        let error = Message::from_json(bytes).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidMessage, "{name}: {error}");
        assert!(error.is_rejected());
        assert!(
            error.to_string().contains(fragment),
            "{name}: `{error}` should mention `{fragment}`"
        );
    }
}

#[test]
fn size_limit_applies_on_decode_and_encode() {
    let codec = Codec::new(512);
    let big = json!({"type": "statement", "sender": "s", "content": "x".repeat(600)}).to_string();
    let error = codec.decode(big.as_bytes()).unwrap_err();
    assert!(error.is_too_large());
    assert!(error.to_string().contains("limit of 512 bytes"), "{error}");
    let message = Message::new(MessageType::Statement).with_content(json!("x".repeat(600)));
    assert!(codec.encode(&message).unwrap_err().is_too_large());
}

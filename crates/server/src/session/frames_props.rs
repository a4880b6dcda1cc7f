//! "Bad bytes" properties of the client frame parser: whatever text a client sends, parsing it
//! never panics, and it yields a frame exactly when the text is one of the contract's two client
//! frames, `{"type": "message", "body": "..."}` or `{"type": "leave"}`. Everything else is an
//! error, which the session answers with `invalid_message`.
//!
//! The parser is `serde_json::from_str::<ClientFrame>`, as the session calls it. Checking the
//! body's length and blankness is [`roomgate_domain::MessageBody`]'s job, so any string body
//! is a well-formed frame here.
//!
//! serde's derived reading of an internally tagged enum ignores unknown fields and also reads
//! the array form (`["leave"]`, `["message", "hi"]`); these properties are what keeps a parser
//! from drifting back to it (`the_leniencies_of_a_derived_reading_are_refused` pins one of each).

use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{Map, Value, json};

use super::ClientFrame;

/// What the contract says a JSON value is as a client frame: `None` if it is none.
#[derive(Debug, PartialEq)]
enum Expected {
    Message(String),
    Leave,
}

/// The oracle: an object with exactly the keys the frame has, of the right types.
fn expected(value: &Value) -> Option<Expected> {
    let object = value.as_object()?;
    match object.get("type")?.as_str()? {
        "leave" if object.len() == 1 => Some(Expected::Leave),
        "message" if object.len() == 2 => {
            Some(Expected::Message(object.get("body")?.as_str()?.to_owned()))
        }
        _ => None,
    }
}

fn parse(text: &str) -> Option<Expected> {
    match serde_json::from_str::<ClientFrame>(text).ok()? {
        ClientFrame::Message { body } => Some(Expected::Message(body)),
        ClientFrame::Leave => Some(Expected::Leave),
    }
}

fn lossy(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(any::<u8>(), 0..max)
        .prop_map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
}

/// Strings a frame's fields are made of: the real tags, their near misses, and anything.
fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "type", "body", "message", "leave", "Message", "LEAVE", "leave ", "", "error",
            "joined", "messages", "Type", "\u{0}",
        ])
        .prop_map(str::to_owned),
        1 => any::<String>(),
    ]
}

/// Arbitrary JSON trees, with the frames' words as keys and values often enough to matter.
fn json_tree() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        word().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(word(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Objects shaped like frames, each part present or not, right or wrong, plus stray fields.
fn frame_like() -> impl Strategy<Value = Value> {
    let tag = prop_oneof![
        3 => prop::sample::select(vec!["message", "leave"]).prop_map(Value::from),
        1 => json_tree(),
    ];
    let body = prop_oneof![
        3 => any::<String>().prop_map(Value::String),
        1 => json_tree(),
    ];
    let extra = prop::collection::btree_map(word(), json_tree(), 0..2);
    (
        prop::option::weighted(0.9, tag),
        prop::option::weighted(0.6, body),
        prop_oneof![2 => Just(Default::default()), 1 => extra],
    )
        .prop_map(|(tag, body, extra)| {
            let mut object: Map<String, Value> = extra.into_iter().collect();
            if let Some(tag) = tag {
                object.insert("type".into(), tag);
            }
            if let Some(body) = body {
                object.insert("body".into(), body);
            }
            Value::Object(object)
        })
}

/// The array form of frames, `[tag, body?, ...]`.
fn frame_array() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec!["message", "leave"]).prop_map(Value::from),
        prop::collection::vec(
            prop_oneof![any::<String>().prop_map(Value::String), json_tree()],
            0..3,
        ),
    )
        .prop_map(|(tag, rest)| Value::Array(std::iter::once(tag).chain(rest).collect()))
}

/// Text a client might send: arbitrary bytes (lossy UTF-8), arbitrary strings, and frames
/// serialised and then cut short or with one character changed.
fn client_text() -> impl Strategy<Value = String> {
    let damaged = (
        frame_like(),
        any::<prop::sample::Index>(),
        any::<char>(),
        any::<bool>(),
    )
        .prop_map(|(value, at, c, cut)| {
            let mut chars: Vec<char> = value.to_string().chars().collect();
            let at = at.index(chars.len().max(1)).min(chars.len());
            if cut {
                chars.truncate(at);
            } else if at < chars.len() {
                chars[at] = c;
            }
            chars.into_iter().collect::<String>()
        });
    prop_oneof![lossy(256), any::<String>(), damaged]
}

/// JSON insignificant white space, to put between tokens.
fn ws() -> impl Strategy<Value = String> {
    "[ \t\r\n]{0,3}"
}

fn config(cases: u32) -> Config {
    Config {
        failure_persistence: None,
        ..Config::with_cases(cases)
    }
}

proptest! {
    #![proptest_config(config(512))]

    /// Arbitrary text never panics the parser, and whatever it accepts is valid JSON that
    /// the contract reads as that same frame.
    #[test]
    fn arbitrary_text_parses_only_to_the_frame_it_spells(text in client_text()) {
        if let Some(frame) = parse(&text) {
            let value: Value = serde_json::from_str(&text)
                .map_err(|e| TestCaseError::fail(format!("accepted non-JSON {text:?}: {e}")))?;
            prop_assert_eq!(Some(frame), expected(&value), "{:?}", text);
        }
    }

    /// A JSON value is a frame exactly when the contract says so: no unknown fields, no other
    /// types or tags, no missing or mistyped body, no array form.
    #[test]
    fn json_values_are_frames_exactly_when_the_contract_says(
        value in prop_oneof![json_tree(), frame_like(), frame_array()]
    ) {
        let text = value.to_string();
        prop_assert_eq!(parse(&text), expected(&value), "{}", text);
    }

    /// Any string body, however long, blank or exotic, comes through verbatim, whichever way
    /// round the fields are and however the JSON is spaced.
    #[test]
    fn message_frames_carry_their_body_verbatim(
        body in prop_oneof![any::<String>(), lossy(64), "[ \t\n]{0,4}", "x{3990,4010}"],
        body_first in any::<bool>(),
        spaces in prop::collection::vec(ws(), 8),
    ) {
        let tag = format!("{}\"type\"{}:{}\"message\"{}", spaces[0], spaces[1], spaces[2], spaces[3]);
        let body_json = json!(body).to_string();
        let body_field = format!("{}\"body\"{}:{}{body_json}{}", spaces[4], spaces[5], spaces[6], spaces[7]);
        let text = if body_first {
            format!("{{{body_field},{tag}}}")
        } else {
            format!("{{{tag},{body_field}}}")
        };
        prop_assert_eq!(parse(&text), Some(Expected::Message(body)), "{:?}", text);
    }

    #[test]
    fn leave_frames_parse_however_they_are_spaced(spaces in prop::collection::vec(ws(), 4)) {
        let text = format!("{{{}\"type\"{}:{}\"leave\"{}}}", spaces[0], spaces[1], spaces[2], spaces[3]);
        prop_assert_eq!(parse(&text), Some(Expected::Leave), "{:?}", text);
    }
}

/// What serde's derived reading of the tagged enum would accept and the contract refuses, one
/// example of each. Each must be an error (the session then answers `invalid_message`).
#[test]
fn the_leniencies_of_a_derived_reading_are_refused() {
    for text in [
        r#"{"type": "leave", "x": 1}"#,
        r#"{"type": "leave", "body": null}"#,
        r#"{"type": "message", "body": "hi", "x": 1}"#,
        r#"["leave"]"#,
        r#"["message", "hi"]"#,
    ] {
        assert_eq!(parse(text), None, "{text} must be refused");
    }
}

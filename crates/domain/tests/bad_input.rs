//! "Bad bytes" properties of the domain's parsers: whatever text arrives from outside, a parser
//! never panics, accepts exactly what the contract's rule allows (checked against an oracle
//! written here from `/work/shared/API.md`, not from the parsers), and a value it accepts gives
//! back the very text it was parsed from.

use proptest::prelude::*;
use proptest::test_runner::Config;
use roomgate_domain::{
    CAPACITY_HARD_LIMIT, Capacity, MessageBody, PASSWORD_MAX_BYTES, PasswordHash, RoomId, Ticket,
    Title, UserId,
};
use serde_json::Value;

// ---- Oracles: the contract's rules, written independently of the parsers. ----------------

/// `^[a-z0-9][a-z0-9-]{0,62}$`.
fn room_id_rule(s: &str) -> bool {
    let chars: Vec<char> = s.chars().collect();
    let slug = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    match chars.split_first() {
        Some((first, rest)) => {
            slug(*first) && rest.len() <= 62 && rest.iter().all(|&c| slug(c) || c == '-')
        }
        None => false,
    }
}

/// 1-64 characters of `[A-Za-z0-9_.-]`.
fn user_id_rule(s: &str) -> bool {
    let n = s.chars().count();
    (1..=64).contains(&n)
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-')
}

/// `min..=max` characters (Unicode scalar values, not bytes), and not only white space.
fn text_rule(s: &str, max: usize) -> bool {
    let n = s.chars().count();
    (1..=max).contains(&n) && !s.chars().all(char::is_whitespace)
}

/// A ticket's text is the canonical unpadded base64url form of exactly 32 bytes: 43 characters
/// of the URL-safe alphabet, the last of which carries 4 data bits and 2 zero bits of padding,
/// so that every accepted text is the one `to_text` would print.
fn ticket_rule(s: &str) -> bool {
    const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let sextets: Option<Vec<usize>> = s.chars().map(|c| ALPHABET.find(c)).collect();
    match sextets {
        Some(sextets) => sextets.len() == 43 && sextets[42] % 4 == 0,
        None => false,
    }
}

// ---- Inputs: arbitrary text, arbitrary bytes read as lossy UTF-8, and text near each rule. ----

/// Bytes as a server would see them after a lossy UTF-8 decode.
fn lossy(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(any::<u8>(), 0..max)
        .prop_map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
}

/// Text of every kind: arbitrary Unicode, lossy bytes, and white space and control characters.
fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        lossy(96),
        "[ \t\r\n\u{a0}\u{2028}\u{3000}\u{0}\u{7f}a-]{0,8}",
    ]
}

/// Text close to the room-id rule, so that both outcomes and both length edges are common.
fn near_room_id() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9-]{0,66}",
        "[a-z0-9][a-z0-9-]{60,64}",
        "[a-zA-Z0-9_. -]{1,8}",
        "[a-z0-9]{0,3}[A-Z_/%é\u{0}ſK][a-z0-9]{0,3}",
    ]
}

fn near_user_id() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9_.-]{0,68}",
        "[A-Za-z0-9_.-]{62,66}",
        "[A-Za-z0-9_. /@+é\u{0}-]{1,8}",
    ]
}

/// Text whose character count sits around `max`, in one-, two-, three- and four-byte characters,
/// so that a parser counting bytes instead of characters is caught.
fn around(max: usize) -> impl Strategy<Value = String> {
    let wide = prop::sample::select(vec!['x', 'é', '€', '𝄞', ' ', '\u{3000}']);
    (max - 3..=max + 3, wide, any::<char>()).prop_map(|(n, fill, last)| {
        let mut s: String = std::iter::repeat_n(fill, n.saturating_sub(1)).collect();
        s.push(last);
        s
    })
}

/// Ticket-shaped text: 41-45 characters of the alphabet (valid ones among them), sometimes with
/// one foreign character, and real tickets' text mutated in one place.
fn near_ticket() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9_-]{41,45}",
        "[A-Za-z0-9_-]{42}[A-Za-z0-9_-]",
        "[A-Za-z0-9_-]{20}[+/=. %é][A-Za-z0-9_-]{22}",
        (0..43usize, any::<char>()).prop_map(|(at, c)| {
            let mut chars: Vec<char> = Ticket::generate().to_text().chars().collect();
            chars[at] = c;
            chars.into_iter().collect()
        }),
    ]
}

/// Arbitrary JSON trees, to deserialize ids from values that are not strings at all.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any_text().prop_map(Value::String),
        near_room_id().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(any_text(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn config(cases: u32) -> Config {
    // Failures are reported with their minimal input; nothing is written next to the sources.
    Config {
        failure_persistence: None,
        ..Config::with_cases(cases)
    }
}

// ---- Properties. ----------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn room_ids_are_accepted_exactly_by_the_slug_rule(
        raw in prop_oneof![any_text(), near_room_id()]
    ) {
        match RoomId::parse(&raw) {
            Ok(id) => {
                prop_assert!(room_id_rule(&raw), "accepted {raw:?}");
                prop_assert_eq!(id.as_str(), raw.as_str());
                prop_assert_eq!(id.to_string(), raw.clone());
                // Serialising and parsing again gives the same id.
                let json = serde_json::to_string(&id).unwrap();
                prop_assert_eq!(serde_json::from_str::<RoomId>(&json).unwrap(), id);
            }
            Err(err) => {
                prop_assert!(!room_id_rule(&raw), "refused {raw:?}: {err}");
                prop_assert_eq!(err.field, "id");
            }
        }
    }

    #[test]
    fn user_ids_are_accepted_exactly_by_the_contract_rule(
        raw in prop_oneof![any_text(), near_user_id()]
    ) {
        match UserId::parse(&raw) {
            Ok(id) => {
                prop_assert!(user_id_rule(&raw), "accepted {raw:?}");
                prop_assert_eq!(id.as_str(), raw.as_str());
                prop_assert_eq!(id.to_string(), raw.clone());
            }
            Err(err) => {
                prop_assert!(!user_id_rule(&raw), "refused {raw:?}: {err}");
                prop_assert_eq!(err.field, "user_id");
            }
        }
    }

    #[test]
    fn titles_are_1_to_100_characters_and_not_blank(
        raw in prop_oneof![any_text(), around(100), Just(String::new())]
    ) {
        match Title::parse(&raw) {
            Ok(title) => {
                prop_assert!(text_rule(&raw, 100), "accepted {raw:?}");
                prop_assert_eq!(title.as_str(), raw.as_str());
                prop_assert_eq!(title.into_string(), raw);
            }
            Err(err) => {
                prop_assert!(!text_rule(&raw, 100), "refused {raw:?}: {err}");
                prop_assert_eq!(err.field, "title");
            }
        }
    }

    #[test]
    fn message_bodies_are_1_to_4000_characters_and_not_blank(
        raw in prop_oneof![any_text(), around(4000)]
    ) {
        match MessageBody::parse(&raw) {
            Ok(body) => {
                prop_assert!(text_rule(&raw, 4000), "accepted {} chars", raw.chars().count());
                prop_assert_eq!(body.as_str(), raw.as_str());
                prop_assert_eq!(body.into_string(), raw);
            }
            Err(err) => {
                prop_assert!(!text_rule(&raw, 4000), "refused {} chars: {err}", raw.chars().count());
                prop_assert_eq!(err.field, "body");
            }
        }
    }

    #[test]
    fn capacities_are_1_to_the_configured_max(
        value in prop_oneof![any::<u32>(), 0..=3u32, CAPACITY_HARD_LIMIT - 2..=CAPACITY_HARD_LIMIT + 2],
        max in prop_oneof![any::<u32>(), 0..=3u32, Just(10_000u32), CAPACITY_HARD_LIMIT - 1..=CAPACITY_HARD_LIMIT + 1],
    ) {
        let allowed = value >= 1 && value <= max && value <= CAPACITY_HARD_LIMIT;
        match Capacity::new(value, max) {
            Ok(capacity) => {
                prop_assert!(allowed, "accepted {value} with max {max}");
                prop_assert_eq!(capacity.get(), value);
            }
            Err(err) => {
                prop_assert!(!allowed, "refused {value} with max {max}: {err}");
                prop_assert_eq!(err.field, "capacity");
            }
        }
    }

    #[test]
    fn tickets_are_accepted_only_in_their_canonical_text_form(
        raw in prop_oneof![any_text(), near_ticket()]
    ) {
        match Ticket::parse(&raw) {
            Ok(ticket) => {
                prop_assert!(ticket_rule(&raw), "accepted {raw:?}");
                prop_assert_eq!(ticket.to_text(), raw);
            }
            Err(err) => {
                prop_assert!(!ticket_rule(&raw), "refused {raw:?}: {err}");
                prop_assert_eq!(err.field, "ticket");
            }
        }
    }

    /// Ids arriving inside JSON go through the same rule, whatever the JSON value is.
    #[test]
    fn ids_deserialize_only_from_strings_that_follow_their_rule(value in json()) {
        let as_str = value.as_str();
        let room = serde_json::from_value::<RoomId>(value.clone());
        prop_assert_eq!(room.is_ok(), as_str.is_some_and(room_id_rule), "{}", value);
        if let Ok(room) = room {
            prop_assert_eq!(Some(room.as_str()), as_str);
        }
        let user = serde_json::from_value::<UserId>(value.clone());
        prop_assert_eq!(user.is_ok(), as_str.is_some_and(user_id_rule), "{}", value);
        // The same through text, where escapes are decoded first.
        let text = value.to_string();
        prop_assert_eq!(serde_json::from_str::<RoomId>(&text).is_ok(), as_str.is_some_and(room_id_rule));
    }

    /// Out-of-range passwords are refused before any hashing; a stored hash that is not one
    /// verifies nothing; an over-long candidate never matches.
    #[test]
    fn passwords_out_of_range_are_refused_and_garbage_hashes_fail_closed(
        long in "[ -~é]{1,40}".prop_map(|s| s.repeat(PASSWORD_MAX_BYTES / s.len() + 1)),
        stored in any_text(),
        candidate in any_text(),
    ) {
        prop_assert!(long.len() > PASSWORD_MAX_BYTES);
        for raw in [String::new(), long.clone()] {
            let err = PasswordHash::hash(&raw).unwrap_err();
            prop_assert_eq!(err.field, "password");
        }
        let garbage = PasswordHash::from_stored(stored);
        prop_assert!(!garbage.verify(&candidate));
        prop_assert!(!garbage.verify(&long));
    }
}

proptest! {
    // Argon2id is deliberately slow (more so in a debug build): few cases.
    #![proptest_config(config(4))]

    /// Any 1-128 bytes of text is a password; its hash verifies it and nothing near it.
    #[test]
    fn passwords_in_range_hash_and_verify(
        raw in prop_oneof![lossy(PASSWORD_MAX_BYTES), "[ -~é€𝄞]{1,32}"]
            .prop_filter_map("1-128 bytes", |s| {
                let mut s = s;
                while s.len() > PASSWORD_MAX_BYTES {
                    s.pop();
                }
                (!s.is_empty()).then_some(s)
            })
    ) {
        let hash = PasswordHash::hash(&raw).unwrap();
        prop_assert!(hash.verify(&raw));
        let near = format!("{raw} ");
        prop_assert!(!hash.verify(&near));
    }
}

//! The contract document and the code cannot drift: every error code, close code and error-frame
//! code that `docs/API.md` lists exists here, and every one defined here is listed there.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use roomgate_api::{CloseCode, ErrorCode, FrameErrorCode};

fn contract() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/API.md");
    std::fs::read_to_string(path).expect("docs/API.md is readable")
}

/// The part of the document under `## heading`, up to the next `## `.
fn section<'a>(document: &'a str, heading: &str) -> &'a str {
    let start = document
        .find(&format!("\n## {heading}"))
        .unwrap_or_else(|| panic!("docs/API.md has a section {heading}"));
    let rest = &document[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |end| end + 3);
    &rest[..end]
}

/// Backticked words in the second column of the errors table: `| 409 | `room_full` | … |`.
fn documented_error_codes(document: &str) -> BTreeSet<String> {
    section(document, "Errors")
        .lines()
        .filter_map(|line| {
            let mut cells = line.split('|').map(str::trim);
            let _ = cells.next();
            let status = cells.next()?;
            let code = cells.next()?;
            (status.parse::<u16>().is_ok()).then(|| code.trim_matches('`').to_owned())
        })
        .collect()
}

/// Every number the WebSocket section gives as a close code (1000-1015, 4000-4999) in a bullet
/// that speaks of closing; a bullet runs from its `- ` to the next one.
fn documented_close_codes(document: &str) -> BTreeSet<u16> {
    let text = section(document, "WebSocket");
    let mut bullets: Vec<String> = Vec::new();
    for line in text.lines() {
        match bullets.last_mut() {
            Some(bullet) if line.starts_with("  ") => bullet.push_str(line),
            _ => bullets.push(line.to_owned()),
        }
    }
    bullets
        .iter()
        .filter(|bullet| bullet.starts_with("- ") && bullet.contains("close"))
        .flat_map(|bullet| {
            bullet
                .split(|c: char| !c.is_ascii_digit())
                .filter_map(|digits| digits.parse::<u16>().ok())
                .collect::<Vec<_>>()
        })
        .filter(|code| (1000..=1015).contains(code) || (4000..=4999).contains(code))
        .collect()
}

#[test]
fn every_error_code_is_documented_and_every_documented_one_exists() {
    let documented = documented_error_codes(&contract());
    let defined: BTreeSet<String> = ErrorCode::ALL
        .iter()
        .map(|code| code.as_str().to_owned())
        .collect();
    assert_eq!(
        documented, defined,
        "docs/API.md's errors table vs ErrorCode"
    );
}

#[test]
fn every_close_code_is_documented_and_every_documented_one_exists() {
    let documented = documented_close_codes(&contract());
    let defined: BTreeSet<u16> = CloseCode::ALL.iter().map(|code| code.code()).collect();
    assert_eq!(
        documented, defined,
        "docs/API.md's WebSocket section vs CloseCode"
    );
}

#[test]
fn every_error_frame_code_is_documented() {
    let document = contract();
    let websocket = section(&document, "WebSocket");
    for code in FrameErrorCode::ALL {
        assert!(
            websocket.contains(&format!("\"{}\"", code.as_str())),
            "docs/API.md's WebSocket section does not name the error frame code {}",
            code.as_str()
        );
    }
}

//! The browser client: three static files compiled into the binary, so there is no build step
//! and nothing to deploy beside the executable.

use std::sync::LazyLock;

use actix_web::{HttpResponse, get, http::header, web};
use roomgate_api::{CloseCode, rules};

use crate::error::ApiError;

const INDEX_HTML: &str = include_str!("../../web/index.html");
const APP_JS: &str = include_str!("../../web/app.js");
const STYLE_CSS: &str = include_str!("../../web/style.css");

#[get("/")]
pub async fn index() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(INDEX_HTML)
}

/// Where the client's files are served (the route below says the same; attributes take no
/// constants). The 405 table reads it.
pub const ASSET_PATH: &str = "/static/{file}";

#[get("/static/{file}")]
pub async fn asset(file: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let (body, content_type) = match file.as_str() {
        "app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        "style.css" => (STYLE_CSS, "text/css; charset=utf-8"),
        "contract.js" => (CONTRACT_JS.as_str(), "text/javascript; charset=utf-8"),
        _ => return Err(ApiError::NotFound),
    };
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body))
}

/// The parts of the contract the web client needs (close codes, id rules, limits), written from
/// `roomgate-api` so that the client holds no copy of them.
static CONTRACT_JS: LazyLock<String> = LazyLock::new(|| {
    let close: serde_json::Map<String, serde_json::Value> = CloseCode::ALL
        .into_iter()
        .map(|close| {
            let name = serde_json::to_value(close)
                .ok()
                .and_then(|name| name.as_str().map(str::to_owned))
                .unwrap_or_default();
            (name, close.code().into())
        })
        .collect();
    let contract = serde_json::json!({
        "close": close,
        "rules": {
            "roomIdPattern": rules::ROOM_ID_PATTERN,
            "userIdPattern": rules::USER_ID_PATTERN,
            "titleMaxChars": rules::TITLE_MAX_CHARS,
            "passwordMaxBytes": rules::PASSWORD_MAX_BYTES,
            "messageMaxChars": rules::MESSAGE_MAX_CHARS,
        },
    });
    format!(
        "// Served by Roomgate from its wire contract; do not copy these values.\n\
         window.ROOMGATE_CONTRACT = Object.freeze({contract});\n"
    )
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contract_script_names_every_close_code() {
        for close in CloseCode::ALL {
            assert!(
                CONTRACT_JS.contains(&format!(":{}", close.code())),
                "{close:?} missing from {}",
                *CONTRACT_JS
            );
        }
        assert!(CONTRACT_JS.contains(r#""room_full":4009"#));
        assert!(CONTRACT_JS.contains("roomIdPattern"));
    }
}

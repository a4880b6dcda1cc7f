//! Bearer tokens, the dev-token endpoint, per-IP limits and refusing to start insecurely.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use roomgate_api::{DevTokenResponse, ErrorCode};
use serde_json::json;

use crate::helpers::{AppOptions, Backend, error_of, settings_for, spawn_app, spawn_app_with};

const SECRET: &str = "a-test-secret-that-is-long-enough-0123456789";

fn token_signed_with(secret: &str, sub: &str, exp: i64) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": sub, "exp": exp}),
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn in_an_hour() -> i64 {
    chrono::Utc::now().timestamp() + 3600
}

#[tokio::test]
async fn dev_tokens_are_issued_for_valid_user_ids() {
    let app = spawn_app().await;
    let response = app
        .post(
            "/api/v1/dev/tokens",
            None,
            &json!({"user_id": "alice.b-c_d"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: DevTokenResponse = response.json().await.unwrap();
    assert_eq!(body.user_id, "alice.b-c_d");
    assert!(body.token.split('.').count() == 3);
    assert!(body.expires_at.ends_with('Z'));
    for bad in [
        json!({"user_id": ""}),
        json!({"user_id": "a b"}),
        json!({"user_id": "x".repeat(65)}),
        json!({}),
    ] {
        let (status, code, details) =
            error_of(app.post("/api/v1/dev/tokens", None, &bad).await).await;
        assert_eq!(
            (status, code),
            (StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest),
            "{bad}"
        );
        assert_eq!(details["field"], "user_id", "{bad}");
    }
}

#[tokio::test]
async fn bad_tokens_are_refused_with_401() {
    let app =
        spawn_app_with(AppOptions::new(Backend::Sqlite).with("auth.jwt_secret", SECRET)).await;
    let body = json!({"id": "r", "title": "R", "capacity": 2});
    let tokens = [
        None,
        Some("not-a-jwt".to_owned()),
        Some(token_signed_with(
            "some-other-secret-of-sufficient-length",
            "alice",
            in_an_hour(),
        )),
        Some(token_signed_with(
            SECRET,
            "alice",
            chrono::Utc::now().timestamp() - 5,
        )),
        Some(token_signed_with(SECRET, "not a user id", in_an_hour())),
    ];
    for token in &tokens {
        let (status, code, _) =
            error_of(app.post("/api/v1/rooms", token.as_deref(), &body).await).await;
        assert_eq!(
            (status, code),
            (StatusCode::UNAUTHORIZED, ErrorCode::Unauthenticated),
            "{token:?}"
        );
    }
    // Tokens without `exp`, or with `alg: none`, prove nothing either.
    let no_exp = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": "alice"}),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    let valid = token_signed_with(SECRET, "alice", in_an_hour());
    let unsigned = format!(
        "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.",
        valid.split('.').nth(1).unwrap()
    );
    for token in [no_exp, unsigned] {
        assert_eq!(
            app.post("/api/v1/rooms", Some(&token), &body)
                .await
                .status(),
            StatusCode::UNAUTHORIZED
        );
    }
    // Basic auth is not a bearer token.
    let response = app
        .client
        .post(app.url("/api/v1/rooms"))
        .basic_auth("alice", Some("pw"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    for path in ["/api/v1/rooms/r/reservations"] {
        assert_eq!(
            app.post(path, None, &json!({})).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let response = app
        .client
        .delete(app.url("/api/v1/rooms/r/reservations/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // A token signed with the configured secret works.
    assert_eq!(
        app.post("/api/v1/rooms", Some(&valid), &body)
            .await
            .status(),
        StatusCode::ACCEPTED
    );
    // Reads need no token.
    assert_eq!(app.get("/api/v1/rooms").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_dev_token_endpoint_is_absent_when_turned_off() {
    let app = spawn_app_with(
        AppOptions::new(Backend::Sqlite)
            .with("auth.dev_tokens", false)
            .with("auth.jwt_secret", SECRET),
    )
    .await;
    let (status, _, _) = error_of(
        app.post("/api/v1/dev/tokens", None, &json!({"user_id": "alice"}))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn without_a_secret_and_dev_tokens_the_server_refuses_to_start() {
    let database = roomgate_persistence::testing::TestDatabase::sqlite();
    let settings = settings_for(
        database.url(),
        &[("auth.dev_tokens".into(), "false".into())],
    );
    let error = roomgate_server::Application::build(settings)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("auth.jwt_secret"), "{error}");
}

#[tokio::test]
async fn per_ip_limits_apply_when_configured() {
    let app =
        spawn_app_with(AppOptions::new(Backend::Sqlite).with("limits.ip_requests_per_second", 2))
            .await;
    let mut limited = None;
    for _ in 0..6 {
        let response = app.get("/api/v1/rooms").await;
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(response);
            break;
        }
    }
    let response = limited.expect("the fifth request from one address is over the budget");
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(error_of(response).await.1, ErrorCode::RateLimited);
    // Probes are never throttled.
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
}

//! Health, readiness, metrics, the API document, the web client's files and unknown paths.

use reqwest::StatusCode;
use roomgate_api::{ErrorCode, StatusBody};
use serde_json::Value;

use crate::helpers::{AppOptions, Backend, error_of, spawn_app_with};
use crate::on_both_databases;

on_both_databases!(
    health_and_readiness_answer,
    metrics_expose_the_contract_series,
);

async fn health_and_readiness_answer(backend: Backend) {
    let app = spawn_app_with(AppOptions::new(backend)).await;
    let health = app.get("/healthz").await;
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(health.json::<StatusBody>().await.unwrap().status, "ok");
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), StatusCode::OK);
    app.shutdown().await;
}

async fn metrics_expose_the_contract_series(backend: Backend) {
    let app = spawn_app_with(AppOptions::new(backend)).await;
    let token = app.token("alice").await;
    app.create_room(&token, "metered", 2).await;
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().await.unwrap();
    for series in [
        "roomgate_reservations_total{outcome=\"created\"} 1",
        "roomgate_permits_held 1",
        "roomgate_ws_sessions 0",
        "roomgate_join_duration_seconds_bucket",
        "roomgate_reaped_total{kind=\"reservation\"}",
    ] {
        assert!(text.contains(series), "missing {series} in\n{text}");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn the_openapi_document_describes_the_rest_api() {
    let app = crate::helpers::spawn_app().await;
    let response = app.get("/api/v1/openapi.json").await;
    assert_eq!(response.status(), StatusCode::OK);
    let doc: Value = response.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/v1/rooms",
        "/api/v1/rooms/{room_id}",
        "/api/v1/rooms/{room_id}/reservations",
        "/api/v1/rooms/{room_id}/reservations/me",
        "/api/v1/dev/tokens",
        "/api/v1/ws",
        "/healthz",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
    assert!(doc["components"]["schemas"]["RoomView"].is_object());
    assert!(
        doc["paths"]["/api/v1/rooms"]["post"]["responses"]["202"].is_object(),
        "room creation documents its 202"
    );
}

#[tokio::test]
async fn the_web_client_is_served() {
    let app = crate::helpers::spawn_app().await;
    let index = app.get("/").await;
    assert_eq!(index.status(), StatusCode::OK);
    assert!(
        index.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(index.text().await.unwrap().contains("<html"));
    for (file, kind) in [("app.js", "text/javascript"), ("style.css", "text/css")] {
        let response = app.get(&format!("/static/{file}")).await;
        assert_eq!(response.status(), StatusCode::OK, "{file}");
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(kind)
        );
    }
    let (status, code, _) = error_of(app.get("/static/secrets.txt").await).await;
    assert_eq!((status, code), (StatusCode::NOT_FOUND, ErrorCode::NotFound));
}

#[tokio::test]
async fn unknown_paths_answer_with_the_error_body() {
    let app = crate::helpers::spawn_app().await;
    let (status, code, _) = error_of(app.get("/api/v1/nothing-here").await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(code, ErrorCode::NotFound);
}

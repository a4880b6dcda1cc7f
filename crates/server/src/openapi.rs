//! The OpenAPI document of the REST API, generated from the handlers' annotations and the wire
//! types of `roomgate-api`, and the table of which methods each path serves (the 405 answers).

use std::sync::LazyLock;

use actix_web::{HttpResponse, get, web};
use roomgate_api::{
    CreateRoomRequest, CreatedRoom, DevTokenRequest, DevTokenResponse, ErrorBody, ErrorCode,
    ErrorDetail, Event, EventPage, EventType, LeaveReason, QueueView, ReservationView,
    ReserveRequest, RoomPage, RoomState, RoomView, StatusBody,
};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{Modify, OpenApi};

use crate::routes;
use crate::state::AppState;

#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "Roomgate", description = "Chat rooms with a race-free two-phase join: reserve a seat over REST, confirm it over WebSocket."),
    paths(
        routes::health::healthz,
        routes::health::readyz,
        routes::health::metrics,
        routes::dev_tokens::issue,
        routes::rooms::create_room,
        routes::rooms::list_rooms,
        routes::rooms::get_room,
        routes::events::list_events,
        routes::reservations::reserve,
        routes::reservations::cancel,
        routes::ws::connect,
        document,
    ),
    components(schemas(
        ErrorBody, ErrorDetail, ErrorCode, RoomView, RoomState, ReservationView, QueueView, CreatedRoom,
        RoomPage, CreateRoomRequest, ReserveRequest, DevTokenRequest, DevTokenResponse,
        StatusBody, Event, EventPage, EventType, LeaveReason,
    )),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;

#[derive(Debug)]
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The document as this server serves it: with its configured largest capacity, and without
/// the dev-token endpoint when that is off (it then answers 404 like any unknown path).
pub fn served_document(max_capacity: u32, dev_tokens: bool) -> utoipa::openapi::OpenApi {
    let mut served = ApiDoc::openapi();
    if !dev_tokens {
        served.paths.paths.remove(DEV_TOKENS_PATH);
    }
    let capacity = served
        .components
        .as_mut()
        .and_then(|components| components.schemas.get_mut("CreateRoomRequest"))
        .and_then(|schema| match schema {
            RefOr::T(Schema::Object(object)) => object.properties.get_mut("capacity"),
            _ => None,
        });
    if let Some(RefOr::T(Schema::Object(capacity))) = capacity {
        capacity.maximum = Some(f64::from(max_capacity).into());
    }
    served
}

const DEV_TOKENS_PATH: &str = "/api/v1/dev/tokens";

/// The OpenAPI 3.1 document of this server.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "operations",
    responses((status = 200, description = "This document", content_type = "application/json")))]
#[get("/api/v1/openapi.json")]
pub async fn document(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(served_document(
        state.settings.rooms.max_capacity,
        state.settings.auth.dev_tokens,
    ))
}

/// One path the server serves: its segments (`None` for a parameter) and its methods.
struct Route {
    segments: Vec<Option<String>>,
    methods: Vec<String>,
    dev_tokens_only: bool,
}

/// Every documented path, plus the web client's, which the document does not describe.
static ROUTES: LazyLock<Vec<Route>> = LazyLock::new(|| {
    let api = ApiDoc::openapi();
    let mut routes: Vec<Route> = api
        .paths
        .paths
        .iter()
        .map(|(path, item)| {
            let mut methods = Vec::new();
            for (method, operation) in [
                ("GET", &item.get),
                ("POST", &item.post),
                ("PUT", &item.put),
                ("PATCH", &item.patch),
                ("DELETE", &item.delete),
            ] {
                if operation.is_some() {
                    methods.push(method.to_owned());
                }
            }
            route(path, methods, path == DEV_TOKENS_PATH)
        })
        .collect();
    routes.push(route("/", vec!["GET".to_owned()], false));
    routes.push(route(
        routes::web::ASSET_PATH,
        vec!["GET".to_owned()],
        false,
    ));
    routes
});

fn route(path: &str, methods: Vec<String>, dev_tokens_only: bool) -> Route {
    let segments = path
        .split('/')
        .map(|segment| (!segment.starts_with('{')).then(|| segment.to_owned()))
        .collect();
    Route {
        segments,
        methods,
        dev_tokens_only,
    }
}

/// The `Allow` header for a path the server serves with other methods; `None` for a path it
/// does not serve at all.
pub fn allowed_methods(path: &str, dev_tokens: bool) -> Option<String> {
    let asked: Vec<&str> = path.split('/').collect();
    ROUTES
        .iter()
        .filter(|route| dev_tokens || !route.dev_tokens_only)
        .find(|route| {
            route.segments.len() == asked.len()
                && route
                    .segments
                    .iter()
                    .zip(&asked)
                    .all(|(segment, asked)| match segment {
                        Some(literal) => literal == asked,
                        None => !asked.is_empty(),
                    })
        })
        .map(|route| route.methods.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_paths_name_their_methods_and_unknown_ones_none() {
        assert_eq!(
            allowed_methods("/api/v1/rooms", true).as_deref(),
            Some("GET, POST")
        );
        assert_eq!(
            allowed_methods("/api/v1/rooms/rust-study/reservations/me", true).as_deref(),
            Some("DELETE")
        );
        assert_eq!(allowed_methods("/api/v1/dev/tokens", false), None);
        assert_eq!(allowed_methods("/api/v1/rooms//reservations", true), None);
        assert_eq!(allowed_methods("/api/v2/rooms", true), None);
    }

    #[test]
    fn the_served_document_states_the_configured_capacity() {
        let served = serde_json::to_value(served_document(42, false)).unwrap();
        let capacity =
            &served["components"]["schemas"]["CreateRoomRequest"]["properties"]["capacity"];
        assert_eq!(capacity["maximum"], 42);
        assert!(served["paths"].get(DEV_TOKENS_PATH).is_none());
    }
}

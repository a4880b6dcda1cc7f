//! The OpenAPI document of the REST API, generated from the handlers' annotations.

use actix_web::{HttpResponse, get};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::{ErrorBody, ErrorDetail};
use crate::routes;
use crate::views::{
    CreateRoomRequest, CreatedRoom, DevTokenRequest, DevTokenResponse, MessageView,
    ReservationView, ReserveRequestBody, RoomPage, RoomState, RoomView, StatusBody,
};

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
        routes::reservations::reserve,
        routes::reservations::cancel,
        routes::ws::connect,
    ),
    components(schemas(
        ErrorBody, ErrorDetail, RoomView, RoomState, ReservationView, CreatedRoom, RoomPage,
        CreateRoomRequest, ReserveRequestBody, DevTokenRequest, DevTokenResponse, StatusBody,
        MessageView,
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

#[get("/api/v1/openapi.json")]
pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}

//! HTTP routes. Handlers are thin: parse, call the lower crates, map the result.

pub mod dev_tokens;
pub mod events;
pub mod health;
pub mod reservations;
pub mod rooms;
pub mod web;
pub mod ws;

use actix_web::web::ServiceConfig;

use crate::openapi;

/// Registers every route; the dev-token endpoint only while `auth.dev_tokens` is on, so that
/// it answers 404 like any unknown path when off.
pub fn configure(cfg: &mut ServiceConfig, dev_tokens: bool) {
    cfg.service(health::healthz)
        .service(health::readyz)
        .service(health::metrics)
        .service(openapi::document)
        .service(rooms::create_room)
        .service(rooms::list_rooms)
        .service(rooms::get_room)
        .service(events::list_events)
        .service(reservations::reserve)
        .service(reservations::cancel)
        .service(ws::connect)
        .service(web::index)
        .service(web::asset);
    if dev_tokens {
        cfg.service(dev_tokens::issue);
    }
}

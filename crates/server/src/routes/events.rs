//! `GET /api/v1/rooms/{room_id}/events`: a room's membership changes, in order, a page at a time.

use actix_web::{get, web};
use roomgate_api::{ErrorBody, Event, EventPage, EventType, LeaveReason, rules};
use roomgate_persistence::{DepartureReason, EventKind, EventRecord};
use serde::Deserialize;

use crate::auth::AuthenticatedUser;
use crate::error::ApiError;
use crate::routes::rooms::{path_room_id, room_view};
use crate::state::AppState;
use crate::views::rfc3339;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Events with a `seq` above this one; 0 (the default) for the first.
    #[param(minimum = 0, maximum = 9223372036854775807_i64)]
    after: Option<u64>,
    /// 1-1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// A room's events, oldest first (keyset paging by `seq`).
#[utoipa::path(get, path = "/api/v1/rooms/{room_id}/events", tag = "rooms",
    params(("room_id" = String, Path, description = "The room's id", pattern = "^[a-z0-9][a-z0-9-]{0,62}$"), EventsQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, body = EventPage),
        (status = 400, description = "invalid_request", body = ErrorBody),
        (status = 401, description = "unauthenticated", body = ErrorBody),
        (status = 404, description = "room_not_found", body = ErrorBody),
        (status = 429, description = "rate_limited", body = ErrorBody),
        (status = 503, description = "unavailable", body = ErrorBody)))]
#[get("/api/v1/rooms/{room_id}/events")]
pub async fn list_events(
    state: web::Data<AppState>,
    _reader: AuthenticatedUser,
    room_id: web::Path<String>,
    query: web::Query<EventsQuery>,
) -> Result<web::Json<EventPage>, ApiError> {
    let room = path_room_id(&room_id)?;
    let limit = query.limit.unwrap_or(rules::EVENT_PAGE_DEFAULT);
    if limit == 0 || limit > rules::EVENT_PAGE_MAX {
        return Err(ApiError::invalid(
            "limit",
            format!("limit must be between 1 and {}", rules::EVENT_PAGE_MAX),
        ));
    }
    let after = query.after.unwrap_or(0);
    if i64::try_from(after).is_err() {
        return Err(ApiError::invalid(
            "after",
            format!("after must be between 0 and {}", i64::MAX),
        ));
    }
    // One extra row tells whether another page follows.
    let mut records = state.db.events(&room, after, limit + 1).await?;
    if records.is_empty() {
        // No events: an unknown room is 404; a pending one simply has none yet.
        room_view(&state, &room).await?;
    }
    let more = records.len() > limit as usize;
    records.truncate(limit as usize);
    let next = more
        .then(|| records.last().map(|event| event.seq))
        .flatten();
    Ok(web::Json(EventPage {
        events: records.iter().map(event).collect(),
        next,
    }))
}

/// An event as the contract shows it.
pub fn event(record: &EventRecord) -> Event {
    Event {
        room_id: record.room.to_string(),
        seq: record.seq,
        kind: match record.kind {
            EventKind::RoomOpened => EventType::RoomOpened,
            EventKind::MemberJoined => EventType::MemberJoined,
            EventKind::MemberLeft => EventType::MemberLeft,
        },
        user_id: record.user.to_string(),
        attending: record.attending,
        reason: record.reason.map(|reason| match reason {
            DepartureReason::Left => LeaveReason::Left,
            DepartureReason::Disconnected => LeaveReason::Disconnected,
            DepartureReason::TimedOut => LeaveReason::TimedOut,
            DepartureReason::Reclaimed => LeaveReason::Reclaimed,
            DepartureReason::Shutdown => LeaveReason::Shutdown,
        }),
        at: rfc3339(record.at),
    }
}

//! Phase 1 of the join: checking and holding a seat.

use actix_web::{HttpResponse, delete, post, web};
use roomgate_admission::{Admission, PendingRooms, PermitStore, ReserveRequest};
use roomgate_domain::{Capacity, PasswordHash};

use crate::auth::AuthenticatedUser;
use crate::catalog::KnownRoom;
use crate::error::extractors::read_optional_json;
use roomgate_api::{ErrorBody, QueueView, ReservationView, ReserveRequest as ReserveRequestBody};

use crate::error::ApiError;
use crate::metrics::ReservationOutcome;
use crate::routes::rooms::{path_room_id, until};
use crate::state::AppState;
use crate::views;

/// The `outcome` label of `roomgate_reservations_total` for a refusal.
pub fn outcome(err: &ApiError) -> ReservationOutcome {
    match err {
        ApiError::RoomFull { .. } => ReservationOutcome::RoomFull,
        ApiError::QueueFull { .. } => ReservationOutcome::QueueFull,
        ApiError::AlreadyJoined { .. } => ReservationOutcome::AlreadyJoined,
        ApiError::WrongPassword => ReservationOutcome::WrongPassword,
        ApiError::RoomNotFound { .. } => ReservationOutcome::RoomNotFound,
        ApiError::RoomPending { .. } => ReservationOutcome::RoomPending,
        ApiError::RoomExists { .. } => ReservationOutcome::RoomExists,
        ApiError::RateLimited { .. } => ReservationOutcome::RateLimited,
        ApiError::Unavailable(_) => ReservationOutcome::Unavailable,
        ApiError::Internal(_) => ReservationOutcome::Internal,
        // Refusals of the request itself; the last four are answered before a handler that
        // counts runs, and are counted as invalid should one ever reach it.
        ApiError::InvalidRequest { .. }
        | ApiError::PayloadTooLarge { .. }
        | ApiError::Unauthenticated
        | ApiError::NotFound
        | ApiError::MethodNotAllowed { .. }
        | ApiError::ReservationNotFound { .. } => ReservationOutcome::InvalidRequest,
    }
}

/// Holds a seat and returns the ticket that confirms it; the same reservation again (200)
/// while it is live. With `"wait": true` and no free seat, a place in the room's waiting line
/// (202), or the user's place again (200).
#[utoipa::path(post, path = "/api/v1/rooms/{room_id}/reservations", tag = "reservations",
    params(("room_id" = String, Path, description = "The room's id", pattern = "^[a-z0-9][a-z0-9-]{0,62}$")),
    request_body(content = Option<ReserveRequestBody>, description = "Optional (no body, or `{}`); `password` for protected rooms; `wait: true` to take a place in line when the room is full"),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "A seat is held until `expires_at`", body = ReservationView),
        (status = 200, description = "The user's live reservation, or place in line, unchanged", body = ReservationOrPlace),
        (status = 202, description = "No free seat and `wait: true`: a place in the room's waiting line", body = QueueView),
        (status = 400, description = "invalid_request", body = ErrorBody),
        (status = 401, description = "unauthenticated", body = ErrorBody),
        (status = 403, description = "wrong_password", body = ErrorBody),
        (status = 404, description = "room_not_found", body = ErrorBody),
        (status = 409, description = "room_pending (Retry-After set), room_full, already_joined or queue_full", body = ErrorBody),
        (status = 429, description = "rate_limited", body = ErrorBody),
        (status = 503, description = "unavailable", body = ErrorBody)))]
#[post("/api/v1/rooms/{room_id}/reservations")]
pub async fn reserve(
    state: web::Data<AppState>,
    AuthenticatedUser(user): AuthenticatedUser,
    room_id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body =
        read_optional_json::<ReserveRequestBody>(payload, state.settings.limits.max_body_bytes)
            .await?;
    let result = hold_seat(&state, user, &room_id, body).await;
    match &result {
        Ok((outcome, _)) => state.metrics.reservation(*outcome),
        Err(err) => state.metrics.reservation(outcome(err)),
    }
    result.map(|(_, response)| response)
}

/// What phase 1 answered, with the label it is counted under.
type Answer = (ReservationOutcome, HttpResponse);

async fn hold_seat(
    state: &AppState,
    user: roomgate_domain::UserId,
    room_id: &str,
    body: Option<ReserveRequestBody>,
) -> Result<Answer, ApiError> {
    let room = path_room_id(room_id)?;
    let body = body.unwrap_or_default();
    let wait = body.wants_to_wait();
    let password = body.password;
    if password
        .as_ref()
        .is_some_and(|given| given.len() > roomgate_domain::PASSWORD_MAX_BYTES)
    {
        // No stored password is that long, so it could never match; say why instead.
        return Err(ApiError::invalid(
            "password",
            format!(
                "password must be at most {} bytes",
                roomgate_domain::PASSWORD_MAX_BYTES
            ),
        ));
    }
    if let Some(known) = known_room(state, &room) {
        if let Some(hash) = known.password_hash {
            check_password(hash, password).await?;
        }
        // No read, so no attendance: in memory every member holds a permit of this store, so
        // the pool already counts them (a pool with members is never evicted).
        return take_seat(state, room, user, known.capacity, 0, wait).await;
    }
    let (capacity, occupied) = match state.db.get_room(&room).await? {
        Some(record) => {
            state.catalog.remember(&record);
            if let Some(hash) = record.password_hash {
                check_password(hash, password).await?;
            }
            (Capacity::from_trusted(record.capacity), record.attending)
        }
        None => match state.pending.get(&room).await? {
            // The creator may fetch their own reservation again while the room is pending.
            Some((pending, _)) if pending.creator == user => (pending.capacity, 0),
            Some((_, expires_at)) => {
                return Err(ApiError::RoomPending {
                    room: room.to_string(),
                    retry_after: until(state, expires_at),
                });
            }
            None => {
                return Err(ApiError::RoomNotFound {
                    room: room.to_string(),
                });
            }
        },
    };
    take_seat(state, room, user, capacity, occupied, wait).await
}

/// The catalog's entry for `room`, when phase 1 may rely on it without asking the database:
/// only with the in-memory permit store (with Redis, seats of a dead node may still be counted
/// by the database and not yet by Redis, which the read's `attending` covers), and only while
/// the database answers, so that a reservation still answers 503 rather than promise a seat the
/// database cannot honour.
fn known_room(state: &AppState, room: &roomgate_domain::RoomId) -> Option<KnownRoom> {
    if state.permits.is_shared() || !state.db.answering() {
        return None;
    }
    state.catalog.get(room)
}

/// Holds a seat, or with `wait` a place in line when no seat is free for this user.
async fn take_seat(
    state: &AppState,
    room: roomgate_domain::RoomId,
    user: roomgate_domain::UserId,
    capacity: Capacity,
    occupied: u32,
    wait: bool,
) -> Result<Answer, ApiError> {
    let request = ReserveRequest {
        room,
        user,
        capacity,
        occupied,
        ttl: state.settings.admission.reservation_ttl(),
    };
    let admission = if wait {
        state
            .permits
            .reserve_or_wait(request, state.settings.rooms.max_waiting)
            .await?
    } else {
        Admission::Seat(state.permits.reserve(request).await?)
    };
    Ok(match admission {
        Admission::Seat(reservation) => {
            let view = views::reservation(&reservation);
            if reservation.fresh {
                (
                    ReservationOutcome::Created,
                    HttpResponse::Created().json(view),
                )
            } else {
                (ReservationOutcome::Existing, HttpResponse::Ok().json(view))
            }
        }
        Admission::InLine(place) => {
            let view = views::place(&place);
            if place.fresh {
                (
                    ReservationOutcome::Queued,
                    HttpResponse::Accepted().json(view),
                )
            } else {
                (
                    ReservationOutcome::ExistingPlace,
                    HttpResponse::Ok().json(view),
                )
            }
        }
    })
}

async fn check_password(hash: PasswordHash, given: Option<String>) -> Result<(), ApiError> {
    let Some(given) = given else {
        return Err(ApiError::WrongPassword);
    };
    // Argon2 verification is deliberately slow; keep it off the async workers.
    let matches = web::block(move || hash.verify(&given))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    if matches {
        Ok(())
    } else {
        Err(ApiError::WrongPassword)
    }
}

/// A 200 answer: the reservation, or the place in line, the user already holds. Described as
/// `anyOf`, not the `oneOf` a derived schema would give: a place also satisfies the open
/// `ReservationView` object (it has every one of its fields), so "exactly one" would be false.
struct ReservationOrPlace;

impl utoipa::PartialSchema for ReservationOrPlace {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::AnyOfBuilder;
        AnyOfBuilder::new()
            .item(utoipa::openapi::Ref::from_schema_name("ReservationView"))
            .item(utoipa::openapi::Ref::from_schema_name("QueueView"))
            .into()
    }
}

impl utoipa::ToSchema for ReservationOrPlace {}

/// Gives the seat, or the place in line, back at once.
#[utoipa::path(delete, path = "/api/v1/rooms/{room_id}/reservations/me", tag = "reservations",
    params(("room_id" = String, Path, description = "The room's id", pattern = "^[a-z0-9][a-z0-9-]{0,62}$")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "The permit is returned, or the place in line given up"),
        (status = 400, description = "invalid_request", body = ErrorBody),
        (status = 401, description = "unauthenticated", body = ErrorBody),
        (status = 404, description = "reservation_not_found", body = ErrorBody),
        (status = 429, description = "rate_limited", body = ErrorBody)))]
#[delete("/api/v1/rooms/{room_id}/reservations/me")]
pub async fn cancel(
    state: web::Data<AppState>,
    AuthenticatedUser(user): AuthenticatedUser,
    room_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let room = path_room_id(&room_id)?;
    // A creator who gives up their seat keeps the pending registration until its TTL: the room
    // stays what its creation answered (pending, readable), and the creator may reserve again and
    // open it; if they do not, it vanishes at its TTL like any unconfirmed creation.
    state.permits.cancel(&room, &user).await?;
    Ok(HttpResponse::NoContent().finish())
}

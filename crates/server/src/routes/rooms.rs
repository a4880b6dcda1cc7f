//! Rooms: creation (a pending registration plus the creator's permit) and reads.

use std::time::Duration;

use actix_web::{HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use roomgate_admission::{PendingRoom, PendingRooms, PermitStore, ReserveRequest, RoomCounts};
use roomgate_domain::{Capacity, PasswordHash, RoomId, Timestamp, Title};
use serde::Deserialize;

use crate::auth::AuthenticatedUser;
use roomgate_api::{CreateRoomRequest, CreatedRoom, ErrorBody, RoomPage, RoomView};

use crate::error::ApiError;
use crate::error::extractors::JsonObject;
use crate::state::AppState;
use crate::views::{self, timestamp_to_datetime};

use roomgate_api::rules::{ROOM_PAGE_DEFAULT as DEFAULT_PAGE, ROOM_PAGE_MAX as MAX_PAGE};

/// Parses a room id taken from a path, naming the field as clients see it.
pub fn path_room_id(raw: &str) -> Result<RoomId, ApiError> {
    RoomId::parse(raw).map_err(|e| ApiError::invalid("room_id", e.message))
}

/// Permits held by unconfirmed reservations of `room`; 0 if the store cannot say.
pub async fn seats(state: &AppState, room: &RoomId) -> RoomCounts {
    match state.permits.counts(room).await {
        Ok(counts) => counts,
        Err(error) => {
            tracing::warn!(%room, %error, "permit counts could not be read");
            RoomCounts::default()
        }
    }
}

/// When a pending registration expiring at `expires_at` was made.
fn registered_at(state: &AppState, expires_at: Timestamp) -> DateTime<Utc> {
    let ttl = chrono::Duration::milliseconds(
        i64::try_from(state.settings.admission.pending_room_ttl_ms).unwrap_or(i64::MAX),
    );
    timestamp_to_datetime(expires_at)
        .checked_sub_signed(ttl)
        .unwrap_or_else(Utc::now)
}

/// How long until a pending registration expiring at `expires_at` is decided.
pub fn until(state: &AppState, expires_at: Timestamp) -> Duration {
    Duration::from_millis(
        expires_at
            .millis()
            .saturating_sub(state.clock.now().millis()),
    )
}

/// Registers a room as pending and gives its creator the first permit. The row is written only
/// when the creator's WebSocket confirms.
#[utoipa::path(post, path = "/api/v1/rooms", tag = "rooms",
    request_body = CreateRoomRequest,
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Registered as pending; confirm with the reservation's ticket", body = CreatedRoom),
        (status = 400, description = "invalid_request", body = ErrorBody),
        (status = 401, description = "unauthenticated", body = ErrorBody),
        (status = 409, description = "room_exists, or room_pending (Retry-After set)", body = ErrorBody),
        (status = 413, description = "payload_too_large", body = ErrorBody),
        (status = 429, description = "rate_limited", body = ErrorBody),
        (status = 503, description = "unavailable", body = ErrorBody)))]
#[post("/api/v1/rooms")]
pub async fn create_room(
    state: web::Data<AppState>,
    AuthenticatedUser(creator): AuthenticatedUser,
    JsonObject(body): JsonObject<CreateRoomRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = RoomId::parse(&body.id)?;
    let title = Title::parse(&body.title)?;
    let capacity = Capacity::new(body.capacity, state.settings.rooms.max_capacity)?;
    let password = match body.password {
        None => None,
        // Argon2 takes tens of milliseconds of CPU; keep it off the async workers.
        Some(password) => Some(
            web::block(move || PasswordHash::hash(&password))
                .await
                .map_err(|e| ApiError::Internal(e.to_string()))??,
        ),
    };
    if state.db.get_room(&id).await?.is_some() {
        return Err(ApiError::RoomExists {
            room: id.to_string(),
        });
    }
    let pending = PendingRoom {
        id: id.clone(),
        title,
        capacity,
        password,
        creator: creator.clone(),
    };
    let expires_at = match state
        .pending
        .register(pending.clone(), state.settings.admission.pending_room_ttl())
        .await
    {
        Ok(expires_at) => expires_at,
        Err(err) => return Err(pending_refusal(&state, &id, err).await),
    };
    let reservation = state
        .permits
        .reserve(ReserveRequest {
            room: id.clone(),
            user: creator,
            capacity,
            occupied: 0,
            ttl: state.settings.admission.reservation_ttl(),
        })
        .await;
    let reservation = match reservation {
        Ok(reservation) => reservation,
        Err(err) => {
            // Undo the registration so that the id is free again at once.
            if let Err(error) = state.pending.remove(&id).await {
                tracing::warn!(room = %id, %error, "could not undo a room registration");
            }
            let err = ApiError::from(err);
            state
                .metrics
                .reservation(crate::routes::reservations::outcome(&err));
            return Err(err);
        }
    };
    state
        .metrics
        .reservation(crate::metrics::ReservationOutcome::Created);
    let room = views::pending_room(
        &pending,
        registered_at(&state, expires_at),
        seats(&state, &id).await.reserved,
    );
    Ok(HttpResponse::Accepted().json(CreatedRoom {
        room,
        reservation: views::reservation(&reservation),
    }))
}

/// A refusal from the pending registry, with `Retry-After` set to when the other creation
/// is decided.
async fn pending_refusal(
    state: &AppState,
    room: &RoomId,
    err: roomgate_admission::StoreError,
) -> ApiError {
    match ApiError::from(err) {
        ApiError::RoomPending { room: name, .. } => {
            let retry_after = match state.pending.get(room).await {
                Ok(Some((_, expires_at))) => until(state, expires_at),
                _ => Duration::from_secs(1),
            };
            ApiError::RoomPending {
                room: name,
                retry_after,
            }
        }
        other => other,
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// 1-100, default 50.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// Return rooms whose id sorts after this one (the previous page's `next`).
    #[param(pattern = "^[a-z0-9][a-z0-9-]{0,62}$")]
    after: Option<String>,
}

/// Open rooms, ordered by id, a page at a time.
#[utoipa::path(get, path = "/api/v1/rooms", tag = "rooms",
    params(ListQuery),
    responses((status = 200, body = RoomPage), (status = 400, body = ErrorBody), (status = 503, body = ErrorBody)))]
#[get("/api/v1/rooms")]
pub async fn list_rooms(
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<web::Json<RoomPage>, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::invalid(
            "limit",
            format!("limit must be between 1 and {MAX_PAGE}"),
        ));
    }
    let after = match &query.after {
        Some(raw) => Some(RoomId::parse(raw).map_err(|e| ApiError::invalid("after", e.message))?),
        None => None,
    };
    // One extra row tells whether another page follows.
    let mut records = state.db.list_rooms(after.as_ref(), limit + 1).await?;
    let more = records.len() > limit as usize;
    records.truncate(limit as usize);
    let next = more
        .then(|| records.last().map(|room| room.id.to_string()))
        .flatten();
    let mut rooms = Vec::with_capacity(records.len());
    for record in &records {
        rooms.push(views::open_room(record, seats(&state, &record.id).await));
    }
    Ok(web::Json(RoomPage { rooms, next }))
}

/// One room, open or pending.
#[utoipa::path(get, path = "/api/v1/rooms/{room_id}", tag = "rooms",
    params(("room_id" = String, Path, description = "The room's id", pattern = "^[a-z0-9][a-z0-9-]{0,62}$")),
    responses((status = 200, body = RoomView), (status = 400, body = ErrorBody),
              (status = 404, description = "room_not_found", body = ErrorBody), (status = 503, body = ErrorBody)))]
#[get("/api/v1/rooms/{room_id}")]
pub async fn get_room(
    state: web::Data<AppState>,
    room_id: web::Path<String>,
) -> Result<web::Json<RoomView>, ApiError> {
    let id = path_room_id(&room_id)?;
    room_view(&state, &id).await.map(web::Json)
}

/// The room as clients see it, from the database if open, else from the pending registry.
pub async fn room_view(state: &AppState, id: &RoomId) -> Result<RoomView, ApiError> {
    if let Some(record) = state.db.get_room(id).await? {
        state.catalog.remember(&record);
        return Ok(views::open_room(&record, seats(state, id).await));
    }
    match state.pending.get(id).await? {
        Some((pending, expires_at)) => Ok(views::pending_room(
            &pending,
            registered_at(state, expires_at),
            seats(state, id).await.reserved,
        )),
        None => Err(ApiError::RoomNotFound {
            room: id.to_string(),
        }),
    }
}

#![doc = include_str!("../README.md")]

mod clock;
mod error;
mod line;
mod pool;
mod queue;
#[cfg(feature = "reaper")]
mod reaper;
#[cfg(feature = "redis")]
mod redis_store;
mod registry;
mod seat;
mod shards;
mod store;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::StoreError;
pub use line::{
    Admission, Attached, LINE_RECHECK, LineLeave, LineWatch, Place, PlaceStatus, WaitGuard,
};
pub use queue::{PendingRoom, RoomQueueTracker};
#[cfg(feature = "reaper")]
pub use reaper::{ReapReport, Reaper, reap_once};
#[cfg(feature = "redis")]
pub use redis_store::{RedisPendingRooms, RedisPermitStore, RedisSettings, key_prefix_problem};
pub use registry::{
    RegistryReap, RegistrySettings, Reservation, ReserveRequest, RoomCounts, SemaphoreRegistry,
};
pub use seat::{SeatGuard, SeatRelease};
pub use store::{AnyPendingRooms, AnyPermitStore, PendingRooms, PermitStore};

//! Request budgets (governor's GCRA): per authenticated user always, per client IP when
//! `limits.ip_requests_per_second` is above 0. A refusal carries how long to wait.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::LazyLock;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use roomgate_domain::UserId;

use crate::config::LimitSettings;
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Debug)]
pub struct RateLimits {
    users: DefaultKeyedRateLimiter<UserId>,
    ips: Option<DefaultKeyedRateLimiter<IpAddr>>,
    clock: DefaultClock,
}

fn at_least_one(value: u32) -> NonZeroU32 {
    NonZeroU32::new(value).unwrap_or(NonZeroU32::MIN)
}

impl RateLimits {
    pub fn new(settings: &LimitSettings) -> Self {
        let users = Quota::per_second(at_least_one(settings.user_requests_per_second))
            .allow_burst(at_least_one(settings.user_burst));
        let ips = NonZeroU32::new(settings.ip_requests_per_second).map(|rate| {
            // An address may front many users, so it gets a burst of two seconds' worth.
            RateLimiter::keyed(
                Quota::per_second(rate).allow_burst(at_least_one(rate.get().saturating_mul(2))),
            )
        });
        Self {
            users: RateLimiter::keyed(users),
            ips,
            clock: DefaultClock::default(),
        }
    }

    pub fn check_user(&self, user: &UserId) -> Result<(), ApiError> {
        self.users
            .check_key(user)
            .map_err(|not_until| ApiError::RateLimited {
                retry_after: not_until.wait_time_from(self.clock.now()),
            })
    }

    pub fn check_ip(&self, ip: IpAddr) -> Result<(), ApiError> {
        let Some(ips) = &self.ips else {
            return Ok(());
        };
        ips.check_key(&ip)
            .map_err(|not_until| ApiError::RateLimited {
                retry_after: not_until.wait_time_from(self.clock.now()),
            })
    }

    /// Forgets keys whose budget is full again, so that the maps do not grow with every user
    /// ever seen. Called by the maintenance task.
    pub fn forget_idle(&self) {
        self.users.retain_recent();
        if let Some(ips) = &self.ips {
            ips.retain_recent();
        }
    }
}

/// Middleware: charges the client's address before anything else runs. Health and metrics
/// are exempt so that probes never get throttled.
pub async fn limit_by_ip(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let exempt = matches!(req.path(), "/healthz" | "/readyz" | "/metrics");
    if !exempt {
        if let (Some(state), Some(peer)) = (req.app_data::<web::Data<AppState>>(), req.peer_addr())
        {
            state.limits.check_ip(peer.ip())?;
        }
    }
    next.call(req).await
}

/// One clock for every session's limiter. Building governor's default clock calibrates a
/// fresh TSC clock (a `cpuid` and a measurement) each time, which a profile of churn showed as
/// ~3 % of the server's CPU when done once per session; clones of one clock share the
/// calibration.
static SESSION_CLOCK: LazyLock<DefaultClock> = LazyLock::new(DefaultClock::default);

/// The chat-frame budget of one WebSocket session: `rate` per second, bursts up to twice that.
pub fn session_limiter(rate: u32) -> DefaultDirectRateLimiter {
    let rate = at_least_one(rate);
    RateLimiter::direct_with_clock(
        Quota::per_second(rate).allow_burst(at_least_one(rate.get().saturating_mul(2))),
        SESSION_CLOCK.clone(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_may_burst_twice_its_rate_and_no_more() {
        let limiter = session_limiter(5);
        let allowed = (0..20).filter(|_| limiter.check().is_ok()).count();
        assert_eq!(allowed, 10);
        // Another session's budget is its own, though the clock is shared.
        let other = session_limiter(5);
        assert!(other.check().is_ok());
    }
}

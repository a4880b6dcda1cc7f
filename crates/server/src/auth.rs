//! Bearer tokens: HS256 JWTs whose `sub` is the user id. The algorithm is pinned, `exp` and
//! `sub` are required, and no leeway is granted, so an expired token is refused at once.

use std::future::{Ready, ready};
use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use roomgate_domain::UserId;
use serde::{Deserialize, Serialize};

use crate::config::AuthSettings;
use crate::error::ApiError;
use crate::state::AppState;

/// Used only when no secret is configured *and* dev tokens are on; anyone can read it here, so
/// tokens signed with it prove nothing. The server logs a warning whenever it is in use.
const DEVELOPMENT_SECRET: &str = "roomgate-development-secret-do-not-use-in-production";

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
}

/// Signs and checks tokens with one secret.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    #[error(
        "auth.jwt_secret is empty and auth.dev_tokens is off: set a secret of at least 32 bytes"
    )]
    MissingSecret,
}

/// Whether the keys are the public development secret, so that startup can warn about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretSource {
    Configured,
    Development,
}

impl TokenKeys {
    pub fn from_settings(settings: &AuthSettings) -> Result<(Self, SecretSource), AuthSetupError> {
        let (secret, source) = if settings.jwt_secret.is_empty() {
            if !settings.dev_tokens {
                return Err(AuthSetupError::MissingSecret);
            }
            (DEVELOPMENT_SECRET, SecretSource::Development)
        } else {
            (settings.jwt_secret.expose(), SecretSource::Configured)
        };
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.leeway = 0;
        validation.validate_exp = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let keys = Self {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            validation,
            ttl: Duration::from_secs(settings.token_ttl_secs.max(1)),
        };
        Ok((keys, source))
    }

    /// Issues a token for `user`, valid for the configured lifetime.
    pub fn issue(&self, user: &UserId) -> Result<(String, DateTime<Utc>), ApiError> {
        let expires_at = Utc::now()
            + chrono::Duration::from_std(self.ttl)
                .map_err(|e| ApiError::Internal(format!("token lifetime: {e}")))?;
        let claims = Claims {
            sub: user.to_string(),
            exp: u64::try_from(expires_at.timestamp()).unwrap_or(0),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| ApiError::Internal(format!("signing a token: {e}")))?;
        Ok((token, expires_at))
    }

    /// The user a token speaks for, or `Unauthenticated` for anything not signed by us,
    /// expired, or naming no valid user id.
    pub fn verify(&self, token: &str) -> Result<UserId, ApiError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| ApiError::Unauthenticated)?;
        UserId::parse(&data.claims.sub).map_err(|_| ApiError::Unauthenticated)
    }
}

/// The caller of an authenticated route. Extracting it checks the bearer token and charges the
/// user's request budget, so every authenticated route is rate limited per user.
#[derive(Debug, Clone)]
pub struct AuthenticatedUser(pub UserId);

impl FromRequest for AuthenticatedUser {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req))
    }
}

fn authenticate(req: &HttpRequest) -> Result<AuthenticatedUser, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::Internal("application state is missing".into()))?;
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            let (scheme, token) = value.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .ok_or(ApiError::Unauthenticated)?;
    let user = state.tokens.verify(token)?;
    crate::telemetry::record_user(&user);
    state.limits.check_user(&user)?;
    Ok(AuthenticatedUser(user))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn settings(secret: &str, dev_tokens: bool) -> AuthSettings {
        AuthSettings {
            jwt_secret: Secret::new(secret),
            dev_tokens,
            token_ttl_secs: 60,
        }
    }

    #[test]
    fn issued_tokens_verify_and_name_their_user() {
        let (keys, source) =
            TokenKeys::from_settings(&settings("s".repeat(32).as_str(), false)).unwrap();
        assert_eq!(source, SecretSource::Configured);
        let alice = UserId::parse("alice").unwrap();
        let (token, _) = keys.issue(&alice).unwrap();
        assert_eq!(keys.verify(&token).unwrap(), alice);
    }

    #[test]
    fn the_development_secret_needs_dev_tokens() {
        assert!(TokenKeys::from_settings(&settings("", false)).is_err());
        let (_, source) = TokenKeys::from_settings(&settings("", true)).unwrap();
        assert_eq!(source, SecretSource::Development);
    }

    #[test]
    fn forged_expired_and_unsigned_tokens_are_refused() {
        let (keys, _) = TokenKeys::from_settings(&settings("a".repeat(32).as_str(), true)).unwrap();
        let (other, _) =
            TokenKeys::from_settings(&settings("b".repeat(32).as_str(), true)).unwrap();
        let alice = UserId::parse("alice").unwrap();
        let (forged, _) = other.issue(&alice).unwrap();
        assert!(keys.verify(&forged).is_err());

        let expired = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &Claims {
                sub: "alice".into(),
                exp: 1,
            },
            &EncodingKey::from_secret("a".repeat(32).as_bytes()),
        )
        .unwrap();
        assert!(keys.verify(&expired).is_err());

        // `alg: none` with the payload of a valid token.
        let (valid, _) = keys.issue(&alice).unwrap();
        let payload = valid.split('.').nth(1).unwrap();
        let unsigned = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
        assert!(keys.verify(&unsigned).is_err());
        assert!(keys.verify("not a token").is_err());
    }
}

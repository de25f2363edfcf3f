//! One signature extractor for every platform: a route takes `Verified<S>`, whose body it
//! may parse only because `S` checked the request's signature first. Each scheme says how
//! its platform signs (Slack's v0 HMAC of the body, Discord's Ed25519, DingTalk's HMAC of a
//! timestamp taken once); a request of a platform that is not configured is a 404, a bad
//! signature a 401, and neither reaches a parser.

use super::{internal, read_limited, AppState};
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::future::Future;

/// How one platform signs its requests.
pub trait Scheme: Send + Sync + 'static {
    /// The platform's name, for refusals and logs.
    const NAME: &'static str;
    /// What a checked request proves besides its body (DingTalk's signature, taken once).
    type Proof: Send;

    /// The check, or the response that refuses the request. `None` when the platform is
    /// not configured.
    fn check(
        state: &AppState,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Option<impl Future<Output = Result<Self::Proof, Refusal>> + Send>;
}

/// Why a request was refused.
pub enum Refusal {
    /// The signature is wrong (or stale, or used before): 401 with this text.
    Signature(&'static str),
    /// The check itself failed (the database): 500.
    Internal(anyhow::Error),
}

/// A request whose signature `S` checked; its body is not parsed yet.
pub struct Verified<S: Scheme> {
    pub body: Bytes,
    pub proof: S::Proof,
}

impl<S: Scheme> FromRequest<AppState> for Verified<S> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let headers = req.headers().clone();
        let body = read_limited(req.into_body()).await?;
        let Some(check) = S::check(state, &headers, &body) else {
            return Err((StatusCode::NOT_FOUND, format!("{} is not configured", S::NAME)).into_response());
        };
        match check.await {
            Ok(proof) => Ok(Self { body, proof }),
            Err(Refusal::Signature(why)) => {
                tracing::warn!(
                    platform = S::NAME,
                    reason = why,
                    "refused a request with a bad signature"
                );
                Err((StatusCode::UNAUTHORIZED, why).into_response())
            }
            Err(Refusal::Internal(e)) => Err(internal(e)),
        }
    }
}

/// The value of a header, when it is text.
pub fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

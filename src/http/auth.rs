//! Who is calling: the identity rules of the contract, shared by REST and the WebSocket.
//!
//! - A token (`Authorization: Bearer …` or `?token=`) must verify; a `user_id` that contradicts
//!   it is refused.
//! - Without a token, a `user_id` is believed only from a loopback client that is not behind a
//!   proxy (the machine's own users and tools), or from anyone when `auth.mode = "open"`.
//! - Otherwise the caller is anonymous: it may listen, not act.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::http::{header, HeaderMap, StatusCode};

use super::{ApiError, AppState};
use crate::auth::valid_user_id;
use crate::config::AuthMode;

/// A caller we know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user_id: String,
    /// From a token with the `admin` claim.
    pub admin: bool,
}

const PROXY_HEADERS: [&str; 3] = ["x-forwarded-for", "forwarded", "x-real-ip"];

fn proxied(headers: &HeaderMap) -> bool {
    PROXY_HEADERS.iter().any(|h| headers.contains_key(*h))
}

/// The machine's own operator: a loopback client, not a browser page (`Origin`), not relayed
/// by a proxy.
pub fn is_operator(peer: SocketAddr, headers: &HeaderMap) -> bool {
    peer.ip().is_loopback() && !proxied(headers) && !headers.contains_key(header::ORIGIN)
}

/// The caller's identity, `None` for an anonymous caller; an invalid token or a `user_id` that
/// contradicts it is an error (401).
pub fn identify(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Result<Option<Identity>, ApiError> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let token = bearer
        .or_else(|| query.get("token").map(String::as_str))
        .filter(|t| !t.is_empty());
    let claimed = query
        .get("user_id")
        .map(|u| u.trim())
        .filter(|u| !u.is_empty());
    if let Some(u) = claimed {
        if !valid_user_id(u) {
            return Err(ApiError::bad_request("invalid_user_id", "invalid user_id"));
        }
    }
    if let Some(token) = token {
        let claims = state
            .auth
            .verify(token)
            .map_err(|e| ApiError::new(StatusCode::UNAUTHORIZED, "invalid_token", e.to_string()))?;
        if claimed.is_some_and(|u| u != claims.sub) {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "user_mismatch",
                "user_id does not match the token",
            ));
        }
        return Ok(Some(Identity {
            user_id: claims.sub,
            admin: claims.admin,
        }));
    }
    let trusted =
        state.config.auth.mode == AuthMode::Open || (peer.ip().is_loopback() && !proxied(headers));
    Ok(claimed.filter(|_| trusted).map(|u| Identity {
        user_id: u.to_string(),
        admin: false,
    }))
}

/// As [`identify`], but an anonymous caller is refused (401).
pub fn require_user(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Result<Identity, ApiError> {
    identify(state, peer, headers, query)?.ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "say who you are: a token (Authorization: Bearer …), or user_id from this machine",
        )
    })
}

/// An admin token, or the machine's operator.
pub fn require_admin(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Result<(), ApiError> {
    if is_operator(peer, headers) {
        return Ok(());
    }
    match identify(state, peer, headers, query)? {
        Some(id) if id.admin => Ok(()),
        _ => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "an admin token is needed",
        )),
    }
}

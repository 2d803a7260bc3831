//! `GET /api/ws?user_id=&token=`: the WebSocket endpoint.
//!
//! Identity, until token verification lands: a bare `user_id` is trusted from loopback clients
//! only (the machine's own users and tools); anyone else connects anonymously and may listen,
//! subscribe, ping and ask status. A token cannot be verified yet, so it is refused rather than
//! ignored (ignoring it would let anyone claim any user id).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::{ApiError, AppState};

pub async fn upgrade(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    if q.get("token").is_some_and(|t| !t.is_empty()) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "token_unsupported",
            "token authentication is not available on this server yet: connect without a token",
        ));
    }
    let proxied = ["x-forwarded-for", "forwarded", "x-real-ip"]
        .iter()
        .any(|h| headers.contains_key(*h));
    let user = q
        .get("user_id")
        .map(|u| u.trim())
        .filter(|u| !u.is_empty() && u.len() <= 128 && !u.contains('\0'))
        .filter(|_| peer.ip().is_loopback() && !proxied)
        .map(str::to_string);
    Ok(state
        .websocket
        .handle_websocket(ws, user, peer.ip().to_string()))
}

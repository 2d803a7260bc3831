//! `GET /api/ws?user_id=&token=`: the WebSocket endpoint.
//!
//! Identity follows `http::auth`: a verified token, or a `user_id` believed from this machine
//! (or from anyone in `auth.mode = "open"`); an anonymous connection may listen, subscribe,
//! ping and ask status. A bad token is refused before the upgrade (401).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Json;

use super::auth::identify;
use super::openapi::ErrorBody;
use super::{ApiError, AppState};

/// The WebSocket: live events and commands (`{"command": …}` in, `{"event": …}` out).
#[utoipa::path(
    get,
    path = "/api/ws",
    tag = "operations",
    params(super::openapi::Identity),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol"),
        (status = 401, description = "Invalid or expired token, or a `user_id` that contradicts it",
            body = ErrorBody),
        (status = 400, description = "Malformed `user_id`, or not a WebSocket handshake",
            body = ErrorBody),
        (status = 426, description = "The connection cannot be upgraded", body = ErrorBody),
    ),
    security((), ("bearer" = []), ("token_query" = [])),
)]
pub async fn upgrade(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let ws = ws.map_err(|e| ApiError::new(e.status(), "not_a_websocket", e.body_text()))?;
    let user = identify(&state, peer, &headers, &q)?.map(|i| i.user_id);
    Ok(state.websocket.handle_websocket(
        ws,
        user,
        super::auth::client_address(peer, &headers).to_string(),
    ))
}

/// Connection and message counters of this node's hub (the spec's `WebSocketStats`, and more).
#[utoipa::path(
    get,
    path = "/api/ws/stats",
    tag = "operations",
    responses((status = 200, description = "Hub statistics", body = Object)),
)]
pub async fn stats(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    Json(state.websocket.get_stats().await)
}

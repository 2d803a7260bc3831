//! `GET /api/ws?user_id=&token=`: the WebSocket endpoint.
//!
//! Identity follows `http::auth`: a verified token, or a `user_id` believed from this machine
//! (or from anyone in `auth.mode = "open"`); an anonymous connection may listen, subscribe,
//! ping and ask status. A bad token is refused before the upgrade (401).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;

use super::auth::identify;
use super::{ApiError, AppState};

pub async fn upgrade(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let user = identify(&state, peer, &headers, &q)?.map(|i| i.user_id);
    Ok(state
        .websocket
        .handle_websocket(ws, user, peer.ip().to_string()))
}

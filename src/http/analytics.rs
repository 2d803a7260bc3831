//! `/api/analytics/*`: reports as JSON, and per-user export and deletion.
//!
//! Export and deletion act on personal data: until token authentication exists they are
//! accepted from loopback clients only (an operator on the machine).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::{identify, is_operator, require_admin};
use super::{ApiError, AppState};
use crate::analytics::{now_ms, AnalyticsError, QoeGrouping};

impl From<AnalyticsError> for ApiError {
    fn from(e: AnalyticsError) -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "analytics_unavailable",
            e.to_string(),
        )
    }
}

const DEFAULT_WINDOW_SECS: u64 = 7 * 86_400;

#[derive(Debug, Deserialize)]
pub struct Window {
    /// Look back this many seconds (default 7 days).
    window_secs: Option<u64>,
    limit: Option<i64>,
    /// Concurrency sampling step.
    step_secs: Option<u64>,
    /// QoE grouping: `all`, `platform`, `connection`.
    group_by: Option<String>,
}

impl Window {
    fn since(&self) -> i64 {
        now_ms()
            - (self
                .window_secs
                .unwrap_or(DEFAULT_WINDOW_SECS)
                .min(100 * 365 * 86_400)
                * 1000) as i64
    }
    fn limit(&self) -> i64 {
        self.limit.unwrap_or(20).clamp(1, 10_000)
    }
}

type WindowQuery = Result<Query<Window>, QueryRejection>;

pub async fn top_tracks(
    State(state): State<Arc<AppState>>,
    q: WindowQuery,
) -> Result<Json<Value>, ApiError> {
    let Query(w) = q?;
    let top = state.analytics.top_tracks(w.since(), w.limit()).await?;
    let catalog = state.library.catalog();
    let rows: Vec<Value> = top
        .iter()
        .map(|t| {
            let track = catalog.get(&t.track_id);
            json!({
                "track_id": t.track_id, "title": track.as_ref().map(|t| t.title.clone()),
                "artist": track.as_ref().and_then(|t| t.artist.clone()),
                "plays": t.plays, "listeners": t.listeners, "listening_ms": t.listening_ms,
            })
        })
        .collect();
    Ok(Json(json!({ "since": w.since(), "tracks": rows })))
}

pub async fn users(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    q: WindowQuery,
) -> Result<Json<Value>, ApiError> {
    operator_only(&state, peer, &headers)?;
    let Query(w) = q?;
    Ok(Json(
        json!({ "since": w.since(), "users": state.analytics.user_plays(w.since(), w.limit()).await? }),
    ))
}

pub async fn completion(
    State(state): State<Arc<AppState>>,
    q: WindowQuery,
) -> Result<Json<Value>, ApiError> {
    let Query(w) = q?;
    Ok(Json(
        json!({ "since": w.since(), "completion": state.analytics.completion(w.since()).await? }),
    ))
}

pub async fn concurrency(
    State(state): State<Arc<AppState>>,
    q: WindowQuery,
) -> Result<Json<Value>, ApiError> {
    let Query(w) = q?;
    let window = w.window_secs.unwrap_or(3600).min(31 * 86_400);
    // At most ~2000 points whatever the window, and no overflow whatever the step.
    let step = w
        .step_secs
        .unwrap_or((window / 120).max(1))
        .clamp((window / 2000).max(1), window.max(1));
    let to = now_ms();
    let points = state
        .analytics
        .concurrency(to - (window * 1000) as i64, to, (step * 1000) as i64)
        .await?;
    Ok(Json(json!({ "step_secs": step, "points": points })))
}

pub async fn quality(
    State(state): State<Arc<AppState>>,
    q: WindowQuery,
) -> Result<Json<Value>, ApiError> {
    let Query(w) = q?;
    Ok(Json(
        json!({ "since": w.since(), "quality": state.analytics.quality(w.since()).await? }),
    ))
}

pub async fn qoe(
    State(state): State<Arc<AppState>>,
    q: WindowQuery,
) -> Result<Json<Value>, ApiError> {
    let Query(w) = q?;
    let grouping = match w.group_by.as_deref().unwrap_or("all") {
        "all" => QoeGrouping::All,
        "platform" => QoeGrouping::Platform,
        "connection" | "connection_type" => QoeGrouping::ConnectionType,
        other => {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("group_by {other:?}: use all, platform or connection"),
            ))
        }
    };
    Ok(Json(
        json!({ "since": w.since(), "groups": state.analytics.qoe_summary(w.since(), grouping).await? }),
    ))
}

pub async fn qoe_sessions(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    q: WindowQuery,
) -> Result<Json<Value>, ApiError> {
    operator_only(&state, peer, &headers)?;
    let Query(w) = q?;
    Ok(Json(
        json!({ "since": w.since(), "sessions": state.analytics.qoe_sessions(w.since(), w.limit()).await? }),
    ))
}

/// Until token authentication lands, per-user data is for an operator on the server machine: a
/// loopback peer, and neither a browser (an `Origin` header: any page could send it) nor a
/// reverse proxy (forwarding headers: the real client is elsewhere).
/// Per-user listings: an admin token (`Authorization: Bearer`) or the machine's operator.
fn operator_only(state: &AppState, peer: SocketAddr, headers: &HeaderMap) -> Result<(), ApiError> {
    require_admin(state, peer, headers, &HashMap::new()).map_err(|_| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "per-user analytics need an admin token or a client on the server machine (not a browser or a proxy)",
        )
    })
}

/// A listener's own data: the listener (by token), an admin, or the operator.
fn self_or_admin(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    user: &str,
) -> Result<(), ApiError> {
    if is_operator(peer, headers) {
        return Ok(());
    }
    match identify(state, peer, headers, query)? {
        // Only a token proves who the listener is: a bare user_id is a claim.
        Some(id) if id.via_token && (id.admin || id.user_id == user) => Ok(()),
        _ => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "only the listener (with their token), an admin or the server's operator may do this",
        )),
    }
}

pub async fn export_user(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(user): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    self_or_admin(&state, peer, &headers, &q, &user)?;
    Ok(Json(state.analytics.export_user(&user).await?))
}

pub async fn delete_user(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(user): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    self_or_admin(&state, peer, &headers, &q, &user)?;
    let sessions = state.analytics.delete_user(&user).await?;
    tracing::info!(user_id = %user, sessions, "user analytics deleted");
    Ok(Json(
        json!({ "user_id": user, "sessions_deleted": sessions }),
    ))
}

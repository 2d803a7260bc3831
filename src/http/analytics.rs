//! `/api/analytics/*`: reports as JSON, and per-user export and deletion.
//!
//! Export and deletion act on personal data: until token authentication exists they are
//! accepted from loopback clients only (an operator on the machine).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use super::error::Path;
use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::auth::{identify, is_operator, require_admin};
use super::openapi::{ErrorBody, Identity};
use super::{ApiError, AppState};
use crate::analytics::reports::{
    Completion, ListenersAt, QoeGroup, QualityReport, SessionQoe, UserPlays,
};
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

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Window {
    /// Look back this many seconds (default 7 days; 1 hour for concurrency).
    window_secs: Option<u64>,
    /// At most this many rows (default 20, at most 10000).
    limit: Option<i64>,
    /// Concurrency sampling step (default: the window over 120).
    step_secs: Option<u64>,
    /// QoE grouping (default `all`).
    #[param(inline, value_type = Option<QoeGroupBy>)]
    group_by: Option<String>,
}

/// How `/api/analytics/qoe` groups sessions (documentation of `group_by`).
#[derive(ToSchema)]
#[allow(dead_code, non_camel_case_types)] // documentation only: the handler reads the string
enum QoeGroupBy {
    all,
    platform,
    connection,
}

/// The failures every report can give.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // documentation only: the handlers answer `ApiError`
pub enum ReportErrors {
    #[response(status = 400, description = "Malformed query")]
    Malformed(ErrorBody),
    #[response(status = 503, description = "The analytics store is unavailable")]
    Unavailable(ErrorBody),
}

/// A top track, with the library's title and artist.
#[derive(Debug, Serialize, ToSchema)]
pub struct TopTrack {
    pub track_id: String,
    pub title: Option<String>,
    pub artist: Option<String>,
    pub plays: i64,
    pub listeners: i64,
    pub listening_ms: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TopTracks {
    /// Start of the window (ms since the epoch).
    pub since: i64,
    pub tracks: Vec<TopTrack>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UsersReport {
    pub since: i64,
    pub users: Vec<UserPlays>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CompletionReport {
    pub since: i64,
    pub completion: Completion,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConcurrencyReport {
    pub step_secs: u64,
    /// Listeners at each step (ms since the epoch).
    pub points: Vec<ListenersAt>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QualityByWindow {
    pub since: i64,
    pub quality: QualityReport,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QoeReport {
    pub since: i64,
    pub groups: Vec<QoeGroup>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QoeSessions {
    pub since: i64,
    pub sessions: Vec<SessionQoe>,
}

/// What an erasure removed.
#[derive(Debug, Serialize, ToSchema)]
pub struct Erased {
    pub user_id: String,
    pub sessions_deleted: u64,
}

impl Window {
    /// Start of the window in ms since the epoch; a window reaching before 1970 starts then.
    fn since(&self) -> i64 {
        let back = self
            .window_secs
            .unwrap_or(DEFAULT_WINDOW_SECS)
            .min(100 * 365 * 86_400)
            * 1000;
        (now_ms() - back as i64).max(0)
    }
    fn limit(&self) -> i64 {
        self.limit.unwrap_or(20).clamp(1, 10_000)
    }
}

type WindowQuery = Result<Query<Window>, QueryRejection>;

/// Most played tracks in the window.
#[utoipa::path(
    get,
    path = "/api/analytics/top-tracks",
    tag = "analytics",
    params(Window),
    responses(
        (status = 200, description = "Top tracks", body = TopTracks),
        ReportErrors,
    )
)]
pub async fn top_tracks(
    State(state): State<Arc<AppState>>,
    q: WindowQuery,
) -> Result<Json<TopTracks>, ApiError> {
    let Query(w) = q?;
    let top = state.analytics.top_tracks(w.since(), w.limit()).await?;
    let catalog = state.library.catalog();
    let tracks = top
        .into_iter()
        .map(|t| {
            let track = catalog.get(&t.track_id);
            TopTrack {
                title: track.as_ref().map(|t| t.title.clone()),
                artist: track.as_ref().and_then(|t| t.artist.clone()),
                track_id: t.track_id,
                plays: t.plays,
                listeners: t.listeners,
                listening_ms: t.listening_ms,
            }
        })
        .collect();
    Ok(Json(TopTracks {
        since: w.since(),
        tracks,
    }))
}

/// Listeners by plays in the window (per-user data: admin or operator).
#[utoipa::path(
    get,
    path = "/api/analytics/users",
    tag = "analytics",
    params(Window),
    responses(
        (status = 200, description = "Listeners", body = UsersReport),
        (status = 403, description = "Neither an admin token nor the server's operator", body = ErrorBody),
        ReportErrors,
    ),
    security(("bearer" = []), ()),
)]
pub async fn users(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    q: WindowQuery,
) -> Result<Json<UsersReport>, ApiError> {
    operator_only(&state, peer, &headers)?;
    let Query(w) = q?;
    Ok(Json(UsersReport {
        since: w.since(),
        users: state.analytics.user_plays(w.since(), w.limit()).await?,
    }))
}

/// Completion and skip rates of the sessions ended in the window.
#[utoipa::path(
    get,
    path = "/api/analytics/completion",
    tag = "analytics",
    params(Window),
    responses(
        (status = 200, description = "Completion", body = CompletionReport),
        ReportErrors,
    )
)]
pub async fn completion(
    State(state): State<Arc<AppState>>,
    q: WindowQuery,
) -> Result<Json<CompletionReport>, ApiError> {
    let Query(w) = q?;
    Ok(Json(CompletionReport {
        since: w.since(),
        completion: state.analytics.completion(w.since()).await?,
    }))
}

/// Concurrent listeners over the window, sampled every `step_secs`.
#[utoipa::path(
    get,
    path = "/api/analytics/concurrency",
    tag = "analytics",
    params(Window),
    responses(
        (status = 200, description = "Listeners over time", body = ConcurrencyReport),
        ReportErrors,
    )
)]
pub async fn concurrency(
    State(state): State<Arc<AppState>>,
    q: WindowQuery,
) -> Result<Json<ConcurrencyReport>, ApiError> {
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
    Ok(Json(ConcurrencyReport {
        step_secs: step,
        points,
    }))
}

/// Sessions by quality, and the quality switches, in the window.
#[utoipa::path(
    get,
    path = "/api/analytics/quality",
    tag = "analytics",
    params(Window),
    responses(
        (status = 200, description = "Quality distribution and switches", body = QualityByWindow),
        ReportErrors,
    )
)]
pub async fn quality(
    State(state): State<Arc<AppState>>,
    q: WindowQuery,
) -> Result<Json<QualityByWindow>, ApiError> {
    let Query(w) = q?;
    Ok(Json(QualityByWindow {
        since: w.since(),
        quality: state.analytics.quality(w.since()).await?,
    }))
}

/// Quality of experience (start-up, rebuffering, bitrate, switches), overall or by
/// `group_by` platform or connection.
#[utoipa::path(
    get,
    path = "/api/analytics/qoe",
    tag = "analytics",
    params(Window),
    responses(
        (status = 200, description = "QoE by group", body = QoeReport),
        ReportErrors,
    )
)]
pub async fn qoe(
    State(state): State<Arc<AppState>>,
    q: WindowQuery,
) -> Result<Json<QoeReport>, ApiError> {
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
    Ok(Json(QoeReport {
        since: w.since(),
        groups: state.analytics.qoe_summary(w.since(), grouping).await?,
    }))
}

/// QoE of each session in the window (per-user data: admin or operator).
#[utoipa::path(
    get,
    path = "/api/analytics/qoe/sessions",
    tag = "analytics",
    params(Window),
    responses(
        (status = 200, description = "Sessions' QoE", body = QoeSessions),
        (status = 403, description = "Neither an admin token nor the server's operator", body = ErrorBody),
        ReportErrors,
    ),
    security(("bearer" = []), ()),
)]
pub async fn qoe_sessions(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    q: WindowQuery,
) -> Result<Json<QoeSessions>, ApiError> {
    operator_only(&state, peer, &headers)?;
    let Query(w) = q?;
    Ok(Json(QoeSessions {
        since: w.since(),
        sessions: state.analytics.qoe_sessions(w.since(), w.limit()).await?,
    }))
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

/// Everything recorded about a listener (sessions, events, social actions), as JSON.
#[utoipa::path(
    get,
    path = "/api/analytics/users/{id}/export",
    tag = "analytics",
    params(("id" = String, Path, description = "The listener"), Identity),
    responses(
        (status = 200, description = "The listener's data", body = Object),
        (status = 400, description = "Malformed `user_id`", body = ErrorBody),
        (status = 401, description = "Invalid token", body = ErrorBody),
        (status = 403, description = "Not the listener's own token, an admin token or the operator", body = ErrorBody),
        (status = 503, description = "The analytics store is unavailable", body = ErrorBody),
    ),
    security(("bearer" = []), ("token_query" = []), ()),
)]
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

/// Erases everything recorded about a listener.
#[utoipa::path(
    delete,
    path = "/api/analytics/users/{id}",
    tag = "analytics",
    params(("id" = String, Path, description = "The listener"), Identity),
    responses(
        (status = 200, description = "Erased", body = Erased),
        (status = 400, description = "Malformed `user_id`", body = ErrorBody),
        (status = 401, description = "Invalid token", body = ErrorBody),
        (status = 403, description = "Not the listener's own token, an admin token or the operator", body = ErrorBody),
        (status = 503, description = "The analytics store is unavailable", body = ErrorBody),
    ),
    security(("bearer" = []), ("token_query" = []), ()),
)]
pub async fn delete_user(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(user): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Erased>, ApiError> {
    self_or_admin(&state, peer, &headers, &q, &user)?;
    let sessions = state.analytics.delete_user(&user).await?;
    tracing::info!(user_id = %user, sessions, "user analytics deleted");
    Ok(Json(Erased {
        user_id: user,
        sessions_deleted: sessions,
    }))
}

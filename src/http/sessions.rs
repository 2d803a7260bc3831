//! `/api/streaming/*`: streaming sessions, as the spec's `useAdaptiveStreaming` hook uses them.
//! Each session is also an analytics play session (same id): its reports feed QoE.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use super::error::Path;
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::auth::identify;
use super::openapi::{ErrorBody, Identity, JsonBodyErrors};
use super::{ApiError, AppState};
use crate::analytics::{Platform, SessionExtras};
use crate::streaming::adaptive::{
    find_track, AdaptiveProfile, ClientCapabilities, PerformanceMetrics, SessionHolder,
    StreamingError, StreamingSession, StreamingStats, MAX_SESSIONS,
};

/// Longest `client_id` kept (an application's device or install id; not parsed).
const MAX_CLIENT_ID: usize = 256;

/// `POST /api/streaming/session`'s body (the spec's hook sends the first two).
#[derive(Debug, Deserialize, ToSchema, ts_rs::TS)]
#[ts(export)]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    track_id: String,
    #[serde(default)]
    #[ts(optional, as = "Option<ClientCapabilities>")]
    client_capabilities: ClientCapabilities,
    #[serde(default)]
    #[ts(optional)]
    client_id: Option<String>,
    /// The listener, for analytics (optional: anonymous plays are recorded without it).
    #[serde(default)]
    #[ts(optional)]
    user_id: Option<String>,
}

/// A player's report: the spec's `PerformanceMetrics`, plus what only the player knows.
#[derive(Debug, Deserialize, ToSchema, ts_rs::TS)]
#[ts(export)]
pub struct MetricsReport {
    #[serde(flatten)]
    metrics: PerformanceMetrics,
    /// Playback position now (ms; a fraction is rounded).
    #[ts(optional, as = "Option<u32>")]
    #[serde(default, deserialize_with = "crate::streaming::millis::optional")]
    position_ms: Option<u64>,
    /// The profile the player is actually playing (its own ABR may have switched).
    #[ts(optional)]
    current_quality: Option<String>,
    /// Time from pressing play to the first audio (ms).
    #[ts(optional, as = "Option<u32>")]
    startup_ms: Option<u64>,
}

/// A new session: what the spec's `useAdaptiveStreaming` hook reads.
#[derive(Debug, Serialize, ToSchema, ts_rs::TS)]
#[ts(export)]
pub struct SessionCreated {
    pub session_id: String,
    /// The profile to start with, chosen from the client's capabilities.
    pub initial_profile: AdaptiveProfile,
    /// The session's master playlist (its current profile listed first).
    pub master_playlist: String,
}

/// The answer to a report: the quality the server now recommends.
#[derive(Debug, Serialize, ToSchema, ts_rs::TS)]
#[ts(export)]
pub struct MetricsAck {
    pub session_id: String,
    pub current_quality: String,
}

/// `DELETE`'s query (read leniently by the handler: a malformed hint must not keep the session
/// open; this type documents it).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documentation only
pub struct EndQuery {
    /// Where playback stopped, for analytics (ignored unless a whole number of milliseconds).
    position_ms: Option<u64>,
}

fn session_uuid(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| StreamingError::UnknownSession(id.to_string()).into())
}

/// Starts a streaming session for a track: the server picks the first profile from the client's
/// capabilities and then follows the player's reports.
#[utoipa::path(
    post,
    path = "/api/streaming/session",
    tag = "streaming",
    params(Identity),
    request_body = CreateSession,
    responses(
        (status = 201, description = "Session created", body = SessionCreated),
        (status = 400, description = "Malformed body or `user_id`", body = ErrorBody),
        (status = 401, description = "Invalid token", body = ErrorBody),
        (status = 404, description = "No such track", body = ErrorBody),
        (status = 503, description = "Library still being scanned or unreadable, or too many sessions open (`Retry-After`)", body = ErrorBody),
        JsonBodyErrors,
    ),
    security((), ("bearer" = []), ("token_query" = [])),
)]
pub async fn create(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(mut query): Query<HashMap<String, String>>,
    body: Result<Json<CreateSession>, JsonRejection>,
) -> Result<(StatusCode, Json<SessionCreated>), ApiError> {
    let Json(mut body) = body?;
    // The body's `user_id` is a claim like `?user_id=`: believed under the same rules (a token,
    // or this machine), refused if it contradicts a token, dropped for an anonymous caller, so
    // nobody can address quality changes or listening stats to someone else.
    if let Some(u) = body.user_id.take() {
        query.entry("user_id".into()).or_insert(u);
    }
    body.user_id = identify(&state, peer, &headers, &query)?.map(|i| i.user_id);
    let track = find_track(&state.library, &body.track_id)?;
    if body
        .client_id
        .as_ref()
        .is_some_and(|c| c.len() > MAX_CLIENT_ID)
    {
        return Err(ApiError::bad_request(
            "invalid_body",
            format!("client_id is longer than {MAX_CLIENT_ID} bytes"),
        ));
    }
    if !state.streaming.has_room_for_session().await {
        return Err(StreamingError::TooManySessions(MAX_SESSIONS).into());
    }
    // A field of the body naming no profile: the body is malformed (as in a metrics report),
    // rather than a session quietly started on another profile than the one asked for.
    if let Some(q) = body.client_capabilities.preferred_quality.as_deref() {
        if state.streaming.profile(q).is_none() {
            return Err(ApiError::bad_request(
                "invalid_body",
                StreamingError::UnknownQuality(q.to_string()).to_string(),
            ));
        }
    }
    // What the body leaves unknown, the request may say (Client Hints, User-Agent), and
    // `Save-Data: on` holds as for `/stream`.
    body.client_capabilities = body
        .client_capabilities
        .with_hints(&super::stream::request_hints(&headers));
    let session = Uuid::new_v4();
    let connection = format!("{:?}", body.client_capabilities.connection_type);
    let address = super::auth::client_address(peer, &headers);
    // A listener's sessions count in their share, an anonymous caller's in its address's.
    let holder = match &body.user_id {
        Some(u) => SessionHolder::User(u.clone()),
        None => SessionHolder::Address(address),
    };
    let profile = state
        .streaming
        .create_held_session(
            session.to_string(),
            body.track_id.clone(),
            body.client_id.unwrap_or_default(),
            body.user_id.clone(),
            Some(holder),
            body.client_capabilities,
        )
        .await;
    let header = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let user_agent = header(header::USER_AGENT);
    state
        .analytics
        .start_play_session_with(
            body.user_id,
            track.id.clone(),
            address.to_string(),
            user_agent.clone(),
            track.duration_ms,
            profile.quality_id.clone(),
            user_agent
                .as_deref()
                .map_or(Platform::Unknown, Platform::from_user_agent),
            header(header::REFERER),
            SessionExtras {
                session_id: Some(session),
                connection_type: Some(connection),
            },
        )
        .await;
    Ok((
        StatusCode::CREATED,
        Json(SessionCreated {
            session_id: session.to_string(),
            initial_profile: profile,
            master_playlist: format!("/hls/{}/master.m3u8?session_id={}", body.track_id, session),
        }),
    ))
}

/// A session: its current quality, capabilities and the player's last report.
#[utoipa::path(
    get,
    path = "/api/streaming/session/{id}",
    tag = "streaming",
    params(("id" = String, Path, description = "Session id")),
    responses(
        (status = 200, description = "The session", body = StreamingSession),
        (status = 404, description = "No such session (ended, expired or never created)",
            body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<StreamingSession>, ApiError> {
    let session = state
        .streaming
        .get_session(&id)
        .await
        .ok_or(StreamingError::UnknownSession(id))?;
    Ok(Json(session))
}

/// A player's performance report; the quality monitor re-decides the session from these.
#[utoipa::path(
    post,
    path = "/api/streaming/session/{id}/metrics",
    tag = "streaming",
    params(("id" = String, Path, description = "Session id")),
    request_body = MetricsReport,
    responses(
        (status = 200, description = "Report taken", body = MetricsAck),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 404, description = "No such session", body = ErrorBody),
        JsonBodyErrors,
    )
)]
pub async fn metrics(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    body: Result<Json<MetricsReport>, JsonRejection>,
) -> Result<Json<MetricsAck>, ApiError> {
    let Json(report) = body?;
    let uuid = session_uuid(&id)?;
    let Some(before) = state.streaming.get_session(&id).await else {
        return Err(StreamingError::UnknownSession(id).into());
    };
    // What is left of the track after the playhead: near the end, buffer health is measured
    // against it (see `report_metrics_with_media_left`).
    let media_left = report.position_ms.and_then(|p| {
        let track = state.library.catalog().get(&before.track_id)?;
        Some(std::time::Duration::from_millis(
            track.duration_ms.saturating_sub(p),
        ))
    });
    // A switch is a change from what the player reported before (not from the server's choice,
    // which a player's next report may not reflect yet). Before the report: the player's own
    // `quality_switches` already counts this switch, and the report keeps the larger count.
    let switched = match report.current_quality.as_deref() {
        Some(q) => match state.streaming.record_player_quality(&id, q).await {
            Ok(from) => from.map(|from| (from, q.to_string())),
            // A field of the body, not a resource of the path: the body is malformed.
            Err(e @ StreamingError::UnknownQuality(_)) => {
                return Err(ApiError::bad_request("invalid_body", e.to_string()))
            }
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    let session = state
        .streaming
        .report_metrics_with_media_left(&id, report.metrics.clone(), media_left)
        .await?;
    // Progress first: what was played up to this report was played on the old profile.
    if let Some(p) = report.position_ms {
        state
            .analytics
            .update_play_progress(
                uuid,
                p,
                Some(session.performance_metrics.buffer_health_percentage),
            )
            .await;
    }
    if let Some((from, to)) = &switched {
        state
            .analytics
            .record_quality_switch(uuid, from, to, Some("player".into()))
            .await;
    }
    state
        .analytics
        .record_performance(uuid, &session.performance_metrics)
        .await;
    if let Some(user) = state.streaming.session_user(&id).await {
        state
            .websocket
            .note_buffer(&user, session.performance_metrics.buffer_health_percentage);
    }
    if let Some(s) = report.startup_ms {
        state.analytics.record_startup(uuid, s).await;
    }
    let current = state
        .streaming
        .get_session(&id)
        .await
        .map_or(session.current_quality, |s| s.current_quality);
    Ok(Json(MetricsAck {
        session_id: session.session_id,
        current_quality: current,
    }))
}

/// Ends a session (the player moved on): `?position_ms=` records where it stopped.
#[utoipa::path(
    delete,
    path = "/api/streaming/session/{id}",
    tag = "streaming",
    params(("id" = String, Path, description = "Session id"), EndQuery),
    responses(
        (status = 204, description = "Session ended"),
        (status = 404, description = "No such session", body = ErrorBody),
    )
)]
pub async fn end(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<StatusCode, ApiError> {
    let uuid = session_uuid(&id)?;
    if let Some(user) = state.streaming.session_user(&id).await {
        state.websocket.forget_buffer(&user);
    }
    let known = state.streaming.end_session(&id).await;
    // The play is ended even when the session is gone (expired during a long pause, or held
    // by another node): its analytics session may still be open, and the player's position is
    // the last word on it. Ending an ended or unknown play changes nothing.
    let position = q.get("position_ms").and_then(|p| p.parse().ok());
    state.analytics.end_play_session(uuid, position).await;
    if !known {
        return Err(StreamingError::UnknownSession(id).into());
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Sessions now, by quality, connection and device (the spec's `get_streaming_stats`).
#[utoipa::path(
    get,
    path = "/api/streaming/stats",
    tag = "streaming",
    responses((status = 200, description = "Streaming statistics", body = StreamingStats)),
)]
pub async fn stats(State(state): State<Arc<AppState>>) -> Json<StreamingStats> {
    Json(state.streaming.streaming_stats().await)
}

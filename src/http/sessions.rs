//! `/api/streaming/*`: streaming sessions, as the spec's `useAdaptiveStreaming` hook uses them.
//! Each session is also an analytics play session (same id): its reports feed QoE.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::auth::identify;
use super::{ApiError, AppState};
use crate::analytics::{Platform, SessionExtras};
use crate::streaming::adaptive::{ClientCapabilities, PerformanceMetrics, StreamingError};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    track_id: String,
    #[serde(default)]
    client_capabilities: ClientCapabilities,
    #[serde(default)]
    client_id: Option<String>,
    /// The listener, for analytics (optional: anonymous plays are recorded without it).
    #[serde(default)]
    user_id: Option<String>,
}

/// A player's report: the spec's `PerformanceMetrics`, plus what only the player knows.
#[derive(Debug, Deserialize)]
pub struct MetricsReport {
    #[serde(flatten)]
    metrics: PerformanceMetrics,
    /// Playback position now.
    position_ms: Option<u64>,
    /// The profile the player is actually playing (its own ABR may have switched).
    current_quality: Option<String>,
    /// Time from pressing play to the first audio.
    startup_ms: Option<u64>,
}

fn session_uuid(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| StreamingError::UnknownSession(id.to_string()).into())
}

pub async fn create(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(mut query): Query<HashMap<String, String>>,
    body: Result<Json<CreateSession>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(mut body) = body?;
    // The body's `user_id` is a claim like `?user_id=`: believed under the same rules (a token,
    // or this machine), refused if it contradicts a token, dropped for an anonymous caller, so
    // nobody can address quality changes or listening stats to someone else.
    if let Some(u) = body.user_id.take() {
        query.entry("user_id".into()).or_insert(u);
    }
    body.user_id = identify(&state, peer, &headers, &query)?.map(|i| i.user_id);
    let track = state
        .library
        .get(&body.track_id)
        .ok_or_else(|| StreamingError::UnknownTrack(body.track_id.clone()))?;
    let session = Uuid::new_v4();
    let connection = format!("{:?}", body.client_capabilities.connection_type);
    let profile = state
        .streaming
        .create_session_for_user(
            session.to_string(),
            body.track_id.clone(),
            body.client_id.unwrap_or_default(),
            body.user_id.clone(),
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
            peer.ip().to_string(),
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
        Json(json!({
            "session_id": session.to_string(),
            "initial_profile": profile,
            "master_playlist": format!("/hls/{}/master.m3u8?session_id={}", body.track_id, session),
        })),
    ))
}

pub async fn get(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let session = state
        .streaming
        .get_session(&id)
        .await
        .ok_or(StreamingError::UnknownSession(id))?;
    Ok(Json(serde_json::to_value(session).unwrap_or_default()))
}

pub async fn metrics(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    body: Result<Json<MetricsReport>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(report) = body?;
    let uuid = session_uuid(&id)?;
    if state.streaming.get_session(&id).await.is_none() {
        return Err(StreamingError::UnknownSession(id).into());
    }
    // A switch is a change from what the player reported before (not from the server's choice,
    // which a player's next report may not reflect yet). Before the report: the player's own
    // `quality_switches` already counts this switch, and the report keeps the larger count.
    let switched = match report.current_quality.as_deref() {
        Some(q) => state
            .streaming
            .record_player_quality(&id, q)
            .await?
            .map(|from| (from, q.to_string())),
        None => None,
    };
    let session = state
        .streaming
        .report_metrics(&id, report.metrics.clone())
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
    Ok(Json(
        json!({ "session_id": session.session_id, "current_quality": current }),
    ))
}

/// Ends a session (the player moved on): `?position_ms=` records where it stopped.
pub async fn end(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<StatusCode, ApiError> {
    let uuid = session_uuid(&id)?;
    if let Some(user) = state.streaming.session_user(&id).await {
        state.websocket.forget_buffer(&user);
    }
    if !state.streaming.end_session(&id).await {
        return Err(StreamingError::UnknownSession(id).into());
    }
    let position = q.get("position_ms").and_then(|p| p.parse().ok());
    state.analytics.end_play_session(uuid, position).await;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn stats(State(state): State<Arc<AppState>>) -> Json<Value> {
    Json(state.streaming.get_streaming_stats().await)
}

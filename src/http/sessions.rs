//! `/api/streaming/*`: streaming sessions, as the spec's `useAdaptiveStreaming` hook uses them.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ApiError, AppState};
use crate::streaming::adaptive::{ClientCapabilities, PerformanceMetrics, StreamingError};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    track_id: String,
    #[serde(default)]
    client_capabilities: ClientCapabilities,
    #[serde(default)]
    client_id: Option<String>,
}

pub async fn create(
    State(state): State<Arc<AppState>>,
    body: Result<Json<CreateSession>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(body) = body?;
    if state.library.get(&body.track_id).is_none() {
        return Err(StreamingError::UnknownTrack(body.track_id).into());
    }
    let session_id = uuid::Uuid::new_v4().to_string();
    let profile = state
        .streaming
        .create_session_with_capabilities(
            session_id.clone(),
            body.track_id.clone(),
            body.client_id.unwrap_or_default(),
            body.client_capabilities,
        )
        .await;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "session_id": session_id,
            "initial_profile": profile,
            "master_playlist": format!("/hls/{}/master.m3u8?session_id={}", body.track_id, session_id),
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
    body: Result<Json<PerformanceMetrics>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(metrics) = body?;
    let session = state.streaming.report_metrics(&id, metrics).await?;
    Ok(Json(
        json!({ "session_id": session.session_id, "current_quality": session.current_quality }),
    ))
}

pub async fn stats(State(state): State<Arc<AppState>>) -> Json<Value> {
    Json(state.streaming.get_streaming_stats().await)
}

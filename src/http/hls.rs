//! HLS routes: master and media playlists, and segments (RFC 8216 packed audio).

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{ApiError, AppState};

const PLAYLIST_TYPE: &str = "application/vnd.apple.mpegurl";
/// Segment URLs carry the source's version, so a segment never changes: cache it for good.
const SEGMENT_CACHE: &str = "public, max-age=31536000, immutable";
/// A playlist changes only if the file does; keep CDN copies short-lived.
const PLAYLIST_CACHE: &str = "public, max-age=60";

#[derive(Debug, Deserialize)]
pub struct MasterQuery {
    session_id: Option<String>,
}

pub async fn master(
    State(state): State<Arc<AppState>>,
    Path(track_id): Path<String>,
    query: Result<Query<MasterQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query?;
    let session = query.session_id.as_deref().filter(|s| !s.is_empty());
    let body = state
        .streaming
        .generate_master_playlist_for(&track_id, session)
        .await?;
    // A session's master is personal (its order follows that listener's link).
    let cache = if session.is_some() {
        "private, no-cache"
    } else {
        PLAYLIST_CACHE
    };
    Ok((
        [
            (header::CONTENT_TYPE, PLAYLIST_TYPE),
            (header::CACHE_CONTROL, cache),
        ],
        body,
    )
        .into_response())
}

pub async fn media(
    State(state): State<Arc<AppState>>,
    Path((track_id, quality)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let body = state
        .streaming
        .generate_quality_playlist(&track_id, &quality)
        .await?;
    Ok((
        [
            (header::CONTENT_TYPE, PLAYLIST_TYPE),
            (header::CACHE_CONTROL, PLAYLIST_CACHE),
        ],
        body,
    )
        .into_response())
}

pub async fn segment(
    State(state): State<Arc<AppState>>,
    Path((track_id, quality, segment)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let req = state.streaming.transcode_request(&track_id, &quality)?;
    let name = state.streaming.parse_segment_name(&quality, &segment)?;
    if name.version != req.version {
        // The file changed since this playlist was fetched.
        return Err(ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "stale_segment",
            format!("segment {segment:?} belongs to an older version of the track"),
        ));
    }
    let body = state.cache.segment(&req, name.index).await?;
    let ctype = req.profile.codec_kind().mime_type();
    Ok((
        [
            (header::CONTENT_TYPE, ctype),
            (header::CACHE_CONTROL, SEGMENT_CACHE),
        ],
        body,
    )
        .into_response())
}

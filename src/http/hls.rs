//! HLS routes: master and media playlists, and segments (RFC 8216 packed audio).

use std::sync::Arc;

use super::error::Path;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde::Deserialize;

use utoipa::IntoParams;

use super::openapi::ErrorBody;
use super::range::none_match_holds;
use super::zero_copy::FileBacked;
use super::{ApiError, AppState};
use crate::media::cache::SegmentData;

const PLAYLIST_TYPE: &str = "application/vnd.apple.mpegurl";
/// Segment URLs carry the source's version, so a segment never changes: cache it for good.
const SEGMENT_CACHE: &str = "public, max-age=31536000, immutable";
/// A playlist changes only if the file does; keep CDN copies short-lived.
const PLAYLIST_CACHE: &str = "public, max-age=60";

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MasterQuery {
    /// A streaming session: its current quality is listed first (players start there).
    session_id: Option<String>,
}

/// The master playlist: one variant per quality profile, with `BANDWIDTH`,
/// `AVERAGE-BANDWIDTH` and `CODECS`.
#[utoipa::path(
    get,
    path = "/hls/{track_id}/master.m3u8",
    tag = "streaming",
    params(("track_id" = String, Path, description = "Track id"), MasterQuery),
    responses(
        (status = 200, description = "HLS master playlist (RFC 8216)", body = String,
            content_type = "application/vnd.apple.mpegurl"),
        (status = 304, description = "Not modified (`If-None-Match`)"),
        (status = 400, description = "Malformed query", body = ErrorBody),
        (status = 404, description = "No such track", body = ErrorBody),
        (status = 503, description = "No library yet (still scanning, or it cannot be read)", body = ErrorBody),
    )
)]
pub async fn master(
    State(state): State<Arc<AppState>>,
    Path(track_id): Path<String>,
    headers: HeaderMap,
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
    Ok(playlist_response(&headers, body, cache))
}

/// A playlist answer. Its `ETag` is a digest of the text, so a player or CDN holding it
/// revalidates with `If-None-Match` and gets a bodiless `304` while it is unchanged.
fn playlist_response(headers: &HeaderMap, body: String, cache: &'static str) -> Response {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(body.as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    let etag = format!("\"{hex}\"");
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| none_match_holds(v, &etag));
    let fields = [
        (header::CONTENT_TYPE, PLAYLIST_TYPE.to_string()),
        (header::CACHE_CONTROL, cache.to_string()),
        (header::ETAG, etag),
    ];
    if unchanged {
        (StatusCode::NOT_MODIFIED, fields).into_response()
    } else {
        (fields, body).into_response()
    }
}

/// A quality's media playlist (VOD: every segment, exact durations, `EXT-X-ENDLIST`).
#[utoipa::path(
    get,
    path = "/hls/{track_id}/{quality}/playlist.m3u8",
    tag = "streaming",
    params(
        ("track_id" = String, Path, description = "Track id"),
        ("quality" = String, Path, description = "Profile: `high`, `medium`, `low` or `mobile`"),
    ),
    responses(
        (status = 200, description = "HLS media playlist (RFC 8216)", body = String,
            content_type = "application/vnd.apple.mpegurl"),
        (status = 304, description = "Not modified (`If-None-Match`)"),
        (status = 404, description = "No such track or quality", body = ErrorBody),
        (status = 503, description = "No library yet (still scanning, or it cannot be read)", body = ErrorBody),
    )
)]
pub async fn media(
    State(state): State<Arc<AppState>>,
    Path((track_id, quality)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let body = state
        .streaming
        .generate_quality_playlist(&track_id, &quality)
        .await?;
    Ok(playlist_response(&headers, body, PLAYLIST_CACHE))
}

/// One segment: packed audio (ADTS AAC or MP3 frames) after an ID3 timestamp tag. Encoded on
/// first demand; its name carries the source's version, so it never changes.
#[utoipa::path(
    get,
    path = "/hls/{track_id}/{quality}/{segment}",
    tag = "streaming",
    params(
        ("track_id" = String, Path, description = "Track id"),
        ("quality" = String, Path, description = "Profile"),
        ("segment" = String, Path, description = "Segment name, as the media playlist gives it"),
    ),
    responses(
        (status = 200, description = "The segment", content(
            (Vec<u8> = "audio/aac"),
            (Vec<u8> = "audio/mpeg"),
        )),
        (status = 404, description = "No such track, quality or segment, or a segment of an \
            older version of the track", body = ErrorBody),
        (status = 422, description = "The source cannot be transcoded", body = ErrorBody),
        (status = 500, description = "The transcode cache cannot be read or written", body = ErrorBody),
        (status = 503, description = "No library yet (or it cannot be read), shutting down, or the file changed since the library was scanned (a rescan is under way); `Retry-After` says when to retry", body = ErrorBody),
    )
)]
pub async fn segment(
    State(state): State<Arc<AppState>>,
    Path((track_id, quality, segment)): Path<(String, String, String)>,
    method: axum::http::Method,
    files: Option<Extension<Arc<FileBacked>>>,
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
    let data = state.cache.segment_data(&req, name.index).await?;
    // A HEAD answer has no body to send: registering it would only hold the memory.
    let files = files
        .as_ref()
        .filter(|_| method == axum::http::Method::GET)
        .map(|Extension(f)| f.as_ref());
    Ok(segment_response(&req.profile, data, files))
}

/// A segment's answer; with `files`, its frames are registered to leave from the cache file with
/// sendfile (the ID3 tag goes from memory).
pub(super) fn segment_response(
    profile: &crate::streaming::adaptive::AdaptiveProfile,
    data: SegmentData,
    files: Option<&FileBacked>,
) -> Response {
    if let Some(files) = files {
        files.register(
            data.bytes.slice(data.tag_len..),
            data.file.clone(),
            data.offset,
        );
    }
    (
        [
            (header::CONTENT_TYPE, profile.codec_kind().mime_type()),
            (header::CACHE_CONTROL, SEGMENT_CACHE),
        ],
        data.bytes,
    )
        .into_response()
}

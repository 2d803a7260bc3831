//! `/api/tracks`: the catalogue as JSON.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use super::error::Path;
use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};

use utoipa::{IntoParams, ToSchema};

use super::auth::require_admin;
use super::openapi::{ErrorBody, Identity};
use super::{ApiError, AppState};
use crate::library::scan::ScanError;
use crate::library::{ScanOutcome, Track};

/// A track as clients see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TrackDto {
    pub id: String,
    pub filename: String,
    pub title: String,
    pub artist: Option<String>,
    pub album: Option<String>,
    pub genre: Option<String>,
    pub duration_ms: u64,
    pub sample_rate: u32,
    pub channels: u16,
    pub codec: String,
}

impl From<&Track> for TrackDto {
    fn from(t: &Track) -> Self {
        Self {
            id: t.id.clone(),
            filename: t.filename.clone(),
            title: t.title.clone(),
            artist: t.artist.clone(),
            album: t.album.clone(),
            genre: t.genre.clone(),
            duration_ms: t.duration_ms,
            sample_rate: t.sample_rate,
            channels: t.channels,
            codec: t.codec.clone(),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Case-insensitive search in title, artist, album, genre and file name.
    q: Option<String>,
    /// Tracks to skip (for paging).
    offset: Option<usize>,
    /// At most this many tracks.
    limit: Option<usize>,
}

/// The catalogue, optionally searched and paged.
///
/// Ordered by artist, then album, then file name; tracks without an artist tag come first.
#[utoipa::path(
    get,
    path = "/api/tracks",
    tag = "library",
    params(ListQuery),
    responses(
        (status = 200, description = "Matching tracks", body = Vec<TrackDto>),
        (status = 400, description = "Malformed query", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<Arc<AppState>>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Vec<TrackDto>>, ApiError> {
    let Query(query) = query?;
    let catalog = state.library.catalog();
    let needle = query
        .q
        .as_deref()
        .map(str::to_lowercase)
        .filter(|s| !s.is_empty());
    let matches = |t: &Track| {
        needle.as_deref().is_none_or(|n| {
            [
                Some(&t.title),
                t.artist.as_ref(),
                t.album.as_ref(),
                t.genre.as_ref(),
                Some(&t.filename),
            ]
            .into_iter()
            .flatten()
            .any(|f| f.to_lowercase().contains(n))
        })
    };
    let tracks = catalog
        .tracks()
        .iter()
        .filter(|t| matches(t))
        .skip(query.offset.unwrap_or(0))
        .take(query.limit.unwrap_or(usize::MAX))
        .map(|t| TrackDto::from(t.as_ref()))
        .collect();
    Ok(Json(tracks))
}

/// One track.
#[utoipa::path(
    get,
    path = "/api/tracks/{id}",
    tag = "library",
    params(("id" = String, Path, description = "Track id")),
    responses(
        (status = 200, description = "The track", body = TrackDto),
        (status = 404, description = "No such track", body = ErrorBody),
    )
)]
pub async fn one(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<TrackDto>, ApiError> {
    state
        .library
        .get(&id)
        .map(|t| Json(TrackDto::from(t.as_ref())))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_track",
                format!("unknown track {id:?}"),
            )
        })
}

/// Scans the library folder again now (an admin token, or the operator on the server machine):
/// new files become tracks, replaced ones get a new version (new segment names), removed ones
/// leave the catalogue. The server also does this every `library_rescan_secs`.
#[utoipa::path(
    post,
    path = "/api/admin/rescan",
    tag = "library",
    params(Identity),
    responses(
        (status = 200, description = "Scanned", body = ScanOutcome),
        (status = 401, description = "Invalid token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 500, description = "The scan crashed (a bug; the catalogue is kept)", body = ErrorBody),
        (status = 503, description = "The library folder cannot be read or is empty while the last scan found tracks there (an unmounted share; the catalogue is kept), or the server is shutting down", body = ErrorBody),
    ),
    security(("bearer" = []), ("token_query" = []), ()),
)]
pub async fn rescan(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<ScanOutcome>, ApiError> {
    require_admin(&state, peer, &headers, &q)?;
    let outcome = state.scan_library().await.map_err(|e| {
        let code = match e {
            ScanError::Cancelled => "shutting_down",
            ScanError::Root { .. } => "library_unreadable",
            ScanError::Crashed(_) => {
                return ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "scan_failed",
                    e.to_string(),
                )
            }
        };
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, e.to_string())
    })?;
    Ok(Json(outcome))
}

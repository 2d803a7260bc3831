//! `/api/playlists…`, likes, shares, follows and the admin `ServerMessage`: what has no command
//! in the spec's protocol. Every change is stored, then announced to the right people over the
//! WebSocket (and recorded in analytics) exactly as the WebSocket commands do.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use super::error::Path;
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{require_admin, require_user};
use super::openapi::{ErrorBody, Identity, JsonBodyErrors, ListenerErrors};
use super::{ApiError, AppState};
use crate::analytics::SocialKind;
use crate::social::{PlaylistView, SocialError};
use crate::streaming::websocket::{MessageLevel, WebSocketEvent};

impl From<SocialError> for ApiError {
    fn from(e: SocialError) -> Self {
        match e {
            SocialError::NoPlaylist(_) => {
                Self::new(StatusCode::NOT_FOUND, "unknown_playlist", e.to_string())
            }
            SocialError::NotOwner(_) => {
                Self::new(StatusCode::FORBIDDEN, "not_owner", e.to_string())
            }
            SocialError::Invalid(_) => Self::bad_request("invalid", e.to_string()),
            SocialError::Db(_) => {
                tracing::error!(error = %e, "social store");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the database is unavailable",
                )
            }
        }
    }
}

type Q = Query<HashMap<String, String>>;

/// A like's outcome.
#[derive(Debug, Serialize, ToSchema)]
pub struct LikeResult {
    pub track_id: String,
    pub total_likes: u64,
    /// False when the caller had already liked the track.
    pub new: bool,
}

/// A follow's outcome.
#[derive(Debug, Serialize, ToSchema)]
pub struct FollowResult {
    pub follower_id: String,
    pub followed_id: String,
    /// False when the caller already followed that user.
    pub new: bool,
}

fn view(state: &AppState, p: &crate::social::Playlist) -> PlaylistView {
    p.view(&state.library)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NameBody {
    /// 1 to 200 characters (surrounding spaces trimmed), no control characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    name: String,
}

/// The caller's playlists and those shared with them.
#[utoipa::path(
    get,
    path = "/api/playlists",
    tag = "playlists",
    params(Identity),
    responses(
        (status = 200, description = "Playlists", body = Vec<PlaylistView>),
        ListenerErrors,
    ),
    security(("bearer" = []), ("token_query" = []), ()),
)]
pub async fn list(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Q,
) -> Result<Json<Vec<PlaylistView>>, ApiError> {
    let me = require_user(&state, peer, &headers, &q)?;
    let lists = state.social.playlists_for(&me.user_id).await?;
    Ok(Json(lists.iter().map(|p| view(&state, p)).collect()))
}

/// Creates an empty playlist.
#[utoipa::path(
    post,
    path = "/api/playlists",
    tag = "playlists",
    params(Identity),
    request_body = NameBody,
    responses(
        (status = 201, description = "Created", body = PlaylistView),
        ListenerErrors,
        JsonBodyErrors,
    ),
    security(("bearer" = []), ("token_query" = []), ()),
)]
pub async fn create(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Q,
    body: Result<Json<NameBody>, JsonRejection>,
) -> Result<(StatusCode, Json<PlaylistView>), ApiError> {
    let me = require_user(&state, peer, &headers, &q)?;
    let Json(body) = body?;
    let change = state
        .social
        .create_playlist(&me.user_id, &body.name)
        .await?;
    state.websocket.playlist_changed(&change, &me.user_id).await;
    Ok((StatusCode::CREATED, Json(view(&state, &change.playlist))))
}

/// One playlist (its owner's or shared with the caller).
#[utoipa::path(
    get,
    path = "/api/playlists/{id}",
    tag = "playlists",
    params(("id" = String, Path, description = "Playlist id"), Identity),
    responses(
        (status = 200, description = "The playlist", body = PlaylistView),
        (status = 404, description = "No such playlist, or not visible to the caller", body = ErrorBody),
        ListenerErrors,
    ),
    security(("bearer" = []), ("token_query" = []), ()),
)]
pub async fn get(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Q,
    Path(id): Path<String>,
) -> Result<Json<PlaylistView>, ApiError> {
    let me = require_user(&state, peer, &headers, &q)?;
    let p = state.social.playlist(&me.user_id, &id).await?;
    Ok(Json(view(&state, &p)))
}

/// Renames a playlist (owner only).
#[utoipa::path(
    patch,
    path = "/api/playlists/{id}",
    tag = "playlists",
    params(("id" = String, Path, description = "Playlist id"), Identity),
    request_body = NameBody,
    responses(
        (status = 200, description = "Renamed", body = PlaylistView),
        (status = 403, description = "Not the owner", body = ErrorBody),
        (status = 404, description = "No such playlist", body = ErrorBody),
        ListenerErrors,
        JsonBodyErrors,
    ),
    security(("bearer" = []), ("token_query" = []), ()),
)]
pub async fn rename(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Q,
    Path(id): Path<String>,
    body: Result<Json<NameBody>, JsonRejection>,
) -> Result<Json<PlaylistView>, ApiError> {
    let me = require_user(&state, peer, &headers, &q)?;
    let Json(body) = body?;
    let change = state
        .social
        .rename_playlist(&me.user_id, &id, &body.name)
        .await?;
    state.websocket.playlist_changed(&change, &me.user_id).await;
    Ok(Json(view(&state, &change.playlist)))
}

/// Deletes a playlist (owner only).
#[utoipa::path(
    delete,
    path = "/api/playlists/{id}",
    tag = "playlists",
    params(("id" = String, Path, description = "Playlist id"), Identity),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Not the owner", body = ErrorBody),
        (status = 404, description = "No such playlist", body = ErrorBody),
        ListenerErrors,
    ),
    security(("bearer" = []), ("token_query" = []), ()),
)]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Q,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let me = require_user(&state, peer, &headers, &q)?;
    let change = state.social.delete_playlist(&me.user_id, &id).await?;
    state.websocket.playlist_changed(&change, &me.user_id).await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddBody {
    track_id: String,
    #[serde(default)]
    position: Option<usize>,
}

/// Adds a track at `position` (default: the end).
#[utoipa::path(
    post,
    path = "/api/playlists/{id}/tracks",
    tag = "playlists",
    params(("id" = String, Path, description = "Playlist id"), Identity),
    request_body = AddBody,
    responses(
        (status = 200, description = "The playlist after the change", body = PlaylistView),
        (status = 403, description = "Not the owner", body = ErrorBody),
        (status = 404, description = "No such playlist or track", body = ErrorBody),
        ListenerErrors,
        JsonBodyErrors,
    ),
    security(("bearer" = []), ("token_query" = []), ()),
)]
pub async fn add_track(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Q,
    Path(id): Path<String>,
    body: Result<Json<AddBody>, JsonRejection>,
) -> Result<Json<PlaylistView>, ApiError> {
    let me = require_user(&state, peer, &headers, &q)?;
    let Json(body) = body?;
    if state.library.get(&body.track_id).is_none() {
        return Err(ApiError::not_found(format!("no track {:?}", body.track_id)));
    }
    let change = state
        .social
        .add_track(&me.user_id, &id, &body.track_id, body.position)
        .await?;
    state.websocket.playlist_changed(&change, &me.user_id).await;
    Ok(Json(view(&state, &change.playlist)))
}

/// Removes the entry at `position` (0-based).
#[utoipa::path(
    delete,
    path = "/api/playlists/{id}/tracks/{position}",
    tag = "playlists",
    params(("id" = String, Path, description = "Playlist id"), ("position" = usize, Path, description = "0-based position"), Identity),
    responses(
        (status = 200, description = "The playlist after the change", body = PlaylistView),
        (status = 403, description = "Not the owner", body = ErrorBody),
        (status = 404, description = "No such playlist", body = ErrorBody),
        ListenerErrors,
    ),
    security(("bearer" = []), ("token_query" = []), ()),
)]
pub async fn remove_at(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Q,
    Path((id, position)): Path<(String, usize)>,
) -> Result<Json<PlaylistView>, ApiError> {
    let me = require_user(&state, peer, &headers, &q)?;
    let change = state.social.remove_at(&me.user_id, &id, position).await?;
    state.websocket.playlist_changed(&change, &me.user_id).await;
    Ok(Json(view(&state, &change.playlist)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveBody {
    from: usize,
    to: usize,
}

/// Moves the entry at `from` to `to` (0-based).
#[utoipa::path(
    post,
    path = "/api/playlists/{id}/move",
    tag = "playlists",
    params(("id" = String, Path, description = "Playlist id"), Identity),
    request_body = MoveBody,
    responses(
        (status = 200, description = "The playlist after the change", body = PlaylistView),
        (status = 403, description = "Not the owner", body = ErrorBody),
        (status = 404, description = "No such playlist", body = ErrorBody),
        ListenerErrors,
        JsonBodyErrors,
    ),
    security(("bearer" = []), ("token_query" = []), ()),
)]
pub async fn move_track(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Q,
    Path(id): Path<String>,
    body: Result<Json<MoveBody>, JsonRejection>,
) -> Result<Json<PlaylistView>, ApiError> {
    let me = require_user(&state, peer, &headers, &q)?;
    let Json(body) = body?;
    let change = state
        .social
        .move_track(&me.user_id, &id, body.from, body.to)
        .await?;
    state.websocket.playlist_changed(&change, &me.user_id).await;
    Ok(Json(view(&state, &change.playlist)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShareBody {
    to_users: Vec<String>,
    #[serde(default)]
    message: Option<String>,
}

/// Shares a playlist with users (owner only); each new recipient gets `PlaylistShared`.
#[utoipa::path(
    post,
    path = "/api/playlists/{id}/share",
    tag = "playlists",
    params(("id" = String, Path, description = "Playlist id"), Identity),
    request_body = ShareBody,
    responses(
        (status = 200, description = "The playlist, with its audience", body = PlaylistView),
        (status = 403, description = "Not the owner", body = ErrorBody),
        (status = 404, description = "No such playlist", body = ErrorBody),
        ListenerErrors,
        JsonBodyErrors,
    ),
    security(("bearer" = []), ("token_query" = []), ()),
)]
pub async fn share_playlist(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Q,
    Path(id): Path<String>,
    body: Result<Json<ShareBody>, JsonRejection>,
) -> Result<Json<PlaylistView>, ApiError> {
    let me = require_user(&state, peer, &headers, &q)?;
    let Json(body) = body?;
    let (playlist, added) = state
        .social
        .share_playlist(&me.user_id, &id, &body.to_users)
        .await?;
    if !added.is_empty() {
        state
            .analytics
            .record_social(
                SocialKind::Share,
                &me.user_id,
                "playlist",
                &id,
                Some(added.join(",")),
            )
            .await;
        state
            .websocket
            .broadcast_event(WebSocketEvent::PlaylistShared {
                playlist_id: id,
                from_user: me.user_id,
                to_users: added,
            })
            .await;
    }
    Ok(Json(view(&state, &playlist)))
}

/// Likes a track (once per user); `TrackLiked` goes to everyone.
#[utoipa::path(
    post,
    path = "/api/tracks/{id}/like",
    tag = "social",
    params(("id" = String, Path, description = "Track id"), Identity),
    responses(
        (status = 200, description = "The track's likes", body = LikeResult),
        (status = 404, description = "No such track", body = ErrorBody),
        ListenerErrors,
    ),
    security(("bearer" = []), ("token_query" = []), ()),
)]
pub async fn like_track(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Q,
    Path(track_id): Path<String>,
) -> Result<Json<LikeResult>, ApiError> {
    let me = require_user(&state, peer, &headers, &q)?;
    if state.library.get(&track_id).is_none() {
        return Err(ApiError::not_found(format!("no track {track_id:?}")));
    }
    let (new, total) = state.social.like(&me.user_id, &track_id).await?;
    if new {
        state
            .analytics
            .record_social(SocialKind::Like, &me.user_id, "track", &track_id, None)
            .await;
        state
            .websocket
            .broadcast_event(WebSocketEvent::TrackLiked {
                track_id: track_id.clone(),
                user_id: me.user_id,
                total_likes: total,
            })
            .await;
    }
    Ok(Json(LikeResult {
        track_id,
        total_likes: total,
        new,
    }))
}

/// Shares a track: `TrackShared` goes to the sender and the recipients only.
#[utoipa::path(
    post,
    path = "/api/tracks/{id}/share",
    tag = "social",
    params(("id" = String, Path, description = "Track id"), Identity),
    request_body = ShareBody,
    responses(
        (status = 204, description = "Shared"),
        (status = 404, description = "No such track", body = ErrorBody),
        ListenerErrors,
        JsonBodyErrors,
    ),
    security(("bearer" = []), ("token_query" = []), ()),
)]
pub async fn share_track(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Q,
    Path(track_id): Path<String>,
    body: Result<Json<ShareBody>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let me = require_user(&state, peer, &headers, &q)?;
    let Json(body) = body?;
    if state.library.get(&track_id).is_none() {
        return Err(ApiError::not_found(format!("no track {track_id:?}")));
    }
    let to = state.social.share_recipients(&me.user_id, &body.to_users)?;
    let message = body
        .message
        .map(|m| {
            m.chars()
                .filter(|c| !c.is_control())
                .take(500)
                .collect::<String>()
        })
        .filter(|m| !m.is_empty());
    state
        .analytics
        .record_social(
            SocialKind::Share,
            &me.user_id,
            "track",
            &track_id,
            Some(to.join(",")),
        )
        .await;
    state
        .websocket
        .broadcast_event(WebSocketEvent::TrackShared {
            track_id,
            from_user: me.user_id,
            to_users: to,
            message,
        })
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Follows a user: `UserFollowed` goes to the two users.
#[utoipa::path(
    post,
    path = "/api/users/{id}/follow",
    tag = "social",
    params(("id" = String, Path, description = "The user to follow"), Identity),
    responses(
        (status = 200, description = "Following", body = FollowResult),
        ListenerErrors,
    ),
    security(("bearer" = []), ("token_query" = []), ()),
)]
pub async fn follow(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Q,
    Path(followed): Path<String>,
) -> Result<Json<FollowResult>, ApiError> {
    let me = require_user(&state, peer, &headers, &q)?;
    let new = state.social.follow(&me.user_id, &followed).await?;
    if new {
        state
            .analytics
            .record_social(SocialKind::Follow, &me.user_id, "user", &followed, None)
            .await;
        state
            .websocket
            .broadcast_event(WebSocketEvent::UserFollowed {
                follower_id: me.user_id.clone(),
                followed_id: followed.clone(),
            })
            .await;
    }
    Ok(Json(FollowResult {
        follower_id: me.user_id,
        followed_id: followed,
        new,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageBody {
    /// 1 to 2000 characters (control characters other than line breaks are removed).
    #[schema(min_length = 1, max_length = 2000, pattern = r"\S")]
    message: String,
    #[serde(default)]
    level: Option<MessageLevel>,
}

/// Broadcasts a `ServerMessage` to every connection (an admin token, or the operator on the server machine).
#[utoipa::path(
    post,
    path = "/api/admin/message",
    tag = "social",
    params(Identity),
    request_body = MessageBody,
    responses(
        (status = 202, description = "Broadcast"),
        (status = 400, description = "Malformed body, or a message that is empty or over 2000 characters", body = ErrorBody),
        (status = 401, description = "Invalid token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        JsonBodyErrors,
    ),
    security(("bearer" = []), ("token_query" = []), ()),
)]
pub async fn server_message(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Q,
    body: Result<Json<MessageBody>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    require_admin(&state, peer, &headers, &q)?;
    let Json(body) = body?;
    let message: String = body
        .message
        .chars()
        .filter(|c| *c == '\n' || !c.is_control())
        .collect();
    if message.trim().is_empty() || message.chars().count() > 2000 {
        return Err(ApiError::bad_request(
            "invalid",
            "a message is 1 to 2000 characters",
        ));
    }
    state
        .websocket
        .broadcast_event(WebSocketEvent::ServerMessage {
            message,
            level: body.level.unwrap_or(MessageLevel::Info),
        })
        .await;
    Ok(StatusCode::ACCEPTED)
}

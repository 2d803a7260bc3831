//! HTTP: the axum router, its handlers and DTOs. The only module that knows the wire.

mod analytics;
pub mod auth;
pub mod error;
mod hls;
mod observe;
pub mod range;
mod sessions;
mod social;
mod stream;
mod tracks;
mod ws;

use std::sync::Arc;

use axum::http::{header, HeaderValue, Method};
use axum::routing::{get, post};
use axum::Router;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::trace::TraceLayer;

use crate::analytics::AnalyticsEngine;
use crate::config::Config;
use crate::library::Library;
use crate::media::cache::TranscodeCache;
use crate::streaming::adaptive::AdaptiveStreamingManager;
use crate::streaming::websocket::WebSocketManager;

pub use error::ApiError;

/// Everything a handler may need, built once at start-up.
pub struct AppState {
    pub config: Arc<Config>,
    pub analytics: Arc<AnalyticsEngine>,
    pub websocket: Arc<WebSocketManager>,
    pub library: Arc<Library>,
    pub streaming: Arc<AdaptiveStreamingManager>,
    pub auth: crate::auth::Authenticator,
    pub social: Arc<crate::social::SocialStore>,
    pub cache: TranscodeCache,
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// The built web player, if any (served at `/`).
    pub web_root: Option<std::path::PathBuf>,
}

/// The whole HTTP API.
pub fn router(state: Arc<AppState>) -> Router {
    let cors = cors_layer(&state.config.cors_origins);
    Router::new()
        .route("/healthz", get(observe::healthz))
        .route("/metrics", get(observe::metrics))
        .route("/api/tracks", get(tracks::list))
        .route("/api/tracks/{id}", get(tracks::one))
        .route("/hls/{track_id}/master.m3u8", get(hls::master))
        .route("/hls/{track_id}/{quality}/playlist.m3u8", get(hls::media))
        .route("/hls/{track_id}/{quality}/{segment}", get(hls::segment))
        .route(
            "/stream/{*filename}",
            get(stream::progressive).head(stream::progressive),
        )
        .route("/api/streaming/session", post(sessions::create))
        .route(
            "/api/streaming/session/{id}",
            get(sessions::get).delete(sessions::end),
        )
        .route(
            "/api/streaming/session/{id}/metrics",
            post(sessions::metrics),
        )
        .route("/api/streaming/stats", get(sessions::stats))
        .route("/api/playlists", get(social::list).post(social::create))
        .route(
            "/api/playlists/{id}",
            get(social::get)
                .patch(social::rename)
                .delete(social::delete),
        )
        .route("/api/playlists/{id}/tracks", post(social::add_track))
        .route(
            "/api/playlists/{id}/tracks/{position}",
            axum::routing::delete(social::remove_at),
        )
        .route("/api/playlists/{id}/move", post(social::move_track))
        .route("/api/playlists/{id}/share", post(social::share_playlist))
        .route("/api/tracks/{id}/like", post(social::like_track))
        .route("/api/tracks/{id}/share", post(social::share_track))
        .route("/api/users/{id}/follow", post(social::follow))
        .route("/api/admin/message", post(social::server_message))
        .route("/api/ws", get(ws::upgrade))
        .route("/api/ws/stats", get(ws_stats))
        .route("/api/analytics/top-tracks", get(analytics::top_tracks))
        .route("/api/analytics/users", get(analytics::users))
        .route("/api/analytics/completion", get(analytics::completion))
        .route("/api/analytics/concurrency", get(analytics::concurrency))
        .route("/api/analytics/quality", get(analytics::quality))
        .route("/api/analytics/qoe", get(analytics::qoe))
        .route("/api/analytics/qoe/sessions", get(analytics::qoe_sessions))
        .route(
            "/api/analytics/users/{id}/export",
            get(analytics::export_user),
        )
        .route(
            "/api/analytics/users/{id}",
            axum::routing::delete(analytics::delete_user),
        )
        .fallback(observe::fallback)
        .layer(axum::middleware::from_fn(observe::record_request))
        .layer(cors)
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
                // The path only: queries may carry tokens, which must never reach the logs.
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path())
            }),
        )
        .with_state(state)
}

async fn ws_stats(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
) -> axum::Json<serde_json::Value> {
    axum::Json(state.websocket.get_stats().await)
}

fn cors_layer(origins: &[String]) -> CorsLayer {
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([
            header::RANGE,
            header::CONTENT_TYPE,
            header::IF_RANGE,
            header::IF_NONE_MATCH,
            header::AUTHORIZATION,
        ])
        .expose_headers([
            header::CONTENT_RANGE,
            header::CONTENT_LENGTH,
            header::ACCEPT_RANGES,
            header::ETAG,
        ])
}

//! HTTP: the axum router, its handlers and DTOs. The only module that knows the wire.

mod analytics;
pub mod auth;
pub mod connections;
pub mod error;
mod hls;
pub mod hot;
mod observe;
pub mod openapi;
pub mod range;
mod sessions;
mod social;
mod stream;
mod tracks;
mod ws;
mod zero_copy;

use std::sync::Arc;

use axum::http::{header, HeaderValue, Method};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

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

impl AppState {
    /// Scans the library folder again (see [`Library::rescan`]) with the configured limits.
    pub async fn scan_library(
        &self,
    ) -> Result<crate::library::ScanOutcome, crate::library::scan::ScanError> {
        self.library
            .rescan(
                self.config.data_dir.join("library-index.json"),
                self.config.max_track_secs,
                self.config.effective_workers(),
            )
            .await
    }
}

/// The whole HTTP API.
pub fn router(state: Arc<AppState>) -> Router {
    let cors = cors_layer(&state.config.cors_origins);
    let (api, doc) = api_routes().split_for_parts();
    // Serialised once: the document is the same for the life of the process.
    let doc = Bytes::from(openapi::finish(&doc));
    api.route(
        "/api/openapi.json",
        get(move || {
            let doc = doc.clone();
            async move { ([(header::CONTENT_TYPE, "application/json")], doc) }
        }),
    )
    // After every route: it is set on the routes registered so far.
    .method_not_allowed_fallback(observe::method_not_allowed)
    .fallback(observe::fallback)
    .layer(compression())
    .layer(axum::middleware::from_fn(observe::refuse_oversized_bodies))
    .layer(axum::middleware::from_fn(observe::record_request))
    .layer(cors)
    .layer(
        TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| request_span(req)),
    )
    .with_state(state)
}

/// gzip for what compresses (JSON, playlists, the player's scripts, metrics) when the client
/// asks; never for audio, which is already compressed and is served by byte ranges and from
/// the cache files (`zero_copy`).
fn compression(
) -> tower_http::compression::CompressionLayer<impl tower_http::compression::Predicate> {
    use tower_http::compression::predicate::{NotForContentType, Predicate as _};
    use tower_http::compression::{CompressionLayer, DefaultPredicate};
    CompressionLayer::new()
        .gzip(true)
        .compress_when(DefaultPredicate::new().and(NotForContentType::const_new("audio/")))
}

/// The span every request is served in (by the router's trace layer, and by `hot`).
pub(crate) fn request_span<B>(req: &axum::http::Request<B>) -> tracing::Span {
    // The path only: queries may carry tokens, which must never reach the logs.
    tracing::info_span!("request", method = %req.method(), path = %req.uri().path())
}

/// The documented routes: each handler's `#[utoipa::path]` gives both its route and its entry
/// in the OpenAPI document (see `openapi`).
fn api_routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(observe::healthz))
        .routes(routes!(observe::metrics))
        .routes(routes!(tracks::list))
        .routes(routes!(tracks::one))
        .routes(routes!(tracks::rescan))
        .routes(routes!(hls::master))
        .routes(routes!(hls::media))
        .routes(routes!(hls::segment))
        // OpenAPI has no catch-all parameter: documented by hand in `openapi::ApiDoc`.
        .route(
            "/stream/{*filename}",
            get(stream::progressive).head(stream::progressive),
        )
        .routes(routes!(sessions::create))
        .routes(routes!(sessions::get, sessions::end))
        .routes(routes!(sessions::metrics))
        .routes(routes!(sessions::stats))
        .routes(routes!(social::list, social::create))
        .routes(routes!(social::get, social::rename, social::delete))
        .routes(routes!(social::add_track))
        .routes(routes!(social::remove_at))
        .routes(routes!(social::move_track))
        .routes(routes!(social::share_playlist))
        .routes(routes!(social::like_track))
        .routes(routes!(social::share_track))
        .routes(routes!(social::follow))
        .routes(routes!(social::server_message))
        .routes(routes!(ws::upgrade))
        .routes(routes!(ws::stats))
        .routes(routes!(analytics::top_tracks))
        .routes(routes!(analytics::users))
        .routes(routes!(analytics::completion))
        .routes(routes!(analytics::concurrency))
        .routes(routes!(analytics::quality))
        .routes(routes!(analytics::qoe))
        .routes(routes!(analytics::qoe_sessions))
        .routes(routes!(analytics::export_user))
        .routes(routes!(analytics::delete_user))
}

pub(crate) fn cors_layer(origins: &[String]) -> CorsLayer {
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
            // `/stream`'s choice, for a web player on another origin to show.
            header::HeaderName::from_static("x-stream-quality"),
        ])
}

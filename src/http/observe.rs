//! Health, Prometheus metrics and per-request accounting.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};

/// 200 once the library is scanned, 503 before.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses(
        (status = 200, description = "Ready", body = String, content_type = "text/plain"),
        (status = 503, description = "Still scanning the library", body = String,
            content_type = "text/plain"),
    )
)]
pub async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    if state.library.is_ready() {
        (StatusCode::OK, "ok").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "scanning").into_response()
    }
}

/// Prometheus metrics: requests and latencies by route, transcodes, cache, library.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses(
        (status = 200, description = "Prometheus text format", body = String,
            content_type = "text/plain; version=0.0.4; charset=utf-8"),
        (status = 404, description = "Metrics are disabled", body = super::openapi::ErrorBody),
    )
)]
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    match &state.metrics {
        Some(handle) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            handle.render(),
        )
            .into_response(),
        None => ApiError::new(
            StatusCode::NOT_FOUND,
            "metrics_disabled",
            "metrics are not enabled",
        )
        .into_response(),
    }
}

/// Unmatched requests: the web player's files (with `index.html` for client-side routes), or a
/// JSON 404 under the API prefixes and when no player is built.
pub async fn fallback(State(state): State<Arc<AppState>>, req: Request) -> Response {
    use tower::ServiceExt as _;
    let path = req.uri().path();
    let api = ["/api/", "/hls/", "/stream/", "/metrics", "/healthz"]
        .iter()
        .any(|p| path.starts_with(p));
    let Some(root) = state.web_root.as_ref().filter(|_| {
        !api && matches!(
            *req.method(),
            axum::http::Method::GET | axum::http::Method::HEAD
        )
    }) else {
        return ApiError::not_found("no such route").into_response();
    };
    let immutable = path.starts_with("/assets/");
    let served = if immutable {
        // A missing hashed asset is a 404, never the page (caches would keep it as the asset).
        tower_http::services::ServeDir::new(root).oneshot(req).await
    } else {
        tower_http::services::ServeDir::new(root)
            .fallback(tower_http::services::ServeFile::new(
                root.join("index.html"),
            ))
            .oneshot(req)
            .await
    };
    match served {
        Ok(resp) if !resp.status().is_success() && resp.status() != StatusCode::NOT_MODIFIED => {
            ApiError::not_found("no such file").into_response()
        }
        Ok(mut resp) => {
            // Vite puts content hashes in asset names: those never change. The page itself must
            // be revalidated so a new build is picked up.
            let cache = if immutable {
                "public, max-age=31536000, immutable"
            } else {
                "no-cache"
            };
            resp.headers_mut().insert(
                header::CACHE_CONTROL,
                axum::http::HeaderValue::from_static(cache),
            );
            resp.into_response()
        }
        Err(e) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "static_io",
            e.to_string(),
        )
        .into_response(),
    }
}

/// Counts requests and their latency by route template (never by raw path, which would let
/// clients create unbounded label values).
pub async fn record_request(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    // Methods are client-chosen tokens: only the standard ones become label values.
    let method = match req.method().as_str() {
        m @ ("GET" | "HEAD" | "POST" | "PUT" | "DELETE" | "OPTIONS" | "PATCH") => m.to_string(),
        _ => "other".to_string(),
    };
    let started = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("http_requests_total", "route" => route.clone(), "method" => method.clone(), "status" => status).increment(1);
    metrics::histogram!("http_request_duration_seconds", "route" => route, "method" => method)
        .record(started.elapsed().as_secs_f64());
    response
}

//! Health, Prometheus metrics and per-request accounting.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use parking_lot::RwLock;

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

/// A route that exists, asked with a method it does not take: the JSON error every other
/// failure has (axum adds `Allow`).
pub async fn method_not_allowed(method: axum::http::Method) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on this route"),
    )
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
            if !immutable {
                // The page asks for the network hints `/stream` chooses a profile from.
                resp.headers_mut().insert(
                    header::HeaderName::from_static("accept-ch"),
                    axum::http::HeaderValue::from_static(super::stream::ACCEPT_CH),
                );
            }
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

/// The most a request body may weigh: axum's limit for its body extractors, made explicit.
pub const MAX_BODY: u64 = 2 * 1024 * 1024;

/// A body announced larger than any route accepts is refused before it is read: otherwise a
/// client sending `Expect: 100-continue` is invited to upload it (hyper answers `100` when the
/// handler starts reading), only to get the `413` afterwards.
pub async fn refuse_oversized_bodies(req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY) {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_body",
            format!("request bodies are limited to {MAX_BODY} bytes"),
        )
        .into_response();
    }
    next.run(req).await
}

/// Counts requests and their latency by route template (never by raw path, which would let
/// clients create unbounded label values).
pub async fn record_request(req: Request, next: Next) -> Response {
    // A clone of the matched template is a reference count, not a copy.
    let route = req.extensions().get::<MatchedPath>().cloned();
    // Methods are client-chosen tokens: only the standard ones become label values.
    let method = match req.method().as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        "PATCH" => "PATCH",
        _ => "other",
    };
    let started = Instant::now();
    let response = next.run(req).await;
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let (requests, latency) = request_metrics(route, method, response.status().as_u16());
    requests.increment(1);
    latency.record(started.elapsed().as_secs_f64());
    response
}

type RouteHandles = HashMap<(&'static str, u16), (metrics::Counter, metrics::Histogram)>;

/// The request counter and latency histogram of (route, method, status). Why a cache: asking
/// the recorder builds a key and hashes and compares every label, on every request, which was
/// a visible share of serving a cached segment. Label values are the same as without it.
pub(super) fn request_metrics(
    route: &str,
    method: &'static str,
    status: u16,
) -> (metrics::Counter, metrics::Histogram) {
    static HANDLES: OnceLock<RwLock<HashMap<String, RouteHandles>>> = OnceLock::new();
    let handles = HANDLES.get_or_init(Default::default);
    if let Some(found) = handles
        .read()
        .get(route)
        .and_then(|by| by.get(&(method, status)))
    {
        return found.clone();
    }
    let made = (
        metrics::counter!("http_requests_total", "route" => route.to_owned(), "method" => method, "status" => status.to_string()),
        metrics::histogram!("http_request_duration_seconds", "route" => route.to_owned(), "method" => method),
    );
    handles
        .write()
        .entry(route.to_owned())
        .or_default()
        .insert((method, status), made.clone());
    made
}

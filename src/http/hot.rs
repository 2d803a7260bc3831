//! The hot path: `GET` of an HLS segment the cache holds in memory, the request a streaming
//! server answers far more often than any other (every listener, every few seconds).
//!
//! Why: through the router each such request paid for routing and for the CORS, tracing and
//! metrics layers, about a fifth of its CPU (docs/benchmarks.md), to produce the same answer
//! every time. Here it is answered before the router, with exactly what those layers would do:
//! the headers the CORS layer adds to a request without `Origin` (captured from that very layer
//! at start-up), the same request span, the same metrics. A test compares its answers with the
//! router's. Anything else goes to the router: another method, a path the router would decode
//! or reject, an `Origin` (CORS answers per origin), a segment not in memory, any error.

use std::sync::Arc;
use std::time::Instant;

use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::response::Response;
use tower::ServiceExt as _;

use super::zero_copy::FileBacked;
use super::{hls, observe, AppState};

/// The route template the router reports for segments (metrics label).
const SEGMENT_ROUTE: &str = "/hls/{track_id}/{quality}/{segment}";

pub struct HotSegments {
    state: Arc<AppState>,
    /// What the CORS layer adds to an answer to a request without `Origin`.
    cors: HeaderMap,
}

impl HotSegments {
    pub async fn new(state: Arc<AppState>) -> Self {
        let probe = tower::ServiceBuilder::new()
            .layer(super::cors_layer(&state.config.cors_origins))
            .service_fn(|_: Request<axum::body::Body>| async {
                Ok::<_, std::convert::Infallible>(Response::new(axum::body::Body::empty()))
            });
        let answer = probe
            .oneshot(Request::new(axum::body::Body::empty()))
            .await
            .unwrap_or_else(|never| match never {});
        Self {
            cors: answer.headers().clone(),
            state,
        }
    }

    /// The answer to `req` if it is a hot segment's `GET`; `None` sends it to the router.
    pub fn answer<B>(&self, req: &Request<B>, files: &FileBacked) -> Option<Response> {
        if req.method() != Method::GET || req.headers().contains_key(header::ORIGIN) {
            return None;
        }
        let (track_id, quality, segment) = segment_path(req.uri().path())?;
        let started = Instant::now();
        let streaming = &self.state.streaming;
        let treq = streaming.transcode_request(track_id, quality).ok()?;
        let name = streaming.parse_segment_name(quality, segment).ok()?;
        if name.version != treq.version {
            return None;
        }
        let data = self.state.cache.hot_segment(&treq, name.index)?;
        // Only now: a request that goes on to the router gets its span there.
        let span = super::request_span(req);
        let _entered = span.enter();
        let mut response = hls::segment_response(&treq.profile, data, Some(files));
        for (name, value) in &self.cors {
            response.headers_mut().append(name, value.clone());
        }
        let (requests, latency) = observe::request_metrics(SEGMENT_ROUTE, "GET", 200);
        requests.increment(1);
        latency.record(started.elapsed().as_secs_f64());
        metrics::counter!("http_hot_path_responses_total").increment(1);
        tracing::debug!(status = StatusCode::OK.as_u16(), "hot segment served");
        Some(response)
    }
}

/// `(track_id, quality, segment)` of a path the router would route to the segment handler with
/// those exact values (no percent-decoding needed, no empty part, not a media playlist).
fn segment_path(path: &str) -> Option<(&str, &str, &str)> {
    let rest = path.strip_prefix("/hls/")?;
    if rest.contains('%') {
        return None;
    }
    let mut parts = rest.split('/');
    let (track_id, quality, segment) = (parts.next()?, parts.next()?, parts.next()?);
    let plain = parts.next().is_none()
        && ![track_id, quality, segment].contains(&"")
        && segment != "playlist.m3u8";
    plain.then_some((track_id, quality, segment))
}

#[cfg(test)]
mod tests {
    use super::segment_path;

    #[test]
    fn only_plain_segment_paths_take_the_hot_path() {
        assert_eq!(
            segment_path("/hls/abc/high/v1-3.aac"),
            Some(("abc", "high", "v1-3.aac"))
        );
        for other in [
            "/hls/abc/high/playlist.m3u8",
            "/hls/abc/master.m3u8",
            "/hls/abc/high/v1-3.aac/",
            "/hls/abc/high/v1-3.aac/x",
            "/hls//high/v1-3.aac",
            "/hls/abc/high/v1%2D3.aac",
            "//hls/abc/high/v1-3.aac",
            "/stream/abc",
            "/hls/abc/high",
        ] {
            assert_eq!(segment_path(other), None, "{other}");
        }
    }
}

//! `GET/HEAD /stream/{*filename}`: progressive delivery of a whole track in one profile, with
//! byte ranges, chosen from the client's capabilities when not forced.
//!
//! Only files the scanner put in the catalogue can be named, so no path can reach outside the
//! library; hostile-looking names are refused up front all the same, with a 400 that says why.
//!
//! The first listener of a long track does not wait for its whole encode: while it runs, a
//! download from the start of an AAC profile is streamed as the segments are written (chunked,
//! no length yet; the very bytes the finished file will hold). Byte ranges, validators and MP3
//! (whose gapless Info frame comes first and is known only at the end) wait for the file.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use super::error::Path;
use axum::body::Body;
use axum::extract::{OriginalUri, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt as _;
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
use tokio_util::io::ReaderStream;

use super::openapi::ErrorBody;
use super::range::{none_match_holds, parse_range, RangeRequest};
use super::{ApiError, AppState};
use crate::library::Track;
use crate::media::cache::{TranscodeCache, TranscodeRequest};
use crate::streaming::adaptive::{
    select_progressive_profile, ClientHints, Codec, ConnectionType, DeviceType, StreamingError,
};

/// Why a library path is refused, if it is.
pub fn hostile_path(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("empty path");
    }
    if name.contains('\0') {
        return Some("NUL byte in path");
    }
    if name.contains('\\') {
        return Some("backslash in path");
    }
    // Only a leading '/' is absolute here: `1:Intro.flac` or `A:Side.mp3` are ordinary file
    // names on the server's filesystems, and a name is only ever matched against the catalogue.
    if name.starts_with('/') {
        return Some("absolute path");
    }
    if name
        .split('/')
        .any(|c| c == ".." || c == "." || c.is_empty())
    {
        return Some("path with '.', '..' or empty components");
    }
    None
}

/// Whether the request's own (still percent-encoded) path hides a separator: `%2F` or `%5C`.
/// A client names a file below the library with plain slashes; an encoded one is how
/// traversal slips past filters, so it is refused even where it would name a library file.
pub fn encoded_separator(raw_path: &str) -> bool {
    raw_path
        .as_bytes()
        .windows(3)
        .any(|w| w[0] == b'%' && matches!(&w[1..], b"2f" | b"2F" | b"5c" | b"5C"))
}

/// Reads what the request says about its client: query parameters first, then what the
/// request itself says ([`request_hints`]).
fn client_hints(
    params: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<ClientHints, ApiError> {
    let mut hints = request_hints(headers);
    if let Some(v) = params.get("bandwidth_kbps") {
        hints.bandwidth_kbps = Some(v.trim().parse::<u32>().map_err(|_| {
            ApiError::bad_request(
                "invalid_query",
                format!("bandwidth_kbps {v:?} is not a number"),
            )
        })?);
    }
    if let Some(v) = params.get("connection") {
        hints.connection = Some(ConnectionType::parse(v).ok_or_else(|| {
            ApiError::bad_request("invalid_query", format!("unknown connection {v:?}"))
        })?);
    }
    if let Some(v) = params.get("device") {
        hints.device = Some(DeviceType::parse(v).ok_or_else(|| {
            ApiError::bad_request("invalid_query", format!("unknown device {v:?}"))
        })?);
    }
    Ok(hints)
}

/// What a request's headers say about its client: Client Hints (`Downlink`, `ECT`,
/// `Save-Data`) and the `User-Agent`'s device class. Malformed hints are ignored.
pub(crate) fn request_hints(headers: &HeaderMap) -> ClientHints {
    let header_str = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    ClientHints {
        // Client Hint `Downlink` is in Mbit/s.
        bandwidth_kbps: header_str("downlink")
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v > 0.0)
            .map(|mbps| (mbps * 1000.0).min(f64::from(u32::MAX)) as u32),
        connection: header_str("ect").and_then(ConnectionType::from_ect),
        device: header_str("user-agent").map(DeviceType::from_user_agent),
        save_data: header_str("save-data").is_some_and(|v| v.trim().eq_ignore_ascii_case("on")),
        preferred_quality: None,
    }
}

fn find_track(state: &AppState, name: &str) -> Option<Arc<Track>> {
    let catalog = state.library.catalog();
    catalog.by_filename(name).or_else(|| catalog.get(name))
}

/// The query parameters `/stream` understands (read from the raw query by the handler; this
/// type documents them).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documentation only
struct ProgressiveQuery {
    /// Force a profile: `high`, `medium`, `low` or `mobile`.
    quality: Option<String>,
    /// A streaming session: its current quality (the quality monitor's choice).
    session_id: Option<String>,
    /// The client's bandwidth estimate (else the `Downlink` client hint).
    bandwidth_kbps: Option<u32>,
    /// `Wifi`, `Ethernet`, `Cellular4G`, `Cellular3G`, `Cellular2G` or `Unknown` (else `ECT`).
    connection: Option<String>,
    /// `Desktop`, `Mobile`, `Tablet`, `SmartSpeaker`, `CarAudio` or `Unknown` (else from the
    /// `User-Agent`).
    device: Option<String>,
}

/// A whole track in one profile, for players without HLS: full `Range` support (`206`,
/// suffix ranges, `If-Range`), `ETag`, `HEAD`. The quality comes from `?quality=`, the
/// session (the profile its first download took, for the session's life), or the client's
/// capabilities (query, Client Hints `Downlink`/`ECT`/`Save-Data`, `User-Agent`), answered
/// with a `302` to the URL naming the choice; `X-Stream-Quality` says which.
#[utoipa::path(
    method(get, head),
    path = "/stream/{filename}",
    tag = "streaming",
    params(
        ("filename" = String, Path, description = "A library-relative path (may contain `/`) \
            or a track id"),
        ProgressiveQuery,
        ("Range" = Option<String>, Header, description = "Byte range(s), RFC 9110"),
        ("If-Range" = Option<String>, Header, description = "Apply the range only if this \
            validator still matches"),
    ),
    responses(
        (status = 302, description = "The profile chosen from the client's capabilities: \
            the same URL with `quality=` added, whose bytes never change encoding (a download \
            continued with range requests must not switch encoding midway)",
            headers(("Location" = String, description = "The URL naming the chosen profile"),
                ("X-Stream-Quality" = String, description = "The chosen profile"))),
        (status = 200, description = "The whole stream", content(
            (Vec<u8> = "audio/aac"),
            (Vec<u8> = "audio/mpeg"),
        )),
        (status = 206, description = "The requested range", content(
            (Vec<u8> = "audio/aac"),
            (Vec<u8> = "audio/mpeg"),
        )),
        (status = 304, description = "Not modified (`If-None-Match`)"),
        (status = 400, description = "A hostile path or a malformed query", body = ErrorBody),
        (status = 404, description = "No such track or quality", body = ErrorBody),
        (status = 416, description = "Range not satisfiable (`Content-Range: bytes */LENGTH`)", body = ErrorBody),
        (status = 422, description = "The source cannot be transcoded", body = ErrorBody),
        (status = 500, description = "The transcode cache cannot be read or written", body = ErrorBody),
        (status = 503, description = "No library yet (or it cannot be read), shutting down, or the file changed since the library was scanned (a rescan is under way); `Retry-After` says when to retry", body = ErrorBody),
    )
)]
pub async fn progressive(
    State(state): State<Arc<AppState>>,
    Path(filename): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let why = if encoded_separator(uri.path()) {
        Some("encoded '/' or '\\' in path")
    } else {
        hostile_path(&filename)
    };
    if let Some(why) = why {
        // Debug-formatted: the decoded name may hold line breaks or terminal escapes.
        tracing::warn!(path = ?filename, why, "refused hostile path");
        return Err(ApiError::bad_request("invalid_path", why));
    }
    let track = match find_track(&state, &filename) {
        Some(t) => t,
        // Ids and paths are stable across restarts: while the first scan runs, a track not
        // seen yet may exist, and a 404 (which a CDN may cache) would say it does not.
        None if !state.library.is_ready() => return Err(StreamingError::NotReady.into()),
        None => {
            if let Some(reason) = state.library.unavailable() {
                return Err(StreamingError::LibraryUnavailable(reason).into());
            }
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_track",
                format!("no track {filename:?}"),
            ));
        }
    };

    // One URL, one encoding: a player continues a download with range requests (without
    // `If-Range`, most of them), so the bytes of one URL must never switch encoding between two
    // requests. An explicit `?quality=` is that by itself. A session's download keeps the
    // profile of its first `GET` (the monitor's later choices go to HLS and to the next
    // session). A choice from capabilities can change with the next request's hints, so it is
    // answered with a redirect to the URL that names it.
    // An unknown session (expired, ended, held by another node, or another track's) falls back
    // to the choice from capabilities: a player already streaming must not get a 404 on its
    // next range request.
    let session_quality = match params.get("session_id") {
        Some(id) => {
            state
                .streaming
                .progressive_quality(id, &track.id, method == Method::GET)
                .await
        }
        None => None,
    };
    let profile = match params.get("quality").or(session_quality.as_ref()) {
        Some(q) => state.streaming.profile(q).cloned().ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_quality",
                format!("unknown quality {q:?}"),
            )
        })?,
        None => {
            let caps = client_hints(&params, &headers)?.into_capabilities();
            let chosen = select_progressive_profile(&caps, state.streaming.profiles());
            return Ok(pinned_redirect(&uri, &chosen.quality_id));
        }
    };
    let req = state
        .streaming
        .transcode_request(&track.id, &profile.quality_id)?;
    // A `HEAD` gets what the `GET` would (no length yet) instead of waiting for the whole
    // encode: a player that probes first would otherwise wait minutes on a long track.
    if (method == Method::GET || method == Method::HEAD)
        && profile.codec_kind() == Codec::Aac
        && from_the_start(&headers)
        && !state.cache.is_complete(&req)
    {
        return growing(&state.cache, req, &profile.quality_id, profile.codec_kind()).await;
    }
    let (encoded, file) = state.cache.open_complete(&req).await?;

    let prefix = Bytes::from(encoded.info_tag.clone().unwrap_or_default());
    let total = prefix.len() as u64 + encoded.stream_len();
    let etag = format!("\"{}-{}-{}\"", req.version, profile.quality_id, total);
    let modified = file.metadata().await.ok().and_then(|m| m.modified().ok());

    let mut response_headers = HeaderMap::new();
    let mut set = |k: header::HeaderName, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            response_headers.insert(k, v);
        }
    };
    set(
        header::CONTENT_TYPE,
        profile.codec_kind().mime_type().to_string(),
    );
    set(header::ACCEPT_RANGES, "bytes".into());
    set(header::ETAG, etag.clone());
    // The URL names a track and a profile, not a version of the file: after the file changes
    // (a rescan gives it a new version) the same URL serves another encoding. Caches may keep
    // it but must revalidate (the `ETag` carries the version), so no cache answers a range of
    // the old encoding after the change.
    set(header::CACHE_CONTROL, "public, no-cache".into());
    set(
        header::HeaderName::from_static("accept-ch"),
        ACCEPT_CH.into(),
    );
    set(
        header::HeaderName::from_static("x-stream-quality"),
        profile.quality_id.clone(),
    );
    if let Some(m) = modified {
        set(header::LAST_MODIFIED, httpdate::fmt_http_date(m));
    }

    if not_modified(&headers, &etag, modified) {
        return Ok((StatusCode::NOT_MODIFIED, response_headers).into_response());
    }

    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .filter(|_| if_range_holds(&headers, &etag, modified))
        .map_or(RangeRequest::Full, |r| parse_range(r, total));
    let (status, start, len) = match range {
        RangeRequest::Full => (StatusCode::OK, 0, total),
        RangeRequest::Partial(r) => {
            set(
                header::CONTENT_RANGE,
                format!("bytes {}-{}/{}", r.start, r.end, total),
            );
            (StatusCode::PARTIAL_CONTENT, r.start, r.len())
        }
        RangeRequest::Unsatisfiable => {
            set(header::CONTENT_RANGE, format!("bytes */{total}"));
            // The JSON error every failure has, with what a range must fit in.
            let mut response = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                format!("the range is outside the {total} bytes of this stream"),
            )
            .into_response();
            if let Some(v) = response_headers.get(header::CONTENT_RANGE) {
                response
                    .headers_mut()
                    .insert(header::CONTENT_RANGE, v.clone());
            }
            for name in [header::ACCEPT_RANGES, header::ETAG] {
                if let Some(v) = response_headers.get(&name) {
                    response.headers_mut().insert(name, v.clone());
                }
            }
            return Ok(response);
        }
    };
    set(header::CONTENT_LENGTH, len.to_string());
    if method == Method::HEAD {
        return Ok((status, response_headers).into_response());
    }
    let body = body_stream(prefix, file, start, len).await?;
    Ok((status, response_headers, body).into_response())
}

/// RFC 9110 §13.1: `If-None-Match` decides when present; otherwise `If-Modified-Since`, compared
/// at the one-second precision of `Last-Modified`.
fn not_modified(headers: &HeaderMap, etag: &str, modified: Option<SystemTime>) -> bool {
    if let Some(v) = headers.get(header::IF_NONE_MATCH) {
        return v.to_str().is_ok_and(|v| none_match_holds(v, etag));
    }
    let since = headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok());
    match (modified, since) {
        (Some(m), Some(since)) => httpdate::HttpDate::from(m) <= httpdate::HttpDate::from(since),
        _ => false,
    }
}

/// Whether a request asks for the whole stream from its first byte, with no validator: `Range:
/// bytes=0-` is how browsers start every media download.
fn from_the_start(headers: &HeaderMap) -> bool {
    let plain = |name| !headers.contains_key(name);
    plain(header::IF_NONE_MATCH)
        && plain(header::IF_RANGE)
        && headers
            .get(header::RANGE)
            .is_none_or(|r| r.to_str().is_ok_and(|r| r.trim() == "bytes=0-"))
}

/// A `200` streaming an encode still under way, segment by segment as each is written. The
/// first segment is awaited before answering, so a source that cannot be encoded (or changed)
/// gets its error status; a failure later cuts the transfer short, which the client sees as an
/// incomplete body. Not cacheable (no length, no validator yet): the next request, once the
/// encode is finished, gets the file with its length, `ETag` and ranges.
async fn growing(
    cache: &TranscodeCache,
    req: TranscodeRequest,
    quality: &str,
    codec: Codec,
) -> Result<Response, ApiError> {
    let first = cache.segment_frames(&req, 0).await?;
    let count = req.layout.segment_count();
    let cache = cache.clone();
    let req = Arc::new(req);
    let rest = futures_util::stream::unfold(1, move |i| {
        let (cache, req) = (cache.clone(), req.clone());
        async move {
            if i >= count {
                return None;
            }
            match cache.segment_frames(&req, i).await {
                Ok(frames) => Some((Ok(frames), i + 1)),
                Err(e) => {
                    tracing::warn!(track_id = %req.track_id, segment = i, error = %e, "progressive stream cut short");
                    Some((Err(std::io::Error::other(e.to_string())), count))
                }
            }
        }
    });
    let body =
        futures_util::stream::once(async move { Ok::<_, std::io::Error>(first) }).chain(rest);
    let headers = [
        (header::CONTENT_TYPE, codec.mime_type().to_string()),
        (header::ACCEPT_RANGES, "bytes".to_string()),
        (header::CACHE_CONTROL, "no-store".to_string()),
        (
            header::HeaderName::from_static("accept-ch"),
            ACCEPT_CH.to_string(),
        ),
        (
            header::HeaderName::from_static("x-stream-quality"),
            quality.to_string(),
        ),
    ];
    Ok((StatusCode::OK, headers, Body::from_stream(body)).into_response())
}

/// What the client hints drive; a response chosen from them varies with them.
const HINTS_VARY: &str = "Downlink, ECT, Save-Data, User-Agent";

/// The Client Hints `/stream` reads, asked for with `Accept-CH` (on the player's page and on
/// `/stream` itself): browsers send the network ones only to an origin that asked for them.
pub const ACCEPT_CH: &str = "Downlink, ECT, Save-Data";

/// `302` to this request's URL with `quality=` added: the choice made from this request's
/// capabilities, under a URL whose bytes never change encoding.
fn pinned_redirect(uri: &axum::http::Uri, quality: &str) -> Response {
    let location = match uri.query() {
        Some(q) if !q.is_empty() => format!("{}?{q}&quality={quality}", uri.path()),
        _ => format!("{}?quality={quality}", uri.path()),
    };
    let mut headers = HeaderMap::new();
    for (k, v) in [
        (header::LOCATION, location.as_str()),
        (header::CACHE_CONTROL, "no-store"),
        (header::VARY, HINTS_VARY),
        (header::HeaderName::from_static("accept-ch"), ACCEPT_CH),
        (header::HeaderName::from_static("x-stream-quality"), quality),
    ] {
        if let Ok(v) = HeaderValue::from_str(v) {
            headers.insert(k, v);
        }
    }
    (StatusCode::FOUND, headers).into_response()
}

/// `If-Range` (RFC 9110 §13.1.5): the range applies only if the validator still matches.
fn if_range_holds(
    headers: &HeaderMap,
    etag: &str,
    modified: Option<std::time::SystemTime>,
) -> bool {
    let Some(v) = headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let v = v.trim();
    if v.starts_with('"') || v.starts_with("W/") {
        return v == etag; // strong comparison: a weak tag never matches
    }
    match (httpdate::parse_http_date(v), modified) {
        (Ok(date), Some(m)) => {
            let secs = |t: std::time::SystemTime| {
                t.duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0)
            };
            secs(date) == secs(m)
        }
        _ => false,
    }
}

/// The bytes `[start, start + len)` of `prefix` followed by the file, streamed from disk.
async fn body_stream(
    prefix: Bytes,
    mut file: tokio::fs::File,
    start: u64,
    len: u64,
) -> Result<Body, ApiError> {
    let plen = prefix.len() as u64;
    let head = if start < plen {
        let end = (start + len).min(plen);
        prefix.slice(start as usize..end as usize)
    } else {
        Bytes::new()
    };
    let file_start = start.saturating_sub(plen);
    let file_len = len - head.len() as u64;
    file.seek(std::io::SeekFrom::Start(file_start))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "cache_io", e.to_string()))?;
    let rest = ReaderStream::with_capacity(file.take(file_len), 64 * 1024);
    let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(head) })
        .filter(|r| std::future::ready(!matches!(r, Ok(b) if b.is_empty())))
        .chain(rest);
    Ok(Body::from_stream(stream))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_paths() {
        for bad in [
            "",
            "../etc/passwd",
            "a/../../b",
            "/etc/passwd",
            "a\\..\\b",
            "a//b",
            "./a",
            "a/.",
            "a\0b",
        ] {
            assert!(hostile_path(bad).is_some(), "{bad:?}");
        }
        for good in [
            "a.mp3",
            "Artist/Album/01 - Song.flac",
            "weird name (1).wav",
            "...dots.mp3",
            "a..b.mp3",
            "1:Intro.flac",
            "A:Side/02.mp3",
        ] {
            assert!(hostile_path(good).is_none(), "{good:?}");
        }
        for raw in [
            "/stream/a%2fb",
            "/stream/a%2Fb",
            "/stream/a%5cb",
            "/stream/%5C",
        ] {
            assert!(encoded_separator(raw), "{raw}");
        }
        // `%252f` is an encoded '%' followed by "2f": a literal name, not a separator.
        for raw in [
            "/stream/a/b",
            "/stream/a%252fb",
            "/stream/100%25.mp3",
            "/stream/%2",
        ] {
            assert!(!encoded_separator(raw), "{raw}");
        }
    }
}

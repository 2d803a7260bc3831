//! The one place where domain errors become HTTP responses: JSON `{"error", "code"}` with the
//! right status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::media::cache::CacheError;
use crate::streaming::adaptive::StreamingError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds after which the same request should work (`Retry-After`): only for conditions
    /// known to pass by themselves (a scan under way), never for an outage of unknown length.
    pub retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The same error, with a `Retry-After` hint.
    pub fn retry_after(mut self, secs: u32) -> Self {
        self.retry_after = Some(secs);
        self
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", what)
    }

    pub fn bad_request(code: &'static str, what: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, what)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(code = self.code, error = %self.message, "request failed");
        }
        let retry = self.retry_after;
        let mut response = (
            self.status,
            Json(super::openapi::ErrorBody {
                error: self.message,
                code: self.code.to_string(),
            }),
        )
            .into_response();
        if let Some(secs) = retry {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

impl From<StreamingError> for ApiError {
    fn from(e: StreamingError) -> Self {
        let code = match &e {
            StreamingError::UnknownTrack(_) => "unknown_track",
            StreamingError::UnknownQuality(_) => "unknown_quality",
            StreamingError::UnknownSession(_) => "unknown_session",
            StreamingError::UnknownSegment(_) => "unknown_segment",
            StreamingError::NoLibrary => {
                return Self::new(StatusCode::SERVICE_UNAVAILABLE, "no_library", e.to_string())
                    .retry_after(2)
            }
            StreamingError::NotReady => {
                return Self::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", e.to_string())
                    .retry_after(5)
            }
            StreamingError::LibraryUnavailable(_) => {
                return Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "library_unavailable",
                    e.to_string(),
                )
                .retry_after(30)
            }
            StreamingError::TooManySessions(_) => {
                return Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too_many_sessions",
                    e.to_string(),
                )
                .retry_after(60)
            }
        };
        Self::new(StatusCode::NOT_FOUND, code, e.to_string())
    }
}

impl From<CacheError> for ApiError {
    fn from(e: CacheError) -> Self {
        match &e {
            CacheError::NoSuchSegment(_) => {
                Self::new(StatusCode::NOT_FOUND, "unknown_segment", e.to_string())
            }
            // The source could not be transcoded (corrupt or unsupported content): the request was
            // fine, the file is not. 422 says so without blaming the server.
            CacheError::Transcode(_) => {
                tracing::warn!(error = %e, "transcode failed");
                Self::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "transcode_failed",
                    e.to_string(),
                )
            }
            CacheError::ShuttingDown => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                e.to_string(),
            ),
            CacheError::Io(_) => {
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "cache_io", e.to_string())
            }
            // Not the request's fault nor the file's: the catalogue is behind the disk, and the
            // rescan this triggered will give the track its new version shortly.
            CacheError::SourceChanged(_) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "source_changed",
                format!("{e}; the library is being scanned again, retry shortly"),
            )
            .retry_after(2),
        }
    }
}

/// `axum::extract::Path` whose rejection is our JSON error: a malformed path parameter (a
/// position that is not a number, bytes that are not UTF-8) answers like every other error.
#[derive(Debug, axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

impl From<axum::extract::rejection::PathRejection> for ApiError {
    fn from(e: axum::extract::rejection::PathRejection) -> Self {
        Self::new(e.status(), "invalid_path", e.body_text())
    }
}

/// JSON body rejections (malformed or wrongly typed payloads) as our error shape.
impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(e: axum::extract::rejection::JsonRejection) -> Self {
        Self::new(e.status(), "invalid_body", e.body_text())
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(e: axum::extract::rejection::QueryRejection) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_query", e.body_text())
    }
}

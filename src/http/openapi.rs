//! The OpenAPI 3.1 document of the REST API, served at `/api/openapi.json`.
//!
//! It is assembled from the handlers' own `#[utoipa::path]` annotations by the router that
//! serves them (`utoipa_axum`'s `routes!`): a documented route is a served route, at the same
//! path, so the document cannot list a route the server does not have. Request and response
//! schemas come from the Rust types that (de)serialise the bodies. The one route axum and
//! OpenAPI spell differently, `/stream/{*filename}`, is documented here by hand.

use serde::Serialize;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, OpenApi, ToSchema};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "stream-server",
        description = "Self-hosted audio streaming: library, HLS and progressive streaming with \
            adaptive quality, streaming sessions, playlists and social actions, analytics. \
            Live events and commands use the WebSocket at `/api/ws` (see the design's protocol).",
    ),
    paths(super::stream::progressive),
    components(schemas(ErrorBody)),
    tags(
        (name = "library", description = "The catalogue of tracks."),
        (name = "streaming", description = "HLS, progressive streaming and streaming sessions."),
        (name = "playlists", description = "Persistent playlists; every change is pushed as `PlaylistUpdated`."),
        (name = "social", description = "Likes, shares, follows and server messages."),
        (name = "analytics", description = "Listening reports and per-user data."),
        (name = "operations", description = "Health, metrics and the WebSocket endpoint."),
    ),
    modifiers(&Security),
)]
pub struct ApiDoc;

/// How a caller says who they are: a bearer token (or `?token=`), minted by
/// `stream-server token`; a bare `user_id` is believed only from the server's own machine, or
/// from anyone when `auth.mode = "open"`.
struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("HS256 token from `stream-server token --user ID`"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "token_query",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "token",
                "The same token as a query parameter (for clients that cannot set headers)",
            ))),
        );
    }
}

/// The served document: what the annotations say, plus what holds for every route alike (a
/// malformed path parameter is a 400 with the usual error body), added here once rather than
/// on each handler, and operation ids made unique.
pub fn finish(doc: &utoipa::openapi::OpenApi) -> String {
    let mut doc = serde_json::to_value(doc).expect("the OpenAPI document serialises");
    unique_operation_ids(&mut doc);
    let malformed = serde_json::json!({
        "description": "Malformed path parameter",
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ErrorBody" } } }
    });
    if let Some(paths) = doc["paths"].as_object_mut() {
        let operations = paths
            .values_mut()
            .filter_map(|p| p.as_object_mut())
            .flat_map(|p| p.values_mut());
        for op in operations {
            let has_path_params = op["parameters"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["in"] == "path"));
            if let Some(responses) = op["responses"].as_object_mut() {
                if has_path_params && !responses.contains_key("400") {
                    responses.insert("400".into(), malformed.clone());
                }
            }
        }
    }
    serde_json::to_string_pretty(&doc).expect("JSON serialises")
}

/// utoipa names an operation after its handler, and handlers of different modules share
/// names (`create`, `list`, `stats`; `GET` and `HEAD` of one handler share everything), while
/// OpenAPI requires ids unique in the document (client generators fail on duplicates). A
/// shared id gets its tag in front (`playlists_create`), and where that is still shared, a
/// method other than `GET` after it (`streaming_progressive_head`). Unique ids stay as they are.
fn unique_operation_ids(doc: &mut serde_json::Value) {
    use std::collections::HashMap;
    fn count(doc: &serde_json::Value) -> HashMap<String, usize> {
        let mut n = HashMap::new();
        for item in doc["paths"]
            .as_object()
            .into_iter()
            .flat_map(|p| p.values())
        {
            for op in item.as_object().into_iter().flat_map(|o| o.values()) {
                if let Some(id) = op["operationId"].as_str() {
                    *n.entry(id.to_string()).or_insert(0) += 1;
                }
            }
        }
        n
    }
    let rename = |doc: &mut serde_json::Value, with_method: bool| {
        let seen = count(doc);
        let Some(paths) = doc["paths"].as_object_mut() else {
            return;
        };
        for item in paths.values_mut().filter_map(|p| p.as_object_mut()) {
            for (method, op) in item.iter_mut() {
                let Some(id) = op["operationId"].as_str().map(str::to_string) else {
                    continue;
                };
                if seen.get(&id).copied().unwrap_or(0) < 2 {
                    continue;
                }
                let renamed = if with_method {
                    if method == "get" {
                        continue;
                    }
                    format!("{id}_{method}")
                } else {
                    let tag = op["tags"][0].as_str().unwrap_or("api");
                    format!("{tag}_{id}")
                };
                op["operationId"] = renamed.into();
            }
        }
    };
    rename(doc, false);
    rename(doc, true);
}

/// Every failure's body.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for people.
    pub error: String,
    /// What went wrong, for programs (`unknown_track`, `invalid_body`, `not_owner`, …).
    pub code: String,
}

/// The failures of every route that acts for a listener and keeps its data in the database.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // documentation only: the handlers answer `ApiError`
pub enum ListenerErrors {
    #[response(status = 400, description = "Malformed body, path, query or `user_id`")]
    Malformed(ErrorBody),
    #[response(status = 401, description = "No identity, or an invalid token")]
    Unidentified(ErrorBody),
    #[response(status = 503, description = "The database is unavailable")]
    Unavailable(ErrorBody),
}

/// The failures of every route that reads a JSON body (axum's `Json` rejections).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // documentation only: the handlers answer `ApiError`
pub enum JsonBodyErrors {
    #[response(status = 413, description = "Body too large")]
    TooLarge(ErrorBody),
    #[response(status = 415, description = "Not JSON")]
    NotJson(ErrorBody),
    #[response(status = 422, description = "Wrongly typed body")]
    WronglyTyped(ErrorBody),
}

/// Who is asking, where the route acts for a listener.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documentation only: handlers read these through `http::auth`
pub struct Identity {
    /// The listener (at most 128 bytes, not blank, no control characters). Believed from a
    /// verified token, from the server's own machine, or from anyone in `auth.mode = "open"`;
    /// must match the token's subject when both are given.
    #[param(
        max_length = 128,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    user_id: Option<String>,
    /// A bearer token, when the `Authorization` header cannot be set.
    token: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_openapi_3_1_with_its_security_schemes() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        assert!(doc["paths"]["/stream/{filename}"]["get"].is_object());
    }
}

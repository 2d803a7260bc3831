//! `/api/openapi.json` against the server's real answers: every JSON answer a client gets,
//! success or failure, must be documented for its route and status and valid against the
//! schema the document gives for it. A handler that changes its output without its annotation
//! (or an annotation that lies) fails here.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};

struct Doc(Value);

impl Doc {
    async fn fetch(app: &TestApp) -> Self {
        let r = app.get("/api/openapi.json").await;
        assert_eq!(r.status(), 200);
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"));
        Self(r.json().await.unwrap())
    }

    fn operation(&self, method: &Method, template: &str) -> &Value {
        let op = &self.0["paths"][template][method.as_str().to_lowercase()];
        assert!(op.is_object(), "{method} {template} is not documented");
        op
    }

    /// Why `value` does not match `schema` (a schema of the document): nothing if it does.
    fn errors(&self, schema: &Value, value: &Value) -> Vec<String> {
        // The whole document is the root, so `#/components/schemas/…` resolves.
        let mut root = self.0.clone();
        root["allOf"] = json!([schema]);
        let validator = jsonschema::validator_for(&root)
            .unwrap_or_else(|e| panic!("schema {schema} does not compile: {e}"));
        validator
            .iter_errors(value)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect()
    }

    /// Fails unless `status` is documented for the operation and `body` (if any) is valid
    /// against its documented JSON schema.
    fn check(&self, method: &Method, template: &str, status: u16, body: Option<&Value>) {
        let op = self.operation(method, template);
        let response = &op["responses"][status.to_string()];
        assert!(
            response.is_object(),
            "{method} {template} answered {status}, which is not documented: {}",
            op["responses"]
        );
        let schema = &response["content"]["application/json"]["schema"];
        match body {
            None => assert!(
                !schema.is_object(),
                "{method} {template} {status}: documented with a JSON body, answered none"
            ),
            Some(body) => {
                assert!(
                    schema.is_object(),
                    "{method} {template} {status}: answered JSON, documented without: {body}"
                );
                let errors = self.errors(schema, body);
                assert!(
                    errors.is_empty(),
                    "{method} {template} {status}: the answer does not match the document:\n{}\nbody: {body}",
                    errors.join("\n")
                );
            }
        }
    }
}

/// A client that checks every answer against the document.
struct Api<'a> {
    app: &'a TestApp,
    doc: &'a Doc,
}

impl Api<'_> {
    /// Sends a request the way a client would, checks the answer against the document, and
    /// that its status is `want`; returns its JSON body, if any.
    async fn expect(
        &self,
        method: Method,
        template: &str,
        path: &str,
        body: Option<Value>,
        want: u16,
    ) -> Option<Value> {
        let (app, doc) = (self.app, self.doc);
        let mut req = app.client.request(method.clone(), app.url(path));
        if let Some(b) = &body {
            req = req.json(b);
        }
        let r = req.send().await.expect("request");
        let status = r.status().as_u16();
        let is_json = r
            .headers()
            .get("content-type")
            .is_some_and(|v| v.to_str().unwrap_or("").starts_with("application/json"));
        let bytes = r.bytes().await.unwrap();
        let json = if is_json {
            Some(serde_json::from_slice::<Value>(&bytes).expect("a JSON answer parses"))
        } else {
            assert!(
                bytes.is_empty() || status < 300 || status == 304 || status == 416,
                "{method} {path} {status}: a failure without a JSON body"
            );
            None
        };
        doc.check(&method, template, status, json.as_ref());
        // A body the server accepted must be one the document allows.
        if let (Some(sent), true) = (&body, status < 300) {
            let op = doc.operation(&method, template);
            let schema = &op["requestBody"]["content"]["application/json"]["schema"];
            assert!(
                schema.is_object(),
                "{method} {template}: request body undocumented"
            );
            let errors = doc.errors(schema, sent);
            assert!(
                errors.is_empty(),
                "{method} {template}: accepted a body the document refuses:\n{}",
                errors.join("\n")
            );
        }
        assert_eq!(status, want, "{method} {path}: {json:?}");
        json
    }
}

#[tokio::test]
async fn the_document_describes_every_answer_of_the_rest_api() {
    let app = spawn_app(None).await;
    let doc = Doc::fetch(&app).await;
    let api = Api {
        app: &app,
        doc: &doc,
    };
    let me = "?user_id=alice";
    let (get, post, patch, delete) = (Method::GET, Method::POST, Method::PATCH, Method::DELETE);

    // Library.
    let tracks = api
        .expect(get.clone(), "/api/tracks", "/api/tracks", None, 200)
        .await;
    let track = tracks.unwrap()[0]["id"].as_str().unwrap().to_string();
    let t = "/api/tracks/{id}";
    api.expect(get.clone(), t, &format!("/api/tracks/{track}"), None, 200)
        .await;
    api.expect(get.clone(), t, "/api/tracks/nope", None, 404)
        .await;
    // Not UTF-8: a path rejection, answered as JSON like every error.
    api.expect(get.clone(), t, "/api/tracks/%FF%FE", None, 400)
        .await;
    let bad_query = "/api/tracks?limit=many";
    api.expect(get.clone(), "/api/tracks", bad_query, None, 400)
        .await;

    // Streaming sessions.
    let sessions = "/api/streaming/session";
    let caps = json!({
        "estimated_bandwidth_kbps": 150, "buffer_duration_ms": 5000,
        "connection_type": "Cellular3G", "device_type": "Mobile",
        "preferred_quality": null, "adaptive_enabled": true
    });
    let body = json!({ "track_id": track, "client_capabilities": caps });
    let created = api
        .expect(
            post.clone(),
            sessions,
            &format!("{sessions}{me}"),
            Some(body),
            201,
        )
        .await;
    let session = created.unwrap()["session_id"].as_str().unwrap().to_string();
    for (body, want) in [
        (json!({ "track_id": "nope" }), 404),
        (json!({ "track_id": 5 }), 422),
        (json!({ "track_id": track, "surprise": 1 }), 422),
    ] {
        api.expect(post.clone(), sessions, sessions, Some(body), want)
            .await;
    }
    let one = "/api/streaming/session/{id}";
    let here = format!("{sessions}/{session}");
    api.expect(get.clone(), one, &here, None, 200).await;
    let metrics = "/api/streaming/session/{id}/metrics";
    let report = json!({ "buffer_health_percentage": 80.0, "download_speed_kbps": 900,
        "position_ms": 1000, "current_quality": "mobile" });
    api.expect(
        post.clone(),
        metrics,
        &format!("{here}/metrics"),
        Some(report),
        200,
    )
    .await;
    let nope = format!("{sessions}/nope/metrics");
    api.expect(post.clone(), metrics, &nope, Some(json!({})), 404)
        .await;
    let stats = "/api/streaming/stats";
    api.expect(get.clone(), stats, stats, None, 200).await;
    let ended = format!("{here}?position_ms=2000");
    api.expect(delete.clone(), one, &ended, None, 204).await;
    api.expect(delete.clone(), one, &here, None, 404).await;
    api.expect(get.clone(), one, &here, None, 404).await;

    // Playlists.
    let lists = "/api/playlists";
    api.expect(get.clone(), lists, lists, None, 401).await;
    let name = Some(json!({ "name": "Road" }));
    let list = api
        .expect(post.clone(), lists, &format!("{lists}{me}"), name, 201)
        .await;
    let id = list.unwrap()["id"].as_str().unwrap().to_string();
    let pl = "/api/playlists/{id}";
    let here = format!("{lists}/{id}");
    api.expect(get.clone(), lists, &format!("{lists}{me}"), None, 200)
        .await;
    api.expect(get.clone(), pl, &format!("{here}{me}"), None, 200)
        .await;
    api.expect(get.clone(), pl, &format!("{here}?user_id=bob"), None, 404)
        .await;
    let name = Some(json!({ "name": "Trip" }));
    api.expect(patch.clone(), pl, &format!("{here}{me}"), name, 200)
        .await;
    let add = "/api/playlists/{id}/tracks";
    let adding = format!("{here}/tracks{me}");
    for _ in 0..2 {
        let body = Some(json!({ "track_id": track }));
        api.expect(post.clone(), add, &adding, body, 200).await;
    }
    let body = Some(json!({ "track_id": "nope" }));
    api.expect(post.clone(), add, &adding, body, 404).await;
    let mv = "/api/playlists/{id}/move";
    let body = || Some(json!({ "from": 1, "to": 0 }));
    api.expect(post.clone(), mv, &format!("{here}/move{me}"), body(), 200)
        .await;
    // Not visible to bob.
    let as_bob = format!("{here}/move?user_id=bob");
    api.expect(post.clone(), mv, &as_bob, body(), 404).await;
    let at = "/api/playlists/{id}/tracks/{position}";
    // A position that is not a number: a JSON error like any other.
    let first = format!("{here}/tracks/first{me}");
    api.expect(delete.clone(), at, &first, None, 400).await;
    api.expect(
        delete.clone(),
        at,
        &format!("{here}/tracks/0{me}"),
        None,
        200,
    )
    .await;
    let share = "/api/playlists/{id}/share";
    let body = Some(json!({ "to_users": ["bob"] }));
    api.expect(post.clone(), share, &format!("{here}/share{me}"), body, 200)
        .await;
    // Shared, but not bob's.
    let body = Some(json!({ "name": "Mine" }));
    api.expect(patch.clone(), pl, &format!("{here}?user_id=bob"), body, 403)
        .await;
    api.expect(delete.clone(), pl, &format!("{here}{me}"), None, 204)
        .await;

    // Social.
    let like = "/api/tracks/{id}/like";
    let liking = format!("/api/tracks/{track}/like{me}");
    api.expect(post.clone(), like, &liking, None, 200).await;
    api.expect(
        post.clone(),
        like,
        &format!("/api/tracks/nope/like{me}"),
        None,
        404,
    )
    .await;
    let tshare = "/api/tracks/{id}/share";
    let sharing = format!("/api/tracks/{track}/share{me}");
    let body = Some(json!({ "to_users": ["bob"], "message": "listen" }));
    api.expect(post.clone(), tshare, &sharing, body, 204).await;
    let follow = "/api/users/{id}/follow";
    let following = format!("/api/users/bob/follow{me}");
    api.expect(post.clone(), follow, &following, None, 200)
        .await;
    let msg = "/api/admin/message";
    let body = Some(json!({ "message": "maintenance at 2" }));
    api.expect(post.clone(), msg, msg, body, 202).await;
    api.expect(post.clone(), msg, msg, Some(json!({ "message": " " })), 400)
        .await;
    let rescan = "/api/admin/rescan";
    api.expect(post.clone(), rescan, rescan, None, 200).await;

    // Analytics (from this machine: the operator).
    for report in [
        "/api/analytics/top-tracks",
        "/api/analytics/users",
        "/api/analytics/completion",
        "/api/analytics/concurrency",
        "/api/analytics/quality",
        "/api/analytics/qoe",
        "/api/analytics/qoe/sessions",
    ] {
        api.expect(get.clone(), report, report, None, 200).await;
    }
    let qoe = "/api/analytics/qoe";
    api.expect(
        get.clone(),
        qoe,
        &format!("{qoe}?group_by=platform"),
        None,
        200,
    )
    .await;
    api.expect(get.clone(), qoe, &format!("{qoe}?group_by=moon"), None, 400)
        .await;
    let export = "/api/analytics/users/{id}/export";
    api.expect(
        get.clone(),
        export,
        "/api/analytics/users/alice/export",
        None,
        200,
    )
    .await;
    let erase = "/api/analytics/users/{id}";
    api.expect(
        delete.clone(),
        erase,
        "/api/analytics/users/alice",
        None,
        200,
    )
    .await;

    // Operations and HLS (not JSON: documented, with their content types).
    // A plain GET is not a WebSocket handshake.
    api.expect(get.clone(), "/api/ws", "/api/ws", None, 400)
        .await;
    let ws_stats = "/api/ws/stats";
    api.expect(get.clone(), ws_stats, ws_stats, None, 200).await;
    api.expect(get.clone(), "/healthz", "/healthz", None, 200)
        .await;
    let master = "/hls/{track_id}/master.m3u8";
    let hls = format!("/hls/{track}/master.m3u8");
    api.expect(get.clone(), master, &hls, None, 200).await;
    api.expect(get.clone(), master, "/hls/nope/master.m3u8", None, 404)
        .await;
    let media = "/hls/{track_id}/{quality}/playlist.m3u8";
    let ultra = format!("/hls/{track}/ultra/playlist.m3u8");
    api.expect(get.clone(), media, &ultra, None, 404).await;
    let stream = "/stream/{filename}";
    api.expect(get.clone(), stream, "/stream/..%2fetc%2fpasswd", None, 400)
        .await;
    let ultra = format!("/stream/{track}?quality=ultra");
    api.expect(get.clone(), stream, &ultra, None, 404).await;
}

#[tokio::test]
async fn every_documented_operation_is_complete() {
    let app = spawn_app(None).await;
    let doc = Doc::fetch(&app).await;
    assert!(doc.0["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc.0["paths"].as_object().unwrap();
    // Every route of the contract is there (a sample across the modules).
    for p in [
        "/api/tracks",
        "/api/streaming/session",
        "/api/playlists/{id}/tracks/{position}",
        "/api/analytics/qoe/sessions",
        "/hls/{track_id}/{quality}/{segment}",
        "/stream/{filename}",
        "/api/ws",
    ] {
        assert!(paths.contains_key(p), "{p} missing");
    }
    // Operation ids are unique (OpenAPI requires it; client generators fail otherwise).
    let mut ids = std::collections::HashSet::new();
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"].as_str();
            assert!(
                id.is_some_and(|id| ids.insert(id.to_string())),
                "{method} {path}: operationId {id:?} missing or not unique"
            );
        }
    }
    for (path, item) in paths {
        let names: Vec<&str> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        for (method, op) in item.as_object().unwrap() {
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            for name in &names {
                assert!(
                    params
                        .iter()
                        .any(|p| p["in"] == "path" && p["name"] == *name && p["required"] == true),
                    "{method} {path}: path parameter {name} undocumented"
                );
            }
            for p in params.iter().filter(|p| p["in"] == "path") {
                assert!(
                    names.contains(&p["name"].as_str().unwrap()),
                    "{method} {path}: documents a path parameter {} it does not have",
                    p["name"]
                );
            }
            let responses = op["responses"].as_object().unwrap();
            assert!(
                responses
                    .keys()
                    .any(|s| s.starts_with('1') || s.starts_with('2')),
                "{method} {path}: no success response"
            );
            assert!(
                op["tags"].as_array().is_some_and(|t| !t.is_empty()),
                "{method} {path}: untagged"
            );
            assert!(
                op["summary"].is_string() || op["description"].is_string(),
                "{method} {path}: undescribed"
            );
        }
    }
    // The checker itself refuses a wrong answer and an undocumented status.
    let refused = |status: u16, body: Value| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            doc.check(&Method::GET, "/api/tracks", status, Some(&body))
        }))
        .is_err()
    };
    assert!(refused(200, json!([{ "title": "a track without its id" }])));
    assert!(refused(200, json!({ "tracks": [] })));
    assert!(refused(418, json!({ "error": "teapot", "code": "teapot" })));
    assert!(!refused(
        400,
        json!({ "error": "bad limit", "code": "invalid_query" })
    ));
    // Every reference, in parameters as in bodies, names a schema of the document.
    let text = doc.0.to_string();
    let schemas = doc.0["components"]["schemas"].as_object().unwrap();
    for r in text.split("\"#/components/schemas/").skip(1) {
        let name = &r[..r.find('"').unwrap()];
        assert!(schemas.contains_key(name), "dangling reference to {name}");
    }
    // Every schema compiles.
    for (name, _) in doc.0["components"]["schemas"].as_object().unwrap() {
        let mut root = doc.0.clone();
        root["$ref"] = json!(format!("#/components/schemas/{name}"));
        jsonschema::validator_for(&root).unwrap_or_else(|e| panic!("schema {name}: {e}"));
    }
}

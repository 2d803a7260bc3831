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

/// Sends a request the way a client would, and checks the answer against the document.
async fn call(
    app: &TestApp,
    doc: &Doc,
    method: Method,
    template: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Option<Value>) {
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
    (status, json)
}

#[tokio::test]
async fn the_document_describes_every_answer_of_the_rest_api() {
    let app = spawn_app(None).await;
    let doc = Doc::fetch(&app).await;
    let me = "?user_id=alice";
    let (get, post, patch, delete) = (Method::GET, Method::POST, Method::PATCH, Method::DELETE);

    // Library.
    let (s, tracks) = call(&app, &doc, get.clone(), "/api/tracks", "/api/tracks", None).await;
    assert_eq!(s, 200);
    let track = tracks.unwrap()[0]["id"].as_str().unwrap().to_string();
    let t = "/api/tracks/{id}";
    assert_eq!(
        call(
            &app,
            &doc,
            get.clone(),
            t,
            &format!("/api/tracks/{track}"),
            None
        )
        .await
        .0,
        200
    );
    assert_eq!(
        call(&app, &doc, get.clone(), t, "/api/tracks/nope", None)
            .await
            .0,
        404
    );
    let bad_query = "/api/tracks?limit=many";
    assert_eq!(
        call(&app, &doc, get.clone(), "/api/tracks", bad_query, None)
            .await
            .0,
        400
    );

    // Streaming sessions.
    let sessions = "/api/streaming/session";
    let caps = json!({
        "estimated_bandwidth_kbps": 150, "buffer_duration_ms": 5000,
        "connection_type": "Cellular3G", "device_type": "Mobile",
        "preferred_quality": null, "adaptive_enabled": true
    });
    let (s, created) = call(
        &app,
        &doc,
        post.clone(),
        sessions,
        &format!("{sessions}{me}"),
        Some(json!({ "track_id": track, "client_capabilities": caps })),
    )
    .await;
    assert_eq!(s, 201);
    let session = created.unwrap()["session_id"].as_str().unwrap().to_string();
    for (body, want) in [
        (json!({ "track_id": "nope" }), 404),
        (json!({ "track_id": 5 }), 422),
        (json!({ "track_id": track, "surprise": 1 }), 422),
    ] {
        let (s, _) = call(&app, &doc, post.clone(), sessions, sessions, Some(body)).await;
        assert_eq!(s, want);
    }
    let one = "/api/streaming/session/{id}";
    let here = format!("{sessions}/{session}");
    assert_eq!(call(&app, &doc, get.clone(), one, &here, None).await.0, 200);
    let metrics = "/api/streaming/session/{id}/metrics";
    let report = json!({ "buffer_health_percentage": 80.0, "download_speed_kbps": 900,
        "position_ms": 1000, "current_quality": "mobile" });
    let (s, _) = call(
        &app,
        &doc,
        post.clone(),
        metrics,
        &format!("{here}/metrics"),
        Some(report),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = call(
        &app,
        &doc,
        post.clone(),
        metrics,
        &format!("{sessions}/nope/metrics"),
        Some(json!({})),
    )
    .await;
    assert_eq!(s, 404);
    let stats = "/api/streaming/stats";
    assert_eq!(
        call(&app, &doc, get.clone(), stats, stats, None).await.0,
        200
    );
    assert_eq!(
        call(
            &app,
            &doc,
            delete.clone(),
            one,
            &format!("{here}?position_ms=2000"),
            None
        )
        .await
        .0,
        204
    );
    assert_eq!(
        call(&app, &doc, delete.clone(), one, &here, None).await.0,
        404
    );
    assert_eq!(call(&app, &doc, get.clone(), one, &here, None).await.0, 404);

    // Playlists.
    let lists = "/api/playlists";
    assert_eq!(
        call(&app, &doc, get.clone(), lists, lists, None).await.0,
        401
    );
    let (s, list) = call(
        &app,
        &doc,
        post.clone(),
        lists,
        &format!("{lists}{me}"),
        Some(json!({ "name": "Road" })),
    )
    .await;
    assert_eq!(s, 201);
    let id = list.unwrap()["id"].as_str().unwrap().to_string();
    let pl = "/api/playlists/{id}";
    let here = format!("{lists}/{id}");
    assert_eq!(
        call(
            &app,
            &doc,
            get.clone(),
            lists,
            &format!("{lists}{me}"),
            None
        )
        .await
        .0,
        200
    );
    assert_eq!(
        call(&app, &doc, get.clone(), pl, &format!("{here}{me}"), None)
            .await
            .0,
        200
    );
    assert_eq!(
        call(
            &app,
            &doc,
            get.clone(),
            pl,
            &format!("{here}?user_id=bob"),
            None
        )
        .await
        .0,
        404
    );
    let (s, _) = call(
        &app,
        &doc,
        patch.clone(),
        pl,
        &format!("{here}{me}"),
        Some(json!({ "name": "Trip" })),
    )
    .await;
    assert_eq!(s, 200);
    let add = "/api/playlists/{id}/tracks";
    for _ in 0..2 {
        let (s, _) = call(
            &app,
            &doc,
            post.clone(),
            add,
            &format!("{here}/tracks{me}"),
            Some(json!({ "track_id": track })),
        )
        .await;
        assert_eq!(s, 200);
    }
    let (s, _) = call(
        &app,
        &doc,
        post.clone(),
        add,
        &format!("{here}/tracks{me}"),
        Some(json!({ "track_id": "nope" })),
    )
    .await;
    assert_eq!(s, 404);
    let mv = "/api/playlists/{id}/move";
    let (s, _) = call(
        &app,
        &doc,
        post.clone(),
        mv,
        &format!("{here}/move{me}"),
        Some(json!({ "from": 1, "to": 0 })),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = call(
        &app,
        &doc,
        post.clone(),
        mv,
        &format!("{here}/move?user_id=bob"),
        Some(json!({ "from": 1, "to": 0 })),
    )
    .await;
    assert_eq!(s, 404, "not visible to bob");
    let at = "/api/playlists/{id}/tracks/{position}";
    let (s, _) = call(
        &app,
        &doc,
        delete.clone(),
        at,
        &format!("{here}/tracks/first{me}"),
        None,
    )
    .await;
    assert_eq!(
        s, 400,
        "a position that is not a number: a JSON error like any other"
    );
    assert_eq!(
        call(
            &app,
            &doc,
            delete.clone(),
            at,
            &format!("{here}/tracks/0{me}"),
            None
        )
        .await
        .0,
        200
    );
    let share = "/api/playlists/{id}/share";
    let (s, _) = call(
        &app,
        &doc,
        post.clone(),
        share,
        &format!("{here}/share{me}"),
        Some(json!({ "to_users": ["bob"] })),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = call(
        &app,
        &doc,
        patch.clone(),
        pl,
        &format!("{here}?user_id=bob"),
        Some(json!({ "name": "Mine" })),
    )
    .await;
    assert_eq!(s, 403, "shared, but not bob's");
    assert_eq!(
        call(&app, &doc, delete.clone(), pl, &format!("{here}{me}"), None)
            .await
            .0,
        204
    );

    // Social.
    let like = "/api/tracks/{id}/like";
    assert_eq!(
        call(
            &app,
            &doc,
            post.clone(),
            like,
            &format!("/api/tracks/{track}/like{me}"),
            None
        )
        .await
        .0,
        200
    );
    assert_eq!(
        call(
            &app,
            &doc,
            post.clone(),
            like,
            &format!("/api/tracks/nope/like{me}"),
            None
        )
        .await
        .0,
        404
    );
    let tshare = "/api/tracks/{id}/share";
    let (s, _) = call(
        &app,
        &doc,
        post.clone(),
        tshare,
        &format!("/api/tracks/{track}/share{me}"),
        Some(json!({ "to_users": ["bob"], "message": "listen" })),
    )
    .await;
    assert_eq!(s, 204);
    let follow = "/api/users/{id}/follow";
    assert_eq!(
        call(
            &app,
            &doc,
            post.clone(),
            follow,
            &format!("/api/users/bob/follow{me}"),
            None
        )
        .await
        .0,
        200
    );
    let msg = "/api/admin/message";
    assert_eq!(
        call(
            &app,
            &doc,
            post.clone(),
            msg,
            msg,
            Some(json!({ "message": "maintenance at 2" }))
        )
        .await
        .0,
        202
    );
    assert_eq!(
        call(
            &app,
            &doc,
            post.clone(),
            msg,
            msg,
            Some(json!({ "message": " " }))
        )
        .await
        .0,
        400
    );

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
        assert_eq!(
            call(&app, &doc, get.clone(), report, report, None).await.0,
            200,
            "{report}"
        );
    }
    let qoe = "/api/analytics/qoe";
    assert_eq!(
        call(
            &app,
            &doc,
            get.clone(),
            qoe,
            &format!("{qoe}?group_by=platform"),
            None
        )
        .await
        .0,
        200
    );
    assert_eq!(
        call(
            &app,
            &doc,
            get.clone(),
            qoe,
            &format!("{qoe}?group_by=moon"),
            None
        )
        .await
        .0,
        400
    );
    let export = "/api/analytics/users/{id}/export";
    assert_eq!(
        call(
            &app,
            &doc,
            get.clone(),
            export,
            "/api/analytics/users/alice/export",
            None
        )
        .await
        .0,
        200
    );
    let erase = "/api/analytics/users/{id}";
    assert_eq!(
        call(
            &app,
            &doc,
            delete.clone(),
            erase,
            "/api/analytics/users/alice",
            None
        )
        .await
        .0,
        200
    );

    // Operations and HLS (not JSON: documented, with their content types).
    assert_eq!(
        call(&app, &doc, get.clone(), "/api/ws", "/api/ws", None)
            .await
            .0,
        400,
        "not a handshake"
    );
    assert_eq!(
        call(&app, &doc, get.clone(), t, "/api/tracks/%FF%FE", None)
            .await
            .0,
        400
    );
    let ws_stats = "/api/ws/stats";
    assert_eq!(
        call(&app, &doc, get.clone(), ws_stats, ws_stats, None)
            .await
            .0,
        200
    );
    assert_eq!(
        call(&app, &doc, get.clone(), "/healthz", "/healthz", None)
            .await
            .0,
        200
    );
    let master = "/hls/{track_id}/master.m3u8";
    assert_eq!(
        call(
            &app,
            &doc,
            get.clone(),
            master,
            &format!("/hls/{track}/master.m3u8"),
            None
        )
        .await
        .0,
        200
    );
    assert_eq!(
        call(
            &app,
            &doc,
            get.clone(),
            master,
            "/hls/nope/master.m3u8",
            None
        )
        .await
        .0,
        404
    );
    let media = "/hls/{track_id}/{quality}/playlist.m3u8";
    assert_eq!(
        call(
            &app,
            &doc,
            get.clone(),
            media,
            &format!("/hls/{track}/ultra/playlist.m3u8"),
            None
        )
        .await
        .0,
        404
    );
    let stream = "/stream/{filename}";
    assert_eq!(
        call(
            &app,
            &doc,
            get.clone(),
            stream,
            "/stream/..%2fetc%2fpasswd",
            None
        )
        .await
        .0,
        400
    );
    assert_eq!(
        call(
            &app,
            &doc,
            get.clone(),
            stream,
            &format!("/stream/{track}?quality=ultra"),
            None
        )
        .await
        .0,
        404
    );
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

//! Identity, playlists, likes, shares, follows, server messages and LiveStats: REST and the
//! WebSocket against the real server, with real clients.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use stream_server::auth::Authenticator;

use crate::helpers::{spawn_app, spawn_app_with, TestApp};
use crate::websocket::{connect_ready, events_named, first_event, response, send};

fn auth(app: &TestApp) -> Authenticator {
    Authenticator::load_or_create(&app.state.config.data_dir, None).unwrap()
}

async fn call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut r = app.client.request(method, app.url(path));
    if let Some(b) = body {
        r = r.json(&b);
    }
    r.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_name_the_user_and_bad_ones_are_refused() {
    let app = spawn_app(None).await;
    let keys = auth(&app);
    let good = keys.mint("alice", Duration::from_secs(600), false).unwrap();
    // A valid token: the connection is alice's (GetStatus says so), even with a matching user_id.
    for q in [
        format!("token={good}"),
        format!("token={good}&user_id=alice"),
    ] {
        let mut ws = connect_ready(&app, &q).await;
        send(&mut ws, json!({"command": "GetStatus", "command_id": "s"})).await;
        let r = response(&mut ws, "s", &mut Vec::new()).await;
        assert_eq!(r["data"]["user_id"], "alice", "{r}");
    }
    let forged = Authenticator::from_secret(&[9u8; 32])
        .unwrap()
        .mint("alice", Duration::from_secs(600), true)
        .unwrap();
    let expired = {
        // Signed with the server's own secret, expired a minute ago.
        let secret = std::fs::read_to_string(app.state.config.data_dir.join("jwt-secret")).unwrap();
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &json!({"sub": "alice", "exp": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() - 60}),
            &jsonwebtoken::EncodingKey::from_secret(secret.trim().as_bytes()),
        )
        .unwrap()
    };
    for q in [
        format!("token={forged}"),
        format!("token={expired}"),
        format!("token={good}&user_id=mallory"),
        "token=not.a.jwt".to_string(),
    ] {
        let err = tokio_tungstenite::connect_async(format!("ws://{}/api/ws?{q}", app.addr))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("401"), "{q}: {err}");
    }
    // REST takes the token as a bearer header; no token and no user_id is anonymous (401).
    let r = app
        .client
        .get(app.url("/api/playlists"))
        .bearer_auth(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = app
        .client
        .get(app.url("/api/playlists"))
        .bearer_auth(&forged)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        call(&app, reqwest::Method::GET, "/api/playlists", None)
            .await
            .status(),
        401
    );
    // The CLI mints tokens this server accepts.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_stream-server"))
        .args(["token", "--user", "carol", "--ttl", "1h", "--data-dir"])
        .arg(&app.state.config.data_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let minted = String::from_utf8(out.stdout).unwrap();
    assert_eq!(keys.verify(minted.trim()).unwrap().sub, "carol");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn playlists_sync_across_tabs_and_stay_private() {
    let app = spawn_app(None).await;
    let tracks = app.json("/api/tracks").await;
    let t0 = tracks[0]["id"].as_str().unwrap().to_string();
    let t1 = tracks[1]["id"].as_str().unwrap().to_string();
    let mut tab1 = connect_ready(&app, "user_id=ann").await;
    let mut tab2 = connect_ready(&app, "user_id=ann").await;
    let mut bob = connect_ready(&app, "user_id=bob").await;

    let created = call(
        &app,
        reqwest::Method::POST,
        "/api/playlists?user_id=ann",
        Some(json!({"name": "Road trip"})),
    )
    .await;
    assert_eq!(created.status(), 201);
    let p: Value = created.json().await.unwrap();
    let pid = p["id"].as_str().unwrap().to_string();
    assert_eq!(p["owner"], "ann");
    for tab in [&mut tab1, &mut tab2] {
        let e = first_event(tab, "PlaylistUpdated", Duration::from_secs(5))
            .await
            .expect("creation announced");
        assert_eq!(e["playlist_id"], pid.as_str());
    }

    // The spec's command from tab 1: one response with the playlist, an event in both tabs.
    send(&mut tab1, json!({"command": "AddToPlaylist", "command_id": "a1", "playlist_id": pid, "track_id": t0, "position": null})).await;
    let r = response(&mut tab1, "a1", &mut Vec::new()).await;
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(r["data"]["tracks"][0]["track_id"], t0.as_str());
    assert!(r["data"]["tracks"][0]["title"].as_str().unwrap().len() > 1);
    send(&mut tab1, json!({"command": "AddToPlaylist", "command_id": "a2", "playlist_id": pid, "track_id": t1, "position": 0})).await;
    let r = response(&mut tab1, "a2", &mut Vec::new()).await;
    assert_eq!(r["data"]["tracks"][0]["track_id"], t1.as_str());
    let seen = events_named(&mut tab2, "PlaylistUpdated", Duration::from_secs(2)).await;
    let adds: Vec<(Value, Value)> = seen
        .iter()
        .map(|e| (e["action"].clone(), e["position"].clone()))
        .collect();
    assert_eq!(
        adds,
        [(json!("Added"), json!(0)), (json!("Added"), json!(0))]
    );
    assert_eq!(seen[1]["track_id"], t1.as_str());

    // Tab 2 reorders over REST; tab 1 hears it.
    let moved: Value = call(
        &app,
        reqwest::Method::POST,
        &format!("/api/playlists/{pid}/move?user_id=ann"),
        Some(json!({"from": 0, "to": 1})),
    )
    .await
    .json()
    .await
    .unwrap();
    let order: Vec<&str> = moved["tracks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["track_id"].as_str().unwrap())
        .collect();
    assert_eq!(order, [t0.as_str(), t1.as_str()]);
    let e = first_event(&mut tab1, "PlaylistUpdated", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(
        (e["action"].clone(), e["position"].clone()),
        (json!("Reordered"), json!(1))
    );

    // Failures answer once and change nothing.
    for (cid, cmd) in [
        (
            "f1",
            json!({"command": "AddToPlaylist", "command_id": "f1", "playlist_id": pid, "track_id": "nope", "position": null}),
        ),
        (
            "f2",
            json!({"command": "RemoveFromPlaylist", "command_id": "f2", "playlist_id": pid, "track_id": "nope"}),
        ),
        (
            "f3",
            json!({"command": "AddToPlaylist", "command_id": "f3", "playlist_id": "no-such", "track_id": t0, "position": null}),
        ),
    ] {
        send(&mut tab1, cmd).await;
        let r = response(&mut tab1, cid, &mut Vec::new()).await;
        assert_eq!(r["success"], false, "{r}");
        assert!(!r["error"].as_str().unwrap().is_empty());
    }

    // Bob sees none of it, cannot read or edit it.
    assert!(
        events_named(&mut bob, "PlaylistUpdated", Duration::from_millis(300))
            .await
            .is_empty()
    );
    assert_eq!(
        call(
            &app,
            reqwest::Method::GET,
            &format!("/api/playlists/{pid}?user_id=bob"),
            None
        )
        .await
        .status(),
        404
    );
    send(&mut bob, json!({"command": "RemoveFromPlaylist", "command_id": "b1", "playlist_id": pid, "track_id": t0})).await;
    assert_eq!(
        response(&mut bob, "b1", &mut Vec::new()).await["success"],
        false
    );

    // Shared with Bob: both hear PlaylistShared; Bob reads it, still cannot edit it.
    let r = call(
        &app,
        reqwest::Method::POST,
        &format!("/api/playlists/{pid}/share?user_id=ann"),
        Some(json!({"to_users": ["bob"]})),
    )
    .await;
    assert_eq!(r.status(), 200);
    let e = first_event(&mut bob, "PlaylistShared", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(
        (e["from_user"].clone(), e["to_users"].clone()),
        (json!("ann"), json!(["bob"]))
    );
    assert!(
        first_event(&mut tab1, "PlaylistShared", Duration::from_secs(5))
            .await
            .is_some()
    );
    let seen: Value = call(
        &app,
        reqwest::Method::GET,
        &format!("/api/playlists/{pid}?user_id=bob"),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(seen["tracks"].as_array().unwrap().len(), 2);
    assert_eq!(
        call(
            &app,
            reqwest::Method::DELETE,
            &format!("/api/playlists/{pid}/tracks/0?user_id=bob"),
            None
        )
        .await
        .status(),
        403
    );
    // Now Bob hears its changes too.
    call(
        &app,
        reqwest::Method::DELETE,
        &format!("/api/playlists/{pid}/tracks/0?user_id=ann"),
        None,
    )
    .await;
    let e = first_event(&mut bob, "PlaylistUpdated", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(e["action"], "Removed");

    // Stored for real: a restart-proof read straight from the store, and analytics has the edits.
    let stored = app.state.social.playlist("ann", &pid).await.unwrap();
    assert_eq!(stored.track_ids, std::slice::from_ref(&t1));
    assert_eq!(
        call(
            &app,
            reqwest::Method::DELETE,
            &format!("/api/playlists/{pid}?user_id=ann"),
            None
        )
        .await
        .status(),
        204
    );
    assert_eq!(
        call(
            &app,
            reqwest::Method::GET,
            &format!("/api/playlists/{pid}?user_id=ann"),
            None
        )
        .await
        .status(),
        404
    );
    // Garbage bodies are clear 4xx errors.
    let r = call(
        &app,
        reqwest::Method::POST,
        "/api/playlists?user_id=ann",
        Some(json!({"name": ""})),
    )
    .await;
    assert_eq!(r.status(), 400);
    let r = call(
        &app,
        reqwest::Method::POST,
        "/api/playlists?user_id=ann",
        Some(json!({"nom": "x"})),
    )
    .await;
    assert!(r.status().is_client_error());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn likes_shares_follows_and_server_messages_reach_the_right_people() {
    let app = spawn_app(None).await;
    let tracks = app.json("/api/tracks").await;
    let t0 = tracks[0]["id"].as_str().unwrap().to_string();
    let mut ann = connect_ready(&app, "user_id=ann").await;
    let mut bob = connect_ready(&app, "user_id=bob").await;
    let mut cid = connect_ready(&app, "user_id=cid").await;

    // A like is public; liking twice counts once.
    let r: Value = call(
        &app,
        reqwest::Method::POST,
        &format!("/api/tracks/{t0}/like?user_id=ann"),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(r["total_likes"], 1);
    for ws in [&mut bob, &mut cid] {
        let e = first_event(ws, "TrackLiked", Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(
            (e["user_id"].clone(), e["total_likes"].clone()),
            (json!("ann"), json!(1))
        );
    }
    let r: Value = call(
        &app,
        reqwest::Method::POST,
        &format!("/api/tracks/{t0}/like?user_id=ann"),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        (r["total_likes"].clone(), r["new"].clone()),
        (json!(1), json!(false))
    );
    assert_eq!(
        call(
            &app,
            reqwest::Method::POST,
            "/api/tracks/nope/like?user_id=ann",
            None
        )
        .await
        .status(),
        404
    );

    // A share reaches sender and recipients only.
    let r = call(
        &app,
        reqwest::Method::POST,
        &format!("/api/tracks/{t0}/share?user_id=ann"),
        Some(json!({"to_users": ["bob"], "message": "listen"})),
    )
    .await;
    assert_eq!(r.status(), 204);
    let e = first_event(&mut bob, "TrackShared", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(e["message"], "listen");
    assert!(first_event(&mut ann, "TrackShared", Duration::from_secs(5))
        .await
        .is_some());
    assert!(
        events_named(&mut cid, "TrackShared", Duration::from_millis(300))
            .await
            .is_empty()
    );

    // A follow reaches the two people concerned.
    let r: Value = call(
        &app,
        reqwest::Method::POST,
        "/api/users/bob/follow?user_id=ann",
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(r["new"], true);
    assert!(
        first_event(&mut bob, "UserFollowed", Duration::from_secs(5))
            .await
            .is_some()
    );
    assert!(
        first_event(&mut ann, "UserFollowed", Duration::from_secs(5))
            .await
            .is_some()
    );
    assert!(
        events_named(&mut cid, "UserFollowed", Duration::from_millis(300))
            .await
            .is_empty()
    );
    assert_eq!(
        call(
            &app,
            reqwest::Method::POST,
            "/api/users/ann/follow?user_id=ann",
            None
        )
        .await
        .status(),
        400
    );

    // Server messages: the operator (loopback, not a browser) or an admin token; not a page.
    let r = call(
        &app,
        reqwest::Method::POST,
        "/api/admin/message",
        Some(json!({"message": "maintenance at 2am", "level": "Warning"})),
    )
    .await;
    assert_eq!(r.status(), 202);
    for ws in [&mut ann, &mut bob, &mut cid] {
        let e = first_event(ws, "ServerMessage", Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(
            (e["message"].clone(), e["level"].clone()),
            (json!("maintenance at 2am"), json!("Warning"))
        );
    }
    let page = app
        .client
        .post(app.url("/api/admin/message?user_id=ann"))
        .header("origin", "http://evil.example")
        .json(&json!({"message": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 403);
    let admin = auth(&app)
        .mint("root", Duration::from_secs(60), true)
        .unwrap();
    let r = app
        .client
        .post(app.url("/api/admin/message"))
        .header("origin", "http://ops.example")
        .bearer_auth(admin)
        .json(&json!({"message": "hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);

    // Everything social went to analytics.
    app.state.analytics.flush().await.unwrap();
    let export = app.state.analytics.export_user("ann").await.unwrap();
    let text = export.to_string();
    assert!(
        text.contains("like") && text.contains("follow") && text.contains("share"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_stats_count_listeners_from_real_playback() {
    let app = spawn_app_with(None, |c| c.live_stats_secs = 1).await;
    let tracks = app.json("/api/tracks").await;
    let t0 = tracks[0]["id"].as_str().unwrap().to_string();
    let title = tracks[0]["title"].as_str().unwrap().to_string();
    let mut ann = connect_ready(&app, "user_id=ann").await;
    let mut watcher = connect_ready(&app, "").await;
    let idle = first_event(&mut watcher, "LiveStats", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(idle["concurrent_listeners"], 0);
    send(&mut ann, json!({"command": "Play", "command_id": "p", "track_id": t0, "quality": null, "start_position_ms": null})).await;
    assert_eq!(
        response(&mut ann, "p", &mut Vec::new()).await["success"],
        true
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let e = first_event(&mut watcher, "LiveStats", Duration::from_secs(3))
            .await
            .unwrap();
        if e["concurrent_listeners"] == 1 {
            assert_eq!(e["top_tracks"][0]["track_id"], t0.as_str());
            assert_eq!(e["top_tracks"][0]["title"], title.as_str());
            assert_eq!(e["top_tracks"][0]["current_listeners"], 1);
            assert!(e["server_load"].as_f64().unwrap() >= 0.0);
            break;
        }
        assert!(Instant::now() < deadline, "listener never counted: {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_pages_on_this_machine_cannot_claim_a_user() {
    let app = spawn_app(None).await;
    let evil = "http://evil.example";
    // REST: a foreign page's bare user_id is no identity.
    let r = app
        .client
        .get(app.url("/api/playlists?user_id=ann"))
        .header("origin", evil)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Our own page (same origin, loopback host) is believed, as the web player needs.
    let own = format!("http://{}", app.addr);
    let r = app
        .client
        .get(app.url("/api/playlists?user_id=ann"))
        .header("origin", &own)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // WebSocket: the foreign page connects, but anonymously.
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        format!("ws://{}/api/ws?user_id=ann", app.addr),
    )
    .unwrap();
    req.headers_mut().insert("origin", evil.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    send(&mut ws, json!({"command": "GetStatus", "command_id": "g"})).await;
    let r = response(&mut ws, "g", &mut Vec::new()).await;
    assert!(r["data"]["user_id"].is_null(), "{r}");
    send(&mut ws, json!({"command": "RemoveFromPlaylist", "command_id": "x", "playlist_id": "p", "track_id": "t"})).await;
    assert_eq!(
        response(&mut ws, "x", &mut Vec::new()).await["success"],
        false
    );

    // A listener's analytics: their own token, an admin token, or the operator; a bare
    // user_id from a page is not enough.
    let keys = auth(&app);
    let ann = keys.mint("ann", Duration::from_secs(60), false).unwrap();
    let bob = keys.mint("bob", Duration::from_secs(60), false).unwrap();
    let export = |token: Option<String>| {
        let mut r = app
            .client
            .get(app.url("/api/analytics/users/ann/export"))
            .header("origin", evil);
        r = match token {
            Some(t) => r.bearer_auth(t),
            None => r.query(&[("user_id", "ann")]),
        };
        r.send()
    };
    assert_eq!(export(None).await.unwrap().status(), 403);
    assert_eq!(export(Some(bob)).await.unwrap().status(), 403);
    assert_eq!(export(Some(ann)).await.unwrap().status(), 200);
    // A streaming session cannot be addressed to someone else by a foreign page.
    let tracks = app.json("/api/tracks").await;
    let created: Value = app
        .client
        .post(app.url("/api/streaming/session"))
        .header("origin", evil)
        .json(&json!({"track_id": tracks[0]["id"], "user_id": "ann"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sid = created["session_id"].as_str().unwrap();
    assert_eq!(app.state.streaming.session_user(sid).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn playlists_work_the_same_on_postgresql() {
    let url = crate::analytics::postgres_url().await;
    let engine = stream_server::analytics::AnalyticsEngine::new(
        &url,
        std::sync::Arc::new(stream_server::config::Config::default()),
    )
    .await
    .unwrap();
    let s = std::sync::Arc::new(stream_server::social::SocialStore::new(
        engine.pool().clone(),
    ));
    let p = s.create_playlist("ann", "PG").await.unwrap().playlist;
    for t in ["a", "b", "c"] {
        s.add_track("ann", &p.id, t, None).await.unwrap();
    }
    s.add_track("ann", &p.id, "x", Some(0)).await.unwrap();
    s.move_track("ann", &p.id, 0, 3).await.unwrap();
    s.remove_at("ann", &p.id, 1).await.unwrap();
    let got = s.playlist("ann", &p.id).await.unwrap().track_ids;
    assert_eq!(got, ["a", "c", "x"]);
    // Concurrent inserts at the head are serialised by the row lock: nothing is lost.
    let mut tasks = Vec::new();
    for i in 0..10 {
        let s = s.clone();
        let id = p.id.clone();
        tasks.push(tokio::spawn(async move {
            s.add_track("ann", &id, &format!("t{i}"), Some(0)).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(s.playlist("ann", &p.id).await.unwrap().track_ids.len(), 13);
    let (shared, _) = s
        .share_playlist("ann", &p.id, &["bob".into()])
        .await
        .unwrap();
    assert_eq!(shared.shared_with, ["bob"]);
    assert_eq!(s.playlists_for("bob").await.unwrap().len(), 1);
    assert_eq!(s.like("bob", "a").await.unwrap(), (true, 1));
    assert!(s.follow("bob", "ann").await.unwrap());
    s.delete_playlist("ann", &p.id).await.unwrap();
    assert!(s.playlists_for("bob").await.unwrap().is_empty());
}

/// Nobody can grow someone else's playlist list without bound: a user can have at most
/// `MAX_SHARED_WITH_USER` playlists shared with them (a share beyond is refused whole, with a
/// clear error, and shares with others still work).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn playlists_shared_with_one_user_are_capped() {
    use stream_server::social::{SocialError, MAX_SHARED_WITH_USER};
    let dir = tempfile::tempdir().unwrap();
    let config = stream_server::config::Config {
        data_dir: dir.path().to_path_buf(),
        ..Default::default()
    };
    let engine = stream_server::analytics::AnalyticsEngine::new(
        &config.analytics_database_url(),
        std::sync::Arc::new(config),
    )
    .await
    .unwrap();
    let s = stream_server::social::SocialStore::new(engine.pool().clone());
    let mut first = None;
    for i in 0..MAX_SHARED_WITH_USER {
        let p = s
            .create_playlist("ann", &format!("p{i}"))
            .await
            .unwrap()
            .playlist;
        s.share_playlist("ann", &p.id, &["bob".into()])
            .await
            .unwrap();
        first.get_or_insert(p.id);
    }
    let one_more = s.create_playlist("cid", "one more").await.unwrap().playlist;
    match s
        .share_playlist("cid", &one_more.id, &["dan".into(), "bob".into()])
        .await
    {
        Err(SocialError::Invalid(msg)) => assert!(msg.contains("bob"), "{msg}"),
        other => panic!("a share past the cap must be refused: {other:?}"),
    }
    // Refused whole: dan did not get it either.
    assert!(s.playlists_for("dan").await.unwrap().is_empty());
    s.share_playlist("cid", &one_more.id, &["dan".into()])
        .await
        .unwrap();
    // Sharing again what bob already has is not a new share.
    s.share_playlist("ann", first.as_ref().unwrap(), &["bob".into()])
        .await
        .unwrap();
    assert_eq!(
        s.playlists_for("bob").await.unwrap().len() as i64,
        MAX_SHARED_WITH_USER
    );
}

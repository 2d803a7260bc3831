//! The quality monitor end to end: a session created with 3G capabilities, metrics reported
//! over HTTP as a player would, and the server's decisions seen in the session, in its master
//! playlist, on the listener's WebSocket (`QualityChanged`) and in analytics.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};
use crate::websocket::{connect_ready, events_named, next, response, send};

async fn report(app: &TestApp, sid: &str, metrics: Value) -> Value {
    let r = app
        .client
        .post(app.url(&format!("/api/streaming/session/{sid}/metrics")))
        .json(&metrics)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// The profile `/stream` picks for this session (HEAD, from `X-Stream-Quality`).
async fn progressive_quality(app: &TestApp, track: &str, sid: &str) -> String {
    let r = app
        .client
        .head(app.url(&format!("/stream/{track}?session_id={sid}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.headers()["x-stream-quality"]
        .to_str()
        .unwrap()
        .to_string()
}

/// A session for `user` on a 3G phone at 150 kbit/s with a 30 s buffer target: it starts on
/// `mobile`, as the spec's example says.
async fn session_3g(app: &TestApp, track: &str, user: &str) -> String {
    let created = app
        .post_json("/api/streaming/session", &json!({
            "track_id": track,
            "user_id": user,
            "client_capabilities": {"estimated_bandwidth_kbps": 150, "buffer_duration_ms": 30000,
                "connection_type": "Cellular3G", "device_type": "Mobile", "adaptive_enabled": true},
        }))
        .await;
    assert_eq!(created["initial_profile"]["quality_id"], "mobile");
    created["session_id"].as_str().unwrap().to_string()
}

async fn session_quality(app: &TestApp, sid: &str) -> String {
    let s: Value = app
        .get(&format!("/api/streaming/session/{sid}"))
        .await
        .json()
        .await
        .unwrap();
    s["current_quality"].as_str().unwrap().to_string()
}

/// Reports `metrics` until the session reaches `want`, giving the monitor (which looks every
/// 2 s) up to 6 s to act on each report; returns how many reports it took.
async fn report_until(app: &TestApp, sid: &str, metrics: Value, want: &str) -> usize {
    for reports in 1..=5 {
        report(app, sid, metrics.clone()).await;
        let deadline = Instant::now() + Duration::from_secs(6);
        while Instant::now() < deadline {
            if session_quality(app, sid).await == want {
                return reports;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    panic!("session never reached {want} after 5 reports");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monitor_adapts_a_3g_session_and_tells_its_listener() {
    let app = spawn_app(None).await;
    let tracks = app.json("/api/tracks").await;
    let track = tracks[0]["id"].as_str().unwrap().to_string();
    let mut mine = connect_ready(&app, "user_id=listener-5").await;
    let mut theirs = connect_ready(&app, "user_id=someone-else").await;
    // As the spec's client does: its own events only (QualityChanged names its user).
    send(
        &mut mine,
        json!({"command": "Subscribe", "command_id": "mine",
            "events": ["QualityChanged", "PlaybackProgress"], "filters": {"user_id": "listener-5"}}),
    )
    .await;
    let r = response(&mut mine, "mine", &mut Vec::new()).await;
    assert_eq!(r["success"], true, "{r}");

    let sid = session_3g(&app, &track, "listener-5").await;

    // The link turns out fast and the buffer is full: the monitor steps up.
    let good = json!({"buffer_health_percentage": 95.0, "download_speed_kbps": 2500,
        "latency_ms": 60, "packet_loss_percentage": 0.0, "rebuffer_count": 0});
    let n = report_until(&app, &sid, good.clone(), "high").await;
    assert!(n <= 3, "took {n} reports to step up");
    assert_eq!(app.first_variant(&track, &sid).await, "high/playlist.m3u8");
    assert_eq!(progressive_quality(&app, &track, &sid).await, "high");
    // Steady good reports: no further change (no oscillation).
    for _ in 0..3 {
        report(&app, &sid, good.clone()).await;
        tokio::time::sleep(Duration::from_millis(2200)).await;
        assert_eq!(session_quality(&app, &sid).await, "high");
    }

    // A tunnel: throughput collapses, the buffer drains, the player rebuffers.
    let bad = json!({"buffer_health_percentage": 8.0, "download_speed_kbps": 60,
        "latency_ms": 900, "packet_loss_percentage": 5.0, "rebuffer_count": 1});
    let n = report_until(&app, &sid, bad, "mobile").await;
    assert_eq!(n, 1, "a rebuffering session steps down at the first report");
    assert_eq!(progressive_quality(&app, &track, &sid).await, "mobile");

    let events = events_named(&mut mine, "QualityChanged", Duration::from_secs(2)).await;
    let moves: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            assert_eq!(e["session_id"], sid.as_str());
            assert_eq!(e["user_id"], "listener-5");
            assert_eq!(e["track_id"], track.as_str());
            assert!(!e["reason"].as_str().unwrap().is_empty());
            (
                e["from"].as_str().unwrap().to_string(),
                e["to"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        moves,
        [
            ("mobile".to_string(), "high".to_string()),
            ("high".to_string(), "mobile".to_string())
        ]
    );
    assert!(
        events_named(&mut theirs, "QualityChanged", Duration::from_millis(300))
            .await
            .is_empty(),
        "another listener sees nothing of this session"
    );

    // Both decisions are in analytics, with the monitor's reasons.
    app.state.analytics.flush().await.unwrap();
    let q = app.state.analytics.quality(0).await.unwrap();
    let pairs: Vec<(&str, &str, i64)> = q
        .switches
        .iter()
        .map(|s| (s.from.as_str(), s.to.as_str(), s.count))
        .collect();
    assert!(pairs.contains(&("mobile", "high", 1)), "{pairs:?}");
    assert!(pairs.contains(&("high", "mobile", 1)), "{pairs:?}");

    // The listener's PlaybackProgress carries the buffer their player last reported (8%).
    send(
        &mut mine,
        json!({"command": "Play", "command_id": "p", "track_id": track, "start_position_ms": null}),
    )
    .await;
    response(&mut mine, "p", &mut Vec::new()).await;
    send(
        &mut mine,
        json!({"command": "Seek", "command_id": "s", "track_id": track, "position_ms": 1000}),
    )
    .await;
    let mut seen = Vec::new();
    response(&mut mine, "s", &mut seen).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let progress = loop {
        if let Some(p) = seen.iter().find(|m| m["event"] == "PlaybackProgress") {
            break p.clone();
        }
        assert!(Instant::now() < deadline, "no PlaybackProgress: {seen:?}");
        if let Some(m) = next(&mut mine, Duration::from_secs(1)).await {
            seen.push(m);
        }
    };
    assert_eq!(progress["buffer_percentage"], 8.0);
}

/// Near the end of a track a player measures its buffer against what is left (ours does): a
/// report of 100 % with five seconds to go on a weak link is not a full 30 s buffer, and the
/// monitor does not step the session up on it; the same report mid-track is, and it does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_end_of_a_track_buffered_is_not_headroom() {
    let app = spawn_app(None).await;
    let tracks = app.json("/api/tracks").await;
    let track = tracks[0]["id"].as_str().unwrap().to_string();
    let duration_ms = tracks[0]["duration_ms"].as_u64().unwrap();
    assert!(
        duration_ms > 40_000,
        "a track longer than the target buffer"
    );
    let mut ws = connect_ready(&app, "user_id=listener-7").await;
    let sid = session_3g(&app, &track, "listener-7").await;
    let at = |position_ms: u64| {
        json!({"buffer_health_percentage": 100.0, "download_speed_kbps": 400,
            "latency_ms": 80, "rebuffer_count": 0, "position_ms": position_ms})
    };
    for _ in 0..3 {
        report(&app, &sid, at(duration_ms - 5_000)).await;
        tokio::time::sleep(Duration::from_millis(2200)).await;
        assert_eq!(session_quality(&app, &sid).await, "mobile");
    }
    assert!(
        events_named(&mut ws, "QualityChanged", Duration::from_millis(300))
            .await
            .is_empty()
    );
    // Mid-track, with more than the target left, 100 % is a full buffer: the monitor steps up.
    let moved = report_until(&app, &sid, at(1_000), "high").await;
    assert!(moved <= 3, "took {moved} reports");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_below_the_servers_choice_is_not_flooded() {
    let app = spawn_app(None).await;
    let tracks = app.json("/api/tracks").await;
    let track = tracks[0]["id"].as_str().unwrap().to_string();
    let mut ws = connect_ready(&app, "user_id=listener-6").await;
    let created = app
        .post_json(
            "/api/streaming/session",
            &json!({"track_id": track, "user_id": "listener-6",
            "client_capabilities": {"estimated_bandwidth_kbps": 5000, "buffer_duration_ms": 30000,
                "connection_type": "Wifi", "device_type": "Desktop", "adaptive_enabled": true}}),
        )
        .await;
    assert_eq!(created["initial_profile"]["quality_id"], "high");
    let sid = created["session_id"].as_str().unwrap().to_string();
    // The player's own ABR plays medium although the link is fine: the session follows what
    // is played, and the server, whose choice (high) has not changed, announces nothing.
    for _ in 0..3 {
        let r = report(
            &app,
            &sid,
            json!({"buffer_health_percentage": 90.0, "download_speed_kbps": 4000,
                "current_quality": "medium"}),
        )
        .await;
        assert_eq!(r["current_quality"], "medium");
        tokio::time::sleep(Duration::from_millis(2200)).await;
        assert_eq!(session_quality(&app, &sid).await, "medium");
    }
    assert!(
        events_named(&mut ws, "QualityChanged", Duration::from_millis(500))
            .await
            .is_empty()
    );
    // A quality no profile has is a malformed report (400), not a missing session (404).
    let r = app
        .client
        .post(app.url(&format!("/api/streaming/session/{sid}/metrics")))
        .json(&json!({"buffer_health_percentage": 90.0, "current_quality": "ultra"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "invalid_body");
}

/// A progressive download of a session keeps the encoding of its first `GET` while the monitor
/// moves the session (HLS follows the monitor; one file cannot change encoding midway).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_download_keeps_its_first_encoding() {
    let app = spawn_app(None).await;
    let tracks = app.json("/api/tracks").await;
    let track = tracks[0]["id"].as_str().unwrap().to_string();
    let created = app
        .post_json("/api/streaming/session", &json!({
            "track_id": track,
            "client_capabilities": {"estimated_bandwidth_kbps": 150, "buffer_duration_ms": 30000,
                "connection_type": "Cellular3G", "device_type": "Mobile", "adaptive_enabled": true},
        }))
        .await;
    let sid = created["session_id"].as_str().unwrap().to_string();
    let range = |r: &'static str| {
        app.client
            .get(app.url(&format!("/stream/{track}?session_id={sid}")))
            .header("Range", r)
            .send()
    };
    let first = range("bytes=0-999").await.unwrap();
    assert_eq!(first.status(), 206);
    assert_eq!(first.headers()["x-stream-quality"], "mobile");
    let etag = first.headers()["etag"].clone();
    let total = first.headers()["content-range"]
        .to_str()
        .unwrap()
        .to_string();
    let total = total.rsplit('/').next().unwrap().to_string();

    let good = json!({"buffer_health_percentage": 95.0, "download_speed_kbps": 2500,
        "latency_ms": 60, "packet_loss_percentage": 0.0, "rebuffer_count": 0});
    report_until(&app, &sid, good, "high").await;
    assert_eq!(app.first_variant(&track, &sid).await, "high/playlist.m3u8");

    let next = range("bytes=1000-1999").await.unwrap();
    assert_eq!(next.status(), 206);
    assert_eq!(next.headers()["x-stream-quality"], "mobile");
    assert_eq!(next.headers()["etag"], etag);
    assert_eq!(
        next.headers()["content-range"],
        format!("bytes 1000-1999/{total}").as_str()
    );
    assert_eq!(progressive_quality(&app, &track, &sid).await, "mobile");
}

/// A session starts as a progressive download of the same client would: what the body leaves
/// unknown comes from the request (`Save-Data`, `Downlink`, the `User-Agent`), and a
/// `preferred_quality` naming no profile is refused rather than quietly replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_starts_from_the_requests_hints_too() {
    let app = spawn_app(None).await;
    let tracks = app.json("/api/tracks").await;
    let track = tracks[0]["id"].as_str().unwrap().to_string();
    let create = |headers: Vec<(&'static str, &'static str)>, body: Value| {
        let app = &app;
        async move {
            let mut req = app
                .client
                .post(app.url("/api/streaming/session"))
                .json(&body);
            for (k, v) in headers {
                req = req.header(k, v);
            }
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let wifi = json!({"track_id": track, "client_capabilities": {"estimated_bandwidth_kbps": 5000,
        "buffer_duration_ms": 10000, "connection_type": "Wifi", "device_type": "Desktop"}});
    let (status, fast) = create(vec![], wifi.clone()).await;
    assert_eq!(
        (status, fast["initial_profile"]["quality_id"].as_str()),
        (201, Some("high"))
    );
    // The listener asked to save data: planned as a slow link, as /stream does.
    let (_, saving) = create(vec![("save-data", "on")], wifi).await;
    assert_eq!(saving["initial_profile"]["quality_id"], "mobile");
    // No capabilities in the body: the Downlink hint (0.2 Mbit/s) is the estimate.
    let bare = json!({"track_id": track});
    let (_, unknown) = create(vec![], bare.clone()).await;
    let (_, slow) = create(vec![("downlink", "0.2")], bare).await;
    assert_ne!(
        unknown["initial_profile"]["quality_id"],
        slow["initial_profile"]["quality_id"]
    );
    assert_eq!(slow["initial_profile"]["quality_id"], "mobile");
    let (status, err) = create(
        vec![],
        json!({"track_id": track, "client_capabilities": {"estimated_bandwidth_kbps": 100,
            "buffer_duration_ms": 10000, "connection_type": "Wifi", "device_type": "Desktop",
            "preferred_quality": "ultra", "adaptive_enabled": false}}),
    )
    .await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["code"], "invalid_body");
}

/// A session the server no longer knows (expired during a long pause, created on another node)
/// degrades gracefully: its master is the default one (a 404 is fatal to hls.js), and the
/// player's `DELETE` still ends the play in analytics (it stayed open for good before), once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_the_server_no_longer_knows_degrades_gracefully() {
    let app = spawn_app(None).await;
    let tracks = app.json("/api/tracks").await;
    let track = tracks[0]["id"].as_str().unwrap().to_string();
    let sid = session_3g(&app, &track, "listener-7").await;
    // Forgotten as the monitor's expiry forgets it.
    assert!(app.state.streaming.end_session(&sid).await);

    let master = app
        .get(&format!("/hls/{track}/master.m3u8?session_id={sid}"))
        .await;
    assert_eq!(master.status(), 200);
    let text = master.text().await.unwrap();
    let default = app
        .get(&format!("/hls/{track}/master.m3u8"))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(text, default);

    let ended_at = || async {
        app.state.analytics.flush().await.unwrap();
        sqlx::query_scalar::<_, Option<i64>>("SELECT ended_at FROM play_sessions WHERE id = $1")
            .bind(&sid)
            .fetch_one(app.state.analytics.pool())
            .await
            .unwrap()
    };
    assert_eq!(ended_at().await, None);
    let gone = app
        .client
        .delete(app.url(&format!("/api/streaming/session/{sid}?position_ms=4000")))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
    let first_end = ended_at().await.expect("the play was not ended");
    // A second end (a retry) does not move it.
    tokio::time::sleep(Duration::from_millis(20)).await;
    app.client
        .delete(app.url(&format!("/api/streaming/session/{sid}")))
        .send()
        .await
        .unwrap();
    assert_eq!(ended_at().await, Some(first_end));
}

/// Session creation refuses what would grow the server's memory without use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_s_client_id_is_bounded_and_bandwidth_may_be_fractional() {
    let app = spawn_app(None).await;
    let tracks = app.json("/api/tracks").await;
    let track = tracks[0]["id"].as_str().unwrap();
    let r = app
        .client
        .post(app.url("/api/streaming/session"))
        .json(&json!({"track_id": track, "client_id": "x".repeat(100_000)}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // The spec's hook sends `downlink * 1000`, a float in JavaScript.
    let created = app
        .post_json("/api/streaming/session", &json!({
            "track_id": track,
            "client_capabilities": {"estimated_bandwidth_kbps": 4025.0000000000005,
                "buffer_duration_ms": 30000, "connection_type": "Wifi", "device_type": "Desktop"},
        }))
        .await;
    assert_eq!(created["initial_profile"]["quality_id"], "high");
}

/// The web player creates a streaming session (which starts the play in analytics) and sends
/// `Play` on its WebSocket: naming the session makes them one play, not two. A session that is
/// not the user's own for this track is not taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_play_naming_its_streaming_session_is_counted_once() {
    let app = spawn_app(None).await;
    let tracks = app.json("/api/tracks").await;
    let track = tracks[0]["id"].as_str().unwrap().to_string();
    let plays = |user: &'static str| {
        let app = &app;
        async move {
            app.state.analytics.flush().await.unwrap();
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM play_sessions WHERE user_id = $1")
                .bind(user)
                .fetch_one(app.state.analytics.pool())
                .await
                .unwrap()
        }
    };
    let sid = session_3g(&app, &track, "listener-8").await;
    assert_eq!(plays("listener-8").await, 1);

    let mut ws = connect_ready(&app, "user_id=listener-8").await;
    send(
        &mut ws,
        json!({"command": "Play", "command_id": "p1", "track_id": track,
        "start_position_ms": 0, "session_id": sid}),
    )
    .await;
    let r = response(&mut ws, "p1", &mut Vec::new()).await;
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(r["data"]["session_id"], sid.as_str());
    assert_eq!(
        plays("listener-8").await,
        1,
        "the session's play was counted twice"
    );
    // Played again from the end in the same session: a new play, not the one just ended.
    send(
        &mut ws,
        json!({"command": "Play", "command_id": "p1b", "track_id": track,
        "start_position_ms": 0, "session_id": sid}),
    )
    .await;
    let r = response(&mut ws, "p1b", &mut Vec::new()).await;
    assert_eq!(r["success"], true, "{r}");
    assert_ne!(r["data"]["session_id"], sid.as_str());
    assert_eq!(plays("listener-8").await, 2);

    // Someone else's session is not taken: that play is a play of its own.
    let mut other = connect_ready(&app, "user_id=listener-9").await;
    send(
        &mut other,
        json!({"command": "Play", "command_id": "p2", "track_id": track,
        "session_id": sid}),
    )
    .await;
    let r = response(&mut other, "p2", &mut Vec::new()).await;
    assert_eq!(r["success"], true, "{r}");
    assert_ne!(r["data"]["session_id"], sid.as_str());
    assert_eq!(plays("listener-9").await, 1);
}

/// One caller creating sessions in a loop fills its own share, not the server: past it, its
/// own least recently used session is ended (and its play with it); other callers' sessions
/// are untouched. Anonymous callers count by address, as the proxy in front names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_past_its_share_of_sessions_loses_its_own_least_used() {
    use stream_server::streaming::adaptive::{SESSIONS_PER_ADDRESS, SESSIONS_PER_USER};
    let app = spawn_app(None).await;
    let track = app.json("/api/tracks").await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let create = |user: Option<&str>, forwarded_for: &str| {
        let mut body = json!({"track_id": track, "client_capabilities": {
            "estimated_bandwidth_kbps": 2000, "buffer_duration_ms": 30000,
            "connection_type": "Wifi", "device_type": "Desktop", "adaptive_enabled": true}});
        if let Some(u) = user {
            body["user_id"] = json!(u);
        }
        let request = app
            .client
            .post(app.url("/api/streaming/session"))
            .json(&body);
        let request = if forwarded_for.is_empty() {
            request
        } else {
            request.header("x-forwarded-for", forwarded_for)
        };
        async move {
            let r = request.send().await.unwrap();
            assert_eq!(r.status(), 201);
            let v: Value = r.json().await.unwrap();
            v["session_id"].as_str().unwrap().to_string()
        }
    };
    let status = |sid: String| {
        let get = app
            .client
            .get(app.url(&format!("/api/streaming/session/{sid}")))
            .send();
        async move { get.await.unwrap().status().as_u16() }
    };

    let neighbour = create(Some("neighbour"), "").await;
    let first = create(Some("looper"), "").await;
    let in_use = create(Some("looper"), "").await;
    let second = create(Some("looper"), "").await;
    for _ in 0..SESSIONS_PER_USER - 3 {
        create(Some("looper"), "").await;
    }
    // The looper's player reports on one of its early sessions: it is in use.
    report(
        &app,
        &in_use,
        json!({"buffer_health_percentage": 90.0, "download_speed_kbps": 900,
            "latency_ms": 60, "packet_loss_percentage": 0.0, "rebuffer_count": 0}),
    )
    .await;
    create(Some("looper"), "").await;
    assert_eq!(status(first.clone()).await, 404, "the least used made room");
    assert_eq!(status(in_use).await, 200, "a session in use is kept");
    create(Some("looper"), "").await;
    assert_eq!(status(second).await, 404);
    assert_eq!(status(neighbour.clone()).await, 200);

    let other_client = create(None, "192.0.2.2").await;
    let first_anonymous = create(None, "10.1.1.1, 192.0.2.1").await;
    let second_anonymous = create(None, "192.0.2.1").await;
    for _ in 0..SESSIONS_PER_ADDRESS - 1 {
        create(None, "192.0.2.1").await;
    }
    assert_eq!(status(first_anonymous).await, 404);
    assert_eq!(status(second_anonymous).await, 200);
    assert_eq!(status(other_client).await, 200);
    let stats = app.json("/api/streaming/stats").await;
    assert_eq!(stats["sessions_evicted"], 3, "{stats}");

    // The evicted play was ended in analytics (by the expiry path).
    let ended = async {
        loop {
            app.state.analytics.flush().await.unwrap();
            let row = sqlx::query("SELECT ended_at FROM play_sessions WHERE id = $1")
                .bind(&first)
                .fetch_one(app.state.analytics.pool())
                .await
                .unwrap();
            if sqlx::Row::get::<Option<i64>, _>(&row, 0).is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), ended)
        .await
        .expect("the evicted session's play ends");
}

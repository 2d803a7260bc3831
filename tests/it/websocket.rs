//! The WebSocket hub with a real client (tokio-tungstenite) against the real server.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::fixtures::library;
use crate::helpers::{spawn_app, TestApp};

pub(crate) type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub(crate) async fn connect(app: &TestApp, query: &str) -> Ws {
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/api/ws?{query}", app.addr))
        .await
        .expect("websocket connects");
    ws
}

/// Connects and waits until the server has registered the connection (the upgrade's 101 comes
/// before the hub knows the socket): a Ping's answer proves it, so no event raised right after
/// can miss it.
pub(crate) async fn connect_ready(app: &TestApp, query: &str) -> Ws {
    let mut ws = connect(app, query).await;
    ready(&mut ws).await;
    ws
}

/// Waits for the answer to a Ping on `ws` (see [`connect_ready`]).
pub(crate) async fn ready(ws: &mut Ws) {
    send(
        ws,
        serde_json::json!({"command": "Ping", "command_id": "ready"}),
    )
    .await;
    let r = response(ws, "ready", &mut Vec::new()).await;
    assert_eq!(r["success"], true, "{r}");
}

pub(crate) async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

/// Next JSON message (skipping pings), or `None` after `wait`.
pub(crate) async fn next(ws: &mut Ws, wait: Duration) -> Option<Value> {
    loop {
        match tokio::time::timeout(wait, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return Some(serde_json::from_str(&t).unwrap()),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            _ => return None,
        }
    }
}

/// Reads `ws` to its end within `wait`: `Some(code)` of the close frame, `Some(None)` for a
/// stream that ended without one, `None` if it was still open after `wait`.
pub(crate) async fn close_code(ws: &mut Ws, wait: Duration) -> Option<Option<u16>> {
    tokio::time::timeout(wait, async {
        while let Some(Ok(m)) = ws.next().await {
            if let Message::Close(frame) = m {
                return frame.map(|f| u16::from(f.code));
            }
        }
        None
    })
    .await
    .ok()
}

/// Every message of `event` arriving within `wait`.
pub(crate) async fn events_named(ws: &mut Ws, event: &str, wait: Duration) -> Vec<Value> {
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + wait;
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match next(ws, left).await {
            Some(m) if m["event"] == event => out.push(m),
            Some(_) => {}
            None => break,
        }
    }
    out
}

/// The first `event` within `wait`.
pub(crate) async fn first_event(ws: &mut Ws, event: &str, wait: Duration) -> Option<Value> {
    let deadline = std::time::Instant::now() + wait;
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match next(ws, left).await {
            Some(m) if m["event"] == event => return Some(m),
            Some(_) => {}
            None => return None,
        }
    }
    None
}

/// The response to `command_id`, collecting the other messages seen meanwhile.
pub(crate) async fn response(ws: &mut Ws, command_id: &str, seen: &mut Vec<Value>) -> Value {
    loop {
        let m = next(ws, Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("no response to {command_id}; saw {seen:?}"));
        if m["event"] == "CommandResponse" && m["command_id"] == command_id {
            return m;
        }
        seen.push(m);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spec_client_scenario() {
    let lib = library();
    let app = spawn_app(Some(&lib.root)).await;
    let track = app.track_id("mp3/tagged.mp3").await;
    let mut ws = connect(&app, "user_id=client_001").await;
    let mut seen = Vec::new();
    send(&mut ws, json!({"command": "Subscribe", "command_id": "sub_001", "events": ["PlaybackStarted", "PlaybackProgress", "PlaybackStopped"], "filters": {"user_id": "client_001"}})).await;
    let r = response(&mut ws, "sub_001", &mut seen).await;
    assert_eq!(r["success"], true, "{r}");
    send(&mut ws, json!({"command": "Play", "command_id": "play_001", "track_id": track, "start_position_ms": 0})).await;
    let r = response(&mut ws, "play_001", &mut seen).await;
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(r["error"], Value::Null);
    assert!((r["data"]["track_duration_ms"].as_u64().unwrap() as i64 - 11_000).abs() < 50);
    assert_eq!(r["data"]["quality"], "medium");
    // As the spec's player sends it (`currentTime * 1000`, a float): rounded to the ms.
    send(&mut ws, json!({"command": "Seek", "command_id": "seek_001", "track_id": track, "position_ms": 5999.5678})).await;
    let r = response(&mut ws, "seek_001", &mut seen).await;
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(r["data"]["position_ms"], 6000, "{r}");
    send(
        &mut ws,
        json!({"command": "GetStatus", "command_id": "status_001"}),
    )
    .await;
    let status = response(&mut ws, "status_001", &mut seen).await;
    assert_eq!(status["data"]["playback"]["position_ms"], 6000);
    assert_eq!(status["data"]["subscriptions"].as_array().unwrap().len(), 3);
    send(
        &mut ws,
        json!({"command": "Ping", "command_id": "ping_001"}),
    )
    .await;
    assert!(response(&mut ws, "ping_001", &mut seen).await["data"]["pong"].is_u64());
    send(
        &mut ws,
        json!({"command": "Stop", "command_id": "stop_001", "track_id": track}),
    )
    .await;
    assert_eq!(
        response(&mut ws, "stop_001", &mut seen).await["data"]["total_played_ms"],
        6000
    );
    while let Some(m) = next(&mut ws, Duration::from_millis(300)).await {
        seen.push(m);
    }
    let names: Vec<&str> = seen.iter().filter_map(|m| m["event"].as_str()).collect();
    assert_eq!(
        names,
        ["PlaybackStarted", "PlaybackProgress", "PlaybackStopped"],
        "{seen:?}"
    );
    assert_eq!(seen[1]["position_ms"], 6000);

    // The play was recorded: one ended session with 6 s heard.
    app.state.analytics.flush().await.unwrap();
    let top = app.json("/api/analytics/top-tracks").await;
    assert_eq!(top["tracks"][0]["track_id"], track.as_str());
    assert_eq!(top["tracks"][0]["listening_ms"], 6000);
    let stats = app.json("/api/ws/stats").await;
    assert_eq!(stats["current_connections"], 1);
    assert!(stats["messages_received"].as_u64().unwrap() >= 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_an_answer_and_the_connection_stays_open() {
    let lib = library();
    let app = spawn_app(Some(&lib.root)).await;
    let track = app.track_id("wav/low8k.wav").await;
    let mut ws = connect(&app, "user_id=u1").await;
    let mut seen = Vec::new();
    let cases = [
        (json!("not a command").to_string(), ""),
        ("{not json".to_string(), ""),
        (json!({"command": "Teleport", "command_id": "c1"}).to_string(), "c1"),
        (json!({"command": "Seek", "command_id": "c2", "track_id": track, "position_ms": "later"}).to_string(), "c2"),
        (json!({"command": "Seek", "command_id": "c3", "track_id": track, "position_ms": 1000}).to_string(), "c3"),
        (json!({"command": "Pause", "command_id": "c4", "track_id": track}).to_string(), "c4"),
        (json!({"command": "Subscribe", "command_id": "c5", "events": ["NoSuchEvent"]}).to_string(), "c5"),
        (json!({"command": "Play", "command_id": "c6", "track_id": "nope"}).to_string(), "c6"),
        (json!({"command": "Play", "command_id": "c7", "track_id": track, "start_position_ms": 999_999}).to_string(), "c7"),
    ];
    for (text, id) in cases {
        ws.send(Message::Text(text.clone().into())).await.unwrap();
        let r = if id.is_empty() {
            next(&mut ws, Duration::from_secs(5)).await.unwrap()
        } else {
            response(&mut ws, id, &mut seen).await
        };
        assert_eq!(r["event"], "CommandResponse", "{text}: {r}");
        assert_eq!(r["success"], false, "{text}: {r}");
        assert!(
            r["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{text}: {r}"
        );
    }
    ws.send(Message::Binary(vec![1u8, 2, 3].into()))
        .await
        .unwrap();
    let r = next(&mut ws, Duration::from_secs(5)).await.unwrap();
    assert_eq!(r["success"], false);
    assert!(r["error"].as_str().unwrap().contains("binary"));
    // Still open.
    send(&mut ws, json!({"command": "Ping", "command_id": "alive"})).await;
    assert_eq!(response(&mut ws, "alive", &mut seen).await["success"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_are_private_and_filters_use_track_attributes() {
    let lib = library();
    let app = spawn_app(Some(&lib.root)).await;
    let tagged = app.track_id("mp3/tagged.mp3").await; // genre electronic, artist Test Artist
    let plain = app.track_id("wav/low8k.wav").await;
    let mut alice = connect(&app, "user_id=alice").await;
    let mut bob = connect(&app, "user_id=bob").await;
    let mut fan = connect(&app, "user_id=fan").await;
    let mut seen = Vec::new();
    send(&mut fan, json!({"command": "Subscribe", "command_id": "s", "events": ["PlaybackStarted"], "filters": {"track_genre": "Electronic"}})).await;
    response(&mut fan, "s", &mut seen).await;
    send(
        &mut alice,
        json!({"command": "Play", "command_id": "a1", "track_id": plain}),
    )
    .await;
    response(&mut alice, "a1", &mut seen).await;
    send(
        &mut alice,
        json!({"command": "Play", "command_id": "a2", "track_id": tagged}),
    )
    .await;
    response(&mut alice, "a2", &mut seen).await;

    let mut bob_saw = Vec::new();
    while let Some(m) = next(&mut bob, Duration::from_millis(500)).await {
        bob_saw.push(m);
    }
    assert!(
        bob_saw.iter().all(|m| m["event"] != "CommandResponse"),
        "bob saw alice's responses: {bob_saw:?}"
    );
    assert!(
        bob_saw
            .iter()
            .any(|m| m["event"] == "PlaybackStarted" && m["user_id"] == "alice"),
        "{bob_saw:?}"
    );
    let mut fan_saw = Vec::new();
    while let Some(m) = next(&mut fan, Duration::from_millis(500)).await {
        fan_saw.push(m);
    }
    let started: Vec<&Value> = fan_saw
        .iter()
        .filter(|m| m["event"] == "PlaybackStarted")
        .collect();
    assert_eq!(started.len(), 1, "{fan_saw:?}");
    assert_eq!(started[0]["track_id"], tagged.as_str());
    assert!(
        fan_saw.iter().all(|m| m["event"] == "PlaybackStarted"),
        "only the subscribed event: {fan_saw:?}"
    );

    // A direct message reaches only its user; a share only sender and recipients.
    app.state
        .websocket
        .send_to_user(
            "bob",
            stream_server::streaming::websocket::WebSocketEvent::ServerMessage {
                message: "hi bob".into(),
                level: stream_server::streaming::websocket::MessageLevel::Info,
            },
        )
        .await;
    app.state
        .websocket
        .broadcast_event(
            stream_server::streaming::websocket::WebSocketEvent::TrackShared {
                track_id: tagged.clone(),
                from_user: "alice".into(),
                to_users: vec!["bob".into()],
                message: None,
            },
        )
        .await;
    let bob_next: Vec<Value> = {
        let mut v = Vec::new();
        while let Some(m) = next(&mut bob, Duration::from_millis(500)).await {
            v.push(m);
        }
        v
    };
    assert!(bob_next.iter().any(|m| m["message"] == "hi bob"));
    assert!(bob_next.iter().any(|m| m["event"] == "TrackShared"));
    let fan_next = next(&mut fan, Duration::from_millis(500)).await;
    assert!(fan_next.is_none(), "fan saw {fan_next:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_messages_close_1009_and_bad_tokens_are_refused() {
    let lib = library();
    let app = spawn_app(Some(&lib.root)).await;
    let mut ws = connect(&app, "user_id=big").await;
    let huge = format!(
        "{{\"command\":\"Ping\",\"command_id\":\"{}\"}}",
        "x".repeat(70 * 1024)
    );
    let _ = ws.send(Message::Text(huge.into())).await;
    let mut code = None;
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
        match m {
            Ok(Message::Close(Some(frame))) => {
                code = Some(u16::from(frame.code));
                break;
            }
            Ok(_) => continue,
            Err(_) => break,
        }
    }
    assert_eq!(code, Some(1009));
    let err =
        tokio_tungstenite::connect_async(format!("ws://{}/api/ws?user_id=x&token=abc", app.addr))
            .await
            .unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
    // The server goes on.
    assert_eq!(app.get("/healthz").await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slow_connections_are_dropped() {
    let lib = library();
    let app = spawn_app(Some(&lib.root)).await;
    let _idle = connect(&app, "user_id=idle").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    app.state
        .websocket
        .cleanup_inactive_connections(Duration::from_millis(50))
        .await;
    let stats = app.json("/api/ws/stats").await;
    assert_eq!(stats["current_connections"], 0);
    assert_eq!(stats["idle_disconnects"], 1);

    // A reader that never reads: broadcasts fill its queue and it is dropped; a reader that
    // keeps up gets everything. Broadcasts go in rounds smaller than a connection's queue, each
    // waiting until the reading client has them all, so the test does not depend on speed.
    let slow = connect(&app, "user_id=slow").await;
    let mut fast = connect(&app, "user_id=fast").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (count_tx, mut count_rx) = tokio::sync::watch::channel(0usize);
    let fast_reader = tokio::spawn(async move {
        let mut n = 0;
        while let Some(m) = next(&mut fast, Duration::from_secs(10)).await {
            if m["event"] == "ServerMessage" {
                n += 1;
                let _ = count_tx.send(n);
            }
        }
        n
    });
    let big = "y".repeat(16 * 1024);
    let rounds = 20;
    let per_round = 100;
    for round in 1..=rounds {
        for _ in 0..per_round {
            app.state
                .websocket
                .broadcast_event(
                    stream_server::streaming::websocket::WebSocketEvent::ServerMessage {
                        message: big.clone(),
                        level: stream_server::streaming::websocket::MessageLevel::Info,
                    },
                )
                .await;
        }
        let want = round * per_round;
        tokio::time::timeout(Duration::from_secs(20), count_rx.wait_for(|n| *n >= want))
            .await
            .expect("the reading client keeps up")
            .unwrap();
    }
    let stats = app.json("/api/ws/stats").await;
    assert!(
        stats["slow_reader_disconnects"].as_u64().unwrap() >= 1,
        "{stats}"
    );
    assert_eq!(
        stats["current_connections"], 1,
        "only the reading client is left: {stats}"
    );
    // The dropped reader's socket is closed by the server, not left open and silent: reading
    // what was already in flight ends with the close (1008) or the end of the stream.
    let mut slow = slow;
    let close = close_code(&mut slow, Duration::from_secs(30))
        .await
        .expect("the slow reader's connection ends");
    assert!(matches!(close, Some(1008) | None), "{close:?}");
    fast_reader.abort();
}

/// A client far over the rate limit that keeps reading: a `RateLimitWarning`, then refusals,
/// exactly one answer per command, and the connection stays open. Its answers are its own
/// traffic: the server slows the client down (stops reading its socket while answers queue),
/// never drops it as a slow reader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_flood_is_warned_refused_and_survives() {
    const N: usize = 1000;
    let app = spawn_app(Some(&library().root)).await;
    let ws = connect_ready(&app, "user_id=flood").await;
    let (mut sink, mut stream) = ws.split();
    let reader = tokio::spawn(async move {
        let mut answered = std::collections::HashSet::new();
        let (mut refused, mut warnings) = (0, 0);
        while answered.len() < N {
            match tokio::time::timeout(Duration::from_secs(20), stream.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    match v["event"].as_str() {
                        Some("CommandResponse") => {
                            if v["success"] == false {
                                assert!(v["error"].as_str().unwrap().contains("rate limit"), "{v}");
                                refused += 1;
                            }
                            let id = v["command_id"].as_str().unwrap().to_string();
                            assert!(answered.insert(id), "answered twice: {v}");
                        }
                        Some("RateLimitWarning") => warnings += 1,
                        _ => {}
                    }
                }
                Ok(Some(Ok(_))) => {}
                other => panic!(
                    "the flood's connection ended after {} answers: {other:?}",
                    answered.len()
                ),
            }
        }
        (stream, refused, warnings)
    });
    for i in 0..N {
        let ping = json!({"command": "Ping", "command_id": format!("f{i}")});
        sink.send(Message::Text(ping.to_string().into()))
            .await
            .unwrap();
    }
    let (stream, refused, warnings) = reader.await.unwrap();
    assert!(refused > 0 && refused < N, "{refused} of {N} refused");
    assert!(warnings >= 1, "no RateLimitWarning before the refusals");
    // The bucket refills (10 commands/s): the same connection is served again.
    let mut ws = stream.reunite(sink).unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    send(&mut ws, json!({"command": "Ping", "command_id": "after"})).await;
    assert_eq!(
        response(&mut ws, "after", &mut Vec::new()).await["success"],
        true
    );
    let stats = app.json("/api/ws/stats").await;
    assert_eq!(stats["slow_reader_disconnects"], 0, "{stats}");
}

/// A listener who goes away without `Stop` (tab closed, phone gone for good) stops playing once
/// the grace has passed with no connection of theirs: the analytics session is closed,
/// `PlaybackStopped` goes out, `LiveStats` no longer counts them. One who reconnects within the
/// grace keeps playing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_who_disconnects_stops_playing_after_the_grace() {
    let app = spawn_app(Some(&library().root)).await;
    app.state
        .websocket
        .set_disconnect_grace(Duration::from_millis(300));
    let track = app.track_id("wav/low8k.wav").await;
    let mut watcher = connect_ready(&app, "user_id=watcher").await;
    let mut sessions = Vec::new();
    let mut players = Vec::new();
    for user in ["gone", "back"] {
        let mut ws = connect_ready(&app, &format!("user_id={user}")).await;
        send(
            &mut ws,
            json!({"command": "Play", "command_id": "p", "track_id": track}),
        )
        .await;
        let r = response(&mut ws, "p", &mut Vec::new()).await;
        assert_eq!(r["success"], true, "{r}");
        sessions.push(r["data"]["session_id"].as_str().unwrap().to_string());
        players.push(ws);
    }
    assert_eq!(app.json("/api/ws/stats").await["listeners_playing"], 2);
    for mut ws in players {
        ws.close(None).await.unwrap();
    }
    let _back_again = connect_ready(&app, "user_id=back").await;
    let stopped = first_event(&mut watcher, "PlaybackStopped", Duration::from_secs(5))
        .await
        .expect("PlaybackStopped for the listener who left");
    assert_eq!(stopped["user_id"], "gone", "{stopped}");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        app.json("/api/ws/stats").await["listeners_playing"],
        1,
        "the listener who came back still plays"
    );
    app.state.analytics.flush().await.unwrap();
    for (session, ended) in sessions.iter().zip([true, false]) {
        let row = sqlx::query("SELECT ended_at FROM play_sessions WHERE id = $1")
            .bind(session)
            .fetch_one(app.state.analytics.pool())
            .await
            .unwrap();
        let ended_at: Option<i64> = sqlx::Row::get(&row, 0);
        assert_eq!(ended_at.is_some(), ended, "session {session}");
    }
}

/// Unsubscribing from every event a connection subscribed to leaves it no events at all (the
/// answers to its own commands still come), not every event again; a connection that never
/// subscribed and unsubscribes from one event keeps receiving all the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribing_from_everything_subscribed_leaves_no_events() {
    let app = spawn_app(Some(&library().root)).await;
    let track = app.track_id("wav/low8k.wav").await;
    let mut narrowed = connect_ready(&app, "user_id=narrowed").await;
    let mut never = connect_ready(&app, "user_id=never").await;
    let mut player = connect_ready(&app, "user_id=player").await;
    let mut seen = Vec::new();

    send(
        &mut narrowed,
        json!({"command": "Subscribe", "command_id": "s", "events": ["PlaybackStarted"]}),
    )
    .await;
    assert_eq!(
        response(&mut narrowed, "s", &mut seen).await["success"],
        true
    );
    send(
        &mut narrowed,
        json!({"command": "Unsubscribe", "command_id": "u", "events": ["PlaybackStarted"]}),
    )
    .await;
    let r = response(&mut narrowed, "u", &mut seen).await;
    assert_eq!(r["data"]["subscribed"], json!([]), "{r}");
    send(
        &mut never,
        json!({"command": "Unsubscribe", "command_id": "u", "events": ["PlaybackStarted"]}),
    )
    .await;
    let r = response(&mut never, "u", &mut seen).await;
    let names = r["data"]["subscribed"].as_array().unwrap();
    assert!(!names.contains(&json!("PlaybackStarted")), "{r}");
    assert!(names.contains(&json!("PlaybackStopped")), "{r}");
    assert!(seen.is_empty(), "{seen:?}");

    send(
        &mut player,
        json!({"command": "Play", "command_id": "p", "track_id": track}),
    )
    .await;
    assert_eq!(
        response(&mut player, "p", &mut Vec::new()).await["success"],
        true
    );
    send(
        &mut player,
        json!({"command": "Stop", "command_id": "x", "track_id": track}),
    )
    .await;
    assert_eq!(
        response(&mut player, "x", &mut Vec::new()).await["success"],
        true
    );

    // Both events were queued before the Stop was answered: whatever `narrowed` was sent comes
    // before the answer to a Ping sent now.
    send(
        &mut narrowed,
        json!({"command": "Ping", "command_id": "alive"}),
    )
    .await;
    let mut narrowed_saw = Vec::new();
    let r = response(&mut narrowed, "alive", &mut narrowed_saw).await;
    assert_eq!(r["success"], true, "{r}");
    assert!(
        narrowed_saw.is_empty(),
        "unsubscribed from everything it subscribed to, yet got {narrowed_saw:?}"
    );

    let mut never_saw = Vec::new();
    while let Some(m) = next(&mut never, Duration::from_secs(5)).await {
        let stopped = m["event"] == "PlaybackStopped";
        never_saw.push(m);
        if stopped {
            break;
        }
    }
    assert!(
        never_saw.iter().any(|m| m["event"] == "PlaybackStopped"),
        "{never_saw:?}"
    );
    assert!(
        never_saw.iter().all(|m| m["event"] != "PlaybackStarted"),
        "{never_saw:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seek_while_paused_is_not_listening() {
    let app = spawn_app(Some(&library().root)).await;
    let track = app.track_id("mp3/tagged.mp3").await;
    let mut ws = connect_ready(&app, "user_id=pauser").await;
    let mut seen = Vec::new();
    for (id, command) in [
        ("play", json!({"command": "Play", "track_id": track})),
        (
            "at4",
            json!({"command": "Seek", "track_id": track, "position_ms": 4000}),
        ),
        ("pause", json!({"command": "Pause", "track_id": track})),
        // Moved while paused: a seek, however short.
        (
            "at9",
            json!({"command": "Seek", "track_id": track, "position_ms": 9000}),
        ),
        ("resume", json!({"command": "Play", "track_id": track})),
        (
            "at10",
            json!({"command": "Seek", "track_id": track, "position_ms": 10_000}),
        ),
    ] {
        let mut command = command;
        command["command_id"] = json!(id);
        send(&mut ws, command).await;
        let r = response(&mut ws, id, &mut seen).await;
        assert_eq!(r["success"], true, "{id}: {r}");
    }
    send(
        &mut ws,
        json!({"command": "Stop", "command_id": "stop", "track_id": track}),
    )
    .await;
    let r = response(&mut ws, "stop", &mut seen).await;
    assert_eq!(r["data"]["total_played_ms"], 5000, "{r}");
    app.state.analytics.flush().await.unwrap();
    let top = app.json("/api/analytics/top-tracks").await;
    assert_eq!(top["tracks"][0]["listening_ms"], 5000, "{top}");
}

//! Stopping the server as an operator does: SIGTERM, and a second signal when the first is too
//! slow. Run as a process, since only a process has signals and an exit status.

use std::io::Write as _;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::fixtures::library;
use crate::helpers::{start_process, ServerProcess};

/// A request the server is still reading: a body announced and never sent, as a client on a
/// dead link leaves it. Graceful shutdown waits for it; the drain deadline must not.
fn stalled_request(server: &ServerProcess) -> std::net::TcpStream {
    let mut tcp = std::net::TcpStream::connect(&server.addr).unwrap();
    write!(
        tcp,
        "POST /api/streaming/session HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: 400\r\n\r\n{{\"track_id\":",
        server.addr
    )
    .unwrap();
    tcp
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_for_a_while_then_ends_playback_and_closes_clients() {
    let mut server = start_process(&library().root, &[], &[]);
    let client = reqwest::Client::new();
    server.wait_healthy(&client).await;
    let tracks = server.json(&client, "/api/tracks").await;
    let track = tracks
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["filename"] == "wav/low8k.wav")
        .unwrap()["id"]
        .clone();
    let mut ws = server.ws("user_id=ann").await;
    crate::websocket::send(
        &mut ws,
        json!({"command": "Play", "command_id": "p", "track_id": track}),
    )
    .await;
    let r = crate::websocket::response(&mut ws, "p", &mut Vec::new()).await;
    let session = r["data"]["session_id"].as_str().unwrap().to_string();
    let _stalled = stalled_request(&server);
    tokio::time::sleep(Duration::from_millis(200)).await;

    let t0 = Instant::now();
    server.signal("TERM");
    // Clients hear "going away" (1001), not a dropped connection.
    let close = crate::websocket::close_code(&mut ws, Duration::from_secs(30))
        .await
        .expect("the WebSocket ends");
    assert_eq!(close, Some(1001));
    let status = tokio::task::spawn_blocking(move || {
        let status = server.wait_exit(Duration::from_secs(30));
        (status, server)
    })
    .await
    .unwrap();
    let (status, server) = status;
    let status = status.expect("the server exits although a request never completes");
    let took = t0.elapsed();
    assert!(status.success(), "{status:?}");
    let drain = stream_server::http::connections::DRAIN_DEADLINE;
    assert!(
        took >= drain && took < drain + Duration::from_secs(8),
        "exited after {took:?} (drain deadline {drain:?})"
    );
    // The playback open at shutdown was ended and recorded, not left open forever.
    let db = server.data.path().join("analytics.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let ended: Option<i64> = sqlx::query_scalar("SELECT ended_at FROM play_sessions WHERE id = ?")
        .bind(&session)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(ended.is_some(), "session {session} left open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_stops_the_server_at_once() {
    let mut server = start_process(&library().root, &[], &[]);
    server.wait_healthy(&reqwest::Client::new()).await;
    let _stalled = stalled_request(&server);
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.signal("TERM");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t0 = Instant::now();
    server.signal("INT");
    let status = tokio::task::spawn_blocking(move || server.wait_exit(Duration::from_secs(5)))
        .await
        .unwrap()
        .expect("exits on the second signal");
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    assert_eq!(status.code(), Some(130));
}

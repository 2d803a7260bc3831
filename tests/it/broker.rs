//! Scale-out: two server *processes* sharing one real Redis act as one WebSocket hub.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::fixtures::library;
use crate::websocket::first_event;

/// The Redis the tests use. Without one the test fails (it never skips): start one with
/// `redis-server --daemonize yes --port 6379 --save ""`.
fn redis_url() -> String {
    let url = std::env::var("STREAM_SERVER_TEST_REDIS")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string());
    let hostport = url
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    std::net::TcpStream::connect_timeout(
        &hostport.parse().expect("host:port in the Redis URL"),
        Duration::from_secs(2),
    )
    .unwrap_or_else(|e| panic!("Redis is needed at {url} for the scale-out test: {e}"));
    url
}

use crate::helpers::{start_process, ServerProcess as Node};

/// Two healthy nodes on `broker`, in a namespace of their own, and a track of their library.
async fn two_nodes(broker: &str) -> (Node, Node, reqwest::Client, String) {
    let namespace = format!("stream-server-test-{}", uuid::Uuid::new_v4());
    let lib = library();
    let one = start_node(&lib.root, broker, &namespace);
    let two = start_node(&lib.root, broker, &namespace);
    let client = reqwest::Client::new();
    one.wait_healthy(&client).await;
    two.wait_healthy(&client).await;
    let tracks = one.json(&client, "/api/tracks").await;
    let track = tracks[0]["id"].as_str().unwrap().to_string();
    (one, two, client, track)
}

fn start_node(lib: &std::path::Path, broker: &str, namespace: &str) -> Node {
    start_process(
        lib,
        &["--live-stats-secs", "1", "--broker", broker],
        &[("STREAM_SERVER_BROKER_NAMESPACE", namespace)],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_redis_act_as_one_hub() {
    let broker = redis_url();
    let (one, two, client, track) = two_nodes(&broker).await;

    let mut ann_on_one = one.ws("user_id=ann").await;
    let mut ann_on_two = two.ws("user_id=ann").await;
    let mut bob_on_two = two.ws("user_id=bob").await;

    // A broadcast raised on node 1 reaches a client of node 2.
    crate::websocket::send(
        &mut ann_on_one,
        json!({"command": "Play", "command_id": "p", "track_id": track, "quality": null, "start_position_ms": null}),
    )
    .await;
    let played = crate::websocket::response(&mut ann_on_one, "p", &mut Vec::new()).await;
    assert_eq!(played["success"], true, "{played}");
    let Some(started) =
        first_event(&mut bob_on_two, "PlaybackStarted", Duration::from_secs(20)).await
    else {
        panic!(
            "node 2's client never heard node 1's event; node 1: {}; node 2: {}",
            one.json(&client, "/api/ws/stats").await,
            two.json(&client, "/api/ws/stats").await
        );
    };
    assert_eq!(
        (started["user_id"].clone(), started["track_id"].clone()),
        (json!("ann"), json!(track.clone()))
    );

    // Addressed events follow the user across nodes, and only the user.
    let created = client
        .post(format!("http://{}/api/playlists?user_id=ann", one.addr))
        .json(&json!({"name": "Across nodes"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let e = first_event(&mut ann_on_two, "PlaylistUpdated", Duration::from_secs(10))
        .await
        .expect("ann's other device, on node 2, hears her playlist change");
    assert!(e["playlist_id"].is_string());
    assert!(first_event(
        &mut bob_on_two,
        "PlaylistUpdated",
        Duration::from_millis(500)
    )
    .await
    .is_none());
    // A share raised on node 2 reaches its recipient on node 1 only.
    let mut cid_on_one = one.ws("user_id=cid").await;
    let r = client
        .post(format!(
            "http://{}/api/tracks/{track}/share?user_id=bob",
            two.addr
        ))
        .json(&json!({"to_users": ["ann"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(
        first_event(&mut ann_on_one, "TrackShared", Duration::from_secs(10))
            .await
            .is_some()
    );
    assert!(
        first_event(&mut cid_on_one, "TrackShared", Duration::from_millis(500))
            .await
            .is_none()
    );

    // Live counts are shared: node 2's LiveStats counts ann, who plays on node 1.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = first_event(&mut bob_on_two, "LiveStats", Duration::from_secs(5))
            .await
            .expect("LiveStats on node 2");
        if s["concurrent_listeners"] == 1 && s["top_tracks"][0]["track_id"] == track.as_str() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node 2 never counted node 1's listener: {s}"
        );
    }
    let stats = two.json(&client, "/api/ws/stats").await;
    // Node 2 received the Play and the playlist change from node 1 (the share was its own).
    assert!(
        stats["broker"]["events_received"].as_u64().unwrap() >= 2,
        "{stats}"
    );
}

/// A Redis of the test's own on a free port (`redis-server` is needed: the test fails without
/// it, never skips), which the test can kill and start again on the same port. Killed when
/// dropped.
struct PrivateRedis {
    child: std::process::Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl PrivateRedis {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let child = Self::spawn(port, dir.path());
        Self { child, port, dir }
    }

    // The child is returned to `PrivateRedis`, whose `Drop` kills and waits for it; on the one
    // path that gives up (no PING answer) it is killed and waited for here.
    #[allow(clippy::zombie_processes)]
    fn spawn(port: u16, dir: &std::path::Path) -> std::process::Child {
        let mut child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port"])
            .arg(port.to_string())
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("redis-server is needed for the Redis restart test (apt-get install redis-server): {e}")
            });
        // Ready once it answers PING.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                use std::io::{Read as _, Write as _};
                let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
                let mut pong = [0u8; 7];
                if s.write_all(b"PING\r\n").is_ok()
                    && s.read_exact(&mut pong).is_ok()
                    && &pong == b"+PONG\r\n"
                {
                    return child;
                }
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("redis-server on port {port} did not answer PING within 10 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills Redis (as a crash would: no goodbye to its clients) and starts it again, empty, on
    /// the same port.
    fn restart(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.child = Self::spawn(self.port, self.dir.path());
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Redis restarts under two running nodes: once it is back, an event raised on node 1 reaches a
/// client of node 2 again (node 1's publishing connection is replaced, node 2 subscribes again).
/// The first events after the restart may be lost while the nodes reconnect, so node 1 raises
/// one every couple of seconds until node 2's client hears one, for up to a minute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nodes_find_each_other_again_after_redis_restarts() {
    let mut redis = PrivateRedis::start();
    let broker = redis.url();
    let (one, two, client, track) = two_nodes(&broker).await;
    let mut ann_on_one = one.ws("user_id=ann").await;
    let mut bob_on_two = two.ws("user_id=bob").await;
    let play = |id: String| json!({"command": "Play", "command_id": id, "track_id": track});

    crate::websocket::send(&mut ann_on_one, play("before".into())).await;
    let r = crate::websocket::response(&mut ann_on_one, "before", &mut Vec::new()).await;
    assert_eq!(r["success"], true, "{r}");
    assert!(
        first_event(&mut bob_on_two, "PlaybackStarted", Duration::from_secs(20))
            .await
            .is_some(),
        "node 2 never heard node 1, even before the restart"
    );

    redis.restart();

    let deadline = Instant::now() + Duration::from_secs(60);
    for attempt in 0.. {
        // Playing again (the same track) ends the previous play and starts a new one.
        let id = format!("after-{attempt}");
        crate::websocket::send(&mut ann_on_one, play(id.clone())).await;
        let r = crate::websocket::response(&mut ann_on_one, &id, &mut Vec::new()).await;
        assert_eq!(r["success"], true, "{r}");
        if let Some(started) =
            first_event(&mut bob_on_two, "PlaybackStarted", Duration::from_secs(2)).await
        {
            assert_eq!(started["user_id"], "ann", "{started}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a minute after Redis restarted, node 2 still hears nothing from node 1; node 1: {}; node 2: {}",
            one.json(&client, "/api/ws/stats").await,
            two.json(&client, "/api/ws/stats").await
        );
    }
}

#[test]
fn an_unreachable_broker_stops_the_start_with_a_clear_error() {
    let data = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_stream-server"))
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--broker",
            "redis://127.0.0.1:1",
            "--data-dir",
        ])
        .arg(data.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot reach the broker"), "{err}");
}

/// A TCP relay to Redis that can be frozen: from then on nothing passes either way and new
/// connections are accepted but never answered, as when the network to Redis silently drops
/// packets (a killed Redis, by contrast, refuses connections at once).
struct FreezableRelay {
    port: u16,
    frozen: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl FreezableRelay {
    async fn start(upstream: u16) -> Self {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let frozen = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = frozen.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((client, _)) = listener.accept().await {
                if flag.load(Ordering::SeqCst) {
                    held.push(client);
                    continue;
                }
                let flag = flag.clone();
                tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                    else {
                        return;
                    };
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    let pump = |mut from: tokio::net::tcp::OwnedReadHalf,
                                mut to: tokio::net::tcp::OwnedWriteHalf,
                                flag: std::sync::Arc<std::sync::atomic::AtomicBool>| async move {
                        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
                        let mut buf = vec![0u8; 16 * 1024];
                        loop {
                            let n = match from.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            };
                            if flag.load(Ordering::SeqCst) {
                                // Frozen: swallow everything, hold the sockets open.
                                std::future::pending::<()>().await;
                            }
                            if to.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    };
                    tokio::join!(pump(cr, sw, flag.clone()), pump(sr, cw, flag));
                });
            }
        });
        Self { port, frozen }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn freeze(&self) {
        self.frozen.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A node cut off from its Redis (packets dropped, nothing refused) still stops when asked,
/// within seconds: leaving the shared listener view gives up at the connection manager's
/// response timeout (5 s) instead of waiting for an answer that never comes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_from_redis_still_stops_promptly() {
    let redis = PrivateRedis::start();
    let relay = FreezableRelay::start(redis.port).await;
    let namespace = format!("stream-server-test-{}", uuid::Uuid::new_v4());
    let mut node = start_node(&library().root, &relay.url(), &namespace);
    node.wait_healthy(&reqwest::Client::new()).await;
    relay.freeze();
    let asked = Instant::now();
    node.signal("TERM");
    let status = tokio::task::spawn_blocking(move || node.wait_exit(Duration::from_secs(120)))
        .await
        .unwrap()
        .expect("still running two minutes after SIGTERM");
    assert!(status.success(), "{status}");
    let took = asked.elapsed();
    assert!(took < Duration::from_secs(10), "stopped after {took:?}");
}

//! Hostile paths, broken files, and the server carrying on regardless.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;

use crate::fixtures::library;
use crate::helpers::spawn_app;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traversal_in_every_form_is_refused() {
    let lib = library();
    let app = spawn_app(Some(&lib.root)).await;
    let targets = [
        "/stream/../../../../etc/passwd",
        "/stream/flac/../../../etc/passwd",
        "/stream/%2e%2e/%2e%2e/etc/passwd",
        "/stream/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
        "/stream/..%2f..%2fetc%2fpasswd",
        "/stream/..%5c..%5cetc%5cpasswd",
        "/stream/flac%5c..%5c..%5cetc%5cpasswd",
        "/stream//etc/passwd",
        "/stream/%2fetc%2fpasswd",
        "/stream/C:%5cWindows%5cwin.ini",
        "/stream/escape.wav",
        "/stream/wav/%00low8k.wav",
        "/stream/./wav/low8k.wav",
        "/stream/%252e%252e/etc/passwd",
        // An encoded separator is refused even where it would name a file of the library.
        "/stream/wav%2flow8k.wav",
        "/stream/wav%2Flow8k.wav",
        "/hls/..%2f..%2fetc/master.m3u8",
        "/hls/x/high/..%2f..%2f..%2fetc%2fpasswd",
    ];
    for t in targets {
        let (status, text) = tokio::task::spawn_blocking({
            let app_addr = app.addr;
            let t = t.to_string();
            move || {
                let fake = FakeApp { addr: app_addr };
                fake.get(&t)
            }
        })
        .await
        .unwrap();
        assert!((400..500).contains(&status), "{t}: {status}\n{text}");
        assert!(!text.contains("root:"), "{t} leaked a system file");
    }
    // The server still serves.
    assert_eq!(app.get("/healthz").await.status(), 200);
}

/// Sends a request line exactly as written: no client-side normalisation of `..`.
struct FakeApp {
    addr: std::net::SocketAddr,
}

impl FakeApp {
    fn get(&self, target: &str) -> (u16, String) {
        let mut s = TcpStream::connect(self.addr).unwrap();
        write!(
            s,
            "GET {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        )
        .unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        let text = String::from_utf8_lossy(&out).into_owned();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        (status, text)
    }
}

/// A body announced larger than the limit is refused before it is sent: the answer to
/// `Expect: 100-continue` is the 413, never a `100 Continue` first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_is_refused_before_it_is_sent() {
    let app = spawn_app(None).await;
    let addr = app.addr;
    let answer = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        // A server that waits for the body instead would never answer: fail, not hang.
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        write!(
            s,
            "POST /api/streaming/session HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Content-Length: 999999999\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("invalid_body"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_files_are_skipped_and_a_file_broken_later_fails_cleanly() {
    let lib = library();
    // A private copy of two fixtures, one of which we break after the scan.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(lib.path("wav/low8k.wav"), dir.path().join("good.wav")).unwrap();
    std::fs::copy(
        lib.path("flac/stereo44.flac"),
        dir.path().join("victim.flac"),
    )
    .unwrap();
    std::fs::write(dir.path().join("garbage.mp3"), vec![0xffu8; 10_000]).unwrap();
    std::fs::write(
        dir.path().join("cover.jpg"),
        b"\xff\xd8\xff\xe0 not really a jpeg",
    )
    .unwrap();
    let truncated = std::fs::read(lib.path("flac/stereo44.flac")).unwrap();
    std::fs::write(
        dir.path().join("truncated.flac"),
        &truncated[..truncated.len() / 2],
    )
    .unwrap();

    let app = spawn_app(Some(dir.path())).await;
    let tracks = app.json("/api/tracks").await;
    let names: Vec<&str> = tracks
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["filename"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"good.wav") && names.contains(&"victim.flac"),
        "{names:?}"
    );
    assert!(
        !names.contains(&"garbage.mp3") && !names.contains(&"cover.jpg"),
        "{names:?}"
    );
    // A truncated file plays what it has: its duration is what decodes.
    if let Some(t) = tracks
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["filename"] == "truncated.flac")
    {
        let ms = t["duration_ms"].as_u64().unwrap();
        assert!(ms > 3000 && ms < 10_000, "truncated.flac lasts {ms} ms");
        let id = t["id"].as_str().unwrap();
        let r = app.get(&format!("/stream/{id}?quality=mobile")).await;
        assert_eq!(r.status(), 200);
    }

    // Break the file behind the server's back: nothing is encoded from a file that is not the
    // one scanned (a clean JSON error saying so), and the rescan this wakes drops it from the
    // catalogue (it no longer probes as audio).
    let victim = app.track_id("victim.flac").await;
    let playlist = app
        .get(&format!("/hls/{victim}/mobile/playlist.m3u8"))
        .await
        .text()
        .await
        .unwrap();
    let seg = crate::helpers::first_uri(&playlist).to_string();
    std::fs::write(dir.path().join("victim.flac"), vec![0u8; 50_000]).unwrap();
    let r = app.get(&format!("/stream/{victim}?quality=high")).await;
    assert_eq!(r.status(), 503);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["code"], "source_changed", "{v}");
    app.wait_for_track(&victim, |t| t.is_none()).await;
    let r = app.get(&format!("/hls/{victim}/mobile/{seg}")).await;
    assert_eq!(r.status(), 404);

    // Everyone else is still served.
    let good = app.track_id("good.wav").await;
    let r = app.get(&format!("/stream/{good}?quality=mobile")).await;
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.unwrap().len() > 10_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_and_bodies_get_json_errors() {
    let lib = library();
    let app = spawn_app(Some(&lib.root)).await;
    for path in ["/nope", "/api/tracks/doesnotexist", "/stream/missing.flac"] {
        let r = app.get(path).await;
        assert_eq!(r.status(), 404, "{path}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert!(
            v["error"].is_string() && v["code"].is_string(),
            "{path}: {v}"
        );
    }
    let r = app
        .client
        .post(app.url("/api/streaming/session"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["code"], "invalid_body");
    let r = app
        .client
        .post(app.url("/api/streaming/session"))
        .json(&serde_json::json!({"track_id": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let r = app
        .client
        .post(app.url("/api/streaming/session"))
        .json(&serde_json::json!({"track_id": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // A route that exists, with a method it does not take: 405, what it takes, and JSON.
    for (method, path, allow) in [
        (reqwest::Method::DELETE, "/api/tracks", "GET,HEAD"),
        (reqwest::Method::POST, "/healthz", "GET,HEAD"),
        (reqwest::Method::PUT, "/api/streaming/session", "POST"),
    ] {
        let r = app
            .client
            .request(method.clone(), app.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 405, "{method} {path}");
        assert_eq!(r.headers()["allow"], allow, "{method} {path}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["code"], "method_not_allowed", "{method} {path}: {v}");
    }
}

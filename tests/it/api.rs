//! The catalogue API, metrics, and the command line.

use std::process::Command;

use crate::fixtures::{library, FIXTURES};
use crate::helpers::{run, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracks_carry_exact_facts_and_tags() {
    let lib = library();
    let app = spawn_app(Some(&lib.root)).await;
    let tracks = app.json("/api/tracks").await;
    let tracks = tracks.as_array().unwrap();
    assert_eq!(
        tracks.len(),
        FIXTURES.len(),
        "fixtures only; junk and the escaping link skipped: {tracks:?}"
    );
    for f in FIXTURES {
        let t = tracks.iter().find(|t| t["filename"] == f.name).unwrap();
        for key in [
            "id",
            "filename",
            "title",
            "duration_ms",
            "sample_rate",
            "channels",
            "codec",
        ] {
            assert!(!t[key].is_null(), "{}: {key}", f.name);
        }
        assert_eq!(t["sample_rate"], f.rate, "{}", f.name);
        assert_eq!(t["channels"], f.channels, "{}", f.name);
        // Duration: what ffmpeg decodes (MP3/AAC priming and padding trimmed, LAME tags and
        // Vorbis granules read), to the millisecond; for M4A the source's own length, which its
        // edit list gives (ffmpeg drops the priming the edit list names, but keeps the last
        // frame's padding).
        let reference_ms = if f.name.ends_with(".m4a") {
            f.secs * 1000.0
        } else {
            lib.reference_samples(f) as f64 * 1000.0 / f64::from(f.rate)
        };
        let ms = t["duration_ms"].as_f64().unwrap();
        assert!(
            (ms - reference_ms).abs() <= 1.0,
            "{}: {ms} ms, ffmpeg decodes {reference_ms} ms",
            f.name
        );
        let one = app
            .json(&format!("/api/tracks/{}", t["id"].as_str().unwrap()))
            .await;
        assert_eq!(&one, t);
    }
    let tagged = tracks
        .iter()
        .find(|t| t["filename"] == "mp3/tagged.mp3")
        .unwrap();
    assert_eq!(tagged["title"], "Tagged Song");
    assert_eq!(tagged["artist"], "Test Artist");
    assert_eq!(tagged["album"], "Fixtures");
    assert_eq!(tagged["genre"], "electronic");
    let untagged = tracks
        .iter()
        .find(|t| t["filename"] == "wav/low8k.wav")
        .unwrap();
    assert_eq!(
        untagged["title"], "low8k",
        "title falls back to the file name"
    );

    // Ids are stable across restarts (and data directories).
    let again = spawn_app(Some(&lib.root)).await;
    assert_eq!(
        again.track_id("wav/low8k.wav").await,
        app.track_id("wav/low8k.wav").await
    );

    // Search.
    let found = app.json("/api/tracks?q=test%20artist").await;
    assert_eq!(found.as_array().unwrap().len(), 1);
    let page = app.json("/api/tracks?offset=2&limit=3").await;
    assert_eq!(page.as_array().unwrap().len(), 3);
    assert_eq!(app.get("/api/tracks?limit=minus").await.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_report_requests_transcodes_and_cache() {
    let lib = library();
    let app = spawn_app(Some(&lib.root)).await;
    let id = app.track_id("wav/float22k.wav").await;
    let _ = app
        .get(&format!("/stream/{id}?quality=mobile"))
        .await
        .bytes()
        .await
        .unwrap();
    let _ = app
        .get(&format!("/stream/{id}?quality=mobile"))
        .await
        .bytes()
        .await
        .unwrap();
    // A first download streams while the encode runs and may end just before the encode
    // records its end: wait for it (bounded).
    let mut text = String::new();
    for _ in 0..50 {
        text = app.get("/metrics").await.text().await.unwrap();
        if text.contains("transcodes_finished_total") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for name in [
        "http_requests_total{",
        "route=\"/stream/{*filename}\"",
        "http_request_duration_seconds_bucket",
        "transcodes_started_total",
        "transcodes_finished_total",
        "transcode_duration_seconds",
        "cache_hits_total",
        "cache_misses_total",
        "cache_bytes",
        "library_tracks",
    ] {
        assert!(text.contains(name), "missing {name} in\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_library_plays() {
    let app = spawn_app(None).await;
    let tracks = app.json("/api/tracks").await;
    let tracks = tracks.as_array().unwrap();
    assert!(tracks.len() >= 4);
    assert!(tracks
        .iter()
        .all(|t| t["artist"].is_string() && t["genre"].is_string()));
    let id = tracks[0]["id"].as_str().unwrap();
    let master = app
        .get(&format!("/hls/{id}/master.m3u8"))
        .await
        .text()
        .await
        .unwrap();
    assert!(master.contains("mobile/playlist.m3u8"));
}

#[test]
fn cli_help_documents_every_flag() {
    let bin = env!("CARGO_BIN_EXE_stream-server");
    let out = run(Command::new(bin).arg("--help"));
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in ["serve", "scan", "transcode"] {
        assert!(text.contains(cmd), "{text}");
    }
    let out = run(Command::new(bin).args(["serve", "--help"]));
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--library",
        "--data-dir",
        "--bind",
        "--config",
        "--demo",
        "--cache-max-mb",
        "--cors-origins",
        "STREAM_SERVER_BIND",
    ] {
        assert!(text.contains(flag), "serve --help lacks {flag}:\n{text}");
    }
    let out = Command::new(bin)
        .args(["serve", "--bind", "nonsense"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn transcode_all_warms_the_cache() {
    let lib = library();
    let data = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_stream-server");
    let out = run(Command::new(bin)
        .args([
            "transcode",
            "--all",
            "--quality",
            "mobile",
            "--quality",
            "low",
            "--library",
        ])
        .arg(&lib.root)
        .arg("--data-dir")
        .arg(data.path()));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("{} tracks encoded, 0 failed", FIXTURES.len())),
        "{text}"
    );
    let encoded = walkdir(data.path().join("cache"));
    assert_eq!(
        encoded.iter().filter(|p| p.ends_with(".idx")).count(),
        FIXTURES.len() * 2,
        "{encoded:?}"
    );
    let out = run(Command::new(bin)
        .env_remove("RUST_LOG")
        .args(["scan", "--library"])
        .arg(&lib.root)
        .arg("--data-dir")
        .arg(data.path()));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("skipped") && text.contains("broken.mp3"),
        "{text}"
    );
    // Logs go to stderr, uncoloured when not a terminal: the listing stays clean to parse.
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(
        !text.contains(" WARN ") && !text.contains(" INFO "),
        "{text}"
    );
    assert!(
        !text.contains('\u{1b}') && !logs.contains('\u{1b}'),
        "{logs}"
    );
    assert!(
        logs.lines()
            .any(|l| l.contains("WARN") && l.contains("broken.mp3")),
        "{logs}"
    );
}

fn walkdir(dir: std::path::PathBuf) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.to_string_lossy().into_owned());
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_the_web_player_and_keeps_api_errors_json() {
    let lib = library();
    let web = tempfile::tempdir().unwrap();
    std::fs::write(
        web.path().join("index.html"),
        "<!doctype html><title>player</title>",
    )
    .unwrap();
    std::fs::create_dir(web.path().join("assets")).unwrap();
    std::fs::write(web.path().join("assets/app-1234.js"), "console.log(1)").unwrap();
    let web_dir = web.path().to_path_buf();
    let app =
        crate::helpers::spawn_app_with(Some(&lib.root), move |c| c.web_dir = Some(web_dir)).await;
    for path in ["/", "/library/some/client/route"] {
        let r = app.get(path).await;
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()["cache-control"], "no-cache");
        // The page asks for the network hints `/stream` chooses from.
        assert_eq!(r.headers()["accept-ch"], "Downlink, ECT, Save-Data");
        assert!(r.text().await.unwrap().contains("<title>player</title>"));
    }
    let r = app.get("/assets/app-1234.js").await;
    assert!(r.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("immutable"));
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .contains("javascript"));
    for path in ["/api/nope", "/hls/x/y/z/w", "/stream/"] {
        let r = app.get(path).await;
        assert_eq!(r.status(), 404, "{path}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert!(v["code"].is_string(), "{path}");
    }
}

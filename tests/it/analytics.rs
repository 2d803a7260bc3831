//! The analytics engine against real SQLite files and a real PostgreSQL.

use std::sync::Arc;
use std::time::Duration;

use sqlx::Row;
use stream_server::analytics::{AnalyticsEngine, IpPolicy, Platform, QoeGrouping, SocialKind};
use stream_server::config::Config;
use stream_server::streaming::adaptive::PerformanceMetrics;

/// A fresh PostgreSQL database on the machine's server. Under `CI=true` an unreachable server
/// fails the test; elsewhere too, with instructions.
pub async fn postgres_url() -> String {
    let admin = std::env::var("STREAM_SERVER_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let name = format!("analytics_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL is needed at {admin} (set STREAM_SERVER_TEST_POSTGRES; .ci/run starts it): {e}"));
    sqlx::Executor::execute(&mut conn, format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap();
    let base = admin
        .rsplit_once('/')
        .map_or(admin.as_str(), |(b, _)| b)
        .to_string();
    format!("{base}/{name}")
}

async fn sqlite_engine(dir: &tempfile::TempDir) -> AnalyticsEngine {
    let url = format!("sqlite:{}", dir.path().join("analytics.db").display());
    AnalyticsEngine::new(&url, Arc::new(Config::default()))
        .await
        .unwrap()
}

/// The spec's "Intégration avec analytics" flow (the analytics half; the WebSocket half is the
/// hub's): a 3-minute play reported every 15 s, then ended.
async fn spec_flow(analytics: &AnalyticsEngine) -> uuid::Uuid {
    let session_id = analytics
        .start_play_session(
            Some("user_123".to_string()),
            "epic_track_001".to_string(),
            "192.168.1.100".to_string(),
            Some("WebSocket Client/1.0".to_string()),
            180_000, // 3 minutes
            "high".to_string(),
            Platform::Web,
            Some("https://musicapp.com".to_string()),
        )
        .await;
    for position in (0..=180_000).step_by(15_000) {
        analytics
            .update_play_progress(
                session_id,
                position,
                Some(90.0 + (position as f32 / 180_000.0) * 10.0),
            )
            .await;
    }
    analytics.end_play_session(session_id, None).await;
    session_id
}

async fn check_spec_flow(analytics: &AnalyticsEngine, id: uuid::Uuid) {
    analytics.flush().await.unwrap();
    let row = sqlx::query("SELECT user_id, track_id, ip, platform, played_ms, max_position_ms, ended_at, buffer_health_samples, initial_quality FROM play_sessions WHERE id = $1")
        .bind(id.to_string())
        .fetch_one(analytics.pool())
        .await
        .unwrap();
    assert_eq!(row.get::<Option<String>, _>(0).as_deref(), Some("user_123"));
    assert_eq!(row.get::<String, _>(1), "epic_track_001");
    assert_eq!(
        row.get::<Option<String>, _>(2).as_deref(),
        Some("192.168.1.0/24"),
        "IP truncated by default"
    );
    assert_eq!(row.get::<String, _>(3), "web");
    assert_eq!(row.get::<i64, _>(4), 180_000, "listening time");
    assert_eq!(row.get::<i64, _>(5), 180_000);
    assert!(row.get::<Option<i64>, _>(6).is_some(), "ended");
    assert_eq!(row.get::<i64, _>(7), 13);
    assert_eq!(row.get::<String, _>(8), "high");
    let progress: i64 = sqlx::query("SELECT COUNT(*) FROM progress_events WHERE session_id = $1")
        .bind(id.to_string())
        .fetch_one(analytics.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(progress, 13);
    let qoe = analytics.qoe_sessions(0, 10).await.unwrap();
    let s = qoe.iter().find(|s| s.session_id == id.to_string()).unwrap();
    assert_eq!(s.avg_bitrate_kbps, Some(320.0));
    assert!((s.avg_buffer_health.unwrap() - 95.0).abs() < 0.01);
    let c = analytics.completion(0).await.unwrap();
    assert_eq!((c.sessions, c.completed, c.skipped), (1, 1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spec_example_writes_real_rows_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let analytics = sqlite_engine(&dir).await;
    let id = spec_flow(&analytics).await;
    check_spec_flow(&analytics, id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spec_example_writes_real_rows_postgres() {
    let url = postgres_url().await;
    let analytics = AnalyticsEngine::new(&url, Arc::new(Config::default()))
        .await
        .unwrap();
    assert_eq!(
        analytics.backend(),
        stream_server::analytics::Backend::Postgres
    );
    let id = spec_flow(&analytics).await;
    check_spec_flow(&analytics, id).await;
}

/// A seeded data set whose reports have known answers.
async fn seed(a: &AnalyticsEngine) {
    // track A: 3 plays (alice completes twice, bob skips); track B: 2 plays (carol listens half,
    // dave stalls); track C: 1 anonymous play still going.
    let play = |user: Option<&str>,
                track: &str,
                platform: Platform,
                quality: &str,
                positions: &[u64],
                end: bool| {
        let user = user.map(str::to_string);
        let track = track.to_string();
        let quality = quality.to_string();
        let positions = positions.to_vec();
        async move {
            let id = a
                .start_play_session(
                    user,
                    track,
                    "10.0.0.7".into(),
                    None,
                    100_000,
                    quality,
                    platform,
                    None,
                )
                .await;
            for p in positions {
                a.update_play_progress(id, p, Some(80.0)).await;
            }
            if end {
                a.end_play_session(id, None).await;
            }
            id
        }
    };
    play(
        Some("alice"),
        "A",
        Platform::Web,
        "high",
        &[
            10_000, 20_000, 30_000, 40_000, 50_000, 60_000, 70_000, 80_000, 90_000, 100_000,
        ],
        true,
    )
    .await;
    play(
        Some("alice"),
        "A",
        Platform::Ios,
        "medium",
        &[25_000, 50_000, 75_000, 95_000],
        true,
    )
    .await;
    play(
        Some("bob"),
        "A",
        Platform::Android,
        "mobile",
        &[5_000, 10_000],
        true,
    )
    .await;
    play(
        Some("carol"),
        "B",
        Platform::Web,
        "high",
        &[20_000, 40_000, 50_000],
        true,
    )
    .await;
    let dave = play(
        Some("dave"),
        "B",
        Platform::Android,
        "medium",
        &[10_000, 20_000],
        false,
    )
    .await;
    a.record_rebuffer(dave, 2_000).await;
    a.record_quality_switch(dave, "medium", "mobile", Some("buffer".into()))
        .await;
    a.update_play_progress(dave, 30_000, Some(20.0)).await;
    a.end_play_session(dave, Some(30_000)).await;
    play(None, "C", Platform::Car, "mobile", &[10_000], false).await;
    a.record_social(SocialKind::Like, "alice", "track", "A", None)
        .await;
    a.record_social(SocialKind::Follow, "bob", "user", "alice", None)
        .await;
    a.record_playlist_edit("pl1", Some("alice"), "added", Some("A"), Some(0))
        .await;
    a.flush().await.unwrap();
}

async fn check_reports(a: &AnalyticsEngine) {
    let top = a.top_tracks(0, 10).await.unwrap();
    // The same answers through the partial-day path (a window inside today is read from the
    // sessions, not the roll-ups) and after rebuilding the roll-ups from scratch.
    let hour_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 3_600_000;
    assert_eq!(a.top_tracks(hour_ago, 10).await.unwrap(), top);
    let qoe_all = a.qoe_summary(0, QoeGrouping::Platform).await.unwrap();
    assert_eq!(
        a.qoe_summary(hour_ago, QoeGrouping::Platform)
            .await
            .unwrap(),
        qoe_all
    );
    a.rebuild_rollups().await.unwrap();
    assert_eq!(a.top_tracks(0, 10).await.unwrap(), top);
    assert_eq!(
        a.qoe_summary(0, QoeGrouping::Platform).await.unwrap(),
        qoe_all
    );
    let summary: Vec<(&str, i64, i64, i64)> = top
        .iter()
        .map(|t| (t.track_id.as_str(), t.plays, t.listeners, t.listening_ms))
        .collect();
    assert_eq!(
        summary,
        [
            ("A", 3, 2, 100_000 + 95_000 + 10_000),
            ("B", 2, 2, 50_000 + 30_000),
            ("C", 1, 0, 10_000)
        ]
    );

    let users = a.user_plays(0, 10).await.unwrap();
    let u: Vec<(&str, i64, i64)> = users
        .iter()
        .map(|u| (u.user_id.as_str(), u.plays, u.listening_ms))
        .collect();
    assert_eq!(
        u,
        [
            ("alice", 2, 195_000),
            ("carol", 1, 50_000),
            ("dave", 1, 30_000),
            ("bob", 1, 10_000)
        ]
    );

    // Ended: 5 sessions; completed (>= 90 s of 100 s): alice x2; skipped (< 30 s heard): bob.
    let c = a.completion(0).await.unwrap();
    assert_eq!((c.sessions, c.completed, c.skipped), (5, 2, 1));
    assert!((c.completion_rate - 0.4).abs() < 1e-9 && (c.skip_rate - 0.2).abs() < 1e-9);

    let q = a.quality(0).await.unwrap();
    assert_eq!(q.sessions_by_initial_quality.get("high"), Some(&2));
    assert_eq!(q.sessions_by_initial_quality.get("medium"), Some(&2));
    assert_eq!(q.sessions_by_initial_quality.get("mobile"), Some(&2));
    assert_eq!(q.sessions_by_current_quality.get("mobile"), Some(&3));
    assert_eq!(q.total_switches, 1);
    assert_eq!(
        (q.switches[0].from.as_str(), q.switches[0].to.as_str()),
        ("medium", "mobile")
    );

    let by_platform = a.qoe_summary(0, QoeGrouping::Platform).await.unwrap();
    let android = by_platform.iter().find(|g| g.group == "android").unwrap();
    assert_eq!(android.sessions, 2);
    // Android: bob 10 s at 96 kbps; dave 20 s at 192 then 10 s at 96 kbps; 2 s stalled.
    assert_eq!(android.played_ms, 40_000);
    assert!((android.rebuffer_ratio - 2_000.0 / 42_000.0).abs() < 1e-9);
    let expected_kbps = (10_000.0 * 96.0 + 20_000.0 * 192.0 + 10_000.0 * 96.0) / 40_000.0;
    assert!(
        (android.avg_bitrate_kbps.unwrap() - expected_kbps).abs() < 1e-6,
        "{android:?}"
    );
    assert!((android.switches_per_minute - 1.5).abs() < 1e-9);
    let all = a.qoe_summary(0, QoeGrouping::All).await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].sessions, 6);

    // The one open session (C) is listening now; nobody was before the data set.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let conc = a
        .concurrency(now - 3_600_000, now + 60_000, 60_000)
        .await
        .unwrap();
    assert_eq!(conc.first().unwrap().listeners, 0);
    assert!(conc.iter().any(|p| p.listeners >= 1));

    // Export and delete by user.
    let export = a.export_user("alice").await.unwrap();
    assert_eq!(export["play_sessions"].as_array().unwrap().len(), 2);
    assert_eq!(export["social"].as_array().unwrap().len(), 1);
    assert_eq!(export["playlist_edits"].as_array().unwrap().len(), 1);
    assert_eq!(export["play_sessions"][0]["ip"], "10.0.0.0/24");
    assert_eq!(a.delete_user("alice").await.unwrap(), 2);
    let export = a.export_user("alice").await.unwrap();
    assert!(export["play_sessions"].as_array().unwrap().is_empty());
    let follows: i64 = sqlx::query("SELECT COUNT(*) FROM social_events WHERE target_id = 'alice'")
        .fetch_one(a.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(follows, 0);
    assert_eq!(
        a.top_tracks(0, 10).await.unwrap()[0].plays,
        2,
        "track B and A now tie at 2 plays"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_on_a_known_data_set_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let a = sqlite_engine(&dir).await;
    seed(&a).await;
    check_reports(&a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_on_a_known_data_set_postgres() {
    let a = AnalyticsEngine::new(&postgres_url().await, Arc::new(Config::default()))
        .await
        .unwrap();
    seed(&a).await;
    check_reports(&a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_lose_nothing_and_shutdown_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let a = Arc::new(sqlite_engine(&dir).await);
    let mut tasks = Vec::new();
    for w in 0..8 {
        let a = a.clone();
        tasks.push(tokio::spawn(async move {
            for s in 0..50 {
                let id = a
                    .start_play_session(
                        Some(format!("u{w}")),
                        format!("t{s}"),
                        "::1".into(),
                        None,
                        60_000,
                        "medium".into(),
                        Platform::Desktop,
                        None,
                    )
                    .await;
                for p in 1..=20u64 {
                    a.update_play_progress(id, p * 1_000, None).await;
                }
                a.end_play_session(id, None).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    a.shutdown().await;
    drop(a);
    // Reopen: everything accepted before shutdown is there.
    let a = sqlite_engine(&dir).await;
    let n: i64 = sqlx::query("SELECT COUNT(*) FROM play_sessions WHERE ended_at IS NOT NULL")
        .fetch_one(a.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 400);
    let p: i64 = sqlx::query("SELECT COUNT(*) FROM progress_events")
        .fetch_one(a.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(p, 8000);
    let played: i64 = sqlx::query("SELECT CAST(SUM(played_ms) AS BIGINT) FROM play_sessions")
        .fetch_one(a.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(played, 400 * 20_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn privacy_policies_and_retention() {
    let dir = tempfile::tempdir().unwrap();
    let a = sqlite_engine(&dir)
        .await
        .with_ip_policy(IpPolicy::Hash(b"secret".to_vec()));
    let extras = stream_server::analytics::SessionExtras {
        session_id: None,
        connection_type: Some("Cellular3G".into()),
    };
    let id = a
        .start_play_session_with(
            Some("x".into()),
            "t".into(),
            "203.0.113.9".into(),
            None,
            1000,
            "low".into(),
            Platform::Unknown,
            None,
            extras,
        )
        .await;
    a.record_performance(
        id,
        &PerformanceMetrics {
            buffer_health_percentage: 50.0,
            download_speed_kbps: 300,
            rebuffer_count: 2,
            rebuffer_duration_ms: 900,
            ..Default::default()
        },
    )
    .await;
    a.record_performance(
        id,
        &PerformanceMetrics {
            buffer_health_percentage: 70.0,
            download_speed_kbps: 320,
            rebuffer_count: 3,
            rebuffer_duration_ms: 1200,
            ..Default::default()
        },
    )
    .await;
    a.flush().await.unwrap();
    let row =
        sqlx::query("SELECT ip, rebuffer_count, rebuffer_ms, connection_type FROM play_sessions")
            .fetch_one(a.pool())
            .await
            .unwrap();
    let ip: String = row.get(0);
    assert!(!ip.contains("203.0.113"), "{ip}");
    assert_eq!(
        (row.get::<i64, _>(1), row.get::<i64, _>(2)),
        (3, 1200),
        "cumulative counters are not double counted"
    );
    assert_eq!(
        row.get::<Option<String>, _>(3).as_deref(),
        Some("Cellular3G")
    );
    // Retention: nothing is older than an hour; everything is older than zero seconds.
    assert_eq!(a.prune(Duration::from_secs(3600)).await.unwrap(), 0);
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(a.prune(Duration::ZERO).await.unwrap(), 1);
    let n: i64 = sqlx::query("SELECT COUNT(*) FROM performance_reports")
        .fetch_one(a.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
}

#[test]
fn bad_urls_are_refused() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let err = rt
        .block_on(AnalyticsEngine::new(
            "mysql://x",
            Arc::new(Config::default()),
        ))
        .err()
        .unwrap();
    assert!(err.to_string().contains("sqlite:"), "{err}");
}

/// Run as a child process by `hard_kill_loses_at_most_the_last_batch`: writes until killed,
/// printing how many progress events are known committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "child process of hard_kill_loses_at_most_the_last_batch"]
async fn hard_kill_child() {
    let Ok(path) = std::env::var("ANALYTICS_CHILD_DB") else {
        return;
    };
    let a = AnalyticsEngine::new(&format!("sqlite:{path}"), Arc::new(Config::default()))
        .await
        .unwrap();
    let id = a
        .start_play_session(
            None,
            "t".into(),
            "::1".into(),
            None,
            1 << 40,
            "high".into(),
            Platform::Web,
            None,
        )
        .await;
    let mut n: u64 = 0;
    loop {
        for _ in 0..500 {
            n += 1;
            a.update_play_progress(id, n * 10, Some(50.0)).await;
        }
        a.flush().await.unwrap();
        println!("COMMITTED {n}");
    }
}

#[test]
fn hard_kill_loses_at_most_the_last_batch() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kill.db");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "analytics::hard_kill_child",
            "--include-ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("ANALYTICS_CHILD_DB", &db)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut committed = 0u64;
    for line in stdout.lines() {
        let line = line.unwrap();
        if let Some(n) = line.strip_prefix("COMMITTED ") {
            committed = n.parse().unwrap();
            if committed >= 20_000 {
                break;
            }
        }
    }
    // SIGKILL mid-write: no destructor, no flush.
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(committed >= 20_000, "child committed only {committed}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let a = AnalyticsEngine::new(
            &format!("sqlite:{}", db.display()),
            Arc::new(Config::default()),
        )
        .await
        .unwrap();
        let ok: String = sqlx::query("PRAGMA integrity_check")
            .fetch_one(a.pool())
            .await
            .unwrap()
            .get(0);
        assert_eq!(ok, "ok");
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM progress_events")
            .fetch_one(a.pool())
            .await
            .unwrap()
            .get(0);
        // Everything reported committed survived; what came after is at most one batch.
        assert!(
            n as u64 >= committed,
            "{n} rows, {committed} reported committed"
        );
        assert!(
            (n as u64) < committed + 20_000,
            "{n} rows, {committed} committed"
        );
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_sessions_feed_the_reports_over_http() {
    let lib = crate::fixtures::library();
    let app = crate::helpers::spawn_app(Some(&lib.root)).await;
    let id = app.track_id("flac/stereo44.flac").await;
    let created: serde_json::Value = app
        .client
        .post(app.url("/api/streaming/session"))
        .header("User-Agent", "Mozilla/5.0 (Linux; Android 14) Mobile")
        .json(&serde_json::json!({"track_id": id, "user_id": "erin", "client_capabilities": {"estimated_bandwidth_kbps": 150, "buffer_duration_ms": 5000, "connection_type": "Cellular3G", "device_type": "Mobile", "adaptive_enabled": true}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sid = created["session_id"].as_str().unwrap().to_string();
    assert_eq!(created["initial_profile"]["quality_id"], "mobile");
    let report = |body: serde_json::Value| {
        let app = &app;
        let sid = sid.clone();
        async move {
            let r = app
                .client
                .post(app.url(&format!("/api/streaming/session/{sid}/metrics")))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.json::<serde_json::Value>().await.unwrap()
        }
    };
    report(serde_json::json!({"buffer_health_percentage": 60.0, "download_speed_kbps": 180, "position_ms": 5000, "startup_ms": 850})).await;
    let r = report(serde_json::json!({"buffer_health_percentage": 80.0, "download_speed_kbps": 400, "position_ms": 12000, "current_quality": "medium", "quality_switches": 1, "rebuffer_count": 1, "rebuffer_duration_ms": 700})).await;
    assert_eq!(
        r["current_quality"], "medium",
        "the player's own switch is taken into account"
    );
    let r = app
        .client
        .delete(app.url(&format!("/api/streaming/session/{sid}?position_ms=13300")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        app.client
            .delete(app.url(&format!("/api/streaming/session/{sid}")))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    app.state.analytics.flush().await.unwrap();

    let top = app.json("/api/analytics/top-tracks?window_secs=3600").await;
    assert_eq!(top["tracks"][0]["track_id"], id.as_str());
    assert_eq!(top["tracks"][0]["title"], "stereo44");
    assert_eq!(top["tracks"][0]["listening_ms"], 13_300);
    // A window reaching before 1970 starts then, and still finds the play.
    let all = app
        .json("/api/analytics/top-tracks?window_secs=99999999999999")
        .await;
    assert_eq!(all["since"], 0);
    assert_eq!(all["tracks"][0]["listening_ms"], 13_300);
    let sessions = app.json("/api/analytics/qoe/sessions").await;
    let s = &sessions["sessions"][0];
    assert_eq!(s["session_id"], sid.as_str());
    assert_eq!(s["platform"], "android");
    assert_eq!(s["connection_type"], "Cellular3G");
    assert_eq!(s["startup_ms"], 850);
    assert_eq!(s["rebuffer_count"], 1);
    // 5 s at 96 kbps, then 7 s at 96 (switch reported at 12 s), then 1.3 s at 192 kbps.
    let kbps = s["avg_bitrate_kbps"].as_f64().unwrap();
    assert!(
        (kbps - (12_000.0 * 96.0 + 1_300.0 * 192.0) / 13_300.0).abs() < 0.01,
        "{kbps}"
    );
    let by_conn = app.json("/api/analytics/qoe?group_by=connection").await;
    assert_eq!(by_conn["groups"][0]["group"], "Cellular3G");
    let q = app.json("/api/analytics/quality").await;
    assert_eq!(q["quality"]["total_switches"], 1);
    let c = app.json("/api/analytics/completion").await;
    assert_eq!(c["completion"]["sessions"], 1);
    let conc = app
        .json("/api/analytics/concurrency?window_secs=600&step_secs=60")
        .await;
    assert_eq!(conc["points"].as_array().unwrap().len(), 11);
    assert_eq!(
        app.get("/api/analytics/qoe?group_by=moon").await.status(),
        400
    );
    let users = app.json("/api/analytics/users").await;
    assert_eq!(users["users"][0]["user_id"], "erin");
    let export = app.json("/api/analytics/users/erin/export").await;
    assert_eq!(export["play_sessions"][0]["ip"], "127.0.0.0/24");
    let r = app
        .client
        .delete(app.url("/api/analytics/users/erin"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["sessions_deleted"],
        1
    );
}

/// One report with counters no session could reach (QA: 4,294,967,295 stalls, switches and
/// stall milliseconds in a session of a fraction of a second, a position far past the track)
/// is cut to what the session could have lived, so it cannot skew the QoE of everyone else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impossible_reports_are_cut_to_what_the_session_could_have_lived() {
    let dir = tempfile::tempdir().unwrap();
    let a = sqlite_engine(&dir).await;
    let id = a
        .start_play_session(
            Some("evil".into()),
            "t".into(),
            "::1".into(),
            None,
            3000,
            "high".into(),
            Platform::Web,
            None,
        )
        .await;
    a.record_startup(id, u64::from(u32::MAX)).await;
    let huge = PerformanceMetrics {
        rebuffer_count: u32::MAX,
        rebuffer_duration_ms: u32::MAX,
        quality_switches: u32::MAX,
        ..PerformanceMetrics::default()
    };
    a.record_performance(id, &huge).await;
    a.update_play_progress(id, 1_000_000_000, None).await;
    a.end_play_session(id, Some(u64::MAX)).await;
    a.flush().await.unwrap();
    let row = sqlx::query(
        "SELECT startup_ms, rebuffer_count, rebuffer_ms, quality_switches, max_position_ms \
         FROM play_sessions WHERE id = $1",
    )
    .bind(id.to_string())
    .fetch_one(a.pool())
    .await
    .unwrap();
    // The session lived well under a minute here: ten seconds of clock slack, one stall or
    // switch per second of that.
    let startup: i64 = row.get(0);
    let (stalls, stalled_ms, switches): (i64, i64, i64) = (row.get(1), row.get(2), row.get(3));
    assert!((0..=60_000).contains(&startup), "start-up {startup}");
    assert!((1..=60).contains(&stalls), "stalls {stalls}");
    assert!(
        (0..=60_000).contains(&stalled_ms),
        "stalled {stalled_ms} ms"
    );
    assert!((1..=60).contains(&switches), "switches {switches}");
    assert_eq!(
        row.get::<i64, _>(4),
        3000,
        "the position stays within the track"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_client_values_cannot_poison_a_batch_postgres() {
    let a = AnalyticsEngine::new(&postgres_url().await, Arc::new(Config::default()))
        .await
        .unwrap();
    // PostgreSQL refuses NUL in text, and a huge start-up would overflow the roll-up sums.
    let bad = a
        .start_play_session(
            Some("a\0b".into()),
            "t\0".into(),
            "::1".into(),
            Some("x".repeat(10_000)),
            1000,
            "high".into(),
            Platform::Web,
            None,
        )
        .await;
    a.record_startup(bad, u64::MAX).await;
    a.update_play_progress(bad, u64::MAX, None).await;
    let good = a
        .start_play_session(
            Some("ok".into()),
            "t".into(),
            "::1".into(),
            None,
            1000,
            "high".into(),
            Platform::Web,
            None,
        )
        .await;
    a.update_play_progress(good, 500, None).await;
    a.flush().await.unwrap();
    let n: i64 = sqlx::query("SELECT COUNT(*) FROM play_sessions")
        .fetch_one(a.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2, "both sessions stored, the hostile one cleaned");
    assert!(a.completion(0).await.is_ok());
    assert_eq!(
        a.qoe_summary(0, QoeGrouping::All).await.unwrap()[0].sessions,
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_user_data_is_not_reachable_from_a_browser_or_a_proxy() {
    let lib = crate::fixtures::library();
    let app = crate::helpers::spawn_app(Some(&lib.root)).await;
    for (h, v) in [
        ("Origin", "https://evil.example"),
        ("X-Forwarded-For", "203.0.113.5"),
        ("Forwarded", "for=203.0.113.5"),
    ] {
        let requests = [
            app.client.delete(app.url("/api/analytics/users/erin")),
            app.client.get(app.url("/api/analytics/users/erin/export")),
            app.client.get(app.url("/api/analytics/users")),
            app.client.get(app.url("/api/analytics/qoe/sessions")),
        ];
        for req in requests {
            let r = req.header(h, v).send().await.unwrap();
            assert_eq!(r.status(), 403, "{h}: {}", r.url());
        }
    }
    assert_eq!(app.get("/api/analytics/users").await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_listener_stays_erased_while_still_reporting() {
    let dir = tempfile::tempdir().unwrap();
    let a = sqlite_engine(&dir).await;
    let id = a
        .start_play_session(
            Some("gone".into()),
            "t".into(),
            "::1".into(),
            None,
            100_000,
            "high".into(),
            Platform::Web,
            None,
        )
        .await;
    a.update_play_progress(id, 5_000, None).await;
    assert_eq!(a.delete_user("gone").await.unwrap(), 1);
    // The player does not know and goes on reporting.
    a.update_play_progress(id, 10_000, None).await;
    a.record_rebuffer(id, 300).await;
    a.end_play_session(id, Some(12_000)).await;
    a.flush().await.unwrap();
    for table in [
        "play_sessions",
        "progress_events",
        "rebuffer_events",
        "track_daily",
        "track_totals",
        "qoe_daily",
    ] {
        let n: i64 = sqlx::query(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(a.pool())
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 0, "{table}");
    }
    assert!(a.top_tracks(0, 10).await.unwrap().is_empty());
}

async fn play(a: &AnalyticsEngine, user: &str) -> uuid::Uuid {
    play_of(a, user, 200_000).await
}

async fn play_of(a: &AnalyticsEngine, user: &str, track_ms: u64) -> uuid::Uuid {
    a.start_play_session(
        Some(user.into()),
        "t".into(),
        "::1".into(),
        None,
        track_ms,
        "high".into(),
        Platform::Web,
        None,
    )
    .await
}

async fn played_and_ended(a: &AnalyticsEngine, id: uuid::Uuid) -> (i64, Option<i64>, i64) {
    a.flush().await.unwrap();
    let row =
        sqlx::query("SELECT played_ms, ended_at, updated_at FROM play_sessions WHERE id = $1")
            .bind(id.to_string())
            .fetch_one(a.pool())
            .await
            .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

#[tokio::test]
async fn a_pause_stops_the_listening_clock_and_an_ended_play_takes_no_more() {
    let dir = tempfile::tempdir().unwrap();
    let a = sqlite_engine(&dir).await;
    let id = play(&a, "u").await;
    a.update_play_progress(id, 10_000, None).await;
    a.pause_play_session(id, 12_000).await;
    // A seek made while paused (within the 30 s a progress report may move): moved to, not
    // listened to.
    a.update_play_progress(id, 30_000, None).await;
    a.resume_play_session(id).await;
    a.update_play_progress(id, 40_000, None).await;
    a.end_play_session(id, Some(45_000)).await;
    // A player still reporting after its end (a late report, a stale tab).
    a.update_play_progress(id, 70_000, None).await;
    a.pause_play_session(id, 75_000).await;
    let (played, ended, _) = played_and_ended(&a, id).await;
    assert_eq!(played, 12_000 + 10_000 + 5_000);
    assert!(ended.is_some());
    let top = a.top_tracks(0, 10).await.unwrap();
    assert_eq!(top[0].listening_ms, 27_000);
    let pos: i64 = sqlx::query("SELECT position_ms FROM play_sessions WHERE id = $1")
        .bind(id.to_string())
        .fetch_one(a.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(pos, 45_000, "the end's position stays");
}

#[tokio::test]
async fn silent_plays_are_ended_at_their_last_report_and_stay_ended() {
    let dir = tempfile::tempdir().unwrap();
    let a = sqlite_engine(&dir).await;
    // A one-second track: silent for the cut-off past its end below.
    let silent = play_of(&a, "gone", 1_000).await;
    a.update_play_progress(silent, 800, None).await;
    // A long mix started at the same moment may still be playing without a report.
    let mix = play_of(&a, "mix", 3_600_000).await;
    let (_, _, last_report) = played_and_ended(&a, silent).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Reported after the cut-off: still open. Ended already: untouched.
    let ended = play_of(&a, "done", 1_000).await;
    a.end_play_session(ended, Some(1_000)).await;
    let (_, ended_at, _) = played_and_ended(&a, ended).await;
    let live = play_of(&a, "here", 1_000).await;
    a.update_play_progress(live, 300, None).await;
    a.flush().await.unwrap();
    let cut = Duration::from_millis(1500);
    // Nothing silent for an hour.
    assert_eq!(
        a.end_silent_plays(Duration::from_secs(3600)).await.unwrap(),
        0
    );
    assert_eq!(a.end_silent_plays(cut).await.unwrap(), 1);
    let (played, end, _) = played_and_ended(&a, silent).await;
    assert_eq!(end, Some(last_report), "ended at its last report");
    assert_eq!(played, 800);
    assert_eq!(played_and_ended(&a, ended).await.1, ended_at);
    assert_eq!(played_and_ended(&a, live).await.1, None);
    assert_eq!(played_and_ended(&a, mix).await.1, None);
    // It comes back (a tab woken after hours): nothing more is credited to the ended play.
    a.update_play_progress(silent, 1_000, None).await;
    assert_eq!(played_and_ended(&a, silent).await.0, 800);
    assert_eq!(a.end_silent_plays(cut).await.unwrap(), 0, "ended once");
}

//! Analytics benchmarks (run with `cargo bench --bench analytics`; results in
//! docs/benchmarks.md):
//! 1. sustained ingest of progress updates into SQLite through the batched writer, against
//!    row-at-a-time writes (one autocommitted INSERT + UPDATE per update) in the same run;
//! 2. the top-tracks and QoE reports over 1,000,000 sessions (median of 15 runs).

use std::sync::Arc;
use std::time::Instant;

use sqlx::Row;
use stream_server::analytics::{AnalyticsEngine, Platform, QoeGrouping};
use stream_server::config::Config;

const SESSIONS: usize = 1_000;
const UPDATES: u64 = 400_000;
const ROW_AT_A_TIME: u64 = 10_000;
const REPORT_SESSIONS: usize = 1_000_000;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let config = Arc::new(Config::default());

    // 1. Batched ingest.
    let url = format!("sqlite:{}", dir.path().join("ingest.db").display());
    let engine = Arc::new(AnalyticsEngine::new(&url, config.clone()).await.unwrap());
    let mut ids = Vec::new();
    for i in 0..SESSIONS {
        ids.push(
            engine
                .start_play_session(
                    Some(format!("u{}", i % 97)),
                    format!("t{}", i % 300),
                    "10.1.2.3".into(),
                    None,
                    240_000,
                    "medium".into(),
                    Platform::Web,
                    None,
                )
                .await,
        );
    }
    engine.flush().await.unwrap();
    let ids = Arc::new(ids);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..4u64 {
        let (engine, ids) = (engine.clone(), ids.clone());
        tasks.push(tokio::spawn(async move {
            for n in 0..UPDATES / 4 {
                let id = ids[((n * 4 + w) as usize) % ids.len()];
                engine
                    .update_play_progress(id, (n / 250) * 1000, Some(75.0))
                    .await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    engine.flush().await.unwrap();
    let batched = UPDATES as f64 / started.elapsed().as_secs_f64();
    engine.shutdown().await;

    // Row at a time: the same two statements per update, each committed on its own.
    let url = format!("sqlite:{}", dir.path().join("rows.db").display());
    let engine = AnalyticsEngine::new(&url, config.clone()).await.unwrap();
    let id = engine
        .start_play_session(
            None,
            "t".into(),
            "::1".into(),
            None,
            240_000,
            "medium".into(),
            Platform::Web,
            None,
        )
        .await;
    engine.flush().await.unwrap();
    let pool = engine.pool().clone();
    let started = Instant::now();
    for n in 0..ROW_AT_A_TIME {
        sqlx::query("INSERT INTO progress_events (session_id, at, position_ms, buffer_health) VALUES ($1, $2, $3, $4)")
            .bind(id.to_string())
            .bind(n as i64)
            .bind((n * 1000) as i64)
            .bind(75.0f64)
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query("UPDATE play_sessions SET position_ms = $1, updated_at = $2, played_ms = played_ms + 1000 WHERE id = $3")
            .bind((n * 1000) as i64)
            .bind(n as i64)
            .bind(id.to_string())
            .execute(&pool)
            .await
            .unwrap();
    }
    let single = ROW_AT_A_TIME as f64 / started.elapsed().as_secs_f64();
    println!("| writer | progress updates/s |\n|---|---|");
    println!("| batched writer ({UPDATES} updates over {SESSIONS} sessions, 4 producers) | {batched:.0} |");
    println!("| row at a time ({ROW_AT_A_TIME} updates, autocommit) | {single:.0} |");
    println!("ratio: {:.0}x\n", batched / single);

    if std::env::var("BENCH").as_deref() == Ok("ingest") {
        return;
    }

    // 2. Reports over a million sessions (bulk-loaded, as a year of a busy server would hold).
    let url = format!("sqlite:{}", dir.path().join("reports.db").display());
    let engine = AnalyticsEngine::new(&url, config).await.unwrap();
    let pool = engine.pool().clone();
    let platforms = ["web", "ios", "android", "desktop", "car"];
    let qualities = ["high", "medium", "mobile", "low"];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let load = Instant::now();
    let mut tx = pool.begin().await.unwrap();
    let mut i = 0;
    while i < REPORT_SESSIONS {
        let n = 200.min(REPORT_SESSIONS - i);
        let mut sql = String::from("INSERT INTO play_sessions (id, user_id, track_id, platform, initial_quality, current_quality, connection_type, track_duration_ms, started_at, updated_at, ended_at, played_ms, max_position_ms, startup_ms, rebuffer_ms, quality_switches, bitrate_kbps_ms) VALUES ");
        for r in 0..n {
            let k = i + r;
            let played = (k * 7919 % 240_000) as i64;
            let started = now - (k as i64 * 31_536_000_000 / REPORT_SESSIONS as i64);
            if r > 0 {
                sql.push(',');
            }
            sql.push_str(&format!(
                "('s{k}','u{}','t{}','{}','{}','{}','Wifi',240000,{started},{},{},{played},{played},{},{},{},{})",
                k % 5000,
                (k * 13) % 20_000,
                platforms[k % 5],
                qualities[k % 4],
                qualities[(k / 4) % 4],
                started + played,
                started + played,
                200 + k % 900,
                k % 3 * 500,
                k % 4,
                played as f64 * 192.0
            ));
        }
        sqlx::query(&sql).execute(&mut *tx).await.unwrap();
        i += n;
    }
    tx.commit().await.unwrap();
    let count: i64 = sqlx::query("SELECT COUNT(*) FROM play_sessions")
        .fetch_one(&pool)
        .await
        .unwrap()
        .get(0);
    println!(
        "loaded {count} sessions in {:.1} s",
        load.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    engine.rebuild_rollups().await.unwrap();
    let rollup_rows: i64 = sqlx::query("SELECT COUNT(*) FROM track_daily")
        .fetch_one(&pool)
        .await
        .unwrap()
        .get(0);
    println!(
        "roll-ups rebuilt in {:.1} s ({rollup_rows} track-day rows)\n",
        t.elapsed().as_secs_f64()
    );
    let month = now - 30 * 86_400_000;
    let mut reports: Vec<(&str, Vec<f64>)> = vec![
        ("top tracks, last 30 days", vec![]),
        ("top tracks, all time", vec![]),
        ("QoE by platform, last 30 days", vec![]),
        ("QoE by platform, all time", vec![]),
    ];
    for _ in 0..15 {
        let t = Instant::now();
        engine.top_tracks(month, 10).await.unwrap();
        reports[0].1.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        engine.top_tracks(0, 10).await.unwrap();
        reports[1].1.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        engine
            .qoe_summary(month, QoeGrouping::Platform)
            .await
            .unwrap();
        reports[2].1.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        engine.qoe_summary(0, QoeGrouping::Platform).await.unwrap();
        reports[3].1.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    println!("| report over {REPORT_SESSIONS} sessions | median ms |\n|---|---|");
    for (name, times) in reports {
        println!("| {name} | {:.1} |", median(times));
    }
}

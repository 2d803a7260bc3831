//! Reports over the analytics store. Each is one query (plus arithmetic in Rust where SQL
//! dialects differ); sums are cast to `BIGINT`/`DOUBLE PRECISION` because PostgreSQL widens
//! `SUM(bigint)` to `numeric`, which the portable driver cannot read.

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::{AnyPool, Row};

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TrackPlays {
    pub track_id: String,
    pub plays: i64,
    pub listeners: i64,
    pub listening_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct UserPlays {
    pub user_id: String,
    pub plays: i64,
    pub distinct_tracks: i64,
    pub listening_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Completion {
    /// Sessions that ended in the window.
    pub sessions: i64,
    /// Reached 90% of the track.
    pub completed: i64,
    /// Ended under 30 s of listening without completing.
    pub skipped: i64,
    pub completion_rate: f64,
    pub skip_rate: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ListenersAt {
    pub at: i64,
    pub listeners: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct QualityReport {
    /// Sessions by the profile they started on.
    pub sessions_by_initial_quality: BTreeMap<String, i64>,
    /// Listening time by the profile sessions are on now (or ended on).
    pub sessions_by_current_quality: BTreeMap<String, i64>,
    pub switches: Vec<QualitySwitchCount>,
    pub total_switches: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct QualitySwitchCount {
    pub from: String,
    pub to: String,
    pub count: i64,
}

/// Quality of experience of one session.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SessionQoe {
    pub session_id: String,
    pub track_id: String,
    pub user_id: Option<String>,
    pub platform: String,
    pub connection_type: Option<String>,
    pub started_at: i64,
    pub played_ms: i64,
    pub startup_ms: Option<i64>,
    pub rebuffer_count: i64,
    /// Stalled time over stalled + played time.
    pub rebuffer_ratio: f64,
    /// Time-weighted over what was played.
    pub avg_bitrate_kbps: Option<f64>,
    pub switches_per_minute: f64,
    pub avg_buffer_health: Option<f64>,
}

/// QoE aggregated over a group of sessions.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct QoeGroup {
    pub group: String,
    pub sessions: i64,
    pub avg_startup_ms: Option<f64>,
    pub rebuffer_ratio: f64,
    pub avg_bitrate_kbps: Option<f64>,
    pub switches_per_minute: f64,
    pub played_ms: i64,
}

/// How [`qoe_summary`] groups sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QoeGrouping {
    All,
    Platform,
    ConnectionType,
}

/// How long an open session counts as listening after its last report.
pub const OPEN_SESSION_GRACE_MS: i64 = 30_000;

const DAY_MS: i64 = 86_400_000;

/// Splits a window starting at `since` into whole days served by the roll-ups (from the
/// returned day on) and the partial first day, read from `play_sessions` (`since..boundary`).
fn split_window(since: i64) -> (i64, i64) {
    let first_full_day = (since.max(0) + DAY_MS - 1).div_euclid(DAY_MS);
    (first_full_day, first_full_day * DAY_MS)
}

/// Top tracks by plays (then listening time) among sessions started since `since`: whole days
/// from `track_daily`, the partial first day from the sessions, listeners counted for the
/// winners only.
pub async fn top_tracks(pool: &AnyPool, since: i64, limit: i64) -> sqlx::Result<Vec<TrackPlays>> {
    let (day, boundary) = split_window(since);
    // Read whichever side of the window spans fewer days of roll-ups: the days in it, or the
    // days before it subtracted from the all-time totals. Two queries: SQLite answers a lone MIN or MAX from the index, but scans for both at once.
    let first: Option<i64> = sqlx::query("SELECT MIN(day) FROM track_daily")
        .fetch_one(pool)
        .await?
        .get(0);
    let last: Option<i64> = sqlx::query("SELECT MAX(day) FROM track_daily")
        .fetch_one(pool)
        .await?
        .get(0);
    let inside = last.map_or(0, |l| (l - day + 1).max(0));
    let before = first.map_or(0, |f| (day - f).max(0));
    let rolled = if before < inside {
        "SELECT track_id, plays AS p, listening_ms AS l FROM track_totals \
         UNION ALL SELECT track_id, -plays, -listening_ms FROM track_daily WHERE day < $1"
    } else {
        "SELECT track_id, plays AS p, listening_ms AS l FROM track_daily WHERE day >= $1"
    };
    // One query ranks everything, so only `limit` rows cross the driver.
    let sql = format!(
        "SELECT track_id, CAST(SUM(p) AS BIGINT) AS plays, CAST(SUM(l) AS BIGINT) AS listening FROM ({rolled} \
         UNION ALL SELECT track_id, 1, played_ms FROM play_sessions WHERE started_at >= $2 AND started_at < $3) AS u \
         GROUP BY track_id HAVING SUM(p) > 0 ORDER BY plays DESC, listening DESC, track_id LIMIT $4"
    );
    let ranked: Vec<(String, i64, i64)> = sqlx::query(&sql)
        .bind(day)
        .bind(since)
        .bind(boundary)
        .bind(limit)
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let mut out = Vec::with_capacity(ranked.len());
    for (track_id, plays, listening_ms) in ranked {
        let listeners: i64 = sqlx::query(
            "SELECT COUNT(DISTINCT user_id) FROM play_sessions WHERE track_id = $1 AND started_at >= $2",
        )
        .bind(track_id.clone())
        .bind(since)
        .fetch_one(pool)
        .await?
        .get(0);
        out.push(TrackPlays {
            track_id,
            plays,
            listeners,
            listening_ms,
        });
    }
    Ok(out)
}

pub async fn user_plays(pool: &AnyPool, since: i64, limit: i64) -> sqlx::Result<Vec<UserPlays>> {
    let rows = sqlx::query(
        "SELECT user_id, COUNT(*) AS plays, COUNT(DISTINCT track_id), \
         CAST(COALESCE(SUM(played_ms), 0) AS BIGINT) AS listening \
         FROM play_sessions WHERE started_at >= $1 AND user_id IS NOT NULL \
         GROUP BY user_id ORDER BY listening DESC, user_id LIMIT $2",
    )
    .bind(since)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .iter()
        .map(|r| UserPlays {
            user_id: r.get(0),
            plays: r.get(1),
            distinct_tracks: r.get(2),
            listening_ms: r.get(3),
        })
        .collect())
}

pub async fn completion(pool: &AnyPool, since: i64) -> sqlx::Result<Completion> {
    let r = sqlx::query(
        "SELECT COUNT(*), \
         CAST(COALESCE(SUM(CASE WHEN max_position_ms * 10 >= track_duration_ms * 9 THEN 1 ELSE 0 END), 0) AS BIGINT), \
         CAST(COALESCE(SUM(CASE WHEN max_position_ms * 10 < track_duration_ms * 9 AND played_ms < 30000 THEN 1 ELSE 0 END), 0) AS BIGINT) \
         FROM play_sessions WHERE started_at >= $1 AND ended_at IS NOT NULL",
    )
    .bind(since)
    .fetch_one(pool)
    .await?;
    let sessions: i64 = r.get(0);
    let completed: i64 = r.get(1);
    let skipped: i64 = r.get(2);
    let rate = |n: i64| {
        if sessions > 0 {
            n as f64 / sessions as f64
        } else {
            0.0
        }
    };
    Ok(Completion {
        sessions,
        completed,
        skipped,
        completion_rate: rate(completed),
        skip_rate: rate(skipped),
    })
}

/// Listeners at each `step` from `from` to `to`. A session counts from its start to its end;
/// an open one until [`OPEN_SESSION_GRACE_MS`] after its last report (players report at least
/// every 10 s while playing, so a silent open session has stopped).
pub async fn concurrency(
    pool: &AnyPool,
    from: i64,
    to: i64,
    step: i64,
) -> sqlx::Result<Vec<ListenersAt>> {
    let step = step.max(1000);
    let rows = sqlx::query(
        "SELECT started_at, COALESCE(ended_at, updated_at + $1) FROM play_sessions \
         WHERE started_at <= $2 AND COALESCE(ended_at, updated_at + $3) >= $4",
    )
    .bind(OPEN_SESSION_GRACE_MS)
    .bind(to)
    .bind(OPEN_SESSION_GRACE_MS)
    .bind(from)
    .fetch_all(pool)
    .await?;
    // Sweep: +1 at each start, -1 just after each end.
    let mut edges: Vec<(i64, i64)> = Vec::with_capacity(rows.len() * 2);
    for r in &rows {
        edges.push((r.get::<i64, _>(0), 1));
        edges.push((r.get::<i64, _>(1) + 1, -1));
    }
    edges.sort_unstable();
    let mut out = Vec::new();
    let mut live = 0;
    let mut i = 0;
    let mut t = from;
    while t <= to {
        while i < edges.len() && edges[i].0 <= t {
            live += edges[i].1;
            i += 1;
        }
        out.push(ListenersAt {
            at: t,
            listeners: live,
        });
        t += step;
    }
    Ok(out)
}

pub async fn quality(pool: &AnyPool, since: i64) -> sqlx::Result<QualityReport> {
    let count_by = |col: &'static str| {
        format!("SELECT {col}, COUNT(*) FROM play_sessions WHERE started_at >= $1 GROUP BY {col}")
    };
    let to_map = |rows: Vec<sqlx::any::AnyRow>| {
        rows.iter()
            .map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1)))
            .collect()
    };
    let initial = sqlx::query(&count_by("initial_quality"))
        .bind(since)
        .fetch_all(pool)
        .await?;
    let current = sqlx::query(&count_by("current_quality"))
        .bind(since)
        .fetch_all(pool)
        .await?;
    let switches = sqlx::query(
        "SELECT from_quality, to_quality, COUNT(*) AS n FROM quality_switches WHERE at >= $1 \
         GROUP BY from_quality, to_quality ORDER BY n DESC, from_quality, to_quality",
    )
    .bind(since)
    .fetch_all(pool)
    .await?;
    let switches: Vec<QualitySwitchCount> = switches
        .iter()
        .map(|r| QualitySwitchCount {
            from: r.get(0),
            to: r.get(1),
            count: r.get(2),
        })
        .collect();
    Ok(QualityReport {
        sessions_by_initial_quality: to_map(initial),
        sessions_by_current_quality: to_map(current),
        total_switches: switches.iter().map(|s| s.count).sum(),
        switches,
    })
}

fn ratio(stalled: i64, played: i64) -> f64 {
    if stalled + played > 0 {
        stalled as f64 / (stalled + played) as f64
    } else {
        0.0
    }
}

fn per_minute(n: i64, played_ms: i64) -> f64 {
    if played_ms > 0 {
        n as f64 * 60_000.0 / played_ms as f64
    } else {
        0.0
    }
}

pub async fn qoe_sessions(pool: &AnyPool, since: i64, limit: i64) -> sqlx::Result<Vec<SessionQoe>> {
    let rows = sqlx::query(
        "SELECT id, track_id, user_id, platform, connection_type, started_at, played_ms, startup_ms, \
         rebuffer_count, rebuffer_ms, quality_switches, bitrate_kbps_ms, buffer_health_sum, buffer_health_samples \
         FROM play_sessions WHERE started_at >= $1 ORDER BY started_at DESC, id LIMIT $2",
    )
    .bind(since)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let played: i64 = r.get(6);
            let stalled: i64 = r.get(9);
            let kbps_ms: f64 = r.get(11);
            let buf_n: i64 = r.get(13);
            SessionQoe {
                session_id: r.get(0),
                track_id: r.get(1),
                user_id: r.get(2),
                platform: r.get(3),
                connection_type: r.get(4),
                started_at: r.get(5),
                played_ms: played,
                startup_ms: r.get(7),
                rebuffer_count: r.get(8),
                rebuffer_ratio: ratio(stalled, played),
                avg_bitrate_kbps: (played > 0).then(|| kbps_ms / played as f64),
                switches_per_minute: per_minute(r.get(10), played),
                avg_buffer_health: (buf_n > 0).then(|| r.get::<f64, _>(12) / buf_n as f64),
            }
        })
        .collect())
}

/// QoE of sessions started since `since`, grouped: whole days from `qoe_daily`, the partial
/// first day from the sessions.
pub async fn qoe_summary(
    pool: &AnyPool,
    since: i64,
    grouping: QoeGrouping,
) -> sqlx::Result<Vec<QoeGroup>> {
    let (rolled_key, raw_key) = match grouping {
        QoeGrouping::All => ("'all'", "'all'"),
        QoeGrouping::Platform => ("platform", "platform"),
        QoeGrouping::ConnectionType => ("connection_type", "COALESCE(connection_type, 'Unknown')"),
    };
    let (day, boundary) = split_window(since);
    let rolled = format!(
        "SELECT {rolled_key} AS g, CAST(SUM(sessions) AS BIGINT), CAST(SUM(startup_sum) AS BIGINT), CAST(SUM(startup_n) AS BIGINT), \
         CAST(SUM(rebuffer_ms) AS BIGINT), CAST(SUM(played_ms) AS BIGINT), CAST(SUM(bitrate_kbps_ms) AS DOUBLE PRECISION), \
         CAST(SUM(switches) AS BIGINT) FROM qoe_daily WHERE day >= $1 GROUP BY g"
    );
    let raw = format!(
        "SELECT {raw_key} AS g, COUNT(*), CAST(COALESCE(SUM(startup_ms), 0) AS BIGINT), COUNT(startup_ms), \
         CAST(COALESCE(SUM(rebuffer_ms), 0) AS BIGINT), CAST(COALESCE(SUM(played_ms), 0) AS BIGINT), \
         CAST(COALESCE(SUM(bitrate_kbps_ms), 0) AS DOUBLE PRECISION), CAST(COALESCE(SUM(quality_switches), 0) AS BIGINT) \
         FROM play_sessions WHERE started_at >= $1 AND started_at < $2 GROUP BY g"
    );
    let rolled = sqlx::query(&rolled).bind(day).fetch_all(pool).await?;
    let raw = sqlx::query(&raw)
        .bind(since)
        .bind(boundary)
        .fetch_all(pool)
        .await?;
    #[derive(Default)]
    struct Acc {
        sessions: i64,
        startup_sum: i64,
        startup_n: i64,
        rebuffer_ms: i64,
        played_ms: i64,
        kbps_ms: f64,
        switches: i64,
    }
    let mut groups: BTreeMap<String, Acc> = BTreeMap::new();
    for r in rolled.iter().chain(raw.iter()) {
        let a = groups.entry(r.get::<String, _>(0)).or_default();
        a.sessions += r.get::<i64, _>(1);
        a.startup_sum += r.get::<i64, _>(2);
        a.startup_n += r.get::<i64, _>(3);
        a.rebuffer_ms += r.get::<i64, _>(4);
        a.played_ms += r.get::<i64, _>(5);
        a.kbps_ms += r.get::<f64, _>(6);
        a.switches += r.get::<i64, _>(7);
    }
    Ok(groups
        .into_iter()
        .filter(|(_, a)| a.sessions > 0)
        .map(|(group, a)| QoeGroup {
            group,
            sessions: a.sessions,
            avg_startup_ms: (a.startup_n > 0).then(|| a.startup_sum as f64 / a.startup_n as f64),
            rebuffer_ratio: ratio(a.rebuffer_ms, a.played_ms),
            avg_bitrate_kbps: (a.played_ms > 0).then(|| a.kbps_ms / a.played_ms as f64),
            switches_per_minute: per_minute(a.switches, a.played_ms),
            played_ms: a.played_ms,
        })
        .collect())
}

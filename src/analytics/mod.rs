//! The analytics engine: play sessions, progress, quality and performance, social and playlist
//! actions, kept in SQLite (default, `<data-dir>/analytics.db`) or PostgreSQL, and the reports
//! built from them.
//!
//! Recording never waits on the database: calls queue an event to the batched writer
//! ([`writer`]) and return. [`AnalyticsEngine::flush`] waits until everything queued is committed;
//! [`AnalyticsEngine::shutdown`] flushes and stops the writer.

mod event;
mod privacy;
pub mod reports;
mod store;
mod writer;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde_json::json;
use sqlx::{AnyPool, Row};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::config::Config;
use crate::streaming::adaptive::{AdaptiveProfile, PerformanceMetrics};

pub use event::{Platform, SocialKind};
pub use privacy::IpPolicy;
pub use reports::QoeGrouping;
pub use store::Backend;

use event::{Event, PerformanceSample, SessionStart};

/// A play that has reported nothing for this long after its track would have ended is over
/// (see [`AnalyticsEngine::end_silent_plays`]): no player is silent that long while it plays
/// (the web player reports every 10 s), and a listener back from so long a pause is starting
/// a play of their own.
pub const PLAY_SILENCE: Duration = Duration::from_secs(2 * 3600);

/// Events queued between callers and the writer. Sized for a few seconds of heavy progress
/// traffic; when full, callers wait (back-pressure) rather than dropping what they report.
const QUEUE: usize = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum AnalyticsError {
    #[error("unsupported analytics database URL {0:?} (use sqlite:PATH or postgres://…)")]
    Url(String),
    #[error("analytics database: {0}")]
    Db(#[source] sqlx::Error),
    #[error("analytics database {location}: {reason}")]
    Open { location: String, reason: String },
    #[error("analytics schema migration failed: {0}")]
    Migrate(String),
    #[error("the analytics writer has stopped")]
    Stopped,
    #[error("the analytics batch failed (the server's log says why)")]
    BatchFailed,
}

impl From<sqlx::Error> for AnalyticsError {
    fn from(e: sqlx::Error) -> Self {
        AnalyticsError::Db(e)
    }
}

/// Optional facts about a new play session beyond the spec's arguments.
#[derive(Debug, Clone, Default)]
pub struct SessionExtras {
    /// Reuse this id (e.g. the streaming session's) instead of a new one.
    pub session_id: Option<Uuid>,
    pub connection_type: Option<String>,
}

pub struct AnalyticsEngine {
    pool: AnyPool,
    backend: Backend,
    /// Why a bounded channel: the writer is the only writer; see [`QUEUE`].
    tx: mpsc::Sender<Event>,
    /// The writer task, taken by [`Self::shutdown`].
    writer: Mutex<Option<tokio::task::JoinHandle<()>>>,
    ip_policy: IpPolicy,
    kbps: HashMap<String, u32>,
}

/// Longest text kept from a client (ids, user agents, referrers).
const MAX_TEXT: usize = 512;
/// Positions and durations beyond this (about 115 days) are client nonsense.
const MAX_MS: u64 = 10_000_000_000;

/// Text from clients as stored: no NUL (PostgreSQL refuses it in `TEXT`, and one refused row
/// would fail a whole batch), at most [`MAX_TEXT`] bytes.
fn clean(s: String) -> String {
    let mut s = if s.contains('\0') {
        s.replace('\0', "")
    } else {
        s
    };
    if s.len() > MAX_TEXT {
        let mut end = MAX_TEXT;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// Bounds everything a client could have chosen, in one place, before it reaches the writer.
fn sanitize(event: Event) -> Event {
    let opt = |s: Option<String>| s.map(clean);
    let ms = |v: u64| v.min(MAX_MS);
    match event {
        Event::Start(mut s) => {
            s.id = clean(s.id);
            s.user_id = opt(s.user_id);
            s.track_id = clean(s.track_id);
            s.user_agent = opt(s.user_agent);
            s.referrer = opt(s.referrer);
            s.quality = clean(s.quality);
            s.connection_type = opt(s.connection_type);
            s.track_duration_ms = ms(s.track_duration_ms);
            Event::Start(s)
        }
        Event::Progress {
            session,
            at,
            position_ms,
            buffer_health,
        } => Event::Progress {
            session,
            at,
            position_ms: ms(position_ms),
            buffer_health,
        },
        Event::End {
            session,
            at,
            position_ms,
        } => Event::End {
            session,
            at,
            position_ms: position_ms.map(ms),
        },
        Event::Pause {
            session,
            at,
            position_ms,
        } => Event::Pause {
            session,
            at,
            position_ms: ms(position_ms),
        },
        // A start-up longer than ten minutes is not a start-up.
        Event::Startup {
            session,
            startup_ms,
        } => Event::Startup {
            session,
            startup_ms: startup_ms.min(600_000),
        },
        Event::Rebuffer {
            session,
            at,
            duration_ms,
        } => Event::Rebuffer {
            session,
            at,
            duration_ms: duration_ms.min(86_400_000),
        },
        Event::QualitySwitch {
            session,
            at,
            from,
            to,
            to_kbps,
            reason,
        } => Event::QualitySwitch {
            session,
            at,
            from: clean(from),
            to: clean(to),
            to_kbps,
            reason: opt(reason),
        },
        Event::Social {
            kind,
            user_id,
            target_type,
            target_id,
            at,
            detail,
        } => Event::Social {
            kind,
            user_id: clean(user_id),
            target_type: clean(target_type),
            target_id: clean(target_id),
            at,
            detail: opt(detail),
        },
        Event::Playlist {
            playlist_id,
            user_id,
            action,
            track_id,
            position,
            at,
        } => Event::Playlist {
            playlist_id: clean(playlist_id),
            user_id: opt(user_id),
            action: clean(action),
            track_id: opt(track_id),
            position,
            at,
        },
        e => e,
    }
}

/// Wall-clock time in Unix milliseconds, as every analytics timestamp is stored.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl AnalyticsEngine {
    /// Opens the store at `database_url` (`sqlite:PATH` or `postgres://…`), migrates it and
    /// starts the writer. IPs are truncated (see [`Self::with_ip_policy`]).
    pub async fn new(database_url: &str, config: Arc<Config>) -> Result<Self, AnalyticsError> {
        let store = store::Store::open(database_url).await?;
        let kbps = AdaptiveProfile::ladder(&config.profiles)
            .into_iter()
            .map(|p| (p.quality_id, p.bitrate_kbps))
            .collect::<HashMap<_, _>>();
        let (tx, rx) = mpsc::channel(QUEUE);
        let writer = writer::Writer::new(store.pool.clone(), store.backend, kbps.clone());
        let handle = tokio::spawn(writer.run(rx));
        Ok(Self {
            pool: store.pool,
            backend: store.backend,
            tx,
            writer: Mutex::new(Some(handle)),
            ip_policy: IpPolicy::Truncate,
            kbps,
        })
    }

    /// Sets how IP addresses are stored from now on.
    pub fn with_ip_policy(mut self, policy: IpPolicy) -> Self {
        self.ip_policy = policy;
        self
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool, for reports and tools.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    async fn send(&self, event: Event) {
        if self.tx.send(sanitize(event)).await.is_err() {
            tracing::warn!("analytics event after shutdown dropped");
        }
    }

    /// Starts a play session (the spec's signature) and returns its id.
    #[allow(clippy::too_many_arguments)] // the spec's API
    pub async fn start_play_session(
        &self,
        user_id: Option<String>,
        track_id: String,
        ip_address: String,
        user_agent: Option<String>,
        track_duration_ms: u64,
        quality: String,
        platform: Platform,
        referrer: Option<String>,
    ) -> Uuid {
        self.start_play_session_with(
            user_id,
            track_id,
            ip_address,
            user_agent,
            track_duration_ms,
            quality,
            platform,
            referrer,
            SessionExtras::default(),
        )
        .await
    }

    /// [`Self::start_play_session`] with extra facts.
    #[allow(clippy::too_many_arguments)]
    pub async fn start_play_session_with(
        &self,
        user_id: Option<String>,
        track_id: String,
        ip_address: String,
        user_agent: Option<String>,
        track_duration_ms: u64,
        quality: String,
        platform: Platform,
        referrer: Option<String>,
        extras: SessionExtras,
    ) -> Uuid {
        let id = extras.session_id.unwrap_or_else(Uuid::new_v4);
        let quality_kbps = self.kbps.get(&quality).copied().unwrap_or(0);
        self.send(Event::Start(SessionStart {
            id: id.to_string(),
            user_id,
            track_id,
            ip: self.ip_policy.apply(&ip_address),
            user_agent,
            referrer,
            platform,
            quality,
            quality_kbps,
            connection_type: extras.connection_type,
            track_duration_ms,
            at: now_ms(),
        }))
        .await;
        id
    }

    /// Records the playback position (and buffer health, percent) of a session.
    pub async fn update_play_progress(
        &self,
        session_id: Uuid,
        position_ms: u64,
        buffer_health: Option<f32>,
    ) {
        self.send(Event::Progress {
            session: session_id.to_string(),
            at: now_ms(),
            position_ms,
            buffer_health,
        })
        .await;
    }

    /// Ends a session, optionally at a final position.
    pub async fn end_play_session(&self, session_id: Uuid, final_position_ms: Option<u64>) {
        self.send(Event::End {
            session: session_id.to_string(),
            at: now_ms(),
            position_ms: final_position_ms,
        })
        .await;
    }

    /// The listener paused at `position_ms`: what follows until [`Self::resume_play_session`]
    /// is not listening time, and a forward move meanwhile is a seek.
    pub async fn pause_play_session(&self, session_id: Uuid, position_ms: u64) {
        self.send(Event::Pause {
            session: session_id.to_string(),
            at: now_ms(),
            position_ms,
        })
        .await;
    }

    /// The listener resumed a paused play.
    pub async fn resume_play_session(&self, session_id: Uuid) {
        self.send(Event::Resume {
            session: session_id.to_string(),
            at: now_ms(),
        })
        .await;
    }

    /// Ends every open play that has reported nothing for `silent_for` past its track's length
    /// (a play may run to its end without a report), at its last report: its listener left
    /// without a word, or a previous process died before ending it. Open plays count in no
    /// completion or skip rate, so the server runs this at start and periodically. Returns the
    /// plays ended.
    pub async fn end_silent_plays(&self, silent_for: Duration) -> Result<u64, AnalyticsError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.tx
            .send(Event::EndSilent {
                before: now_ms() - silent_for.as_millis() as i64,
                done: Some(tx),
            })
            .await
            .map_err(|_| AnalyticsError::Stopped)?;
        rx.await
            .map_err(|_| AnalyticsError::Stopped)?
            .ok_or(AnalyticsError::BatchFailed)
    }

    /// Time from the play request to the first audio, as the player measured it.
    pub async fn record_startup(&self, session_id: Uuid, startup_ms: u64) {
        self.send(Event::Startup {
            session: session_id.to_string(),
            startup_ms,
        })
        .await;
    }

    pub async fn record_quality_switch(
        &self,
        session_id: Uuid,
        from: &str,
        to: &str,
        reason: Option<String>,
    ) {
        self.send(Event::QualitySwitch {
            session: session_id.to_string(),
            at: now_ms(),
            from: from.to_string(),
            to: to.to_string(),
            to_kbps: self.kbps.get(to).copied().unwrap_or(0),
            reason,
        })
        .await;
    }

    pub async fn record_rebuffer(&self, session_id: Uuid, duration_ms: u64) {
        self.send(Event::Rebuffer {
            session: session_id.to_string(),
            at: now_ms(),
            duration_ms,
        })
        .await;
    }

    /// A player's `PerformanceMetrics` report (its counters are cumulative per session). A
    /// session's connection type is the one given when it started: its QoE group never moves.
    pub async fn record_performance(&self, session_id: Uuid, metrics: &PerformanceMetrics) {
        self.send(Event::Performance {
            session: session_id.to_string(),
            at: now_ms(),
            sample: PerformanceSample {
                buffer_health: f64::from(metrics.buffer_health_percentage),
                download_kbps: i64::from(metrics.download_speed_kbps),
                packet_loss: f64::from(metrics.packet_loss_percentage),
                latency_ms: i64::from(metrics.latency_ms),
                rebuffer_count: i64::from(metrics.rebuffer_count),
                rebuffer_ms: i64::from(metrics.rebuffer_duration_ms),
                quality_switches: i64::from(metrics.quality_switches),
            },
        })
        .await;
    }

    /// A like, share or follow. `target_type` is `track`, `playlist` or `user`.
    pub async fn record_social(
        &self,
        kind: SocialKind,
        user_id: &str,
        target_type: &str,
        target_id: &str,
        detail: Option<String>,
    ) {
        self.send(Event::Social {
            kind,
            user_id: user_id.to_string(),
            target_type: target_type.to_string(),
            target_id: target_id.to_string(),
            at: now_ms(),
            detail,
        })
        .await;
    }

    /// A playlist edit (`added`, `removed`, `reordered`, `cleared`, `created`).
    pub async fn record_playlist_edit(
        &self,
        playlist_id: &str,
        user_id: Option<&str>,
        action: &str,
        track_id: Option<&str>,
        position: Option<u64>,
    ) {
        self.send(Event::Playlist {
            playlist_id: playlist_id.to_string(),
            user_id: user_id.map(str::to_string),
            action: action.to_string(),
            track_id: track_id.map(str::to_string),
            position,
            at: now_ms(),
        })
        .await;
    }

    /// Waits until everything queued before this call is committed.
    pub async fn flush(&self) -> Result<(), AnalyticsError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Event::Flush(tx))
            .await
            .map_err(|_| AnalyticsError::Stopped)?;
        rx.await.map_err(|_| AnalyticsError::Stopped)
    }

    /// Flushes, stops the writer and waits for it. Later recordings are dropped with a warning.
    pub async fn shutdown(&self) {
        let _ = self.flush().await;
        let handle = self.writer.lock().take();
        if let Some(handle) = handle {
            // The writer ends when every sender is gone; ours lives in `self`, so stop it
            // explicitly once the queue is drained.
            handle.abort();
            let _ = handle.await;
        }
    }

    /// Deletes play data older than `age` (sessions, their events, social and playlist
    /// events). Returns the sessions removed.
    pub async fn prune(&self, age: Duration) -> Result<u64, AnalyticsError> {
        self.flush().await?;
        let cutoff = now_ms() - age.as_millis() as i64;
        let mut tx = store::begin_write(&self.pool, self.backend).await?;
        let removed = delete_sessions(&mut tx, SessionFilter::EndedBefore(cutoff)).await?;
        for table in ["social_events", "playlist_events"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE at < $1"))
                .bind(cutoff)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(removed)
    }

    /// Recomputes the daily roll-ups from the sessions (after a bulk import straight into the
    /// database, for instance). The writer keeps them in step otherwise.
    pub async fn rebuild_rollups(&self) -> Result<(), AnalyticsError> {
        self.flush().await?;
        let mut tx = store::begin_write(&self.pool, self.backend).await?;
        sqlx::query("DELETE FROM track_daily")
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM qoe_daily")
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM track_totals")
            .execute(&mut *tx)
            .await?;
        // The same statements as the roll-up migrations' backfills.
        let backfills = [
            include_str!("../../migrations/20261124000002_rollups.sql"),
            include_str!("../../migrations/20261124000003_track_totals.sql"),
        ];
        for stmt in backfills.iter().flat_map(|b| b.split(';')) {
            if stmt.lines().any(|l| l.starts_with("INSERT INTO")) {
                sqlx::query(stmt).execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Everything stored about one user, as JSON (GDPR-style export).
    pub async fn export_user(&self, user_id: &str) -> Result<serde_json::Value, AnalyticsError> {
        self.flush().await?;
        let sessions = sqlx::query(
            "SELECT id, track_id, platform, initial_quality, current_quality, started_at, ended_at, played_ms, max_position_ms, ip, user_agent, referrer \
             FROM play_sessions WHERE user_id = $1 ORDER BY started_at, id",
        )
        .bind(user_id.to_string())
        .fetch_all(&self.pool)
        .await?;
        let sessions: Vec<_> = sessions
            .iter()
            .map(|r| {
                json!({
                    "session_id": r.get::<String, _>(0), "track_id": r.get::<String, _>(1), "platform": r.get::<String, _>(2),
                    "initial_quality": r.get::<String, _>(3), "current_quality": r.get::<String, _>(4),
                    "started_at": r.get::<i64, _>(5), "ended_at": r.get::<Option<i64>, _>(6), "played_ms": r.get::<i64, _>(7),
                    "max_position_ms": r.get::<i64, _>(8), "ip": r.get::<Option<String>, _>(9),
                    "user_agent": r.get::<Option<String>, _>(10), "referrer": r.get::<Option<String>, _>(11),
                })
            })
            .collect();
        let social = sqlx::query("SELECT kind, target_type, target_id, at, detail FROM social_events WHERE user_id = $1 ORDER BY at")
            .bind(user_id.to_string())
            .fetch_all(&self.pool)
            .await?;
        let social: Vec<_> = social
            .iter()
            .map(|r| json!({"kind": r.get::<String, _>(0), "target_type": r.get::<String, _>(1), "target_id": r.get::<String, _>(2), "at": r.get::<i64, _>(3), "detail": r.get::<Option<String>, _>(4)}))
            .collect();
        let playlists = sqlx::query("SELECT playlist_id, action, track_id, position, at FROM playlist_events WHERE user_id = $1 ORDER BY at")
            .bind(user_id.to_string())
            .fetch_all(&self.pool)
            .await?;
        let playlists: Vec<_> = playlists
            .iter()
            .map(|r| json!({"playlist_id": r.get::<String, _>(0), "action": r.get::<String, _>(1), "track_id": r.get::<Option<String>, _>(2), "position": r.get::<Option<i64>, _>(3), "at": r.get::<i64, _>(4)}))
            .collect();
        Ok(
            json!({ "user_id": user_id, "play_sessions": sessions, "social": social, "playlist_edits": playlists }),
        )
    }

    /// Deletes everything stored about one user. Returns the sessions removed.
    pub async fn delete_user(&self, user_id: &str) -> Result<u64, AnalyticsError> {
        self.flush().await?;
        let mut tx = store::begin_write(&self.pool, self.backend).await?;
        let removed = delete_sessions(&mut tx, SessionFilter::User(user_id.to_string())).await?;
        for table in ["social_events", "playlist_events"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE user_id = $1"))
                .bind(user_id.to_string())
                .execute(&mut *tx)
                .await?;
        }
        // Being followed is also data about this user.
        sqlx::query("DELETE FROM social_events WHERE target_type = 'user' AND target_id = $1")
            .bind(user_id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(removed)
    }

    pub async fn top_tracks(
        &self,
        since_ms: i64,
        limit: i64,
    ) -> Result<Vec<reports::TrackPlays>, AnalyticsError> {
        Ok(reports::top_tracks(&self.pool, since_ms, limit).await?)
    }

    pub async fn user_plays(
        &self,
        since_ms: i64,
        limit: i64,
    ) -> Result<Vec<reports::UserPlays>, AnalyticsError> {
        Ok(reports::user_plays(&self.pool, since_ms, limit).await?)
    }

    pub async fn completion(&self, since_ms: i64) -> Result<reports::Completion, AnalyticsError> {
        Ok(reports::completion(&self.pool, since_ms).await?)
    }

    pub async fn concurrency(
        &self,
        from_ms: i64,
        to_ms: i64,
        step_ms: i64,
    ) -> Result<Vec<reports::ListenersAt>, AnalyticsError> {
        Ok(reports::concurrency(&self.pool, from_ms, to_ms, step_ms).await?)
    }

    pub async fn quality(&self, since_ms: i64) -> Result<reports::QualityReport, AnalyticsError> {
        Ok(reports::quality(&self.pool, since_ms).await?)
    }

    pub async fn qoe_sessions(
        &self,
        since_ms: i64,
        limit: i64,
    ) -> Result<Vec<reports::SessionQoe>, AnalyticsError> {
        Ok(reports::qoe_sessions(&self.pool, since_ms, limit).await?)
    }

    pub async fn qoe_summary(
        &self,
        since_ms: i64,
        grouping: QoeGrouping,
    ) -> Result<Vec<reports::QoeGroup>, AnalyticsError> {
        Ok(reports::qoe_summary(&self.pool, since_ms, grouping).await?)
    }
}

/// Which sessions [`delete_sessions`] removes.
enum SessionFilter {
    User(String),
    /// Ended (or last reported) before this time.
    EndedBefore(i64),
}

impl SessionFilter {
    fn sql(&self) -> &'static str {
        match self {
            SessionFilter::User(_) => "user_id = $1",
            SessionFilter::EndedBefore(_) => "COALESCE(ended_at, updated_at) < $1",
        }
    }

    fn bind<'q>(
        &self,
        q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
        match self {
            SessionFilter::User(u) => q.bind(u.clone()),
            SessionFilter::EndedBefore(t) => q.bind(*t),
        }
    }
}

/// Deletes the matching sessions with their events, and takes their contribution out of the
/// daily roll-ups so that reports stay exact. Returns the sessions deleted.
async fn delete_sessions(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    filter: SessionFilter,
) -> Result<u64, AnalyticsError> {
    let cond = filter.sql();
    let rows = filter
        .bind(sqlx::query(&format!(
            "SELECT started_at, track_id, platform, COALESCE(connection_type, 'Unknown'), played_ms, startup_ms, \
             rebuffer_ms, bitrate_kbps_ms, quality_switches FROM play_sessions WHERE {cond}"
        )))
        .fetch_all(&mut **tx)
        .await?;
    let mut tracks: HashMap<(i64, String), (i64, i64)> = HashMap::new();
    let mut qoe: HashMap<(i64, String, String), [f64; 7]> = HashMap::new();
    for r in &rows {
        let day = r.get::<i64, _>(0).div_euclid(86_400_000);
        let t = tracks.entry((day, r.get(1))).or_default();
        t.0 += 1;
        t.1 += r.get::<i64, _>(4);
        let q = qoe.entry((day, r.get(2), r.get(3))).or_default();
        let startup: Option<i64> = r.get(5);
        q[0] += 1.0;
        q[1] += startup.unwrap_or(0) as f64;
        q[2] += f64::from(u8::from(startup.is_some()));
        q[3] += r.get::<i64, _>(6) as f64;
        q[4] += r.get::<i64, _>(4) as f64;
        q[5] += r.get::<f64, _>(7);
        q[6] += r.get::<i64, _>(8) as f64;
    }
    for ((day, track), (plays, listening)) in &tracks {
        sqlx::query("UPDATE track_daily SET plays = plays - $1, listening_ms = listening_ms - $2 WHERE day = $3 AND track_id = $4")
            .bind(*plays)
            .bind(*listening)
            .bind(*day)
            .bind(track.clone())
            .execute(&mut **tx)
            .await?;
    }
    let mut totals: HashMap<String, (i64, i64)> = HashMap::new();
    for ((_, track), (plays, listening)) in &tracks {
        let t = totals.entry(track.clone()).or_default();
        t.0 += plays;
        t.1 += listening;
    }
    for (track, (plays, listening)) in totals {
        sqlx::query("UPDATE track_totals SET plays = plays - $1, listening_ms = listening_ms - $2 WHERE track_id = $3")
            .bind(plays)
            .bind(listening)
            .bind(track)
            .execute(&mut **tx)
            .await?;
    }
    for ((day, platform, connection), q) in qoe {
        sqlx::query(
            "UPDATE qoe_daily SET sessions = sessions - $1, startup_sum = startup_sum - $2, startup_n = startup_n - $3, \
             rebuffer_ms = rebuffer_ms - $4, played_ms = played_ms - $5, bitrate_kbps_ms = bitrate_kbps_ms - $6, \
             switches = switches - $7 WHERE day = $8 AND platform = $9 AND connection_type = $10",
        )
        .bind(q[0] as i64)
        .bind(q[1] as i64)
        .bind(q[2] as i64)
        .bind(q[3] as i64)
        .bind(q[4] as i64)
        .bind(q[5])
        .bind(q[6] as i64)
        .bind(day)
        .bind(platform)
        .bind(connection)
        .execute(&mut **tx)
        .await?;
    }
    sqlx::query("DELETE FROM track_daily WHERE plays <= 0")
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM track_totals WHERE plays <= 0")
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM qoe_daily WHERE sessions <= 0")
        .execute(&mut **tx)
        .await?;
    for table in [
        "progress_events",
        "quality_switches",
        "rebuffer_events",
        "performance_reports",
    ] {
        filter
            .bind(sqlx::query(&format!("DELETE FROM {table} WHERE session_id IN (SELECT id FROM play_sessions WHERE {cond})")))
            .execute(&mut **tx)
            .await?;
    }
    Ok(filter
        .bind(sqlx::query(&format!(
            "DELETE FROM play_sessions WHERE {cond}"
        )))
        .execute(&mut **tx)
        .await?
        .rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_text_is_bounded() {
        assert_eq!(clean("a\0b".into()), "ab");
        let long = "é".repeat(400); // 800 bytes
        let c = clean(long);
        assert!(c.len() <= MAX_TEXT && c.chars().all(|ch| ch == 'é'));
        match sanitize(Event::Startup {
            session: "s".into(),
            startup_ms: u64::MAX,
        }) {
            Event::Startup { startup_ms, .. } => assert_eq!(startup_ms, 600_000),
            _ => unreachable!(),
        }
    }
}

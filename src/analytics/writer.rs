//! The batched writer: one task owns the database's write side. Events arrive over a bounded
//! channel; whatever is queued is applied in one transaction, so the commit rate, not the event
//! rate, bounds the cost. A batch is committed as soon as the queue is empty (no timer to wait
//! for), so after a crash at most the batch being written is lost.
//!
//! Per-session aggregates (position, listening time, QoE counters) are kept in memory for live
//! sessions and written as one `UPDATE` per session per batch, however many progress reports it
//! held.

use std::collections::HashMap;
use std::sync::Arc;

use sqlx::{Any, AnyPool, Row, Transaction};
use tokio::sync::mpsc;

use super::event::{Event, SessionStart};
use super::now_ms;
use super::store::{values_placeholders, Backend};

/// Events applied in one transaction at most.
pub const MAX_BATCH: usize = 20_000;
/// Rows per multi-row `INSERT` (bounded by SQLite's and PostgreSQL's parameter limits).
const ROWS_PER_INSERT: usize = 1000;

/// playlist id, user, action, track, position, time.
type PlaylistRow = (
    String,
    Option<String>,
    String,
    Option<String>,
    Option<i64>,
    i64,
);

/// What the writer remembers of a live session.
#[derive(Debug, Clone, Default)]
struct Live {
    /// Where the session counts in the daily roll-ups (fixed at its start).
    group: Arc<RollupGroup>,
    has_startup: bool,
    position: u64,
    max_position: u64,
    last_at: i64,
    kbps: u32,
    quality: String,
    rebuffer_count: i64,
    rebuffer_ms: i64,
    switches: i64,
    /// When the session started (server clock).
    started_at: i64,
    /// The track's length; 0 when unknown.
    track_ms: u64,
    /// Already ended: a second end (a player's `DELETE` after the session expired, a retry)
    /// neither moves its end nor credits the time between as listened, and reports arriving
    /// after it (a player still sending progress) change nothing.
    ended: bool,
    /// Paused by the listener: forward moves are seeks until it resumes.
    paused: bool,
}

/// Slack for a player's own clock when its reports are checked against the session's life.
const CLOCK_SLACK_MS: i64 = 10_000;

impl Live {
    /// A position the player reported, within the track.
    fn position(&self, reported: u64) -> u64 {
        if self.track_ms > 0 {
            reported.min(self.track_ms)
        } else {
            reported
        }
    }

    /// The most time a player can have spent in anything (stalling, starting) by `at`: the
    /// session's life so far, plus slack for its clock.
    fn life_ms(&self, at: i64) -> i64 {
        (at - self.started_at).max(0) + CLOCK_SLACK_MS
    }

    /// The most stalls or switches a session can have had by `at`: one per second of its life.
    /// Players detect a stall over a fraction of a second and switch at most once a segment.
    fn events_by(&self, at: i64) -> i64 {
        self.life_ms(at) / 1000 + 1
    }
}

/// A session's place in the roll-ups.
#[derive(Debug, Default, PartialEq, Eq, Hash)]
struct RollupGroup {
    day: i64,
    track_id: String,
    platform: String,
    connection_type: String,
}

/// Additions to one `qoe_daily` row.
#[derive(Debug, Default)]
struct QoeAdd {
    sessions: i64,
    startup_sum: i64,
    startup_n: i64,
    rebuffer_ms: i64,
    played_ms: i64,
    kbps_ms: f64,
    switches: i64,
}

const DAY_MS: i64 = 86_400_000;

/// Changes to one session row within a batch.
#[derive(Debug, Default)]
struct Delta {
    played_ms: i64,
    buffer_sum: f64,
    buffer_n: i64,
    rebuffer_count: i64,
    rebuffer_ms: i64,
    switches: i64,
    kbps_ms: f64,
    startup_ms: Option<i64>,
    ended_at: Option<i64>,
    updated_at: i64,
}

pub struct Writer {
    pool: AnyPool,
    backend: Backend,
    live: HashMap<String, Live>,
    kbps: HashMap<String, u32>,
    batches: u64,
}

/// Live sessions silent for this long are dropped from memory (not from the database).
const LIVE_IDLE_MS: i64 = 2 * 3600 * 1000;

impl Writer {
    pub fn new(pool: AnyPool, backend: Backend, kbps: HashMap<String, u32>) -> Self {
        Self {
            pool,
            backend,
            live: HashMap::new(),
            kbps,
            batches: 0,
        }
    }

    /// Runs until every sender is dropped, then returns once the last batch is committed.
    pub async fn run(mut self, mut rx: mpsc::Receiver<Event>) {
        let mut batch = Vec::with_capacity(1024);
        while let Some(first) = rx.recv().await {
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(e) => batch.push(e),
                    Err(_) => break,
                }
            }
            let n = batch.len();
            let mut flushes = Vec::new();
            let mut sweeps = Vec::new();
            let events: Vec<Event> = batch
                .drain(..)
                .filter_map(|e| match e {
                    Event::Flush(tx) => {
                        flushes.push(tx);
                        None
                    }
                    Event::EndSilent { before, done } => {
                        sweeps.push((before, done));
                        None
                    }
                    e => Some(e),
                })
                .collect();
            let cutoff = sweeps.iter().map(|(before, _)| *before).max();
            let mut swept = None;
            if !events.is_empty() || cutoff.is_some() {
                match self.apply(events, cutoff).await {
                    Ok(ended) => {
                        swept = Some(ended);
                        metrics::counter!("analytics_events_total").increment(n as u64);
                    }
                    Err(e) => {
                        metrics::counter!("analytics_batches_failed_total").increment(1);
                        tracing::error!(error = %e, events = n, "analytics batch failed");
                        // The transaction rolled back: what `live` learnt from the batch is
                        // void. Forget it all; sessions are read back from the database when
                        // they report.
                        self.live.clear();
                    }
                }
            }
            for (_, done) in sweeps {
                if let Some(done) = done {
                    let _ = done.send(swept);
                }
            }
            for f in flushes {
                let _ = f.send(());
            }
        }
    }

    /// Makes sure `id` is in `live` (reading it back from the database if it was started before
    /// this process). `false` for an unknown session.
    async fn ensure_live(&mut self, tx: &mut Transaction<'_, Any>, id: &str) -> bool {
        if self.live.contains_key(id) {
            return true;
        }
        let row = sqlx::query(
            "SELECT position_ms, max_position_ms, updated_at, current_quality, rebuffer_count, rebuffer_ms, quality_switches, \
             started_at, track_id, platform, COALESCE(connection_type, 'Unknown'), startup_ms, track_duration_ms, \
             CAST(CASE WHEN ended_at IS NULL THEN 0 ELSE 1 END AS BIGINT) FROM play_sessions WHERE id = $1",
        )
        .bind(id.to_string())
        .fetch_optional(&mut **tx)
        .await;
        let Ok(Some(row)) = row else { return false };
        let quality: String = row.get(3);
        let live = Live {
            group: Arc::new(RollupGroup {
                day: row.get::<i64, _>(7).div_euclid(DAY_MS),
                track_id: row.get(8),
                platform: row.get(9),
                connection_type: row.get(10),
            }),
            has_startup: row.get::<Option<i64>, _>(11).is_some(),
            position: row.get::<i64, _>(0) as u64,
            max_position: row.get::<i64, _>(1) as u64,
            last_at: row.get(2),
            kbps: self.kbps.get(&quality).copied().unwrap_or(0),
            quality,
            rebuffer_count: row.get(4),
            rebuffer_ms: row.get(5),
            switches: row.get(6),
            started_at: row.get(7),
            track_ms: row.get::<i64, _>(12).max(0) as u64,
            ended: row.get::<i64, _>(13) != 0,
            // Not stored: a play read back (after two idle hours, or a restart) whose player
            // paused meanwhile can be credited a seek made while paused.
            paused: false,
        };
        self.live.insert(id.to_string(), live);
        true
    }

    /// A known play that has not ended (sessions started in this batch are in `live` already;
    /// others are read back once), for reports that move it on.
    async fn open_play(&mut self, tx: &mut Transaction<'_, Any>, id: &str) -> Option<&mut Live> {
        if !self.ensure_live(tx, id).await {
            return None;
        }
        self.live.get_mut(id).filter(|l| !l.ended)
    }

    /// Writes one batch in one transaction; with `sweep_before`, also ends the plays silent
    /// since before it (see [`Event::EndSilent`]) and returns how many.
    async fn apply(
        &mut self,
        events: Vec<Event>,
        sweep_before: Option<i64>,
    ) -> Result<u64, sqlx::Error> {
        let mut tx = super::store::begin_write(&self.pool, self.backend).await?;
        let mut starts: Vec<SessionStart> = Vec::new();
        let mut progress: Vec<(String, i64, i64, Option<f64>)> = Vec::new();
        let mut switches: Vec<(String, i64, String, String, Option<String>)> = Vec::new();
        let mut rebuffers: Vec<(String, i64, i64)> = Vec::new();
        let mut perf: Vec<(String, i64, super::event::PerformanceSample)> = Vec::new();
        let mut social: Vec<(String, String, String, String, i64, Option<String>)> = Vec::new();
        let mut playlists: Vec<PlaylistRow> = Vec::new();
        let mut deltas: HashMap<String, Delta> = HashMap::new();
        let mut ended: Vec<String> = Vec::new();

        for event in events {
            match event {
                Event::Start(s) => {
                    self.live.insert(
                        s.id.clone(),
                        Live {
                            group: Arc::new(RollupGroup {
                                day: s.at.div_euclid(DAY_MS),
                                track_id: s.track_id.clone(),
                                platform: s.platform.as_str().to_string(),
                                connection_type: s
                                    .connection_type
                                    .clone()
                                    .unwrap_or_else(|| "Unknown".into()),
                            }),
                            last_at: s.at,
                            kbps: s.quality_kbps,
                            quality: s.quality.clone(),
                            started_at: s.at,
                            track_ms: s.track_duration_ms,
                            ..Live::default()
                        },
                    );
                    starts.push(s);
                }
                Event::Progress {
                    session,
                    at,
                    position_ms,
                    buffer_health,
                } => {
                    let Some(live) = self.open_play(&mut tx, &session).await else {
                        continue;
                    };
                    let d = delta(&mut deltas, &session);
                    let position_ms = advance(live, d, at, position_ms);
                    if let Some(b) = buffer_health.filter(|b| b.is_finite()) {
                        d.buffer_sum += f64::from(b.clamp(0.0, 100.0));
                        d.buffer_n += 1;
                    }
                    progress.push((
                        session,
                        at,
                        position_ms as i64,
                        buffer_health.map(f64::from),
                    ));
                }
                Event::Startup {
                    session,
                    startup_ms,
                } => {
                    if !self.ensure_live(&mut tx, &session).await {
                        continue;
                    }
                    // A start-up cannot have lasted longer than the session so far.
                    let most = self.live[&session].life_ms(now_ms());
                    delta(&mut deltas, &session).startup_ms = Some((startup_ms as i64).min(most));
                }
                Event::QualitySwitch {
                    session,
                    at,
                    from,
                    to,
                    to_kbps,
                    reason,
                } => {
                    if self.ensure_live(&mut tx, &session).await {
                        let live = self.live.get_mut(&session).expect("ensured");
                        let d = delta(&mut deltas, &session);
                        d.switches += 1;
                        d.updated_at = d.updated_at.max(at);
                        live.switches += 1;
                        live.kbps = to_kbps;
                        live.quality = to.clone();
                        switches.push((session, at, from, to, reason));
                    }
                }
                Event::Rebuffer {
                    session,
                    at,
                    duration_ms,
                } => {
                    if self.ensure_live(&mut tx, &session).await {
                        let live = self.live.get_mut(&session).expect("ensured");
                        // No more stalling in all than the session has lived.
                        let duration_ms = (duration_ms as i64)
                            .min(live.life_ms(at) - live.rebuffer_ms)
                            .max(0);
                        let d = delta(&mut deltas, &session);
                        d.rebuffer_count += 1;
                        d.rebuffer_ms += duration_ms;
                        d.updated_at = d.updated_at.max(at);
                        live.rebuffer_count += 1;
                        live.rebuffer_ms += duration_ms;
                        rebuffers.push((session, at, duration_ms));
                    }
                }
                Event::Performance {
                    session,
                    at,
                    mut sample,
                } => {
                    if self.ensure_live(&mut tx, &session).await {
                        let live = self.live.get_mut(&session).expect("ensured");
                        // Cumulative counters no session could have reached by now are cut
                        // to what it could (one bad report must not skew every QoE report).
                        let events = live.events_by(at);
                        sample.rebuffer_count = sample.rebuffer_count.min(events);
                        sample.quality_switches = sample.quality_switches.min(events);
                        sample.rebuffer_ms = sample.rebuffer_ms.min(live.life_ms(at));
                        // Players report cumulative counters: count only what is new.
                        let d = delta(&mut deltas, &session);
                        let new_rebuffers = (sample.rebuffer_count - live.rebuffer_count).max(0);
                        let new_rebuffer_ms = (sample.rebuffer_ms - live.rebuffer_ms).max(0);
                        let new_switches = (sample.quality_switches - live.switches).max(0);
                        d.rebuffer_count += new_rebuffers;
                        d.rebuffer_ms += new_rebuffer_ms;
                        d.switches += new_switches;
                        d.buffer_sum += sample.buffer_health;
                        d.buffer_n += 1;
                        d.updated_at = d.updated_at.max(at);
                        live.rebuffer_count += new_rebuffers;
                        live.rebuffer_ms += new_rebuffer_ms;
                        live.switches += new_switches;
                        perf.push((session, at, sample));
                    }
                }
                Event::End {
                    session,
                    at,
                    position_ms,
                } => {
                    if self.ensure_live(&mut tx, &session).await {
                        let live = self.live.get_mut(&session).expect("ensured");
                        if live.ended {
                            continue;
                        }
                        live.ended = true;
                        let d = delta(&mut deltas, &session);
                        if let Some(p) = position_ms {
                            advance(live, d, at, p);
                        }
                        d.ended_at = Some(at);
                        d.updated_at = d.updated_at.max(at);
                        ended.push(session);
                    }
                }
                Event::Pause {
                    session,
                    at,
                    position_ms,
                } => {
                    let Some(live) = self.open_play(&mut tx, &session).await else {
                        continue;
                    };
                    advance(live, delta(&mut deltas, &session), at, position_ms);
                    live.paused = true;
                }
                Event::Resume { session, at } => {
                    let Some(live) = self.open_play(&mut tx, &session).await else {
                        continue;
                    };
                    live.paused = false;
                    // Listening time runs from here, not from the pause.
                    live.last_at = live.last_at.max(at);
                    let d = delta(&mut deltas, &session);
                    d.updated_at = d.updated_at.max(at);
                }
                Event::EndSilent { .. } => unreachable!("sweeps are taken out before apply"),
                Event::Social {
                    kind,
                    user_id,
                    target_type,
                    target_id,
                    at,
                    detail,
                } => {
                    social.push((
                        kind.as_str().to_string(),
                        user_id,
                        target_type,
                        target_id,
                        at,
                        detail,
                    ));
                }
                Event::Playlist {
                    playlist_id,
                    user_id,
                    action,
                    track_id,
                    position,
                    at,
                } => {
                    playlists.push((
                        playlist_id,
                        user_id,
                        action,
                        track_id,
                        position.map(|p| p as i64),
                        at,
                    ));
                }
                Event::Flush(_) => unreachable!("flushes are taken out before apply"),
            }
        }

        for chunk in starts.chunks(ROWS_PER_INSERT / 4) {
            let sql = format!(
                "INSERT INTO play_sessions (id, user_id, track_id, ip, user_agent, referrer, platform, initial_quality, current_quality, connection_type, track_duration_ms, started_at, updated_at) VALUES {}",
                values_placeholders(chunk.len(), 13, self.backend)
            );
            let mut q = sqlx::query(&sql);
            for s in chunk {
                q = q
                    .bind(s.id.clone())
                    .bind(s.user_id.clone())
                    .bind(s.track_id.clone())
                    .bind(s.ip.clone())
                    .bind(s.user_agent.clone())
                    .bind(s.referrer.clone())
                    .bind(s.platform.as_str().to_string())
                    .bind(s.quality.clone())
                    .bind(s.quality.clone())
                    .bind(s.connection_type.clone())
                    .bind(s.track_duration_ms as i64)
                    .bind(s.at)
                    .bind(s.at);
            }
            q.execute(&mut *tx).await?;
        }
        for chunk in progress.chunks(ROWS_PER_INSERT) {
            let sql = format!(
                "INSERT INTO progress_events (session_id, at, position_ms, buffer_health) VALUES {}",
                values_placeholders(chunk.len(), 4, self.backend)
            );
            let mut q = sqlx::query(&sql);
            for (s, at, p, b) in chunk {
                q = q.bind(s.clone()).bind(*at).bind(*p).bind(*b);
            }
            q.execute(&mut *tx).await?;
        }
        for chunk in switches.chunks(ROWS_PER_INSERT / 2) {
            let sql = format!(
                "INSERT INTO quality_switches (session_id, at, from_quality, to_quality, reason) VALUES {}",
                values_placeholders(chunk.len(), 5, self.backend)
            );
            let mut q = sqlx::query(&sql);
            for (s, at, f, t, r) in chunk {
                q = q
                    .bind(s.clone())
                    .bind(*at)
                    .bind(f.clone())
                    .bind(t.clone())
                    .bind(r.clone());
            }
            q.execute(&mut *tx).await?;
        }
        for chunk in rebuffers.chunks(ROWS_PER_INSERT) {
            let sql = format!(
                "INSERT INTO rebuffer_events (session_id, at, duration_ms) VALUES {}",
                values_placeholders(chunk.len(), 3, self.backend)
            );
            let mut q = sqlx::query(&sql);
            for (s, at, d) in chunk {
                q = q.bind(s.clone()).bind(*at).bind(*d);
            }
            q.execute(&mut *tx).await?;
        }
        for chunk in perf.chunks(ROWS_PER_INSERT / 3) {
            let sql = format!(
                "INSERT INTO performance_reports (session_id, at, buffer_health, download_kbps, packet_loss, latency_ms, rebuffer_count, rebuffer_ms, quality_switches) VALUES {}",
                values_placeholders(chunk.len(), 9, self.backend)
            );
            let mut q = sqlx::query(&sql);
            for (s, at, p) in chunk {
                q = q
                    .bind(s.clone())
                    .bind(*at)
                    .bind(p.buffer_health)
                    .bind(p.download_kbps)
                    .bind(p.packet_loss)
                    .bind(p.latency_ms)
                    .bind(p.rebuffer_count)
                    .bind(p.rebuffer_ms)
                    .bind(p.quality_switches);
            }
            q.execute(&mut *tx).await?;
        }
        for chunk in social.chunks(ROWS_PER_INSERT / 2) {
            let sql = format!(
                "INSERT INTO social_events (kind, user_id, target_type, target_id, at, detail) VALUES {}",
                values_placeholders(chunk.len(), 6, self.backend)
            );
            let mut q = sqlx::query(&sql);
            for (k, u, tt, ti, at, d) in chunk {
                q = q
                    .bind(k.clone())
                    .bind(u.clone())
                    .bind(tt.clone())
                    .bind(ti.clone())
                    .bind(*at)
                    .bind(d.clone());
            }
            q.execute(&mut *tx).await?;
        }
        for chunk in playlists.chunks(ROWS_PER_INSERT / 2) {
            let sql = format!(
                "INSERT INTO playlist_events (playlist_id, user_id, action, track_id, position, at) VALUES {}",
                values_placeholders(chunk.len(), 6, self.backend)
            );
            let mut q = sqlx::query(&sql);
            for (p, u, a, t, pos, at) in chunk {
                q = q
                    .bind(p.clone())
                    .bind(u.clone())
                    .bind(a.clone())
                    .bind(t.clone())
                    .bind(*pos)
                    .bind(*at);
            }
            q.execute(&mut *tx).await?;
        }
        let mut gone = Vec::new();
        for (id, d) in &deltas {
            let Some(live) = self.live.get(id) else {
                continue;
            };
            let updated = sqlx::query(
                "UPDATE play_sessions SET position_ms = $1, max_position_ms = $2, updated_at = $3, \
                 ended_at = COALESCE($4, ended_at), current_quality = $5, \
                 played_ms = played_ms + $6, \
                 buffer_health_sum = buffer_health_sum + $7, buffer_health_samples = buffer_health_samples + $8, \
                 rebuffer_count = rebuffer_count + $9, rebuffer_ms = rebuffer_ms + $10, \
                 quality_switches = quality_switches + $11, bitrate_kbps_ms = bitrate_kbps_ms + $12, \
                 startup_ms = COALESCE(startup_ms, $13) WHERE id = $14",
            )
            .bind(live.position as i64)
            .bind(live.max_position as i64)
            .bind(d.updated_at.max(live.last_at))
            .bind(d.ended_at)
            .bind(live.quality.clone())
            .bind(d.played_ms)
            .bind(d.buffer_sum)
            .bind(d.buffer_n)
            .bind(d.rebuffer_count)
            .bind(d.rebuffer_ms)
            .bind(d.switches)
            .bind(d.kbps_ms)
            .bind(d.startup_ms)
            .bind(id.clone())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if updated == 0 {
                gone.push(id.clone());
            }
        }
        // Sessions erased (user deletion, retention) while still reporting: drop what this
        // batch wrote for them, and keep them out of the roll-ups.
        for id in &gone {
            for table in [
                "progress_events",
                "quality_switches",
                "rebuffer_events",
                "performance_reports",
            ] {
                sqlx::query(&format!("DELETE FROM {table} WHERE session_id = $1"))
                    .bind(id.clone())
                    .execute(&mut *tx)
                    .await?;
            }
            deltas.remove(id);
        }
        self.write_rollups(&mut tx, &starts, &deltas).await?;
        // After this batch's updates, so a play that reported in it is not taken for silent.
        // Silent means past `before` by more than the track's length: a long mix played to its
        // end without a report (a progressive download, a client that reports only its end) is
        // not cut short.
        let mut swept = 0;
        if let Some(before) = sweep_before {
            swept = sqlx::query(
                "UPDATE play_sessions SET ended_at = updated_at \
                 WHERE ended_at IS NULL AND updated_at < $1 AND updated_at + track_duration_ms < $1",
            )
            .bind(before)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        if let Some(before) = sweep_before {
            // Ended now: read back (as ended) should they ever report again.
            self.live
                .retain(|_, l| l.last_at + l.track_ms as i64 >= before);
        }
        for id in ended.iter().chain(&gone) {
            self.live.remove(id);
        }
        // Sessions abandoned without an end (a closed tab) would otherwise stay in memory for
        // good; they are read back from the database if they ever report again.
        self.batches += 1;
        if self.batches % 256 == 0 {
            let horizon = self.live.values().map(|l| l.last_at).max().unwrap_or(0) - LIVE_IDLE_MS;
            self.live.retain(|_, l| l.last_at >= horizon);
        }
        Ok(swept)
    }
}

impl Writer {
    /// Adds this batch's contribution to the daily roll-ups (one upsert per touched row).
    async fn write_rollups(
        &mut self,
        tx: &mut Transaction<'_, Any>,
        starts: &[SessionStart],
        deltas: &HashMap<String, Delta>,
    ) -> Result<(), sqlx::Error> {
        let mut tracks: HashMap<(i64, &str), (i64, i64)> = HashMap::new();
        let mut qoe: HashMap<(i64, &str, &str), QoeAdd> = HashMap::new();
        let groups: Vec<(Arc<RollupGroup>, bool, Option<&Delta>)> =
            starts
                .iter()
                .filter_map(|s| self.live.get(&s.id).map(|l| (l.group.clone(), true, None)))
                .chain(deltas.iter().filter_map(|(id, d)| {
                    self.live.get(id).map(|l| (l.group.clone(), false, Some(d)))
                }))
                .collect();
        let mut first_startups = Vec::new();
        for (id, d) in deltas {
            if let (Some(s), Some(live)) = (d.startup_ms, self.live.get(id)) {
                if !live.has_startup {
                    first_startups.push((id.clone(), live.group.clone(), s));
                }
            }
        }
        for (g, is_start, d) in &groups {
            let t = tracks.entry((g.day, g.track_id.as_str())).or_default();
            let q = qoe
                .entry((g.day, g.platform.as_str(), g.connection_type.as_str()))
                .or_default();
            if *is_start {
                t.0 += 1;
                q.sessions += 1;
            }
            if let Some(d) = d {
                t.1 += d.played_ms;
                q.played_ms += d.played_ms;
                q.kbps_ms += d.kbps_ms;
                q.rebuffer_ms += d.rebuffer_ms;
                q.switches += d.switches;
            }
        }
        for (_, g, s) in &first_startups {
            let q = qoe
                .entry((g.day, g.platform.as_str(), g.connection_type.as_str()))
                .or_default();
            q.startup_sum += s;
            q.startup_n += 1;
        }
        for ((day, track), (plays, listening)) in &tracks {
            sqlx::query(
                "INSERT INTO track_daily (day, track_id, plays, listening_ms) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (day, track_id) DO UPDATE SET plays = track_daily.plays + excluded.plays, \
                 listening_ms = track_daily.listening_ms + excluded.listening_ms",
            )
            .bind(*day)
            .bind(track.to_string())
            .bind(*plays)
            .bind(*listening)
            .execute(&mut **tx)
            .await?;
        }
        let mut totals: HashMap<&str, (i64, i64)> = HashMap::new();
        for ((_, track), (plays, listening)) in &tracks {
            let t = totals.entry(track).or_default();
            t.0 += plays;
            t.1 += listening;
        }
        for (track, (plays, listening)) in &totals {
            sqlx::query(
                "INSERT INTO track_totals (track_id, plays, listening_ms) VALUES ($1, $2, $3) \
                 ON CONFLICT (track_id) DO UPDATE SET plays = track_totals.plays + excluded.plays, \
                 listening_ms = track_totals.listening_ms + excluded.listening_ms",
            )
            .bind(track.to_string())
            .bind(*plays)
            .bind(*listening)
            .execute(&mut **tx)
            .await?;
        }
        for ((day, platform, connection), q) in &qoe {
            sqlx::query(
                "INSERT INTO qoe_daily (day, platform, connection_type, sessions, startup_sum, startup_n, rebuffer_ms, played_ms, bitrate_kbps_ms, switches) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (day, platform, connection_type) DO UPDATE SET \
                 sessions = qoe_daily.sessions + excluded.sessions, startup_sum = qoe_daily.startup_sum + excluded.startup_sum, \
                 startup_n = qoe_daily.startup_n + excluded.startup_n, rebuffer_ms = qoe_daily.rebuffer_ms + excluded.rebuffer_ms, \
                 played_ms = qoe_daily.played_ms + excluded.played_ms, bitrate_kbps_ms = qoe_daily.bitrate_kbps_ms + excluded.bitrate_kbps_ms, \
                 switches = qoe_daily.switches + excluded.switches",
            )
            .bind(*day)
            .bind(platform.to_string())
            .bind(connection.to_string())
            .bind(q.sessions)
            .bind(q.startup_sum)
            .bind(q.startup_n)
            .bind(q.rebuffer_ms)
            .bind(q.played_ms)
            .bind(q.kbps_ms)
            .bind(q.switches)
            .execute(&mut **tx)
            .await?;
        }
        for (id, _, _) in first_startups {
            if let Some(live) = self.live.get_mut(&id) {
                live.has_startup = true;
            }
        }
        Ok(())
    }
}

/// The batch's delta for `session`, created on first use (without cloning the id each time).
fn delta<'a>(deltas: &'a mut HashMap<String, Delta>, session: &str) -> &'a mut Delta {
    if !deltas.contains_key(session) {
        deltas.insert(session.to_string(), Delta::default());
    }
    deltas.get_mut(session).expect("just inserted")
}

/// Moves a session's position to the one a player reported at time `at` (held within the
/// track) and returns it, counting forward movement as listening unless the play is paused
/// (see [`Event::Pause`]) or the move is a jump (a seek): more than 30 s, or more than the
/// wall-clock time since the last report plus 5 s when reports are sparse (a client may report
/// nothing until its end).
fn advance(live: &mut Live, d: &mut Delta, at: i64, reported: u64) -> u64 {
    let position = live.position(reported);
    let forward = position.saturating_sub(live.position) as i64;
    let wall = (at - live.last_at).max(0);
    if !live.paused && forward > 0 && forward <= 30_000.max(wall + 5_000) {
        d.played_ms += forward;
        d.kbps_ms += f64::from(live.kbps) * forward as f64;
    }
    live.position = position;
    live.max_position = live.max_position.max(position);
    live.last_at = live.last_at.max(at);
    d.updated_at = d.updated_at.max(at);
    position
}

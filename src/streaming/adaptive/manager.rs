//! The spec's `AdaptiveStreamingManager`: profiles, sessions, the quality monitor, and the HLS
//! playlists of library tracks.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::sync::{broadcast, RwLock};

use super::policy::{AbrController, AbrInput};
use super::table::{Held, SessionHolder, SessionTable};
use super::{
    select_initial_profile, AdaptiveProfile, ClientCapabilities, HLSManifest, HLSSegment,
    MasterPlaylist, PerformanceMetrics, StreamInfo, StreamingSession, StreamingStats,
};
use crate::config::Config;
use crate::library::{Library, Track};
use crate::media::cache::TranscodeRequest;
use crate::media::encoder_delay::aligned_delay;
use crate::media::id3;
use crate::media::layout::{segment_frames, SegmentLayout};
use crate::streaming::hls;

#[derive(Debug, thiserror::Error)]
pub enum StreamingError {
    #[error("unknown track {0:?}")]
    UnknownTrack(String),
    #[error("unknown quality {0:?}")]
    UnknownQuality(String),
    #[error("unknown streaming session {0:?}")]
    UnknownSession(String),
    #[error("unknown segment {0:?}")]
    UnknownSegment(String),
    #[error("no library is attached to this manager")]
    NoLibrary,
    /// The first scan of the library has not finished: the track may well exist (ids are
    /// stable across restarts), so this is "try again", not "no such track".
    #[error("the library is still being scanned")]
    NotReady,
    #[error("too many streaming sessions open ({0}); try again later")]
    TooManySessions(usize),
    /// The library could not be read at all (see [`Library::set_unavailable`]).
    #[error("the library cannot be read ({0}); tracks may come back once it can")]
    LibraryUnavailable(String),
}

/// Most sessions held at once. A session is about a kilobyte and lives 30 idle minutes; the cap
/// keeps a client that creates sessions in a loop from growing memory without bound (and the
/// monitor's pass over them) while leaving room for a large audience.
pub const MAX_SESSIONS: usize = 100_000;

/// A track of the library, or why there is none: [`StreamingError::NotReady`] while the first
/// scan runs and [`StreamingError::LibraryUnavailable`] while the library cannot be read (a
/// track not seen yet may exist), else [`StreamingError::UnknownTrack`].
pub fn find_track(library: &Library, track_id: &str) -> Result<Arc<Track>, StreamingError> {
    match library.get(track_id) {
        Some(t) => Ok(t),
        None if !library.is_ready() => Err(StreamingError::NotReady),
        None => match library.unavailable() {
            Some(reason) => Err(StreamingError::LibraryUnavailable(reason)),
            None => Err(StreamingError::UnknownTrack(track_id.to_string())),
        },
    }
}

/// The version in a profile's segment names, its cache entries and its validators: the file's
/// and the pipeline's ([`crate::media::output_version`]), then a tag of what the configuration
/// may change in this profile's bytes (codec, bitrate, rate, channels, segment length, start
/// delay; adding a rung to the ladder can change the last two). Segments are cached as
/// `immutable`, so after such a change the same URL must not name other audio: it names none.
fn served_version(track: &Track, profile: &AdaptiveProfile, layout: &SegmentLayout) -> String {
    use sha2::Digest as _;
    let shape = format!(
        "{}/{}/{}/{}/{}/{}",
        profile.codec,
        profile.bitrate_kbps,
        profile.sample_rate,
        profile.channels,
        layout.segment_frames,
        layout.delay
    );
    let digest = sha2::Sha256::digest(shape.as_bytes());
    let tag: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("{}{tag}", crate::media::output_version(&track.version))
}

/// A parsed segment file name: `<version>-<index>.<ext>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentName {
    pub version: String,
    pub index: usize,
}

/// A change of a session's quality decided on the server (by the quality monitor or by the
/// application through [`AdaptiveStreamingManager::update_session_quality`]). The server pushes
/// it to the session's listener (`QualityChanged`) and records it in analytics.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QualityChange {
    pub session_id: String,
    pub track_id: String,
    /// The listener the session belongs to, when known.
    pub user_id: Option<String>,
    pub from: String,
    pub to: String,
    pub reason: String,
}

/// Buffer target assumed for players that do not say theirs (hls.js's `maxBufferLength`).
const DEFAULT_BUFFER_S: f64 = 30.0;

/// Sessions idle longer than this are dropped by the quality monitor.
const SESSION_IDLE: Duration = Duration::from_secs(30 * 60);

/// Expired session ids held for a slow receiver (see
/// [`AdaptiveStreamingManager::expired_sessions`]).
const EXPIRED_BACKLOG: usize = 16_384;
/// How often the quality monitor looks at sessions.
const MONITOR_PERIOD: Duration = Duration::from_secs(2);
/// Sessions decided per hold of the sessions lock by the quality monitor.
const MONITOR_CHUNK: usize = 256;

pub struct AdaptiveStreamingManager {
    config: Arc<Config>,
    /// Why a tokio `RwLock`: the spec's API is async, and readers (playlist requests) far
    /// outnumber writers; no lock is held across other awaits.
    sessions: Arc<RwLock<SessionTable<SessionState>>>,
    profiles: Vec<AdaptiveProfile>,
    /// Frames per segment for each profile (aligned within a codec family).
    segment_frames: HashMap<String, u64>,
    library: Option<Arc<Library>>,
    monitor_started: AtomicBool,
    stats: Arc<Counters>,
    changes: broadcast::Sender<QualityChange>,
    expired: broadcast::Sender<String>,
}

#[derive(Debug, Clone)]
struct SessionState {
    session: StreamingSession,
    user_id: Option<String>,
    /// Whose share of the table the session counts in ([`SessionHolder::key`]).
    holder: Option<String>,
    /// The last report or use, on the monotonic clock: what idle expiry goes by (a wall clock
    /// stepped by NTP or by hand would expire every session at once, or none for hours).
    touched: tokio::time::Instant,
    /// The session's ABR state (throughput history, prediction errors).
    controller: AbrController,
    /// The last quality the server chose for this session. The player may play below it (its
    /// own ABR reacts to emergencies between reports); a change is announced only when this
    /// choice changes, so a player and the server that disagree cannot flood the listener.
    recommended: String,
    /// Rebuffers already seen in the player's cumulative count.
    rebuffers_seen: u32,
    /// The quality the player last said it plays (initially the session's first profile).
    player_quality: String,
    pending_report: bool,
    /// Seconds of the track after the playhead at the latest report, when the player said where
    /// it was: near the end a player's buffer health is measured against what is left, not
    /// against its target (see [`buffer_seconds`]).
    media_left_s: Option<f64>,
    /// The profile of the session's progressive download (`/stream`), fixed by its first
    /// `GET`: a download is one file, and a player that asks for the next byte range must get
    /// bytes of the same encoding, whatever the monitor decided meanwhile.
    progressive: Option<String>,
}

impl SessionState {
    /// A report or a use of the session: it is not idle.
    fn touch(&mut self) {
        self.session.last_updated = SystemTime::now();
        self.touched = tokio::time::Instant::now();
    }
}

impl Held for SessionState {
    fn holder(&self) -> Option<&str> {
        self.holder.as_deref()
    }

    fn last_used(&self) -> tokio::time::Instant {
        self.touched
    }
}

#[derive(Default)]
struct Counters {
    sessions_created: AtomicU64,
    quality_changes: AtomicU64,
    sessions_expired: AtomicU64,
    sessions_evicted: AtomicU64,
}

impl AdaptiveStreamingManager {
    /// A manager with the configured ladder and no library (the spec's constructor): sessions and
    /// master playlists work; media playlists need [`Self::with_library`].
    pub fn new(config: Arc<Config>) -> Self {
        let profiles = AdaptiveProfile::ladder(&config.profiles);
        let segment_frames = profiles
            .iter()
            .map(|p| {
                (
                    p.quality_id.clone(),
                    segment_frames(p, &profiles, config.segment_target_secs),
                )
            })
            .collect();
        Self {
            config,
            sessions: Arc::default(),
            profiles,
            segment_frames,
            library: None,
            monitor_started: AtomicBool::new(false),
            stats: Arc::default(),
            changes: broadcast::channel(1024).0,
            expired: broadcast::channel(EXPIRED_BACKLOG).0,
        }
    }

    /// Ids of the sessions the monitor expires (idle for 30 minutes), as it does, and of those
    /// ended to make room in their holder's share: their listeners left without saying so,
    /// and whoever records plays ends them. A receiver that falls more than `EXPIRED_BACKLOG`
    /// behind loses the oldest.
    pub fn expired_sessions(&self) -> broadcast::Receiver<String> {
        self.expired.subscribe()
    }

    /// Removes every session and returns their ids (at shutdown: their plays end with the
    /// process, and are recorded as ended).
    pub async fn drain_sessions(&self) -> Vec<String> {
        self.sessions.write().await.drain()
    }

    /// Quality changes decided on the server, as they happen. A receiver that falls more than
    /// 1024 changes behind loses the oldest (and is told so by `recv`).
    pub fn quality_changes(&self) -> broadcast::Receiver<QualityChange> {
        self.changes.subscribe()
    }

    /// Media seconds per segment of a profile (segments of a codec family are aligned).
    fn segment_secs(&self, quality: &str) -> f64 {
        match (self.profile(quality), self.segment_frames.get(quality)) {
            (Some(p), Some(&frames)) => {
                frames as f64 * f64::from(p.frame_len()) / f64::from(p.sample_rate.max(1))
            }
            _ => self.config.segment_target_secs,
        }
    }

    /// A manager serving the tracks of `library`.
    pub fn with_library(config: Arc<Config>, library: Arc<Library>) -> Self {
        Self {
            library: Some(library),
            ..Self::new(config)
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The ladder, best first.
    pub fn profiles(&self) -> &[AdaptiveProfile] {
        &self.profiles
    }

    pub fn profile(&self, quality: &str) -> Option<&AdaptiveProfile> {
        self.profiles.iter().find(|p| p.quality_id == quality)
    }

    /// Starts the background task that re-decides each session's quality from its reports and
    /// drops idle sessions. Idempotent; the task ends when the manager is dropped.
    pub async fn start_quality_monitor(&self) {
        if self.monitor_started.swap(true, Ordering::SeqCst) {
            return;
        }
        let sessions = Arc::downgrade(&self.sessions);
        let stats = self.stats.clone();
        let profiles = self.profiles.clone();
        let segment_secs: HashMap<String, f64> = self
            .profiles
            .iter()
            .map(|p| (p.quality_id.clone(), self.segment_secs(&p.quality_id)))
            .collect();
        let changes = self.changes.clone();
        let expired = self.expired.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(MONITOR_PERIOD);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(sessions) = sessions.upgrade() else {
                    break;
                };
                let gone;
                let pending: Vec<String> = {
                    let mut sessions = sessions.write().await;
                    gone = sessions.retain(|_, s| s.touched.elapsed() < SESSION_IDLE);
                    sessions
                        .iter()
                        .filter(|(_, s)| s.pending_report)
                        .map(|(id, _)| id.clone())
                        .collect()
                };
                stats
                    .sessions_expired
                    .fetch_add(gone.len() as u64, Ordering::Relaxed);
                for id in gone {
                    // No receiver (no server wired) is fine.
                    let _ = expired.send(id);
                }
                // Decisions take ~10 µs each: made a chunk at a time, so that with many sessions
                // the players' reports and playlist requests never wait long for the lock.
                for chunk in pending.chunks(MONITOR_CHUNK) {
                    let mut sessions = sessions.write().await;
                    for id in chunk {
                        let Some(state) = sessions.get_mut(id).filter(|s| s.pending_report) else {
                            continue;
                        };
                        state.pending_report = false;
                        let secs = segment_secs
                            .get(&state.session.current_quality)
                            .copied()
                            .unwrap_or(6.0);
                        if let Some(change) = monitor_decision(state, &profiles, secs) {
                            tracing::info!(session_id = %change.session_id, from = %change.from, to = %change.to, reason = %change.reason, "quality changed by monitor");
                            stats.quality_changes.fetch_add(1, Ordering::Relaxed);
                            // No receiver (no server wired, e.g. the spec's examples) is fine.
                            let _ = changes.send(change);
                        }
                    }
                    drop(sessions);
                    tokio::task::yield_now().await;
                }
            }
        });
    }

    /// Creates a session with unknown capabilities and returns its initial profile.
    pub async fn create_session(&self, session_id: String, track_id: String) -> AdaptiveProfile {
        self.create_session_with_capabilities(
            session_id,
            track_id,
            String::new(),
            ClientCapabilities::default(),
        )
        .await
    }

    /// Creates a session for a client with known capabilities; returns the initial profile
    /// (see `capabilities` for the selection table).
    pub async fn create_session_with_capabilities(
        &self,
        session_id: String,
        track_id: String,
        client_id: String,
        capabilities: ClientCapabilities,
    ) -> AdaptiveProfile {
        self.create_session_for_user(session_id, track_id, client_id, None, capabilities)
            .await
    }

    /// Whether another session may be created ([`MAX_SESSIONS`]).
    pub async fn has_room_for_session(&self) -> bool {
        self.sessions.read().await.len() < MAX_SESSIONS
    }

    /// As [`Self::create_session_with_capabilities`], for a known listener: the quality
    /// monitor's changes are addressed to them, and the session counts in their share.
    pub async fn create_session_for_user(
        &self,
        session_id: String,
        track_id: String,
        client_id: String,
        user_id: Option<String>,
        capabilities: ClientCapabilities,
    ) -> AdaptiveProfile {
        let holder = user_id.clone().map(SessionHolder::User);
        self.create_held_session(
            session_id,
            track_id,
            client_id,
            user_id,
            holder,
            capabilities,
        )
        .await
    }

    /// As [`Self::create_session_for_user`], counted in `holder`'s share of the sessions (see
    /// [`super::table`]): past it, the holder's least recently used sessions are ended to make
    /// room, and announced with the expired ones ([`Self::expired_sessions`]) so that their
    /// plays end.
    pub async fn create_held_session(
        &self,
        session_id: String,
        track_id: String,
        client_id: String,
        user_id: Option<String>,
        holder: Option<SessionHolder>,
        capabilities: ClientCapabilities,
    ) -> AdaptiveProfile {
        let profile = select_initial_profile(&capabilities, &self.profiles);
        let controller = match capabilities.estimated_bandwidth_kbps {
            0 => AbrController::new(),
            kbps => AbrController::with_prior(f64::from(kbps)),
        };
        let now = SystemTime::now();
        let session = StreamingSession {
            session_id: session_id.clone(),
            track_id,
            client_id,
            current_quality: profile.quality_id.clone(),
            client_capabilities: capabilities,
            performance_metrics: PerformanceMetrics::default(),
            created_at: now,
            last_updated: now,
        };
        let share = holder.as_ref().map_or(MAX_SESSIONS, SessionHolder::share);
        let evicted = self.sessions.write().await.insert(
            session_id,
            SessionState {
                session,
                user_id,
                holder: holder.as_ref().map(SessionHolder::key),
                touched: tokio::time::Instant::now(),
                controller,
                recommended: profile.quality_id.clone(),
                rebuffers_seen: 0,
                player_quality: profile.quality_id.clone(),
                progressive: None,
                pending_report: false,
                media_left_s: None,
            },
            share,
        );
        self.stats.sessions_created.fetch_add(1, Ordering::Relaxed);
        if !evicted.is_empty() {
            tracing::info!(
                holder = ?holder,
                ended = evicted.len(),
                "a holder past its share of sessions: its oldest ended"
            );
            self.stats
                .sessions_evicted
                .fetch_add(evicted.len() as u64, Ordering::Relaxed);
            for (id, _) in evicted {
                let _ = self.expired.send(id);
            }
        }
        profile
    }

    /// Sets a session's quality (ignored for unknown sessions or qualities, as the spec's
    /// signature has no error to return). A change made this way is announced like the
    /// monitor's (see [`Self::quality_changes`]).
    pub async fn update_session_quality(&self, session_id: &str, quality: String) {
        if self.profile(&quality).is_none() {
            tracing::warn!(session_id, quality, "ignoring unknown quality");
            return;
        }
        let change = {
            let mut sessions = self.sessions.write().await;
            let Some(state) = sessions.get_mut(session_id) else {
                return;
            };
            state.touch();
            if state.session.current_quality == quality {
                return;
            }
            let change = QualityChange {
                session_id: session_id.to_string(),
                track_id: state.session.track_id.clone(),
                user_id: state.user_id.clone(),
                from: std::mem::replace(&mut state.session.current_quality, quality.clone()),
                to: quality.clone(),
                reason: "set by the application".into(),
            };
            state.recommended = quality;
            let m = &mut state.session.performance_metrics;
            m.quality_switches = m.quality_switches.saturating_add(1);
            change
        };
        self.stats.quality_changes.fetch_add(1, Ordering::Relaxed);
        let _ = self.changes.send(change);
    }

    /// Records the quality the player reports it is playing (its own ABR may have switched).
    /// Returns the player's previous quality when it changed: the session then follows what is
    /// really played, nothing is announced. A report that still names the quality the player
    /// had before a server-side change is no switch (the player may not have applied it yet).
    pub async fn record_player_quality(
        &self,
        session_id: &str,
        quality: &str,
    ) -> Result<Option<String>, StreamingError> {
        if self.profile(quality).is_none() {
            return Err(StreamingError::UnknownQuality(quality.to_string()));
        }
        let mut sessions = self.sessions.write().await;
        let state = sessions
            .get_mut(session_id)
            .ok_or_else(|| StreamingError::UnknownSession(session_id.to_string()))?;
        state.touch();
        if state.player_quality == quality {
            return Ok(None);
        }
        let from = std::mem::replace(&mut state.player_quality, quality.to_string());
        if state.session.current_quality != quality {
            state.session.current_quality = quality.to_string();
            let m = &mut state.session.performance_metrics;
            m.quality_switches = m.quality_switches.saturating_add(1);
        }
        Ok(Some(from))
    }

    /// Records a player's report; the quality monitor acts on it at its next pass.
    pub async fn report_metrics(
        &self,
        session_id: &str,
        metrics: PerformanceMetrics,
    ) -> Result<StreamingSession, StreamingError> {
        self.report_metrics_with_media_left(session_id, metrics, None)
            .await
    }

    /// [`Self::report_metrics`], knowing how much of the track is left after the playhead
    /// (from the position the player reports and the track's length). Near the end of a track
    /// a player's buffer cannot reach its target, so players (ours included) measure buffer
    /// health against what is left: 100 % then means "the rest of the track is here", not
    /// "a full buffer", and the monitor must not read it as headroom to step up on.
    pub async fn report_metrics_with_media_left(
        &self,
        session_id: &str,
        metrics: PerformanceMetrics,
        media_left: Option<Duration>,
    ) -> Result<StreamingSession, StreamingError> {
        let mut sessions = self.sessions.write().await;
        let state = sessions
            .get_mut(session_id)
            .ok_or_else(|| StreamingError::UnknownSession(session_id.to_string()))?;
        let switches = state.session.performance_metrics.quality_switches;
        state.session.performance_metrics = PerformanceMetrics {
            quality_switches: switches.max(metrics.quality_switches),
            ..metrics.sanitized()
        };
        state.touch();
        state.pending_report = true;
        state.media_left_s = media_left.map(|d| d.as_secs_f64());
        Ok(state.session.clone())
    }

    /// The listener a session belongs to, when known.
    pub async fn session_user(&self, session_id: &str) -> Option<String> {
        self.sessions
            .read()
            .await
            .get(session_id)
            .and_then(|s| s.user_id.clone())
    }

    /// Sessions with a report or change within `within`: (user, track) of each.
    pub async fn active_sessions(&self, within: Duration) -> Vec<(Option<String>, String)> {
        self.sessions
            .read()
            .await
            .values()
            .filter(|s| s.touched.elapsed() < within)
            .map(|s| (s.user_id.clone(), s.session.track_id.clone()))
            .collect()
    }

    /// Ends a session; `false` if there was none.
    pub async fn end_session(&self, session_id: &str) -> bool {
        self.sessions.write().await.remove(session_id).is_some()
    }

    /// The profile a progressive download (`/stream`) of this session is served in: the one
    /// its first download took, else the session's current quality, which `fix` (a `GET`, not
    /// a `HEAD`) makes the download's for the session's life. `None` for an unknown session, or
    /// one of another track (a session plays one track).
    pub async fn progressive_quality(
        &self,
        session_id: &str,
        track_id: &str,
        fix: bool,
    ) -> Option<String> {
        let mut sessions = self.sessions.write().await;
        let state = sessions
            .get_mut(session_id)
            .filter(|s| s.session.track_id == track_id)?;
        // A download is the session in use: a client that posts no metrics (the spec's hook
        // posts none) must not lose its session, and with it its encoding, in a long mix.
        state.touch();
        if let Some(q) = &state.progressive {
            return Some(q.clone());
        }
        let q = state.session.current_quality.clone();
        if fix {
            state.progressive = Some(q.clone());
        }
        Some(q)
    }

    pub async fn get_session(&self, session_id: &str) -> Option<StreamingSession> {
        self.sessions
            .read()
            .await
            .get(session_id)
            .map(|s| s.session.clone())
    }

    /// The master playlist of a track: the AAC rungs, a safe start (the smallest) listed first.
    pub async fn generate_master_playlist(&self, track_id: &str) -> Result<String, StreamingError> {
        self.generate_master_playlist_for(track_id, None).await
    }

    /// The master playlist with the session's current profile listed first (HLS clients start
    /// with the first variant). A session on the MP3 rung starts on the smallest AAC rung.
    ///
    /// A session this node does not know — expired while the listener was paused, created on
    /// another node behind the load balancer, lost in a restart, or another track's (a session
    /// plays one track) — gets the default master, as `/stream` falls back to the capabilities'
    /// choice: a 404 here is fatal to hls.js, and the order is only a starting hint.
    pub async fn generate_master_playlist_for(
        &self,
        track_id: &str,
        session_id: Option<&str>,
    ) -> Result<String, StreamingError> {
        if let Some(lib) = &self.library {
            find_track(lib, track_id)?;
        }
        let first = match session_id {
            Some(id) => {
                let known = self
                    .get_session(id)
                    .await
                    .filter(|s| s.track_id == track_id);
                if known.is_none() {
                    tracing::debug!(
                        session = id,
                        track = track_id,
                        "master for an unknown session: default order"
                    );
                }
                known.map(|s| s.current_quality)
            }
            None => None,
        };
        Ok(hls::render_master(&self.master_playlist(first.as_deref())))
    }

    /// The master playlist's data.
    pub fn master_playlist(&self, first: Option<&str>) -> MasterPlaylist {
        let mut variants: Vec<&AdaptiveProfile> =
            self.profiles.iter().filter(|p| p.codec == "aac").collect();
        if variants.is_empty() {
            variants = self.profiles.iter().collect();
        }
        variants.sort_by_key(|p| std::cmp::Reverse(p.bitrate_kbps));
        let start = first
            .and_then(|q| variants.iter().position(|p| p.quality_id == q))
            .unwrap_or(variants.len() - 1);
        let start = variants.remove(start);
        variants.insert(0, start);
        MasterPlaylist {
            version: 3,
            streams: variants.iter().map(|p| self.stream_info(p)).collect(),
        }
    }

    fn stream_info(&self, p: &AdaptiveProfile) -> StreamInfo {
        let frames = self.segment_frames[&p.quality_id];
        let seg_secs = f64::from(p.frame_len()) * frames as f64 / f64::from(p.sample_rate);
        let avg = f64::from(p.bitrate_kbps) * 1000.0 + (id3::TAG_LEN * 8) as f64 / seg_secs;
        StreamInfo {
            // CBR encoders: segments stay within a few percent of the average; 10% covers the
            // bit reservoir and header overhead.
            bandwidth: (avg * 1.1).round() as u32,
            average_bandwidth: Some(avg.round() as u32),
            codecs: p.hls_codecs().to_string(),
            resolution: None,
            url: format!("{}/playlist.m3u8", p.quality_id),
        }
    }

    /// The VOD media playlist of a track in one profile.
    pub async fn generate_quality_playlist(
        &self,
        track_id: &str,
        quality: &str,
    ) -> Result<String, StreamingError> {
        Ok(hls::render_media(&self.media_manifest(track_id, quality)?))
    }

    /// The media playlist's data.
    pub fn media_manifest(
        &self,
        track_id: &str,
        quality: &str,
    ) -> Result<HLSManifest, StreamingError> {
        let (track, profile, layout) = self.resolve(track_id, quality)?;
        let segments: Vec<HLSSegment> = layout
            .segments()
            .map(|s| HLSSegment {
                duration: layout.frames_secs(s.frames) as f32,
                url: format!(
                    "{}-{}.{}",
                    served_version(&track, profile, &layout),
                    s.index,
                    profile.file_extension
                ),
                byte_range: None,
            })
            .collect();
        let target = layout
            .frames_secs(layout.segment_frames.min(layout.total_frames))
            .round() as u32;
        Ok(HLSManifest {
            version: 3,
            target_duration: target,
            media_sequence: 0,
            segments,
            end_list: true,
        })
    }

    /// Parses a segment file name of `quality` for `track_id`.
    pub fn parse_segment_name(
        &self,
        quality: &str,
        name: &str,
    ) -> Result<SegmentName, StreamingError> {
        let bad = || StreamingError::UnknownSegment(name.to_string());
        let profile = self
            .profile(quality)
            .ok_or_else(|| StreamingError::UnknownQuality(quality.to_string()))?;
        let stem = name
            .strip_suffix(&format!(".{}", profile.file_extension))
            .ok_or_else(bad)?;
        let (version, index) = stem.rsplit_once('-').ok_or_else(bad)?;
        if version.is_empty()
            || !version.bytes().all(|b| b.is_ascii_hexdigit())
            || index.is_empty()
            || !index.bytes().all(|b| b.is_ascii_digit())
            || index.len() > 9
            // One name per segment: `-01` or `-000` would be the same bytes under another
            // URL, cached separately by every CDN and browser.
            || (index.len() > 1 && index.starts_with('0'))
        {
            return Err(bad());
        }
        Ok(SegmentName {
            version: version.to_string(),
            index: index.parse().map_err(|_| bad())?,
        })
    }

    /// What the cache needs to encode a track in a profile.
    pub fn transcode_request(
        &self,
        track_id: &str,
        quality: &str,
    ) -> Result<TranscodeRequest, StreamingError> {
        let (track, profile, layout) = self.resolve(track_id, quality)?;
        Ok(TranscodeRequest {
            track_id: track.id.clone(),
            version: served_version(&track, profile, &layout),
            source: track.path.clone(),
            source_name: track.filename.clone(),
            source_version: track.version.clone(),
            source_samples: track.samples,
            source_rate: track.sample_rate,
            profile: profile.clone(),
            layout,
        })
    }

    fn resolve(
        &self,
        track_id: &str,
        quality: &str,
    ) -> Result<(Arc<Track>, &AdaptiveProfile, SegmentLayout), StreamingError> {
        let lib = self.library.as_ref().ok_or(StreamingError::NoLibrary)?;
        let track = find_track(lib, track_id)?;
        let profile = self
            .profile(quality)
            .ok_or_else(|| StreamingError::UnknownQuality(quality.to_string()))?;
        let layout = SegmentLayout::new(
            track.samples,
            track.sample_rate,
            profile,
            self.segment_frames[&profile.quality_id],
            aligned_delay(profile, &self.profiles),
        );
        Ok((track, profile, layout))
    }

    /// The spec's streaming statistics: sessions now, by quality, by connection and device, and
    /// the totals since start.
    pub async fn get_streaming_stats(&self) -> serde_json::Value {
        serde_json::to_value(self.streaming_stats().await)
            .expect("streaming stats serialise to JSON")
    }

    /// [`Self::get_streaming_stats`], typed.
    pub async fn streaming_stats(&self) -> StreamingStats {
        let sessions = self.sessions.read().await;
        let mut by_quality: HashMap<String, u64> = self
            .profiles
            .iter()
            .map(|p| (p.quality_id.clone(), 0))
            .collect();
        let mut by_connection: HashMap<String, u64> = HashMap::new();
        let mut by_device: HashMap<String, u64> = HashMap::new();
        let mut buffer_sum = 0.0f64;
        let mut reported = 0u64;
        let mut rebuffers = 0u64;
        for s in sessions.values().map(|s| &s.session) {
            *by_quality.entry(s.current_quality.clone()).or_default() += 1;
            *by_connection
                .entry(format!("{:?}", s.client_capabilities.connection_type))
                .or_default() += 1;
            *by_device
                .entry(format!("{:?}", s.client_capabilities.device_type))
                .or_default() += 1;
            if s.performance_metrics.download_speed_kbps > 0
                || s.performance_metrics.buffer_health_percentage > 0.0
            {
                buffer_sum += f64::from(s.performance_metrics.buffer_health_percentage);
                reported += 1;
            }
            rebuffers += u64::from(s.performance_metrics.rebuffer_count);
        }
        StreamingStats {
            active_sessions: sessions.len() as u64,
            sessions_by_quality: by_quality,
            sessions_by_connection: by_connection,
            sessions_by_device: by_device,
            average_buffer_health: (reported > 0).then(|| buffer_sum / reported as f64),
            total_rebuffers: rebuffers,
            sessions_created: self.stats.sessions_created.load(Ordering::Relaxed),
            quality_changes: self.stats.quality_changes.load(Ordering::Relaxed),
            sessions_expired: self.stats.sessions_expired.load(Ordering::Relaxed),
            sessions_evicted: self.stats.sessions_evicted.load(Ordering::Relaxed),
            profiles: self.profiles.clone(),
            monitor_running: self.monitor_started.load(Ordering::Relaxed),
        }
    }
}

/// Seconds buffered, from a report's buffer health: a percentage of the player's target, or of
/// the rest of the track when less than the target is left (as players measure it). `None`
/// when the rest of the track is all buffered.
fn buffer_seconds(health_pct: f32, target_s: f64, media_left_s: Option<f64>) -> Option<f64> {
    let pct = f64::from(health_pct).clamp(0.0, 100.0);
    match media_left_s {
        // Half a second or less left (or a position past the catalogued end, which a player's
        // idea of the length can give): players call that full; nothing is left to fetch.
        Some(left) if left <= END_S => None,
        Some(left) if left < target_s => (pct < FULL_PCT).then_some(pct / 100.0 * left),
        _ => Some(pct / 100.0 * target_s),
    }
}

/// What is left of a track when it counts as played to its end (as our web player reckons).
const END_S: f64 = 0.5;

/// Buffer health at which what a player holds is "everything" (reports are rounded).
const FULL_PCT: f64 = 99.5;

/// Feeds a session's latest report to its controller and applies the decision; returns the
/// change to announce, if the server's choice changed.
fn monitor_decision(
    state: &mut SessionState,
    profiles: &[AdaptiveProfile],
    segment_s: f64,
) -> Option<QualityChange> {
    let metrics = &state.session.performance_metrics;
    state
        .controller
        .observe(f64::from(metrics.download_speed_kbps));
    if metrics.rebuffer_count > state.rebuffers_seen {
        state.controller.observe_stall();
    }
    state.rebuffers_seen = state.rebuffers_seen.max(metrics.rebuffer_count);
    // A client that turned adaptation off keeps the profile it has: the server only watches
    // (the controller stays current, should the client be switched by the application).
    if !state.session.client_capabilities.adaptive_enabled {
        return None;
    }
    let mut family = family_of(profiles, &state.session.current_quality);
    family.sort_by_key(|p| p.bitrate_kbps);
    let current = family
        .iter()
        .position(|p| p.quality_id == state.session.current_quality)?;
    let rungs: Vec<f64> = family.iter().map(|p| f64::from(p.bitrate_kbps)).collect();
    let target = match state.session.client_capabilities.buffer_duration_ms {
        0 => DEFAULT_BUFFER_S,
        ms => f64::from(ms) / 1000.0,
    };
    // The rest of the track is buffered: nothing is left to choose a rung for, and the buffer
    // will run out at the end of the track whatever the link does.
    let buffer_s = buffer_seconds(metrics.buffer_health_percentage, target, state.media_left_s)?;
    let decision = state.controller.decide(&AbrInput {
        rungs_kbps: &rungs,
        current,
        segment_s,
        buffer_s,
        buffer_max_s: target,
        rtt_s: f64::from(metrics.latency_ms) / 1000.0,
        loss: f64::from(metrics.packet_loss_percentage) / 100.0,
    });
    let to = &family[decision.rung].quality_id;
    if *to == state.recommended {
        return None;
    }
    state.recommended = to.clone();
    if *to == state.session.current_quality {
        return None;
    }
    let from = std::mem::replace(&mut state.session.current_quality, to.clone());
    let m = &mut state.session.performance_metrics;
    m.quality_switches = m.quality_switches.saturating_add(1);
    Some(QualityChange {
        session_id: state.session.session_id.clone(),
        track_id: state.session.track_id.clone(),
        user_id: state.user_id.clone(),
        from,
        to: to.clone(),
        reason: decision.reason,
    })
}

/// The rungs a session on `quality` can switch between: its codec family.
fn family_of<'a>(profiles: &'a [AdaptiveProfile], quality: &str) -> Vec<&'a AdaptiveProfile> {
    let codec = profiles
        .iter()
        .find(|p| p.quality_id == quality)
        .map(|p| p.codec.clone());
    profiles
        .iter()
        .filter(|p| Some(&p.codec) == codec.as_ref())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn master_orders_the_session_profile_first() {
        let m = AdaptiveStreamingManager::new(Arc::new(Config::default()));
        let text = m.generate_master_playlist("any").await.unwrap();
        let urls: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            urls,
            [
                "mobile/playlist.m3u8",
                "high/playlist.m3u8",
                "medium/playlist.m3u8"
            ]
        );
        m.create_session("s1".into(), "any".into()).await;
        m.update_session_quality("s1", "high".into()).await;
        let text = m
            .generate_master_playlist_for("any", Some("s1"))
            .await
            .unwrap();
        let urls: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(urls[0], "high/playlist.m3u8");
        // Another track's master does not know the session: the default order.
        let default = m.generate_master_playlist("other").await.unwrap();
        assert_eq!(
            m.generate_master_playlist_for("other", Some("s1"))
                .await
                .unwrap(),
            default
        );
        assert!(default.find("mobile/").unwrap() < default.find("high/").unwrap());
        assert_eq!(m.progressive_quality("s1", "other", false).await, None);
        assert_eq!(
            m.progressive_quality("s1", "any", false).await.as_deref(),
            Some("high")
        );
        assert!(
            !text.contains("low/"),
            "the MP3 rung is not mixed into the AAC master"
        );
        // An unknown session (expired, another node's) plays from the default master.
        assert_eq!(
            m.generate_master_playlist_for("any", Some("nope"))
                .await
                .unwrap(),
            m.generate_master_playlist("any").await.unwrap()
        );
    }

    #[test]
    fn segment_names() {
        let m = AdaptiveStreamingManager::new(Arc::new(Config::default()));
        assert_eq!(
            m.parse_segment_name("high", "0a1b2c-12.aac").unwrap(),
            SegmentName {
                version: "0a1b2c".into(),
                index: 12
            }
        );
        for bad in [
            "12.aac",
            "x-1.aac",
            "0a-1.mp3",
            "0a-.aac",
            "-1.aac",
            "0a-1x.aac",
            "0a-99999999999.aac",
            "../0a-1.aac",
            "0a-01.aac",
            "0a-000.aac",
        ] {
            assert!(m.parse_segment_name("high", bad).is_err(), "{bad}");
        }
        assert!(m.parse_segment_name("low", "0a-1.mp3").is_ok());
        assert_eq!(m.parse_segment_name("high", "0a-0.aac").unwrap().index, 0);
        assert!(matches!(
            m.parse_segment_name("ultra", "0a-1.aac"),
            Err(StreamingError::UnknownQuality(_))
        ));
    }

    /// An idle session is expired by the monitor and announced, so that its play is ended in
    /// analytics; an active one beside it stays. A progressive download counts as activity.
    #[tokio::test(start_paused = true)]
    async fn idle_sessions_expire_and_are_announced() {
        let m = AdaptiveStreamingManager::new(Arc::new(Config::default()));
        let mut expired = m.expired_sessions();
        for id in ["idle", "downloading"] {
            m.create_session(id.into(), "t".into()).await;
        }
        // Idle expiry goes by the monotonic clock (tokio's, paused here).
        tokio::time::advance(SESSION_IDLE + Duration::from_secs(1)).await;
        m.create_session("fresh".into(), "t".into()).await;
        // A download of the session's track is the session in use.
        assert!(m
            .progressive_quality("downloading", "t", true)
            .await
            .is_some());
        m.start_quality_monitor().await;
        let id = tokio::time::timeout(MONITOR_PERIOD * 3, expired.recv())
            .await
            .expect("no expiry announced")
            .unwrap();
        assert_eq!(id, "idle");
        assert!(m.get_session("idle").await.is_none());
        assert!(m.get_session("downloading").await.is_some());
        assert!(m.get_session("fresh").await.is_some());
        assert_eq!(m.streaming_stats().await.sessions_expired, 1);
        let mut left = m.drain_sessions().await;
        left.sort();
        assert_eq!(left, ["downloading", "fresh"]);
        assert!(m.get_session("fresh").await.is_none());
    }

    /// While the first scan runs, a track not seen yet may exist: "not ready", not "unknown".
    #[test]
    fn a_track_missing_before_the_first_scan_is_not_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let scanning = Library::new(dir.path());
        assert!(matches!(
            find_track(&scanning, "x"),
            Err(StreamingError::NotReady)
        ));
        let scanned = Library::with_catalog(dir.path(), crate::library::Catalog::default());
        assert!(matches!(
            find_track(&scanned, "x"),
            Err(StreamingError::UnknownTrack(_))
        ));
    }

    /// A client's absurd switch count cannot overflow the server's own count.
    #[tokio::test]
    async fn a_reported_switch_count_cannot_overflow() {
        let m = AdaptiveStreamingManager::new(Arc::new(Config::default()));
        m.create_session("s".into(), "t".into()).await;
        let metrics = PerformanceMetrics {
            quality_switches: u32::MAX,
            ..Default::default()
        };
        m.report_metrics("s", metrics).await.unwrap();
        m.update_session_quality("s", "high".into()).await;
        let s = m.get_session("s").await.unwrap();
        assert_eq!(s.performance_metrics.quality_switches, u32::MAX);
    }

    /// The monitor decides in chunks (releasing the lock between them): every session with a
    /// report is still decided in one pass, however many chunks that takes.
    #[tokio::test(start_paused = true)]
    async fn one_monitor_pass_decides_every_reported_session() {
        let m = AdaptiveStreamingManager::new(Arc::new(Config::default()));
        let n = MONITOR_CHUNK * 2 + 7;
        for i in 0..n {
            let id = format!("s{i}");
            m.create_session(id.clone(), "any".into()).await;
            m.update_session_quality(&id, "high".into()).await;
            m.report_metrics(
                &id,
                PerformanceMetrics {
                    buffer_health_percentage: 5.0,
                    download_speed_kbps: 60,
                    rebuffer_count: 1,
                    rebuffer_duration_ms: 2_000,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        }
        m.start_quality_monitor().await;
        tokio::time::sleep(MONITOR_PERIOD + Duration::from_millis(500)).await;
        let mut stepped_down = 0;
        for i in 0..n {
            let s = m.get_session(&format!("s{i}")).await.unwrap();
            stepped_down += usize::from(s.current_quality != "high");
        }
        assert_eq!(
            stepped_down, n,
            "a link of 60 kbps with a stall leaves the top rung"
        );
    }

    /// `adaptive_enabled: false` (the spec's "adaptation automatique" off): the monitor never
    /// moves the session, whatever the player reports; an adaptive one beside it does move.
    #[tokio::test(start_paused = true)]
    async fn a_session_with_adaptation_off_keeps_its_profile() {
        let m = AdaptiveStreamingManager::new(Arc::new(Config::default()));
        let pinned = ClientCapabilities {
            estimated_bandwidth_kbps: 5000,
            connection_type: crate::streaming::adaptive::ConnectionType::Wifi,
            preferred_quality: Some("high".into()),
            adaptive_enabled: false,
            ..ClientCapabilities::default()
        };
        let adaptive = ClientCapabilities {
            adaptive_enabled: true,
            ..pinned.clone()
        };
        for (id, caps) in [("pinned", pinned), ("adaptive", adaptive)] {
            let p = m
                .create_session_with_capabilities(id.into(), "any".into(), String::new(), caps)
                .await;
            assert_eq!(p.quality_id, "high");
        }
        m.start_quality_monitor().await;
        for round in 1..=5 {
            for id in ["pinned", "adaptive"] {
                m.report_metrics(
                    id,
                    PerformanceMetrics {
                        buffer_health_percentage: 5.0,
                        download_speed_kbps: 30,
                        rebuffer_count: round,
                        rebuffer_duration_ms: 2_000 * round,
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            }
            tokio::time::sleep(MONITOR_PERIOD + Duration::from_millis(100)).await;
        }
        assert_eq!(
            m.get_session("pinned").await.unwrap().current_quality,
            "high"
        );
        assert_ne!(
            m.get_session("adaptive").await.unwrap().current_quality,
            "high"
        );
    }

    #[tokio::test]
    async fn metrics_need_a_session() {
        let m = AdaptiveStreamingManager::new(Arc::new(Config::default()));
        assert!(m
            .report_metrics("x", PerformanceMetrics::default())
            .await
            .is_err());
        let stats = m.get_streaming_stats().await;
        assert_eq!(stats["active_sessions"], 0);
    }

    #[test]
    fn buffer_health_near_the_end_is_read_against_what_is_left() {
        assert_eq!(buffer_seconds(50.0, 120.0, None), Some(60.0));
        assert_eq!(buffer_seconds(50.0, 120.0, Some(300.0)), Some(60.0));
        assert_eq!(buffer_seconds(50.0, 120.0, Some(20.0)), Some(10.0));
        assert_eq!(buffer_seconds(100.0, 120.0, None), Some(120.0));
        assert_eq!(buffer_seconds(100.0, 120.0, Some(20.0)), None);
        assert_eq!(buffer_seconds(100.0, 120.0, Some(0.0)), None);
        // At the very end, whatever the percentage: not an empty buffer to step down for.
        assert_eq!(buffer_seconds(0.0, 120.0, Some(0.0)), None);
        assert_eq!(buffer_seconds(26.0, 120.0, Some(0.4)), None);
    }

    /// A player on a weak link that has the rest of its track buffered reports 100 % (of what
    /// is left): the monitor takes no step up from it, where the same report mid-track (a full
    /// 120 s buffer) is headroom it does step up on.
    #[tokio::test(start_paused = true)]
    async fn the_rest_of_a_track_buffered_is_no_reason_to_step_up() {
        let m = AdaptiveStreamingManager::new(Arc::new(Config::default()));
        let caps = ClientCapabilities {
            estimated_bandwidth_kbps: 150,
            buffer_duration_ms: 120_000,
            connection_type: crate::streaming::adaptive::ConnectionType::Cellular3G,
            device_type: crate::streaming::adaptive::DeviceType::Mobile,
            adaptive_enabled: true,
            ..ClientCapabilities::default()
        };
        for id in ["ending", "midway"] {
            let p = m
                .create_session_with_capabilities(
                    id.into(),
                    "any".into(),
                    String::new(),
                    caps.clone(),
                )
                .await;
            assert_eq!(p.quality_id, "mobile");
        }
        m.start_quality_monitor().await;
        for _ in 0..3 {
            for (id, left) in [("ending", Some(Duration::from_secs(8))), ("midway", None)] {
                let report = PerformanceMetrics {
                    buffer_health_percentage: 100.0,
                    download_speed_kbps: 400,
                    ..Default::default()
                };
                m.report_metrics_with_media_left(id, report, left)
                    .await
                    .unwrap();
            }
            tokio::time::sleep(MONITOR_PERIOD + Duration::from_millis(100)).await;
        }
        assert_eq!(
            m.get_session("ending").await.unwrap().current_quality,
            "mobile"
        );
        assert_ne!(
            m.get_session("midway").await.unwrap().current_quality,
            "mobile"
        );
    }
}

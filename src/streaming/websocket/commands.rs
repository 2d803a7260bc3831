//! What each command does. Every command gets exactly one `CommandResponse`.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;
use uuid::Uuid;

use super::connection::failure;
use super::hub::WebSocketManager;
use super::protocol::{WebSocketCommand, WebSocketEvent, EVENT_NAMES};
use crate::analytics::{Platform, PLAY_SILENCE};
use crate::library::Library;
use crate::social::{PlaylistChange, SocialError, SocialStore};
use crate::streaming::adaptive::{select_initial_profile, AdaptiveProfile, ClientCapabilities};

/// One user's playback, as their commands drive it.
#[derive(Debug, Clone)]
pub(crate) struct Playback {
    pub track_id: String,
    pub duration_ms: u64,
    pub position_ms: u64,
    pub played_ms: u64,
    pub playing: bool,
    /// When it was paused, while it is.
    pub paused_at: Option<tokio::time::Instant>,
    pub session: Option<Uuid>,
}

fn ok(command_id: &str, data: serde_json::Value) -> WebSocketEvent {
    WebSocketEvent::CommandResponse {
        command_id: command_id.to_string(),
        success: true,
        data: Some(data),
        error: None,
    }
}

/// What a client is told about a failed playlist edit (never the database's own words).
fn client_message(e: SocialError) -> String {
    match e {
        SocialError::Db(e) => {
            tracing::error!(error = %e, "playlist store");
            "the playlist store is unavailable; try again".into()
        }
        other => other.to_string(),
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl WebSocketManager {
    /// Runs a playlist edit, tells the playlist's audience and answers with the playlist.
    async fn edit_playlist<F, Fut>(&self, command_id: &str, user: &str, edit: F) -> WebSocketEvent
    where
        F: FnOnce(Arc<SocialStore>, Arc<Library>) -> Fut,
        Fut: std::future::Future<Output = Result<PlaylistChange, String>>,
    {
        let Some((social, library)) = self
            .context
            .as_ref()
            .and_then(|c| Some((c.social.clone()?, c.library.clone())))
        else {
            return failure(
                command_id.to_string(),
                "playlists are not available on this server".into(),
            );
        };
        match edit(social, library.clone()).await {
            Ok(change) => {
                self.playlist_changed(&change, user).await;
                ok(
                    command_id,
                    serde_json::to_value(change.playlist.view(&library)).unwrap_or_default(),
                )
            }
            Err(e) => failure(command_id.to_string(), e),
        }
    }

    pub(super) async fn execute(
        &self,
        conn: Uuid,
        user: Option<&str>,
        ip: &str,
        cmd: WebSocketCommand,
    ) -> WebSocketEvent {
        let id = cmd.command_id().to_string();
        let needs_identity = matches!(
            cmd,
            WebSocketCommand::Play { .. }
                | WebSocketCommand::Pause { .. }
                | WebSocketCommand::Stop { .. }
                | WebSocketCommand::Seek { .. }
                | WebSocketCommand::AddToPlaylist { .. }
                | WebSocketCommand::RemoveFromPlaylist { .. }
        );
        let user = match (user, needs_identity) {
            (Some(u), _) => Some(u.to_string()),
            (None, false) => None,
            (None, true) => {
                return failure(
                    id,
                    "anonymous connections may only listen: connect with a user".into(),
                )
            }
        };
        match cmd {
            WebSocketCommand::Ping { .. } => ok(&id, json!({ "pong": now_secs() })),
            WebSocketCommand::GetStatus { .. } => {
                let conn_info = self.connections.read().get(&conn).cloned();
                let playback = user
                    .as_deref()
                    .and_then(|u| self.playback.lock().get(u).cloned());
                let current = self.connections.read().len();
                ok(
                    &id,
                    json!({
                        "connection_id": conn,
                        "user_id": user,
                        "authenticated": user.is_some(),
                        "subscriptions": conn_info.as_ref().map(|c| c.subscription.names()).unwrap_or_default(),
                        "filters": conn_info.as_ref().map(|c| c.filters.clone()).unwrap_or_default(),
                        "playback": playback.map(|p| json!({
                            "track_id": p.track_id, "position_ms": p.position_ms, "playing": p.playing,
                            "duration_ms": p.duration_ms, "played_ms": p.played_ms,
                        })),
                        "server": { "connections": current, "uptime_secs": self.started.elapsed().as_secs() },
                    }),
                )
            }
            WebSocketCommand::Subscribe {
                events, filters, ..
            } => {
                let unknown: Vec<&String> = events
                    .iter()
                    .filter(|e| !EVENT_NAMES.contains(&e.as_str()))
                    .collect();
                if !unknown.is_empty() {
                    return failure(
                        id,
                        format!(
                            "unknown events {unknown:?}; known: {}",
                            EVENT_NAMES.join(", ")
                        ),
                    );
                }
                let mut conns = self.connections.write();
                let Some(c) = conns.get_mut(&conn) else {
                    return failure(id, "connection closed".into());
                };
                c.subscription.subscribe(events);
                if let Some(f) = filters {
                    c.filters = f;
                }
                ok(
                    &id,
                    json!({ "subscribed": c.subscription.names(), "filters": c.filters }),
                )
            }
            WebSocketCommand::Unsubscribe { events, .. } => {
                let mut conns = self.connections.write();
                let Some(c) = conns.get_mut(&conn) else {
                    return failure(id, "connection closed".into());
                };
                // Unsubscribing from all that was subscribed leaves nothing (not "every event",
                // which only a connection that never subscribed receives).
                c.subscription.unsubscribe(&events);
                ok(&id, json!({ "subscribed": c.subscription.names() }))
            }
            WebSocketCommand::AddToPlaylist {
                playlist_id,
                track_id,
                position,
                ..
            } => {
                let user = user.unwrap_or_default();
                let actor = user.clone();
                self.edit_playlist(&id, &actor, |social, library| async move {
                    if library.get(&track_id).is_none() {
                        return Err(format!("unknown track {track_id:?}"));
                    }
                    social
                        .add_track(&user, &playlist_id, &track_id, position)
                        .await
                        .map_err(client_message)
                })
                .await
            }
            WebSocketCommand::RemoveFromPlaylist {
                playlist_id,
                track_id,
                ..
            } => {
                let user = user.unwrap_or_default();
                let actor = user.clone();
                self.edit_playlist(&id, &actor, |social, _| async move {
                    social
                        .remove_track(&user, &playlist_id, &track_id)
                        .await
                        .map_err(client_message)
                })
                .await
            }
            WebSocketCommand::Play {
                track_id,
                start_position_ms,
                session_id,
                ..
            } => {
                self.play(
                    &id,
                    &user.expect("checked"),
                    ip,
                    track_id,
                    start_position_ms.unwrap_or(0),
                    session_id,
                )
                .await
            }
            WebSocketCommand::Pause { track_id, .. } => {
                self.pause(&id, &user.expect("checked"), &track_id).await
            }
            WebSocketCommand::Stop { track_id, .. } => {
                self.stop(&id, &user.expect("checked"), &track_id).await
            }
            WebSocketCommand::Seek {
                track_id,
                position_ms,
                ..
            } => {
                self.seek(&id, &user.expect("checked"), &track_id, position_ms)
                    .await
            }
        }
    }

    async fn play(
        &self,
        id: &str,
        user: &str,
        ip: &str,
        track_id: String,
        start: u64,
        streaming_session: Option<String>,
    ) -> WebSocketEvent {
        let Some(ctx) = &self.context else {
            return failure(id.into(), "this hub has no library".into());
        };
        let Some(track) = ctx.library.get(&track_id) else {
            return failure(id.into(), format!("unknown track {track_id:?}"));
        };
        if start > track.duration_ms {
            return failure(
                id.into(),
                format!(
                    "start_position_ms {start} is past the end ({} ms)",
                    track.duration_ms
                ),
            );
        }
        let quality =
            select_initial_profile(&ClientCapabilities::default(), &AdaptiveProfile::presets())
                .quality_id;
        let previous = self.playback.lock().get(user).cloned();
        // Resuming the paused track is a resume, not a new play.
        if let Some(p) = previous
            .as_ref()
            .filter(|p| p.track_id == track_id && !p.playing)
            // Back after hours: analytics has ended that play (silent too long), so this is a
            // play of its own.
            .filter(|p| p.paused_at.is_none_or(|at| at.elapsed() < PLAY_SILENCE))
        {
            if let Some(pb) = self.playback.lock().get_mut(user) {
                pb.playing = true;
                pb.paused_at = None;
                pb.position_ms = start.max(p.position_ms).min(track.duration_ms);
            }
            let position = start.max(p.position_ms);
            if let Some(session) = p.session {
                // A resume further on is a seek made while paused: moved to, not listened to.
                if position > p.position_ms {
                    ctx.analytics
                        .update_play_progress(session, position, None)
                        .await;
                }
                ctx.analytics.resume_play_session(session).await;
            }
            self.broadcast_event(WebSocketEvent::PlaybackResumed {
                track_id: track_id.clone(),
                user_id: user.into(),
                position_ms: position,
            })
            .await;
            return ok(
                id,
                json!({ "track_duration_ms": track.duration_ms, "quality": quality, "resumed": true }),
            );
        }
        // The play just finished (a replay of the track from its end, in the same session)
        // is over: the new one is a play of its own.
        let finished = previous.as_ref().and_then(|p| p.session);
        if let Some(p) = previous {
            self.finish(user, p).await;
        }
        // A player that streams through a session (the web player does) has started this play
        // in analytics already, under the session's id: this command is that play, not a
        // second one (every play of the web player used to be counted twice). Only the user's
        // own session of this very track is taken; any other id is ignored.
        let adopted = match (streaming_session, &ctx.streaming) {
            (Some(sid), Some(streaming)) => {
                let same_track = streaming
                    .get_session(&sid)
                    .await
                    .is_some_and(|s| s.track_id == track.id);
                let same_user = streaming.session_user(&sid).await.as_deref() == Some(user);
                Uuid::parse_str(&sid)
                    .ok()
                    .filter(|id| same_track && same_user && Some(*id) != finished)
            }
            _ => None,
        };
        let session = match adopted {
            Some(session) => session,
            None => {
                ctx.analytics
                    .start_play_session(
                        Some(user.into()),
                        track.id.clone(),
                        ip.into(),
                        Some("websocket".into()),
                        track.duration_ms,
                        quality.clone(),
                        Platform::Unknown,
                        None,
                    )
                    .await
            }
        };
        if start > 0 {
            ctx.analytics
                .update_play_progress(session, start, None)
                .await;
        }
        let replaced = self.playback.lock().insert(
            user.into(),
            Playback {
                track_id: track_id.clone(),
                duration_ms: track.duration_ms,
                position_ms: start,
                played_ms: 0,
                playing: true,
                paused_at: None,
                session: Some(session),
            },
        );
        // Another Play of this user's (a second tab) started a playback since `previous` was
        // read: it is over too, or its play would stay open.
        if let Some(r) = replaced.filter(|r| r.session != finished && r.session != Some(session)) {
            self.finish(user, r).await;
        }
        self.broadcast_event(WebSocketEvent::PlaybackStarted {
            track_id,
            user_id: user.into(),
            timestamp: now_secs(),
        })
        .await;
        ok(
            id,
            json!({ "track_duration_ms": track.duration_ms, "quality": quality, "session_id": session }),
        )
    }

    async fn pause(&self, id: &str, user: &str, track_id: &str) -> WebSocketEvent {
        let (position, session) = {
            let mut pb = self.playback.lock();
            match pb.get_mut(user) {
                Some(p) if p.track_id == track_id && p.playing => {
                    p.playing = false;
                    p.paused_at = Some(tokio::time::Instant::now());
                    (p.position_ms, p.session)
                }
                Some(p) if p.track_id == track_id => {
                    return failure(id.into(), "already paused".into())
                }
                _ => return failure(id.into(), format!("{track_id:?} is not playing")),
            }
        };
        if let (Some(ctx), Some(session)) = (&self.context, session) {
            ctx.analytics.pause_play_session(session, position).await;
        }
        self.broadcast_event(WebSocketEvent::PlaybackPaused {
            track_id: track_id.into(),
            user_id: user.into(),
            position_ms: position,
        })
        .await;
        ok(id, json!({ "position_ms": position }))
    }

    async fn stop(&self, id: &str, user: &str, track_id: &str) -> WebSocketEvent {
        let p = {
            let mut pb = self.playback.lock();
            match pb.get(user) {
                Some(p) if p.track_id == track_id => pb.remove(user),
                _ => None,
            }
        };
        let Some(p) = p else {
            return failure(id.into(), format!("{track_id:?} is not playing"));
        };
        let played = p.played_ms;
        self.finish(user, p).await;
        ok(id, json!({ "total_played_ms": played }))
    }

    /// Ends a playback: analytics session closed, `PlaybackStopped` emitted.
    pub(super) async fn finish(&self, user: &str, p: Playback) {
        if let (Some(ctx), Some(session)) = (&self.context, p.session) {
            ctx.analytics
                .end_play_session(session, Some(p.position_ms))
                .await;
        }
        self.broadcast_event(WebSocketEvent::PlaybackStopped {
            track_id: p.track_id,
            user_id: user.into(),
            total_played_ms: p.played_ms,
        })
        .await;
    }

    /// A seek, and the spec's way of reporting progress.
    async fn seek(&self, id: &str, user: &str, track_id: &str, position: u64) -> WebSocketEvent {
        let (session, duration) = {
            let mut pb = self.playback.lock();
            let Some(p) = pb.get_mut(user).filter(|p| p.track_id == track_id) else {
                return failure(
                    id.into(),
                    format!("{track_id:?} is not playing: send Play first"),
                );
            };
            if position > p.duration_ms {
                return failure(
                    id.into(),
                    format!(
                        "position_ms {position} is past the end ({} ms)",
                        p.duration_ms
                    ),
                );
            }
            // Forward moves of up to 30 s while playing count as listening (progress
            // reports); longer jumps, backward moves and moves while paused are seeks.
            let forward = position.saturating_sub(p.position_ms);
            if p.playing && forward > 0 && forward <= 30_000 {
                p.played_ms += forward;
            }
            p.position_ms = position;
            (p.session, p.duration_ms)
        };
        if let (Some(ctx), Some(session)) = (&self.context, session) {
            ctx.analytics
                .update_play_progress(session, position, None)
                .await;
        }
        // The buffer is what the user's player last reported on its streaming session (0 when
        // it never did: the spec's event has no way to say "unknown").
        let buffer = self.buffer_of(user);
        self.broadcast_event(WebSocketEvent::PlaybackProgress {
            track_id: track_id.into(),
            user_id: user.into(),
            position_ms: position,
            buffer_percentage: buffer,
        })
        .await;
        ok(
            id,
            json!({ "position_ms": position, "track_duration_ms": duration }),
        )
    }
}

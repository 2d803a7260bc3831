//! Routing events to connections.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::extract::ws::Utf8Bytes;
use parking_lot::{Mutex, RwLock};
use serde_json::json;
use tokio::sync::{broadcast, mpsc};
use uuid::Uuid;

use super::broker::{Broker, Route};
use super::commands::Playback;
use super::protocol::{PlaylistAction, WebSocketEvent};
use super::subscription::Subscription;
use crate::analytics::AnalyticsEngine;
use crate::library::Library;
use crate::social::{Edit, PlaylistChange, SocialStore};
use crate::streaming::adaptive::AdaptiveStreamingManager;

/// Frames queued for one connection; a reader that lets this fill up is disconnected.
pub(super) const OUTBOUND_QUEUE: usize = 256;

/// What a connection's writer sends.
#[derive(Debug)]
pub(super) enum Outbound {
    Text(Utf8Bytes),
    Close(u16, &'static str),
}

/// One live connection (the spec's `WebSocketConnection`).
#[derive(Debug, Clone)]
pub struct WebSocketConnection {
    pub id: Uuid,
    pub user_id: Option<String>,
    pub ip_address: String,
    pub connected_at: SystemTime,
    /// Monotonic (tokio's clock): a step of the wall clock must not make every connection look
    /// idle, and tests can pause and advance it.
    pub last_activity: tokio::time::Instant,
    /// Every event until the connection subscribes; then the named ones (possibly none).
    pub subscription: Subscription,
    /// All must match: event fields, or track attributes (`track_genre`, `artist`, `album`, `title`).
    pub filters: HashMap<String, String>,
    /// The spec has a per-connection broadcast channel; a bounded queue is used instead, so
    /// that a reader who stops reading is noticed (full queue) and dropped, never waited for.
    pub(super) sender: mpsc::Sender<Outbound>,
    /// Ends the connection: cancelled by the hub (a slow reader's queue is full, so a close
    /// frame cannot be queued behind its backlog; a dead writer's queue is closed) and by the
    /// writer whenever it stops, so that the reader stops too and the connection is unregistered.
    pub(super) closer: tokio_util::sync::CancellationToken,
}

#[derive(Default)]
pub(super) struct Stats {
    pub total_connections: AtomicU64,
    pub messages_sent: AtomicU64,
    pub messages_received: AtomicU64,
    pub events_broadcasted: AtomicU64,
    pub slow_disconnects: AtomicU64,
    pub idle_disconnects: AtomicU64,
    pub rejected_frames: AtomicU64,
}

/// What commands need beyond the hub: the catalogue and the analytics engine.
pub(super) struct Context {
    pub library: Arc<Library>,
    pub analytics: Arc<AnalyticsEngine>,
    pub social: Option<Arc<SocialStore>>,
    /// Streaming sessions, whose plays a `Play` may name (see `commands::play`).
    pub streaming: Option<Arc<AdaptiveStreamingManager>>,
}

pub struct WebSocketManager {
    /// Map operations only (parking_lot, never held across an await).
    pub(super) connections: Arc<RwLock<HashMap<Uuid, WebSocketConnection>>>,
    /// Every event broadcast, for in-process observers (a broker, tests). Lagging receivers
    /// lose events; nobody is ever waited for.
    global_sender: broadcast::Sender<WebSocketEvent>,
    pub(super) stats: Arc<Stats>,
    pub(super) context: Option<Context>,
    /// Each user's playback, driven by their playback commands.
    pub(super) playback: Mutex<HashMap<String, Playback>>,
    pub(super) started: Instant,
    /// Other nodes, when a broker is configured.
    broker: std::sync::OnceLock<Arc<Broker>>,
    /// Each user's latest reported buffer health (percent), from their streaming session.
    buffers: Mutex<HashMap<String, f32>>,
    /// How long a user's playback outlives their last connection, in ms (see
    /// [`DISCONNECT_GRACE`]).
    disconnect_grace_ms: AtomicU64,
}

/// How long a user's playback outlives their last connection: a page reload or a network blip
/// reconnects within it and resumes the same play session; past it, the listener is gone, their
/// play session ends in analytics and `LiveStats` stops counting them.
pub const DISCONNECT_GRACE: Duration = Duration::from_secs(30);

impl Default for WebSocketManager {
    fn default() -> Self {
        Self::new()
    }
}

impl WebSocketManager {
    /// A hub without a library: events and subscriptions work; playback commands answer that
    /// there is no library.
    pub fn new() -> Self {
        let (global_sender, _) = broadcast::channel(1024);
        Self {
            connections: Arc::default(),
            global_sender,
            stats: Arc::default(),
            context: None,
            playback: Mutex::default(),
            started: Instant::now(),
            broker: std::sync::OnceLock::new(),
            buffers: Mutex::default(),
            disconnect_grace_ms: AtomicU64::new(DISCONNECT_GRACE.as_millis() as u64),
        }
    }

    /// Changes [`DISCONNECT_GRACE`] for this hub.
    pub fn set_disconnect_grace(&self, grace: Duration) {
        self.disconnect_grace_ms.store(
            u64::try_from(grace.as_millis()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// A connection of `user` has closed: if they still have none once the grace has passed,
    /// their playback ends (analytics session closed, `PlaybackStopped`).
    pub(super) fn user_disconnected(self: &Arc<Self>, user: &str) {
        if !self.playback.lock().contains_key(user) {
            return;
        }
        let grace = Duration::from_millis(self.disconnect_grace_ms.load(Ordering::Relaxed));
        let hub = Arc::downgrade(self);
        let user = user.to_string();
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            let Some(hub) = hub.upgrade() else { return };
            let connected = hub
                .connections
                .read()
                .values()
                .any(|c| c.user_id.as_deref() == Some(user.as_str()));
            if connected {
                return;
            }
            let gone = hub.playback.lock().remove(&user);
            if let Some(p) = gone {
                tracing::info!(user_id = %user, track_id = %p.track_id, "listener gone: playback ended");
                hub.finish(&user, p).await;
            }
        });
    }

    /// The server is stopping: every playback ends (so analytics sessions are closed, not left
    /// open forever) and every client gets a close frame saying so (1001, "going away"), then
    /// up to `wait` for them to close.
    pub async fn shutdown(&self, wait: Duration) {
        let playing: Vec<(String, Playback)> = self.playback.lock().drain().collect();
        for (user, p) in playing {
            self.finish(&user, p).await;
        }
        let senders: Vec<_> = self
            .connections
            .read()
            .values()
            .map(|c| (c.sender.clone(), c.closer.clone()))
            .collect();
        for (s, closer) in senders {
            // A queue that is full or closed cannot take the close frame: end it from here.
            if s.try_send(Outbound::Close(1001, "server shutting down"))
                .is_err()
            {
                closer.cancel();
            }
        }
        let deadline = Instant::now() + wait;
        while !self.connections.read().is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Records a user's buffer health as their player reported it (for `PlaybackProgress`).
    pub fn note_buffer(&self, user_id: &str, percentage: f32) {
        if percentage.is_finite() {
            self.buffers
                .lock()
                .insert(user_id.to_string(), percentage.clamp(0.0, 100.0));
        }
    }

    /// Forgets a user's buffer health (their streaming session ended).
    pub fn forget_buffer(&self, user_id: &str) {
        self.buffers.lock().remove(user_id);
    }

    pub(super) fn buffer_of(&self, user_id: &str) -> f32 {
        self.buffers.lock().get(user_id).copied().unwrap_or(0.0)
    }

    /// Attaches the broker (once): from then on broadcasts and addressed sends also reach the
    /// connections of other nodes.
    pub(super) fn set_broker(&self, broker: Arc<Broker>) {
        let _ = self.broker.set(broker);
    }

    pub fn broker(&self) -> Option<&Arc<Broker>> {
        self.broker.get()
    }

    /// Delivers `event` along `route` to this node's connections only (what another node
    /// published arrives here too, and is never republished).
    pub(super) fn deliver_route(&self, route: &Route, event: &WebSocketEvent) {
        match route {
            Route::All => self.route_local(event),
            // Addressed, and still subject to each connection's subscription and filters.
            Route::User { user_id } => {
                let text = encode(event);
                self.deliver(
                    |c| c.user_id.as_deref() == Some(user_id.as_str()),
                    event,
                    &text,
                );
            }
            Route::Users { user_ids } => {
                let text = encode(event);
                self.deliver(
                    |c| c.user_id.as_ref().is_some_and(|u| user_ids.contains(u)),
                    event,
                    &text,
                );
            }
        }
    }

    /// Delivers locally, then hands the event to the other nodes, if any.
    fn send_routed(&self, route: Route, event: &WebSocketEvent) {
        self.deliver_route(&route, event);
        if let Some(b) = self.broker.get() {
            b.publish(route, event);
        }
    }

    /// The server's hub: playback commands act on the library and record analytics.
    pub fn with_context(library: Arc<Library>, analytics: Arc<AnalyticsEngine>) -> Self {
        Self {
            context: Some(Context {
                library,
                analytics,
                social: None,
                streaming: None,
            }),
            ..Self::new()
        }
    }

    /// Playlists for the `AddToPlaylist`/`RemoveFromPlaylist` commands (needs a context).
    pub fn with_social(mut self, social: Arc<SocialStore>) -> Self {
        if let Some(ctx) = &mut self.context {
            ctx.social = Some(social);
        }
        self
    }

    /// Streaming sessions a `Play` command may name (needs a context).
    pub fn with_streaming(mut self, streaming: Arc<AdaptiveStreamingManager>) -> Self {
        if let Some(ctx) = &mut self.context {
            ctx.streaming = Some(streaming);
        }
        self
    }

    /// Users playing right now (by their playback commands) and their tracks.
    pub fn playing_now(&self) -> Vec<(String, String)> {
        self.playback
            .lock()
            .iter()
            .filter(|(_, p)| p.playing)
            .map(|(u, p)| (u.clone(), p.track_id.clone()))
            .collect()
    }

    /// Open connections.
    pub fn connection_count(&self) -> usize {
        self.connections.read().len()
    }

    /// Sends `event` to the connections of `users` that subscribed to it (filters apply).
    pub async fn notify_users(&self, users: &[String], event: WebSocketEvent) {
        self.send_routed(
            Route::Users {
                user_ids: users.to_vec(),
            },
            &event,
        );
    }

    /// Tells a playlist's audience (owner and users it is shared with, every tab) about a
    /// change, and records it in analytics. Creation, renaming and deletion have no action of
    /// their own in the spec's `PlaylistAction`: they are sent as `Cleared` with no track, and
    /// clients re-read the playlist.
    pub async fn playlist_changed(&self, change: &PlaylistChange, by: &str) {
        let action = match change.edit {
            Edit::Added => PlaylistAction::Added,
            Edit::Removed => PlaylistAction::Removed,
            Edit::Moved => PlaylistAction::Reordered,
            Edit::Created | Edit::Renamed | Edit::Deleted => PlaylistAction::Cleared,
        };
        let audience = change.playlist.audience();
        self.notify_users(
            &audience,
            WebSocketEvent::PlaylistUpdated {
                playlist_id: change.playlist.id.clone(),
                action,
                track_id: change.track_id.clone(),
                position: change.position,
            },
        )
        .await;
        if let Some(ctx) = &self.context {
            let name = match change.edit {
                Edit::Created => "created",
                Edit::Renamed => "renamed",
                Edit::Deleted => "deleted",
                Edit::Added => "added",
                Edit::Removed => "removed",
                Edit::Moved => "moved",
            };
            ctx.analytics
                .record_playlist_edit(
                    &change.playlist.id,
                    Some(by),
                    name,
                    change.track_id.as_deref(),
                    change.position.map(|p| p as u64),
                )
                .await;
        }
    }

    /// A receiver of every broadcast event.
    pub fn subscribe_all(&self) -> broadcast::Receiver<WebSocketEvent> {
        self.global_sender.subscribe()
    }

    /// Sends `event` to every connection that may see it and has subscribed to it. Events
    /// addressed to someone (command responses, rate-limit warnings) are never broadcast;
    /// shares go to their sender and recipients only, a follow to the two users concerned.
    pub async fn broadcast_event(&self, event: WebSocketEvent) {
        if matches!(
            event,
            WebSocketEvent::CommandResponse { .. } | WebSocketEvent::RateLimitWarning { .. }
        ) {
            tracing::warn!(
                event = event.name(),
                "refusing to broadcast a private event"
            );
            return;
        }
        self.send_routed(Route::All, &event);
        self.stats
            .events_broadcasted
            .fetch_add(1, Ordering::Relaxed);
        let _ = self.global_sender.send(event);
    }

    /// Broadcasts to this node's connections only (what every node computes for itself, such as
    /// `LiveStats`).
    pub async fn broadcast_local(&self, event: WebSocketEvent) {
        if matches!(
            event,
            WebSocketEvent::CommandResponse { .. } | WebSocketEvent::RateLimitWarning { .. }
        ) {
            return;
        }
        self.route_local(&event);
    }

    /// `broadcast_event`'s routing, on this node.
    fn route_local(&self, event: &WebSocketEvent) {
        match event {
            WebSocketEvent::CommandResponse { .. } | WebSocketEvent::RateLimitWarning { .. } => {}
            WebSocketEvent::TrackShared {
                from_user,
                to_users,
                ..
            }
            | WebSocketEvent::PlaylistShared {
                from_user,
                to_users,
                ..
            } => {
                let mut people: Vec<&String> = to_users.iter().collect();
                people.push(from_user);
                people.sort();
                people.dedup();
                let text = encode(event);
                for user in people {
                    self.deliver(
                        |c| c.user_id.as_deref() == Some(user.as_str()),
                        event,
                        &text,
                    );
                }
            }
            WebSocketEvent::UserFollowed {
                follower_id,
                followed_id,
            } => {
                let text = encode(event);
                self.deliver(
                    |c| {
                        c.user_id
                            .as_ref()
                            .is_some_and(|u| u == follower_id || u == followed_id)
                    },
                    event,
                    &text,
                );
            }
            _ => {
                let text = encode(event);
                self.deliver(|_| true, event, &text);
            }
        }
    }

    /// Sends to one connection: a reply to its commands always, any other event if its
    /// subscription and filters let it through.
    pub async fn send_to_connection(&self, connection_id: Uuid, event: WebSocketEvent) {
        let text = encode(&event);
        self.deliver(|c| c.id == connection_id, &event, &text);
    }

    /// Sends to every connection of one user that subscribed to the event (filters apply: being
    /// addressed to someone does not bypass what they asked to receive).
    pub async fn send_to_user(&self, user_id: &str, event: WebSocketEvent) {
        self.send_routed(
            Route::User {
                user_id: user_id.to_string(),
            },
            &event,
        );
    }

    /// Closes connections with no activity (frames or pongs) for `max_idle_duration`.
    pub async fn cleanup_inactive_connections(&self, max_idle_duration: Duration) {
        let now = tokio::time::Instant::now();
        let idle: Vec<WebSocketConnection> = {
            let mut conns = self.connections.write();
            let ids: Vec<Uuid> = conns
                .values()
                .filter(|c| now.saturating_duration_since(c.last_activity) > max_idle_duration)
                .map(|c| c.id)
                .collect();
            ids.iter().filter_map(|id| conns.remove(id)).collect()
        };
        for c in idle {
            self.stats.idle_disconnects.fetch_add(1, Ordering::Relaxed);
            // The writer sends the close frame and, as it stops, cancels the closer, which ends
            // the reader (an idle peer is usually a dead one, whose socket never says it closed).
            // A queue that cannot take the frame (full, or its writer already gone) is ended here.
            if c.sender.try_send(Outbound::Close(1000, "idle")).is_err() {
                c.closer.cancel();
            }
        }
    }

    /// The spec's `WebSocketStats`, and what operators also need.
    pub async fn get_stats(&self) -> serde_json::Value {
        let (current, authenticated, subscribed) = {
            let conns = self.connections.read();
            (
                conns.len(),
                conns.values().filter(|c| c.user_id.is_some()).count(),
                conns
                    .values()
                    .filter(|c| !c.subscription.is_everything())
                    .count(),
            )
        };
        let s = &self.stats;
        let playing = self.playback.lock().values().filter(|p| p.playing).count();
        json!({
            "broker": self.broker.get().map(|b| b.stats()),
            "total_connections": s.total_connections.load(Ordering::Relaxed),
            "current_connections": current,
            "messages_sent": s.messages_sent.load(Ordering::Relaxed),
            "messages_received": s.messages_received.load(Ordering::Relaxed),
            "events_broadcasted": s.events_broadcasted.load(Ordering::Relaxed),
            "authenticated_connections": authenticated,
            "anonymous_connections": current - authenticated,
            "connections_with_subscriptions": subscribed,
            "slow_reader_disconnects": s.slow_disconnects.load(Ordering::Relaxed),
            "idle_disconnects": s.idle_disconnects.load(Ordering::Relaxed),
            "rejected_frames": s.rejected_frames.load(Ordering::Relaxed),
            "listeners_playing": playing,
            "uptime_secs": self.started.elapsed().as_secs(),
        })
    }

    /// The one delivery path: to the connections `addressed` picks, each checked against its
    /// subscription and filters, except for replies to a connection's own commands
    /// (`CommandResponse`, `RateLimitWarning`), which no subscription or filter holds back.
    fn deliver(
        &self,
        addressed: impl Fn(&WebSocketConnection) -> bool,
        event: &WebSocketEvent,
        text: &Utf8Bytes,
    ) {
        let reply = matches!(
            event,
            WebSocketEvent::CommandResponse { .. } | WebSocketEvent::RateLimitWarning { .. }
        );
        let mut fields: Option<serde_json::Value> = None;
        let mut track: Option<Option<Arc<crate::library::Track>>> = None;
        let mut slow = Vec::new();
        let mut dead = Vec::new();
        {
            let conns = self.connections.read();
            for c in conns.values().filter(|c| addressed(c)) {
                if !reply && !c.subscription.wants(event.name()) {
                    continue;
                }
                if !reply && !c.filters.is_empty() {
                    let fields = fields
                        .get_or_insert_with(|| serde_json::to_value(event).unwrap_or_default());
                    let track = track.get_or_insert_with(|| {
                        let ctx = self.context.as_ref()?;
                        ctx.library.get(event.track_id()?)
                    });
                    if !c
                        .filters
                        .iter()
                        .all(|(k, v)| matches(fields, track.as_deref(), k, v))
                    {
                        continue;
                    }
                }
                match c.sender.try_send(Outbound::Text(text.clone())) {
                    Ok(()) => {
                        self.stats.messages_sent.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(mpsc::error::TrySendError::Full(_)) => slow.push(c.id),
                    Err(mpsc::error::TrySendError::Closed(_)) => dead.push(c.id),
                }
            }
        }
        self.drop_slow(slow);
        self.drop_dead(dead);
    }

    /// Removes slow readers and closes their sockets (their writer and reader both stop).
    fn drop_slow(&self, slow: Vec<Uuid>) {
        if slow.is_empty() {
            return;
        }
        let mut conns = self.connections.write();
        for id in slow {
            if let Some(c) = conns.remove(&id) {
                c.closer.cancel();
                self.stats.slow_disconnects.fetch_add(1, Ordering::Relaxed);
                tracing::info!(connection_id = %id, "disconnecting a reader that stopped reading");
            }
        }
    }

    /// Removes connections whose writer has stopped (their queue is closed: nothing can reach
    /// them any more). Cancelling the closer ends their reader, which runs the user's
    /// disconnect path, once, as at any other end of a connection.
    fn drop_dead(&self, dead: Vec<Uuid>) {
        if dead.is_empty() {
            return;
        }
        let mut conns = self.connections.write();
        for id in dead {
            if let Some(c) = conns.remove(&id) {
                c.closer.cancel();
                tracing::debug!(connection_id = %id, "unregistering a connection whose writer stopped");
            }
        }
    }
}

pub(super) fn encode(event: &WebSocketEvent) -> Utf8Bytes {
    Utf8Bytes::from(serde_json::to_string(event).expect("events always serialise"))
}

/// Whether filter `key = want` holds for an event (its JSON fields) about `track`.
fn matches(
    fields: &serde_json::Value,
    track: Option<&crate::library::Track>,
    key: &str,
    want: &str,
) -> bool {
    let eq = |have: Option<&str>| have.is_some_and(|h| h.eq_ignore_ascii_case(want));
    match fields.get(key) {
        Some(serde_json::Value::String(s)) => s == want,
        Some(serde_json::Value::Number(n)) => n.to_string() == want,
        Some(serde_json::Value::Bool(b)) => b.to_string() == want,
        Some(_) => false,
        None => match key {
            "track_genre" | "genre" => eq(track.and_then(|t| t.genre.as_deref())),
            "artist" | "track_artist" => eq(track.and_then(|t| t.artist.as_deref())),
            "album" | "track_album" => eq(track.and_then(|t| t.album.as_deref())),
            "title" | "track_title" => eq(track.map(|t| t.title.as_str())),
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests;

//! The WebSocket wire protocol: the spec's commands (client → server, tagged `"command"`) and
//! events (server → client, tagged `"event"`), with the spec's exact field names.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use ts_rs::TS;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[ts(export)]
pub enum PlaylistAction {
    Added,
    Removed,
    Reordered,
    Cleared,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS, utoipa::ToSchema)]
#[ts(export)]
pub enum MessageLevel {
    Info,
    Warning,
    Error,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct LiveTrackStats {
    pub track_id: String,
    pub title: String,
    pub artist: String,
    pub current_listeners: u32,
}

/// Server → client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[ts(export)]
#[serde(tag = "event")]
pub enum WebSocketEvent {
    PlaybackStarted {
        track_id: String,
        user_id: String,
        #[ts(type = "number")]
        timestamp: u64,
    },
    PlaybackPaused {
        track_id: String,
        user_id: String,
        #[ts(type = "number")]
        position_ms: u64,
    },
    PlaybackResumed {
        track_id: String,
        user_id: String,
        #[ts(type = "number")]
        position_ms: u64,
    },
    PlaybackStopped {
        track_id: String,
        user_id: String,
        #[ts(type = "number")]
        total_played_ms: u64,
    },
    PlaybackProgress {
        track_id: String,
        user_id: String,
        #[ts(type = "number")]
        position_ms: u64,
        buffer_percentage: f32,
    },
    PlaylistUpdated {
        playlist_id: String,
        action: PlaylistAction,
        track_id: Option<String>,
        #[ts(type = "number | null")]
        position: Option<usize>,
    },
    PlaylistShared {
        playlist_id: String,
        from_user: String,
        to_users: Vec<String>,
    },
    TrackLiked {
        track_id: String,
        user_id: String,
        #[ts(type = "number")]
        total_likes: u64,
    },
    TrackShared {
        track_id: String,
        from_user: String,
        to_users: Vec<String>,
        message: Option<String>,
    },
    UserFollowed {
        follower_id: String,
        followed_id: String,
    },
    ServerMessage {
        message: String,
        level: MessageLevel,
    },
    RateLimitWarning {
        remaining_requests: u32,
        #[ts(type = "number")]
        reset_time_seconds: u64,
    },
    CommandResponse {
        command_id: String,
        success: bool,
        data: Option<serde_json::Value>,
        error: Option<String>,
    },
    LiveStats {
        concurrent_listeners: u32,
        top_tracks: Vec<LiveTrackStats>,
        server_load: f32,
    },
    /// An addition to the spec: a streaming session's quality changed, and why. Sent to the
    /// session's user only; `user_id` is that user, so a `user_id` filter applies to it as to
    /// the playback events.
    QualityChanged {
        session_id: String,
        user_id: String,
        track_id: String,
        from: String,
        to: String,
        reason: String,
    },
}

/// Every event name, for validating subscriptions.
pub const EVENT_NAMES: &[&str] = &[
    "PlaybackStarted",
    "PlaybackPaused",
    "PlaybackResumed",
    "PlaybackStopped",
    "PlaybackProgress",
    "PlaylistUpdated",
    "PlaylistShared",
    "TrackLiked",
    "TrackShared",
    "UserFollowed",
    "ServerMessage",
    "RateLimitWarning",
    "CommandResponse",
    "LiveStats",
    "QualityChanged",
];

impl WebSocketEvent {
    pub fn name(&self) -> &'static str {
        match self {
            WebSocketEvent::PlaybackStarted { .. } => "PlaybackStarted",
            WebSocketEvent::PlaybackPaused { .. } => "PlaybackPaused",
            WebSocketEvent::PlaybackResumed { .. } => "PlaybackResumed",
            WebSocketEvent::PlaybackStopped { .. } => "PlaybackStopped",
            WebSocketEvent::PlaybackProgress { .. } => "PlaybackProgress",
            WebSocketEvent::PlaylistUpdated { .. } => "PlaylistUpdated",
            WebSocketEvent::PlaylistShared { .. } => "PlaylistShared",
            WebSocketEvent::TrackLiked { .. } => "TrackLiked",
            WebSocketEvent::TrackShared { .. } => "TrackShared",
            WebSocketEvent::UserFollowed { .. } => "UserFollowed",
            WebSocketEvent::ServerMessage { .. } => "ServerMessage",
            WebSocketEvent::RateLimitWarning { .. } => "RateLimitWarning",
            WebSocketEvent::CommandResponse { .. } => "CommandResponse",
            WebSocketEvent::LiveStats { .. } => "LiveStats",
            WebSocketEvent::QualityChanged { .. } => "QualityChanged",
        }
    }

    /// The track an event is about, for filters on track attributes.
    pub fn track_id(&self) -> Option<&str> {
        match self {
            WebSocketEvent::PlaybackStarted { track_id, .. }
            | WebSocketEvent::PlaybackPaused { track_id, .. }
            | WebSocketEvent::PlaybackResumed { track_id, .. }
            | WebSocketEvent::PlaybackStopped { track_id, .. }
            | WebSocketEvent::PlaybackProgress { track_id, .. }
            | WebSocketEvent::TrackLiked { track_id, .. }
            | WebSocketEvent::TrackShared { track_id, .. }
            | WebSocketEvent::QualityChanged { track_id, .. } => Some(track_id),
            WebSocketEvent::PlaylistUpdated { track_id, .. } => track_id.as_deref(),
            _ => None,
        }
    }
}

/// Client → server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[ts(export)]
#[serde(tag = "command")]
pub enum WebSocketCommand {
    Play {
        command_id: String,
        track_id: String,
        #[ts(type = "number | null")]
        #[serde(default, deserialize_with = "crate::streaming::millis::optional")]
        start_position_ms: Option<u64>,
        /// Not in the spec: the streaming session (`POST /api/streaming/session`) this play
        /// goes with. That session already started the play in analytics; naming it makes this
        /// command's play the same one instead of a second.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        session_id: Option<String>,
    },
    Pause {
        command_id: String,
        track_id: String,
    },
    Stop {
        command_id: String,
        track_id: String,
    },
    Seek {
        command_id: String,
        track_id: String,
        #[ts(type = "number")]
        #[serde(deserialize_with = "crate::streaming::millis::deserialize")]
        position_ms: u64,
    },
    AddToPlaylist {
        command_id: String,
        playlist_id: String,
        track_id: String,
        #[ts(type = "number | null")]
        position: Option<usize>,
    },
    RemoveFromPlaylist {
        command_id: String,
        playlist_id: String,
        track_id: String,
    },
    Subscribe {
        command_id: String,
        events: Vec<String>,
        filters: Option<HashMap<String, String>>,
    },
    Unsubscribe {
        command_id: String,
        events: Vec<String>,
    },
    GetStatus {
        command_id: String,
    },
    Ping {
        command_id: String,
    },
}

impl WebSocketCommand {
    pub fn command_id(&self) -> &str {
        match self {
            WebSocketCommand::Play { command_id, .. }
            | WebSocketCommand::Pause { command_id, .. }
            | WebSocketCommand::Stop { command_id, .. }
            | WebSocketCommand::Seek { command_id, .. }
            | WebSocketCommand::AddToPlaylist { command_id, .. }
            | WebSocketCommand::RemoveFromPlaylist { command_id, .. }
            | WebSocketCommand::Subscribe { command_id, .. }
            | WebSocketCommand::Unsubscribe { command_id, .. }
            | WebSocketCommand::GetStatus { command_id }
            | WebSocketCommand::Ping { command_id } => command_id,
        }
    }
}

/// Parses a text frame. Never fails silently: the error names what was wrong, and the
/// `command_id` is recovered when the JSON has one, so the client can match the failure.
pub fn parse_command(text: &str) -> Result<WebSocketCommand, (Option<String>, String)> {
    serde_json::from_str::<WebSocketCommand>(text).map_err(|e| {
        let id = serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .and_then(|v| {
                v.get("command_id")
                    .and_then(|c| c.as_str())
                    .map(str::to_string)
            });
        (id, format!("invalid command: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wire_format_matches_the_spec() {
        let cmd = parse_command(r#"{"command":"Play","command_id":"cmd_123","track_id":"song_456","start_position_ms":30000}"#).unwrap();
        assert_eq!(
            cmd,
            WebSocketCommand::Play {
                command_id: "cmd_123".into(),
                track_id: "song_456".into(),
                start_position_ms: Some(30000),
                session_id: None,
            }
        );
        let ev = WebSocketEvent::PlaybackStarted {
            track_id: "song_456".into(),
            user_id: "user_123".into(),
            timestamp: 1640995200,
        };
        assert_eq!(
            serde_json::to_value(&ev).unwrap(),
            serde_json::json!({"event": "PlaybackStarted", "track_id": "song_456", "user_id": "user_123", "timestamp": 1640995200u64})
        );
        let r = WebSocketEvent::CommandResponse {
            command_id: "cmd_123".into(),
            success: true,
            data: Some(serde_json::json!({"track_duration_ms": 210000, "quality": "high"})),
            error: None,
        };
        assert_eq!(
            serde_json::to_value(&r).unwrap()["error"],
            serde_json::Value::Null
        );
        let sub = parse_command(r#"{"command":"Subscribe","command_id":"sub_001","events":["PlaybackStarted"],"filters":{"user_id":"user_123","track_genre":"electronic"}}"#).unwrap();
        assert!(
            matches!(sub, WebSocketCommand::Subscribe { filters: Some(f), .. } if f["track_genre"] == "electronic")
        );
        for name in EVENT_NAMES {
            assert!(!name.is_empty());
        }
    }

    #[test]
    fn bad_input_names_the_problem_and_keeps_the_id() {
        let (id, err) = parse_command(
            r#"{"command":"Seek","command_id":"s1","track_id":"t","position_ms":"soon"}"#,
        )
        .unwrap_err();
        assert_eq!(id.as_deref(), Some("s1"));
        assert!(err.contains("invalid"), "{err}");
        assert!(parse_command(r#"{"command":"Teleport","command_id":"x"}"#).is_err());
        assert!(parse_command("not json").unwrap_err().0.is_none());
    }

    proptest! {
        #[test]
        fn parsing_never_panics(s in "\\PC{0,200}") {
            let _ = parse_command(&s);
        }
    }
}

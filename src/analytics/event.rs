//! What the analytics engine records: the events queued to its writer.

use serde::{Deserialize, Serialize};

/// Where a play happens (the spec's `Platform`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Platform {
    Web,
    #[serde(rename = "iOS", alias = "Ios", alias = "IOS")]
    Ios,
    Android,
    Desktop,
    SmartSpeaker,
    Car,
    Unknown,
}

impl Platform {
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Web => "web",
            Platform::Ios => "ios",
            Platform::Android => "android",
            Platform::Desktop => "desktop",
            Platform::SmartSpeaker => "smart_speaker",
            Platform::Car => "car",
            Platform::Unknown => "unknown",
        }
    }

    /// A guess from a `User-Agent` header.
    pub fn from_user_agent(ua: &str) -> Self {
        let ua = ua.to_ascii_lowercase();
        if ua.contains("carplay") || ua.contains("android auto") || ua.contains("automotive") {
            Platform::Car
        } else if ua.contains("sonos") || ua.contains("alexa") || ua.contains("crkey") {
            Platform::SmartSpeaker
        } else if ua.contains("iphone") || ua.contains("ipad") || ua.contains("ios") {
            Platform::Ios
        } else if ua.contains("android") {
            Platform::Android
        } else if ua.contains("mozilla") {
            Platform::Web
        } else if ua.is_empty() {
            Platform::Unknown
        } else {
            Platform::Desktop
        }
    }
}

/// A new play session, as stored.
#[derive(Debug, Clone)]
pub struct SessionStart {
    pub id: String,
    pub user_id: Option<String>,
    pub track_id: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub referrer: Option<String>,
    pub platform: Platform,
    pub quality: String,
    pub quality_kbps: u32,
    pub connection_type: Option<String>,
    pub track_duration_ms: u64,
    pub at: i64,
}

/// One performance report of a player.
#[derive(Debug, Clone, Default)]
pub struct PerformanceSample {
    pub buffer_health: f64,
    pub download_kbps: i64,
    pub packet_loss: f64,
    pub latency_ms: i64,
    pub rebuffer_count: i64,
    pub rebuffer_ms: i64,
    pub quality_switches: i64,
}

/// Social and playlist actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocialKind {
    Like,
    Share,
    Follow,
}

impl SocialKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SocialKind::Like => "like",
            SocialKind::Share => "share",
            SocialKind::Follow => "follow",
        }
    }
}

/// Everything the writer applies.
#[derive(Debug)]
pub enum Event {
    Start(SessionStart),
    Progress {
        session: String,
        at: i64,
        position_ms: u64,
        buffer_health: Option<f32>,
    },
    Startup {
        session: String,
        startup_ms: u64,
    },
    QualitySwitch {
        session: String,
        at: i64,
        from: String,
        to: String,
        to_kbps: u32,
        reason: Option<String>,
    },
    Rebuffer {
        session: String,
        at: i64,
        duration_ms: u64,
    },
    Performance {
        session: String,
        at: i64,
        sample: PerformanceSample,
    },
    End {
        session: String,
        at: i64,
        position_ms: Option<u64>,
    },
    /// The listener paused at `position_ms`: until the next `Resume` nothing is listened to,
    /// and a forward move meanwhile is a seek, however long the pause was.
    Pause {
        session: String,
        at: i64,
        position_ms: u64,
    },
    Resume {
        session: String,
        at: i64,
    },
    /// Ends every open play whose last report, plus its track's length, is older than
    /// `before`, at that report: its
    /// listener left without a word (a closed tab, a lost phone) or the process serving it
    /// died. Answered with the number ended once committed, `None` if the batch failed.
    EndSilent {
        before: i64,
        done: Option<tokio::sync::oneshot::Sender<Option<u64>>>,
    },
    Social {
        kind: SocialKind,
        user_id: String,
        target_type: String,
        target_id: String,
        at: i64,
        detail: Option<String>,
    },
    Playlist {
        playlist_id: String,
        user_id: Option<String>,
        action: String,
        track_id: Option<String>,
        position: Option<u64>,
        at: i64,
    },
    /// Answered once everything queued before it is committed.
    Flush(tokio::sync::oneshot::Sender<()>),
}

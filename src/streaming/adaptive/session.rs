//! Streaming sessions and the performance reports players send about them.

use std::collections::HashMap;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::{AdaptiveProfile, ClientCapabilities};

/// One listener playing one track (the spec's `StreamingSession`).
#[derive(Debug, Clone, Serialize, ts_rs::TS, utoipa::ToSchema)]
#[ts(export)]
pub struct StreamingSession {
    pub session_id: String,
    pub track_id: String,
    pub client_id: String,
    pub current_quality: String,
    pub client_capabilities: ClientCapabilities,
    pub performance_metrics: PerformanceMetrics,
    #[schema(value_type = SystemTimeJson)]
    #[ts(as = "SystemTimeJson")]
    pub created_at: SystemTime,
    #[schema(value_type = SystemTimeJson)]
    #[ts(as = "SystemTimeJson")]
    pub last_updated: SystemTime,
}

/// A `SystemTime` as serde writes it (time since the Unix epoch).
#[derive(ts_rs::TS, utoipa::ToSchema)]
#[ts(export)]
#[allow(dead_code)] // schema only
pub struct SystemTimeJson {
    #[ts(type = "number")]
    secs_since_epoch: u64,
    nanos_since_epoch: u32,
}

/// A player's report on how playback goes (the spec's `PerformanceMetrics`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ts_rs::TS, utoipa::ToSchema)]
#[ts(export)]
#[serde(default)]
pub struct PerformanceMetrics {
    /// Seconds buffered ahead of the playhead, as a percentage of the player's buffer target
    /// (`buffer_duration_ms`), or of what is left of the track when that is less: near the end
    /// of a track, the rest of it buffered is 100 %.
    pub buffer_health_percentage: f32,
    pub download_speed_kbps: u32,
    pub packet_loss_percentage: f32,
    pub latency_ms: u32,
    pub rebuffer_count: u32,
    pub rebuffer_duration_ms: u32,
    pub quality_switches: u32,
}

impl PerformanceMetrics {
    /// Clamps values a player may send out of range (percentages to 0..=100, NaN to 0).
    pub fn sanitized(mut self) -> Self {
        let pct = |v: f32| {
            if v.is_finite() {
                v.clamp(0.0, 100.0)
            } else {
                0.0
            }
        };
        self.buffer_health_percentage = pct(self.buffer_health_percentage);
        self.packet_loss_percentage = pct(self.packet_loss_percentage);
        self
    }
}

/// Sessions now and totals since start: what the spec's `get_streaming_stats` returns (as JSON).
#[derive(Debug, Clone, Serialize, ts_rs::TS, utoipa::ToSchema)]
#[ts(export)]
pub struct StreamingStats {
    #[ts(type = "number")]
    pub active_sessions: u64,
    /// Every profile of the ladder, with 0 when none plays it.
    #[ts(type = "Record<string, number>")]
    pub sessions_by_quality: HashMap<String, u64>,
    #[ts(type = "Record<string, number>")]
    pub sessions_by_connection: HashMap<String, u64>,
    #[ts(type = "Record<string, number>")]
    pub sessions_by_device: HashMap<String, u64>,
    /// Mean buffer health (%) over sessions that reported; `null` before any report.
    pub average_buffer_health: Option<f64>,
    /// Rebuffers reported by the sessions open now.
    #[ts(type = "number")]
    pub total_rebuffers: u64,
    #[ts(type = "number")]
    pub sessions_created: u64,
    #[ts(type = "number")]
    pub quality_changes: u64,
    #[ts(type = "number")]
    pub sessions_expired: u64,
    /// Sessions ended to make room for a newer one of the same holder (a listener or an
    /// address past its share; see `SESSIONS_PER_USER`, `SESSIONS_PER_ADDRESS`).
    #[ts(type = "number")]
    pub sessions_evicted: u64,
    pub profiles: Vec<AdaptiveProfile>,
    pub monitor_running: bool,
}

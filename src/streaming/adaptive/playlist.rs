//! The spec's HLS playlist types (rendered by `streaming::hls`).

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MasterPlaylist {
    pub version: u8,
    pub streams: Vec<StreamInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreamInfo {
    /// Peak segment bit rate, bits/s (RFC 8216 §4.3.4.2 `BANDWIDTH`).
    pub bandwidth: u32,
    /// Average bit rate, bits/s (`AVERAGE-BANDWIDTH`); an addition to the spec's struct.
    pub average_bandwidth: Option<u32>,
    pub codecs: String,
    pub resolution: Option<String>,
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HLSManifest {
    pub version: u8,
    pub target_duration: u32,
    pub media_sequence: u32,
    pub segments: Vec<HLSSegment>,
    pub end_list: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HLSSegment {
    pub duration: f32,
    pub url: String,
    /// `(length, offset)` for `EXT-X-BYTERANGE`.
    pub byte_range: Option<(u64, u64)>,
}

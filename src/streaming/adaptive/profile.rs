//! Quality profiles: the spec's four presets and what the packager needs to know of each.

use serde::{Deserialize, Serialize};

use crate::config::ProfileConfig;

/// One rung of the quality ladder (the spec's `AdaptiveProfile`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS, utoipa::ToSchema)]
#[ts(export)]
pub struct AdaptiveProfile {
    pub quality_id: String,
    pub bitrate_kbps: u32,
    pub sample_rate: u32,
    pub channels: u8,
    pub codec: String,
    pub file_extension: String,
    pub bandwidth_estimate_kbps: u32,
}

/// The codecs the packager can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// AAC-LC in ADTS (RFC 8216 §3.4 packed audio).
    Aac,
    /// MPEG-1/2 Layer III.
    Mp3,
}

impl Codec {
    pub fn mime_type(self) -> &'static str {
        match self {
            Codec::Aac => "audio/aac",
            Codec::Mp3 => "audio/mpeg",
        }
    }
}

impl AdaptiveProfile {
    pub fn high_quality() -> Self {
        Self::preset("high", 320, 44100, "aac", 400)
    }

    pub fn medium_quality() -> Self {
        Self::preset("medium", 192, 44100, "aac", 250)
    }

    pub fn low_quality() -> Self {
        Self::preset("low", 128, 22050, "mp3", 160)
    }

    pub fn mobile_quality() -> Self {
        Self::preset("mobile", 96, 22050, "aac", 120)
    }

    fn preset(id: &str, kbps: u32, rate: u32, codec: &str, bw: u32) -> Self {
        Self {
            quality_id: id.to_string(),
            bitrate_kbps: kbps,
            sample_rate: rate,
            channels: 2,
            codec: codec.to_string(),
            file_extension: codec.to_string(),
            bandwidth_estimate_kbps: bw,
        }
    }

    /// The spec's four presets, best first.
    pub fn presets() -> Vec<Self> {
        vec![
            Self::high_quality(),
            Self::medium_quality(),
            Self::low_quality(),
            Self::mobile_quality(),
        ]
    }

    /// The ladder: the presets plus profiles declared in the configuration (validated there),
    /// sorted by bitrate, best first. A configured profile with a preset's id replaces it.
    pub fn ladder(extra: &[ProfileConfig]) -> Vec<Self> {
        let mut ladder = Self::presets();
        for p in extra {
            let profile = Self {
                quality_id: p.quality_id.clone(),
                bitrate_kbps: p.bitrate_kbps,
                sample_rate: p.sample_rate,
                channels: 2,
                codec: p.codec.clone(),
                file_extension: p.codec.clone(),
                // Same 25% margin over the media bitrate as the spec's presets.
                bandwidth_estimate_kbps: p
                    .bandwidth_estimate_kbps
                    .unwrap_or(p.bitrate_kbps * 5 / 4),
            };
            ladder.retain(|q| q.quality_id != profile.quality_id);
            ladder.push(profile);
        }
        ladder.sort_by_key(|p| std::cmp::Reverse(p.bitrate_kbps));
        ladder
    }

    pub fn codec_kind(&self) -> Codec {
        match self.codec.as_str() {
            "mp3" => Codec::Mp3,
            _ => Codec::Aac,
        }
    }

    /// Samples per channel in one coded frame: 1024 for AAC-LC; for Layer III 1152 at MPEG-1
    /// rates (32 kHz and up) and 576 at MPEG-2 rates.
    pub fn frame_len(&self) -> u32 {
        match self.codec_kind() {
            Codec::Aac => 1024,
            Codec::Mp3 if self.sample_rate >= 32000 => 1152,
            Codec::Mp3 => 576,
        }
    }

    /// RFC 6381 codec string for the master playlist's `CODECS` attribute.
    pub fn hls_codecs(&self) -> &'static str {
        match self.codec_kind() {
            Codec::Aac => "mp4a.40.2",
            // mp4a.40.34: MPEG-1/2 Layer III, as hls.js and Apple's tools write it.
            Codec::Mp3 => "mp4a.40.34",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_match_the_spec() {
        let p = AdaptiveProfile::presets();
        let ids: Vec<_> = p.iter().map(|p| p.quality_id.as_str()).collect();
        assert_eq!(ids, ["high", "medium", "low", "mobile"]);
        assert_eq!(AdaptiveProfile::low_quality().frame_len(), 576);
        assert_eq!(AdaptiveProfile::high_quality().frame_len(), 1024);
        assert_eq!(
            AdaptiveProfile::mobile_quality().bandwidth_estimate_kbps,
            120
        );
    }

    #[test]
    fn ladder_adds_and_replaces() {
        let extra = vec![
            ProfileConfig {
                quality_id: "hifi".into(),
                bitrate_kbps: 256,
                sample_rate: 48000,
                codec: "aac".into(),
                bandwidth_estimate_kbps: None,
            },
            ProfileConfig {
                quality_id: "low".into(),
                bitrate_kbps: 112,
                sample_rate: 44100,
                codec: "mp3".into(),
                bandwidth_estimate_kbps: Some(150),
            },
        ];
        let ladder = AdaptiveProfile::ladder(&extra);
        let ids: Vec<_> = ladder.iter().map(|p| p.quality_id.as_str()).collect();
        assert_eq!(ids, ["high", "hifi", "medium", "low", "mobile"]);
        assert_eq!(ladder[1].bandwidth_estimate_kbps, 320);
        assert_eq!(ladder[3].frame_len(), 1152);
    }
}

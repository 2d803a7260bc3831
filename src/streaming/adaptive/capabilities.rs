//! What a client can take, and the initial choice of profile from it.
//!
//! # Initial selection
//!
//! | input | effect |
//! |---|---|
//! | `adaptive_enabled = false` and `preferred_quality` names a profile | that profile, whatever the link |
//! | `preferred_quality` names a profile that fits the link (below) | that profile |
//! | `estimated_bandwidth_kbps > 0` | the best profile whose `bandwidth_estimate_kbps` fits in the usable share of it |
//! | no bandwidth figure | a default per connection type: 2G → `mobile`, 3G → `mobile`, 4G → `medium`, Wi-Fi/Ethernet → `high`, unknown → `medium` |
//! | usable share of the bandwidth | 100% on Ethernet/Wi-Fi, 85% on 4G, 75% on 3G, 60% on 2G and unknown (cellular links swing) |
//! | device | `SmartSpeaker` and `CarAudio` start one rung lower unless the link has twice the room (they cannot show a spinner and are often on the move); phones on cellular never start above `medium`. Both rules shape the automatic choice only: a preferred profile that fits the link is the listener's call and is taken as is |
//! | nothing fits | the smallest profile |
//!
//! What a client leaves unknown is completed from its request (Client Hints, `User-Agent`)
//! and `Save-Data` plans a slow link, for sessions and progressive downloads alike
//! ([`ClientCapabilities::with_hints`]).
//!
//! Only AAC profiles are chosen for adaptive clients (the MP3 rung cannot be switched to by
//! hls.js, see `design.md`); a client that asks for `low` by name gets it.

use serde::{Deserialize, Serialize};

use super::AdaptiveProfile;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS, utoipa::ToSchema)]
#[ts(export)]
pub struct ClientCapabilities {
    #[serde(deserialize_with = "crate::streaming::millis::whole_u32")]
    pub estimated_bandwidth_kbps: u32,
    #[serde(deserialize_with = "crate::streaming::millis::whole_u32")]
    pub buffer_duration_ms: u32,
    pub connection_type: ConnectionType,
    pub device_type: DeviceType,
    #[serde(default)]
    pub preferred_quality: Option<String>,
    #[serde(default = "yes")]
    pub adaptive_enabled: bool,
}

fn yes() -> bool {
    true
}

impl Default for ClientCapabilities {
    fn default() -> Self {
        Self {
            estimated_bandwidth_kbps: 0,
            buffer_duration_ms: 5000,
            connection_type: ConnectionType::Unknown,
            device_type: DeviceType::Unknown,
            preferred_quality: None,
            adaptive_enabled: true,
        }
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ts_rs::TS, utoipa::ToSchema,
)]
#[ts(export)]
pub enum ConnectionType {
    Wifi,
    Cellular4G,
    Cellular3G,
    Cellular2G,
    Ethernet,
    Unknown,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ts_rs::TS, utoipa::ToSchema,
)]
#[ts(export)]
pub enum DeviceType {
    Desktop,
    Mobile,
    Tablet,
    SmartSpeaker,
    CarAudio,
    Unknown,
}

impl ConnectionType {
    /// Share of the measured bandwidth we plan to use.
    fn usable_share(self) -> f64 {
        match self {
            ConnectionType::Ethernet | ConnectionType::Wifi => 1.0,
            ConnectionType::Cellular4G => 0.85,
            ConnectionType::Cellular3G => 0.75,
            ConnectionType::Cellular2G | ConnectionType::Unknown => 0.6,
        }
    }

    fn default_quality(self) -> &'static str {
        match self {
            ConnectionType::Cellular2G | ConnectionType::Cellular3G => "mobile",
            ConnectionType::Cellular4G | ConnectionType::Unknown => "medium",
            ConnectionType::Wifi | ConnectionType::Ethernet => "high",
        }
    }

    fn is_cellular(self) -> bool {
        matches!(
            self,
            ConnectionType::Cellular2G | ConnectionType::Cellular3G | ConnectionType::Cellular4G
        )
    }

    /// From a Network Information API `effectiveType` or Client Hint `ECT` value.
    pub fn from_ect(ect: &str) -> Option<Self> {
        match ect.trim().trim_matches('"').to_ascii_lowercase().as_str() {
            "slow-2g" | "2g" => Some(ConnectionType::Cellular2G),
            "3g" => Some(ConnectionType::Cellular3G),
            "4g" => Some(ConnectionType::Cellular4G),
            _ => None,
        }
    }

    /// From a query parameter (`wifi`, `ethernet`, `4g`, `3g`, `2g`, or the variant name).
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim().to_ascii_lowercase();
        match s.as_str() {
            "wifi" | "wi-fi" => Some(ConnectionType::Wifi),
            "ethernet" | "wired" => Some(ConnectionType::Ethernet),
            "cellular4g" | "lte" => Some(ConnectionType::Cellular4G),
            "cellular3g" => Some(ConnectionType::Cellular3G),
            "cellular2g" | "edge" => Some(ConnectionType::Cellular2G),
            "unknown" => Some(ConnectionType::Unknown),
            other => Self::from_ect(other),
        }
    }
}

impl DeviceType {
    pub fn parse(s: &str) -> Option<Self> {
        match s
            .trim()
            .to_ascii_lowercase()
            .replace(['_', '-'], "")
            .as_str()
        {
            "desktop" => Some(DeviceType::Desktop),
            "mobile" | "phone" => Some(DeviceType::Mobile),
            "tablet" => Some(DeviceType::Tablet),
            "smartspeaker" | "speaker" => Some(DeviceType::SmartSpeaker),
            "caraudio" | "car" => Some(DeviceType::CarAudio),
            "unknown" => Some(DeviceType::Unknown),
            _ => None,
        }
    }

    /// A rough guess from a `User-Agent` header.
    pub fn from_user_agent(ua: &str) -> Self {
        let ua = ua.to_ascii_lowercase();
        if ua.contains("android auto") || ua.contains("carplay") || ua.contains("automotive") {
            DeviceType::CarAudio
        } else if ua.contains("sonos")
            || ua.contains("alexa")
            || ua.contains("echo")
            || ua.contains("googlecast")
            || ua.contains("crkey")
        {
            DeviceType::SmartSpeaker
        } else if ua.contains("ipad") || ua.contains("tablet") {
            DeviceType::Tablet
        } else if ua.contains("mobi") || ua.contains("iphone") || ua.contains("android") {
            DeviceType::Mobile
        } else if ua.contains("windows")
            || ua.contains("macintosh")
            || ua.contains("x11")
            || ua.contains("linux")
        {
            DeviceType::Desktop
        } else {
            DeviceType::Unknown
        }
    }
}

/// What a request tells about its client, independent of how it was carried (query string,
/// Client Hints, `User-Agent`): the HTTP layer fills this in.
#[derive(Debug, Clone, Default)]
pub struct ClientHints {
    pub bandwidth_kbps: Option<u32>,
    pub connection: Option<ConnectionType>,
    pub device: Option<DeviceType>,
    /// `Save-Data: on`.
    pub save_data: bool,
    pub preferred_quality: Option<String>,
}

impl ClientHints {
    pub fn into_capabilities(self) -> ClientCapabilities {
        ClientCapabilities {
            estimated_bandwidth_kbps: 0,
            connection_type: ConnectionType::Unknown,
            device_type: DeviceType::Unknown,
            preferred_quality: None,
            ..ClientCapabilities::default()
        }
        .with_hints(&self)
    }
}

impl ClientCapabilities {
    /// Completes what a client said of itself with what its request says (what it left
    /// unknown: bandwidth, connection, device, preferred quality), and applies `Save-Data`,
    /// so a session and a progressive download of the same client start alike.
    pub fn with_hints(mut self, hints: &ClientHints) -> Self {
        if self.estimated_bandwidth_kbps == 0 {
            self.estimated_bandwidth_kbps = hints.bandwidth_kbps.unwrap_or(0);
        }
        if self.connection_type == ConnectionType::Unknown {
            self.connection_type = hints.connection.unwrap_or(ConnectionType::Unknown);
        }
        if self.device_type == DeviceType::Unknown {
            self.device_type = hints.device.unwrap_or(DeviceType::Unknown);
        }
        if self.preferred_quality.is_none() {
            self.preferred_quality.clone_from(&hints.preferred_quality);
        }
        if hints.save_data {
            // The user asked to spend less data: plan as if on the slowest link we know.
            self.connection_type = ConnectionType::Cellular2G;
            self.estimated_bandwidth_kbps = self.estimated_bandwidth_kbps.clamp(1, 150);
        }
        self
    }
}

/// The initial profile for an adaptive (HLS) client (see the module table): AAC rungs only.
pub fn select_initial_profile(
    caps: &ClientCapabilities,
    ladder: &[AdaptiveProfile],
) -> AdaptiveProfile {
    let adaptive: Vec<&AdaptiveProfile> = ladder.iter().filter(|p| p.codec == "aac").collect();
    let candidates: Vec<&AdaptiveProfile> = if adaptive.is_empty() {
        ladder.iter().collect()
    } else {
        adaptive
    };
    select_from(caps, ladder, candidates)
}

/// The profile for a progressive download: the same table, but every rung may be chosen (a
/// progressive client never switches, so the MP3 rung is fine).
pub fn select_progressive_profile(
    caps: &ClientCapabilities,
    ladder: &[AdaptiveProfile],
) -> AdaptiveProfile {
    select_from(caps, ladder, ladder.iter().collect())
}

fn select_from(
    caps: &ClientCapabilities,
    ladder: &[AdaptiveProfile],
    candidates: Vec<&AdaptiveProfile>,
) -> AdaptiveProfile {
    let by_id = |id: &str| ladder.iter().find(|p| p.quality_id == id);
    let smallest = candidates
        .iter()
        .min_by_key(|p| p.bandwidth_estimate_kbps)
        .copied()
        .or_else(|| ladder.last())
        .expect("the ladder is never empty");

    let preferred = caps.preferred_quality.as_deref().and_then(by_id);
    if let (Some(p), false) = (preferred, caps.adaptive_enabled) {
        return p.clone();
    }

    let budget = if caps.estimated_bandwidth_kbps > 0 {
        f64::from(caps.estimated_bandwidth_kbps) * caps.connection_type.usable_share()
    } else {
        // No measurement: use the connection type's default rung as the budget.
        let def = by_id(caps.connection_type.default_quality()).unwrap_or(smallest);
        f64::from(def.bandwidth_estimate_kbps)
    };
    let fits = |p: &AdaptiveProfile, budget: f64| f64::from(p.bandwidth_estimate_kbps) <= budget;

    if let Some(p) = preferred.filter(|p| fits(p, budget)) {
        return p.clone();
    }
    let mut ordered = candidates.clone();
    ordered.sort_by_key(|p| std::cmp::Reverse(p.bandwidth_estimate_kbps));
    let mut pick_idx = ordered
        .iter()
        .position(|p| fits(p, budget))
        .unwrap_or(ordered.len() - 1);

    let cautious = matches!(
        caps.device_type,
        DeviceType::SmartSpeaker | DeviceType::CarAudio
    );
    if cautious && !fits(ordered[pick_idx], budget / 2.0) {
        pick_idx = (pick_idx + 1).min(ordered.len() - 1);
    }
    if caps.device_type == DeviceType::Mobile && caps.connection_type.is_cellular() {
        if let Some(medium) = by_id("medium") {
            while pick_idx + 1 < ordered.len()
                && ordered[pick_idx].bandwidth_estimate_kbps > medium.bandwidth_estimate_kbps
            {
                pick_idx += 1;
            }
        }
    }
    ordered[pick_idx].clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pick(bw: u32, conn: ConnectionType, dev: DeviceType) -> String {
        let caps = ClientCapabilities {
            estimated_bandwidth_kbps: bw,
            connection_type: conn,
            device_type: dev,
            ..Default::default()
        };
        select_initial_profile(&caps, &AdaptiveProfile::presets()).quality_id
    }

    #[test]
    fn the_spec_3g_phone_starts_at_mobile() {
        assert_eq!(
            pick(150, ConnectionType::Cellular3G, DeviceType::Mobile),
            "mobile"
        );
    }

    #[test]
    fn table_cases() {
        use ConnectionType::*;
        use DeviceType::*;
        assert_eq!(pick(10_000, Ethernet, Desktop), "high");
        assert_eq!(pick(400, Wifi, Desktop), "high");
        assert_eq!(pick(399, Wifi, Desktop), "medium");
        assert_eq!(pick(300, Cellular4G, Tablet), "medium");
        assert_eq!(pick(5_000, Cellular4G, Mobile), "medium");
        assert_eq!(pick(100, Cellular2G, Mobile), "mobile");
        assert_eq!(
            pick(0, ConnectionType::Unknown, DeviceType::Unknown),
            "medium"
        );
        assert_eq!(pick(0, Wifi, Desktop), "high");
        assert_eq!(pick(0, Cellular3G, DeviceType::Unknown), "mobile");
        // Car on a link that just fits high starts lower; with twice the room it gets high.
        assert_eq!(pick(450, Wifi, CarAudio), "medium");
        assert_eq!(pick(900, Wifi, CarAudio), "high");
        // Never the MP3 rung for an adaptive client; a progressive one may get it.
        assert_eq!(pick(170, Wifi, Desktop), "mobile");
        let caps = ClientCapabilities {
            estimated_bandwidth_kbps: 170,
            connection_type: Wifi,
            ..Default::default()
        };
        assert_eq!(
            select_progressive_profile(&caps, &AdaptiveProfile::presets()).quality_id,
            "low"
        );
    }

    #[test]
    fn preferences() {
        let mut caps = ClientCapabilities {
            estimated_bandwidth_kbps: 150,
            connection_type: ConnectionType::Cellular3G,
            preferred_quality: Some("high".into()),
            ..Default::default()
        };
        let ladder = AdaptiveProfile::presets();
        assert_eq!(select_initial_profile(&caps, &ladder).quality_id, "mobile");
        caps.adaptive_enabled = false;
        assert_eq!(select_initial_profile(&caps, &ladder).quality_id, "high");
        caps.preferred_quality = Some("low".into());
        assert_eq!(select_initial_profile(&caps, &ladder).quality_id, "low");
        // A preference that fits outranks the device rules, which shape the automatic choice.
        let phone = ClientCapabilities {
            estimated_bandwidth_kbps: 5_000,
            connection_type: ConnectionType::Cellular4G,
            device_type: DeviceType::Mobile,
            preferred_quality: Some("high".into()),
            ..Default::default()
        };
        assert_eq!(select_initial_profile(&phone, &ladder).quality_id, "high");
    }

    #[test]
    fn a_browser_s_fractional_bandwidth_is_read() {
        // `navigator.connection.downlink * 1000` for a downlink of 4.025 Mbit/s, as the spec's
        // hook sends it.
        let caps: ClientCapabilities = serde_json::from_str(
            r#"{"estimated_bandwidth_kbps": 4025.0000000000005, "buffer_duration_ms": 1500.5,
                "connection_type": "Wifi", "device_type": "Desktop"}"#,
        )
        .unwrap();
        assert_eq!(caps.estimated_bandwidth_kbps, 4025);
        assert_eq!(caps.buffer_duration_ms, 1501);
        for bad in [r#"-1"#, r#"5e9"#, r#""fast""#] {
            let json = format!(
                r#"{{"estimated_bandwidth_kbps": {bad}, "buffer_duration_ms": 0,
                    "connection_type": "Wifi", "device_type": "Desktop"}}"#
            );
            assert!(
                serde_json::from_str::<ClientCapabilities>(&json).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn hints() {
        let caps = ClientHints {
            bandwidth_kbps: Some(10_000),
            save_data: true,
            ..Default::default()
        }
        .into_capabilities();
        assert_eq!(
            select_initial_profile(&caps, &AdaptiveProfile::presets()).quality_id,
            "mobile"
        );
        assert_eq!(
            ConnectionType::from_ect("slow-2g"),
            Some(ConnectionType::Cellular2G)
        );
        assert_eq!(
            DeviceType::from_user_agent(
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148"
            ),
            DeviceType::Mobile
        );
        assert_eq!(
            DeviceType::from_user_agent("Mozilla/5.0 (X11; Linux x86_64) Chrome/120"),
            DeviceType::Desktop
        );
    }
}

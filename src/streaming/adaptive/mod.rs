//! Adaptive streaming: the spec's profiles, client capabilities, sessions and the
//! [`AdaptiveStreamingManager`] that ties them to the library and the HLS packager.

mod capabilities;
mod manager;
mod playlist;
pub mod policy;
mod profile;
mod session;
mod table;

pub use capabilities::{
    select_initial_profile, select_progressive_profile, ClientCapabilities, ClientHints,
    ConnectionType, DeviceType,
};
pub use manager::{
    find_track, AdaptiveStreamingManager, QualityChange, SegmentName, StreamingError, MAX_SESSIONS,
};
pub use playlist::{HLSManifest, HLSSegment, MasterPlaylist, StreamInfo};
pub use profile::{AdaptiveProfile, Codec};
pub use session::{PerformanceMetrics, StreamingSession, StreamingStats};
pub use table::{SessionHolder, SESSIONS_PER_ADDRESS, SESSIONS_PER_USER};

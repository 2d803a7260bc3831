//! The spec's streaming module: adaptive streaming (profiles, capabilities, sessions, the
//! manager) and HLS playlist rendering.

pub mod adaptive;
pub mod hls;

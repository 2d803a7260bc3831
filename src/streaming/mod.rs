//! The spec's streaming module: adaptive streaming (profiles, capabilities, sessions, the
//! manager), HLS playlist rendering, and the WebSocket manager.

pub mod adaptive;
pub mod hls;
pub mod millis;
pub mod websocket;

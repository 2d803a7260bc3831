//! The spec's WebSocket manager: live events, commands with responses, subscriptions.
//!
//! [`protocol`] is the wire format (the spec's types, serialised exactly as its examples);
//! [`hub`] routes events to connections (serialised once per event, delivered through each
//! connection's bounded queue, so a slow reader is dropped and never slows anyone else);
//! [`connection`] runs one socket; [`commands`] acts on what clients ask; [`subscription`] says
//! which events a connection receives; [`live`] builds `LiveStats`.

pub mod broker;
mod commands;
mod connection;
mod hub;
pub mod live;
pub mod protocol;
mod subscription;

pub use hub::{WebSocketConnection, WebSocketManager};
pub use protocol::{
    LiveTrackStats, MessageLevel, PlaylistAction, WebSocketCommand, WebSocketEvent,
};
pub use subscription::Subscription;

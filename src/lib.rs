//! stream-server: a self-hosted adaptive audio streaming server.
//!
//! # Layout
//! - [`analytics`]: play sessions, QoE and behaviour in SQLite or PostgreSQL, with a batched
//!   writer and reports.
//! - [`config`]: settings, layered defaults < TOML < `STREAM_SERVER_*` env < flags.
//! - [`library`]: scanning a music folder into a catalogue of tracks (ids, tags, exact durations),
//!   and the synthesised demo library.
//! - [`media`]: the in-process transcoding pipeline (symphonia → rubato → fdk-aac / LAME), the
//!   segment layout shared by packager and playlists, ID3 timestamps, and the on-disk
//!   [`media::cache::TranscodeCache`] with single-flight encodes and LRU eviction.
//! - [`streaming`]: the spec's adaptive-streaming types and manager ([`streaming::adaptive`]) and
//!   the pure HLS playlist renderer ([`streaming::hls`]).
//! - [`http`]: the axum router, handlers, byte ranges, and the one place errors become responses.
//! - [`server`]: binds nothing itself; runs the router on a given listener until shutdown.
//!
//! Arrows point down: `http` → `streaming`, `media`, `library` → `config`. Nothing below `http`
//! knows about HTTP.

pub mod analytics;
pub mod auth;
pub mod config;
pub mod http;
pub mod library;
pub mod media;
pub mod server;
pub mod social;
pub mod streaming;
pub mod telemetry;

pub use config::Config;

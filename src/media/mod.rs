//! Media: turning a library file into the frames and segments we serve.
//!
//! decode (symphonia) → resample (rubato) → encode (fdk-aac, LAME) → frames, cut into segments
//! by a [`layout::SegmentLayout`] that is known before encoding starts. Pure and synchronous;
//! [`cache::TranscodeCache`] is the one async-facing part (single-flight jobs on blocking threads,
//! on-disk results, LRU eviction).

pub mod aac;
pub mod cache;
pub mod decode;
pub mod encoder_delay;
pub mod id3;
pub mod layout;
pub mod mp3;
pub mod pipeline;
pub mod resample;

/// Encoder failures (fdk-aac, LAME).
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("{0}")]
    Codec(String),
}

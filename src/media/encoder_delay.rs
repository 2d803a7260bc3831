//! Encoder priming, and how much of it reaches the listener.
//!
//! Packed audio has no field to signal priming (ADTS has none; MP3 has the LAME Info tag, which
//! RFC 8216 packed audio does not carry), so whatever priming we serve is heard as a short
//! silence at the start. We keep it small and known, and the segment layout accounts for it so
//! that the served duration matches the source within 0.1 s.

use crate::streaming::adaptive::Codec;

/// fdk-aac's AAC-LC encoder delay (samples per channel), as `aacEncInfo().nDelay` reports it;
/// checked against the library in `media::aac` tests.
pub const AAC_LC_ENCODER_DELAY: u64 = 2048;

/// Leading AAC frames dropped from the encoder output. The first frame holds only priming: dropping
/// it leaves the decoded audio unchanged; dropping a second one damages the first 1024 samples
/// (measured, `design.md`).
pub const AAC_DROPPED_FRAMES: u64 = 1;

/// LAME's encoder delay at the rates we use (samples per channel).
pub const MP3_ENCODER_DELAY: u64 = 576;

/// The MP3 decoder's own delay (synthesis filterbank), added by every decoder.
pub const MP3_DECODER_DELAY: u64 = 529;

/// Where source sample 0 lands in the decoded output of what we serve.
pub fn served_delay(codec: Codec, _sample_rate: u32) -> u64 {
    match codec {
        Codec::Aac => AAC_LC_ENCODER_DELAY - AAC_DROPPED_FRAMES * 1024,
        Codec::Mp3 => MP3_ENCODER_DELAY + MP3_DECODER_DELAY,
    }
}

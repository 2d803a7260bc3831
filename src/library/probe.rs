//! Reading one file's facts: tags, stream parameters and exact length.

use std::path::Path;

use crate::media::decode::{DecodeError, SourceDecoder, Tags};

/// What a probe learns of a file.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    pub tags: Tags,
    pub sample_rate: u32,
    pub channels: u16,
    pub codec: String,
    pub samples: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("no audio in the file")]
    Empty,
    #[error("outside limits: {0}")]
    TooLong(String),
}

/// Opens `path`, reads its tags and counts its samples (demuxing only, gapless-trimmed).
pub fn probe(path: &Path, max_secs: u64) -> Result<Probe, ProbeError> {
    let mut dec = SourceDecoder::open(path)?;
    let mut samples = dec.count_samples()?;
    if samples == 0 {
        // Some containers give their packets no duration (Matroska/WebM without a default
        // duration): count what the codec decodes instead, once, here, and no further than the
        // length limit (a longer file is refused just below either way).
        let limit = max_secs
            .saturating_add(1)
            .saturating_mul(u64::from(dec.sample_rate));
        samples = decoded_samples(path, limit)?;
    }
    if samples == 0 {
        return Err(ProbeError::Empty);
    }
    let secs = samples / u64::from(dec.sample_rate);
    if secs > max_secs {
        return Err(ProbeError::TooLong(format!(
            "{secs} s long (at most {max_secs} s)"
        )));
    }
    let mut channels = dec.channels;
    if channels == 0 {
        // The container does not say (MP4 keeps it in the codec config): decode a packet.
        let mut fresh = SourceDecoder::open(path)?;
        let mut scratch = Vec::new();
        fresh.next_block(&mut scratch)?;
        channels = fresh.channels;
    }
    if channels == 0 {
        return Err(ProbeError::Empty);
    }
    Ok(Probe {
        tags: dec.tags.clone(),
        sample_rate: dec.sample_rate,
        channels: channels as u16,
        codec: dec.codec.clone(),
        samples,
    })
}

/// Samples per channel `path` decodes to, by decoding it (up to a little past `limit`).
fn decoded_samples(path: &Path, limit: u64) -> Result<u64, ProbeError> {
    let mut dec = SourceDecoder::open(path)?;
    let mut block = Vec::new();
    let mut total = 0u64;
    loop {
        block.clear();
        if total > limit || !dec.next_block(&mut block)? {
            return Ok(total);
        }
        total += block.len() as u64 / 2; // interleaved stereo
    }
}

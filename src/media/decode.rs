//! Decoding any supported source into interleaved stereo f32 with symphonia.
//!
//! Sources are untrusted: limits on sample rate, channels and length are an error kind of their
//! own ([`DecodeError::Limit`]), a packet that fails to decode becomes silence of the same length
//! (so timing holds) and too many failures in a row mark the file corrupt.

use std::fs::File;
use std::path::Path;

use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{DecoderOptions, CODEC_TYPE_NULL};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::{FormatOptions, FormatReader};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::{MetadataOptions, MetadataRevision, StandardTagKey};
use symphonia::core::probe::Hint;

/// Sample rates accepted from sources.
pub const MIN_RATE: u32 = 8_000;
pub const MAX_RATE: u32 = 192_000;
/// Channels accepted from sources (downmixed to stereo).
pub const MAX_CHANNELS: usize = 8;
/// Packets in a row that may fail before the file is called corrupt.
const MAX_CONSECUTIVE_ERRORS: u32 = 50;

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("cannot open {0}")]
    Io(#[from] std::io::Error),
    #[error("not a supported audio file: {0}")]
    Unsupported(String),
    #[error("no audio track")]
    NoAudioTrack,
    #[error("outside limits: {0}")]
    Limit(String),
    #[error("corrupt audio: {0}")]
    Corrupt(String),
}

/// Tags and stream facts read from the container.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tags {
    pub title: Option<String>,
    pub artist: Option<String>,
    pub album: Option<String>,
    pub genre: Option<String>,
}

/// An open source, yielding stereo interleaved f32 blocks at its own rate.
pub struct SourceDecoder {
    format: Box<dyn FormatReader>,
    decoder: Box<dyn symphonia::core::codecs::Decoder>,
    track_id: u32,
    pub sample_rate: u32,
    pub channels: usize,
    pub codec: String,
    pub tags: Tags,
    buf: Option<SampleBuffer<f32>>,
    consecutive_errors: u32,
}

impl SourceDecoder {
    pub fn open(path: &Path) -> Result<Self, DecodeError> {
        let file = File::open(path)?;
        let mss = MediaSourceStream::new(Box::new(file), Default::default());
        let mut hint = Hint::new();
        if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
            hint.with_extension(ext);
        }
        let format_opts = FormatOptions {
            // Trims encoder delay and padding where the container says (LAME tag, iTunSMPB).
            enable_gapless: true,
            ..Default::default()
        };
        let mut probed = symphonia::default::get_probe()
            .format(&hint, mss, &format_opts, &MetadataOptions::default())
            .map_err(|e| DecodeError::Unsupported(e.to_string()))?;
        let mut tags = Tags::default();
        if let Some(rev) = probed
            .metadata
            .get()
            .as_ref()
            .and_then(|m| m.current().cloned())
        {
            merge_tags(&mut tags, &rev);
        }
        if let Some(rev) = probed.format.metadata().current() {
            merge_tags(&mut tags, rev);
        }
        let format = probed.format;
        let track = format
            .tracks()
            .iter()
            .find(|t| {
                t.codec_params.codec != CODEC_TYPE_NULL && t.codec_params.sample_rate.is_some()
            })
            .ok_or(DecodeError::NoAudioTrack)?;
        let params = &track.codec_params;
        let sample_rate = params.sample_rate.unwrap_or(0);
        if !(MIN_RATE..=MAX_RATE).contains(&sample_rate) {
            return Err(DecodeError::Limit(format!(
                "sample rate {sample_rate} Hz outside {MIN_RATE}..={MAX_RATE}"
            )));
        }
        let channels = params.channels.map_or(0, |c| c.count());
        if channels > MAX_CHANNELS {
            return Err(DecodeError::Limit(format!(
                "{channels} channels (at most {MAX_CHANNELS})"
            )));
        }
        let codec = symphonia::default::get_codecs()
            .get_codec(params.codec)
            .map_or_else(|| "unknown".to_string(), |d| d.short_name.to_string());
        let decoder = symphonia::default::get_codecs()
            .make(params, &DecoderOptions::default())
            .map_err(|e| DecodeError::Unsupported(e.to_string()))?;
        let track_id = track.id;
        Ok(Self {
            format,
            decoder,
            track_id,
            sample_rate,
            channels,
            codec,
            tags,
            buf: None,
            consecutive_errors: 0,
        })
    }

    /// Counts the samples (per channel) the file decodes to, from packet durations (demuxing
    /// only, with gapless trimming), without decoding.
    pub fn count_samples(&mut self) -> Result<u64, DecodeError> {
        let mut total: u64 = 0;
        loop {
            match self.format.next_packet() {
                Ok(p) if p.track_id() == self.track_id => {
                    total += p
                        .dur
                        .saturating_sub(u64::from(p.trim_start) + u64::from(p.trim_end));
                }
                Ok(_) => {}
                Err(SymphoniaError::IoError(e))
                    if e.kind() == std::io::ErrorKind::UnexpectedEof =>
                {
                    return Ok(total)
                }
                Err(SymphoniaError::ResetRequired) => return Ok(total),
                Err(SymphoniaError::DecodeError(e)) => {
                    self.consecutive_errors += 1;
                    if self.consecutive_errors > MAX_CONSECUTIVE_ERRORS {
                        return Err(DecodeError::Corrupt(e.to_string()));
                    }
                }
                Err(e) => return Err(DecodeError::Corrupt(e.to_string())),
            }
        }
    }

    /// Appends the next block of interleaved stereo samples to `out`. Returns `false` at the end
    /// of the stream.
    pub fn next_block(&mut self, out: &mut Vec<f32>) -> Result<bool, DecodeError> {
        loop {
            let packet = match self.format.next_packet() {
                Ok(p) => p,
                Err(SymphoniaError::IoError(e))
                    if e.kind() == std::io::ErrorKind::UnexpectedEof =>
                {
                    return Ok(false)
                }
                Err(SymphoniaError::ResetRequired) => return Ok(false),
                Err(e) => return Err(DecodeError::Corrupt(e.to_string())),
            };
            if packet.track_id() != self.track_id {
                continue;
            }
            match self.decoder.decode(&packet) {
                Ok(decoded) => {
                    self.consecutive_errors = 0;
                    let spec = *decoded.spec();
                    // Some containers (MP4) only know the channel count once the codec runs.
                    self.channels = spec.channels.count();
                    let frames = decoded.frames();
                    if frames == 0 {
                        continue;
                    }
                    let need = decoded.capacity() as u64;
                    let buf = match &mut self.buf {
                        Some(b) if b.capacity() as u64 >= need * spec.channels.count() as u64 => b,
                        slot => slot.insert(SampleBuffer::new(need, spec)),
                    };
                    buf.copy_interleaved_ref(decoded);
                    to_stereo(buf.samples(), spec.channels.count(), out);
                    return Ok(true);
                }
                Err(SymphoniaError::DecodeError(e)) => {
                    self.consecutive_errors += 1;
                    if self.consecutive_errors > MAX_CONSECUTIVE_ERRORS {
                        return Err(DecodeError::Corrupt(e.to_string()));
                    }
                    // Keep timing: a lost packet is heard as silence of its length.
                    let dur = packet
                        .dur
                        .saturating_sub(u64::from(packet.trim_start) + u64::from(packet.trim_end));
                    out.extend(std::iter::repeat_n(0.0, dur.min(1 << 16) as usize * 2));
                    return Ok(true);
                }
                Err(e) => return Err(DecodeError::Corrupt(e.to_string())),
            }
        }
    }
}

/// Interleaved `channels`-channel samples to interleaved stereo. Mono is copied to both sides;
/// 3+ channels are downmixed with ITU-R BS.775 coefficients for the usual
/// L, R, C, LFE, Ls, Rs order (LFE dropped), other layouts fold extra channels in equally.
fn to_stereo(samples: &[f32], channels: usize, out: &mut Vec<f32>) {
    match channels {
        0 => {}
        1 => out.extend(samples.iter().flat_map(|s| [*s, *s])),
        2 => out.extend_from_slice(samples),
        _ => {
            const K: f32 = std::f32::consts::FRAC_1_SQRT_2;
            for f in samples.chunks_exact(channels) {
                let (mut l, mut r) = (f[0], f[1]);
                let mut norm = 1.0;
                if channels >= 3 {
                    l += K * f[2];
                    r += K * f[2];
                    norm += K;
                }
                for (i, s) in f.iter().enumerate().skip(4) {
                    if i % 2 == 0 {
                        l += K * s;
                    } else {
                        r += K * s;
                    }
                }
                if channels >= 6 {
                    norm += K;
                }
                out.push(l / norm);
                out.push(r / norm);
            }
        }
    }
}

fn merge_tags(tags: &mut Tags, rev: &MetadataRevision) {
    for tag in rev.tags() {
        let slot = match tag.std_key {
            Some(StandardTagKey::TrackTitle) => &mut tags.title,
            Some(StandardTagKey::Artist) => &mut tags.artist,
            Some(StandardTagKey::AlbumArtist) if tags.artist.is_none() => &mut tags.artist,
            Some(StandardTagKey::Album) => &mut tags.album,
            Some(StandardTagKey::Genre) => &mut tags.genre,
            _ => continue,
        };
        let value = tag.value.to_string();
        let value = value.trim_matches(char::from(0)).trim();
        if slot.is_none() && !value.is_empty() {
            *slot = Some(value.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mono_is_upmixed() {
        let mut out = Vec::new();
        to_stereo(&[0.5, -0.25], 1, &mut out);
        assert_eq!(out, [0.5, 0.5, -0.25, -0.25]);
    }

    #[test]
    fn surround_downmix_stays_in_range() {
        let mut out = Vec::new();
        to_stereo(&[1.0; 12], 6, &mut out);
        assert_eq!(out.len(), 4);
        assert!(out.iter().all(|s| (*s - 1.0).abs() < 1e-6), "{out:?}");
    }

    #[test]
    fn garbage_is_unsupported() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.mp3");
        std::fs::write(&p, b"this is not audio at all, just text pretending").unwrap();
        assert!(matches!(
            SourceDecoder::open(&p),
            Err(DecodeError::Unsupported(_))
        ));
    }
}

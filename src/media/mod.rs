//! Media: turning a library file into the frames and segments we serve.
//!
//! decode (symphonia) → resample (rubato) → encode (fdk-aac, LAME) → frames, cut into segments
//! by a [`layout::SegmentLayout`] that is known before encoding starts. Pure and synchronous;
//! [`cache::TranscodeCache`] is the one async-facing part (single-flight jobs on blocking threads,
//! on-disk results, LRU eviction).

pub mod aac;
pub mod aac_decoder;
pub mod cache;
pub mod codecs;
pub mod decode;
pub mod encoder_delay;
pub mod id3;
pub mod layout;
pub mod mp3;
pub mod mp4_edit;
pub mod opus;
pub mod pipeline;
pub mod resample;

/// Bumped whenever the pipeline's output changes for the same settings (encoder options,
/// downmix, decoding). 2: MP3 without bit reservoir, surround folded by channel mask. 3: MP3
/// sources without a LAME tag decoded untrimmed (VBR files without a Xing header were cut).
/// 4: every variant starts the source at the same time (leading silence, see `encoder_delay`);
/// MP4 edit lists applied (M4A priming and padding no longer served). 5: the ends of MP3 files
/// with a LAME tag and of Ogg Vorbis files are no longer cut (gapless trims were counted twice);
/// a progressive MP3's Info tag declares the variant's lead-in as priming. 6: 5.1 Vorbis decoded
/// with its channel coupling undone in the right order (the rear right was scrambled); AAC decoded
/// by fdk-aac (HE-AAC had played its core alone, in M4A an octave up and then silence).
/// 7: MP3 in MP4 follows its edit list (its encoder priming was served as leading silence).
pub const PIPELINE_REVISION: u32 = 7;

/// The version under which a source's encodes are cached and served (segment names, ETags):
/// the source file's version followed by the pipeline's revision (still hex), so that bytes
/// made by another pipeline never share a cache entry, a URL or a validator with these, and
/// HTTP caches holding the old ones (segments are `immutable`) are simply not asked for them.
pub fn output_version(source_version: &str) -> String {
    format!("{source_version}{PIPELINE_REVISION:x}")
}

/// Encoder failures (fdk-aac, LAME).
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("{0}")]
    Codec(String),
}

#[cfg(test)]
pub(crate) mod testutil {
    use std::io::Write as _;
    use std::path::Path;

    /// Writes a 16-bit PCM WAV of a chord with a little noise (`secs` long).
    pub fn write_wav(path: &Path, rate: u32, channels: u16, secs: f64) {
        let n = (f64::from(rate) * secs) as usize;
        let mut seed = 12345u32;
        let mut data = Vec::with_capacity(n * usize::from(channels) * 2);
        for i in 0..n {
            let t = i as f64 / f64::from(rate);
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let noise = (f64::from(seed >> 16) / 32768.0 - 1.0) * 0.02;
            for c in 0..channels {
                let v = [220.0, 277.2, 329.6]
                    .iter()
                    .map(|f| {
                        (t * f * (1.0 + f64::from(c) * 0.01) * std::f64::consts::TAU).sin() * 0.2
                    })
                    .sum::<f64>()
                    + noise;
                data.extend_from_slice(&((v * 32767.0) as i16).to_le_bytes());
            }
        }
        let mut f = std::fs::File::create(path).unwrap();
        let block = channels * 2;
        f.write_all(b"RIFF").unwrap();
        f.write_all(&(36 + data.len() as u32).to_le_bytes())
            .unwrap();
        f.write_all(b"WAVEfmt ").unwrap();
        f.write_all(&16u32.to_le_bytes()).unwrap();
        f.write_all(&1u16.to_le_bytes()).unwrap();
        f.write_all(&channels.to_le_bytes()).unwrap();
        f.write_all(&rate.to_le_bytes()).unwrap();
        f.write_all(&(rate * u32::from(block)).to_le_bytes())
            .unwrap();
        f.write_all(&block.to_le_bytes()).unwrap();
        f.write_all(&16u16.to_le_bytes()).unwrap();
        f.write_all(b"data").unwrap();
        f.write_all(&(data.len() as u32).to_le_bytes()).unwrap();
        f.write_all(&data).unwrap();
    }
}

//! The transcoding pipeline: one decode and one resample per output rate feed every requested
//! encoder, and each encoder's frames go to a [`FrameSink`] in the exact number the
//! [`SegmentLayout`] promises.
//!
//! Runs on the calling thread: callers put it on a blocking thread, never on the async runtime.

use std::path::Path;

use super::aac::AacEncoder;
use super::decode::{DecodeError, SourceDecoder};
use super::encoder_delay::{lead_in, AAC_DROPPED_FRAMES};
use super::layout::SegmentLayout;
use super::mp3::Mp3Encoder;
use super::resample::StereoResampler;
use super::EncodeError;
use crate::streaming::adaptive::{AdaptiveProfile, Codec};

#[derive(Debug, thiserror::Error)]
pub enum TranscodeError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error("writing the encoded stream: {0}")]
    Sink(#[source] std::io::Error),
    #[error("encoder produced {got} frames, the layout needs {want}")]
    ShortStream { got: u64, want: u64 },
    #[error("cancelled")]
    Cancelled,
    #[error("the file changed since the library was scanned")]
    SourceChanged,
}

/// Receives one profile's frames in order.
pub trait FrameSink: Send {
    /// Frame number `index` (served numbering, from 0).
    fn frame(&mut self, index: u64, data: &[u8]) -> std::io::Result<()>;
    /// All frames were delivered; `info_tag` is LAME's Info frame for progressive MP3.
    fn finish(&mut self, info_tag: Option<Vec<u8>>) -> std::io::Result<()>;
}

/// One requested output.
pub struct Output<'a> {
    pub profile: AdaptiveProfile,
    pub layout: SegmentLayout,
    pub sink: &'a mut dyn FrameSink,
}

enum Encoder {
    Aac(AacEncoder),
    Mp3(Mp3Encoder),
}

impl Encoder {
    fn encode(&mut self, pcm: &[f32], frames: &mut Vec<Vec<u8>>) -> Result<(), EncodeError> {
        match self {
            Encoder::Aac(e) => e.encode(pcm, frames),
            Encoder::Mp3(e) => e.encode(pcm, frames),
        }
    }
    fn finish(&mut self, frames: &mut Vec<Vec<u8>>) -> Result<(), EncodeError> {
        match self {
            Encoder::Aac(e) => e.finish(frames),
            Encoder::Mp3(e) => e.finish(frames),
        }
    }
}

/// One output's encoder and bookkeeping.
struct Lane<'a> {
    encoder: Encoder,
    /// Leading frames still to drop (AAC priming).
    to_drop: u64,
    next: u64,
    want: u64,
    sink: &'a mut dyn FrameSink,
    scratch: Vec<Vec<u8>>,
    /// Samples of silence fed before the source (see `encoder_delay::lead_in`).
    lead: u64,
}

impl Lane<'_> {
    fn deliver(&mut self) -> Result<(), TranscodeError> {
        for frame in self.scratch.drain(..) {
            if self.to_drop > 0 {
                self.to_drop -= 1;
                continue;
            }
            // Frames past the layout's count hold only padding after the source's end.
            if self.next < self.want {
                self.sink
                    .frame(self.next, &frame)
                    .map_err(TranscodeError::Sink)?;
                self.next += 1;
            }
        }
        Ok(())
    }
}

/// Decoded samples are processed in blocks of about this many frames (per channel).
const BLOCK: usize = 8192;

/// Transcodes `source` (which decodes to exactly `source_samples` at its rate, as the library
/// measured) into every output. `checkpoint` is called between blocks with the source samples
/// consumed so far: it may block (to wait for a core) or stop the job with an error.
pub fn transcode(
    source: &Path,
    source_samples: u64,
    outputs: Vec<Output<'_>>,
    checkpoint: &mut dyn FnMut(u64) -> Result<(), TranscodeError>,
) -> Result<(), TranscodeError> {
    let mut decoder = SourceDecoder::open(source)?;
    let src_rate = decoder.sample_rate;

    // Group lanes by output rate: one resampler per rate.
    let mut groups: Vec<(u32, StereoResampler, Vec<Lane<'_>>)> = Vec::new();
    for out in outputs {
        let encoder = match out.profile.codec_kind() {
            Codec::Aac => Encoder::Aac(AacEncoder::new(
                out.profile.sample_rate,
                out.profile.bitrate_kbps,
            )?),
            Codec::Mp3 => Encoder::Mp3(Mp3Encoder::new(
                out.profile.sample_rate,
                out.profile.bitrate_kbps,
            )?),
        };
        let to_drop = match out.profile.codec_kind() {
            Codec::Aac => AAC_DROPPED_FRAMES,
            Codec::Mp3 => 0,
        };
        // Silence before the source, so that this variant starts the source at the same time
        // as every other variant of the ladder (the layout's delay).
        let lead = lead_in(&out.profile, out.layout.delay);
        let mut lane = Lane {
            encoder,
            to_drop,
            next: 0,
            want: out.layout.total_frames,
            sink: out.sink,
            scratch: Vec::new(),
            lead,
        };
        if lead > 0 {
            lane.encoder
                .encode(&vec![0.0; lead as usize * 2], &mut lane.scratch)?;
            lane.deliver()?;
        }
        let rate = out.profile.sample_rate;
        match groups.iter_mut().find(|g| g.0 == rate) {
            Some(g) => g.2.push(lane),
            None => groups.push((
                rate,
                StereoResampler::new(src_rate, rate, source_samples),
                vec![lane],
            )),
        }
    }

    let mut decoded = Vec::with_capacity(BLOCK * 4);
    let mut resampled = Vec::with_capacity(BLOCK * 4);
    let mut fed: u64 = 0;
    let mut more = true;
    while more {
        checkpoint(fed)?;
        decoded.clear();
        while decoded.len() < BLOCK * 2 {
            if !decoder.next_block(&mut decoded)? {
                more = false;
                break;
            }
        }
        // Hold the stream to the measured length, whatever the decoder says at the edges.
        let take = (decoded.len() as u64 / 2).min(source_samples - fed) as usize;
        decoded.truncate(take * 2);
        fed += take as u64;
        if fed == source_samples {
            more = false;
        }
        for (_, resampler, lanes) in &mut groups {
            resampled.clear();
            resampler.process(&decoded, &mut resampled);
            feed(lanes, &resampled)?;
        }
    }
    for (_, resampler, lanes) in &mut groups {
        resampled.clear();
        resampler.finish(&mut resampled);
        feed(lanes, &resampled)?;
        for lane in lanes.iter_mut() {
            lane.encoder.finish(&mut lane.scratch)?;
            lane.deliver()?;
            if lane.next < lane.want {
                return Err(TranscodeError::ShortStream {
                    got: lane.next,
                    want: lane.want,
                });
            }
            let tag = match &lane.encoder {
                // The lead-in is priming to a gapless decoder of the progressive file.
                Encoder::Mp3(e) => e.info_tag_with_priming(lane.lead),
                Encoder::Aac(_) => None,
            };
            lane.sink.finish(tag).map_err(TranscodeError::Sink)?;
        }
    }
    Ok(())
}

fn feed(lanes: &mut [Lane<'_>], pcm: &[f32]) -> Result<(), TranscodeError> {
    if pcm.is_empty() {
        return Ok(());
    }
    for lane in lanes {
        lane.encoder.encode(pcm, &mut lane.scratch)?;
        lane.deliver()?;
    }
    Ok(())
}

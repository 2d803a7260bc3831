//! The transcoding pipeline: one decode and one resample per output rate feed every requested
//! encoder, and each encoder's frames go to a [`FrameSink`] in the exact number the
//! [`SegmentLayout`] promises.
//!
//! A [`Transcode`] runs a block at a time on the calling thread: callers put it on a blocking
//! thread, never on the async runtime. It owns its whole state (decoder, resamplers, encoders,
//! sinks), so between blocks it can move to another thread: an encode waiting for its next turn
//! on a core holds no thread (see `media::cache`).

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
pub struct Output<S> {
    pub profile: AdaptiveProfile,
    pub layout: SegmentLayout,
    pub sink: S,
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
struct Lane<S> {
    /// Its place among the outputs (lanes are grouped by rate).
    index: usize,
    encoder: Encoder,
    /// Leading frames still to drop (AAC priming).
    to_drop: u64,
    next: u64,
    want: u64,
    sink: S,
    scratch: Vec<Vec<u8>>,
    /// Samples of silence fed before the source (see `encoder_delay::lead_in`).
    lead: u64,
}

impl<S: FrameSink> Lane<S> {
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

/// Outputs of one rate, fed by one resampler.
struct RateGroup<S> {
    rate: u32,
    resampler: StereoResampler,
    lanes: Vec<Lane<S>>,
}

/// The transcode of one source (which decodes to exactly `source_samples` at its rate, as the
/// library measured) into every output: [`Transcode::step`] until [`Transcode::is_fed`], then
/// [`Transcode::finish`].
pub struct Transcode<S> {
    decoder: SourceDecoder,
    source_samples: u64,
    groups: Vec<RateGroup<S>>,
    fed: u64,
    more: bool,
    decoded: Vec<f32>,
    resampled: Vec<f32>,
}

impl<S: FrameSink> Transcode<S> {
    /// Opens the source and sets up one encoder per output (each fed its lead-in of silence).
    pub fn start(
        source: &Path,
        source_samples: u64,
        outputs: Vec<Output<S>>,
    ) -> Result<Self, TranscodeError> {
        let decoder = SourceDecoder::open(source)?;
        let src_rate = decoder.sample_rate;
        let mut groups: Vec<RateGroup<S>> = Vec::new();
        for (index, out) in outputs.into_iter().enumerate() {
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
            // Silence before the source, so that this variant starts the source at the same
            // time as every other variant of the ladder (the layout's delay).
            let lead = lead_in(&out.profile, out.layout.delay);
            let mut lane = Lane {
                index,
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
            match groups.iter_mut().find(|g| g.rate == rate) {
                Some(g) => g.lanes.push(lane),
                None => groups.push(RateGroup {
                    rate,
                    resampler: StereoResampler::new(src_rate, rate, source_samples),
                    lanes: vec![lane],
                }),
            }
        }
        Ok(Self {
            decoder,
            source_samples,
            groups,
            fed: 0,
            more: true,
            decoded: Vec::with_capacity(BLOCK * 4),
            resampled: Vec::with_capacity(BLOCK * 4),
        })
    }

    /// Source samples (per channel) consumed so far.
    pub fn fed(&self) -> u64 {
        self.fed
    }

    /// Whether the whole source has been fed (only [`Self::finish`] is left).
    pub fn is_fed(&self) -> bool {
        !self.more
    }

    /// Decodes a block of the source and feeds it to every output.
    pub fn step(&mut self) -> Result<(), TranscodeError> {
        if !self.more {
            return Ok(());
        }
        self.decoded.clear();
        while self.decoded.len() < BLOCK * 2 {
            if !self.decoder.next_block(&mut self.decoded)? {
                self.more = false;
                break;
            }
        }
        // Hold the stream to the measured length, whatever the decoder says at the edges.
        let take = (self.decoded.len() as u64 / 2).min(self.source_samples - self.fed) as usize;
        self.decoded.truncate(take * 2);
        self.fed += take as u64;
        if self.fed == self.source_samples {
            self.more = false;
        }
        for g in &mut self.groups {
            self.resampled.clear();
            g.resampler.process(&self.decoded, &mut self.resampled);
            feed(&mut g.lanes, &self.resampled)?;
        }
        Ok(())
    }

    /// Flushes the resamplers and encoders, checks every output got the frames its layout
    /// promises and finishes the sinks, which it returns (in the order of the outputs).
    pub fn finish(mut self) -> Result<Vec<S>, TranscodeError> {
        debug_assert!(!self.more, "finish before the source is fed");
        let mut sinks = Vec::new();
        for mut g in std::mem::take(&mut self.groups) {
            self.resampled.clear();
            g.resampler.finish(&mut self.resampled);
            feed(&mut g.lanes, &self.resampled)?;
            for mut lane in g.lanes {
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
                sinks.push((lane.index, lane.sink));
            }
        }
        sinks.sort_by_key(|(index, _)| *index);
        Ok(sinks.into_iter().map(|(_, sink)| sink).collect())
    }
}

fn feed<S: FrameSink>(lanes: &mut [Lane<S>], pcm: &[f32]) -> Result<(), TranscodeError> {
    if pcm.is_empty() {
        return Ok(());
    }
    for lane in lanes {
        lane.encoder.encode(pcm, &mut lane.scratch)?;
        lane.deliver()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::encoder_delay::aligned_delay;
    use crate::media::layout::segment_frames;
    use crate::media::testutil::write_wav;

    /// Counts the frames it is given.
    #[derive(Default)]
    struct Count {
        frames: u64,
        finished: bool,
    }

    impl FrameSink for Count {
        fn frame(&mut self, index: u64, _data: &[u8]) -> std::io::Result<()> {
            assert_eq!(index, self.frames, "frames in order");
            self.frames += 1;
            Ok(())
        }
        fn finish(&mut self, _info_tag: Option<Vec<u8>>) -> std::io::Result<()> {
            self.finished = true;
            Ok(())
        }
    }

    /// Outputs of different rates, interleaved, come back in the order they were given (they
    /// are grouped by rate inside), each with the frames its layout promises.
    #[test]
    fn sinks_come_back_in_the_order_of_the_outputs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.wav");
        write_wav(&path, 44100, 2, 3.0);
        let ladder = AdaptiveProfile::presets();
        let by_id = |id: &str| ladder.iter().find(|p| p.quality_id == id).unwrap().clone();
        let order = ["high", "mobile", "medium", "low"];
        let outputs: Vec<Output<Count>> = order
            .iter()
            .map(|id| {
                let profile = by_id(id);
                let frames = segment_frames(&profile, &ladder, 6.0);
                let delay = aligned_delay(&profile, &ladder);
                Output {
                    layout: SegmentLayout::new(132_300, 44100, &profile, frames, delay),
                    profile,
                    sink: Count::default(),
                }
            })
            .collect();
        let want: Vec<u64> = outputs.iter().map(|o| o.layout.total_frames).collect();
        let rates: Vec<u32> = outputs.iter().map(|o| o.profile.sample_rate).collect();
        // The rates really interleave, and the frame counts tell the outputs apart.
        assert!(rates[0] != rates[1] && rates[1] != rates[2], "{rates:?}");
        assert_ne!(want[0], want[1]);
        let mut t = Transcode::start(&path, 132_300, outputs).unwrap();
        while !t.is_fed() {
            t.step().unwrap();
        }
        let sinks = t.finish().unwrap();
        let got: Vec<u64> = sinks.iter().map(|s| s.frames).collect();
        assert_eq!(got, want, "{order:?}");
        assert!(sinks.iter().all(|s| s.finished));
    }
}

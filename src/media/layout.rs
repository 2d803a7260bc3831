//! Segment layout: which coded frames a track has in a profile and which frames each HLS segment
//! holds, computed from the source's exact length alone.
//!
//! Because the layout is a pure function of (source samples, source rate, profile), playlists can
//! be served before anything is encoded, and the encoder is held to it: it must emit exactly
//! [`SegmentLayout::total_frames`] frames (see `media::pipeline`).
//!
//! Segment lengths are chosen so that every segment starts on a codec frame boundary *and* on an
//! exact tick of the 90 kHz MPEG clock used by the ID3 timestamps of packed audio
//! (RFC 8216 §3.4): a start that falls between ticks makes decoders see non-monotonic DTS at
//! joins (measured with ffmpeg, see `design.md`). Within one codec family (the variants a master
//! playlist mixes) segments are also aligned in time, so a player switching rungs finds the same
//! boundaries.

use super::encoder_delay;
use crate::streaming::adaptive::AdaptiveProfile;

/// MPEG-2 system clock used by packed-audio timestamps.
pub const MPEG_CLOCK_HZ: u64 = 90_000;

/// Frames of one segment, in the served (post-priming) frame numbering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentSpan {
    pub index: usize,
    pub first_frame: u64,
    pub frames: u64,
}

/// Layout of one track in one profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentLayout {
    /// Output sample rate.
    pub sample_rate: u32,
    /// Samples per channel per coded frame.
    pub frame_len: u32,
    /// Source samples after resampling to `sample_rate`.
    pub output_samples: u64,
    /// Coded frames served, all segments together.
    pub total_frames: u64,
    /// Frames per full segment.
    pub segment_frames: u64,
    /// Where source sample 0 lands in the decoded frames (samples at `sample_rate`): the same
    /// time in every variant of the ladder (see `media::encoder_delay`).
    pub delay: u64,
}

impl SegmentLayout {
    /// Layout for a source of `source_samples` (per channel) at `source_rate`, encoded to
    /// `profile`, whose segment length is `segment_frames` (see [`segment_frames`]) and whose
    /// frames start the source at `delay` (see `encoder_delay::aligned_delay`; at least the
    /// codec's own delay).
    pub fn new(
        source_samples: u64,
        source_rate: u32,
        profile: &AdaptiveProfile,
        segment_frames: u64,
        delay: u64,
    ) -> Self {
        let output_samples = resampled_len(source_samples, source_rate, profile.sample_rate);
        let frame_len = u64::from(profile.frame_len());
        let delay = delay.max(encoder_delay::codec_delay(profile.codec_kind()));
        // Source sample i decodes at output position i + delay: keep every frame up to the one
        // holding the last source sample, and nothing after (trailing frames are only padding).
        let total_frames = (output_samples + delay).div_ceil(frame_len).max(1);
        Self {
            sample_rate: profile.sample_rate,
            frame_len: profile.frame_len(),
            output_samples,
            total_frames,
            segment_frames: segment_frames.max(1),
            delay,
        }
    }

    pub fn segment_count(&self) -> usize {
        self.total_frames.div_ceil(self.segment_frames) as usize
    }

    pub fn segment(&self, index: usize) -> Option<SegmentSpan> {
        let first_frame = index as u64 * self.segment_frames;
        (first_frame < self.total_frames).then(|| SegmentSpan {
            index,
            first_frame,
            frames: self.segment_frames.min(self.total_frames - first_frame),
        })
    }

    pub fn segments(&self) -> impl Iterator<Item = SegmentSpan> + '_ {
        (0..self.segment_count()).filter_map(|i| self.segment(i))
    }

    /// Duration of `frames` frames in seconds.
    pub fn frames_secs(&self, frames: u64) -> f64 {
        (frames * u64::from(self.frame_len)) as f64 / f64::from(self.sample_rate)
    }

    /// Decoded duration of everything served.
    pub fn total_secs(&self) -> f64 {
        self.frames_secs(self.total_frames)
    }

    /// Presentation time of a frame on the 90 kHz clock (exact when segments are aligned).
    pub fn frame_ticks(&self, frame: u64) -> u64 {
        let samples = u128::from(frame) * u128::from(self.frame_len);
        (samples * u128::from(MPEG_CLOCK_HZ) / u128::from(self.sample_rate)) as u64
    }
}

/// Length of `samples` at `from` Hz once resampled to `to` Hz (the resampler is held to this).
pub fn resampled_len(samples: u64, from: u32, to: u32) -> u64 {
    if from == to {
        samples
    } else {
        (u128::from(samples) * u128::from(to)).div_ceil(u128::from(from)) as u64
    }
}

/// Frames per segment for `profile`, given the whole `ladder` (segments of one codec family are
/// aligned in time when that keeps them near the target) and the wanted length in seconds.
pub fn segment_frames(
    profile: &AdaptiveProfile,
    ladder: &[AdaptiveProfile],
    target_secs: f64,
) -> u64 {
    let own = quantum(profile);
    let family = ladder
        .iter()
        .filter(|p| p.codec_kind() == profile.codec_kind())
        .map(quantum)
        .fold(own, Ratio::lcm);
    // Aligning the family must not make segments much longer than asked.
    let unit = if family.secs() <= target_secs * 1.5 {
        family
    } else {
        own
    };
    let count = (target_secs / unit.secs()).round().max(1.0) as u64;
    // count * unit seconds, in frames of this profile: exact by construction of `quantum`.
    let samples = u128::from(count) * u128::from(unit.num) * u128::from(profile.sample_rate)
        / u128::from(unit.den);
    (samples / u128::from(profile.frame_len())) as u64
}

/// The shortest span (in seconds, as a fraction) that is a whole number of this profile's frames
/// and a whole number of 90 kHz ticks.
fn quantum(profile: &AdaptiveProfile) -> Ratio {
    let rate = u64::from(profile.sample_rate);
    let tick_step = rate / gcd(rate, MPEG_CLOCK_HZ);
    let samples = lcm(u64::from(profile.frame_len()), tick_step);
    Ratio::new(samples, rate)
}

#[derive(Debug, Clone, Copy)]
struct Ratio {
    num: u64,
    den: u64,
}

impl Ratio {
    fn new(num: u64, den: u64) -> Self {
        let g = gcd(num, den);
        Self {
            num: num / g,
            den: den / g,
        }
    }

    /// Least common multiple of two reduced positive fractions.
    fn lcm(self, other: Self) -> Self {
        Self::new(lcm(self.num, other.num), gcd(self.den, other.den))
    }

    fn secs(self) -> f64 {
        self.num as f64 / self.den as f64
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn lcm(a: u64, b: u64) -> u64 {
    a / gcd(a, b) * b
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ladder() -> Vec<AdaptiveProfile> {
        AdaptiveProfile::presets()
    }

    #[test]
    fn spec_ladder_segments() {
        let l = ladder();
        let frames: Vec<u64> = l.iter().map(|p| segment_frames(p, &l, 6.0)).collect();
        // high, medium: 294 AAC frames at 44.1 kHz; low: 245 MP3 frames at 22.05 kHz (6.4 s);
        // mobile: 147 AAC frames at 22.05 kHz. AAC rungs are aligned at 6.827 s.
        assert_eq!(frames, [294, 294, 245, 147]);
        let secs = |p: &AdaptiveProfile, n: u64| {
            (n * u64::from(p.frame_len())) as f64 / f64::from(p.sample_rate)
        };
        assert!((secs(&l[0], 294) - secs(&l[3], 147)).abs() < 1e-9);
        assert!((secs(&l[2], 245) - 6.4).abs() < 1e-9);
    }

    #[test]
    fn segment_starts_are_exact_ticks() {
        let l = ladder();
        for p in &l {
            let n = segment_frames(p, &l, 6.0);
            let samples = n * u64::from(p.frame_len());
            assert_eq!(
                samples * MPEG_CLOCK_HZ % u64::from(p.sample_rate),
                0,
                "{}",
                p.quality_id
            );
        }
    }

    #[test]
    fn a_48k_rung_aligns_with_the_44k_family() {
        let mut l = ladder();
        let mut p48 = AdaptiveProfile::high_quality();
        p48.quality_id = "hifi".into();
        p48.sample_rate = 48000;
        l.push(p48.clone());
        // 6.827 s is 320 frames at 48 kHz, 294 at 44.1 kHz and 147 at 22.05 kHz.
        assert_eq!(segment_frames(&p48, &l, 6.0), 320);
        assert_eq!(segment_frames(&l[0], &l, 6.0), 294);
    }

    #[test]
    fn unalignable_family_falls_back_to_own_quantum() {
        let mut l = ladder();
        let mut p32 = AdaptiveProfile::high_quality();
        p32.quality_id = "odd".into();
        p32.sample_rate = 32000;
        l.push(p32.clone());
        let n = segment_frames(&p32, &l, 6.0);
        let secs = (n * 1024) as f64 / 32000.0;
        assert!((secs - 6.0).abs() < 0.05, "{secs}");
    }

    #[test]
    fn short_track_has_one_segment() {
        let p = AdaptiveProfile::mobile_quality();
        let layout = SegmentLayout::new(100, 44100, &p, 147, 0);
        assert_eq!(layout.segment_count(), 1);
        assert_eq!(layout.output_samples, 50);
    }

    proptest! {
        #[test]
        fn every_frame_in_exactly_one_segment(
            samples in 1u64..50_000_000,
            rate in prop::sample::select(vec![8000u32, 11025, 16000, 22050, 32000, 44100, 48000, 88200, 96000, 192000]),
            which in 0usize..4,
            target in 2.0f64..12.0,
        ) {
            let l = ladder();
            let p = &l[which];
            let n = segment_frames(p, &l, target);
            let delay = encoder_delay::aligned_delay(p, &l);
            let layout = SegmentLayout::new(samples, rate, p, n, delay);
            prop_assert_eq!(layout.delay, delay);
            let mut next = 0;
            let mut last_ticks = None;
            for s in layout.segments() {
                prop_assert_eq!(s.first_frame, next);
                prop_assert!(s.frames >= 1 && s.frames <= n);
                let t = layout.frame_ticks(s.first_frame);
                if let Some(prev) = last_ticks { prop_assert!(t > prev); }
                last_ticks = Some(t);
                next += s.frames;
            }
            prop_assert_eq!(next, layout.total_frames);
            // What is served covers the source and overshoots it by less than delay + a frame.
            let src_secs = samples as f64 / f64::from(rate);
            let extra = layout.total_secs() - src_secs;
            prop_assert!(extra >= 0.0);
            prop_assert!(extra < 0.1 + 1.0 / f64::from(p.sample_rate), "extra {}", extra);
        }
    }
}

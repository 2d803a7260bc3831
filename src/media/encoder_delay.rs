//! Encoder priming, and how much of it reaches the listener.
//!
//! Packed audio has no field to signal priming (ADTS has none; MP3 has the LAME Info tag, which
//! RFC 8216 packed audio does not carry), so whatever priming we serve is heard as a short
//! silence at the start. We keep it small and known, and the segment layout accounts for it so
//! that the served duration matches the source within 0.1 s.
//!
//! Every variant of a track must put the same sound at the same timestamp (RFC 8216 §6.2.4), and
//! our timestamps count coded frames from 0. Each codec delays the source by its own amount, in
//! samples of its own rate (one AAC frame is 23.2 ms at 44.1 kHz and 46.4 ms at 22.05 kHz), so
//! served as they come, `mobile` would play 23 ms behind `high` and a player switching rungs
//! would repeat or skip that much. Instead every variant is delayed by the same *time*, the
//! longest any codec of the ladder needs ([`aligned_delay`]): the shorter ones are padded with
//! leading silence before encoding. Frame time is then source time plus one constant in every
//! variant.

use crate::streaming::adaptive::{AdaptiveProfile, Codec};

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

/// Where source sample 0 lands in the decoded output of a codec's frames as we keep them,
/// without padding (samples at the codec's rate).
pub fn codec_delay(codec: Codec) -> u64 {
    match codec {
        Codec::Aac => AAC_LC_ENCODER_DELAY - AAC_DROPPED_FRAMES * 1024,
        Codec::Mp3 => MP3_ENCODER_DELAY + MP3_DECODER_DELAY,
    }
}

/// Where source sample 0 lands in what we serve of `profile` (samples at its rate) when it is
/// one variant of `ladder`: at the same time in every variant, the latest any of them needs.
/// Exact at the rate of the variant that sets it, and within one sample elsewhere (rounded up,
/// so never earlier than the codec allows).
pub fn aligned_delay(profile: &AdaptiveProfile, ladder: &[AdaptiveProfile]) -> u64 {
    // The longest delay as an exact fraction of a second: samples / rate.
    let (num, den) = ladder
        .iter()
        .chain(std::iter::once(profile))
        .map(|p| (codec_delay(p.codec_kind()), u64::from(p.sample_rate.max(1))))
        .fold((0, 1), |(n, d), (pn, pd)| {
            if u128::from(pn) * u128::from(d) > u128::from(n) * u128::from(pd) {
                (pn, pd)
            } else {
                (n, d)
            }
        });
    (u128::from(num) * u128::from(profile.sample_rate)).div_ceil(u128::from(den)) as u64
}

/// Silence (samples per channel, at the profile's rate) fed to the encoder before the source,
/// so that its frames carry the ladder's [`aligned_delay`].
pub fn lead_in(profile: &AdaptiveProfile, delay: u64) -> u64 {
    delay.saturating_sub(codec_delay(profile.codec_kind()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by_id<'a>(ladder: &'a [AdaptiveProfile], id: &str) -> &'a AdaptiveProfile {
        ladder.iter().find(|p| p.quality_id == id).unwrap()
    }

    #[test]
    fn every_preset_starts_the_source_at_the_same_time() {
        let ladder = AdaptiveProfile::presets();
        // LAME at 22.05 kHz needs the most: 1105 samples, 50.1 ms.
        let secs = |id: &str| {
            let p = by_id(&ladder, id);
            aligned_delay(p, &ladder) as f64 / f64::from(p.sample_rate)
        };
        for id in ["high", "medium", "low", "mobile"] {
            assert!(
                (secs(id) - 1105.0 / 22050.0).abs() < 1e-9,
                "{id}: {}",
                secs(id)
            );
        }
        let high = by_id(&ladder, "high");
        assert_eq!(aligned_delay(high, &ladder), 2210);
        assert_eq!(lead_in(high, 2210), 1186);
        let mobile = by_id(&ladder, "mobile");
        assert_eq!(lead_in(mobile, aligned_delay(mobile, &ladder)), 81);
        let low = by_id(&ladder, "low");
        assert_eq!(lead_in(low, aligned_delay(low, &ladder)), 0);
    }

    #[test]
    fn rates_without_a_common_sample_are_rounded_up_by_less_than_one() {
        let mut ladder = AdaptiveProfile::presets();
        let mut odd = by_id(&ladder, "high").clone();
        odd.quality_id = "odd".into();
        odd.sample_rate = 48000;
        ladder.push(odd.clone());
        let d = aligned_delay(&odd, &ladder);
        let exact = 1105.0 * 48000.0 / 22050.0;
        assert!(
            d as f64 >= exact && (d as f64) < exact + 1.0,
            "{d} vs {exact}"
        );
        // Alone, a profile keeps its codec's own delay and needs no padding.
        assert_eq!(aligned_delay(&odd, std::slice::from_ref(&odd)), 1024);
        assert_eq!(lead_in(&odd, 1024), 0);
    }
}

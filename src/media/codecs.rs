//! The decoders we read sources with: symphonia's, with two of ours in its registry.
//!
//! `media::opus` adds the Opus decoder symphonia 0.5 lacks; `media::aac_decoder` replaces
//! symphonia's AAC decoder (AAC-LC in mono or stereo only) with fdk-aac's, which also decodes
//! HE-AAC and multichannel AAC. Registering ours after symphonia's makes ours the ones used.

use std::sync::LazyLock;

use symphonia::core::audio::Channels;
use symphonia::core::codecs::CodecRegistry;

use super::aac_decoder::AacDecoder;
use super::opus::OpusDecoder;

/// symphonia's codecs, with ours in place for AAC and added for Opus.
pub fn codecs() -> &'static CodecRegistry {
    static CODECS: LazyLock<CodecRegistry> = LazyLock::new(|| {
        let mut registry = CodecRegistry::new();
        symphonia::default::register_enabled_codecs(&mut registry);
        registry.register_all::<OpusDecoder>();
        registry.register_all::<AacDecoder>();
        registry
    });
    &CODECS
}

/// The layout of `speakers` (one per decoded channel, in the decoder's order) and the plane of
/// each channel: symphonia's planes are in speaker-bit order, which a decoder's own order need
/// not be (Opus's Vorbis order, an AAC side pair after its back pair). `None` if two channels
/// name the same speaker.
pub fn speaker_planes(speakers: &[Channels]) -> Option<(Channels, Vec<usize>)> {
    let mut layout = Channels::empty();
    for &s in speakers {
        if layout.intersects(s) {
            return None;
        }
        layout |= s;
    }
    let planes = speakers
        .iter()
        .map(|s| (layout.bits() & (s.bits() - 1)).count_ones() as usize)
        .collect();
    Some((layout, planes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_channel_goes_to_its_speakers_plane() {
        // Sides after backs in the decoder's order; in bit order the backs come first.
        let order = [
            Channels::FRONT_LEFT,
            Channels::FRONT_RIGHT,
            Channels::SIDE_LEFT,
            Channels::SIDE_RIGHT,
            Channels::REAR_LEFT,
            Channels::REAR_RIGHT,
        ];
        let (layout, planes) = speaker_planes(&order).unwrap();
        assert_eq!(layout.count(), 6);
        assert_eq!(planes, [0, 1, 4, 5, 2, 3]);
        assert!(speaker_planes(&[Channels::FRONT_LEFT, Channels::FRONT_LEFT]).is_none());
    }
}

//! The decoders we read sources with: symphonia's, with two of ours in its registry.
//!
//! `media::opus` adds the Opus decoder symphonia 0.5 lacks; `media::aac_decoder` replaces
//! symphonia's AAC decoder (AAC-LC in mono or stereo only) with fdk-aac's, which also decodes
//! HE-AAC and multichannel AAC. Registering ours after symphonia's makes ours the ones used.

use std::sync::LazyLock;

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

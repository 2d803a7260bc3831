//! AAC decoding with fdk-aac, plugged into symphonia's codec registry in place of symphonia's own
//! AAC decoder.
//!
//! symphonia 0.5's decoder is AAC-LC in mono or stereo only. That left three kinds of files our
//! listeners have: HE-AAC (SBR; v2 adds parametric stereo), the AAC of podcasts, audiobooks and
//! radio recordings, whose core it played alone (half the rate, no high band, v2 in mono);
//! multichannel AAC (5.1, 7.1), which it refused; and AAC-LD/ELD. fdk-aac is the decoder of
//! Android and is already linked for our encoders (`fdk-aac-sys` builds the whole library), so
//! this module is only the adapter: the stream's AudioSpecificConfig (from the MP4 sample entry,
//! or made from an ADTS header's fields), one access unit per packet, and each output channel
//! put on its speaker's plane as the decoder describes the channels (the stream's channel
//! configuration or its program config element).
//!
//! The output rate is the decoder's: with implicit SBR signalling (an ADTS stream, or an ASC that
//! states only the core) the container states half of it; `SourceDecoder` takes the rate from
//! the first decoded packet for that reason.
//!
//! Timing is ffmpeg's, sample for sample (tested against it): fdk-aac's default concealment holds
//! every frame back by one (`outputDelay` 1024 for AAC-LC), so we use noise substitution, which
//! does not; SBR's filter-bank delay (962 samples, which fdk also reports) is the standard
//! decoder's, and edit lists and iTunes notes are written with it counted, so it is kept.

use fdk_aac_sys as fdk;
use symphonia::core::audio::SignalSpec;
use symphonia::core::audio::{AsAudioBufferRef, AudioBuffer, AudioBufferRef, Channels, Signal};
use symphonia::core::codecs::{
    CodecDescriptor, CodecParameters, Decoder, DecoderOptions, FinalizeResult, CODEC_TYPE_AAC,
};
use symphonia::core::errors::{decode_error, unsupported_error, Result};
use symphonia::core::formats::Packet;

use super::codecs::speaker_planes;

/// Most output channels fdk-aac gives (7.1 and the 22.2 configurations are capped here).
const MAX_CHANNELS: usize = 8;
/// Most samples per channel in one access unit: 2048 (HE-AAC), 4096 for USAC.
const MAX_FRAME: usize = 4096;

/// The sampling frequencies of the AudioSpecificConfig's 4-bit index (ISO 14496-3 §1.6.3.4).
const RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// An AAC-LC AudioSpecificConfig for `rate` and `channels`: what an ADTS header states (its
/// profile is LC in practice; SBR and PS, if present, are found by the decoder in the stream).
fn lc_config(rate: u32, channels: usize) -> Option<[u8; 2]> {
    let index = RATES.iter().position(|&r| r == rate)? as u8;
    // Channel configurations 1..6 are 1..6 channels; 7 is 7.1 (8 channels).
    let config: u8 = match channels {
        1..=6 => channels as u8,
        8 => 7,
        _ => return None,
    };
    // 5 bits object type (2: LC), 4 bits frequency index, 4 bits channel configuration, 3 bits
    // of GASpecificConfig (all zero: 1024-sample frames, no core coder delay, no extension).
    Some([(2 << 3) | (index >> 1), ((index & 1) << 7) | (config << 3)])
}

/// The speaker of each output channel, from fdk-aac's description of them: its type (front,
/// side, back, LFE, with a height flag) and its index within that type, counted from the
/// centre outward at the front (centre first when there is one) and from the front backward
/// elsewhere (a back centre last). This is what a program config element states, so quad (L R
/// Ls Rs) and 2.1 (L R LFE) come out as they are, where their channel count alone would say
/// L R C and a back centre, or L R C. `None` if a type is not one we place.
fn speakers(channels: &[(fdk::AUDIO_CHANNEL_TYPE, u8)]) -> Option<Vec<Channels>> {
    let count = |t: fdk::AUDIO_CHANNEL_TYPE| channels.iter().filter(|c| c.0 == t).count();
    let mut lfe = 0;
    channels
        .iter()
        .map(|&(kind, index)| {
            let n = count(kind);
            let i = usize::from(index);
            // A pair's side: fronts pair off after a centre, the others from the first.
            let pair = |centred: bool| -> Option<(usize, bool)> {
                let k = if centred { i.checked_sub(1)? } else { i };
                Some((k / 2, k % 2 == 0))
            };
            Some(match kind {
                fdk::AUDIO_CHANNEL_TYPE_ACT_LFE => {
                    lfe += 1;
                    if lfe == 1 {
                        Channels::LFE1
                    } else {
                        Channels::LFE2
                    }
                }
                fdk::AUDIO_CHANNEL_TYPE_ACT_FRONT => {
                    if n % 2 == 1 && i == 0 {
                        Channels::FRONT_CENTRE
                    } else {
                        let (p, left) = pair(n % 2 == 1)?;
                        // The outermost pair is left and right; those inside it the centre
                        // pairs (7.1 as channel configuration 7 has both).
                        let outer = p + 1 == n / 2;
                        match (outer, left) {
                            (true, true) => Channels::FRONT_LEFT,
                            (true, false) => Channels::FRONT_RIGHT,
                            (false, true) => Channels::FRONT_LEFT_CENTRE,
                            (false, false) => Channels::FRONT_RIGHT_CENTRE,
                        }
                    }
                }
                fdk::AUDIO_CHANNEL_TYPE_ACT_SIDE | fdk::AUDIO_CHANNEL_TYPE_ACT_BACK => {
                    let side = kind == fdk::AUDIO_CHANNEL_TYPE_ACT_SIDE;
                    if n % 2 == 1 && i + 1 == n {
                        Channels::REAR_CENTRE
                    } else {
                        match (side, pair(false)?.1) {
                            (true, true) => Channels::SIDE_LEFT,
                            (true, false) => Channels::SIDE_RIGHT,
                            (false, true) => Channels::REAR_LEFT,
                            (false, false) => Channels::REAR_RIGHT,
                        }
                    }
                }
                fdk::AUDIO_CHANNEL_TYPE_ACT_FRONT_TOP => match pair(n % 2 == 1) {
                    None => Channels::TOP_FRONT_CENTRE,
                    Some((_, true)) => Channels::TOP_FRONT_LEFT,
                    Some((_, false)) => Channels::TOP_FRONT_RIGHT,
                },
                fdk::AUDIO_CHANNEL_TYPE_ACT_SIDE_TOP | fdk::AUDIO_CHANNEL_TYPE_ACT_BACK_TOP => {
                    if n % 2 == 1 && i + 1 == n {
                        Channels::TOP_REAR_CENTRE
                    } else if pair(false)?.1 {
                        Channels::TOP_REAR_LEFT
                    } else {
                        Channels::TOP_REAR_RIGHT
                    }
                }
                _ => return None,
            })
        })
        .collect()
}

/// symphonia's layout for `n` channels in fdk-aac's WAV order (the channel configurations of
/// ISO 14496-3 Table 1.19, reordered by the decoder): the fallback when fdk does not describe
/// its channels in terms [`speakers`] places.
fn layout(n: usize) -> Option<Channels> {
    let (fl, fr, fc, lfe) = (
        Channels::FRONT_LEFT,
        Channels::FRONT_RIGHT,
        Channels::FRONT_CENTRE,
        Channels::LFE1,
    );
    let (rl, rr, rc) = (
        Channels::REAR_LEFT,
        Channels::REAR_RIGHT,
        Channels::REAR_CENTRE,
    );
    Some(match n {
        1 => fc,
        2 => fl | fr,
        3 => fl | fr | fc,
        4 => fl | fr | fc | rc,
        5 => fl | fr | fc | rl | rr,
        6 => fl | fr | fc | lfe | rl | rr,
        7 => fl | fr | fc | lfe | rl | rr | rc,
        8 => fl | fr | fc | lfe | rl | rr | Channels::SIDE_LEFT | Channels::SIDE_RIGHT,
        _ => return None,
    })
}

/// A symphonia [`Decoder`] for AAC, backed by fdk-aac.
pub struct AacDecoder {
    params: CodecParameters,
    /// The AudioSpecificConfig the decoder was opened with (to open it again on reset).
    config: Vec<u8>,
    handle: fdk::HANDLE_AACDECODER,
    /// The access unit being decoded (fdk takes a mutable pointer).
    input: Vec<u8>,
    /// Interleaved output of the last access unit.
    pcm: Vec<i16>,
    buf: AudioBuffer<f32>,
}

// SAFETY: the fdk handle is a heap object owned by this struct alone and never shared; fdk-aac
// keeps no thread-local state, so the decoder may move between threads.
unsafe impl Send for AacDecoder {}
// SAFETY: `&self` methods never touch the handle (only `codec_params` and `last_decoded`, which
// read Rust-owned fields).
unsafe impl Sync for AacDecoder {}

impl Drop for AacDecoder {
    fn drop(&mut self) {
        // SAFETY: the handle came from aacDecoder_Open and is closed once.
        unsafe { fdk::aacDecoder_Close(self.handle) };
    }
}

/// An fdk-aac decoder configured by the AudioSpecificConfig `config`, with our settings.
fn open(config: &[u8]) -> Option<fdk::HANDLE_AACDECODER> {
    // SAFETY: raw access units, one layer.
    let handle = unsafe { fdk::aacDecoder_Open(fdk::TRANSPORT_TYPE_TT_MP4_RAW, 1) };
    if handle.is_null() {
        return None;
    }
    let mut conf = config.to_vec();
    let mut conf_ptr = conf.as_mut_ptr();
    let len = conf.len() as u32;
    // SAFETY: one configuration buffer of `len` bytes, alive for the call.
    let mut ok = unsafe { fdk::aacDecoder_ConfigRaw(handle, &mut conf_ptr, &len) }
        == fdk::AAC_DECODER_ERROR_AAC_DEC_OK;
    for (param, value) in [
        // WAV order (L R C LFE Ls Rs …): symphonia's speaker-bit order.
        (fdk::AACDEC_PARAM_AAC_PCM_OUTPUT_CHANNEL_MAPPING, 1),
        // No limiter: it adds delay and changes levels; we downmix with headroom ourselves.
        (fdk::AACDEC_PARAM_AAC_PCM_LIMITER_ENABLE, 0),
        // Noise substitution for a lost frame: the default (energy interpolation) holds every
        // frame back by one to look at the next.
        (fdk::AACDEC_PARAM_AAC_CONCEAL_METHOD, 1),
        (
            fdk::AACDEC_PARAM_AAC_PCM_MAX_OUTPUT_CHANNELS,
            MAX_CHANNELS as i32,
        ),
    ] {
        // SAFETY: valid handle; fdk validates the value.
        ok = ok
            && unsafe { fdk::aacDecoder_SetParam(handle, param, value) }
                == fdk::AAC_DECODER_ERROR_AAC_DEC_OK;
    }
    if !ok {
        // SAFETY: opened above, closed once.
        unsafe { fdk::aacDecoder_Close(handle) };
        return None;
    }
    Some(handle)
}

impl Decoder for AacDecoder {
    fn try_new(params: &CodecParameters, _: &DecoderOptions) -> Result<Self> {
        if params.codec != CODEC_TYPE_AAC {
            return unsupported_error("aac: not an AAC stream");
        }
        let channels = params.channels.map_or(0, |c| c.count());
        let config = match params.extra_data.as_deref() {
            Some(asc) if asc.len() >= 2 => asc.to_vec(),
            _ => match params
                .sample_rate
                .and_then(|rate| lc_config(rate, channels))
            {
                Some(made) => made.to_vec(),
                None => {
                    return unsupported_error("aac: no AudioSpecificConfig and no usable header")
                }
            },
        };
        let Some(handle) = open(&config) else {
            return unsupported_error("aac: unsupported AudioSpecificConfig");
        };
        Ok(Self {
            params: params.clone(),
            config,
            handle,
            input: Vec::new(),
            pcm: vec![0; MAX_FRAME * MAX_CHANNELS],
            buf: AudioBuffer::unused(),
        })
    }

    fn supported_codecs() -> &'static [CodecDescriptor] {
        &[CodecDescriptor {
            codec: CODEC_TYPE_AAC,
            short_name: "aac",
            long_name: "Advanced Audio Coding (fdk-aac)",
            inst_func: |params, options| Ok(Box::new(AacDecoder::try_new(params, options)?)),
        }]
    }

    fn reset(&mut self) {
        // A fresh decoder: nothing of the stream before the jump is kept (fdk's flags for this
        // differ between versions in what they clear).
        if let Some(handle) = open(&self.config) {
            // SAFETY: the old handle is replaced and closed once.
            unsafe { fdk::aacDecoder_Close(self.handle) };
            self.handle = handle;
        }
    }

    fn codec_params(&self) -> &CodecParameters {
        &self.params
    }

    fn decode(&mut self, packet: &Packet) -> Result<AudioBufferRef<'_>> {
        self.buf.clear();
        let data = packet.buf();
        if data.is_empty() {
            return decode_error("aac: empty packet");
        }
        self.input.clear();
        self.input.extend_from_slice(data);
        let mut in_ptr = self.input.as_mut_ptr();
        let size = self.input.len() as u32;
        let mut free = size;
        // SAFETY: one input buffer of `size` bytes, alive for the call; fdk copies what it takes
        // into its own buffer and says how much is left in `free`.
        let err = unsafe { fdk::aacDecoder_Fill(self.handle, &mut in_ptr, &size, &mut free) };
        // All of it taken, or a truncated unit would be decoded.
        if err != fdk::AAC_DECODER_ERROR_AAC_DEC_OK || free != 0 {
            return decode_error("aac: input refused");
        }
        // SAFETY: the output buffer holds `pcm.len()` samples, as stated.
        let err = unsafe {
            fdk::aacDecoder_DecodeFrame(
                self.handle,
                self.pcm.as_mut_ptr(),
                self.pcm.len() as i32,
                0,
            )
        };
        if err != fdk::AAC_DECODER_ERROR_AAC_DEC_OK {
            // Not a whole access unit, or a broken one: a lost packet to the caller.
            return decode_error("aac: invalid access unit");
        }
        // SAFETY: valid handle; the stream info lives as long as the decoder and is only read.
        let info = unsafe { &*fdk::aacDecoder_GetStreamInfo(self.handle) };
        let (rate, channels, frames) = (
            u32::try_from(info.sampleRate).unwrap_or(0),
            usize::try_from(info.numChannels).unwrap_or(0),
            usize::try_from(info.frameSize).unwrap_or(0),
        );
        if rate == 0 || frames == 0 || frames * channels > self.pcm.len() {
            return decode_error("aac: invalid output");
        }
        // Each channel's speaker, as the stream describes it (a program config element may
        // say quad or 2.1), else as its channel count implies.
        let described = (!info.pChannelType.is_null() && !info.pChannelIndices.is_null())
            .then(|| {
                // SAFETY: fdk describes each of its `numChannels` output channels in these two
                // arrays, which live as long as the decoder.
                (0..channels)
                    .map(|ch| unsafe {
                        (*info.pChannelType.add(ch), *info.pChannelIndices.add(ch))
                    })
                    .collect::<Vec<_>>()
            })
            .and_then(|c| speakers(&c))
            .and_then(|s| speaker_planes(&s));
        // A lost packet, not a lost file: the decoder is capped at 8 output channels.
        let Some((layout, planes)) =
            described.or_else(|| layout(channels).map(|l| (l, (0..channels).collect())))
        else {
            return decode_error("aac: unsupported channel count");
        };
        let spec = SignalSpec::new(rate, layout);
        if *self.buf.spec() != spec || (self.buf.capacity()) < frames {
            self.buf = AudioBuffer::new(frames.max(MAX_FRAME) as u64, spec);
        }
        self.buf.render_reserved(Some(frames));
        for (ch, &plane) in planes.iter().enumerate() {
            for (f, s) in self.buf.chan_mut(plane).iter_mut().enumerate() {
                *s = f32::from(self.pcm[f * channels + ch]) / 32768.0;
            }
        }
        self.buf
            .trim(packet.trim_start() as usize, packet.trim_end() as usize);
        Ok(self.buf.as_audio_buffer_ref())
    }

    fn finalize(&mut self) -> FinalizeResult {
        FinalizeResult::default()
    }

    fn last_decoded(&self) -> AudioBufferRef<'_> {
        self.buf.as_audio_buffer_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adts_fields_make_an_lc_config() {
        // 44.1 kHz stereo LC: the config every AAC-LC encoder writes.
        assert_eq!(lc_config(44100, 2), Some([0x12, 0x10]));
        // 48 kHz 5.1.
        assert_eq!(lc_config(48000, 6), Some([0x11, 0xB0]));
        assert_eq!(lc_config(22050, 1), Some([0x13, 0x88]));
        assert_eq!(lc_config(44100, 8), Some([0x12, 0x38]));
        assert_eq!(lc_config(44000, 2), None);
        assert_eq!(lc_config(44100, 0), None);
        assert_eq!(lc_config(44100, 7), None);
    }

    /// What fdk-aac reports (type, index) for ffmpeg-made AAC in each layout (printed from the
    /// decoder), and the speakers that makes.
    #[test]
    fn speakers_follow_what_the_decoder_reports() {
        use fdk::{
            AUDIO_CHANNEL_TYPE_ACT_BACK as B, AUDIO_CHANNEL_TYPE_ACT_FRONT as F,
            AUDIO_CHANNEL_TYPE_ACT_LFE as LFE, AUDIO_CHANNEL_TYPE_ACT_SIDE as S,
        };
        let c = |v: &[(fdk::AUDIO_CHANNEL_TYPE, u8)]| speakers(v).unwrap();
        let (fl, fr, fc) = (
            Channels::FRONT_LEFT,
            Channels::FRONT_RIGHT,
            Channels::FRONT_CENTRE,
        );
        let (rl, rr, rc) = (
            Channels::REAR_LEFT,
            Channels::REAR_RIGHT,
            Channels::REAR_CENTRE,
        );
        assert_eq!(c(&[(F, 0)]), [fc]);
        assert_eq!(c(&[(F, 0), (F, 1)]), [fl, fr]);
        assert_eq!(c(&[(F, 1), (F, 2), (F, 0)]), [fl, fr, fc]);
        // 2.1 and quad: program config elements.
        assert_eq!(c(&[(F, 0), (F, 1), (LFE, 0)]), [fl, fr, Channels::LFE1]);
        assert_eq!(c(&[(F, 0), (F, 1), (B, 0), (B, 1)]), [fl, fr, rl, rr]);
        assert_eq!(c(&[(F, 1), (F, 2), (F, 0), (B, 0)]), [fl, fr, fc, rc]);
        assert_eq!(
            c(&[(F, 1), (F, 2), (F, 0), (LFE, 0), (B, 0), (B, 1)]),
            [fl, fr, fc, Channels::LFE1, rl, rr]
        );
        // Configuration 7: two front pairs; the outer one is left and right.
        assert_eq!(
            c(&[
                (F, 3),
                (F, 4),
                (F, 0),
                (LFE, 0),
                (B, 0),
                (B, 1),
                (F, 1),
                (F, 2)
            ]),
            [
                fl,
                fr,
                fc,
                Channels::LFE1,
                rl,
                rr,
                Channels::FRONT_LEFT_CENTRE,
                Channels::FRONT_RIGHT_CENTRE
            ]
        );
        // Sides and backs (7.1 by a program config element).
        assert_eq!(
            c(&[(S, 0), (S, 1), (B, 0), (B, 1), (B, 2)]),
            [Channels::SIDE_LEFT, Channels::SIDE_RIGHT, rl, rr, rc]
        );
        assert!(speakers(&[(fdk::AUDIO_CHANNEL_TYPE_ACT_NONE, 0)]).is_none());
    }

    #[test]
    fn every_aac_channel_count_has_a_layout_of_that_size() {
        for n in 1..=8 {
            assert_eq!(layout(n).unwrap().count(), n);
        }
        assert!(layout(0).is_none() && layout(9).is_none());
    }

    /// ADTS frames of our own encoder (AAC-LC 44.1 kHz stereo, 128 kbps) for `secs` of a
    /// 1 kHz sine on the left, silence on the right, stripped of their headers to raw access
    /// units, as an ADTS reader hands them over.
    fn access_units(secs: f64) -> Vec<Vec<u8>> {
        let mut enc = crate::media::aac::AacEncoder::new(44100, 128).unwrap();
        let n = (secs * 44100.0) as usize;
        let pcm: Vec<f32> = (0..n)
            .flat_map(|i| {
                let t = i as f32 / 44100.0;
                [0.5 * (2.0 * std::f32::consts::PI * 1000.0 * t).sin(), 0.0]
            })
            .collect();
        let mut frames = Vec::new();
        enc.encode(&pcm, &mut frames).unwrap();
        enc.finish(&mut frames).unwrap();
        frames
            .into_iter()
            .map(|f| {
                // The header: 7 bytes, 9 with a CRC (protection_absent = 0).
                let header = if f[1] & 1 == 1 { 7 } else { 9 };
                f[header..].to_vec()
            })
            .collect()
    }

    fn stereo_params() -> CodecParameters {
        let mut params = CodecParameters::new();
        params
            .for_codec(CODEC_TYPE_AAC)
            .with_sample_rate(44100)
            .with_channels(Channels::FRONT_LEFT | Channels::FRONT_RIGHT);
        params
    }

    /// Decodes `units`, returning the left and right planes.
    fn decode_all(dec: &mut AacDecoder, units: &[Vec<u8>]) -> (Vec<f32>, Vec<f32>) {
        let (mut left, mut right) = (Vec::new(), Vec::new());
        for (i, unit) in units.iter().enumerate() {
            let packet = Packet::new_from_slice(0, i as u64 * 1024, 1024, unit);
            let AudioBufferRef::F32(buf) = dec.decode(&packet).unwrap() else {
                panic!("f32 output");
            };
            assert_eq!(buf.spec().rate, 44100);
            left.extend_from_slice(buf.chan(0));
            right.extend_from_slice(buf.chan(1));
        }
        (left, right)
    }

    #[test]
    fn decodes_what_our_encoder_makes_frame_for_frame_and_again_after_a_reset() {
        let units = access_units(1.0);
        let mut dec = AacDecoder::try_new(&stereo_params(), &DecoderOptions::default()).unwrap();
        let (left, right) = decode_all(&mut dec, &units);
        // One frame out per frame in: no decoder delay of its own.
        assert_eq!(left.len(), units.len() * 1024);
        // The sine on the left at its level, past the encoder's priming; silence on the right.
        let steady = &left[4096..left.len() - 4096];
        let rms = (steady.iter().map(|s| s * s).sum::<f32>() / steady.len() as f32).sqrt();
        assert!((rms - 0.5 / 2f32.sqrt()).abs() < 0.02, "left rms {rms}");
        assert!(right.iter().all(|s| s.abs() < 1e-3), "right not silent");
        // Stopped mid-stream and reset, the decoder starts afresh: the same output as a new one
        // (without the reset, the first frame would overlap with the sine left off).
        decode_all(&mut dec, &units[..units.len() / 2]);
        dec.reset();
        assert_eq!(decode_all(&mut dec, &units), (left, right));
    }

    #[test]
    fn garbage_is_a_decode_error_not_a_crash() {
        let mut params = CodecParameters::new();
        params
            .for_codec(CODEC_TYPE_AAC)
            .with_sample_rate(44100)
            .with_channels(Channels::FRONT_LEFT | Channels::FRONT_RIGHT);
        let mut dec = AacDecoder::try_new(&params, &DecoderOptions::default()).unwrap();
        for junk in [
            &[0xFFu8; 3][..],
            &[0u8; 700],
            &(0..=255).collect::<Vec<u8>>(),
        ] {
            let packet = Packet::new_from_slice(0, 0, 1024, junk);
            let _ = dec.decode(&packet);
        }
        let empty = Packet::new_from_slice(0, 0, 1024, &[]);
        assert!(dec.decode(&empty).is_err());
    }

    proptest::proptest! {
        /// Hostile files: any AudioSpecificConfig and any packets give a decoder that refuses
        /// or errors, never a crash or output outside the buffer it claims.
        #[test]
        fn any_config_and_packets_are_safe(
            asc in proptest::collection::vec(proptest::num::u8::ANY, 0..16),
            packets in proptest::collection::vec(
                proptest::collection::vec(proptest::num::u8::ANY, 0..1500),
                1..6,
            ),
        ) {
            let mut params = stereo_params();
            params.with_extra_data(asc.into_boxed_slice());
            if let Ok(mut dec) = AacDecoder::try_new(&params, &DecoderOptions::default()) {
                for (i, p) in packets.iter().enumerate() {
                    let packet = Packet::new_from_slice(0, i as u64 * 1024, 1024, p);
                    if let Ok(buf) = dec.decode(&packet) {
                        proptest::prop_assert!(buf.frames() <= MAX_FRAME);
                    }
                }
            }
        }
    }
}

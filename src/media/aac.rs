//! AAC encoding with fdk-aac (AAC-LC for what we serve), producing ADTS frames.
//!
//! A thin wrapper over `fdk-aac-sys` rather than the `fdk-aac` crate: that crate cannot flush the
//! encoder, so the last ≈3000 samples of every track were lost (measured, `design.md`). Here the
//! encoder is called with `numInSamples = -1` until it reports end of stream.

use std::os::raw::c_void;
use std::ptr;

use fdk_aac_sys as fdk;

use super::EncodeError;

/// Output buffer per call: one ADTS frame is at most 6144 bits per channel plus the header.
const OUT_BUF_BYTES: usize = 8192;

/// An fdk-aac encoder for 16-bit interleaved stereo, AAC-LC, CBR, ADTS.
pub struct AacEncoder {
    handle: fdk::HANDLE_AACENCODER,
    /// Input not yet consumed by the encoder (interleaved i16).
    pending: Vec<i16>,
    out: Vec<u8>,
    delay: u32,
}

// SAFETY: the fdk handle is a heap object owned exclusively by this struct; fdk-aac keeps no
// thread-local state, so moving it between threads is sound (it is never shared).
unsafe impl Send for AacEncoder {}

/// The AAC flavours we encode: AAC-LC for every profile we serve; HE-AAC (SBR, and v2's
/// parametric stereo) for test sources, since ffmpeg's own encoder makes only AAC-LC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AacObjectType {
    Lc,
    HeV1,
    HeV2,
}

impl AacEncoder {
    /// AAC-LC, stereo, CBR, ADTS.
    pub fn new(sample_rate: u32, bitrate_kbps: u32) -> Result<Self, EncodeError> {
        Self::with_object_type(sample_rate, bitrate_kbps, AacObjectType::Lc)
    }

    /// Stereo, CBR, ADTS, of the given object type.
    pub fn with_object_type(
        sample_rate: u32,
        bitrate_kbps: u32,
        object_type: AacObjectType,
    ) -> Result<Self, EncodeError> {
        let aot = match object_type {
            AacObjectType::Lc => fdk::AUDIO_OBJECT_TYPE_AOT_AAC_LC,
            AacObjectType::HeV1 => fdk::AUDIO_OBJECT_TYPE_AOT_SBR,
            AacObjectType::HeV2 => fdk::AUDIO_OBJECT_TYPE_AOT_PS,
        };
        let mut handle: fdk::HANDLE_AACENCODER = ptr::null_mut();
        // SAFETY: aacEncOpen writes a fresh handle into `handle`; 0/2 = no module restriction,
        // two channels.
        check(unsafe { fdk::aacEncOpen(&mut handle, 0, 2) }, "open")?;
        let mut enc = Self {
            handle,
            pending: Vec::with_capacity(4096),
            out: vec![0; OUT_BUF_BYTES],
            delay: 0,
        };
        let params: [(fdk::AACENC_PARAM, u32); 8] = [
            (fdk::AACENC_PARAM_AACENC_AOT, aot as u32),
            (fdk::AACENC_PARAM_AACENC_SAMPLERATE, sample_rate),
            (
                fdk::AACENC_PARAM_AACENC_CHANNELMODE,
                fdk::CHANNEL_MODE_MODE_2 as u32,
            ),
            (fdk::AACENC_PARAM_AACENC_CHANNELORDER, 1), // WAV order: L, R
            (fdk::AACENC_PARAM_AACENC_BITRATEMODE, 0),  // CBR: steady segment sizes for ABR
            (fdk::AACENC_PARAM_AACENC_BITRATE, bitrate_kbps * 1000),
            (
                fdk::AACENC_PARAM_AACENC_TRANSMUX,
                fdk::TRANSPORT_TYPE_TT_MP4_ADTS as u32,
            ),
            (
                fdk::AACENC_PARAM_AACENC_AFTERBURNER,
                u32::from(afterburner(bitrate_kbps)),
            ),
        ];
        for (param, value) in params {
            // SAFETY: valid handle; fdk validates the value and reports errors.
            check(
                unsafe { fdk::aacEncoder_SetParam(enc.handle, param, value) },
                "set parameter",
            )?;
        }
        // SAFETY: a call with null buffers initialises the encoder with the parameters set.
        check(
            unsafe {
                fdk::aacEncEncode(
                    enc.handle,
                    ptr::null(),
                    ptr::null(),
                    ptr::null(),
                    ptr::null_mut(),
                )
            },
            "initialise",
        )?;
        // SAFETY: info is plain data filled by fdk.
        let mut info: fdk::AACENC_InfoStruct = unsafe { std::mem::zeroed() };
        check(unsafe { fdk::aacEncInfo(enc.handle, &mut info) }, "info")?;
        enc.delay = info.nDelay;
        Ok(enc)
    }

    /// Encoder delay in samples per channel, as fdk-aac reports it.
    pub fn delay(&self) -> u32 {
        self.delay
    }

    /// Encodes interleaved stereo samples in [-1, 1]; complete ADTS frames go to `frames`.
    pub fn encode(&mut self, pcm: &[f32], frames: &mut Vec<Vec<u8>>) -> Result<(), EncodeError> {
        self.pending.extend(pcm.iter().map(|s| to_i16(*s)));
        let mut start = 0;
        // fdk consumes up to one frame of input per call and emits at most one frame.
        while self.pending.len() - start >= 2048 {
            let consumed = self.call(Some(start), frames)?;
            if consumed == 0 {
                break;
            }
            start += consumed;
        }
        self.pending.drain(..start);
        Ok(())
    }

    /// Encodes what is left and drains the encoder until end of stream.
    pub fn finish(&mut self, frames: &mut Vec<Vec<u8>>) -> Result<(), EncodeError> {
        let mut start = 0;
        while start < self.pending.len() {
            let consumed = self.call(Some(start), frames)?;
            if consumed == 0 {
                break;
            }
            start += consumed;
        }
        self.pending.clear();
        // Bounded: fdk reports EOF once its delay line is empty (a few frames).
        for _ in 0..64 {
            if self.call(None, frames)? == usize::MAX {
                return Ok(());
            }
        }
        Err(EncodeError::Codec(
            "fdk-aac did not reach end of stream".into(),
        ))
    }

    /// One `aacEncEncode` call with the pending input from `start` (or a flush when `None`).
    /// Returns the samples consumed, or `usize::MAX` at end of stream.
    fn call(
        &mut self,
        start: Option<usize>,
        frames: &mut Vec<Vec<u8>>,
    ) -> Result<usize, EncodeError> {
        let input: &[i16] = match start {
            Some(s) => &self.pending[s..],
            None => &[],
        };
        let mut in_ptr = input.as_ptr() as *mut c_void;
        let mut in_id = fdk::AACENC_BufferIdentifier_IN_AUDIO_DATA as i32;
        let mut in_size = std::mem::size_of_val(input) as i32;
        let mut in_el = 2i32;
        let in_desc = fdk::AACENC_BufDesc {
            numBufs: 1,
            bufs: &mut in_ptr,
            bufferIdentifiers: &mut in_id,
            bufSizes: &mut in_size,
            bufElSizes: &mut in_el,
        };
        let mut out_ptr = self.out.as_mut_ptr() as *mut c_void;
        let mut out_id = fdk::AACENC_BufferIdentifier_OUT_BITSTREAM_DATA as i32;
        let mut out_size = self.out.len() as i32;
        let mut out_el = 1i32;
        let out_desc = fdk::AACENC_BufDesc {
            numBufs: 1,
            bufs: &mut out_ptr,
            bufferIdentifiers: &mut out_id,
            bufSizes: &mut out_size,
            bufElSizes: &mut out_el,
        };
        let in_args = fdk::AACENC_InArgs {
            numInSamples: if start.is_some() {
                input.len() as i32
            } else {
                -1
            },
            numAncBytes: 0,
        };
        // SAFETY: plain data filled by fdk.
        let mut out_args: fdk::AACENC_OutArgs = unsafe { std::mem::zeroed() };
        // SAFETY: descriptors point at live buffers of the sizes given; fdk reads at most
        // `in_size` bytes and writes at most `out_size` bytes.
        let err =
            unsafe { fdk::aacEncEncode(self.handle, &in_desc, &out_desc, &in_args, &mut out_args) };
        if err == fdk::AACENC_ERROR_AACENC_ENCODE_EOF {
            return Ok(usize::MAX);
        }
        check(err, "encode")?;
        if out_args.numOutBytes > 0 {
            frames.push(self.out[..out_args.numOutBytes as usize].to_vec());
        }
        Ok(out_args.numInSamples.max(0) as usize)
    }
}

impl Drop for AacEncoder {
    fn drop(&mut self) {
        // SAFETY: the handle came from aacEncOpen and is closed once.
        unsafe {
            fdk::aacEncClose(&mut self.handle);
        }
    }
}

/// fdk's "afterburner" (a closed-loop scale factor search) roughly doubles encoding time. It
/// audibly helps at low rates, while at 80 kbps per channel and above AAC-LC is already
/// transparent for most listeners (measured here: 40% of the ladder's CPU went to it), so it is
/// kept for the small rungs only.
fn afterburner(bitrate_kbps: u32) -> bool {
    bitrate_kbps < 160
}

/// Round half away from zero without a libm call (`as` saturates at the i16 range); this runs
/// once per sample per AAC rung.
#[inline]
fn to_i16(s: f32) -> i16 {
    let v = s * 32768.0;
    (v + 0.5f32.copysign(v)) as i16
}

fn check(err: fdk::AACENC_ERROR, what: &str) -> Result<(), EncodeError> {
    if err == fdk::AACENC_ERROR_AACENC_OK {
        Ok(())
    } else {
        Err(EncodeError::Codec(format!(
            "fdk-aac {what} failed (error {err:#x})"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::encoder_delay::AAC_LC_ENCODER_DELAY;

    fn tone(rate: u32, secs: f32) -> Vec<f32> {
        let n = (rate as f32 * secs) as usize;
        (0..n)
            .flat_map(|i| {
                let v = (i as f32 * 440.0 * std::f32::consts::TAU / rate as f32).sin() * 0.5;
                [v, v]
            })
            .collect()
    }

    #[test]
    fn delay_matches_the_layout_constant() {
        for rate in [22050, 44100, 48000] {
            let enc = AacEncoder::new(rate, 128).unwrap();
            assert_eq!(u64::from(enc.delay()), AAC_LC_ENCODER_DELAY, "rate {rate}");
        }
    }

    #[test]
    fn frames_are_adts_and_flush_keeps_the_tail() {
        let mut enc = AacEncoder::new(44100, 192).unwrap();
        let pcm = tone(44100, 1.0);
        let mut frames = Vec::new();
        for chunk in pcm.chunks(3000) {
            enc.encode(chunk, &mut frames).unwrap();
        }
        enc.finish(&mut frames).unwrap();
        // 44100 samples + 2048 delay need 44 frames of 1024.
        assert!(frames.len() >= 44, "{} frames", frames.len());
        for f in &frames {
            assert_eq!(f[0], 0xff);
            assert_eq!(f[1] & 0xf6, 0xf0, "ADTS sync word, layer 0");
            let len = ((usize::from(f[3]) & 3) << 11)
                | (usize::from(f[4]) << 3)
                | (usize::from(f[5]) >> 5);
            assert_eq!(len, f.len());
        }
    }

    #[test]
    fn rejects_impossible_settings() {
        assert!(AacEncoder::new(7000, 128).is_err());
    }
}

//! MP3 (MPEG-1/2 Layer III) encoding with LAME, producing whole frames.
//!
//! LAME returns bytes, not frames, so its output is split on frame headers here. Output buffers
//! are sized by LAME's documented worst case (1.25 × samples + 7200): a smaller buffer made the
//! `mp3lame-encoder` crate's Vec path crash (measured, `design.md`).

use std::os::raw::c_int;

use mp3lame_sys as lame;

use super::EncodeError;

/// A CBR LAME encoder for interleaved stereo f32.
pub struct Mp3Encoder {
    gfp: *mut lame::lame_global_flags,
    buf: Vec<u8>,
    /// Bytes not yet forming a whole frame.
    pending: Vec<u8>,
    /// The first frame LAME writes is a placeholder for its Info tag; it is set aside.
    skipped_tag_frame: bool,
}

// SAFETY: the LAME context is owned exclusively by this struct and LAME keeps no thread-local
// state; it is moved between threads, never shared.
unsafe impl Send for Mp3Encoder {}

impl Mp3Encoder {
    pub fn new(sample_rate: u32, bitrate_kbps: u32) -> Result<Self, EncodeError> {
        // SAFETY: lame_init allocates a context or returns null.
        let gfp = unsafe { lame::lame_init() };
        if gfp.is_null() {
            return Err(EncodeError::Codec("lame_init failed".into()));
        }
        let enc = Self {
            gfp,
            buf: Vec::new(),
            pending: Vec::new(),
            skipped_tag_frame: false,
        };
        // SAFETY: gfp is a valid context; setters validate their arguments.
        let ok = unsafe {
            lame::lame_set_in_samplerate(gfp, sample_rate as c_int) == 0
                && lame::lame_set_out_samplerate(gfp, sample_rate as c_int) == 0
                && lame::lame_set_num_channels(gfp, 2) == 0
                && lame::lame_set_mode(gfp, lame::MPEG_mode::JOINT_STEREO) == 0
                && lame::lame_set_VBR(gfp, lame::vbr_mode::vbr_off) == 0
                && lame::lame_set_brate(gfp, bitrate_kbps as c_int) == 0
                && lame::lame_set_quality(gfp, 3) == 0
                && lame::lame_set_bWriteVbrTag(gfp, 1) == 0
                // Every frame self-contained: an HLS segment (or a seek) may start at any frame,
                // and a frame borrowing bits from the one before it would not decode there.
                // `EXT-X-INDEPENDENT-SEGMENTS` depends on it. At 128 kbps for 22.05 kHz the
                // reservoir's gain is small.
                && lame::lame_set_disable_reservoir(gfp, 1) == 0
                && lame::lame_init_params(gfp) >= 0
        };
        if !ok {
            return Err(EncodeError::Codec(format!(
                "LAME rejected {sample_rate} Hz at {bitrate_kbps} kbps"
            )));
        }
        Ok(enc)
    }

    /// Encoder delay in samples per channel.
    pub fn delay(&self) -> u32 {
        // SAFETY: valid context.
        unsafe { lame::lame_get_encoder_delay(self.gfp) as u32 }
    }

    /// Encodes interleaved stereo samples in [-1, 1]; whole frames go to `frames`.
    pub fn encode(&mut self, pcm: &[f32], frames: &mut Vec<Vec<u8>>) -> Result<(), EncodeError> {
        let samples = pcm.len() / 2;
        if samples == 0 {
            return Ok(());
        }
        self.buf.resize(samples * 5 / 4 + 7200, 0);
        // SAFETY: pcm holds `samples` interleaved pairs; buf has LAME's worst-case size.
        let n = unsafe {
            lame::lame_encode_buffer_interleaved_ieee_float(
                self.gfp,
                pcm.as_ptr(),
                samples as c_int,
                self.buf.as_mut_ptr(),
                self.buf.len() as c_int,
            )
        };
        self.take(n, frames)
    }

    /// Flushes the encoder; the remaining frames go to `frames`.
    pub fn finish(&mut self, frames: &mut Vec<Vec<u8>>) -> Result<(), EncodeError> {
        self.buf.resize(7200 + 4096, 0);
        // SAFETY: buf is large enough for a flush (at most a few frames).
        let n = unsafe {
            lame::lame_encode_flush(self.gfp, self.buf.as_mut_ptr(), self.buf.len() as c_int)
        };
        self.take(n, frames)?;
        if !self.pending.is_empty() {
            return Err(EncodeError::Codec(format!(
                "LAME left {} bytes that are not a whole frame",
                self.pending.len()
            )));
        }
        Ok(())
    }

    /// The LAME Info tag frame (delay, padding, frame count) for the stream just finished, to put
    /// in front of a progressive MP3 file so gapless decoders trim priming and padding.
    pub fn info_tag(&self) -> Option<Vec<u8>> {
        let mut tag = vec![0u8; 2880];
        // SAFETY: tag is a writable buffer of the size given.
        let n = unsafe { lame::lame_get_lametag_frame(self.gfp, tag.as_mut_ptr(), tag.len()) };
        (n > 0 && n <= tag.len()).then(|| {
            tag.truncate(n);
            tag
        })
    }

    /// [`Self::info_tag`], declaring `extra` more samples of priming: silence fed before the
    /// source (a variant's lead-in, `encoder_delay::lead_in`) is, to a gapless decoder of the
    /// progressive file, priming to drop like LAME's own. LAME cannot be told, so the tag's
    /// delay field is rewritten and its CRC recomputed; a tag that does not check out as LAME
    /// wrote it, or a delay past the field's 12 bits, is left as it was.
    pub fn info_tag_with_priming(&self, extra: u64) -> Option<Vec<u8>> {
        let mut tag = self.info_tag()?;
        if extra > 0 && !add_priming(&mut tag, extra) {
            tracing::warn!(extra, "cannot declare the lead-in in LAME's Info tag");
        }
        Some(tag)
    }

    fn take(&mut self, n: c_int, frames: &mut Vec<Vec<u8>>) -> Result<(), EncodeError> {
        if n < 0 {
            return Err(EncodeError::Codec(format!("LAME encode failed ({n})")));
        }
        self.pending.extend_from_slice(&self.buf[..n as usize]);
        let mut pos = 0;
        while let Some(len) = frame_len(&self.pending[pos..]) {
            if pos + len > self.pending.len() {
                break;
            }
            let frame = &self.pending[pos..pos + len];
            if !self.skipped_tag_frame {
                self.skipped_tag_frame = true;
            } else {
                frames.push(frame.to_vec());
            }
            pos += len;
        }
        if pos == 0 && self.pending.len() >= 4 && frame_len(&self.pending).is_none() {
            return Err(EncodeError::Codec(
                "LAME produced bytes that are not an MP3 frame".into(),
            ));
        }
        self.pending.drain(..pos);
        Ok(())
    }
}

impl Drop for Mp3Encoder {
    fn drop(&mut self) {
        // SAFETY: the context came from lame_init and is closed once.
        unsafe {
            lame::lame_close(self.gfp);
        }
    }
}

/// Length in bytes of the MPEG audio frame whose header starts `data`, or `None` if `data` does
/// not start with a valid Layer III header (ISO/IEC 11172-3 §2.4.2.3, 13818-3 for MPEG-2).
pub fn frame_len(data: &[u8]) -> Option<usize> {
    if data.len() < 4 || data[0] != 0xff || data[1] & 0xe0 != 0xe0 {
        return None;
    }
    let version = (data[1] >> 3) & 3; // 3 = MPEG-1, 2 = MPEG-2, 0 = MPEG-2.5
    let layer = (data[1] >> 1) & 3; // 1 = Layer III
    if version == 1 || layer != 1 {
        return None;
    }
    let bitrate_idx = usize::from(data[2] >> 4);
    let rate_idx = usize::from((data[2] >> 2) & 3);
    let padding = usize::from((data[2] >> 1) & 1);
    if bitrate_idx == 0 || bitrate_idx == 15 || rate_idx == 3 {
        return None;
    }
    const V1: [usize; 15] = [
        0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
    ];
    const V2: [usize; 15] = [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];
    const RATES: [usize; 3] = [44100, 48000, 32000];
    let (kbps, rate, coef) = match version {
        3 => (V1[bitrate_idx], RATES[rate_idx], 144),
        2 => (V2[bitrate_idx], RATES[rate_idx] / 2, 72),
        _ => (V2[bitrate_idx], RATES[rate_idx] / 4, 72),
    };
    Some(coef * kbps * 1000 / rate + padding)
}

/// Adds `extra` samples to the encoder delay of a LAME Info frame (the LAME extension of the
/// Xing/Info tag, as LAME's `VbrTag.c` writes it) and refreshes the tag's CRC-16. Written by
/// hand: no crate edits LAME tags. `false` (nothing changed) if the frame is not one LAME's
/// CRC vouches for, or the delay would not fit its 12 bits.
fn add_priming(frame: &mut [u8], extra: u64) -> bool {
    let Some(xing) = frame.windows(4).position(|w| w == b"Info" || w == b"Xing") else {
        return false;
    };
    let Some(flags) = frame.get(xing + 4..xing + 8) else {
        return false;
    };
    let flags = u32::from_be_bytes([flags[0], flags[1], flags[2], flags[3]]);
    // Frames, bytes, table of contents, quality: present per flag.
    let mut lame = xing + 8;
    for (bit, len) in [(1, 4), (2, 4), (4, 100), (8, 4)] {
        if flags & bit != 0 {
            lame += len;
        }
    }
    // Version string (9), revision (1), lowpass (1), replay gain (8), flags (1), bitrate (1),
    // then the 3 bytes of delay and padding; the tag CRC closes the 36-byte extension.
    let (delays, crc_at) = (lame + 21, lame + 34);
    if frame.len() < crc_at + 2 {
        return false;
    }
    let stored = u16::from_be_bytes([frame[crc_at], frame[crc_at + 1]]);
    if crc16(&frame[..crc_at]) != stored {
        return false;
    }
    let d = &frame[delays..delays + 3];
    let delay = (u32::from(d[0]) << 4) | (u32::from(d[1]) >> 4);
    let padding = ((u32::from(d[1]) & 0x0f) << 8) | u32::from(d[2]);
    let Some(delay) = u32::try_from(extra)
        .ok()
        .and_then(|e| delay.checked_add(e))
        .filter(|d| *d < 1 << 12)
    else {
        return false;
    };
    frame[delays] = (delay >> 4) as u8;
    frame[delays + 1] = ((delay & 0x0f) << 4) as u8 | (padding >> 8) as u8;
    frame[delays + 2] = padding as u8;
    let crc = crc16(&frame[..crc_at]).to_be_bytes();
    frame[crc_at..crc_at + 2].copy_from_slice(&crc);
    true
}

/// CRC-16 (polynomial 0x8005, reflected, initial 0: "CRC-16/ARC"), as LAME computes its tag CRC.
fn crc16(bytes: &[u8]) -> u16 {
    let mut crc = 0u16;
    for &b in bytes {
        crc ^= u16::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xa001
            } else {
                crc >> 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::encoder_delay::MP3_ENCODER_DELAY;

    /// Encoder delay and padding fields of a LAME Info frame.
    fn delays(frame: &[u8]) -> (u32, u32) {
        let xing = frame
            .windows(4)
            .position(|w| w == b"Info" || w == b"Xing")
            .unwrap();
        let d = &frame[xing + 120 + 21..xing + 120 + 24];
        (
            (u32::from(d[0]) << 4) | (u32::from(d[1]) >> 4),
            ((u32::from(d[1]) & 0x0f) << 8) | u32::from(d[2]),
        )
    }

    #[test]
    fn lead_in_is_declared_as_priming_with_a_valid_crc() {
        let mut enc = Mp3Encoder::new(22050, 128).unwrap();
        let mut frames = Vec::new();
        enc.encode(&vec![0.1; 22050 * 2], &mut frames).unwrap();
        enc.finish(&mut frames).unwrap();
        let plain = enc.info_tag().unwrap();
        let (delay, padding) = delays(&plain);
        assert_eq!(u64::from(delay), MP3_ENCODER_DELAY);
        let patched = enc.info_tag_with_priming(300).unwrap();
        assert_eq!(delays(&patched), (delay + 300, padding));
        assert_eq!(patched.len(), plain.len());
        // Everything else as LAME wrote it, and the CRC checks out as LAME's did.
        let crc_at = patched
            .windows(4)
            .position(|w| w == b"Info" || w == b"Xing")
            .unwrap()
            + 120
            + 34;
        let diff: Vec<usize> = (0..plain.len())
            .filter(|&i| plain[i] != patched[i])
            .collect();
        assert!(
            diff.iter().all(|&i| (crc_at - 13..crc_at + 2).contains(&i)),
            "{diff:?}"
        );
        assert_eq!(
            crc16(&patched[..crc_at]),
            u16::from_be_bytes([patched[crc_at], patched[crc_at + 1]])
        );
        // No lead-in: the tag as LAME wrote it; a delay past 12 bits or a broken tag: untouched.
        assert_eq!(enc.info_tag_with_priming(0).unwrap(), plain);
        assert_eq!(enc.info_tag_with_priming(5000).unwrap(), plain);
        let mut broken = plain.clone();
        broken[crc_at - 1] ^= 0xff;
        assert!(!add_priming(&mut broken, 10));
    }

    #[test]
    fn encodes_whole_frames_and_reports_its_delay() {
        let mut enc = Mp3Encoder::new(22050, 128).unwrap();
        assert_eq!(u64::from(enc.delay()), MP3_ENCODER_DELAY);
        let pcm: Vec<f32> = (0..22050)
            .flat_map(|i| {
                let v = (i as f32 * 0.05).sin() * 0.4;
                [v, -v]
            })
            .collect();
        let mut frames = Vec::new();
        for chunk in pcm.chunks(1000) {
            enc.encode(chunk, &mut frames).unwrap();
        }
        enc.finish(&mut frames).unwrap();
        // 22050 samples + 576 delay + 529 decoder delay: at least 40 frames of 576.
        assert!(frames.len() >= 40, "{}", frames.len());
        for f in &frames {
            assert_eq!(frame_len(f), Some(f.len()));
            assert_eq!(f[1] >> 3 & 3, 2, "MPEG-2 at 22.05 kHz");
            // MPEG-2 side info starts with the 8-bit main_data_begin (after a CRC when the
            // protection bit is 0): 0 means the frame borrows nothing from the frames before it,
            // so a segment or a seek can start there.
            let side_info = if f[1] & 1 == 0 { 6 } else { 4 };
            assert_eq!(f[side_info], 0, "frame uses the bit reservoir");
        }
        let tag = enc.info_tag().expect("Info tag");
        assert_eq!(frame_len(&tag), Some(tag.len()));
        assert!(tag.windows(4).any(|w| w == b"Info" || w == b"Xing"));
    }

    #[test]
    fn frame_header_parsing() {
        // MPEG-1 Layer III 128 kbps 44.1 kHz, no padding: 417 bytes.
        assert_eq!(frame_len(&[0xff, 0xfb, 0x90, 0x00]), Some(417));
        // MPEG-2 Layer III 128 kbps 22.05 kHz, padded: 418 bytes.
        assert_eq!(frame_len(&[0xff, 0xf3, 0xc2, 0x00]), Some(418));
        assert_eq!(frame_len(&[0xff, 0xfb, 0xf0, 0x00]), None);
        assert_eq!(frame_len(b"ID3\x04"), None);
        assert_eq!(frame_len(&[0xff]), None);
    }
}

//! Decoding any supported source into interleaved stereo f32 with symphonia.
//!
//! Sources are untrusted: limits on sample rate, channels and length are an error kind of their
//! own ([`DecodeError::Limit`]), a packet that fails to decode becomes silence of the same length
//! (so timing holds) and too many failures in a row mark the file corrupt.

use std::fs::File;
use std::path::Path;

use symphonia::core::audio::{Channels, SampleBuffer};
use symphonia::core::codecs::{
    CodecType, DecoderOptions, CODEC_TYPE_AAC, CODEC_TYPE_ALAC, CODEC_TYPE_MP1, CODEC_TYPE_MP2,
    CODEC_TYPE_MP3, CODEC_TYPE_NULL, CODEC_TYPE_PCM_ALAW, CODEC_TYPE_PCM_F32BE,
    CODEC_TYPE_PCM_F32LE, CODEC_TYPE_PCM_F64BE, CODEC_TYPE_PCM_F64LE, CODEC_TYPE_PCM_MULAW,
    CODEC_TYPE_PCM_S16BE, CODEC_TYPE_PCM_S16LE, CODEC_TYPE_PCM_S24BE, CODEC_TYPE_PCM_S24LE,
    CODEC_TYPE_PCM_S32BE, CODEC_TYPE_PCM_S32LE, CODEC_TYPE_PCM_S8, CODEC_TYPE_PCM_U16BE,
    CODEC_TYPE_PCM_U16LE, CODEC_TYPE_PCM_U24BE, CODEC_TYPE_PCM_U24LE, CODEC_TYPE_PCM_U32BE,
    CODEC_TYPE_PCM_U32LE, CODEC_TYPE_PCM_U8,
};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::{FormatOptions, FormatReader};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::{MetadataOptions, MetadataRevision, StandardTagKey};
use symphonia::core::probe::{Hint, ProbeResult};

/// Sample rates accepted from sources.
pub const MIN_RATE: u32 = 8_000;
pub const MAX_RATE: u32 = 192_000;
/// Channels accepted from sources (downmixed to stereo).
pub const MAX_CHANNELS: usize = 8;
/// Packets in a row that may fail before the file is called corrupt.
const MAX_CONSECUTIVE_ERRORS: u32 = 50;

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("cannot open {0}")]
    Io(#[from] std::io::Error),
    #[error("not a supported audio file: {0}")]
    Unsupported(String),
    #[error("no audio track")]
    NoAudioTrack,
    #[error("outside limits: {0}")]
    Limit(String),
    #[error("corrupt audio: {0}")]
    Corrupt(String),
}

/// Tags and stream facts read from the container.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tags {
    pub title: Option<String>,
    pub artist: Option<String>,
    pub album: Option<String>,
    pub genre: Option<String>,
}

/// The interleaved PCM codecs the WAV, AIFF and CAF readers produce (fixed bytes per frame).
const PCM_CODECS: [CodecType; 20] = [
    CODEC_TYPE_PCM_S32LE,
    CODEC_TYPE_PCM_S32BE,
    CODEC_TYPE_PCM_S24LE,
    CODEC_TYPE_PCM_S24BE,
    CODEC_TYPE_PCM_S16LE,
    CODEC_TYPE_PCM_S16BE,
    CODEC_TYPE_PCM_S8,
    CODEC_TYPE_PCM_U32LE,
    CODEC_TYPE_PCM_U32BE,
    CODEC_TYPE_PCM_U24LE,
    CODEC_TYPE_PCM_U24BE,
    CODEC_TYPE_PCM_U16LE,
    CODEC_TYPE_PCM_U16BE,
    CODEC_TYPE_PCM_U8,
    CODEC_TYPE_PCM_F32LE,
    CODEC_TYPE_PCM_F32BE,
    CODEC_TYPE_PCM_F64LE,
    CODEC_TYPE_PCM_F64BE,
    CODEC_TYPE_PCM_ALAW,
    CODEC_TYPE_PCM_MULAW,
];

/// An open source, yielding stereo interleaved f32 blocks at its own rate.
pub struct SourceDecoder {
    format: Box<dyn FormatReader>,
    decoder: Box<dyn symphonia::core::codecs::Decoder>,
    track_id: u32,
    pub sample_rate: u32,
    pub channels: usize,
    pub codec: String,
    pub tags: Tags,
    buf: Option<SampleBuffer<f32>>,
    /// The layout last decoded and its stereo fold.
    layout: Channels,
    gains: Vec<(f32, f32)>,
    consecutive_errors: u32,
    /// Decoded samples still to drop at the start, and samples still to give (MP4 edit lists,
    /// which symphonia does not apply: see `media::mp4_edit`).
    skip: u64,
    keep: Option<u64>,
    /// A PCM track, whose packets hold whole frames of a fixed size: a packet's frames are
    /// counted from its bytes, since the WAV/AIFF reader gives the last packet of a truncated
    /// or piped file (data length unknown or too large) the duration of a full one.
    pcm: bool,
    /// An MPEG audio track (MP1/2/3): its frames each state their rate and channel count.
    mpeg: bool,
    /// Packet durations to decoded samples: × `.0` / `.1` (see `open`).
    rates: (u64, u64),
}

impl SourceDecoder {
    pub fn open(path: &Path) -> Result<Self, DecodeError> {
        let mut probed = probe_format(path, true)?;
        // An MPEG audio file without a LAME tag has no gapless facts, yet symphonia's gapless
        // mode still trims its packets to the stream's frame count, and without a Xing or VBRI
        // header that count is estimated from the first frame's bitrate: a VBR file would lose
        // whatever lies past the estimate (measured: 1.6 s of a 15 s file). Without a LAME tag
        // there is nothing to trim, so read such files untrimmed.
        if probed.format.tracks().iter().any(|t| {
            let p = &t.codec_params;
            [CODEC_TYPE_MP1, CODEC_TYPE_MP2, CODEC_TYPE_MP3].contains(&p.codec)
                && p.delay.is_none()
                && p.padding.is_none()
        }) {
            probed = probe_format(path, false)?;
        }
        let mut tags = Tags::default();
        if let Some(rev) = probed
            .metadata
            .get()
            .as_ref()
            .and_then(|m| m.current().cloned())
        {
            merge_tags(&mut tags, &rev);
        }
        if let Some(rev) = probed.format.metadata().current() {
            merge_tags(&mut tags, rev);
        }
        let format = probed.format;
        let track = format
            .tracks()
            .iter()
            .find(|t| {
                t.codec_params.codec != CODEC_TYPE_NULL && t.codec_params.sample_rate.is_some()
            })
            .ok_or(DecodeError::NoAudioTrack)?;
        let params = &track.codec_params;
        let declared_rate = params.sample_rate.unwrap_or(0);
        // AAC's container may state another rate and channel count than the decoder gives:
        // HE-AAC with implicit signalling states its core's (half the rate; v2: one channel),
        // and taken at a rate it was not decoded at, a track played an octave off and its
        // length was wrong. What the decoder gives is what we resample from.
        let decoded = if params.codec == CODEC_TYPE_AAC {
            first_decoded_spec(path, track.id)
        } else {
            None
        };
        let sample_rate = decoded.map_or(declared_rate, |(rate, _)| rate);
        // Packet durations are in the track's time base (an MP4's media timescale), which for
        // such a track is not the rate decoded: (numerator, denominator) to decoded samples.
        // Other codecs' durations are their samples already.
        let rates = match (decoded, params.time_base) {
            (Some(_), Some(tb)) if tb.denom > 0 => (
                u64::from(sample_rate) * u64::from(tb.numer),
                u64::from(tb.denom),
            ),
            (Some(_), _) => (u64::from(sample_rate), u64::from(declared_rate.max(1))),
            (None, _) => (1, 1),
        };
        if !(MIN_RATE..=MAX_RATE).contains(&sample_rate) {
            return Err(DecodeError::Limit(format!(
                "sample rate {sample_rate} Hz outside {MIN_RATE}..={MAX_RATE}"
            )));
        }
        let channels = decoded.map_or_else(|| params.channels.map_or(0, |c| c.count()), |d| d.1);
        if channels > MAX_CHANNELS {
            return Err(DecodeError::Limit(format!(
                "{channels} channels (at most {MAX_CHANNELS})"
            )));
        }
        let codec = super::codecs::codecs()
            .get_codec(params.codec)
            .map_or_else(|| "unknown".to_string(), |d| d.short_name.to_string());
        let decoder = super::codecs::codecs()
            .make(params, &DecoderOptions::default())
            .map_err(|e| DecodeError::Unsupported(e.to_string()))?;
        let track_id = track.id;
        let pcm = PCM_CODECS.contains(&params.codec);
        let mpeg = [CODEC_TYPE_MP1, CODEC_TYPE_MP2, CODEC_TYPE_MP3].contains(&params.codec);
        let edit = if mpeg || [CODEC_TYPE_AAC, CODEC_TYPE_ALAC].contains(&params.codec) {
            // Edit lists are in the file's timescales: converted straight to the decoded rate.
            super::mp4_edit::presentation(path, sample_rate)
        } else {
            None
        };
        // Opus's priming, which no demuxer trims for us (see `media::opus`).
        let pre_skip = super::opus::pre_skip(params);
        Ok(Self {
            format,
            decoder,
            track_id,
            sample_rate,
            channels,
            codec,
            tags,
            buf: None,
            layout: Channels::empty(),
            gains: Vec::new(),
            consecutive_errors: 0,
            skip: edit.map_or(0, |e| e.skip) + pre_skip,
            keep: edit.map(|e| e.keep),
            pcm,
            mpeg,
            rates,
        })
    }

    /// Applies the presentation window to the stereo frames appended to `out` from `start`.
    fn present(&mut self, out: &mut Vec<f32>, start: usize) {
        let frames = (out.len() - start) as u64 / 2;
        let drop = self.skip.min(frames);
        if drop > 0 {
            out.drain(start..start + drop as usize * 2);
            self.skip -= drop;
        }
        if let Some(keep) = &mut self.keep {
            let frames = (out.len() - start) as u64 / 2;
            let kept = (*keep).min(frames);
            out.truncate(start + kept as usize * 2);
            *keep -= kept;
        }
    }

    /// Counts the samples (per channel) the file decodes to, from packet durations (demuxing
    /// only, with gapless trimming and the edit list), without decoding.
    pub fn count_samples(&mut self) -> Result<u64, DecodeError> {
        let presented = scale(self.packet_samples()?, self.rates).saturating_sub(self.skip);
        Ok(self.keep.map_or(presented, |k| presented.min(k)))
    }

    /// Sum of the track's packet durations (gapless-trimmed: symphonia's `dur` is after the
    /// trims).
    fn packet_samples(&mut self) -> Result<u64, DecodeError> {
        let mut total: u64 = 0;
        // Bytes per frame, from the first PCM packet (a full one, unless the file is tiny).
        let mut frame_bytes: Option<u64> = None;
        // MPEG audio: the (rate, channels) the decoder is built for (the track's, else the
        // first frame's), and how many frames in a row have had others. symphonia's decoder
        // fails every frame that differs (two files joined with `cat`), so such a file would be
        // catalogued and then fail at every play: refuse it here, with its reason. A lone odd
        // frame (a false sync in junk data) is only a lost frame, as decoding treats it.
        let mut mpeg_format: Option<(u32, u8)> = match self.channels {
            1 | 2 => Some((self.sample_rate, self.channels as u8)),
            _ => None,
        };
        let mut odd_frames = 0u32;
        loop {
            match self.format.next_packet() {
                // `dur` is after gapless trimming already (symphonia's `trim_packet` takes the
                // trims out of it); subtracting them again lost up to a frame at each end of
                // every MP3 with a LAME tag and every Ogg Vorbis file.
                Ok(p) if p.track_id() == self.track_id => {
                    let len = p.data.len() as u64;
                    // A whole number of bytes per frame: not a first packet already cut short.
                    if self.pcm
                        && frame_bytes.is_none()
                        && p.dur > 0
                        && len >= p.dur
                        && len % p.dur == 0
                    {
                        frame_bytes = Some(len / p.dur);
                    }
                    total += match frame_bytes {
                        Some(b) => p.dur.min(len / b),
                        None => p.dur,
                    };
                    if let Some(now) = self.mpeg.then(|| mpeg_frame_format(&p.data)).flatten() {
                        let first = *mpeg_format.get_or_insert(now);
                        odd_frames = if now == first { 0 } else { odd_frames + 1 };
                        if odd_frames > MAX_CONSECUTIVE_ERRORS {
                            return Err(DecodeError::Unsupported(format!(
                                "the stream changes format mid-file ({} Hz {} ch, then {} Hz {} ch)",
                                first.0, first.1, now.0, now.1
                            )));
                        }
                    }
                }
                Ok(_) => {}
                Err(SymphoniaError::IoError(e))
                    if e.kind() == std::io::ErrorKind::UnexpectedEof =>
                {
                    return Ok(total)
                }
                Err(SymphoniaError::ResetRequired) => {
                    if !self.next_chain()? {
                        return Ok(total);
                    }
                }
                Err(SymphoniaError::DecodeError(e)) => {
                    self.consecutive_errors += 1;
                    if self.consecutive_errors > MAX_CONSECUTIVE_ERRORS {
                        return Err(DecodeError::Corrupt(e.to_string()));
                    }
                }
                Err(e) => return Err(DecodeError::Corrupt(e.to_string())),
            }
        }
    }

    /// Moves on to the next stream of a chained file (RFC 3533: Ogg streams one after the other,
    /// as `cat a.ogg b.ogg` or a recorded radio stream makes), which symphonia announces by
    /// asking for a reset. `false` when no audio follows. A chain at another sample rate is
    /// refused: the whole file is one track at one rate downstream, and cutting it short
    /// silently (as before) loses everything after the first chain.
    fn next_chain(&mut self) -> Result<bool, DecodeError> {
        let Some(track) = self.format.tracks().iter().find(|t| {
            t.codec_params.codec != CODEC_TYPE_NULL && t.codec_params.sample_rate.is_some()
        }) else {
            return Ok(false);
        };
        let rate = track.codec_params.sample_rate.unwrap_or(0);
        if rate != self.sample_rate {
            return Err(DecodeError::Unsupported(format!(
                "a chained stream changes the sample rate ({} Hz, then {rate} Hz)",
                self.sample_rate
            )));
        }
        self.decoder = super::codecs::codecs()
            .make(&track.codec_params, &DecoderOptions::default())
            .map_err(|e| DecodeError::Unsupported(e.to_string()))?;
        // Each chained Opus stream starts with its own priming.
        self.skip += super::opus::pre_skip(&track.codec_params);
        self.track_id = track.id;
        Ok(true)
    }

    /// Appends the next block of interleaved stereo samples to `out`. Returns `false` at the end
    /// of the stream.
    pub fn next_block(&mut self, out: &mut Vec<f32>) -> Result<bool, DecodeError> {
        loop {
            if self.keep == Some(0) {
                return Ok(false);
            }
            let start = out.len();
            let packet = match self.format.next_packet() {
                Ok(p) => p,
                Err(SymphoniaError::IoError(e))
                    if e.kind() == std::io::ErrorKind::UnexpectedEof =>
                {
                    return Ok(false)
                }
                Err(SymphoniaError::ResetRequired) => {
                    if self.next_chain()? {
                        continue;
                    }
                    return Ok(false);
                }
                Err(e) => return Err(DecodeError::Corrupt(e.to_string())),
            };
            if packet.track_id() != self.track_id {
                continue;
            }
            let lost = match self.decoder.decode(&packet) {
                // The rate resampled from is fixed at the start: a stream that changes it
                // (an ADTS recording switching between AAC-LC and HE-AAC) cannot go on at the
                // wrong pitch; its odd packets are lost, and if they persist the file fails.
                Ok(decoded) if decoded.spec().rate != self.sample_rate => format!(
                    "the stream changes rate mid-file ({} Hz, then {} Hz)",
                    self.sample_rate,
                    decoded.spec().rate
                ),
                Ok(decoded) => {
                    self.consecutive_errors = 0;
                    let spec = *decoded.spec();
                    // Some containers (MP4) only know the channel count once the codec runs.
                    self.channels = spec.channels.count();
                    let frames = decoded.frames();
                    if frames == 0 {
                        continue;
                    }
                    let need = decoded.capacity() as u64;
                    let buf = match &mut self.buf {
                        Some(b) if b.capacity() as u64 >= need * spec.channels.count() as u64 => b,
                        slot => slot.insert(SampleBuffer::new(need, spec)),
                    };
                    buf.copy_interleaved_ref(decoded);
                    if spec.channels != self.layout {
                        self.layout = spec.channels;
                        self.gains = stereo_gains(spec.channels);
                    }
                    to_stereo(buf.samples(), &self.gains, out);
                    self.present(out, start);
                    if out.len() == start {
                        continue; // all priming
                    }
                    return Ok(true);
                }
                Err(SymphoniaError::DecodeError(e)) => e.to_string(),
                Err(e) => return Err(DecodeError::Corrupt(e.to_string())),
            };
            self.consecutive_errors += 1;
            if self.consecutive_errors > MAX_CONSECUTIVE_ERRORS {
                return Err(DecodeError::Corrupt(lost));
            }
            // Keep timing: a lost packet is heard as silence of its (trimmed) length.
            let frames = scale(packet.dur, self.rates).min(1 << 16);
            out.extend(std::iter::repeat_n(0.0, frames as usize * 2));
            self.present(out, start);
            return Ok(true);
        }
    }
}

/// Sample rate and channel count an MPEG audio frame header states (ISO 11172-3 / 13818-3
/// §2.4.1.3): `None` if `frame` does not start with a valid header. Read by hand: symphonia
/// parses it but keeps it to itself.
fn mpeg_frame_format(frame: &[u8]) -> Option<(u32, u8)> {
    let [b0, b1, b2, b3, ..] = *frame else {
        return None;
    };
    if b0 != 0xFF || b1 & 0xE0 != 0xE0 {
        return None;
    }
    let base: u32 = *[44_100, 48_000, 32_000].get(usize::from((b2 >> 2) & 3))?;
    let rate = match (b1 >> 3) & 3 {
        3 => base,     // MPEG-1
        2 => base / 2, // MPEG-2
        0 => base / 4, // MPEG-2.5
        _ => return None,
    };
    let channels = if b3 >> 6 == 3 { 1 } else { 2 };
    Some((rate, channels))
}

/// How each channel of a layout folds into stereo: `(left, right)` gains, one per channel in the
/// decoder's interleaved order (the layout's bit order).
///
/// ITU-R BS.775 for the usual layouts: fronts as they are, centre and surrounds at −3 dB, LFE
/// dropped; channels between the sides (rear and top centres) at −6 dB to both. Gains are scaled
/// so that full scale on every channel stays full scale (no clipping). Derived from the channel
/// mask, not from positions: 5.0, quad and 7.1 put different speakers at the same index.
fn stereo_gains(layout: Channels) -> Vec<(f32, f32)> {
    const K: f32 = std::f32::consts::FRAC_1_SQRT_2;
    let left = Channels::REAR_LEFT
        | Channels::SIDE_LEFT
        | Channels::FRONT_LEFT_CENTRE
        | Channels::TOP_FRONT_LEFT
        | Channels::TOP_REAR_LEFT
        | Channels::REAR_LEFT_CENTRE
        | Channels::FRONT_LEFT_WIDE
        | Channels::FRONT_LEFT_HIGH;
    let right = Channels::REAR_RIGHT
        | Channels::SIDE_RIGHT
        | Channels::FRONT_RIGHT_CENTRE
        | Channels::TOP_FRONT_RIGHT
        | Channels::TOP_REAR_RIGHT
        | Channels::REAR_RIGHT_CENTRE
        | Channels::FRONT_RIGHT_WIDE
        | Channels::FRONT_RIGHT_HIGH;
    match layout.count() {
        0 => return Vec::new(),
        // Mono, whatever speaker it names, is heard on both sides.
        1 => return vec![(1.0, 1.0)],
        // Two channels are already left and right, whatever the container calls them.
        2 => return vec![(1.0, 0.0), (0.0, 1.0)],
        _ => {}
    }
    let mut gains: Vec<(f32, f32)> = layout
        .iter()
        .map(|c| {
            if c == Channels::FRONT_LEFT {
                (1.0, 0.0)
            } else if c == Channels::FRONT_RIGHT {
                (0.0, 1.0)
            } else if c == Channels::FRONT_CENTRE {
                (K, K)
            } else if c.intersects(Channels::LFE1 | Channels::LFE2) {
                (0.0, 0.0)
            } else if c.intersects(left) {
                (K, 0.0)
            } else if c.intersects(right) {
                (0.0, K)
            } else {
                (0.5, 0.5)
            }
        })
        .collect();
    let (sum_l, sum_r) = gains
        .iter()
        .fold((0.0, 0.0), |(l, r), (gl, gr)| (l + gl, r + gr));
    let norm = f32::max(sum_l, sum_r).max(1.0);
    for g in &mut gains {
        *g = (g.0 / norm, g.1 / norm);
    }
    gains
}

/// Interleaved samples of `gains.len()` channels to interleaved stereo.
fn to_stereo(samples: &[f32], gains: &[(f32, f32)], out: &mut Vec<f32>) {
    match gains.len() {
        0 => {}
        1 => out.extend(samples.iter().flat_map(|s| [*s, *s])),
        2 => out.extend_from_slice(samples),
        n => {
            out.reserve(samples.len() / n * 2);
            for frame in samples.chunks_exact(n) {
                let (l, r) = frame
                    .iter()
                    .zip(gains)
                    .fold((0.0, 0.0), |(l, r), (s, (gl, gr))| (l + s * gl, r + s * gr));
                out.push(l);
                out.push(r);
            }
        }
    }
}

/// `n` × `to` / `from`: a packet duration in decoded samples.
fn scale(n: u64, (to, from): (u64, u64)) -> u64 {
    if to == from {
        return n;
    }
    u64::try_from(u128::from(n) * u128::from(to) / u128::from(from.max(1))).unwrap_or(u64::MAX)
}

/// The rate and channel count the decoder really gives for track `track_id` of `path`: the
/// highest over the first packets that decode to audio (implicitly signalled SBR may start a
/// few frames in, and only ever raises the rate), read with a fresh reader and decoder, so the
/// caller's are left at the start. `None` if nothing decodes within the first packets.
fn first_decoded_spec(path: &Path, track_id: u32) -> Option<(u32, usize)> {
    const PACKETS: usize = 16;
    const DECODED: usize = 4;
    let mut probed = probe_format(path, true).ok()?;
    let track = probed.format.tracks().iter().find(|t| t.id == track_id)?;
    let mut decoder = super::codecs::codecs()
        .make(&track.codec_params, &DecoderOptions::default())
        .ok()?;
    let (mut seen, mut decoded_packets) = (0, 0);
    let mut best: Option<(u32, usize)> = None;
    while seen < PACKETS && decoded_packets < DECODED {
        let Ok(packet) = probed.format.next_packet() else {
            break;
        };
        if packet.track_id() != track_id {
            continue;
        }
        seen += 1;
        if let Ok(decoded) = decoder.decode(&packet) {
            if decoded.frames() > 0 {
                decoded_packets += 1;
                let spec = decoded.spec();
                let now = (spec.rate, spec.channels.count());
                best = Some(best.map_or(now, |b| b.max(now)));
            }
        }
    }
    best
}

/// Probes `path`'s container, with or without gapless trimming.
fn probe_format(path: &Path, gapless: bool) -> Result<ProbeResult, DecodeError> {
    let file = File::open(path)?;
    let mss = MediaSourceStream::new(Box::new(file), Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    let format_opts = FormatOptions {
        // Trims encoder delay and padding where the container says (LAME tag, iTunSMPB).
        enable_gapless: gapless,
        ..Default::default()
    };
    symphonia::default::get_probe()
        .format(&hint, mss, &format_opts, &MetadataOptions::default())
        .map_err(|e| match e {
            // Frame-sync formats (no header to point past the end): the probe read to the end
            // without finding one frame it accepts, which is not a file cut short.
            SymphoniaError::IoError(io)
                if io.kind() == std::io::ErrorKind::UnexpectedEof
                    && has_extension(path, &FRAME_SYNC)
                    && !id3_runs_past_end(path) =>
            {
                DecodeError::Corrupt(
                    "no valid audio frame found in it (damaged, or a variant we cannot read)"
                        .into(),
                )
            }
            // An audio file whose header points past its end (an MP4 whose index comes first,
            // an MP3 whose cover art is not all there, half copied): say so, not
            // "unsupported". Other files end this way too (a cover image's bytes look like an
            // MPEG sync to the probe), so only for audio file names.
            SymphoniaError::IoError(io)
                if io.kind() == std::io::ErrorKind::UnexpectedEof && has_audio_extension(path) =>
            {
                DecodeError::Corrupt("the file ends early (truncated or still being copied)".into())
            }
            // The probe found no reader for it (it reads to the end looking for a sync):
            // say what we read, which "end of stream" did not (WMA, AC-3, WavPack, images).
            SymphoniaError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
                DecodeError::Unsupported(UNRECOGNISED.into())
            }
            // Only the probe's own verdict: a reader that recognised its container says what
            // in it is unsupported ("wav: unsupported wave format"), which is the better reason.
            SymphoniaError::Unsupported(why) if why.contains("no suitable format reader") => {
                DecodeError::Unsupported(UNRECOGNISED.into())
            }
            e => DecodeError::Unsupported(e.to_string()),
        })
}

/// Why a file no reader recognises is skipped.
const UNRECOGNISED: &str = "not in a format we read (MP3, MP2, MP1, FLAC, WAV, AIFF, CAF, \
     MP4/M4A, ADTS AAC, Ogg, Matroska/WebM)";

/// Whether the file starts with an ID3v2 tag that claims more bytes than the file has (a copy
/// cut short in its cover art: the frames never came).
fn id3_runs_past_end(path: &Path) -> bool {
    use std::io::Read as _;
    let mut head = [0u8; 10];
    let Ok(mut f) = File::open(path) else {
        return false;
    };
    if f.read_exact(&mut head).is_err() || &head[..3] != b"ID3" {
        return false;
    }
    // Syncsafe size (7 bits per byte), after the 10-byte header (and a 10-byte footer, flag 0x10).
    let size = head[6..10]
        .iter()
        .fold(0u64, |acc, b| (acc << 7) | u64::from(b & 0x7F));
    let footer = if head[5] & 0x10 != 0 { 10 } else { 0 };
    f.metadata().is_ok_and(|m| 10 + size + footer > m.len())
}

/// Whether `path` is named as an audio file of a container we read.
fn has_audio_extension(path: &Path) -> bool {
    const AUDIO: [&str; 20] = [
        "mp3", "mp2", "mp1", "m4a", "m4b", "mp4", "aac", "flac", "wav", "wave", "aif", "aiff",
        "aifc", "ogg", "oga", "opus", "webm", "mka", "mkv", "caf",
    ];
    has_extension(path, &AUDIO)
}

/// Raw streams of frames, each found by its sync word (MPEG audio, ADTS AAC).
const FRAME_SYNC: [&str; 4] = ["mp3", "mp2", "mp1", "aac"];

fn has_extension(path: &Path, names: &[&str]) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| names.iter().any(|a| a.eq_ignore_ascii_case(e)))
}

fn merge_tags(tags: &mut Tags, rev: &MetadataRevision) {
    for tag in rev.tags() {
        let slot = match tag.std_key {
            Some(StandardTagKey::TrackTitle) => &mut tags.title,
            Some(StandardTagKey::Artist) => &mut tags.artist,
            Some(StandardTagKey::AlbumArtist) if tags.artist.is_none() => &mut tags.artist,
            Some(StandardTagKey::Album) => &mut tags.album,
            Some(StandardTagKey::Genre) => &mut tags.genre,
            _ => continue,
        };
        let value = tag.value.to_string();
        let value = value.trim_matches(char::from(0)).trim();
        if slot.is_none() && !value.is_empty() {
            *slot = Some(value.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fold(layout: Channels, frame: &[f32]) -> (f32, f32) {
        let mut out = Vec::new();
        to_stereo(frame, &stereo_gains(layout), &mut out);
        assert_eq!(out.len(), 2);
        (out[0], out[1])
    }

    const FIVE_ONE: Channels = Channels::FRONT_LEFT
        .union(Channels::FRONT_RIGHT)
        .union(Channels::FRONT_CENTRE)
        .union(Channels::LFE1)
        .union(Channels::SIDE_LEFT)
        .union(Channels::SIDE_RIGHT);

    #[test]
    fn mono_is_upmixed() {
        let mut out = Vec::new();
        to_stereo(
            &[0.5, -0.25],
            &stereo_gains(Channels::FRONT_CENTRE),
            &mut out,
        );
        assert_eq!(out, [0.5, 0.5, -0.25, -0.25]);
    }

    #[test]
    fn surround_downmix_stays_in_range() {
        let (l, r) = fold(FIVE_ONE, &[1.0; 6]);
        assert!((l - 1.0).abs() < 1e-6 && (r - 1.0).abs() < 1e-6, "{l} {r}");
    }

    #[test]
    fn each_speaker_lands_on_its_side() {
        // 5.1 (L R C LFE Ls Rs): the LFE is dropped, surrounds go to their side only.
        let (l, r) = fold(FIVE_ONE, &[0.0, 0.0, 0.0, 1.0, 0.0, 0.0]);
        assert_eq!((l, r), (0.0, 0.0), "LFE dropped");
        let (l, r) = fold(FIVE_ONE, &[0.0, 0.0, 0.0, 0.0, 0.0, 1.0]);
        assert!(l == 0.0 && r > 0.0, "right surround on the right: {l} {r}");
        // Quad (L R Ls Rs): index 2 is the left surround, not a centre (it was folded into both
        // sides when the layout was guessed from positions).
        let quad = Channels::FRONT_LEFT
            | Channels::FRONT_RIGHT
            | Channels::REAR_LEFT
            | Channels::REAR_RIGHT;
        let (l, r) = fold(quad, &[0.0, 0.0, 1.0, 0.0]);
        assert!(l > 0.0 && r == 0.0, "rear left on the left: {l} {r}");
        // 5.0 (L R C Ls Rs): index 3 is the left surround, not an LFE to drop.
        let five = FIVE_ONE - Channels::LFE1;
        let (l, r) = fold(five, &[0.0, 0.0, 0.0, 1.0, 0.0]);
        assert!(
            l > 0.0 && r == 0.0,
            "surround left kept, on the left: {l} {r}"
        );
        // The centre is heard equally on both sides.
        let (l, r) = fold(five, &[0.0, 0.0, 1.0, 0.0, 0.0]);
        assert!(l > 0.0 && (l - r).abs() < 1e-6);
        // Full scale everywhere stays within full scale on any layout.
        let wide = Channels::from_bits_truncate(0x0003_FFFF);
        let (l, r) = fold(wide, &vec![1.0; wide.count()]);
        assert!(l <= 1.0 + 1e-6 && r <= 1.0 + 1e-6, "{l} {r}");
    }

    #[test]
    fn garbage_is_unsupported() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.mp3");
        std::fs::write(&p, b"this is not audio at all, just text pretending").unwrap();
        assert!(matches!(
            SourceDecoder::open(&p),
            Err(DecodeError::Unsupported(_))
        ));
        // A format no reader knows, under its own name: the reason says what is read.
        let wma = dir.path().join("x.wma");
        std::fs::write(&wma, [0x30u8, 0x26, 0xB2, 0x75].repeat(2048)).unwrap();
        let Err(e) = SourceDecoder::open(&wma) else {
            panic!("not audio we read")
        };
        assert!(
            e.to_string().contains("not in a format we read (MP3"),
            "{e}"
        );
        // MPEG frames none of which is valid (Layer II mono at 384 kbit/s, which the standard
        // does not allow and ffmpeg's default makes) are damaged audio, not a file cut short.
        let invalid = dir.path().join("mono384.mp2");
        let mut frame = vec![0xFF, 0xFD, 0xE0, 0xC0];
        frame.resize(1253, 0);
        std::fs::write(&invalid, frame.repeat(20)).unwrap();
        let Err(e) = SourceDecoder::open(&invalid) else {
            panic!("no frame to decode")
        };
        assert!(e.to_string().contains("no valid audio frame"), "{e}");
        // An MP3 cut short inside its cover art (an ID3 tag claiming 1 MiB, 4 KiB there) ends
        // early: it is the copy that failed, not the audio.
        let cut = dir.path().join("cut-cover.mp3");
        let mut bytes = b"ID3\x03\x00\x00\x00\x40\x00\x00".to_vec();
        bytes.resize(4096, 0);
        std::fs::write(&cut, bytes).unwrap();
        assert!(id3_runs_past_end(&cut));
        assert!(!id3_runs_past_end(&invalid));
        let Err(e) = SourceDecoder::open(&cut) else {
            panic!("no frame at all")
        };
        assert!(e.to_string().contains("ends early"), "{e}");
        // A container we read holding a codec we do not (GSM 6.10 in WAV): its reader's own
        // reason, not "not in a format we read".
        let gsm = dir.path().join("gsm.wav");
        let mut wav = b"RIFF\x00\x00\x00\x00WAVEfmt \x14\x00\x00\x00".to_vec();
        wav.extend_from_slice(&[
            0x31, 0, 1, 0, 0x40, 0x1F, 0, 0, 0x59, 0x06, 0, 0, 65, 0, 0, 0,
        ]);
        wav.extend_from_slice(&[2, 0, 0x40, 0x01]);
        wav.extend_from_slice(b"data\x00\x10\x00\x00");
        wav.resize(wav.len() + 4096, 0);
        let riff = (wav.len() - 8) as u32;
        wav[4..8].copy_from_slice(&riff.to_le_bytes());
        std::fs::write(&gsm, wav).unwrap();
        let Err(e) = SourceDecoder::open(&gsm) else {
            panic!("GSM is not decoded")
        };
        assert!(!e.to_string().contains("not in a format we read"), "{e}");
    }

    /// A WAV cut short (copy in progress, a crashed recorder) or piped (its data length is
    /// unknown): the reader gives the last packet a full packet's duration, whatever it holds.
    /// The count is what the bytes hold, and what decoding gives.
    #[test]
    fn a_cut_wav_counts_the_frames_it_holds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cut.wav");
        super::super::testutil::write_wav(&path, 44100, 2, 2.0);
        let bytes = std::fs::read(&path).unwrap();
        // 1.5 s and 300 frames of 4 bytes after the 44-byte header: not a whole packet.
        let frames = 66_150 + 300;
        std::fs::write(&path, &bytes[..44 + frames * 4]).unwrap();
        let mut dec = SourceDecoder::open(&path).unwrap();
        assert_eq!(dec.count_samples().unwrap(), frames as u64);
        let mut dec = SourceDecoder::open(&path).unwrap();
        let mut out = Vec::new();
        while dec.next_block(&mut out).unwrap() {}
        assert_eq!(out.len() / 2, frames);
        // Half a frame more changes nothing.
        std::fs::write(&path, &bytes[..44 + frames * 4 + 2]).unwrap();
        let mut dec = SourceDecoder::open(&path).unwrap();
        assert_eq!(dec.count_samples().unwrap(), frames as u64);
    }

    #[test]
    fn mpeg_headers_state_their_rate_and_channels() {
        // MPEG-1 layer III, 44.1 kHz, joint stereo; MPEG-2 22.05 kHz mono; MPEG-2.5 8 kHz.
        assert_eq!(
            mpeg_frame_format(&[0xFF, 0xFB, 0x90, 0x64]),
            Some((44_100, 2))
        );
        assert_eq!(
            mpeg_frame_format(&[0xFF, 0xF3, 0x80, 0xC4]),
            Some((22_050, 1))
        );
        assert_eq!(
            mpeg_frame_format(&[0xFF, 0xE3, 0x88, 0x00]),
            Some((8_000, 2))
        );
        // Reserved rate index or version, no sync, too short.
        assert_eq!(mpeg_frame_format(&[0xFF, 0xFB, 0x9C, 0x64]), None);
        assert_eq!(mpeg_frame_format(&[0xFF, 0xEB, 0x90, 0x64]), None);
        assert_eq!(mpeg_frame_format(&[0xFE, 0xFB, 0x90, 0x64]), None);
        assert_eq!(mpeg_frame_format(&[0xFF, 0xFB]), None);
    }
}

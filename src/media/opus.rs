//! Opus decoding, plugged into symphonia's codec registry.
//!
//! symphonia 0.5 demuxes Opus (Ogg `.opus`, WebM/Matroska `A_OPUS`: the format `yt-dlp` and
//! most podcast and voice tools write) but ships no decoder for it, so such files were skipped
//! as unsupported. The decoding itself is the `rusty-opus` crate (pure Rust, bit-exact on the
//! RFC 8251 test vectors, no C toolchain: libopus bindings would add cmake or a system library
//! to the build of a server whose quick start is one command; the `opus-decoder` crate, tried
//! first, panicked on stereo CELT frames of a libopus 5.1 file). This module is only the adapter: it
//! reads the stream's identification header (RFC 7845 §5.1) for the channel mapping and the
//! output gain, and hands symphonia one buffer per packet, trimmed as the demuxer asks.
//!
//! The pre-skip (the encoder's priming, 312 samples from libopus) is not dropped here: the
//! demuxers do not turn it into packet trims, so [`pre_skip`] tells the caller how much to
//! drop, as it does for an MP4 edit list.

use rusty_opus::OpusDecoder as Single;
use symphonia::core::audio::{
    AsAudioBufferRef, AudioBuffer, AudioBufferRef, Channels, Signal, SignalSpec,
};
use symphonia::core::codecs::{
    CodecDescriptor, CodecParameters, Decoder, DecoderOptions, FinalizeResult, CODEC_TYPE_OPUS,
};
use symphonia::core::errors::{decode_error, unsupported_error, Result};
use symphonia::core::formats::Packet;

/// Opus always decodes at 48 kHz (RFC 7845 §5.1: the header's "input sample rate" is only
/// informational).
const RATE: u32 = 48_000;
/// Longest packet: 120 ms at 48 kHz (RFC 6716 §3.2.5).
const MAX_FRAMES: usize = 5760;

/// What the identification header ("OpusHead") says.
#[derive(Debug, Clone, PartialEq)]
pub struct OpusHead {
    pub channels: usize,
    /// Samples at 48 kHz to drop at the start.
    pub pre_skip: u16,
    /// Gain to apply to the output, Q7.8 dB.
    pub output_gain: i16,
    /// Channel mapping family: 0 (mono or stereo), 1 (Vorbis order, up to 8), 255 (unordered).
    pub family: u8,
    /// `None` for mapping family 0 (one stream, mono or stereo).
    pub streams: Option<StreamMap>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StreamMap {
    pub streams: usize,
    pub coupled: usize,
    pub mapping: Vec<u8>,
}

impl OpusHead {
    /// Parses the header (RFC 7845 §5.1). `None` if it is not one we can decode.
    pub fn parse(b: &[u8]) -> Option<Self> {
        if b.len() < 19 || &b[..8] != b"OpusHead" || b[8] >> 4 != 0 {
            return None;
        }
        let channels = usize::from(b[9]);
        let pre_skip = u16::from_le_bytes([b[10], b[11]]);
        let output_gain = i16::from_le_bytes([b[16], b[17]]);
        let streams = match b[18] {
            0 if (1..=2).contains(&channels) => None,
            // Family 1 (Vorbis order, up to 8 channels) and 255 (unordered) carry a table.
            1 | 255 if channels >= 1 => {
                let table = b.get(19..21 + channels)?;
                let (streams, coupled) = (usize::from(table[0]), usize::from(table[1]));
                let mapping = table[2..].to_vec();
                if streams == 0
                    || coupled > streams
                    || mapping
                        .iter()
                        .any(|&m| m != 255 && usize::from(m) >= streams + coupled)
                {
                    return None;
                }
                Some(StreamMap {
                    streams,
                    coupled,
                    mapping,
                })
            }
            _ => return None,
        };
        Some(Self {
            channels,
            pre_skip,
            output_gain,
            family: b[18],
            streams,
        })
    }
}

/// The layout handed to symphonia, and for each decoded channel the plane it goes to.
/// symphonia orders a buffer's planes by speaker bit (FL, FR, FC, LFE, RL, RR, …), and so does
/// our stereo fold; Opus decodes in the Vorbis order (RFC 7845 §5.1.1.2: FL, FC, FR, …), which
/// symphonia's own Vorbis decoder reorders for its planes: taken plane for plane, a 5.1 file's
/// centre would be heard on the right and its right surround on the left. Family 255 names no
/// speakers: its channels take the first positions, in order.
fn planes(head: &OpusHead) -> (Channels, Vec<usize>) {
    use Channels as C;
    let (fl, fr, fc, lfe) = (C::FRONT_LEFT, C::FRONT_RIGHT, C::FRONT_CENTRE, C::LFE1);
    let (rl, rr, sl, sr, rc) = (
        C::REAR_LEFT,
        C::REAR_RIGHT,
        C::SIDE_LEFT,
        C::SIDE_RIGHT,
        C::REAR_CENTRE,
    );
    let speakers: &[Channels] = match (head.family, head.channels) {
        (255, _) => &[],
        (_, 1) => &[fc],
        (_, 2) => &[fl, fr],
        (_, 3) => &[fl, fc, fr],
        (_, 4) => &[fl, fr, rl, rr],
        (_, 5) => &[fl, fc, fr, rl, rr],
        (_, 6) => &[fl, fc, fr, rl, rr, lfe],
        (_, 7) => &[fl, fc, fr, sl, sr, rc, lfe],
        (_, 8) => &[fl, fc, fr, sl, sr, rl, rr, lfe],
        _ => &[],
    };
    super::codecs::speaker_planes(speakers)
        .filter(|_| !speakers.is_empty())
        .unwrap_or_else(|| {
            let n = head.channels.min(32);
            let layout = C::from_bits_truncate(((1u64 << n) - 1) as u32);
            (layout, (0..n).collect())
        })
}

/// Samples to drop at the start of a track of these parameters (its pre-skip), 0 if it is not
/// Opus.
pub fn pre_skip(params: &CodecParameters) -> u64 {
    if params.codec != CODEC_TYPE_OPUS {
        return 0;
    }
    params
        .extra_data
        .as_deref()
        .and_then(OpusHead::parse)
        .map_or(0, |h| u64::from(h.pre_skip))
}

/// One decoder per elementary stream of the packet: family 0 has one (mono or stereo), the
/// surround families one per coupled (stereo) stream, then one per mono stream.
struct Streams {
    decoders: Vec<OpusStream>,
    /// For each output channel: `None` silent, else (stream, channel within it).
    routes: Vec<Option<(usize, usize)>>,
    /// Standard packets of the current multistream packet (reused).
    parts: Vec<Vec<u8>>,
}

/// One elementary stream's decoder and what it last decoded.
struct OpusStream {
    decoder: Single,
    channels: usize,
    pcm: Vec<f32>,
}

impl Streams {
    fn new(head: &OpusHead) -> std::result::Result<Self, rusty_opus::Error> {
        let (map, streams, coupled) = match &head.streams {
            None => ((0..head.channels as u8).collect(), 1, head.channels / 2),
            Some(m) => (m.mapping.clone(), m.streams, m.coupled),
        };
        let decoders = (0..streams)
            .map(|s| {
                let channels = if s < coupled { 2 } else { 1 };
                Ok(OpusStream {
                    decoder: Single::new(RATE as i32, channels)?,
                    channels,
                    pcm: vec![0.0; MAX_FRAMES * channels],
                })
            })
            .collect::<std::result::Result<Vec<_>, rusty_opus::Error>>()?;
        // RFC 7845 §5.1.1: index 255 is silence; below 2 × coupled, the left or right of
        // coupled stream index / 2; above, mono stream index − coupled.
        let routes = map
            .iter()
            .map(|&m| {
                let m = usize::from(m);
                match m {
                    255 => None,
                    m if m < 2 * coupled => Some((m / 2, m % 2)),
                    m => Some((m - coupled, 0)),
                }
            })
            .collect();
        Ok(Self {
            decoders,
            routes,
            parts: Vec::new(),
        })
    }

    /// Decodes one packet into each stream's buffer; returns the frames decoded.
    fn decode(&mut self, packet: &[u8]) -> Option<usize> {
        let n = self.decoders.len();
        let mut frames = usize::MAX;
        if n == 1 {
            let d = &mut self.decoders[0];
            frames = d.decoder.decode(packet, MAX_FRAMES, &mut d.pcm).ok()?;
        } else {
            // All streams but the last are self-delimited (RFC 6716 Appendix B).
            self.parts.resize_with(n, Vec::new);
            let mut rest = packet;
            for part in &mut self.parts[..n - 1] {
                let used = undelimit(rest, part)?;
                rest = &rest[used..];
            }
            self.parts[n - 1].clear();
            self.parts[n - 1].extend_from_slice(rest);
            for (d, part) in self.decoders.iter_mut().zip(&self.parts) {
                frames = frames.min(d.decoder.decode(part, MAX_FRAMES, &mut d.pcm).ok()?);
            }
        }
        Some(frames.min(MAX_FRAMES))
    }

    /// Output channel `ch`'s sample of frame `f` of the last packet (silence for a channel the
    /// mapping leaves out).
    fn sample(&self, ch: usize, f: usize) -> f32 {
        match self.routes[ch] {
            Some((s, c)) => {
                let d = &self.decoders[s];
                d.pcm[f * d.channels + c]
            }
            None => 0.0,
        }
    }

    fn reset(&mut self) {
        for d in &mut self.decoders {
            if let Ok(fresh) = Single::new(RATE as i32, d.channels) {
                d.decoder = fresh;
            }
        }
    }
}

/// Reads a 1–2 byte frame length (RFC 6716 §3.2.1): `(length, bytes read)`.
fn frame_len(b: &[u8]) -> Option<(usize, usize)> {
    match *b.first()? {
        x @ 0..=251 => Some((usize::from(x), 1)),
        x => Some((usize::from(x) + 4 * usize::from(*b.get(1)?), 2)),
    }
}

/// Turns the self-delimited packet at the start of `data` (RFC 6716 Appendix B: the framing of
/// every stream but the last in a multistream packet) into a standard one in `out`, by
/// dropping the extra length it carries; returns the bytes it spans in `data`. `None` if it
/// is malformed. Written by hand so that the stream's own channel mapping table is followed
/// (`rusty-opus`'s multistream decoder assumes the standard table for the channel count).
fn undelimit(data: &[u8], out: &mut Vec<u8>) -> Option<usize> {
    let toc = *data.first()?;
    let mut at = 1;
    let mut sizes = Vec::new();
    let mut pad = 0usize;
    let (count, cbr) = match toc & 3 {
        0 => (1, true),
        1 => (2, true),
        2 => {
            let (n, used) = frame_len(&data[at..])?;
            at += used;
            sizes.push(n);
            (2, false)
        }
        _ => {
            let ch = *data.get(at)?;
            at += 1;
            let count = usize::from(ch & 0x3f);
            if count == 0 {
                return None;
            }
            if ch & 0x40 != 0 {
                loop {
                    let p = *data.get(at)?;
                    at += 1;
                    pad += if p == 255 { 254 } else { usize::from(p) };
                    if p != 255 {
                        break;
                    }
                }
            }
            let cbr = ch & 0x80 == 0;
            if !cbr {
                for _ in 0..count - 1 {
                    let (n, used) = frame_len(&data[at..])?;
                    at += used;
                    sizes.push(n);
                }
            }
            (count, cbr)
        }
    };
    // The extra length: the last frame's (every frame's, when they are all one size).
    let extra_at = at;
    let (last, used) = frame_len(data.get(at..)?)?;
    at += used;
    let body: usize = if cbr {
        last * count
    } else {
        sizes.iter().sum::<usize>() + last
    };
    let end = at.checked_add(body)?.checked_add(pad)?;
    if end > data.len() {
        return None;
    }
    out.clear();
    out.extend_from_slice(&data[..extra_at]);
    out.extend_from_slice(&data[at..end]);
    Some(end)
}

/// A symphonia [`Decoder`] for Opus.
pub struct OpusDecoder {
    params: CodecParameters,
    streams: Streams,
    /// The plane of each decoded channel (see [`planes`]).
    planes: Vec<usize>,
    gain: f32,
    buf: AudioBuffer<f32>,
}

impl Decoder for OpusDecoder {
    fn try_new(params: &CodecParameters, _: &DecoderOptions) -> Result<Self> {
        if params.codec != CODEC_TYPE_OPUS {
            return unsupported_error("opus: not an Opus stream");
        }
        let Some(head) = params.extra_data.as_deref().and_then(OpusHead::parse) else {
            return unsupported_error("opus: missing or unsupported identification header");
        };
        // The header is the authority on channels (Matroska's own element may be missing).
        let (layout, planes) = planes(&head);
        let Ok(streams) = Streams::new(&head) else {
            return unsupported_error("opus: unsupported channel mapping");
        };
        Ok(Self {
            params: params.clone(),
            streams,
            planes,
            gain: 10f32.powf(f32::from(head.output_gain) / (20.0 * 256.0)),
            buf: AudioBuffer::new(MAX_FRAMES as u64, SignalSpec::new(RATE, layout)),
        })
    }

    fn supported_codecs() -> &'static [CodecDescriptor] {
        &[CodecDescriptor {
            codec: CODEC_TYPE_OPUS,
            short_name: "opus",
            long_name: "Opus",
            inst_func: |params, options| Ok(Box::new(OpusDecoder::try_new(params, options)?)),
        }]
    }

    fn reset(&mut self) {
        self.streams.reset();
    }

    fn codec_params(&self) -> &CodecParameters {
        &self.params
    }

    fn decode(&mut self, packet: &Packet) -> Result<AudioBufferRef<'_>> {
        self.buf.clear();
        // An empty packet would ask for loss concealment: a demuxer never means that.
        if packet.buf().is_empty() {
            return decode_error("opus: empty packet");
        }
        let Some(frames) = self.streams.decode(packet.buf()) else {
            return decode_error("opus: invalid packet");
        };
        self.buf.render_reserved(Some(frames));
        for (ch, &plane) in self.planes.iter().enumerate() {
            for (f, s) in self.buf.chan_mut(plane).iter_mut().enumerate() {
                *s = self.streams.sample(ch, f) * self.gain;
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

    fn head(channels: u8, family: u8, table: &[u8]) -> Vec<u8> {
        let mut b = b"OpusHead".to_vec();
        b.push(1);
        b.push(channels);
        b.extend_from_slice(&312u16.to_le_bytes());
        b.extend_from_slice(&44_100u32.to_le_bytes());
        b.extend_from_slice(&(-256i16).to_le_bytes());
        b.push(family);
        b.extend_from_slice(table);
        b
    }

    #[test]
    fn identification_headers_are_read_and_bad_ones_refused() {
        let stereo = OpusHead::parse(&head(2, 0, &[])).expect("stereo");
        assert_eq!(
            stereo,
            OpusHead {
                channels: 2,
                pre_skip: 312,
                output_gain: -256,
                family: 0,
                streams: None
            }
        );
        // 5.1: four streams, two coupled, Vorbis order.
        let surround = OpusHead::parse(&head(6, 1, &[4, 2, 0, 4, 1, 2, 3, 5])).expect("5.1");
        assert_eq!(
            surround.streams,
            Some(StreamMap {
                streams: 4,
                coupled: 2,
                mapping: vec![0, 4, 1, 2, 3, 5]
            })
        );
        // Family 0 is mono or stereo only; the table must be whole and point at real streams;
        // an unknown major version or family is refused.
        assert!(OpusHead::parse(&head(3, 0, &[])).is_none());
        assert!(OpusHead::parse(&head(6, 1, &[4, 2, 0, 4])).is_none());
        assert!(OpusHead::parse(&head(2, 1, &[1, 1, 0, 7])).is_none());
        assert!(OpusHead::parse(&head(2, 2, &[])).is_none());
        let mut v2 = head(2, 0, &[]);
        v2[8] = 0x10;
        assert!(OpusHead::parse(&v2).is_none());
        assert!(OpusHead::parse(b"OpusHead").is_none());
        assert!(OpusHead::parse(&head(2, 0, &[])[..18]).is_none());
    }

    #[test]
    fn channels_land_on_symphonias_planes() {
        let parse =
            |channels, family, table: &[u8]| OpusHead::parse(&head(channels, family, table));
        // 5.1 in the Vorbis order FL FC FR RL RR LFE; symphonia's planes FL FR FC LFE RL RR.
        let (layout, planes) = super::planes(&parse(6, 1, &[4, 2, 0, 4, 1, 2, 3, 5]).unwrap());
        assert_eq!(layout.count(), 6);
        assert_eq!(planes, [0, 2, 1, 4, 5, 3]);
        let (_, planes) = super::planes(&parse(3, 1, &[2, 1, 0, 2, 1]).unwrap());
        assert_eq!(planes, [0, 2, 1], "FL FC FR");
        let (layout, planes) = super::planes(&parse(2, 0, &[]).unwrap());
        assert_eq!(
            (layout, planes),
            (Channels::FRONT_LEFT | Channels::FRONT_RIGHT, vec![0, 1])
        );
        // Unordered (255): the channels keep their order.
        let (layout, planes) = super::planes(&parse(3, 255, &[3, 0, 0, 1, 2]).unwrap());
        assert_eq!((layout.count(), planes), (3, vec![0, 1, 2]));
    }

    /// RFC 6716 §3.2.1's 1–2 byte length.
    fn len_bytes(n: usize) -> Vec<u8> {
        if n < 252 {
            vec![n as u8]
        } else {
            let first = 252 + (n - 252) % 4;
            vec![first as u8, ((n - first) / 4) as u8]
        }
    }

    /// One packet in both framings, built from its parts: (standard, self-delimited).
    fn framings(toc: u8, frames: &[Vec<u8>], vbr: bool, pad: usize) -> (Vec<u8>, Vec<u8>) {
        let code = toc & 3;
        let mut head = vec![toc];
        let mut lengths = Vec::new();
        match code {
            0 | 1 => {}
            2 => head.extend(len_bytes(frames[0].len())),
            _ => {
                let mut ch = frames.len() as u8;
                if vbr {
                    ch |= 0x80;
                }
                if pad > 0 {
                    ch |= 0x40;
                }
                head.push(ch);
                if pad > 0 {
                    let mut left = pad;
                    while left >= 255 {
                        head.push(255);
                        left -= 254;
                    }
                    head.push(left as u8);
                }
                if vbr {
                    for f in &frames[..frames.len() - 1] {
                        lengths.extend(len_bytes(f.len()));
                    }
                }
            }
        }
        let extra = len_bytes(frames[frames.len() - 1].len());
        let body: Vec<u8> = frames.concat();
        let tail = vec![0u8; if code == 3 { pad } else { 0 }];
        let standard = [head.clone(), lengths.clone(), body.clone(), tail.clone()].concat();
        let delimited = [head, lengths, extra, body, tail].concat();
        (standard, delimited)
    }

    #[test]
    fn self_delimited_packets_of_every_code_become_standard_ones() {
        let f = |n: usize, b: u8| vec![b; n];
        let cases = [
            (0b1111_1000, vec![f(120, 1)], false, 0),
            (0b1111_1001, vec![f(300, 2), f(300, 3)], false, 0),
            (0b1111_1010, vec![f(260, 4), f(7, 5)], false, 0),
            (0b1111_1011, vec![f(40, 6), f(40, 7), f(40, 8)], false, 3),
            (0b1111_1011, vec![f(40, 6), f(400, 7), f(1, 8)], true, 600),
        ];
        for (toc, frames, vbr, pad) in cases {
            let (standard, delimited) = framings(toc, &frames, vbr, pad);
            // The next stream's bytes follow: they are not part of this one.
            let data = [delimited.clone(), vec![0xAB; 9]].concat();
            let mut out = Vec::new();
            assert_eq!(
                undelimit(&data, &mut out),
                Some(delimited.len()),
                "code {}",
                toc & 3
            );
            assert_eq!(out, standard, "code {}", toc & 3);
        }
    }

    proptest::proptest! {
        /// Any packet survives the round trip, and any cut of one is refused, never misread.
        #[test]
        fn undelimit_inverts_the_framing_and_refuses_cuts(
            config in 0u8..32,
            code in 0u8..4,
            sizes in proptest::collection::vec(0usize..1276, 1..6),
            vbr: bool,
            pad in 0usize..700,
            cut in 0usize..4000,
        ) {
            let toc = config << 3 | code;
            let frames: Vec<Vec<u8>> = match code {
                0 => vec![vec![0x11; sizes[0]]],
                1 => vec![vec![0x22; sizes[0]]; 2],
                2 => vec![vec![0x33; sizes[0]], vec![0x44; *sizes.get(1).unwrap_or(&3)]],
                _ if vbr => sizes.iter().map(|&n| vec![0x55; n]).collect(),
                _ => vec![vec![0x66; sizes[0]]; sizes.len()],
            };
            let (standard, delimited) = framings(toc, &frames, vbr && code == 3, pad);
            let mut out = Vec::new();
            proptest::prop_assert_eq!(undelimit(&delimited, &mut out), Some(delimited.len()));
            proptest::prop_assert_eq!(&out, &standard);
            let cut = cut % delimited.len();
            proptest::prop_assert_eq!(undelimit(&delimited[..cut], &mut out), None);
        }
    }
}

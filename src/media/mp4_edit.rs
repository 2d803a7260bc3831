//! What part of an MP4/M4A audio track is to be heard: its edit list.
//!
//! AAC encoders prime: an M4A holds 1024–2112 samples of priming before the music and up to a
//! frame of padding after it, and says so in the audio track's edit list (`moov/trak/edts/elst`:
//! start at `media_time`, play `segment_duration`). Players (and ffmpeg) apply it; a decoder that
//! does not plays ~23–45 ms of silence first and counts it in the duration. symphonia 0.5 parses
//! `elst` but neither exposes nor applies it, so the few boxes needed are read here by hand.
//! Files made by iTunes and Apple's encoders say the same in a note instead
//! (`moov/udta/meta/ilst/----` named `iTunSMPB`: priming, padding and the original length, in
//! hex), read when the audio track has no edit list. Anything unexpected (several edits, a rate
//! other than 1, a malformed note, truncated or oversized boxes) gives `None`: the track is
//! then decoded whole, as before.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// The presented part of the first audio track, in samples at `sample_rate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Presentation {
    /// Decoded samples to drop at the start (priming).
    pub skip: u64,
    /// Samples to keep after those (the rest is padding).
    pub keep: u64,
}

/// Box payloads read into memory (`mvhd`, `mdhd`, `hdlr`, `elst`) are small; a bigger one is
/// not a file we understand.
const MAX_LEAF: u64 = 64 * 1024;

/// The edit list of `path`'s first audio track (or, without one, its `iTunSMPB` note),
/// converted to samples at `sample_rate`.
pub fn presentation(path: &Path, sample_rate: u32) -> Option<Presentation> {
    let mut file = File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    let moov = find_child(&mut file, 0, len, b"moov")?;
    let mvhd = find_child(&mut file, moov.0, moov.1, b"mvhd")?;
    let movie_scale = timescale(&read_leaf(&mut file, mvhd)?)?;
    let mut at = moov.0;
    while let Some((start, end)) = next_child(&mut file, &mut at, moov.1, b"trak") {
        if let Some(p) = audio_track(&mut file, start, end, movie_scale, sample_rate) {
            return Some(p);
        }
        if !is_audio(&mut file, start, end) {
            continue;
        }
        // The first audio track has no usable edit list.
        break;
    }
    itunes_smpb(&mut file, moov)
}

/// iTunes's gapless note: ` 00000000 PRIMING PADDING LENGTH …` (hex), in samples of the track.
fn itunes_smpb(file: &mut File, moov: (u64, u64)) -> Option<Presentation> {
    let udta = find_child(file, moov.0, moov.1, b"udta")?;
    let meta = find_child(file, udta.0, udta.1, b"meta")?;
    // `meta` is a full box in MP4 files (version and flags before its children), a plain box
    // in QuickTime ones, whose first child is its `hdlr`.
    let plain = box_header(file, meta.0, meta.1).is_some_and(|(kind, _, _)| &kind == b"hdlr");
    let children = if plain { meta.0 } else { meta.0 + 4 };
    let ilst = find_child(file, children, meta.1, b"ilst")?;
    let mut at = ilst.0;
    while let Some(item) = next_child(file, &mut at, ilst.1, b"----") {
        let name = find_child(file, item.0, item.1, b"name")?;
        if read_leaf(file, name)?.get(4..)? != b"iTunSMPB" {
            continue;
        }
        let data = find_child(file, item.0, item.1, b"data")?;
        let data = read_leaf(file, data)?;
        let fields: Vec<u64> = std::str::from_utf8(data.get(8..)?)
            .ok()?
            .split_whitespace()
            .take(4)
            .map(|f| u64::from_str_radix(f, 16))
            .collect::<Result<_, _>>()
            .ok()?;
        let [_, priming, _padding, length] = fields[..] else {
            return None;
        };
        return (length > 0).then_some(Presentation {
            skip: priming,
            keep: length,
        });
    }
    None
}

fn is_audio(file: &mut File, start: u64, end: u64) -> bool {
    (|| {
        let mdia = find_child(file, start, end, b"mdia")?;
        let hdlr = find_child(file, mdia.0, mdia.1, b"hdlr")?;
        let hdlr = read_leaf(file, hdlr)?;
        Some(hdlr.get(8..12)? == b"soun")
    })()
    .unwrap_or(false)
}

fn audio_track(
    file: &mut File,
    start: u64,
    end: u64,
    movie_scale: u32,
    sample_rate: u32,
) -> Option<Presentation> {
    if !is_audio(file, start, end) {
        return None;
    }
    let mdia = find_child(file, start, end, b"mdia")?;
    let mdhd = find_child(file, mdia.0, mdia.1, b"mdhd")?;
    let media_scale = timescale(&read_leaf(file, mdhd)?)?;
    let edts = find_child(file, start, end, b"edts")?;
    let elst = find_child(file, edts.0, edts.1, b"elst")?;
    let elst = read_leaf(file, elst)?;
    let (duration, media_time) = single_edit(&elst)?;
    let rate = u128::from(sample_rate);
    let skip = u128::from(media_time) * rate / u128::from(media_scale);
    let keep = u128::from(duration) * rate / u128::from(movie_scale);
    Some(Presentation {
        skip: u64::try_from(skip).ok()?,
        keep: u64::try_from(keep).ok()?,
    })
}

/// `(segment_duration, media_time)` of an edit list with exactly one edit played at rate 1.
fn single_edit(elst: &[u8]) -> Option<(u64, u64)> {
    let version = *elst.first()?;
    let count = u32::from_be_bytes(elst.get(4..8)?.try_into().ok()?);
    if count != 1 {
        return None;
    }
    let e = elst.get(8..)?;
    let (duration, media_time, rate) = match version {
        0 => (
            u64::from(u32::from_be_bytes(e.get(0..4)?.try_into().ok()?)),
            i64::from(i32::from_be_bytes(e.get(4..8)?.try_into().ok()?)),
            e.get(8..10)?,
        ),
        1 => (
            u64::from_be_bytes(e.get(0..8)?.try_into().ok()?),
            i64::from_be_bytes(e.get(8..16)?.try_into().ok()?),
            e.get(16..18)?,
        ),
        _ => return None,
    };
    (rate == [0, 1] && duration > 0).then_some(())?;
    Some((duration, u64::try_from(media_time).ok()?))
}

/// The `timescale` of an `mvhd` or `mdhd` payload (version 0 or 1).
fn timescale(payload: &[u8]) -> Option<u32> {
    let at = match payload.first()? {
        0 => 12,
        1 => 20,
        _ => return None,
    };
    let scale = u32::from_be_bytes(payload.get(at..at + 4)?.try_into().ok()?);
    (scale > 0).then_some(scale)
}

/// The payload range of the first child box of type `kind` within `start..end`.
fn find_child(file: &mut File, start: u64, end: u64, kind: &[u8; 4]) -> Option<(u64, u64)> {
    let mut at = start;
    next_child(file, &mut at, end, kind)
}

/// The next child of type `kind` from `*at` (advanced past it), within `..end`.
fn next_child(file: &mut File, at: &mut u64, end: u64, kind: &[u8; 4]) -> Option<(u64, u64)> {
    for _ in 0..4096 {
        let (found, payload_start, box_end) = box_header(file, *at, end)?;
        *at = box_end;
        if &found == kind {
            return Some((payload_start, box_end));
        }
    }
    None
}

/// `(type, payload start, box end)` of the box at `at`, which must fit in `..end`.
fn box_header(file: &mut File, at: u64, end: u64) -> Option<([u8; 4], u64, u64)> {
    if at.checked_add(8)? > end {
        return None;
    }
    file.seek(SeekFrom::Start(at)).ok()?;
    let mut head = [0u8; 16];
    file.read_exact(&mut head[..8]).ok()?;
    let size32 = u32::from_be_bytes(head[0..4].try_into().ok()?);
    let kind: [u8; 4] = head[4..8].try_into().ok()?;
    let (size, header) = match size32 {
        0 => (end - at, 8),
        1 => {
            file.read_exact(&mut head[8..16]).ok()?;
            (u64::from_be_bytes(head[8..16].try_into().ok()?), 16)
        }
        n => (u64::from(n), 8),
    };
    let box_end = at.checked_add(size)?;
    (size >= header && box_end <= end).then_some((kind, at + header, box_end))
}

fn read_leaf(file: &mut File, (start, end): (u64, u64)) -> Option<Vec<u8>> {
    let len = end.checked_sub(start)?;
    if len > MAX_LEAF {
        return None;
    }
    file.seek(SeekFrom::Start(start)).ok()?;
    let mut buf = vec![0u8; len as usize];
    file.read_exact(&mut buf).ok()?;
    Some(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn boxed(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut b = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
        b.extend_from_slice(kind);
        b.extend_from_slice(payload);
        b
    }

    fn full(version: u8, rest: &[u8]) -> Vec<u8> {
        let mut b = vec![version, 0, 0, 0];
        b.extend_from_slice(rest);
        b
    }

    fn header_v0(scale: u32) -> Vec<u8> {
        let mut rest = vec![0u8; 8];
        rest.extend_from_slice(&scale.to_be_bytes());
        rest.extend_from_slice(&[0u8; 8]);
        full(0, &rest)
    }

    fn elst_v0(entries: &[(u32, i32, u16)]) -> Vec<u8> {
        let mut rest = (entries.len() as u32).to_be_bytes().to_vec();
        for (d, t, r) in entries {
            rest.extend_from_slice(&d.to_be_bytes());
            rest.extend_from_slice(&t.to_be_bytes());
            rest.extend_from_slice(&r.to_be_bytes());
            rest.extend_from_slice(&[0, 0]);
        }
        full(0, &rest)
    }

    fn track(handler: &[u8; 4], media_scale: u32, elst: Option<Vec<u8>>) -> Vec<u8> {
        let mut hdlr = full(0, &[0; 4]);
        hdlr.extend_from_slice(handler);
        hdlr.extend_from_slice(&[0; 12]);
        let mdia = [
            boxed(b"mdhd", &header_v0(media_scale)),
            boxed(b"hdlr", &hdlr),
        ]
        .concat();
        let mut trak = boxed(b"tkhd", &full(0, &[0; 80]));
        if let Some(e) = elst {
            trak.extend(boxed(b"edts", &boxed(b"elst", &e)));
        }
        trak.extend(boxed(b"mdia", &mdia));
        boxed(b"trak", &trak)
    }

    fn file_with(tracks: &[Vec<u8>], moov_last: bool) -> tempfile::NamedTempFile {
        file_with_udta(tracks, &[], moov_last)
    }

    /// iTunes's `udta/meta/ilst` holding one `----` note, `meta` as a full box or (QuickTime)
    /// a plain one.
    fn smpb_udta(value: &str, full_meta: bool) -> Vec<u8> {
        let mut name = vec![0u8; 4];
        name.extend_from_slice(b"iTunSMPB");
        let mut data = vec![0, 0, 0, 1, 0, 0, 0, 0];
        data.extend_from_slice(value.as_bytes());
        let note = boxed(
            b"----",
            &[
                boxed(b"mean", b"\0\0\0\0com.apple.iTunes"),
                boxed(b"name", &name),
                boxed(b"data", &data),
            ]
            .concat(),
        );
        let other = boxed(b"\xa9nam", &boxed(b"data", b"\0\0\0\x01\0\0\0\0Song"));
        let hdlr = boxed(b"hdlr", &[0u8; 25]);
        let ilst = boxed(b"ilst", &[other, note].concat());
        let meta = if full_meta {
            boxed(b"meta", &[vec![0u8; 4], hdlr, ilst].concat())
        } else {
            boxed(b"meta", &[hdlr, ilst].concat())
        };
        boxed(b"udta", &meta)
    }

    fn file_with_udta(tracks: &[Vec<u8>], udta: &[u8], moov_last: bool) -> tempfile::NamedTempFile {
        let moov = boxed(
            b"moov",
            &[
                boxed(b"mvhd", &header_v0(1000)),
                tracks.concat(),
                udta.to_vec(),
            ]
            .concat(),
        );
        let ftyp = boxed(b"ftyp", b"M4A \0\0\0\0");
        let mdat = boxed(b"mdat", &[0x55; 300]);
        let bytes = if moov_last {
            [ftyp, mdat, moov].concat()
        } else {
            [ftyp, moov, mdat].concat()
        };
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), bytes).unwrap();
        f
    }

    #[test]
    fn priming_and_length_come_from_the_audio_tracks_edit() {
        // 10.0 s (movie timescale 1000) starting after 1024 samples of priming at 48 kHz.
        let audio = track(b"soun", 48000, Some(elst_v0(&[(10_000, 1024, 1)])));
        for moov_last in [false, true] {
            let f = file_with(&[track(b"vide", 90000, None), audio.clone()], moov_last);
            assert_eq!(
                presentation(f.path(), 48000),
                Some(Presentation {
                    skip: 1024,
                    keep: 480_000
                })
            );
            // Another output rate: the same times.
            assert_eq!(
                presentation(f.path(), 24000),
                Some(Presentation {
                    skip: 512,
                    keep: 240_000
                })
            );
        }
    }

    #[test]
    fn anything_but_one_plain_edit_is_left_alone() {
        for elst in [
            None,
            Some(elst_v0(&[])),
            Some(elst_v0(&[(500, -1, 1), (9_500, 0, 1)])), // an empty edit first
            Some(elst_v0(&[(10_000, 1024, 2)])),           // rate 2
            Some(elst_v0(&[(10_000, -1, 1)])),             // nothing presented
        ] {
            let f = file_with(&[track(b"soun", 48000, elst)], false);
            assert_eq!(presentation(f.path(), 48000), None);
        }
    }

    #[test]
    fn an_itunes_note_stands_in_for_a_missing_edit_list() {
        let note = " 00000000 00000840 000001CC 00000000000A3B3F4 00000000 00000000";
        for full_meta in [true, false] {
            let f = file_with_udta(
                &[track(b"soun", 44100, None)],
                &smpb_udta(note, full_meta),
                false,
            );
            assert_eq!(
                presentation(f.path(), 44100),
                Some(Presentation {
                    skip: 2112,
                    keep: 0xA3B3F4
                })
            );
        }
        // An edit list, when there is one, is what players follow.
        let f = file_with_udta(
            &[track(b"soun", 44100, Some(elst_v0(&[(10_000, 1024, 1)])))],
            &smpb_udta(note, true),
            false,
        );
        assert_eq!(presentation(f.path(), 44100).map(|p| p.skip), Some(1024));
        // A malformed note is ignored.
        for bad in ["", " 00000000 zz 000001CC 00A3B3F4", " 0 840 1CC 0"] {
            let f = file_with_udta(&[track(b"soun", 44100, None)], &smpb_udta(bad, true), false);
            assert_eq!(presentation(f.path(), 44100), None, "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn hostile_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600), cut in 0usize..600) {
            let good = file_with(&[track(b"soun", 44100, Some(elst_v0(&[(3000, 2112, 1)])))], false);
            let mut data = std::fs::read(good.path()).unwrap();
            data.truncate(cut.min(data.len()));
            data.extend_from_slice(&bytes);
            std::fs::write(good.path(), &data).unwrap();
            let _ = presentation(good.path(), 44100);
        }
    }
}

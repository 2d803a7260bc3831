//! HLS playlist rendering (RFC 8216), pure functions over the spec's playlist types.

use std::fmt::Write as _;

use super::adaptive::{HLSManifest, MasterPlaylist};

/// Renders a master playlist. Variants are written in the given order: HLS clients start with
/// the first one listed (RFC 8216 §6.3.1 leaves the choice to the client; hls.js and Apple's
/// players take the first).
pub fn render_master(master: &MasterPlaylist) -> String {
    let mut out = String::with_capacity(128 + master.streams.len() * 96);
    out.push_str("#EXTM3U\n");
    let _ = writeln!(out, "#EXT-X-VERSION:{}", master.version);
    // Every segment starts with a full ADTS/MP3 frame: decodable on its own (§4.3.5.1).
    out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
    for s in &master.streams {
        let _ = write!(out, "#EXT-X-STREAM-INF:BANDWIDTH={}", s.bandwidth);
        if let Some(avg) = s.average_bandwidth {
            let _ = write!(out, ",AVERAGE-BANDWIDTH={avg}");
        }
        let _ = write!(out, ",CODECS=\"{}\"", s.codecs);
        if let Some(res) = &s.resolution {
            let _ = write!(out, ",RESOLUTION={res}");
        }
        out.push('\n');
        out.push_str(&s.url);
        out.push('\n');
    }
    out
}

/// Renders a media playlist. `EXT-X-TARGETDURATION` is recomputed from the segments so that it
/// can never be wrong: §4.3.3.1 requires every `EXTINF`, rounded to the nearest integer, to be no
/// greater than it.
pub fn render_media(manifest: &HLSManifest) -> String {
    let target = manifest
        .segments
        .iter()
        .map(|s| f64::from(s.duration).round() as u32)
        .max()
        .unwrap_or(0)
        .max(manifest.target_duration)
        .max(1);
    let version = if manifest.segments.iter().any(|s| s.byte_range.is_some()) {
        manifest.version.max(4) // EXT-X-BYTERANGE needs version 4 (§7)
    } else {
        manifest.version.max(3) // decimal EXTINF needs version 3
    };
    let mut out = String::with_capacity(160 + manifest.segments.len() * 40);
    out.push_str("#EXTM3U\n");
    let _ = writeln!(out, "#EXT-X-VERSION:{version}");
    let _ = writeln!(out, "#EXT-X-TARGETDURATION:{target}");
    let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{}", manifest.media_sequence);
    if manifest.end_list {
        out.push_str("#EXT-X-PLAYLIST-TYPE:VOD\n");
    }
    out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
    for s in &manifest.segments {
        let _ = writeln!(out, "#EXTINF:{:.6},", s.duration);
        if let Some((len, offset)) = s.byte_range {
            let _ = writeln!(out, "#EXT-X-BYTERANGE:{len}@{offset}");
        }
        out.push_str(&s.url);
        out.push('\n');
    }
    if manifest.end_list {
        out.push_str("#EXT-X-ENDLIST\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::streaming::adaptive::{HLSSegment, StreamInfo};
    use proptest::prelude::*;

    #[test]
    fn master_lists_variants_in_order() {
        let m = MasterPlaylist {
            version: 3,
            streams: vec![
                StreamInfo {
                    bandwidth: 105_000,
                    average_bandwidth: Some(96_000),
                    codecs: "mp4a.40.2".into(),
                    resolution: None,
                    url: "mobile/playlist.m3u8".into(),
                },
                StreamInfo {
                    bandwidth: 350_000,
                    average_bandwidth: None,
                    codecs: "mp4a.40.2".into(),
                    resolution: None,
                    url: "high/playlist.m3u8".into(),
                },
            ],
        };
        assert_eq!(
            render_master(&m),
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-STREAM-INF:BANDWIDTH=105000,AVERAGE-BANDWIDTH=96000,CODECS=\"mp4a.40.2\"\nmobile/playlist.m3u8\n\
             #EXT-X-STREAM-INF:BANDWIDTH=350000,CODECS=\"mp4a.40.2\"\nhigh/playlist.m3u8\n"
        );
    }

    /// A minimal RFC 8216 media playlist reader, to check what the renderer writes.
    fn parse_media(text: &str) -> (u32, Vec<(f64, String)>, bool) {
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("#EXTM3U"));
        let mut target = 0;
        let mut segs = Vec::new();
        let mut pending = None;
        let mut ended = false;
        for line in lines {
            if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
                target = v.parse().unwrap();
            } else if let Some(v) = line.strip_prefix("#EXTINF:") {
                pending = Some(v.trim_end_matches(',').parse::<f64>().unwrap());
            } else if line == "#EXT-X-ENDLIST" {
                ended = true;
            } else if !line.starts_with('#') {
                segs.push((pending.take().expect("EXTINF before URI"), line.to_string()));
            }
        }
        (target, segs, ended)
    }

    proptest! {
        #[test]
        fn media_playlist_round_trips(durs in prop::collection::vec(0.01f32..20.0, 1..200), declared in 0u32..10) {
            let manifest = HLSManifest {
                version: 3,
                target_duration: declared,
                media_sequence: 0,
                segments: durs.iter().enumerate().map(|(i, d)| HLSSegment { duration: *d, url: format!("{i}.aac"), byte_range: None }).collect(),
                end_list: true,
            };
            let text = render_media(&manifest);
            let (target, segs, ended) = parse_media(&text);
            prop_assert!(ended);
            prop_assert_eq!(segs.len(), durs.len());
            for ((d, uri), (i, want)) in segs.iter().zip(durs.iter().enumerate()) {
                prop_assert!((d - f64::from(*want)).abs() < 1e-5);
                prop_assert_eq!(uri, &format!("{i}.aac"));
                prop_assert!(d.round() as u32 <= target);
            }
        }
    }
}

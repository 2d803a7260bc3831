//! HLS as a real player sees it: ffmpeg's own HLS demuxer decodes every variant of every
//! fixture; durations, rates, channels, codecs and bitrates are checked against the source.

use crate::fixtures::{library, FIXTURES};
use crate::helpers::{decoded_mono, decoded_samples, probe_stream, spawn_app};

struct Variant {
    quality: &'static str,
    rate: u32,
    codec: &'static str,
    kbps: f64,
}

const VARIANTS: [Variant; 4] = [
    Variant {
        quality: "high",
        rate: 44100,
        codec: "aac",
        kbps: 320.0,
    },
    Variant {
        quality: "medium",
        rate: 44100,
        codec: "aac",
        kbps: 192.0,
    },
    Variant {
        quality: "low",
        rate: 22050,
        codec: "mp3",
        kbps: 128.0,
    },
    Variant {
        quality: "mobile",
        rate: 22050,
        codec: "aac",
        kbps: 96.0,
    },
];

/// The media playlist of `quality` of track `id`, as text.
async fn media_playlist(app: &crate::helpers::TestApp, id: &str, quality: &str) -> String {
    app.get(&format!("/hls/{id}/{quality}/playlist.m3u8"))
        .await
        .text()
        .await
        .unwrap()
}

fn media_lines(playlist: &str) -> Vec<(f64, String)> {
    let mut out = Vec::new();
    let mut dur = None;
    for line in playlist.lines() {
        if let Some(v) = line.strip_prefix("#EXTINF:") {
            dur = Some(v.trim_end_matches(',').parse::<f64>().unwrap());
        } else if !line.starts_with('#') && !line.is_empty() {
            out.push((
                dur.take().expect("EXTINF before each URI"),
                line.to_string(),
            ));
        }
    }
    out
}

/// The PTS of a packed-audio segment's ID3 PRIV timestamp (RFC 8216 §3.4).
fn id3_pts(seg: &[u8]) -> u64 {
    assert_eq!(&seg[..3], b"ID3", "segment starts with an ID3 tag");
    let owner = b"com.apple.streaming.transportStreamTimestamp\0";
    let at = seg
        .windows(owner.len())
        .position(|w| w == owner)
        .expect("PRIV timestamp")
        + owner.len();
    u64::from_be_bytes(seg[at..at + 8].try_into().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_variant_of_every_fixture_decodes_like_the_source() {
    let lib = library();
    let app = spawn_app(Some(&lib.root)).await;
    let mut failures = Vec::new();
    for f in FIXTURES {
        let id = app.track_id(f.name).await;
        let source_secs = lib.reference_samples(f) as f64 / f64::from(f.rate);
        assert!(
            (source_secs - f.secs).abs() < 0.05,
            "{}: fixture is {source_secs} s",
            f.name
        );
        for v in &VARIANTS {
            let url = app.url(&format!("/hls/{id}/{}/playlist.m3u8", v.quality));
            let playlist = media_playlist(&app, &id, v.quality).await;
            assert!(
                playlist.contains("#EXT-X-ENDLIST")
                    && playlist.contains("#EXT-X-PLAYLIST-TYPE:VOD")
            );
            let segments = media_lines(&playlist);
            let target: f64 = playlist
                .lines()
                .find_map(|l| l.strip_prefix("#EXT-X-TARGETDURATION:"))
                .unwrap()
                .parse()
                .unwrap();
            let listed: f64 = segments.iter().map(|s| s.0).sum();

            // Timestamps: contiguous, each segment starting where the previous one ended.
            let mut bytes = 0usize;
            let mut expected_pts = 0f64;
            for (dur, uri) in &segments {
                assert!(dur.round() <= target, "EXTINF {dur} over target {target}");
                let body = app
                    .get(&format!("/hls/{id}/{}/{uri}", v.quality))
                    .await
                    .bytes()
                    .await
                    .unwrap();
                let pts = id3_pts(&body) as f64;
                assert!(
                    (pts - expected_pts).abs() <= 1.0,
                    "{} {}: {uri} PTS {pts}, expected {expected_pts}",
                    f.name,
                    v.quality
                );
                expected_pts += dur * 90_000.0;
                bytes += body.len() - 73;
            }

            let (samples, stderr) = decoded_samples(&url, v.rate);
            let decoded_secs = samples as f64 / f64::from(v.rate);
            let stream = probe_stream(&url);
            let kbps = bytes as f64 * 8.0 / listed / 1000.0;
            let problems = [
                ((decoded_secs - source_secs).abs() > 0.1)
                    .then(|| format!("decodes to {decoded_secs:.3} s, source {source_secs:.3} s")),
                ((decoded_secs - listed).abs() > 0.03)
                    .then(|| format!("EXTINF total {listed:.3} s, decoded {decoded_secs:.3} s")),
                (stream["codec_name"] != v.codec)
                    .then(|| format!("codec {}", stream["codec_name"])),
                (stream["sample_rate"]
                    .as_str()
                    .and_then(|r| r.parse::<u32>().ok())
                    != Some(v.rate))
                .then(|| format!("rate {}", stream["sample_rate"])),
                (stream["channels"] != 2).then(|| format!("channels {}", stream["channels"])),
                ((kbps - v.kbps).abs() > v.kbps * 0.1).then(|| format!("{kbps:.1} kbps")),
                (stderr.contains("monoton") || stderr.contains("rror"))
                    .then(|| format!("ffmpeg complained: {stderr}")),
            ];
            for p in problems.into_iter().flatten() {
                failures.push(format!("{} {}: {p}", f.name, v.quality));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The lag (in samples) at which `decoded` best matches `source` over `window`, searched in
/// `0..max_lag`: where the source's sound is heard in what we serve.
fn lag_of(
    source: &[f32],
    decoded: &[f32],
    window: std::ops::Range<usize>,
    max_lag: usize,
) -> usize {
    let score = |lag: usize| -> f64 {
        let (mut xy, mut yy) = (0f64, 0f64);
        for i in window.clone() {
            let (x, y) = (f64::from(source[i]), f64::from(decoded[i + lag]));
            xy += x * y;
            yy += y * y;
        }
        xy / yy.sqrt().max(1e-12)
    };
    (0..max_lag)
        .max_by(|&a, &b| score(a).total_cmp(&score(b)))
        .unwrap()
}

/// Matching content in every variant has matching timestamps (RFC 8216 §6.2.4): decoded by
/// ffmpeg from their playlists (timestamps from 0), all variants hear the source at the same
/// moment, so a player switching rungs neither repeats nor skips. Each codec primes for its own
/// length, in samples of its own rate; unaligned, `mobile` lagged `high` by 23 ms and `low` by 27.
/// And every source starts at that same moment, whatever its format: an M4A's own priming (its
/// edit list) is not served, as ffmpeg does not play it either, nor is an Opus file's pre-skip.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_variant_hears_the_source_at_the_same_time() {
    const RATE: u32 = 22050;
    let lib = library();
    let app = spawn_app(Some(&lib.root)).await;
    let mut all = Vec::new();
    for name in [
        "flac/stereo44.flac",
        "wav/mono48-24bit.wav",
        "m4a/aac48.m4a",
        "opus/stereo.opus",
    ] {
        let id = app.track_id(name).await;
        let source = decoded_mono(lib.path(name).to_str().unwrap(), RATE);
        let window = RATE as usize..3 * RATE as usize;
        let max_lag = RATE as usize / 10;
        let mut lags = Vec::new();
        for v in &VARIANTS {
            let url = app.url(&format!("/hls/{id}/{}/playlist.m3u8", v.quality));
            let decoded = decoded_mono(&url, RATE);
            lags.push((
                v.quality,
                lag_of(&source, &decoded, window.clone(), max_lag),
            ));
        }
        let (lo, hi) = lags
            .iter()
            .fold((usize::MAX, 0), |(lo, hi), (_, l)| (lo.min(*l), hi.max(*l)));
        // One sample at 22.05 kHz (45 µs): what rounding each rate's delay to a sample allows.
        assert!(
            hi - lo <= 1,
            "{name}: source heard at (samples @ {RATE} Hz) {lags:?}"
        );
        assert!(hi > 0 && hi < max_lag - 1, "{name}: lags {lags:?}");
        all.push((name, lo, hi));
    }
    let (lo, hi) = all.iter().fold((usize::MAX, 0), |(l, h), (_, lo, hi)| {
        (l.min(*lo), h.max(*hi))
    });
    assert!(hi - lo <= 1, "sources start at different times: {all:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn master_playlist() {
    let lib = library();
    let app = spawn_app(Some(&lib.root)).await;
    let id = app.track_id("flac/stereo44.flac").await;
    let r = app.get(&format!("/hls/{id}/master.m3u8")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/vnd.apple.mpegurl");
    assert!(r.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("max-age"));
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    let text = r.text().await.unwrap();
    let infs: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("#EXT-X-STREAM-INF:"))
        .collect();
    let uris: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(
        uris,
        [
            "mobile/playlist.m3u8",
            "high/playlist.m3u8",
            "medium/playlist.m3u8"
        ],
        "safe start first, AAC only"
    );
    for inf in infs {
        assert!(
            inf.contains("BANDWIDTH=")
                && inf.contains("AVERAGE-BANDWIDTH=")
                && inf.contains("CODECS=\"mp4a.40.2\""),
            "{inf}"
        );
    }
    assert!(text.contains("#EXT-X-INDEPENDENT-SEGMENTS"));

    // ffmpeg plays the master (it picks a variant and decodes it).
    let (samples, _) = decoded_samples(&app.url(&format!("/hls/{id}/master.m3u8")), 44100);
    assert!((samples as f64 / 44100.0 - 13.3).abs() < 0.1);

    // A session's profile is listed first.
    let created: serde_json::Value = app
        .client
        .post(app.url("/api/streaming/session"))
        .json(&serde_json::json!({"track_id": id, "client_capabilities": {"estimated_bandwidth_kbps": 5000, "buffer_duration_ms": 5000, "connection_type": "Ethernet", "device_type": "Desktop", "adaptive_enabled": true}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(created["initial_profile"]["quality_id"], "high");
    let sid = created["session_id"].as_str().unwrap();
    assert_eq!(app.first_variant(&id, sid).await, "high/playlist.m3u8");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_are_packed_audio_with_cdn_headers() {
    let lib = library();
    let app = spawn_app(Some(&lib.root)).await;
    let id = app.track_id("mp3/tagged.mp3").await;
    for (q, ctype, sync) in [("high", "audio/aac", 0xf0u8), ("low", "audio/mpeg", 0xe0u8)] {
        let playlist = media_playlist(&app, &id, q).await;
        let (_, uri) = &media_lines(&playlist)[1];
        let r = app.get(&format!("/hls/{id}/{q}/{uri}")).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], ctype);
        assert!(r.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable"));
        let body = r.bytes().await.unwrap();
        // After the 73-byte ID3 tag comes a frame sync word.
        assert_eq!(body[73], 0xff);
        assert_eq!(body[74] & sync, sync);
        // Never LAME's Info frame inside an HLS segment.
        assert!(!body.windows(4).any(|w| w == b"Info" || w == b"Xing"));
    }
    // Unknown quality, unknown segment, stale version: 404 with a JSON error.
    for path in [
        format!("/hls/{id}/ultra/playlist.m3u8"),
        format!("/hls/{id}/high/000000000000-0.aac"),
        format!("/hls/{id}/high/nonsense"),
        format!("/hls/{id}/high/{}-9999.aac", "0"),
        "/hls/ffffffffffffffff/master.m3u8".to_string(),
    ] {
        let r = app.get(&path).await;
        assert_eq!(r.status(), 404, "{path}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert!(
            v["error"].is_string() && v["code"].is_string(),
            "{path}: {v}"
        );
    }
}

/// Playlists carry an `ETag`; a client holding one revalidates with `If-None-Match` and gets a
/// bodiless `304` (weak comparison, as RFC 9110 says); another playlist text has another tag
/// (two AAC rungs may list the very same text: a tag validates one URL's body, so that is fine).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn playlists_revalidate_with_etags() {
    let lib = library();
    let app = spawn_app(Some(&lib.root)).await;
    let id = app.track_id("mp3/tagged.mp3").await;
    let mut tags = std::collections::HashSet::new();
    for path in [
        format!("/hls/{id}/master.m3u8"),
        format!("/hls/{id}/high/playlist.m3u8"),
        format!("/hls/{id}/low/playlist.m3u8"),
    ] {
        let r = app.get(&path).await;
        assert_eq!(r.status(), 200);
        let etag = r.headers()["etag"].to_str().unwrap().to_string();
        assert!(tags.insert(etag.clone()), "{path}: {etag} reused");
        for candidate in [
            etag.clone(),
            format!("W/{etag}"),
            format!("\"other\", {etag}"),
        ] {
            let r = app.get_with(&path, "if-none-match", &candidate).await;
            assert_eq!(r.status(), 304, "{path} with {candidate}");
            assert_eq!(r.headers()["etag"].to_str().unwrap(), etag);
            assert!(r.bytes().await.unwrap().is_empty());
        }
        let r = app.get_with(&path, "if-none-match", "\"stale\"").await;
        assert_eq!(r.status(), 200, "{path}");
    }
}

/// gzip where it helps (playlists, JSON), when asked; never on audio, which is compressed
/// already and served by ranges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_is_gzipped_on_request_and_audio_never() {
    let lib = library();
    let app = spawn_app(Some(&lib.root)).await;
    let id = app.track_id("mp3/tagged.mp3").await;
    let playlist = media_playlist(&app, &id, "high").await;
    let (_, uri) = &media_lines(&playlist)[0];
    let gzipped = |path: String| {
        let app = &app;
        async move {
            let r = app.get_with(&path, "accept-encoding", "gzip").await;
            assert_eq!(r.status(), 200, "{path}");
            let encoding = r
                .headers()
                .get("content-encoding")
                .map(|v| v.to_str().unwrap().to_string());
            (encoding, r.bytes().await.unwrap())
        }
    };
    for (path, plain) in [
        (
            format!("/hls/{id}/high/playlist.m3u8"),
            playlist.clone().into_bytes(),
        ),
        (
            "/api/tracks".to_string(),
            app.get("/api/tracks").await.bytes().await.unwrap().to_vec(),
        ),
    ] {
        let (encoding, body) = gzipped(path.clone()).await;
        assert_eq!(encoding.as_deref(), Some("gzip"), "{path}");
        let mut gunzip = std::process::Command::new("gzip")
            .arg("-dc")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(gunzip.stdin.as_mut().unwrap(), &body).unwrap();
        drop(gunzip.stdin.take());
        assert_eq!(gunzip.wait_with_output().unwrap().stdout, plain, "{path}");
    }
    for path in [
        format!("/hls/{id}/high/{uri}"),
        format!("/stream/{id}?quality=high"),
    ] {
        let (encoding, body) = gzipped(path.clone()).await;
        assert_eq!(encoding, None, "{path}");
        assert_eq!(body, app.get(&path).await.bytes().await.unwrap(), "{path}");
    }
}

/// Segment frames leave from the cache file with `sendfile`, not from the in-memory copy. The
/// test sees which by rewriting the cached file in place between two requests (the server never
/// does that: encodes are append-only and replaced by new files): the second answer carries the
/// file's new bytes, where a response from memory would repeat the first. The ID3 tag, sent from
/// memory, is unchanged; and the response is still whole and well framed for HTTP.
#[tokio::test]
async fn segment_frames_are_sent_from_the_cache_file() {
    let lib = library();
    let app = spawn_app(Some(&lib.root)).await;
    let id = app.track_id("mp3/tagged.mp3").await;
    let playlist = media_playlist(&app, &id, "medium").await;
    let (_, uri) = &media_lines(&playlist)[0];
    let url = format!("/hls/{id}/medium/{uri}");
    let first = app.get(&url).await.bytes().await.unwrap();
    assert!(first.len() > 1_000);
    // The whole stream is encoded by now (the first segment's encode runs to the end).
    app.state
        .cache
        .complete(
            &app.state
                .streaming
                .transcode_request(&id, "medium")
                .unwrap(),
        )
        .await
        .unwrap();
    let es = walkdir::WalkDir::new(app.data_dir.path())
        .into_iter()
        .filter_map(Result::ok)
        .find(|e| {
            let name = e.file_name().to_string_lossy();
            name.starts_with("medium-") && name.ends_with(".es")
        })
        .expect("the medium encode in the cache")
        .into_path();
    let on_disk = std::fs::read(&es).unwrap();
    let frames = &first[73..];
    assert_eq!(
        &on_disk[..frames.len()],
        frames,
        "segment 0 is the file's first bytes"
    );
    // Same inode, new content: flip every byte of the first segment's frames.
    {
        use std::io::{Seek, Write};
        let mut f = std::fs::OpenOptions::new().write(true).open(&es).unwrap();
        f.seek(std::io::SeekFrom::Start(0)).unwrap();
        f.write_all(&frames.iter().map(|b| !b).collect::<Vec<_>>())
            .unwrap();
    }
    let r = app.get(&url).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-length"],
        first.len().to_string().as_str()
    );
    let second = r.bytes().await.unwrap();
    assert_eq!(second.len(), first.len());
    assert_eq!(&second[..73], &first[..73], "the ID3 tag comes from memory");
    assert!(
        second[73..].iter().zip(frames).all(|(a, b)| *a == !*b),
        "the frames come from the file"
    );
    // The connection is still usable: the next request on it gets a whole, valid answer.
    let r = app.get(&format!("/hls/{id}/medium/playlist.m3u8")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), playlist);
}

/// The value of an unlabelled counter in `/metrics`.
async fn counter(app: &crate::helpers::TestApp, name: &str) -> f64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

/// A segment in memory is answered before the router (the hot path); its answer must be the
/// router's, headers included. A request with `Origin` always goes through the router (CORS
/// decides per origin), and with the default `cors_origins = ["*"]` the router answers it with
/// the same headers as a request without: so the two answers must be equal but for `date`.
#[tokio::test]
async fn hot_segments_are_answered_as_the_router_answers_them() {
    let lib = library();
    let app = spawn_app(Some(&lib.root)).await;
    let id = app.track_id("mp3/tagged.mp3").await;
    for q in ["high", "low"] {
        let playlist = media_playlist(&app, &id, q).await;
        let url = app.url(&format!("/hls/{id}/{q}/{}", media_lines(&playlist)[0].1));
        let first = app.client.get(&url).send().await.unwrap();
        assert_eq!(first.status(), 200);
        let first = first.bytes().await.unwrap(); // now in memory
        let hot_before = counter(&app, "http_hot_path_responses_total").await;
        let hot = app.client.get(&url).send().await.unwrap();
        assert!(
            counter(&app, "http_hot_path_responses_total").await >= hot_before + 1.0,
            "the second request for a segment in memory takes the hot path"
        );
        let routed = app
            .client
            .get(&url)
            .header("origin", "http://player.example")
            .send()
            .await
            .unwrap();
        let headers = |r: &reqwest::Response| {
            let mut h: Vec<(String, String)> = r
                .headers()
                .iter()
                .filter(|(n, _)| *n != "date")
                .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
                .collect();
            h.sort();
            h
        };
        assert_eq!(hot.status(), routed.status());
        assert_eq!(headers(&hot), headers(&routed), "{q}");
        assert!(headers(&hot)
            .iter()
            .any(|(n, v)| n == "access-control-allow-origin" && v == "*"));
        let (hot, routed) = (hot.bytes().await.unwrap(), routed.bytes().await.unwrap());
        assert_eq!(hot, first);
        assert_eq!(routed, first);
    }
}

/// Segments are cached as `immutable`: a configuration that changes a profile's bytes (here the
/// segment length) must change its segment names, and the same configuration must keep them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segment_names_change_with_what_shapes_their_bytes() {
    let lib = library();
    let names = |secs: f64| async move {
        let app =
            crate::helpers::spawn_app_with(Some(&lib.root), |c| c.segment_target_secs = secs).await;
        let id = app.track_id("flac/stereo44.flac").await;
        let playlist = app
            .get(&format!("/hls/{id}/high/playlist.m3u8"))
            .await
            .text()
            .await
            .unwrap();
        let first = crate::helpers::first_uri(&playlist).to_string();
        // The name is served.
        assert_eq!(
            app.get(&format!("/hls/{id}/high/{first}")).await.status(),
            200
        );
        first
    };
    let six = names(6.0).await;
    assert_eq!(
        names(6.0).await,
        six,
        "the same configuration, the same names"
    );
    let four = names(4.0).await;
    assert_ne!(four, six, "other segments under the same name");
}

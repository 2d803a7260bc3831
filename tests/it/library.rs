//! The library follows its folder while the server runs: files added, replaced and removed are
//! picked up by a rescan (periodic, on an admin's request, or at once when an encode finds its
//! file changed), and a replaced file is never encoded under the catalogue entry of the old one.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::helpers::{decoded_samples, f32le, first_uri, run, spawn_app_with, TestApp};

/// A `secs`-long stereo WAV of a tone at `hz`, written by ffmpeg.
fn write_tone(path: &Path, hz: u32, secs: f64) {
    run(Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!(
            "sine=frequency={hz}:duration={secs}:sample_rate=44100"
        ))
        .args(["-ac", "2"])
        .arg(path));
}

/// What `stream-server scan` prints for the library at `lib` (a fresh data dir).
fn scan_cli(lib: &Path) -> String {
    let data = tempfile::tempdir().unwrap();
    let out = run(Command::new(env!("CARGO_BIN_EXE_stream-server"))
        .arg("scan")
        .arg("--library")
        .arg(lib)
        .arg("--data-dir")
        .arg(data.path()));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn rescan(app: &TestApp) -> serde_json::Value {
    let r = app
        .client
        .post(app.url("/api/admin/rescan"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn added_replaced_and_removed_files_are_followed() {
    let lib = tempfile::tempdir().unwrap();
    write_tone(&lib.path().join("a.wav"), 440, 3.0);
    let app = spawn_app_with(Some(lib.path()), |c| c.library_rescan_secs = 0).await;
    let a = app.track_id("a.wav").await;

    // Added: an operator's rescan catalogues it, and it plays.
    write_tone(&lib.path().join("b.wav"), 660, 2.0);
    let report = rescan(&app).await;
    assert_eq!(
        (
            &report["tracks"],
            &report["added"],
            &report["removed"],
            &report["changed"],
            &report["skipped"]
        ),
        (&2.into(), &1.into(), &0.into(), &0.into(), &0.into()),
        "{report}"
    );
    let b = app.track_id("b.wav").await;
    let (samples, _) = decoded_samples(&app.url(&format!("/stream/{b}?quality=high")), 44100);
    assert!((samples as f64 / 44100.0 - 2.0).abs() < 0.1, "{samples}");

    // Replaced behind the server's back (3 s → 5 s): the first encode finds the file is not
    // the one scanned and refuses, with a retry hint, instead of cutting the new file to the
    // old length under the old names; the rescan it triggers gives the track its new length.
    let old_playlist = app
        .get(&format!("/hls/{a}/high/playlist.m3u8"))
        .await
        .text()
        .await
        .unwrap();
    let first_segment = first_uri(&old_playlist).to_string();
    write_tone(&lib.path().join("a.wav"), 550, 5.0);
    let r = app.get(&format!("/hls/{a}/high/{first_segment}")).await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "2");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "source_changed", "{body}");
    app.wait_for_track(&a, |t| {
        t.is_some_and(|t| t["duration_ms"].as_u64().unwrap().abs_diff(5000) < 50)
    })
    .await;
    let new_playlist = app
        .get(&format!("/hls/{a}/high/playlist.m3u8"))
        .await
        .text()
        .await
        .unwrap();
    assert_ne!(new_playlist, old_playlist, "new version, new segment names");
    let (samples, _) = decoded_samples(&app.url(&format!("/hls/{a}/high/playlist.m3u8")), 44100);
    assert!((samples as f64 / 44100.0 - 5.0).abs() < 0.1, "{samples}");
    // The old names are gone with the old file.
    assert_eq!(
        app.get(&format!("/hls/{a}/high/{first_segment}"))
            .await
            .status(),
        404
    );

    // Removed: gone from the catalogue at the next rescan.
    std::fs::remove_file(lib.path().join("b.wav")).unwrap();
    let report = rescan(&app).await;
    assert_eq!(
        (&report["removed"], &report["tracks"]),
        (&1.into(), &1.into())
    );
    assert_eq!(app.get(&format!("/api/tracks/{b}")).await.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_library_is_rescanned_periodically() {
    let lib = tempfile::tempdir().unwrap();
    write_tone(&lib.path().join("a.wav"), 440, 1.0);
    let app = spawn_app_with(Some(lib.path()), |c| c.library_rescan_secs = 1).await;
    write_tone(&lib.path().join("late.wav"), 660, 1.0);
    let id = stream_server::library::scan::track_id("late.wav");
    app.wait_for_track(&id, |t| t.is_some()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_admin_may_ask_for_a_rescan() {
    let lib = tempfile::tempdir().unwrap();
    write_tone(&lib.path().join("a.wav"), 440, 1.0);
    let app = spawn_app_with(Some(lib.path()), |c| c.library_rescan_secs = 0).await;
    let user = app
        .state
        .auth
        .mint("ann", Duration::from_secs(60), false)
        .unwrap();
    let admin = app
        .state
        .auth
        .mint("root", Duration::from_secs(60), true)
        .unwrap();
    let post = |token: &str| {
        app.client
            .post(app.url("/api/admin/rescan"))
            .header("origin", "http://elsewhere.example")
            .bearer_auth(token)
            .send()
    };
    assert_eq!(post(&user).await.unwrap().status(), 403);
    assert_eq!(post("forged.token.here").await.unwrap().status(), 401);
    assert_eq!(post(&admin).await.unwrap().status(), 200);
}

/// An Ogg file of chained streams (RFC 3533: `cat a.ogg b.ogg`, a recorded radio stream) is
/// played to its end, not cut after its first stream; a chain that changes the sample rate is
/// skipped at the scan with a reason rather than listed and then cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chained_ogg_streams_play_to_the_end() {
    let lib = tempfile::tempdir().unwrap();
    let vorbis = |name: &str, hz: u32, rate: u32, secs: u32| {
        let path = lib.path().join(name);
        run(Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg(format!(
                "sine=frequency={hz}:duration={secs}:sample_rate={rate}"
            ))
            .args(["-ac", "2", "-c:a", "libvorbis"])
            .arg(&path));
        std::fs::read(&path).unwrap()
    };
    let a = vorbis("a.ogg", 440, 44100, 3);
    let b = vorbis("b.ogg", 660, 44100, 4);
    let c = vorbis("c.ogg", 660, 48000, 4);
    std::fs::write(lib.path().join("same.ogg"), [a.clone(), b].concat()).unwrap();
    std::fs::write(lib.path().join("rate.ogg"), [a, c].concat()).unwrap();
    for part in ["a.ogg", "b.ogg", "c.ogg"] {
        std::fs::remove_file(lib.path().join(part)).unwrap();
    }
    let app = spawn_app_with(Some(lib.path()), |c| c.library_rescan_secs = 0).await;
    let tracks = app.json("/api/tracks").await;
    let names: Vec<&str> = tracks
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["filename"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["same.ogg"], "the rate change is skipped");
    let ms = tracks[0]["duration_ms"].as_u64().unwrap();
    assert!(
        ms.abs_diff(7000) <= 30,
        "{ms} ms: both chains are catalogued"
    );
    let id = tracks[0]["id"].as_str().unwrap();
    let (samples, log) = decoded_samples(&app.url(&format!("/stream/{id}?quality=low")), 22050);
    let secs = samples as f64 / 22050.0;
    assert!((secs - 7.0).abs() < 0.05, "{secs} s served: {log}");
    assert_eq!(rescan(&app).await["skipped"], 1);
}

/// WebM/Matroska Vorbis gives its packets no duration (symphonia reads 0 for each): such a file
/// was catalogued as empty and skipped. A half-copied MP4 whose index comes first was skipped as
/// "unsupported", which sent its owner looking for a codec problem.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webm_is_catalogued_at_its_length_and_a_half_copied_m4a_is_named_as_such() {
    let lib = tempfile::tempdir().unwrap();
    let encode = |name: &str, codec: &[&str]| {
        let path = lib.path().join(name);
        run(Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg("sine=frequency=440:duration=4:sample_rate=44100")
            .args(["-ac", "2"])
            .args(codec)
            .arg(&path));
        path
    };
    encode("tone.webm", &["-c:a", "libvorbis"]);
    let m4a = encode("half.m4a", &["-c:a", "aac", "-movflags", "+faststart"]);
    let bytes = std::fs::read(&m4a).unwrap();
    std::fs::write(&m4a, &bytes[..bytes.len() / 2]).unwrap();
    // A cover image beside them is no audio file at all, not one that "ends early".
    run(Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "color=red:s=64x64",
        ])
        .args(["-frames:v", "1"])
        .arg(lib.path().join("cover.jpg")));

    let text = scan_cli(lib.path());
    let skipped = text
        .lines()
        .find(|l| l.starts_with("skipped") && l.contains("half.m4a"))
        .unwrap_or_else(|| panic!("the half file is skipped:\n{text}"));
    assert!(skipped.contains("ends early"), "{skipped}");
    let cover = text
        .lines()
        .find(|l| l.starts_with("skipped") && l.contains("cover.jpg"))
        .unwrap_or_else(|| panic!("the image is skipped:\n{text}"));
    assert!(cover.contains("not a supported audio file"), "{cover}");

    let app = spawn_app_with(Some(lib.path()), |c| c.library_rescan_secs = 0).await;
    let tracks = app.json("/api/tracks").await;
    assert_eq!(tracks.as_array().unwrap().len(), 1, "{tracks}");
    let ms = tracks[0]["duration_ms"].as_u64().unwrap();
    assert!(ms.abs_diff(4000) <= 30, "{ms} ms catalogued");
    let id = tracks[0]["id"].as_str().unwrap();
    // The MP3 profile: its Info tag tells ffmpeg the priming to drop, so what it decodes is the
    // track itself.
    let (samples, log) = decoded_samples(&app.url(&format!("/stream/{id}?quality=low")), 22050);
    let secs = samples as f64 / 22050.0;
    assert!((secs - 4.0).abs() < 0.05, "{secs} s served: {log}");
}

/// MP3 in an MP4 (some podcast tools write it): the MP4 edit list, not a LAME tag, says where
/// the encoder's priming ends; it was applied to AAC and ALAC only, so such a file was
/// catalogued 25 ms long and played that much silence first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mp3_in_mp4_is_catalogued_as_its_edit_list_says() {
    let lib = tempfile::tempdir().unwrap();
    run(Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("sine=frequency=440:duration=7.3:sample_rate=44100")
        .args(["-ac", "2", "-c:a", "libmp3lame", "-b:a", "192k"])
        .arg(lib.path().join("podcast.mp4")));
    let app = spawn_app_with(Some(lib.path()), |c| c.library_rescan_secs = 0).await;
    let tracks = app.json("/api/tracks").await;
    assert_eq!(tracks.as_array().unwrap().len(), 1, "{tracks}");
    assert_eq!(tracks[0]["codec"], "mp3");
    let ms = tracks[0]["duration_ms"].as_u64().unwrap();
    assert!(ms.abs_diff(7300) <= 1, "{ms} ms catalogued");
    // Served from its first sound (the MP3 profile, whose Info tag tells ffmpeg its own
    // priming): the tone is there in the first 10 ms, where the source's priming was ~25 ms of
    // near silence.
    let id = tracks[0]["id"].as_str().unwrap();
    let mono = crate::helpers::decoded_mono(&app.url(&format!("/stream/{id}?quality=low")), 22050);
    assert!(
        (mono.len() as f64 / 22050.0 - 7.3).abs() < 0.05,
        "{} samples",
        mono.len()
    );
    let head = &mono[..220];
    let rms = rms(head);
    assert!(rms > 0.05, "first 10 ms rms {rms} (a whole tone: 0.088)");
}

/// Opus, which symphonia demuxes but cannot decode (ours does, `media::opus`): in WebM (what
/// `yt-dlp` saves), in 5.1 (several streams in each packet, RFC 7845 mapping family 1) and as
/// chained Ogg streams, each with its own pre-skip. Each is catalogued at its length and served
/// whole, and surround is folded to stereo with each speaker on its own side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opus_in_webm_in_surround_and_chained_is_served_whole_each_speaker_in_place() {
    let lib = tempfile::tempdir().unwrap();
    let opus = |name: &str, source: &str, extra: &[&str]| {
        let path = lib.path().join(name);
        run(Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", source])
            .args(extra)
            .args(["-c:a", "libopus"])
            .arg(&path));
        path
    };
    opus(
        "tone.webm",
        "sine=frequency=440:duration=4:sample_rate=48000",
        &["-ac", "2"],
    );
    // 5.1 (ffmpeg's order: FL FR FC LFE BL BR) with a tone on the front left and another on
    // the back right only: each must end up on its own side.
    opus(
        "surround.opus",
        "aevalsrc=exprs=0.3*sin(2*PI*440*t)|0|0|0|0|0.3*sin(2*PI*660*t):c=5.1:s=48000:d=3.5",
        &["-mapping_family", "1"],
    );
    let a = opus(
        "a.opus",
        "sine=frequency=440:duration=2.5:sample_rate=48000",
        &["-ac", "2"],
    );
    let b = opus(
        "b.opus",
        "sine=frequency=660:duration=3:sample_rate=48000",
        &["-ac", "2"],
    );
    let joined = [std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap()].concat();
    std::fs::write(lib.path().join("chained.opus"), joined).unwrap();
    std::fs::remove_file(a).unwrap();
    std::fs::remove_file(b).unwrap();

    let app = spawn_app_with(Some(lib.path()), |c| c.library_rescan_secs = 0).await;
    let tracks = app.json("/api/tracks").await;
    let tracks = tracks.as_array().unwrap();
    assert_eq!(tracks.len(), 3, "{tracks:?}");
    for (name, secs, channels, codec) in [
        ("tone.webm", 4.0, 2, "opus"),
        ("surround.opus", 3.5, 6, "opus"),
        ("chained.opus", 5.5, 2, "opus"),
    ] {
        let t = tracks
            .iter()
            .find(|t| t["filename"] == name)
            .unwrap_or_else(|| panic!("{name} catalogued: {tracks:?}"));
        assert_eq!(t["codec"], codec, "{t}");
        assert_eq!(t["sample_rate"], 48000, "{t}");
        assert_eq!(t["channels"], channels, "{t}");
        // WebM states no end trim that symphonia reads: up to one 20 ms packet over.
        let ms = t["duration_ms"].as_f64().unwrap();
        assert!(
            (0.0..=25.0).contains(&(ms - secs * 1000.0)),
            "{name}: {ms} ms catalogued"
        );
        let id = t["id"].as_str().unwrap();
        // The MP3 profile: its Info tag tells ffmpeg the priming to drop.
        let url = app.url(&format!("/stream/{id}?quality=low"));
        let (samples, log) = decoded_samples(&url, 22050);
        let served = samples as f64 / 22050.0;
        assert!(
            (served - secs).abs() < 0.05,
            "{name}: {served} s served: {log}"
        );
        // Sound, not silence.
        let mono = crate::helpers::decoded_mono(&url, 22050);
        let rms = rms(&mono);
        assert!(rms > 0.03, "{name}: rms {rms}");
        if channels == 6 {
            // Opus decodes in the Vorbis order (FL FC FR RL RR LFE): taken as it came, its back
            // right was folded to the left.
            let (left, right) = served_sides(&url);
            let (l440, l660) = (tone_power(&left, 440.0), tone_power(&left, 660.0));
            let (r440, r660) = (tone_power(&right, 440.0), tone_power(&right, 660.0));
            assert!(
                l440 > 100.0 * l660 && r660 > 100.0 * r440 && l440 > 1e-3 && r660 > 1e-3,
                "{name}: left 440/660 Hz {l440:.2e}/{l660:.2e}, right {r440:.2e}/{r660:.2e}"
            );
        }
    }
}

/// Surround, one tone per speaker, in the codecs that carry it: each is heard where it belongs
/// once folded to stereo: the left speakers on the left only, the right ones on the right only,
/// the centre on both, the LFE nowhere. Vorbis as libvorbis writes 5.1 (coupled in four steps
/// that share channels: symphonia 0.5.5 undid them in the wrong order, patched in `vendor/`, and
/// put the rear right's tone on the left); AAC 5.1 (symphonia's own decoder refused it; fdk-aac
/// decodes it), and AAC quad and 2.1, which a program config element describes (their channel
/// counts alone would say a centre); FLAC as the plain case.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn surround_keeps_each_speaker_in_place() {
    // (Hz, heard on the left, on the right) per channel, in ffmpeg's order for the layout.
    type Speaker = (f64, bool, bool);
    let (fl, fr, fc, lfe) = (
        (440.0, true, false),
        (550.0, false, true),
        (660.0, true, true),
        (50.0, false, false),
    );
    let (bl, br) = ((770.0, true, false), (880.0, false, true));
    let five_one = [fl, fr, fc, lfe, bl, br];
    let files: [(&str, &str, &str, &[Speaker]); 5] = [
        ("surround.ogg", "libvorbis", "5.1", &five_one),
        ("surround.m4a", "aac", "5.1", &five_one),
        ("surround.flac", "flac", "5.1", &five_one),
        ("quad.m4a", "aac", "quad", &[fl, fr, bl, br]),
        ("two-one.m4a", "aac", "2.1", &[fl, fr, lfe]),
    ];
    let lib = tempfile::tempdir().unwrap();
    for (name, codec, layout, speakers) in files {
        let exprs: Vec<String> = speakers
            .iter()
            .map(|(hz, ..)| format!("0.15*sin(2*PI*{hz}*t)"))
            .collect();
        let source = format!("aevalsrc=exprs={}:c={layout}:s=48000:d=3", exprs.join("|"));
        run(Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi"])
            .args(["-i", &source, "-c:a", codec])
            .arg(lib.path().join(name)));
    }

    let app = spawn_app_with(Some(lib.path()), |c| c.library_rescan_secs = 0).await;
    let tracks = app.json("/api/tracks").await;
    let tracks = tracks.as_array().unwrap();
    assert_eq!(tracks.len(), files.len(), "{tracks:?}");
    for (name, _, _, speakers) in files {
        let track = tracks
            .iter()
            .find(|t| t["filename"] == name)
            .unwrap_or_else(|| panic!("{name} catalogued: {tracks:?}"));
        assert_eq!(track["channels"], speakers.len(), "{track}");
        let id = track["id"].as_str().unwrap();
        let (left, right) = served_sides(&app.url(&format!("/stream/{id}?quality=low")));
        let heard = |side: &[f32], hz: f64| tone_power(side, hz) > 1e-4;
        let silent = |side: &[f32], hz: f64| tone_power(side, hz) < 1e-6;
        let report = || {
            let p = |side: &[f32]| {
                speakers
                    .iter()
                    .map(|&(hz, ..)| format!("{hz} Hz {:.1e}", tone_power(side, hz)))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            format!("{name}: left: {}; right: {}", p(&left), p(&right))
        };
        // (The LFE's 50 Hz tone would survive the MP3 profile: silent means left out.)
        for &(hz, on_left, on_right) in speakers {
            for (side, on) in [(&left, on_left), (&right, on_right)] {
                let ok = if on {
                    heard(side, hz)
                } else {
                    silent(side, hz)
                };
                assert!(ok, "{hz} Hz: {}", report());
            }
        }
    }
}

/// The left and right channels of what `url` serves, decoded by ffmpeg at 22.05 kHz.
fn served_sides(url: &str) -> (Vec<f32>, Vec<f32>) {
    let out = run(Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i", url])
        .args(["-f", "f32le", "-ac", "2", "-ar", "22050", "-"]));
    let stereo = f32le(&out.stdout);
    let side = |c: usize| stereo.iter().skip(c).step_by(2).copied().collect();
    (side(0), side(1))
}

/// What our decoder gives for `path`, interleaved in the file's own `channels` (1 or 2): mono
/// is played on both sides, so one side is the file's channel.
fn our_decode(path: &Path, channels: usize) -> Vec<f32> {
    let mut dec = stream_server::media::decode::SourceDecoder::open(path).unwrap();
    let mut stereo = Vec::new();
    while dec.next_block(&mut stereo).unwrap() {}
    stereo.iter().step_by(3 - channels).copied().collect()
}

/// Signal-to-noise ratio of `ours` against the reference `theirs`, in dB.
fn snr_db(ours: &[f32], theirs: &[f32]) -> f64 {
    let (mut signal, mut noise) = (0f64, 0f64);
    for (a, b) in ours.iter().zip(theirs) {
        signal += f64::from(*b).powi(2);
        noise += f64::from(a - b).powi(2);
    }
    10.0 * (signal / noise.max(1e-20)).log10()
}

/// Power of the `hz` component of `x` (22.05 kHz): A²/4 for a sine of amplitude A.
fn rms(x: &[f32]) -> f32 {
    (x.iter().map(|s| s * s).sum::<f32>() / x.len().max(1) as f32).sqrt()
}

fn tone_power(x: &[f32], hz: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * hz / 22050.0;
    let (mut c, mut s) = (0f64, 0f64);
    for (i, v) in x.iter().enumerate() {
        let phase = w * i as f64;
        c += f64::from(*v) * phase.cos();
        s += f64::from(*v) * phase.sin();
    }
    let n = x.len().max(1) as f64;
    (c * c + s * s) / (n * n)
}

/// What our AAC decoder (fdk-aac) gives is what ffmpeg's gives, sample for sample once the
/// edit list is applied: the same start (the priming dropped, no more, no less), the same
/// sound, and the end the edit list states. AAC-LC from ffmpeg's encoder in mono and stereo,
/// and HE-AAC v1 with nothing above the core's band (SBR rebuilds a high band as shaped noise,
/// which no two decoders share); SBR's filter-bank delay is the same in both.
#[test]
fn aac_decodes_as_ffmpeg_decodes_it() {
    let dir = tempfile::tempdir().unwrap();
    let lc = |name: &str, channels: &str, rate: u32| {
        let path = dir.path().join(name);
        run(Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg(format!("sine=frequency=440:duration=3:sample_rate={rate}"))
            .args(["-f", "lavfi", "-i"])
            .arg(format!("anoisesrc=d=3:c=pink:a=0.2:r={rate}"))
            .args(["-filter_complex", "amix=inputs=2", "-ac", channels])
            // No perceptual noise substitution: each decoder fills such bands with its own
            // random noise.
            .args(["-c:a", "aac", "-b:a", "128k", "-aac_pns", "0"])
            .arg(&path));
        path
    };
    let he = dir.path().join("he.aac");
    he_aac_adts(&he, false, 3.0, 0.0);
    let he_m4a = dir.path().join("he.m4a");
    run(Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-i"])
        .arg(&he)
        .args(["-c", "copy"])
        .arg(&he_m4a));
    for (path, channels, rate, min_snr) in [
        (lc("stereo.m4a", "2", 44100), 2, 44100, 60.0),
        (lc("mono.m4a", "1", 44100), 1, 44100, 60.0),
        // 96 kHz, which the MP4 sample entry's 16-bit rate field cannot state (ffmpeg writes
        // 0): the rate is the decoder's, durations the media timescale's.
        (lc("hires96.m4a", "2", 96000), 2, 96000, 60.0),
        (he_m4a, 2, 44100, 60.0),
    ] {
        // In the file's own channels (ffmpeg would upmix mono 3 dB down, where we play it at
        // full level on both sides).
        let out = run(Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-i"])
            .arg(&path)
            .args(["-f", "f32le", "-"]));
        let theirs = f32le(&out.stdout);
        let ours = our_decode(&path, channels);
        let name = path.file_name().unwrap().to_string_lossy();
        // ffmpeg drops the priming the edit list states but keeps the padding after the
        // track's end (less than a frame), which we cut: the same start, and our end where the
        // edit list puts it (ffmpeg's encoder wrote exactly 3 s).
        assert!(
            ours.len() <= theirs.len() && theirs.len() - ours.len() < channels * 1024,
            "{name}: {} samples, ffmpeg {}",
            ours.len(),
            theirs.len()
        );
        if name.starts_with("he") {
            assert_eq!(
                ours.len(),
                theirs.len(),
                "{name}: no edit list, nothing cut"
            );
        } else {
            assert_eq!(
                ours.len(),
                channels * 3 * rate,
                "{name}: the edit list's length"
            );
        }
        let snr = snr_db(&ours, &theirs);
        eprintln!("{name}: {snr:.1} dB");
        assert!(snr > min_snr, "{name}: {snr:.1} dB from ffmpeg's decode");
    }
}

/// What our Opus decoder gives is what libopus gives, sample for sample: the same start (the
/// pre-skip dropped, no more, no less), the same length, and the same sound, for music-like
/// stereo (CELT) and for speech at a low bitrate (SILK and hybrid frames).
#[test]
fn opus_decodes_as_libopus_decodes_it() {
    let lib = crate::fixtures::library();
    for (name, channels) in [("opus/stereo.opus", 2), ("opus/mono-voice.opus", 1)] {
        let path = lib.path(name);
        // libopus, the reference decoder (ffmpeg's own resamples SILK its own way: 20 dB
        // from libopus on the speech file), in the file's own channels (ffmpeg would upmix
        // mono 3 dB down, where we play it at full level on both sides).
        let out = run(Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-c:a", "libopus", "-i"])
            .arg(&path)
            .args(["-f", "f32le", "-ar", "48000", "-"]));
        let theirs = f32le(&out.stdout);
        let ours = our_decode(&path, channels);
        assert_eq!(ours.len(), theirs.len(), "{name}: samples");
        let snr = snr_db(&ours, &theirs);
        assert!(snr > 60.0, "{name}: {snr:.1} dB from libopus's decode");
    }
}

/// Two MP3s joined with `cat` at different rates: symphonia's decoder fails every frame after
/// the change, so such a file was catalogued and then failed at every play (422). It is skipped
/// at the scan, with its reason; one at a single rate is not.
#[test]
fn an_mp3_that_changes_rate_midway_is_skipped_with_its_reason() {
    let lib = tempfile::tempdir().unwrap();
    let mp3 = |hz: u32, rate: u32| {
        let path = lib.path().join(format!("part-{rate}.mp3"));
        run(Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg(format!("sine=frequency={hz}:duration=3:sample_rate={rate}"))
            .args(["-ac", "2", "-c:a", "libmp3lame", "-write_xing", "0"])
            .arg(&path));
        std::fs::read(&path).unwrap()
    };
    let a = mp3(440, 44100);
    let b = mp3(660, 22050);
    std::fs::write(lib.path().join("joined.mp3"), [a.clone(), b].concat()).unwrap();
    std::fs::write(lib.path().join("same.mp3"), [a.clone(), a].concat()).unwrap();
    std::fs::remove_file(lib.path().join("part-22050.mp3")).unwrap();
    let text = scan_cli(lib.path());
    let skipped: Vec<&str> = text.lines().filter(|l| l.starts_with("skipped")).collect();
    assert_eq!(skipped.len(), 1, "{text}");
    assert!(
        skipped[0].contains("joined.mp3") && skipped[0].contains("44100 Hz 2 ch, then 22050 Hz"),
        "{text}"
    );
    assert!(
        text.contains("same.mp3") && text.contains("part-44100.mp3"),
        "{text}"
    );
}

/// An HE-AAC ADTS stream of `secs` seconds at 44.1 kHz and 48 kbit/s (v2 adds parametric
/// stereo) with 440 Hz on the left, 660 Hz on the right and 15 kHz at amplitude `high` on both,
/// encoded by fdk-aac (the ffmpeg on the test machines has no HE-AAC encoder).
fn he_aac_adts(path: &Path, v2: bool, secs: f64, high: f64) {
    use stream_server::media::aac::{AacEncoder, AacObjectType};
    const RATE: u32 = 44_100;
    let kind = if v2 {
        AacObjectType::HeV2
    } else {
        AacObjectType::HeV1
    };
    let mut enc = AacEncoder::with_object_type(RATE, 48, kind).unwrap();
    let pcm: Vec<f32> = (0..(secs * f64::from(RATE)) as usize)
        .flat_map(|i| {
            let t = i as f64 / f64::from(RATE);
            let tone = |hz: f64, a: f64| a * (2.0 * std::f64::consts::PI * hz * t).sin();
            // 15 kHz on both sides: above the core's band, only SBR carries it.
            let top = tone(15_000.0, high);
            [tone(440.0, 0.3) + top, tone(660.0, 0.3) + top].map(|v| v as f32)
        })
        .collect();
    let mut frames = Vec::new();
    enc.encode(&pcm, &mut frames).unwrap();
    enc.finish(&mut frames).unwrap();
    std::fs::write(path, frames.concat()).unwrap();
}

/// HE-AAC, the low-bitrate AAC of podcasts, audiobooks and radio recordings, in M4A (as
/// `ffmpeg -c copy` writes it: the sample entry states the output rate) and in ADTS (whose
/// header states the core's rate, half the output's). symphonia's decoder played only the AAC
/// core: the M4A an octave up, twice as fast, then silence; everywhere without the high band
/// (SBR) and v2 in mono (no parametric stereo). fdk-aac decodes all of it: each file is served
/// at its pitch, as long as ffmpeg hears it, with each tone on its side and the high band as
/// loud as in ffmpeg's decode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn he_aac_plays_at_its_pitch_to_its_end() {
    let lib = tempfile::tempdir().unwrap();
    for (v2, name) in [(false, "he-v1"), (true, "he-v2")] {
        let adts = lib.path().join(format!("{name}.aac"));
        he_aac_adts(&adts, v2, 4.0, 0.1);
        run(Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-y", "-i"])
            .arg(&adts)
            .args(["-c", "copy"])
            .arg(lib.path().join(format!("{name}.m4a"))));
    }
    let app = spawn_app_with(Some(lib.path()), |c| c.library_rescan_secs = 0).await;
    let tracks = app.json("/api/tracks").await;
    let tracks = tracks.as_array().unwrap();
    assert_eq!(tracks.len(), 4, "{tracks:?}");
    for t in tracks {
        let name = t["filename"].as_str().unwrap();
        // ffmpeg's length of the file (it decodes SBR: the rate the container states).
        let out = run(Command::new("ffprobe")
            .args(["-v", "error", "-show_entries", "format=duration"])
            .args(["-of", "csv=p=0"])
            .arg(lib.path().join(name)));
        let theirs: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        // The rate and channels it decodes to, whatever the container states.
        assert_eq!(t["sample_rate"], 44100, "{name}: {t}");
        assert_eq!(t["channels"], 2, "{name}: {t}");
        let ms = t["duration_ms"].as_f64().unwrap();
        assert!(
            (ms - theirs * 1000.0).abs() < 30.0,
            "{name}: {ms} ms catalogued, ffprobe {theirs} s"
        );
        let id = t["id"].as_str().unwrap();
        let url = app.url(&format!("/stream/{id}?quality=high"));
        let (left, right) = served_sides(&url);
        let served = left.len() as f64 / 22050.0;
        assert!(
            (served - theirs).abs() < 0.1,
            "{name}: {served} s served, {theirs} s in the file"
        );
        // At its pitch, each tone on its side (v2: rebuilt by parametric stereo).
        let (l440, r660) = (tone_power(&left, 440.0), tone_power(&right, 660.0));
        let (l660, r440) = (tone_power(&left, 660.0), tone_power(&right, 440.0));
        assert!(
            l440 > 5e-3 && r660 > 5e-3 && l660 < 1e-4 && r440 < 1e-4,
            "{name}: left 440/660 Hz {l440:.1e}/{l660:.1e}, right {r440:.1e}/{r660:.1e}"
        );
        // The high band: as loud as in ffmpeg's decode of the file (the core alone has none).
        let ours = high_band_db(&url);
        let theirs = high_band_db(lib.path().join(name).to_str().unwrap());
        assert!(
            (ours - theirs).abs() < 3.0,
            "{name}: above 12 kHz {ours} dB served, {theirs} dB in ffmpeg's decode"
        );
        // Sound to the end: the last half second is not silence.
        let tail = &left[left.len() - 11025..];
        let rms = rms(tail);
        assert!(rms > 0.1, "{name}: the end is silent ({rms})");
    }
}

/// Mean level above 12 kHz of what `input` decodes to (ffmpeg's `volumedetect`), in dB.
fn high_band_db(input: &str) -> f64 {
    let out = run(Command::new("ffmpeg")
        .args(["-nostdin", "-v", "info", "-i", input])
        .args(["-af", "highpass=f=12000,highpass=f=12000,volumedetect"])
        .args(["-f", "null", "-"]));
    let log = String::from_utf8_lossy(&out.stderr);
    log.lines()
        .find_map(|l| l.split("mean_volume:").nth(1))
        .and_then(|v| v.trim().trim_end_matches("dB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no level in {log}"))
}

/// A library that cannot be read when the server starts (a share not mounted: the mount point
/// is there, empty, while the index lists tracks): the server serves on, and a track it cannot
/// know of yet is "try again" (503 with `Retry-After`), not "no such track", until a scan can
/// read the folder again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmounted_library_at_start_answers_try_again_until_it_is_back() {
    let lib = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    write_tone(&lib.path().join("a.wav"), 440, 2.0);
    let id = {
        let app = spawn_app_with(Some(lib.path()), |c| {
            c.library_rescan_secs = 0;
            c.data_dir = data.path().to_path_buf();
        })
        .await;
        app.track_id("a.wav").await
    };
    let stored = lib.path().with_extension("away");
    std::fs::rename(lib.path().join("a.wav"), &stored).unwrap();

    let app = spawn_app_with(Some(lib.path()), |c| {
        c.library_rescan_secs = 0;
        c.data_dir = data.path().to_path_buf();
    })
    .await;
    for path in [
        format!("/hls/{id}/master.m3u8"),
        format!("/stream/{id}"),
        "/stream/a.wav".to_string(),
    ] {
        let r = app.get(&path).await;
        assert_eq!(r.status(), 503, "{path}");
        assert!(r.headers().contains_key("retry-after"), "{path}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["code"], "library_unavailable", "{path}: {body}");
    }

    std::fs::rename(&stored, lib.path().join("a.wav")).unwrap();
    assert_eq!(rescan(&app).await["added"], 1);
    assert_eq!(
        app.get(&format!("/hls/{id}/master.m3u8")).await.status(),
        200
    );
    let r = app.get("/hls/no-such-track/master.m3u8").await;
    assert_eq!(r.status(), 404, "an unknown track is unknown again");
}

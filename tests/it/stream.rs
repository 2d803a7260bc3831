//! Progressive `/stream`: profile choice, byte ranges and validators, checked byte for byte.

use crate::fixtures::library;
use crate::helpers::{decoded_samples, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_are_byte_exact() {
    let lib = library();
    let app = spawn_app(Some(&lib.root)).await;
    let path = "/stream/flac/stereo44.flac?quality=medium";
    // The first download streams while the encode runs (no length yet, see below); ranges and
    // validators are those of the finished file.
    let first = app.get(path).await.bytes().await.unwrap();
    let id = app.track_id("flac/stereo44.flac").await;
    let req = app
        .state
        .streaming
        .transcode_request(&id, "medium")
        .unwrap();
    app.state.cache.complete(&req).await.unwrap();
    let full = app.get(path).await;
    assert_eq!(full.status(), 200);
    assert_eq!(full.headers()["accept-ranges"], "bytes");
    assert_eq!(full.headers()["content-type"], "audio/aac");
    // The URL outlives a version of the file: caches revalidate (the ETag names the version).
    assert_eq!(full.headers()["cache-control"], "public, no-cache");
    let etag = full.headers()["etag"].to_str().unwrap().to_string();
    let last_modified = full.headers()["last-modified"]
        .to_str()
        .unwrap()
        .to_string();
    let body = full.bytes().await.unwrap();
    let len = body.len();
    assert!(len > 100_000);
    assert!(first == body, "the streamed download is not the file");

    let cases: Vec<(String, usize, usize)> = vec![
        ("bytes=0-0".into(), 0, 0),
        ("bytes=0-99".into(), 0, 99),
        ("bytes=1000-".into(), 1000, len - 1),
        ("bytes=-500".into(), len - 500, len - 1),
        (
            format!("bytes={}-{}", len - 10, len + 1000),
            len - 10,
            len - 1,
        ),
        (format!("bytes=-{}", len * 2), 0, len - 1),
    ];
    for (range, start, end) in cases {
        let r = app
            .client
            .get(app.url(path))
            .header("Range", &range)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 206, "{range}");
        assert_eq!(
            r.headers()["content-range"],
            format!("bytes {start}-{end}/{len}").as_str(),
            "{range}"
        );
        assert_eq!(
            r.headers()["content-length"],
            (end - start + 1).to_string().as_str()
        );
        assert_eq!(r.bytes().await.unwrap(), body.slice(start..=end), "{range}");
    }

    let r = app
        .client
        .get(app.url(path))
        .header("Range", format!("bytes={len}-"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes */{len}").as_str()
    );
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["code"], "range_not_satisfiable", "{v}");

    // If-Range: a matching validator keeps the range, a stale one gets the whole body.
    let r = app
        .client
        .get(app.url(path))
        .header("Range", "bytes=10-19")
        .header("If-Range", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    let r = app
        .client
        .get(app.url(path))
        .header("Range", "bytes=10-19")
        .header("If-Range", &last_modified)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    let r = app
        .client
        .get(app.url(path))
        .header("Range", "bytes=10-19")
        .header("If-Range", "\"stale\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().len(), len);
    // Several ranges at once are answered whole (RFC 9110 allows it).
    let r = app
        .client
        .get(app.url(path))
        .header("Range", "bytes=0-1,5-6")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Conditional GET and HEAD.
    let r = app
        .client
        .get(app.url(path))
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    // HEAD too, and a 304 never claims a length (HEAD's empty body is not the file's).
    let r = app
        .client
        .head(app.url(path))
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    assert!(!r.headers().contains_key("content-length"), "{r:?}");
    // Last-Modified validates too (RFC 9110 §13.1.3), unless If-None-Match is there to decide.
    let r = app.client.get(app.url(path)).send().await.unwrap();
    let modified = r.headers()["last-modified"].to_str().unwrap().to_string();
    let since = |date: &str| {
        app.client
            .get(app.url(path))
            .header("If-Modified-Since", date)
            .send()
    };
    assert_eq!(since(&modified).await.unwrap().status(), 304);
    assert_eq!(
        since("Sun, 06 Nov 1994 08:49:37 GMT")
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(since("not a date").await.unwrap().status(), 200);
    let r = app
        .client
        .get(app.url(path))
        .header("If-Modified-Since", &modified)
        .header("If-None-Match", "\"other\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "If-None-Match decides");
    let r = app.client.head(app.url(path)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-length"], len.to_string().as_str());
    assert!(r.bytes().await.unwrap().is_empty());
    let r = app
        .client
        .head(app.url(path))
        .header("Range", "bytes=0-9")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-length"], "10");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mp3_with_info_tag_decodes_gapless_and_ranges_cover_the_tag() {
    let lib = library();
    let app = spawn_app(Some(&lib.root)).await;
    let path = "/stream/wav/mono48-24bit.wav?quality=low";
    let body = app.get(path).await.bytes().await.unwrap();
    assert!(
        body[..200].windows(4).any(|w| w == b"Info" || w == b"Xing"),
        "LAME Info tag in front"
    );
    // A range across the tag and the first frames.
    let r = app
        .client
        .get(app.url(path))
        .header("Range", "bytes=100-2999")
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap(), body.slice(100..3000));
    // The Info tag lets ffmpeg trim priming and padding: the duration is the source's.
    let (samples, _) = decoded_samples(&app.url(path), 22050);
    let secs = samples as f64 / 22050.0;
    assert!((secs - 9.5).abs() < 0.03, "{secs}");
}

/// With a ladder whose longest codec delay is not LAME's (a 16 kHz AAC rung added), the MP3
/// variant starts with a lead-in of silence to line up with the others; its progressive file
/// declares that lead-in as priming, so a gapless decoder still gets the source exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progressive_mp3_stays_gapless_whatever_the_ladder() {
    let lib = library();
    let app = crate::helpers::spawn_app_with(Some(&lib.root), |c| {
        c.profiles.push(stream_server::config::ProfileConfig {
            quality_id: "tiny".into(),
            bitrate_kbps: 32,
            sample_rate: 16000,
            codec: "aac".into(),
            bandwidth_estimate_kbps: Some(48),
        });
    })
    .await;
    let path = "/stream/wav/mono48-24bit.wav?quality=low";
    let (samples, log) = decoded_samples(&app.url(path), 22050);
    let secs = samples as f64 / 22050.0;
    assert!((secs - 9.5).abs() < 0.003, "{secs} s: {log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quality_follows_client_capabilities() {
    let lib = library();
    let app = spawn_app(Some(&lib.root)).await;
    let id = app.track_id("wav/low8k.wav").await;
    let quality = |r: &reqwest::Response| {
        r.headers()["x-stream-quality"]
            .to_str()
            .unwrap()
            .to_string()
    };

    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        ("?quality=low", &[], "low"),
        (
            "?bandwidth_kbps=150&connection=3g&device=mobile",
            &[],
            "mobile",
        ),
        (
            "?bandwidth_kbps=5000&connection=ethernet&device=desktop",
            &[],
            "high",
        ),
        ("?bandwidth_kbps=170&connection=wifi", &[], "low"),
        (
            "",
            &[
                ("Downlink", "10"),
                ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64)"),
            ],
            "high",
        ),
        ("", &[("ECT", "3g")], "mobile"),
        ("", &[("Downlink", "10"), ("Save-Data", "on")], "mobile"),
        (
            "",
            &[
                (
                    "User-Agent",
                    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) Mobile",
                ),
                ("ECT", "4g"),
            ],
            "medium",
        ),
        ("", &[], "medium"),
    ];
    for (query, headers, want) in cases {
        let mut req = app.client.head(app.url(&format!("/stream/{id}{query}")));
        for (k, v) in *headers {
            req = req.header(*k, *v);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 200, "{query} {headers:?}");
        assert_eq!(quality(&r), *want, "{query} {headers:?}");
    }
    for bad in [
        "?quality=ultra",
        "?bandwidth_kbps=lots",
        "?connection=carrier-pigeon",
        "?device=toaster",
    ] {
        let r = app.get(&format!("/stream/{id}{bad}")).await;
        assert!(r.status().is_client_error(), "{bad}: {}", r.status());
        let v: serde_json::Value = r.json().await.unwrap();
        assert!(v["error"].is_string(), "{bad}");
    }
}

/// A choice made from the client's capabilities is a redirect to the URL naming it, so that a
/// download continued with range requests can never get bytes of another encoding, whatever the
/// next request's hints say.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_choice_from_capabilities_redirects_to_a_url_whose_encoding_never_changes() {
    let lib = library();
    let app = spawn_app(Some(&lib.root)).await;
    let id = app.track_id("flac/stereo44.flac").await;
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let get = |path: String, hints: &'static [(&'static str, &'static str)]| {
        let mut req = no_redirects.get(app.url(&path));
        for (k, v) in hints {
            req = req.header(*k, *v);
        }
        req.send()
    };

    let slow = get(format!("/stream/{id}?connection=Cellular3G"), &[])
        .await
        .unwrap();
    assert_eq!(slow.status(), 302);
    assert_eq!(
        slow.headers()["location"],
        format!("/stream/{id}?connection=Cellular3G&quality=mobile").as_str()
    );
    assert_eq!(slow.headers()["cache-control"], "no-store");
    assert!(slow.headers()["vary"].to_str().unwrap().contains("ECT"));
    assert_eq!(slow.headers()["accept-ch"], "Downlink, ECT, Save-Data");
    let fast = get(format!("/stream/{id}"), &[("ECT", "4g")])
        .await
        .unwrap();
    assert_eq!(fast.status(), 302);
    assert_eq!(
        fast.headers()["location"],
        format!("/stream/{id}?quality=medium").as_str()
    );

    // The pinned URL: the same bytes whatever hints come with the next range request.
    let pinned = slow.headers()["location"].to_str().unwrap().to_string();
    let first = no_redirects
        .get(app.url(&pinned))
        .header("Range", "bytes=0-999")
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 206);
    assert_eq!(first.headers()["x-stream-quality"], "mobile");
    let etag = first.headers()["etag"].clone();
    let total = first.headers()["content-range"].clone();
    let first = first.bytes().await.unwrap();
    let again = no_redirects
        .get(app.url(&pinned))
        .header("Range", "bytes=0-999")
        .header("ECT", "4g")
        .header("Downlink", "10")
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 206);
    assert_eq!(again.headers()["etag"], etag);
    assert_eq!(again.headers()["content-range"], total);
    assert_eq!(again.bytes().await.unwrap(), first);
}

/// A long track's first listener gets audio as soon as its first segment is encoded, not after
/// the whole encode: the download streams while the encode runs, and holds exactly the bytes
/// of the finished file. MP3, whose gapless Info frame comes first, waits for the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_tracks_download_starts_before_its_encode_ends() {
    let lib = tempfile::tempdir().unwrap();
    let long = lib.path().join("long.wav");
    crate::helpers::run(
        std::process::Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-f", "lavfi", "-i"])
            .arg("sine=frequency=330:duration=300:sample_rate=22050")
            .args(["-ac", "1"])
            .arg(&long),
    );
    std::fs::copy(&long, lib.path().join("long-mp3.wav")).unwrap();
    let app = spawn_app(Some(lib.path())).await;
    let id = app.track_id("long.wav").await;
    let req = app.state.streaming.transcode_request(&id, "high").unwrap();

    // A player's probe (`HEAD`) is answered as the `GET` would be, without waiting for the
    // whole encode.
    let head = app
        .client
        .head(app.url("/stream/long.wav?quality=high"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert!(head.headers().get("content-length").is_none());
    assert_eq!(head.headers()["x-stream-quality"], "high");
    assert!(
        !app.state.cache.is_complete(&req),
        "the HEAD was answered only after the whole encode"
    );

    let mut r = app
        .get_with("/stream/long.wav?quality=high", "range", "bytes=0-")
        .await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("content-length").is_none());
    assert!(r.headers().get("etag").is_none());
    assert_eq!(r.headers()["cache-control"], "no-store");
    let first = r.chunk().await.unwrap().expect("a first chunk");
    assert_eq!(
        (first[0], first[1] & 0xF0),
        (0xFF, 0xF0),
        "ADTS from byte 0"
    );
    assert!(
        !app.state.cache.is_complete(&req),
        "the first bytes came only after the whole encode"
    );
    let mut streamed = first.to_vec();
    while let Some(chunk) = r.chunk().await.unwrap() {
        streamed.extend_from_slice(&chunk);
    }

    // Once finished, the same URL answers with the file, its length and validators, and the
    // same bytes.
    app.state.cache.complete(&req).await.unwrap();
    let done = app.get("/stream/long.wav?quality=high").await;
    assert_eq!(done.status(), 200);
    assert!(done.headers().get("etag").is_some());
    let file = done.bytes().await.unwrap();
    assert_eq!(streamed.len(), file.len());
    assert!(streamed == file, "streamed bytes differ from the file");
    let tmp = tempfile::NamedTempFile::with_suffix(".aac").unwrap();
    std::fs::write(tmp.path(), &streamed).unwrap();
    let (samples, _) = decoded_samples(tmp.path().to_str().unwrap(), 44100);
    assert!((samples as f64 / 44100.0 - 300.0).abs() < 0.1, "{samples}");

    // MP3 waits for its Info frame: a length, and the tag first.
    let mp3 = app.get("/stream/long-mp3.wav?quality=low").await;
    assert_eq!(mp3.status(), 200);
    assert!(mp3.headers().get("content-length").is_some());
    let body = mp3.bytes().await.unwrap();
    assert!(
        body[..body.len().min(200)].windows(4).any(|w| w == b"Info"),
        "LAME Info frame first"
    );
}

//! `spawn_app`: the real server on an ephemeral port with its own data directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use stream_server::config::Config;
use stream_server::server;
use tokio::sync::oneshot;

pub struct TestApp {
    pub addr: SocketAddr,
    pub base: String,
    pub client: reqwest::Client,
    /// Kept so tests can reach into the server when they need to, and so the data directory
    /// lives as long as the server.
    #[allow(dead_code)]
    pub state: std::sync::Arc<stream_server::http::AppState>,
    #[allow(dead_code)]
    pub data_dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request")
    }

    /// `GET path` with one request header.
    pub async fn get_with(&self, path: &str, name: &str, value: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .header(name, value)
            .send()
            .await
            .expect("request")
    }

    /// The first variant URI of a session's master playlist (the rung it starts players on).
    pub async fn first_variant(&self, track: &str, session_id: &str) -> String {
        let text = self
            .get(&format!("/hls/{track}/master.m3u8?session_id={session_id}"))
            .await
            .text()
            .await
            .expect("master playlist");
        first_uri(&text).to_string()
    }

    pub async fn json(&self, path: &str) -> serde_json::Value {
        let r = self.get(path).await;
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.expect("json body")
    }

    /// POSTs `body` as JSON and returns the JSON answer (any status).
    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> serde_json::Value {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("json body")
    }

    /// Polls the catalogue (for up to 10 s) until `ok` holds for track `id` (its JSON, or
    /// `None` once it is gone), and returns what it saw last.
    pub async fn wait_for_track(
        &self,
        id: &str,
        ok: impl Fn(Option<&serde_json::Value>) -> bool,
    ) -> Option<serde_json::Value> {
        for _ in 0..100 {
            let r = self.get(&format!("/api/tracks/{id}")).await;
            let t = (r.status() == 200).then_some(r.json::<serde_json::Value>().await.unwrap());
            if ok(t.as_ref()) {
                return t;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("track {id} never reached the expected state");
    }

    /// The id of the track whose library-relative name is `filename`.
    pub async fn track_id(&self, filename: &str) -> String {
        let tracks = self.json("/api/tracks").await;
        tracks
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["filename"] == filename)
            .unwrap_or_else(|| panic!("{filename} not in the library: {tracks}"))["id"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

/// The first URI line of an HLS playlist (a master's first variant, a media playlist's first
/// segment).
pub fn first_uri(playlist: &str) -> &str {
    playlist
        .lines()
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .expect("a URI in the playlist")
}

/// Starts the server over `library` (the demo library when `None`) and waits until it is ready.
pub async fn spawn_app(library: Option<&Path>) -> TestApp {
    spawn_app_with(library, |_| {}).await
}

pub async fn spawn_app_with(library: Option<&Path>, tweak: impl FnOnce(&mut Config)) -> TestApp {
    let data_dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config {
        bind: "127.0.0.1:0".parse().unwrap(),
        library: library.map(Path::to_path_buf),
        data_dir: data_dir.path().to_path_buf(),
        // No web player unless a test asks for one (the default would pick up `web/dist`).
        web_dir: Some(data_dir.path().join("no-web-player")),
        // No periodic LiveStats unless a test asks for them: one landing in the middle of a
        // test's exact sequence of events would fail it at random.
        live_stats_secs: 0,
        ..Config::default()
    };
    tweak(&mut config);
    let state = server::build_state(config).await.expect("server state");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server::run(listener, state.clone(), async move {
        let _ = stopped.await;
    }));
    let app = TestApp {
        addr,
        base: format!("http://{addr}"),
        client: reqwest::Client::new(),
        state,
        data_dir,
        stop: Some(stop),
    };
    for _ in 0..600 {
        if let Ok(r) = app.client.get(app.url("/healthz")).send().await {
            if r.status() == 200 {
                return app;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("server not healthy within 30 s");
}

/// Runs a command, failing the test with its stderr if it fails.
pub fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (is ffmpeg installed?)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Samples per channel ffmpeg decodes from `input` (a file or URL), and its stderr.
pub fn decoded_samples(input: &str, rate: u32) -> (u64, String) {
    let out = run(Command::new("ffmpeg")
        .args([
            "-nostdin", "-v", "error", "-i", input, "-f", "s16le", "-ac", "2", "-ar",
        ])
        .arg(rate.to_string())
        .arg("-"));
    (
        (out.stdout.len() / 4) as u64,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// What ffmpeg decodes from `input` (a file or URL), mixed to mono at `rate`.
pub fn decoded_mono(input: &str, rate: u32) -> Vec<f32> {
    let out = run(Command::new("ffmpeg")
        .args([
            "-nostdin", "-v", "error", "-i", input, "-f", "f32le", "-ac", "1", "-ar",
        ])
        .arg(rate.to_string())
        .arg("-"));
    f32le(&out.stdout)
}

/// Raw little-endian f32 samples (ffmpeg's `-f f32le`).
pub fn f32le(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

/// `ffprobe` stream fields of the first audio stream.
pub fn probe_stream(input: &str) -> serde_json::Value {
    let out = run(Command::new("ffprobe").args([
        "-v",
        "error",
        "-select_streams",
        "a:0",
        "-show_entries",
        "stream=codec_name,sample_rate,channels",
        "-of",
        "json",
        input,
    ]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["streams"][0].clone()
}

pub fn workspace_tmp() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
}

/// A server run as its own process (`serve` on port 0 over `lib`, its own data dir), for what
/// only a process shows: several nodes, signals, exit codes. Killed when dropped.
pub struct ServerProcess {
    pub child: std::process::Child,
    pub addr: String,
    pub data: tempfile::TempDir,
}

impl ServerProcess {
    pub async fn wait_healthy(&self, client: &reqwest::Client) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            if let Ok(r) = client
                .get(format!("http://{}/healthz", self.addr))
                .send()
                .await
            {
                if r.status() == 200 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the server at {} never became healthy", self.addr);
    }

    /// `GET path` as JSON.
    pub async fn json(&self, client: &reqwest::Client, path: &str) -> serde_json::Value {
        client
            .get(format!("http://{}{path}", self.addr))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// A WebSocket on `/api/ws?{query}`, once the hub has registered it (the 101 comes before).
    pub async fn ws(&self, query: &str) -> crate::websocket::Ws {
        let (mut ws, _) =
            tokio_tungstenite::connect_async(format!("ws://{}/api/ws?{query}", self.addr))
                .await
                .expect("websocket connects");
        crate::websocket::ready(&mut ws).await;
        ws
    }

    /// Sends `signal` (a `kill` name: TERM, INT) to the process.
    pub fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{signal} failed");
    }

    /// Waits up to `limit` for the process to exit; its status, or `None` if it is still up.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `stream-server serve` with `args` and `envs` added, and waits for the address it
/// prints.
pub fn start_process(lib: &Path, args: &[&str], envs: &[(&str, &str)]) -> ServerProcess {
    use std::io::BufRead as _;
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_stream-server"))
        .args(["serve", "--bind", "127.0.0.1:0", "--library"])
        .arg(lib)
        .arg("--data-dir")
        .arg(data.path())
        .arg("--web-dir")
        .arg(data.path().join("none"))
        .args(args)
        .envs(envs.iter().copied())
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(rest) = line.split("listening on http://").nth(1) {
                let _ = tx.send(rest.split('/').next().unwrap_or_default().to_string());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the server printed its address");
    ServerProcess { child, addr, data }
}

//! wsload: WebSocket broadcast fan-out load tool for stream-server's hub, and for any server
//! speaking the same protocol subset (bench/wsload/node-server).
//!
//! 1. Opens N connections to `ws://HOST/api/ws?user_id=load-{i}`, in batches, each sending
//!    `Subscribe` for `["ServerMessage"]` and waiting for its `CommandResponse`.
//! 2. Optionally holds them idle for `--idle-secs` (every stream is still polled, so the
//!    server's pings are answered), for the caller to read the server's memory.
//! 3. For each of `--rates`, publishes that many events per second over
//!    `POST /api/admin/message` for `--duration-secs`, each message `"<seq>:<send_micros>"`;
//!    every client records the latency of each `ServerMessage` it gets, and counts them.
//! 4. With `--max-throughput`, publishes as fast as the server answers (pipelined requests,
//!    and at most `--window` undelivered events per client) and reports the delivery rate.
//!
//! Output: one JSON object per line on stdout. Lines with `"event":"phase_start"` mark the
//! start of a phase (for a driver that samples the server meanwhile); lines with `"phase"`
//! are results. Latencies are measured on one monotonic clock: the publisher and the clients
//! are this one process, so the send time in a message and the receive time are comparable
//! to the microsecond, whatever the wall clock does.
//!
//! Single-threaded by default, so that `taskset -c 1 wsload …` really is one core.

mod hist;
mod publish;
mod rxstamp;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Parser;
use futures_util::{SinkExt as _, StreamExt as _};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use hist::Histogram;
use publish::{Counters, Pace, PublishConfig};
use rxstamp::RxStamped;

#[derive(Parser, Debug)]
#[command(
    name = "wsload",
    about = "WebSocket broadcast fan-out load: N subscribed clients, events published over POST /api/admin/message",
    long_about = None
)]
struct Args {
    /// The server, HOST:PORT (serving GET /api/ws and POST /api/admin/message).
    #[arg(long, default_value = "127.0.0.1:8082")]
    server: String,
    /// WebSocket connections to open (each needs a file descriptor here and on the server:
    /// raise `ulimit -n` first).
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    /// Connections opened at once; the next batch starts when this one has subscribed.
    #[arg(long, default_value_t = 500)]
    ramp_batch: usize,
    /// Seconds allowed for one connection's TCP connect, upgrade and Subscribe answer.
    #[arg(long, default_value_t = 15)]
    connect_timeout_secs: u64,
    /// `user_id` of connection i is this followed by i.
    #[arg(long, default_value = "load-")]
    user_prefix: String,
    /// Runtime threads; 1 is a current-thread runtime (one core).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Hold every connection open and idle this long after connecting (0: skip).
    #[arg(long, default_value_t = 0)]
    idle_secs: u64,
    /// Event rates to run, events per second, comma-separated (each event goes to every
    /// client: 15 events/s × 10,000 clients = 150,000 messages/s).
    #[arg(long, value_delimiter = ',')]
    rates: Vec<f64>,
    /// Publishing time of each rate phase and of the max-throughput phase.
    #[arg(long, default_value_t = 30)]
    duration_secs: u64,
    /// After the rate phases, publish as fast as the server answers.
    #[arg(long)]
    max_throughput: bool,
    /// Publisher connections (keep-alive).
    #[arg(long, default_value_t = 2)]
    publisher_conns: usize,
    /// Requests in flight on each publisher connection (HTTP/1.1 pipelining).
    #[arg(long, default_value_t = 4)]
    pipeline: usize,
    /// Max-throughput phase: at most this many events per client published but not yet
    /// delivered (a window on delivery, below the server's per-connection queue so that
    /// publishing does not simply overflow it); 0 = no window, only the pipeline depth.
    #[arg(long, default_value_t = 64)]
    window: u64,
    /// After publishing stops, wait at most this long for the last deliveries.
    #[arg(long, default_value_t = 10)]
    drain_secs: u64,
    /// Pause between phases.
    #[arg(long, default_value_t = 2)]
    settle_secs: u64,
    /// Read buffer of each client connection, bytes (tungstenite's default is 128 KiB; the
    /// messages here are under 100 bytes).
    #[arg(long, default_value_t = 4096)]
    read_buffer: usize,
}

/// Where the load goes.
pub struct Target {
    pub addr: std::net::SocketAddr,
    /// `HOST:PORT` as given, for the Host header and the WebSocket URL.
    pub host: String,
    pub user_prefix: String,
}

const CONNECTING: u8 = 0;
const SUBSCRIBED: u8 = 1;
const FAILED: u8 = 2;
const CLOSED: u8 = 3;

#[derive(Default)]
struct Slot {
    state: AtomicU8,
    /// `ServerMessage`s of the current phase delivered to this connection.
    delivered: AtomicU32,
}

/// What every connection task records into: atomics only, so it works on any runtime.
pub struct Shared {
    /// Messages with a lower sequence number belong to no phase (or an earlier one).
    first_seq: AtomicU64,
    delivered: AtomicU64,
    /// `ServerMessage`s from before the current phase (late deliveries).
    stale: AtomicU64,
    /// A message with a sequence number at or below one this client already had.
    out_of_order: AtomicU64,
    /// Other events (`LiveStats`, command responses, …) and unparsable messages.
    other_events: AtomicU64,
    pings: AtomicU64,
    alive: AtomicU64,
    /// Subscribed connections that closed since.
    closed: AtomicU64,
    hist: Histogram,
    /// Latency to the client's socket: the kernel's receive time (see `rxstamp`).
    hist_socket: Histogram,
    slots: Box<[Slot]>,
}

impl Shared {
    fn new(connections: usize) -> Self {
        Self {
            first_seq: AtomicU64::new(u64::MAX),
            delivered: AtomicU64::new(0),
            stale: AtomicU64::new(0),
            out_of_order: AtomicU64::new(0),
            other_events: AtomicU64::new(0),
            pings: AtomicU64::new(0),
            alive: AtomicU64::new(0),
            closed: AtomicU64::new(0),
            hist: Histogram::new(),
            hist_socket: Histogram::new(),
            slots: (0..connections).map(|_| Slot::default()).collect(),
        }
    }

    /// Open, subscribed connections.
    pub fn alive(&self) -> u64 {
        self.alive.load(Ordering::Relaxed)
    }

    /// `ServerMessage`s delivered in the current phase.
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    /// Starts counting messages from `first_seq` on; returns the connections alive now.
    fn begin_phase(&self, first_seq: u64) -> Vec<usize> {
        self.first_seq.store(first_seq, Ordering::SeqCst);
        self.delivered.store(0, Ordering::Relaxed);
        self.stale.store(0, Ordering::Relaxed);
        self.out_of_order.store(0, Ordering::Relaxed);
        self.hist.reset();
        self.hist_socket.reset();
        let mut alive = Vec::with_capacity(self.slots.len());
        for (i, s) in self.slots.iter().enumerate() {
            s.delivered.store(0, Ordering::Relaxed);
            if s.state.load(Ordering::Relaxed) == SUBSCRIBED {
                alive.push(i);
            }
        }
        alive
    }

    /// From now on deliveries count as stale (they arrived after their phase ended).
    fn end_phase(&self) {
        self.first_seq.store(u64::MAX, Ordering::SeqCst);
    }

    /// `arrived`: when the kernel received it, on the `now_micros` clock, if known.
    fn on_text(&self, i: usize, text: &str, last_seq: &mut Option<u64>, arrived: Option<u64>) {
        let Some((seq, sent)) = server_message(text) else {
            self.other_events.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if seq < self.first_seq.load(Ordering::Relaxed) {
            self.stale.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.hist.record(now_micros().saturating_sub(sent));
        if let Some(at) = arrived {
            self.hist_socket.record(at.saturating_sub(sent));
        }
        self.delivered.fetch_add(1, Ordering::Relaxed);
        self.slots[i].delivered.fetch_add(1, Ordering::Relaxed);
        if last_seq.is_some_and(|last| seq <= last) {
            self.out_of_order.fetch_add(1, Ordering::Relaxed);
        } else {
            *last_seq = Some(seq);
        }
    }
}

/// A wall-clock time (µs since the epoch, as kernel timestamps are) on the `now_micros` clock.
/// The offset between the two clocks is read once, so a wall-clock step during a run would
/// shift socket latencies by that step (the read-time latencies do not depend on it).
fn wall_to_mono(wall: u64) -> u64 {
    static OFFSET: OnceLock<i128> = OnceLock::new();
    let offset =
        OFFSET.get_or_init(|| i128::from(rxstamp::wall_micros()) - i128::from(now_micros()));
    u64::try_from((i128::from(wall) - offset).max(0)).unwrap_or(0)
}

/// Microseconds on the process's monotonic clock (the publisher and the clients share it).
pub fn now_micros() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    u64::try_from(EPOCH.get_or_init(Instant::now).elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// An event as far as this tool looks at it.
#[derive(Deserialize)]
struct Incoming {
    event: String,
    message: Option<String>,
    command_id: Option<String>,
    success: Option<bool>,
    error: Option<String>,
}

/// The stream-server and Node peers both serialise `ServerMessage` with these fields first.
const FAST_PREFIX: &str = r#"{"event":"ServerMessage","message":""#;

/// `(seq, send_micros)` of a benchmark `ServerMessage`, `None` for anything else.
fn server_message(text: &str) -> Option<(u64, u64)> {
    if let Some(rest) = text.strip_prefix(FAST_PREFIX) {
        return parse_payload(rest.split('"').next()?);
    }
    if !text.contains("ServerMessage") {
        return None;
    }
    // Some other field order or spacing: parse it properly.
    let ev: Incoming = serde_json::from_str(text).ok()?;
    if ev.event != "ServerMessage" {
        return None;
    }
    parse_payload(&ev.message?)
}

fn parse_payload(message: &str) -> Option<(u64, u64)> {
    let (seq, sent) = message.split_once(':')?;
    Some((seq.parse().ok()?, sent.parse().ok()?))
}

/// CPU time of this process (all threads), seconds; Linux only (`None` elsewhere).
fn cpu_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces: the
    // first is field 3 (state); utime and stime are fields 14 and 15.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // USER_HZ: 100 on every Linux architecture in use.
    Some((utime + stime) as f64 / 100.0)
}

fn cpu_pct(cpu0: Option<f64>, cpu1: Option<f64>, wall: Duration) -> Option<f64> {
    let secs = wall.as_secs_f64();
    if secs <= 0.0 {
        return None;
    }
    Some(round2((cpu1? - cpu0?) / secs * 100.0))
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

fn emit(v: &Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.connections == 0 || args.ramp_batch == 0 {
        bail!("--connections and --ramp-batch must be at least 1");
    }
    if let Some(r) = args.rates.iter().find(|&&r| !r.is_finite() || r <= 0.0) {
        bail!("rates are events per second above 0, not {r}");
    }
    if args.publisher_conns == 0 || args.pipeline == 0 {
        bail!("--publisher-conns and --pipeline must be at least 1");
    }
    now_micros(); // start the clock
    let mut builder = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    if args.threads > 1 {
        builder.worker_threads(args.threads);
    }
    let runtime = builder
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let addr = tokio::net::lookup_host(args.server.as_str())
        .await
        .with_context(|| format!("resolving {}", args.server))?
        .next()
        .with_context(|| format!("{} resolves to no address", args.server))?;
    let target = Arc::new(Target {
        addr,
        host: args.server.clone(),
        user_prefix: args.user_prefix.clone(),
    });
    let shared = Arc::new(Shared::new(args.connections));
    let next_seq = Arc::new(AtomicU64::new(0));

    let connected = connect_all(&args, &target, &shared).await;
    emit(&connected);
    if shared.alive() == 0 {
        bail!("no connection could subscribe (see the connect line)");
    }

    if args.idle_secs > 0 {
        emit(&idle(&shared, Duration::from_secs(args.idle_secs)).await);
    }
    for &rate in &args.rates {
        tokio::time::sleep(Duration::from_secs(args.settle_secs)).await;
        let result = phase(&args, &target, &shared, &next_seq, Pace::Rate(rate)).await;
        emit(&result);
    }
    if args.max_throughput {
        tokio::time::sleep(Duration::from_secs(args.settle_secs)).await;
        let pace = Pace::Max {
            window: args.window,
        };
        emit(&phase(&args, &target, &shared, &next_seq, pace).await);
    }
    emit(&json!({
        "phase": "done",
        "alive": shared.alive(),
        "closed_total": shared.closed.load(Ordering::Relaxed),
        "pings_received": shared.pings.load(Ordering::Relaxed),
        "other_events": shared.other_events.load(Ordering::Relaxed),
    }));
    // Dropping the runtime drops every connection (the server sees them close).
    Ok(())
}

/// Opens every connection, batch by batch.
async fn connect_all(args: &Args, target: &Arc<Target>, shared: &Arc<Shared>) -> Value {
    emit(&json!({"event": "phase_start", "phase": "connect", "connections": args.connections}));
    let config = WebSocketConfig::default()
        .read_buffer_size(args.read_buffer.max(256))
        // Only Subscribe and pongs are written: send each at once.
        .write_buffer_size(0);
    let timeout = Duration::from_secs(args.connect_timeout_secs.max(1));
    let (report, mut reports) = mpsc::unbounded_channel::<Result<(), String>>();
    let started = Instant::now();
    let cpu0 = cpu_secs();
    let mut failures: BTreeMap<String, u64> = BTreeMap::new();
    let mut count_report = |r: Result<(), String>| {
        if let Err(kind) = r {
            *failures.entry(kind).or_default() += 1;
        }
    };
    let mut next = 0;
    while next < args.connections {
        let end = (next + args.ramp_batch).min(args.connections);
        for i in next..end {
            tokio::spawn(connection(
                i,
                target.clone(),
                shared.clone(),
                config,
                timeout,
                report.clone(),
            ));
        }
        // Every task reports once, within its own timeout; the margin is for a starved runtime.
        let deadline = tokio::time::Instant::now() + timeout + Duration::from_secs(5);
        let mut pending = end - next;
        while pending > 0 {
            match tokio::time::timeout_at(deadline, reports.recv()).await {
                Ok(Some(r)) => count_report(r),
                Ok(None) | Err(_) => break,
            }
            pending -= 1;
        }
        next = end;
    }
    drop(report);
    // Late reports of a batch that overran its deadline.
    while let Ok(r) = reports.try_recv() {
        count_report(r);
    }
    let elapsed = started.elapsed();
    let mut states = [0u64; 4];
    for s in shared.slots.iter() {
        let st = usize::from(s.state.load(Ordering::Relaxed));
        if let Some(n) = states.get_mut(st) {
            *n += 1;
        }
    }
    let subscribed = states[usize::from(SUBSCRIBED)] + states[usize::from(CLOSED)];
    json!({
        "phase": "connect",
        "connections": args.connections,
        "subscribed": subscribed,
        "alive": shared.alive(),
        "failed": states[usize::from(FAILED)],
        "still_connecting": states[usize::from(CONNECTING)],
        "closed_since": states[usize::from(CLOSED)],
        "failures": failures,
        "secs": round2(elapsed.as_secs_f64()),
        "per_sec": round2(subscribed as f64 / elapsed.as_secs_f64().max(1e-9)),
        "client_cpu_pct": cpu_pct(cpu0, cpu_secs(), elapsed),
    })
}

/// One client: connect, subscribe, then read until the connection ends.
async fn connection(
    i: usize,
    target: Arc<Target>,
    shared: Arc<Shared>,
    config: WebSocketConfig,
    timeout: Duration,
    report: mpsc::UnboundedSender<Result<(), String>>,
) {
    let ws = match tokio::time::timeout(timeout, open(i, &target, config)).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(kind)) => {
            shared.slots[i].state.store(FAILED, Ordering::Relaxed);
            let _ = report.send(Err(kind));
            return;
        }
        Err(_) => {
            shared.slots[i].state.store(FAILED, Ordering::Relaxed);
            let _ = report.send(Err("timeout".into()));
            return;
        }
    };
    shared.alive.fetch_add(1, Ordering::Relaxed);
    shared.slots[i].state.store(SUBSCRIBED, Ordering::Relaxed);
    let _ = report.send(Ok(()));
    drop(report);
    listen(ws, i, &shared).await;
    shared.slots[i].state.store(CLOSED, Ordering::Relaxed);
    shared.alive.fetch_sub(1, Ordering::Relaxed);
    shared.closed.fetch_add(1, Ordering::Relaxed);
}

/// Connects and subscribes; the error is a short failure kind (with the server's refusal, if
/// it gave one).
async fn open(
    i: usize,
    target: &Target,
    config: WebSocketConfig,
) -> Result<WebSocketStream<RxStamped>, String> {
    let tcp = TcpStream::connect(target.addr)
        .await
        .map_err(|e| format!("tcp_connect: {}", e.kind()))?;
    let _ = tcp.set_nodelay(true);
    let tcp = RxStamped::new(tcp);
    let url = format!(
        "ws://{}/api/ws?user_id={}{i}",
        target.host, target.user_prefix
    );
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(url, tcp, Some(config))
        .await
        .map_err(|e| match e {
            tokio_tungstenite::tungstenite::Error::Http(r) => {
                format!("upgrade_refused: {}", r.status())
            }
            _ => "handshake".to_string(),
        })?;
    let command_id = format!("s{i}");
    let subscribe = json!({
        "command": "Subscribe",
        "command_id": command_id,
        "events": ["ServerMessage"],
        "filters": null,
    });
    ws.send(Message::text(subscribe.to_string()))
        .await
        .map_err(|_| "subscribe_send".to_string())?;
    while let Some(msg) = ws.next().await {
        let text = match msg {
            Ok(Message::Text(t)) => t,
            Ok(_) => continue,
            Err(_) => break,
        };
        let Ok(ev) = serde_json::from_str::<Incoming>(text.as_str()) else {
            continue;
        };
        if ev.event == "CommandResponse" && ev.command_id.as_deref() == Some(command_id.as_str()) {
            return if ev.success == Some(true) {
                Ok(ws)
            } else {
                Err(format!(
                    "subscribe_rejected: {}",
                    ev.error.unwrap_or_default()
                ))
            };
        }
    }
    Err("closed_before_subscribed".into())
}

/// Reads until the connection ends. Polling the stream is also what answers the server's pings
/// (tungstenite queues the pong and flushes it on the next poll).
async fn listen(mut ws: WebSocketStream<RxStamped>, i: usize, shared: &Shared) {
    let mut last_seq = None;
    while let Some(msg) = ws.next().await {
        match msg {
            Ok(Message::Text(t)) => {
                let arrived = ws.get_ref().last_rx_micros().map(wall_to_mono);
                shared.on_text(i, t.as_str(), &mut last_seq, arrived)
            }
            Ok(Message::Ping(_)) => {
                shared.pings.fetch_add(1, Ordering::Relaxed);
            }
            // A close frame is answered by the stream; the next poll ends it.
            Ok(_) => {}
            Err(_) => break,
        }
    }
}

async fn idle(shared: &Shared, secs: Duration) -> Value {
    let alive_before = shared.alive();
    let closed0 = shared.closed.load(Ordering::Relaxed);
    let pings0 = shared.pings.load(Ordering::Relaxed);
    let other0 = shared.other_events.load(Ordering::Relaxed);
    emit(
        &json!({"event": "phase_start", "phase": "idle", "secs": secs.as_secs(), "alive": alive_before}),
    );
    let cpu0 = cpu_secs();
    let started = Instant::now();
    tokio::time::sleep(secs).await;
    json!({
        "phase": "idle",
        "secs": secs.as_secs(),
        "alive_before": alive_before,
        "alive_after": shared.alive(),
        "closed_during": shared.closed.load(Ordering::Relaxed) - closed0,
        "pings_received": shared.pings.load(Ordering::Relaxed) - pings0,
        "other_events": shared.other_events.load(Ordering::Relaxed) - other0,
        "client_cpu_pct": cpu_pct(cpu0, cpu_secs(), started.elapsed()),
    })
}

/// One publishing phase: paced at a rate, or flat out.
async fn phase(
    args: &Args,
    target: &Arc<Target>,
    shared: &Arc<Shared>,
    next_seq: &Arc<AtomicU64>,
    pace: Pace,
) -> Value {
    let (name, rate) = match pace {
        Pace::Rate(r) => ("rate", Some(r)),
        Pace::Max { .. } => ("max", None),
    };
    let duration = Duration::from_secs(args.duration_secs.max(1));
    let clients = shared.begin_phase(next_seq.load(Ordering::SeqCst));
    let n = clients.len() as u64;
    let closed0 = shared.closed.load(Ordering::Relaxed);
    emit(&json!({
        "event": "phase_start",
        "phase": name,
        "events_per_sec": rate,
        "clients": n,
        "duration_secs": duration.as_secs(),
    }));

    let counters = Arc::new(Counters::default());
    let cpu0 = cpu_secs();
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + duration;
    let config = PublishConfig {
        pace,
        connections: args.publisher_conns,
        pipeline: args.pipeline,
        deadline,
    };
    let publishers: Vec<_> = (0..args.publisher_conns)
        .map(|k| {
            tokio::spawn(publish::run_connection(
                k,
                config,
                target.clone(),
                shared.clone(),
                next_seq.clone(),
                counters.clone(),
            ))
        })
        .collect();
    tokio::time::sleep_until(deadline).await;
    let published_for = started.elapsed();
    let delivered_in_window = shared.delivered();
    let cpu_window = cpu_secs();

    // Answers to the requests still in flight (each connection gives up after its timeout).
    for p in publishers {
        let _ = tokio::time::timeout(Duration::from_secs(30), p).await;
    }
    let accepted = counters.accepted.load(Ordering::Relaxed);
    let expected = accepted.saturating_mul(n);

    // The last deliveries: until all expected are in, nothing arrives for a second, or time is up.
    let drain_started = Instant::now();
    let mut last = shared.delivered();
    let mut last_progress = Instant::now();
    while shared.delivered() < expected
        && drain_started.elapsed() < Duration::from_secs(args.drain_secs)
        && last_progress.elapsed() < Duration::from_secs(1)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = shared.delivered();
        if now != last {
            last = now;
            last_progress = Instant::now();
        }
    }
    let drain = drain_started.elapsed();
    shared.end_phase();

    let delivered = shared.delivered();
    let lost: u64 = clients
        .iter()
        .map(|&i| {
            accepted.saturating_sub(u64::from(shared.slots[i].delivered.load(Ordering::Relaxed)))
        })
        .sum();
    let summary = |h: &Histogram| {
        h.summary().map(|s| {
            json!({
                "samples": s.count,
                "p50": ms(s.p50),
                "p90": ms(s.p90),
                "p99": ms(s.p99),
                "p999": ms(s.p999),
                "max": ms(s.max),
                "mean": round2(s.mean / 1000.0),
            })
        })
    };
    let latency = summary(&shared.hist);
    let latency_at_socket = summary(&shared.hist_socket);
    let secs = published_for.as_secs_f64();
    let delivery_window = match pace {
        Pace::Max { window } => Some(window),
        Pace::Rate(_) => None,
    };
    let last_rejected = match counters.last_rejected_status.load(Ordering::Relaxed) {
        0 => None,
        status => Some(status),
    };
    json!({
        "phase": name,
        "events_per_sec_target": rate,
        "msgs_per_sec_target": rate.map(|r| round2(r * n as f64)),
        "window": delivery_window,
        "publisher_conns": args.publisher_conns,
        "pipeline": args.pipeline,
        "clients": n,
        "duration_secs": round2(secs),
        "events_sent": counters.sent.load(Ordering::Relaxed),
        "events_accepted": accepted,
        "events_per_sec": round2(accepted as f64 / secs),
        "http_rejected": counters.rejected.load(Ordering::Relaxed),
        "http_last_rejected_status": last_rejected,
        "publisher_errors": counters.errors.load(Ordering::Relaxed),
        "publisher_last_error": counters.last_error(),
        "expected": expected,
        "delivered": delivered,
        "delivered_in_window": delivered_in_window,
        "delivered_per_sec": round2(delivered_in_window as f64 / secs),
        "lost": lost,
        "stale_from_earlier_phases": shared.stale.load(Ordering::Relaxed),
        "out_of_order": shared.out_of_order.load(Ordering::Relaxed),
        "closed_during": shared.closed.load(Ordering::Relaxed) - closed0,
        "alive_after": shared.alive(),
        "drain_secs": round2(drain.as_secs_f64()),
        "latency_ms": latency,
        "latency_at_socket_ms": latency_at_socket,
        "client_cpu_pct": cpu_pct(cpu0, cpu_window, published_for),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_server_messages_in_any_field_order() {
        assert_eq!(
            server_message(r#"{"event":"ServerMessage","message":"12:3456","level":"Info"}"#),
            Some((12, 3456))
        );
        assert_eq!(
            server_message(r#"{"level":"Info","message":"7:89","event":"ServerMessage"}"#),
            Some((7, 89))
        );
        assert_eq!(
            server_message(r#"{"event":"ServerMessage","message":"hello","level":"Info"}"#),
            None
        );
        assert_eq!(
            server_message(
                r#"{"event":"LiveStats","concurrent_listeners":0,"top_tracks":[],"server_load":0.1}"#
            ),
            None
        );
    }

    #[test]
    fn phases_count_only_their_own_messages() {
        let shared = Shared::new(2);
        for s in shared.slots.iter() {
            s.state.store(SUBSCRIBED, Ordering::Relaxed);
        }
        let alive = shared.begin_phase(10);
        assert_eq!(alive, [0, 1]);
        let mut last = None;
        let now = now_micros();
        shared.on_text(
            0,
            &format!(r#"{{"event":"ServerMessage","message":"9:{now}","level":"Info"}}"#),
            &mut last,
            None,
        );
        shared.on_text(
            0,
            &format!(r#"{{"event":"ServerMessage","message":"11:{now}","level":"Info"}}"#),
            &mut last,
            None,
        );
        shared.on_text(
            0,
            &format!(r#"{{"event":"ServerMessage","message":"10:{now}","level":"Info"}}"#),
            &mut last,
            None,
        );
        assert_eq!(shared.stale.load(Ordering::Relaxed), 1);
        assert_eq!(shared.delivered(), 2);
        assert_eq!(shared.out_of_order.load(Ordering::Relaxed), 1);
        assert_eq!(shared.slots[0].delivered.load(Ordering::Relaxed), 2);
        assert_eq!(shared.slots[1].delivered.load(Ordering::Relaxed), 0);
        assert_eq!(shared.hist.summary().map(|s| s.count), Some(2));
    }
}

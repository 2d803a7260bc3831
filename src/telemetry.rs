//! Logs (tracing) and metrics (the `metrics` facade, exported in Prometheus text format).
//!
//! The `metrics` crate routes through one process-wide recorder by design; it is installed once
//! here, and every server in the process (tests start several) renders the same registry.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Installs the Prometheus recorder once and returns its handle.
pub fn prometheus() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                ])
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            describe();
            // Histogram samples wait in the recorder until upkeep folds them into their
            // buckets: without it, a server nobody scrapes would keep every latency it ever
            // recorded (a few hundred MB an hour under load).
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(std::time::Duration::from_secs(5));
                    upkeep.run_upkeep();
                })
                .ok()?;
            Some(handle)
        })
        .clone()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "http_requests_total",
        "HTTP requests by route template, method and status"
    );
    describe_histogram!(
        "http_request_duration_seconds",
        Unit::Seconds,
        "HTTP request latency by route template"
    );
    describe_counter!("transcodes_started_total", "Profile encodes started");
    describe_counter!("transcodes_finished_total", "Profile encodes finished");
    describe_counter!("transcodes_failed_total", "Profile encodes failed");
    describe_histogram!(
        "transcode_duration_seconds",
        Unit::Seconds,
        "Wall time of one transcode job"
    );
    describe_counter!(
        "cache_hits_total",
        "Transcode cache lookups served by a finished or running encode"
    );
    describe_counter!(
        "cache_misses_total",
        "Transcode cache lookups that started an encode"
    );
    describe_counter!(
        "cache_evictions_total",
        "Entries evicted by the cache size cap"
    );
    describe_gauge!(
        "cache_bytes",
        Unit::Bytes,
        "Bytes of finished encodes on disk"
    );
    describe_gauge!("library_tracks", "Tracks in the library");
}

/// Structured logs to stderr (so `scan` and `transcode` listings on stdout stay clean), in
/// colour only on a terminal; `RUST_LOG` filters. By default symphonia's own messages are off:
/// they do not name the file ("invalid mpeg audio header", "skipping junk at 417 bytes"), and
/// our scanner and pipeline log every skipped or failing file by name.
pub fn init_tracing() {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// The log filter without `RUST_LOG` (a target prefix covers all of symphonia's crates).
const DEFAULT_LOG_FILTER: &str = "info,tower_http=info,symphonia=off";

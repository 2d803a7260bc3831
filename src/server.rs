//! Start-up and the serving loop: builds the [`AppState`], scans the library in the background
//! and serves the router on a listener the caller bound, until the shutdown future resolves.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::analytics::{AnalyticsEngine, AnalyticsError, IpPolicy};
use crate::config::Config;
use crate::http::{router, AppState};
use crate::library::scan::ScanError;
use crate::library::{demo, Library};
use crate::media::cache::{CacheError, TranscodeCache};
use crate::streaming::adaptive::AdaptiveStreamingManager;
use crate::streaming::websocket::broker::Broker;
use crate::streaming::websocket::live::{live_stats, server_load, Listening};
use crate::streaming::websocket::{WebSocketEvent, WebSocketManager};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the demo library into {path}: {source}")]
    Demo {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("library folder {0} does not exist or is not a folder")]
    Library(PathBuf),
    #[error("transcode cache: {0}")]
    Cache(#[from] CacheError),
    #[error(transparent)]
    Analytics(#[from] AnalyticsError),
    #[error("cannot reach the broker: {0}")]
    Broker(#[from] crate::streaming::websocket::broker::BrokerError),
    #[error("token authentication: {0}")]
    Auth(#[from] crate::auth::AuthError),
    #[error("cannot read or create the IP hashing key {path}: {source}")]
    IpKey {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The keyed-hash secret for `analytics_ip = "hash"`, created on first use.
fn ip_policy(config: &Config) -> Result<IpPolicy, StartupError> {
    Ok(match config.analytics_ip.as_str() {
        "hash" => {
            let path = config.data_dir.join("analytics-ip.key");
            let key = match std::fs::read(&path) {
                Ok(k) if k.len() >= 16 => k,
                _ => {
                    let key: Vec<u8> = (0..2)
                        .flat_map(|_| *uuid::Uuid::new_v4().as_bytes())
                        .collect();
                    std::fs::write(&path, &key).map_err(|source| StartupError::IpKey {
                        path: path.clone(),
                        source,
                    })?;
                    key
                }
            };
            IpPolicy::Hash(key)
        }
        "drop" => IpPolicy::Drop,
        "keep" => IpPolicy::Keep,
        _ => IpPolicy::Truncate,
    })
}

/// Prepares the data directory, the library (the demo one if asked for or none given) and the
/// cache. The library is not scanned yet: see `AppState::scan_library`.
pub async fn build_state(config: Config) -> Result<Arc<AppState>, StartupError> {
    let config = Arc::new(config);
    std::fs::create_dir_all(&config.data_dir).map_err(|source| StartupError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    let root = if config.uses_demo() {
        let dir = config.demo_dir();
        demo::ensure_demo_library(&dir).map_err(|source| StartupError::Demo {
            path: dir.clone(),
            source,
        })?
    } else {
        let dir = config.library.clone().unwrap_or_default();
        if !dir.is_dir() {
            return Err(StartupError::Library(dir));
        }
        dir
    };
    let library = Arc::new(Library::new(&root));
    let cache = TranscodeCache::open_with_memory(
        &config.cache_dir(),
        config.cache_max_mb * 1024 * 1024,
        config.effective_workers(),
        config.segment_memory_mb * 1024 * 1024,
    )?;
    let analytics = Arc::new(
        AnalyticsEngine::new(&config.analytics_database_url(), config.clone())
            .await?
            .with_ip_policy(ip_policy(&config)?),
    );
    let streaming = Arc::new(AdaptiveStreamingManager::with_library(
        config.clone(),
        library.clone(),
    ));
    let social = Arc::new(crate::social::SocialStore::new(analytics.pool().clone()));
    let websocket = Arc::new(
        WebSocketManager::with_context(library.clone(), analytics.clone())
            .with_social(social.clone())
            .with_streaming(streaming.clone()),
    );
    if let Some(url) = &config.broker {
        Broker::connect(url, &config.broker_namespace, &websocket).await?;
    }
    let auth = crate::auth::Authenticator::load_or_create(
        &config.data_dir,
        config.auth.secret.as_deref(),
    )?;
    Ok(Arc::new(AppState {
        auth,
        social,
        websocket,
        analytics,
        library,
        streaming,
        cache,
        metrics: crate::telemetry::prometheus(),
        web_root: config.web_root(),
        config,
    }))
}

/// Scans the library again every `library_rescan_secs`, at once when an encode finds its
/// file changed since the last scan (so a replaced file is served again within seconds, under
/// a new version; such scans at most every 30 s), and when the library asks after a scan that
/// found files still being written (it spaces those out itself). A failed rescan (the folder
/// unmounted, say) keeps the catalogue it has.
fn spawn_library_rescans(state: Arc<AppState>) {
    let period = state.config.library_rescan_secs;
    let changes = state.cache.source_changes();
    let settle = state.library.settle_wanted();
    let weak = Arc::downgrade(&state);
    drop(state);
    tokio::spawn(async move {
        // Scans a changed file asks for are at least this far apart: a file being copied or
        // recorded keeps changing, and each request for it would otherwise start a full scan.
        const TRIGGERED_GAP: std::time::Duration = std::time::Duration::from_secs(30);
        let mut last_triggered: Option<tokio::time::Instant> = None;
        loop {
            let timer = async {
                if period == 0 {
                    std::future::pending::<()>().await;
                }
                tokio::time::sleep(std::time::Duration::from_secs(period)).await;
            };
            tokio::select! {
                () = timer => {}
                () = changes.notified() => {
                    if let Some(at) = last_triggered {
                        tokio::time::sleep_until(at + TRIGGERED_GAP).await;
                    }
                    last_triggered = Some(tokio::time::Instant::now());
                }
                () = settle.notified() => {}
            }
            let Some(state) = weak.upgrade() else { break };
            match state.scan_library().await {
                Ok(_) => {}
                Err(ScanError::Cancelled) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "library rescan failed; keeping the current catalogue");
                }
            }
        }
    });
}

/// Serves until `shutdown` resolves, then lets in-flight requests finish and stops encodes.
pub async fn run(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    state.streaming.start_quality_monitor().await;
    let scanner = state.clone();
    tokio::spawn(async move {
        match scanner.scan_library().await {
            Ok(_) | Err(ScanError::Cancelled) => {}
            Err(e) => {
                tracing::error!(error = %e, "library scan failed");
                scanner.library.set_unavailable(e.to_string());
            }
        }
    });
    spawn_library_rescans(state.clone());
    spawn_retention(state.clone());
    spawn_ws_cleanup(state.clone());
    spawn_quality_announcer(state.clone());
    spawn_session_expiry(state.clone());
    spawn_silent_play_sweep(state.clone());
    spawn_live_stats(state.clone());
    let app = router(state.clone());
    tracing::info!(addr = %listener.local_addr()?, "listening");
    let hot = Arc::new(crate::http::hot::HotSegments::new(state.clone()).await);
    let result = crate::http::connections::serve(listener, app, Some(hot), shutdown).await;
    // A scan reading a large library stops between two files rather than hold the exit.
    state.library.stop_scans();
    // Before the broker and analytics stop: playbacks still open are ended and recorded.
    state
        .websocket
        .shutdown(std::time::Duration::from_secs(2))
        .await;
    state.cache.shutdown();
    // Streaming sessions live in memory: their plays end with the process.
    for id in state.streaming.drain_sessions().await {
        if let Ok(uuid) = uuid::Uuid::parse_str(&id) {
            state.analytics.end_play_session(uuid, None).await;
        }
    }
    if let Some(b) = state.websocket.broker() {
        b.leave().await;
    }
    state.analytics.shutdown().await;
    result
}

/// Pushes every server-side quality change to the session's listener (`QualityChanged`) and
/// records it in analytics, off the monitor's lock.
fn spawn_quality_announcer(state: Arc<AppState>) {
    let mut changes = state.streaming.quality_changes();
    let weak = Arc::downgrade(&state);
    drop(state);
    tokio::spawn(async move {
        loop {
            let change = match changes.recv().await {
                Ok(c) => c,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "quality changes dropped: announcer lagging");
                    continue;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            };
            let Some(state) = weak.upgrade() else { break };
            if let Ok(uuid) = uuid::Uuid::parse_str(&change.session_id) {
                state
                    .analytics
                    .record_quality_switch(
                        uuid,
                        &change.from,
                        &change.to,
                        Some(change.reason.clone()),
                    )
                    .await;
            }
            if let Some(user) = &change.user_id {
                state
                    .websocket
                    .send_to_user(
                        user,
                        WebSocketEvent::QualityChanged {
                            session_id: change.session_id,
                            user_id: user.clone(),
                            track_id: change.track_id,
                            from: change.from,
                            to: change.to,
                            reason: change.reason,
                        },
                    )
                    .await;
            }
        }
    });
}

/// Ends the play session of every streaming session the monitor expires: its listener left
/// without saying so (a closed tab, a lost phone), and an open play would otherwise stay open
/// in analytics for good, out of completion and skip rates.
fn spawn_session_expiry(state: Arc<AppState>) {
    let mut expired = state.streaming.expired_sessions();
    let weak = Arc::downgrade(&state);
    drop(state);
    tokio::spawn(async move {
        loop {
            let id = match expired.recv().await {
                Ok(id) => id,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    // Their plays are ended by the sweep of silent plays instead, later.
                    tracing::warn!(
                        missed = n,
                        "expired sessions not ended now: receiver lagging"
                    );
                    continue;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            };
            let Some(state) = weak.upgrade() else { break };
            if let Ok(uuid) = uuid::Uuid::parse_str(&id) {
                // The writer keeps the last position the player reported.
                state.analytics.end_play_session(uuid, None).await;
            }
        }
    });
}

/// Ends the plays left open, at start (a previous process that died ended none of its plays)
/// and then every ten minutes (listeners gone without a word whose end was missed: a WebSocket
/// client gone without a Stop, an expiry the announcer lagged on). Without it they would stay
/// out of completion and skip rates for good.
fn spawn_silent_play_sweep(state: Arc<AppState>) {
    let weak = Arc::downgrade(&state);
    drop(state);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(600));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(state) = weak.upgrade() else { break };
            match state
                .analytics
                .end_silent_plays(crate::analytics::PLAY_SILENCE)
                .await
            {
                Ok(0) => {}
                Ok(n) => tracing::info!(plays = n, "silent plays ended"),
                Err(e) => tracing::warn!(error = %e, "ending silent plays failed"),
            }
        }
    });
}

/// Broadcasts `LiveStats` every `live_stats_secs` while anyone is connected.
fn spawn_live_stats(state: Arc<AppState>) {
    let secs = state.config.live_stats_secs;
    if secs == 0 {
        return;
    }
    let weak = Arc::downgrade(&state);
    drop(state);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(secs));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(state) = weak.upgrade() else { break };
            let local_clients = state.websocket.connection_count() > 0;
            if !local_clients && state.websocket.broker().is_none() {
                continue;
            }
            // Players report every few seconds; a session silent for a minute is not playing.
            let mut listening: Vec<Listening> = state
                .websocket
                .playing_now()
                .into_iter()
                .map(|(u, t)| Listening {
                    user_id: Some(u),
                    track_id: t,
                })
                .collect();
            listening.extend(
                state
                    .streaming
                    .active_sessions(std::time::Duration::from_secs(60))
                    .await
                    .into_iter()
                    .map(|(user_id, track_id)| Listening { user_id, track_id }),
            );
            if let Some(broker) = state.websocket.broker() {
                // Every node's listeners; stale nodes (three periods silent) drop out.
                match broker
                    .cluster_listening(&listening, std::time::Duration::from_secs(secs * 3))
                    .await
                {
                    Ok(all) => listening = all,
                    Err(e) => tracing::warn!(error = %e, "live counts of other nodes unavailable"),
                }
            }
            // A node without WebSocket clients still shares its listeners (above), for the
            // nodes that have clients.
            if !local_clients {
                continue;
            }
            let event = live_stats(&listening, Some(&state.library), server_load());
            // Each node computes the same totals: deliver locally, never through the broker.
            state.websocket.broadcast_local(event).await;
        }
    });
}

/// Closes WebSocket connections silent for 90 s (clients answer the 20 s pings, so only dead
/// ones are that quiet).
fn spawn_ws_cleanup(state: Arc<AppState>) {
    let weak = Arc::downgrade(&state);
    drop(state);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(15));
        loop {
            tick.tick().await;
            let Some(state) = weak.upgrade() else { break };
            state
                .websocket
                .cleanup_inactive_connections(std::time::Duration::from_secs(90))
                .await;
        }
    });
}

/// Prunes analytics past the retention period, a minute after start and then daily.
fn spawn_retention(state: Arc<AppState>) {
    let days = state.config.analytics_retention_days;
    if days == 0 {
        return;
    }
    let weak = Arc::downgrade(&state);
    drop(state);
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(24 * 3600));
        loop {
            tick.tick().await;
            let Some(state) = weak.upgrade() else { break };
            match state
                .analytics
                .prune(std::time::Duration::from_secs(u64::from(days) * 86_400))
                .await
            {
                Ok(n) => tracing::info!(sessions = n, days, "analytics retention pruned"),
                Err(e) => tracing::warn!(error = %e, "analytics retention failed"),
            }
        }
    });
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}

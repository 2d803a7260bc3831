//! Scale-out over Redis: several server nodes behind a load balancer act as one hub.
//!
//! Why Redis pub/sub: events are fire-and-forget and already bounded per connection; what the
//! nodes need is fan-out of each event to every node, which pub/sub does in one hop, plus a
//! shared view of who is listening (a hash with one field per node, each refreshed with the
//! LiveStats period and ignored once stale by Redis's clock, so a node that dies stops counting).
//!
//! A node delivers its own events locally at once and publishes them; a node receiving an event
//! from another delivers it locally only (never republishes). Routing (everyone, one user, a
//! list of users) travels with the event, so privacy rules apply on every node alike. Publishing
//! never waits: envelopes go through a bounded queue to one publisher task; if Redis is slow or
//! down, events for other nodes are dropped (and counted), never the local ones.
//!
//! Redis may restart or vanish under a running node. Publishing and the shared counts go through
//! a `ConnectionManager`, which replaces a dropped connection (a bare `MultiplexedConnection`
//! never does: redis-rs #1190); TCP keepalive (and, on Linux, a user timeout) turns a peer that
//! vanished without a word into a dropped connection. The subscription has a connection of its
//! own, which the subscriber replaces when it ends or when Redis stops answering a periodic PING
//! on it; every connection attempt is bounded in time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt as _;
use redis::AsyncCommands as _;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::hub::WebSocketManager;
use super::live::Listening;
use super::protocol::WebSocketEvent;

/// A node silent for this many times the freshness limit (`ttl`) is removed from the shared view.
const FORGET_AFTER: i64 = 20;

/// Envelopes waiting for the publisher.
const OUTBOX: usize = 10_000;

/// Each attempt to connect to Redis (at start and on every reconnection) gives up after this
/// long: a Redis host that drops packets must not hang the start or the subscriber.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A command unanswered for this long fails.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the subscriber checks that Redis still answers on its connection, and how long it
/// waits for the answer: a subscription whose connection died silently (no FIN, no RST) would
/// otherwise wait for messages forever.
const SUBSCRIBER_PING_EVERY: Duration = Duration::from_secs(10);
const SUBSCRIBER_PING_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle time before TCP keepalive probes start on the publishing connection.
const KEEPALIVE_AFTER: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("broker: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("broker data: {0}")]
    Data(#[from] serde_json::Error),
}

/// Who an event is for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "to", rename_all = "snake_case")]
pub enum Route {
    /// As `broadcast_event` routes it (public events to all, shares to their people).
    All,
    User {
        user_id: String,
    },
    Users {
        user_ids: Vec<String>,
    },
}

#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    node: String,
    route: Route,
    event: WebSocketEvent,
}

#[derive(Debug, Serialize, Deserialize)]
struct NodeListening {
    at_ms: i64,
    listening: Vec<Listening>,
}

/// One node's link to the others.
pub struct Broker {
    node: String,
    live_key: String,
    outbox: mpsc::Sender<String>,
    /// Publishing (the publisher task's clone) and the shared counts; reconnects by itself.
    conn: redis::aio::ConnectionManager,
    dropped: AtomicU64,
    received: Arc<AtomicU64>,
    /// Ends the subscriber task (when the broker is dropped, or the node leaves).
    stop: CancellationToken,
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker").field("node", &self.node).finish()
    }
}

impl Broker {
    /// Connects to Redis at `url` (failing at once if it cannot be reached), subscribes to the
    /// `namespace`'s channel and attaches itself to `hub`.
    pub async fn connect(
        url: &str,
        namespace: &str,
        hub: &Arc<WebSocketManager>,
    ) -> Result<Arc<Self>, BrokerError> {
        let client = redis::Client::open(url)?;
        let channel = format!("{namespace}:events");
        // The subscription first: it fails at once when Redis cannot be reached, where the
        // connection manager would first retry for a while.
        let pubsub = subscribe(&client, &channel).await?;
        let conn = redis::aio::ConnectionManager::new_with_config(client.clone(), manager_config())
            .await?;
        let (outbox, rx) = mpsc::channel(OUTBOX);
        let broker = Arc::new(Self {
            node: uuid::Uuid::new_v4().to_string(),
            live_key: format!("{namespace}:listening"),
            outbox,
            conn: conn.clone(),
            dropped: AtomicU64::new(0),
            received: Arc::default(),
            stop: CancellationToken::new(),
        });
        tokio::spawn(publisher(rx, conn, channel.clone()));
        tokio::spawn(subscriber(
            client,
            pubsub,
            channel,
            broker.node.clone(),
            Arc::downgrade(hub),
            broker.received.clone(),
            broker.stop.clone(),
        ));
        hub.set_broker(broker.clone());
        tracing::info!(node = %broker.node, namespace, "connected to the broker");
        Ok(broker)
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// Queues `event` for the other nodes (never waits).
    pub(super) fn publish(&self, route: Route, event: &WebSocketEvent) {
        let envelope = Envelope {
            node: self.node.clone(),
            route,
            event: event.clone(),
        };
        let Ok(text) = serde_json::to_string(&envelope) else {
            return;
        };
        if self.outbox.try_send(text).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(
                    dropped = n,
                    "broker outbox full: events for other nodes dropped"
                );
            }
        }
    }

    /// Publishes this node's listeners (kept for `ttl`), then returns every live node's.
    ///
    /// Times are Redis's own clock (`TIME`), so nodes with skewed clocks still agree on who is
    /// live. A node silent for longer than `ttl` stops counting; its field is removed only once
    /// it has been silent for [`FORGET_AFTER`] × `ttl`, so that one node's cleanup does not race
    /// with a live node's refresh (only a node back from that long a silence can lose one
    /// refresh).
    pub async fn cluster_listening(
        &self,
        mine: &[Listening],
        ttl: Duration,
    ) -> Result<Vec<Listening>, BrokerError> {
        let mut conn = self.conn.clone();
        let (secs, micros): (i64, i64) = redis::cmd("TIME").query_async(&mut conn).await?;
        let now = secs * 1000 + micros / 1000;
        let record = serde_json::to_string(&NodeListening {
            at_ms: now,
            listening: mine.to_vec(),
        })?;
        let (all,): (std::collections::HashMap<String, String>,) = redis::pipe()
            .hset(&self.live_key, &self.node, record)
            .ignore()
            .hgetall(&self.live_key)
            .query_async(&mut conn)
            .await?;
        let ttl_ms = ttl.as_millis() as i64;
        let mut out = Vec::new();
        for (node, text) in all {
            match serde_json::from_str::<NodeListening>(&text) {
                Ok(n) if now - n.at_ms <= ttl_ms => out.extend(n.listening),
                Ok(n) if now - n.at_ms <= ttl_ms * FORGET_AFTER => {}
                // Long gone (a node that stopped without leaving) or unreadable: forget it.
                _ => {
                    let _: Result<(), _> = conn.hdel(&self.live_key, &node).await;
                }
            }
        }
        Ok(out)
    }

    /// Broker counters for `/api/ws/stats`.
    pub fn stats(&self) -> serde_json::Value {
        serde_json::json!({
            "node": self.node,
            "events_received": self.received.load(Ordering::Relaxed),
            "events_dropped": self.dropped.load(Ordering::Relaxed),
        })
    }

    /// Stops listening to the other nodes and removes this node from the shared listener view
    /// (on shutdown).
    pub async fn leave(&self) {
        self.stop.cancel();
        let mut conn = self.conn.clone();
        let _: Result<(), _> = conn.hdel(&self.live_key, &self.node).await;
    }
}

/// The connection manager's settings: bounded connection attempts and commands, reconnection
/// retried every second or two (backon's exponential backoff starts at 1 s; redis's default
/// factor of 100 would wait a minute between attempts), keepalive on the socket.
fn manager_config() -> redis::aio::ConnectionManagerConfig {
    let keepalive = redis::io::tcp::socket2::TcpKeepalive::new().with_time(KEEPALIVE_AFTER);
    let tcp = redis::io::tcp::TcpSettings::default().set_keepalive(keepalive);
    redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(CONNECT_TIMEOUT)
        .set_response_timeout(RESPONSE_TIMEOUT)
        .set_factor(2)
        .set_max_delay(2_000)
        .set_number_of_retries(5)
        .set_tcp_settings(with_user_timeout(tcp))
}

/// Linux: data left unacknowledged this long fails the socket (keepalive probes only run on
/// an idle connection, not on one whose writes go unanswered), and the manager replaces it.
#[cfg(target_os = "linux")]
fn with_user_timeout(tcp: redis::io::tcp::TcpSettings) -> redis::io::tcp::TcpSettings {
    tcp.set_user_timeout(Duration::from_secs(20))
}

#[cfg(not(target_os = "linux"))]
fn with_user_timeout(tcp: redis::io::tcp::TcpSettings) -> redis::io::tcp::TcpSettings {
    tcp
}

/// A pub/sub connection subscribed to `channel`, or an error within [`CONNECT_TIMEOUT`].
async fn subscribe(
    client: &redis::Client,
    channel: &str,
) -> Result<redis::aio::PubSub, redis::RedisError> {
    let attempt = async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(channel).await?;
        Ok::<_, redis::RedisError>(pubsub)
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
        Ok(result) => result,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no subscription within {CONNECT_TIMEOUT:?}"),
        )
        .into()),
    }
}

async fn publisher(
    mut rx: mpsc::Receiver<String>,
    mut conn: redis::aio::ConnectionManager,
    channel: String,
) {
    // Everything queued while the previous round trip was in flight goes in one pipeline: a
    // burst of events costs one round trip to Redis, not one each, and keeps its order.
    const BATCH: usize = 256;
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let mut pipe = redis::pipe();
        for text in batch.drain(..) {
            pipe.publish(&channel, text).ignore();
        }
        let mut sent = pipe.query_async::<()>(&mut conn).await;
        // The first command after Redis restarted finds the old connection dead, and the
        // manager starts a new one: the batch is sent once more, on it, rather than lost. (A
        // batch that failed after reaching Redis could be delivered twice; events are
        // fire-and-forget, and that case is rare next to a restart.)
        if matches!(&sent, Err(e) if e.is_unrecoverable_error()) {
            sent = pipe.query_async::<()>(&mut conn).await;
        }
        if let Err(e) = sent {
            tracing::warn!(error = %e, "broker publish failed");
        }
    }
}

async fn subscriber(
    client: redis::Client,
    first: redis::aio::PubSub,
    channel: String,
    node: String,
    hub: Weak<WebSocketManager>,
    received: Arc<AtomicU64>,
    stop: CancellationToken,
) {
    let mut pubsub = Some(first);
    let mut backoff = Duration::from_millis(200);
    loop {
        let Some(ps) = pubsub.take() else {
            // Reconnect after a lost connection, with a capped exponential backoff.
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(10));
            if hub.strong_count() == 0 {
                return;
            }
            match subscribe(&client, &channel).await {
                Ok(ps) => {
                    tracing::info!("broker subscription restored");
                    pubsub = Some(ps);
                }
                Err(e) => tracing::warn!(error = %e, "broker reconnect failed"),
            }
            continue;
        };
        backoff = Duration::from_millis(200);
        let (mut sink, mut messages) = ps.split();
        let mut ping = tokio::time::interval(SUBSCRIBER_PING_EVERY);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.tick().await;
        loop {
            let msg = tokio::select! {
                _ = stop.cancelled() => return,
                m = messages.next() => match m {
                    Some(m) => m,
                    None => break,
                },
                // Messages arriving meanwhile wait in the connection's own queue.
                _ = ping.tick() => {
                    match tokio::time::timeout(SUBSCRIBER_PING_TIMEOUT, sink.ping::<redis::Value>()).await {
                        Ok(Ok(_)) => continue,
                        Ok(Err(e)) => tracing::warn!(error = %e, "broker subscription ping failed"),
                        Err(_) => tracing::warn!("broker subscription: Redis did not answer a ping"),
                    }
                    break;
                }
            };
            let Some(hub) = hub.upgrade() else { return };
            let Ok(text) = msg.get_payload::<String>() else {
                continue;
            };
            match serde_json::from_str::<Envelope>(&text) {
                Ok(env) if env.node != node => {
                    received.fetch_add(1, Ordering::Relaxed);
                    hub.deliver_route(&env.route, &env.event);
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "unreadable broker message ignored"),
            }
        }
        if hub.strong_count() == 0 {
            return;
        }
        tracing::warn!("broker subscription lost; reconnecting");
    }
}

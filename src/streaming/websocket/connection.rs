//! One WebSocket connection: a reader that parses and answers commands, and a writer that
//! drains the connection's bounded queue (and pings, so idle detection sees live clients).

use std::future::Future as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::hub::{encode, Outbound, WebSocketConnection, WebSocketManager, OUTBOUND_QUEUE};
use super::protocol::{parse_command, WebSocketEvent};
use super::subscription::Subscription;

/// Largest message accepted (bigger ones close the connection with 1009).
pub const MAX_MESSAGE: usize = 64 * 1024;
const PING_EVERY: Duration = Duration::from_secs(20);
/// A write that takes longer than this means the peer is gone or not reading.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Token bucket: commands per second, and the burst allowed.
const RATE_PER_SEC: f64 = 10.0;
const BURST: f64 = 30.0;
/// Below this many tokens the client is warned.
const WARN_BELOW: f64 = 5.0;

struct Bucket {
    tokens: f64,
    last: Instant,
    warned: bool,
}

impl Bucket {
    /// Takes a token; `(allowed, remaining)`.
    fn take(&mut self) -> (bool, u32) {
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.last).as_secs_f64() * RATE_PER_SEC).min(BURST);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            (true, self.tokens as u32)
        } else {
            (false, 0)
        }
    }
}

/// Initial read buffer per connection.
const READ_BUFFER: usize = 4 * 1024;
/// Most queued frames written with one flush.
const WRITE_BATCH: usize = 64;

impl WebSocketManager {
    /// Accepts an upgrade for `user_id` (already authenticated by the caller, or `None` for an
    /// anonymous listener) from `ip_address`.
    pub fn handle_websocket(
        self: &Arc<Self>,
        ws: WebSocketUpgrade,
        user_id: Option<String>,
        ip_address: String,
    ) -> Response {
        let hub = self.clone();
        // A small read buffer: tungstenite's default (128 KiB) is zero-filled on the first read
        // and then stays resident, per connection; frames larger than it still arrive (the
        // buffer grows for them, up to MAX_MESSAGE), idle listeners cost a few KiB.
        ws.max_message_size(MAX_MESSAGE)
            .max_frame_size(MAX_MESSAGE)
            .read_buffer_size(READ_BUFFER)
            .on_upgrade(move |socket| hub.run_connection(socket, user_id, ip_address))
    }

    async fn run_connection(
        self: Arc<Self>,
        socket: WebSocket,
        user_id: Option<String>,
        ip_address: String,
    ) {
        let id = Uuid::new_v4();
        let (tx, mut rx) = mpsc::channel::<Outbound>(OUTBOUND_QUEUE);
        let closer = tokio_util::sync::CancellationToken::new();
        self.connections.write().insert(
            id,
            WebSocketConnection {
                id,
                user_id: user_id.clone(),
                ip_address: ip_address.clone(),
                connected_at: SystemTime::now(),
                last_activity: tokio::time::Instant::now(),
                subscription: Subscription::default(),
                filters: Default::default(),
                sender: tx.clone(),
                closer: closer.clone(),
            },
        );
        self.stats.total_connections.fetch_add(1, Ordering::Relaxed);
        let span = tracing::info_span!("ws", connection_id = %id, user_id = user_id.as_deref().unwrap_or("-"));
        let _enter = span.enter();
        drop(_enter);
        tracing::info!(parent: &span, %ip_address, "websocket connected");

        let (mut sink, mut stream) = socket.split();
        let writer_closer = closer.clone();
        // The writer says when it has sent a batch; the reader waits on it when the queue is
        // half full (below).
        let drained = Arc::new(tokio::sync::Notify::new());
        let writer_drained = drained.clone();
        let writer = tokio::spawn(async move {
            let mut ping = tokio::time::interval(PING_EVERY);
            ping.tick().await;
            // One waiter on the token for the connection's life, not one per event.
            let cancelled = writer_closer.cancelled();
            tokio::pin!(cancelled);
            loop {
                let frame = tokio::select! {
                    // In this order, and only until one is ready: a wake for a queued event
                    // (nearly every wake) polls neither the ping timer nor anything after it.
                    biased;
                    _ = &mut cancelled => {
                        let close = Message::Close(Some(CloseFrame { code: 1008, reason: "too slow: events were not read".into() }));
                        let _ = tokio::time::timeout(WRITE_TIMEOUT, sink.send(close)).await;
                        break;
                    }
                    out = rx.recv() => match out {
                        Some(Outbound::Text(t)) => Message::Text(t),
                        Some(Outbound::Close(code, reason)) => {
                            let _ = tokio::time::timeout(WRITE_TIMEOUT, sink.send(Message::Close(Some(CloseFrame { code, reason: reason.into() })))).await;
                            break;
                        }
                        // The hub dropped this connection (slow reader, idle, shutdown).
                        None => break,
                    },
                    _ = ping.tick() => Message::Ping(Default::default()),
                };
                // Whatever else is already queued goes out with this frame in one flush (one
                // write on the socket instead of one per event when events come in bursts).
                let mut closing = None;
                let mut frames = 1;
                let sent = {
                    let batch = async {
                        sink.feed(frame).await?;
                        for _ in 1..WRITE_BATCH {
                            match rx.try_recv() {
                                Ok(Outbound::Text(t)) => {
                                    frames += 1;
                                    sink.feed(Message::Text(t)).await?
                                }
                                Ok(Outbound::Close(code, reason)) => {
                                    closing = Some((code, reason));
                                    break;
                                }
                                Err(_) => break,
                            }
                        }
                        sink.flush().await
                    };
                    tokio::pin!(batch);
                    // Most batches go out at once (the socket buffer has room): the write
                    // timeout is armed only for one that has to wait, so a broadcast to 10,000
                    // connections does not put 10,000 entries in the timer wheel and take them out.
                    let first =
                        std::future::poll_fn(|cx| Poll::Ready(batch.as_mut().poll(cx))).await;
                    match first {
                        Poll::Ready(r) => r.is_ok(),
                        Poll::Pending => {
                            matches!(tokio::time::timeout(WRITE_TIMEOUT, batch).await, Ok(Ok(())))
                        }
                    }
                };
                if !sent {
                    break;
                }
                // The reader waits only while the queue is over half full: wake it only after
                // a batch taken from such a queue (not after each of a broadcast's writes).
                if frames + rx.len() > OUTBOUND_QUEUE / 2 {
                    writer_drained.notify_one();
                }
                if let Some((code, reason)) = closing {
                    let _ = tokio::time::timeout(
                        WRITE_TIMEOUT,
                        sink.send(Message::Close(Some(CloseFrame {
                            code,
                            reason: reason.into(),
                        }))),
                    )
                    .await;
                    break;
                }
            }
            // Whatever stopped the writer (a write that timed out, a failed write, a close), the
            // connection is over: the reader is told at once, so that it stops reading a socket
            // nobody writes to and unregisters the connection (else a dead peer would stay
            // registered, and its user connected, forever).
            writer_closer.cancel();
            let _ = tokio::time::timeout(WRITE_TIMEOUT, sink.close()).await;
            // Closed before the reader is woken, so that it sees the queue is gone.
            drop(rx);
            writer_drained.notify_one();
        });

        let mut bucket = Bucket {
            tokens: BURST,
            last: Instant::now(),
            warned: false,
        };
        let cancelled = closer.cancelled();
        tokio::pin!(cancelled);
        'read: loop {
            // Backpressure on the client's own traffic: every command is answered, so a client
            // sending faster than the answers go out would fill its queue. Rather than dropping
            // it as a slow reader, stop reading its socket (TCP then slows the sender) until the
            // writer has freed half the queue, which also keeps room for the hub's events. A
            // client that reads nothing at all is dropped once WRITE_TIMEOUT passes without
            // progress.
            while tx.capacity() < OUTBOUND_QUEUE / 2 {
                if tx.is_closed() {
                    break 'read;
                }
                tokio::select! {
                    _ = &mut cancelled => break 'read,
                    progress = tokio::time::timeout(WRITE_TIMEOUT, drained.notified()) => {
                        if progress.is_err() {
                            self.stats.slow_disconnects.fetch_add(1, Ordering::Relaxed);
                            break 'read;
                        }
                    }
                }
            }
            let msg = tokio::select! {
                _ = &mut cancelled => break,
                m = stream.next() => match m {
                    Some(m) => m,
                    None => break,
                },
            };
            self.touch(id);
            let reply = match msg {
                Ok(Message::Text(text)) => {
                    self.stats.messages_received.fetch_add(1, Ordering::Relaxed);
                    let (allowed, remaining) = bucket.take();
                    if f64::from(remaining) < WARN_BELOW && !bucket.warned {
                        bucket.warned = true;
                        let warning = WebSocketEvent::RateLimitWarning {
                            remaining_requests: remaining,
                            reset_time_seconds: ((BURST - f64::from(remaining)) / RATE_PER_SEC)
                                .ceil() as u64,
                        };
                        let _ = tx.try_send(Outbound::Text(encode(&warning)));
                    } else if f64::from(remaining) >= WARN_BELOW {
                        bucket.warned = false;
                    }
                    if allowed {
                        match parse_command(&text) {
                            Ok(cmd) => self.execute(id, user_id.as_deref(), &ip_address, cmd).await,
                            Err((command_id, error)) => {
                                failure(command_id.unwrap_or_default(), error)
                            }
                        }
                    } else {
                        let command_id = parse_command(&text)
                            .ok()
                            .map(|c| c.command_id().to_string());
                        failure(
                            command_id.unwrap_or_default(),
                            "rate limit exceeded: slow down".into(),
                        )
                    }
                }
                Ok(Message::Binary(_)) => {
                    self.stats.rejected_frames.fetch_add(1, Ordering::Relaxed);
                    failure(
                        String::new(),
                        "binary frames are not supported: send JSON text".into(),
                    )
                }
                Ok(Message::Ping(_)) | Ok(Message::Pong(_)) => continue,
                Ok(Message::Close(_)) => break,
                Err(e) => {
                    // Oversized messages surface here: tell the client why before closing.
                    let too_big = e.to_string().to_ascii_lowercase().contains("too long")
                        || e.to_string().contains("size");
                    if too_big {
                        self.stats.rejected_frames.fetch_add(1, Ordering::Relaxed);
                        let _ = tx.try_send(Outbound::Close(1009, "message too big"));
                    }
                    tracing::debug!(parent: &span, error = %e, "websocket read ended");
                    break;
                }
            };
            if !self.queue_reply(&tx, &reply) {
                break;
            }
        }
        self.connections.write().remove(&id);
        if let Some(user) = &user_id {
            self.user_disconnected(user);
        }
        drop(tx);
        let _ = tokio::time::timeout(WRITE_TIMEOUT, writer).await;
        tracing::info!(parent: &span, "websocket closed");
    }

    /// Queues the answer to a command; `false` when the connection must end: its queue is
    /// full (a client that sends commands but never reads their answers) or closed (its writer
    /// has stopped). Only an answer actually queued counts as sent.
    fn queue_reply(&self, tx: &mpsc::Sender<Outbound>, reply: &WebSocketEvent) -> bool {
        match tx.try_send(Outbound::Text(encode(reply))) {
            Ok(()) => {
                self.stats.messages_sent.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.stats.slow_disconnects.fetch_add(1, Ordering::Relaxed);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    fn touch(&self, id: Uuid) {
        if let Some(c) = self.connections.write().get_mut(&id) {
            c.last_activity = tokio::time::Instant::now();
        }
    }
}

pub(super) fn failure(command_id: String, error: String) -> WebSocketEvent {
    WebSocketEvent::CommandResponse {
        command_id,
        success: false,
        data: None,
        error: Some(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pong() -> WebSocketEvent {
        WebSocketEvent::CommandResponse {
            command_id: "p".into(),
            success: true,
            data: None,
            error: None,
        }
    }

    #[test]
    fn only_replies_actually_queued_count_as_sent() {
        let hub = WebSocketManager::new();
        let (tx, mut rx) = mpsc::channel(1);
        assert!(hub.queue_reply(&tx, &pong()));
        assert!(matches!(rx.try_recv(), Ok(Outbound::Text(_))));
        assert_eq!(hub.stats.messages_sent.load(Ordering::Relaxed), 1);
        // The writer has stopped: the answer goes nowhere, is not counted, and the reader ends.
        drop(rx);
        assert!(!hub.queue_reply(&tx, &pong()));
        assert_eq!(hub.stats.messages_sent.load(Ordering::Relaxed), 1);
        assert_eq!(hub.stats.slow_disconnects.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_full_queue_ends_the_connection_as_a_slow_reader() {
        let hub = WebSocketManager::new();
        let (tx, _rx) = mpsc::channel(1);
        assert!(hub.queue_reply(&tx, &pong()));
        assert!(!hub.queue_reply(&tx, &pong()));
        assert_eq!(hub.stats.messages_sent.load(Ordering::Relaxed), 1);
        assert_eq!(hub.stats.slow_disconnects.load(Ordering::Relaxed), 1);
    }
}

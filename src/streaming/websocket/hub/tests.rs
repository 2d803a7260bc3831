//! The hub's delivery rules, on connections registered as `run_connection` registers them but
//! without a socket: each test holds the receiving end of a connection's queue (its writer).

use tokio_util::sync::CancellationToken;

use super::*;
use crate::streaming::websocket::protocol::{MessageLevel, WebSocketCommand};

fn register(
    hub: &WebSocketManager,
    user: &str,
) -> (Uuid, mpsc::Receiver<Outbound>, CancellationToken) {
    let id = Uuid::new_v4();
    let (tx, rx) = mpsc::channel(OUTBOUND_QUEUE);
    let closer = CancellationToken::new();
    hub.connections.write().insert(
        id,
        WebSocketConnection {
            id,
            user_id: Some(user.to_string()),
            ip_address: "127.0.0.1".into(),
            connected_at: SystemTime::now(),
            last_activity: tokio::time::Instant::now(),
            subscription: Subscription::default(),
            filters: HashMap::new(),
            sender: tx,
            closer: closer.clone(),
        },
    );
    (id, rx, closer)
}

/// The names of the events queued for a connection so far.
fn received(rx: &mut mpsc::Receiver<Outbound>) -> Vec<String> {
    let mut names = Vec::new();
    while let Ok(out) = rx.try_recv() {
        if let Outbound::Text(text) = out {
            let v: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
            names.push(v["event"].as_str().unwrap_or_default().to_string());
        }
    }
    names
}

fn message() -> WebSocketEvent {
    WebSocketEvent::ServerMessage {
        message: "hello".into(),
        level: MessageLevel::Info,
    }
}

fn reply() -> WebSocketEvent {
    WebSocketEvent::CommandResponse {
        command_id: "c".into(),
        success: true,
        data: None,
        error: None,
    }
}

fn quality_changed(track: &str) -> WebSocketEvent {
    WebSocketEvent::QualityChanged {
        session_id: "s".into(),
        user_id: "u".into(),
        track_id: track.into(),
        from: "low".into(),
        to: "high".into(),
        reason: "bandwidth".into(),
    }
}

/// A connection whose writer stopped (its queue's receiver is gone) is unregistered by the first
/// event meant for it, addressed or broadcast, and its closer is cancelled so that its reader
/// ends too (and runs the user's disconnect path); nothing is counted as sent to it.
#[tokio::test]
async fn a_connection_whose_writer_stopped_is_unregistered() {
    let hub = WebSocketManager::new();
    let (broadcast_to, rx, broadcast_closer) = register(&hub, "ann");
    drop(rx);
    let (addressed, rx, addressed_closer) = register(&hub, "bob");
    drop(rx);
    let (_, mut live_rx, live_closer) = register(&hub, "cid");

    hub.send_to_user("bob", message()).await;
    assert!(!hub.connections.read().contains_key(&addressed));
    assert!(addressed_closer.is_cancelled());
    assert!(hub.connections.read().contains_key(&broadcast_to));

    hub.broadcast_event(message()).await;
    assert!(!hub.connections.read().contains_key(&broadcast_to));
    assert!(broadcast_closer.is_cancelled());
    assert_eq!(hub.connection_count(), 1);
    assert!(!live_closer.is_cancelled());
    assert_eq!(received(&mut live_rx), ["ServerMessage"]);
    assert_eq!(hub.stats.messages_sent.load(Ordering::Relaxed), 1);
}

/// Idleness is measured on tokio's monotonic clock (a wall-clock step cannot make everyone
/// idle): advancing the paused clock is what makes a connection idle. An idle connection is
/// sent a close frame; one whose queue cannot take it (its writer is gone) has its closer
/// cancelled, so its reader ends instead of waiting on a dead peer forever.
#[tokio::test(start_paused = true)]
async fn idle_connections_are_found_on_the_monotonic_clock() {
    let hub = WebSocketManager::new();
    let (idle, mut idle_rx, _) = register(&hub, "idle");
    let (dead, dead_rx, dead_closer) = register(&hub, "dead");
    drop(dead_rx);
    tokio::time::advance(Duration::from_secs(60)).await;
    let (fresh, mut fresh_rx, fresh_closer) = register(&hub, "fresh");
    tokio::time::advance(Duration::from_secs(31)).await;

    hub.cleanup_inactive_connections(Duration::from_secs(90))
        .await;
    {
        let conns = hub.connections.read();
        assert!(!conns.contains_key(&idle), "idle for 91 s");
        assert!(!conns.contains_key(&dead), "idle for 91 s");
        assert!(conns.contains_key(&fresh), "idle for 31 s only");
    }
    assert!(matches!(idle_rx.try_recv(), Ok(Outbound::Close(1000, _))));
    assert!(dead_closer.is_cancelled());
    assert!(fresh_rx.try_recv().is_err());
    assert!(!fresh_closer.is_cancelled());
    assert_eq!(hub.stats.idle_disconnects.load(Ordering::Relaxed), 2);
}

/// Being addressed to a user does not bypass what each of their connections asked for:
/// `QualityChanged` (sent with `send_to_user`) reaches only the connections subscribed to it
/// whose filters match. Replies to a connection's commands pass whatever it subscribed to.
#[tokio::test]
async fn events_addressed_to_a_user_respect_subscriptions_and_filters() {
    let hub = WebSocketManager::new();
    let (stats_only, mut stats_rx, _) = register(&hub, "ann");
    hub.connections
        .write()
        .get_mut(&stats_only)
        .unwrap()
        .subscription
        .subscribe(["LiveStats".to_string()]);
    let (one_track, mut track_rx, _) = register(&hub, "ann");
    hub.connections.write().get_mut(&one_track).unwrap().filters =
        HashMap::from([("track_id".to_string(), "t1".to_string())]);

    hub.send_to_user("ann", quality_changed("t2")).await;
    hub.send_to_user("ann", quality_changed("t1")).await;
    hub.send_to_connection(stats_only, reply()).await;
    hub.send_to_connection(one_track, reply()).await;

    assert_eq!(received(&mut stats_rx), ["CommandResponse"]);
    assert_eq!(
        received(&mut track_rx),
        ["QualityChanged", "CommandResponse"]
    );
}

/// `Subscribe` then `Unsubscribe` of the same events leaves a connection with no events (not
/// every event, as an empty list used to mean); a connection that never subscribed and
/// unsubscribes from one event keeps receiving all the others.
#[tokio::test]
async fn unsubscribing_from_all_it_subscribed_to_leaves_a_connection_no_events() {
    let hub = WebSocketManager::new();
    let (id, mut rx, _) = register(&hub, "ann");
    let (never, mut never_rx, _) = register(&hub, "bob");
    let events = vec!["PlaybackStarted".to_string()];

    let sub = hub
        .execute(
            id,
            Some("ann"),
            "127.0.0.1",
            WebSocketCommand::Subscribe {
                command_id: "s".into(),
                events: events.clone(),
                filters: None,
            },
        )
        .await;
    assert!(
        matches!(sub, WebSocketEvent::CommandResponse { success: true, .. }),
        "{sub:?}"
    );
    let unsub = hub
        .execute(
            id,
            Some("ann"),
            "127.0.0.1",
            WebSocketCommand::Unsubscribe {
                command_id: "u".into(),
                events: events.clone(),
            },
        )
        .await;
    let WebSocketEvent::CommandResponse {
        success: true,
        data: Some(data),
        ..
    } = &unsub
    else {
        panic!("{unsub:?}")
    };
    assert_eq!(data["subscribed"], serde_json::json!([]));
    hub.execute(
        never,
        Some("bob"),
        "127.0.0.1",
        WebSocketCommand::Unsubscribe {
            command_id: "n".into(),
            events,
        },
    )
    .await;

    hub.broadcast_event(WebSocketEvent::PlaybackStarted {
        track_id: "t".into(),
        user_id: "cid".into(),
        timestamp: 1,
    })
    .await;
    hub.broadcast_event(WebSocketEvent::PlaybackStopped {
        track_id: "t".into(),
        user_id: "cid".into(),
        total_played_ms: 1,
    })
    .await;

    let got = received(&mut rx);
    assert!(got.is_empty(), "unsubscribed from everything, got {got:?}");
    assert_eq!(received(&mut never_rx), ["PlaybackStopped"]);
}

//! `wsfloor`: the cheapest server this benchmark's protocol subset allows, as a measuring
//! instrument for `bench/ws_fanout.py`, not as a server anyone should run.
//!
//! Why it exists: the fan-out latency target (p99 ≤ 50 ms at 150,000 messages/s over 10,000
//! loopback connections on a 2-core machine) is bounded from below by what the kernel charges
//! for 10,000 socket writes on one core, whatever the server does in user space. This program
//! does nothing else: a broadcast is framed once and written to each subscribed socket with one
//! `send(2)`, in a tight loop on the server's only thread — no per-connection task, no queue, no
//! wake-up, no timer. Events published while a sweep is waiting to run go out together, one
//! `send` per socket for all of them (as stream-server's writers batch what has queued): without
//! that, a sweep per event cannot keep up with 15 events/s on one core. Its latency in the same run as stream-server's is the floor that
//! no server on that machine and core split can go under; the gap between the two is what a
//! server's own code costs.
//!
//! What it speaks (the subset `wsload` uses, as `node-server/server.mjs`):
//! - `GET /healthz` → 200; `GET /api/ws/stats` → the counters stream-server reports;
//! - `GET /api/ws?...` → WebSocket; `Subscribe`, `Unsubscribe` and `Ping` answered with one
//!   `CommandResponse` each, anything else refused with `success: false`;
//! - `POST /api/admin/message` `{"message": …, "level"?}` → `ServerMessage` to every connection
//!   subscribed to it (or to nothing), then 202.
//!
//! What it leaves out, each of which a real server must pay for: heartbeats, filters, rate
//! limits, authentication, per-user routing, checking event names, and buffering for slow readers — a socket whose
//! send buffer is full when a broadcast comes is closed and counted as a slow reader (no paced
//! phase of the benchmark fills a socket buffer: a client's window is 64 events of ~70 bytes).
//!
//! Single-threaded by construction (`current_thread` runtime): the broadcast loop owns the
//! registry of sockets without locks, and the benchmark pins it to one core like the others.

use std::cell::RefCell;
use std::collections::HashMap;
use std::os::fd::{AsRawFd as _, RawFd};
use std::rc::Rc;

use anyhow::Context as _;
use clap::Parser;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// Largest request head or body accepted.
const MAX_REQUEST: usize = 64 * 1024;

#[derive(Parser)]
#[command(about = "Minimal WebSocket broadcast server: the floor for bench/ws_fanout.py")]
struct Args {
    /// Address to listen on (port 0: any free port, printed on stderr).
    #[arg(long, default_value = "127.0.0.1:0")]
    bind: String,
}

/// A connection that gets `ServerMessage`.
struct Listener {
    fd: RawFd,
    /// Set when the broadcast loop gave up on it; its task then closes the socket.
    dead: Rc<std::cell::Cell<bool>>,
}

#[derive(Default)]
struct Hub {
    next_id: u64,
    /// Connections subscribed to `ServerMessage` (or to nothing, which means every event).
    listeners: HashMap<u64, Listener>,
    connections: u64,
    messages_sent: u64,
    slow: u64,
    events: u64,
    /// Frames of the events waiting for the next sweep, back to back.
    pending: Vec<u8>,
    sweep_scheduled: bool,
    sweeps: u64,
    sweep_micros_total: u64,
    sweep_micros_max: u64,
}

type Shared = Rc<RefCell<Hub>>;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let listener = TcpListener::bind(&args.bind)
            .await
            .with_context(|| format!("binding {}", args.bind))?;
        eprintln!("listening on http://{}/", listener.local_addr()?);
        accept_loop(listener).await
    })
}

/// Serves connections until accepting fails. Runs inside a `LocalSet`.
async fn accept_loop(listener: TcpListener) -> anyhow::Result<()> {
    let hub: Shared = Rc::default();
    loop {
        let (tcp, _) = listener.accept().await?;
        tcp.set_nodelay(true)?;
        let hub = hub.clone();
        tokio::task::spawn_local(async move {
            if let Err(e) = serve(tcp, hub).await {
                eprintln!("connection: {e:#}");
            }
        });
    }
}

/// One HTTP/1.1 request: method, path, headers (lower-case names) and body.
struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads the next request from `buf` + the socket; `None` at a clean end of the connection.
async fn read_request(tcp: &mut TcpStream, buf: &mut Vec<u8>) -> anyhow::Result<Option<Request>> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        if let httparse::Status::Complete(head) = req.parse(buf)? {
            let headers: Vec<(String, String)> = req
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_ascii_lowercase(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect();
            let method = req.method.unwrap_or_default().to_string();
            let path = req.path.unwrap_or_default().to_string();
            let length: usize = headers
                .iter()
                .find(|(n, _)| n == "content-length")
                .map(|(_, v)| v.trim().parse())
                .transpose()?
                .unwrap_or(0);
            anyhow::ensure!(length <= MAX_REQUEST, "body too large");
            while buf.len() < head + length {
                read_more(tcp, buf)
                    .await?
                    .context("connection closed mid-body")?;
            }
            let body = buf[head..head + length].to_vec();
            buf.drain(..head + length);
            return Ok(Some(Request {
                method,
                path,
                headers,
                body,
            }));
        }
        anyhow::ensure!(buf.len() <= MAX_REQUEST, "request head too large");
        if read_more(tcp, buf).await?.is_none() {
            anyhow::ensure!(buf.is_empty(), "connection closed mid-request");
            return Ok(None);
        }
    }
}

async fn read_more(tcp: &mut TcpStream, buf: &mut Vec<u8>) -> anyhow::Result<Option<usize>> {
    let mut chunk = [0u8; 8192];
    let n = tcp.read(&mut chunk).await?;
    if n == 0 {
        return Ok(None);
    }
    buf.extend_from_slice(&chunk[..n]);
    Ok(Some(n))
}

async fn respond(tcp: &mut TcpStream, status: &str, body: &str) -> anyhow::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    tcp.write_all(format!("{head}{body}").as_bytes()).await?;
    Ok(())
}

async fn serve(mut tcp: TcpStream, hub: Shared) -> anyhow::Result<()> {
    let mut buf = Vec::new();
    while let Some(req) = read_request(&mut tcp, &mut buf).await? {
        let route = req.path.split('?').next().unwrap_or_default().to_string();
        match (req.method.as_str(), route.as_str()) {
            ("GET", "/api/ws") => {
                anyhow::ensure!(buf.is_empty(), "data sent before the handshake's answer");
                return websocket(tcp, &req, hub).await;
            }
            ("GET", "/healthz") => respond(&mut tcp, "200 OK", "\"ok\"").await?,
            ("GET", "/api/ws/stats") => {
                let body = {
                    let h = hub.borrow();
                    json!({
                        "current_connections": h.connections,
                        "messages_sent": h.messages_sent,
                        "slow_reader_disconnects": h.slow,
                        "events_broadcasted": h.events,
                        "sweeps": h.sweeps,
                        "sweep_ms_mean": h.sweep_micros_total as f64 / h.sweeps.max(1) as f64 / 1000.0,
                        "sweep_ms_max": h.sweep_micros_max as f64 / 1000.0,
                    })
                    .to_string()
                };
                respond(&mut tcp, "200 OK", &body).await?
            }
            ("POST", "/api/admin/message") => match event_of(&req.body) {
                Ok(event) => {
                    publish(&hub, &event);
                    respond(&mut tcp, "202 Accepted", "").await?
                }
                Err(e) => {
                    let body = json!({ "error": e }).to_string();
                    respond(&mut tcp, "400 Bad Request", &body).await?
                }
            },
            _ => respond(&mut tcp, "404 Not Found", "{\"error\":\"not found\"}").await?,
        }
    }
    Ok(())
}

/// The `ServerMessage` a `POST /api/admin/message` body asks for, serialised.
fn event_of(body: &[u8]) -> Result<String, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("invalid body: {e}"))?;
    let message = v
        .get("message")
        .and_then(Value::as_str)
        .ok_or("`message` must be a string")?;
    let level = v.get("level").and_then(Value::as_str).unwrap_or("Info");
    if !["Info", "Warning", "Error"].contains(&level) {
        return Err("`level` must be Info, Warning or Error".into());
    }
    // Fields in stream-server's order (wsload reads that order on its fast path).
    Ok(format!(
        r#"{{"event":"ServerMessage","message":{},"level":"{level}"}}"#,
        Value::from(message)
    ))
}

/// How many frames `bytes` (whole frames back to back) holds.
fn frame_count(bytes: &[u8]) -> u64 {
    let (mut at, mut n) = (0, 0);
    while at + 2 <= bytes.len() {
        let (len, head) = match bytes[at + 1] {
            126 => (
                usize::from(u16::from_be_bytes([bytes[at + 2], bytes[at + 3]])),
                4,
            ),
            127 => (
                u64::from_be_bytes(bytes[at + 2..at + 10].try_into().unwrap_or_default()) as usize,
                10,
            ),
            l => (usize::from(l), 2),
        };
        at += head + len;
        n += 1;
    }
    n
}

/// A server-to-client text frame (unmasked, so the same bytes serve every recipient).
fn text_frame(payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(payload.len() + 10);
    frame.push(0x81);
    match payload.len() {
        n if n < 126 => frame.push(n as u8),
        n if n <= usize::from(u16::MAX) => {
            frame.push(126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(payload);
    frame
}

/// Queues an event for the next sweep, scheduling one if none is. The sweep runs after every
/// task already runnable (the other publishers' requests among them), so events published at
/// the same moment share it.
fn publish(hub: &Shared, event: &str) {
    let mut h = hub.borrow_mut();
    h.events += 1;
    h.pending.extend_from_slice(&text_frame(event.as_bytes()));
    if !h.sweep_scheduled {
        h.sweep_scheduled = true;
        let hub = hub.clone();
        tokio::task::spawn_local(async move {
            tokio::task::yield_now().await;
            sweep(&hub);
        });
    }
}

/// One `send(2)` per listener with every pending frame. A socket that does not take it all at
/// once is given up (its task closes it): frames cannot be half-sent and the rest dropped.
fn sweep(hub: &Shared) {
    let started = std::time::Instant::now();
    let mut h = hub.borrow_mut();
    h.sweep_scheduled = false;
    let frame = std::mem::take(&mut h.pending);
    let frames = frame_count(&frame);
    let mut sent = 0;
    let mut slow = Vec::new();
    for (id, l) in &h.listeners {
        // SAFETY: `fd` is open: a listener leaves the registry before its socket is dropped,
        // and this loop runs on the only thread.
        let n = unsafe {
            libc::send(
                l.fd,
                frame.as_ptr().cast(),
                frame.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if n == frame.len() as isize {
            sent += 1;
        } else {
            slow.push(*id);
        }
    }
    h.messages_sent += sent * frames;
    let micros = started.elapsed().as_micros() as u64;
    h.sweeps += 1;
    h.sweep_micros_total += micros;
    h.sweep_micros_max = h.sweep_micros_max.max(micros);
    for id in slow {
        if let Some(l) = h.listeners.remove(&id) {
            l.dead.set(true);
            h.slow += 1;
            // Wakes the connection's task (its read returns), which then closes the socket.
            unsafe { libc::shutdown(l.fd, libc::SHUT_RDWR) };
        }
    }
}

async fn websocket(mut tcp: TcpStream, req: &Request, hub: Shared) -> anyhow::Result<()> {
    let key = req
        .header("sec-websocket-key")
        .context("not a WebSocket handshake")?;
    let answer = format!(
        "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: {}\r\n\r\n",
        derive_accept_key(key.as_bytes())
    );
    tcp.write_all(answer.as_bytes()).await?;
    let fd = tcp.as_raw_fd();
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_REQUEST))
        .read_buffer_size(4096);
    let mut ws = WebSocketStream::from_raw_socket(tcp, Role::Server, Some(config)).await;
    let dead = Rc::new(std::cell::Cell::new(false));
    let id = {
        let mut h = hub.borrow_mut();
        h.next_id += 1;
        h.connections += 1;
        h.next_id
    };
    // No subscription yet: every event, as in stream-server.
    let mut subs: Vec<String> = Vec::new();
    set_listening(&hub, id, fd, &dead, true);
    while let Some(msg) = ws.next().await {
        if dead.get() {
            break;
        }
        let text = match msg {
            Ok(Message::Text(t)) => t,
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => continue,
        };
        let reply = command(&text, &mut subs);
        let listening = subs.is_empty() || subs.iter().any(|s| s == "ServerMessage");
        set_listening(&hub, id, fd, &dead, listening);
        if ws.send(Message::text(reply.to_string())).await.is_err() {
            break;
        }
        hub.borrow_mut().messages_sent += 1;
    }
    // Out of the registry before the socket (and its descriptor number) is released.
    let mut h = hub.borrow_mut();
    h.listeners.remove(&id);
    h.connections -= 1;
    Ok(())
}

fn set_listening(hub: &Shared, id: u64, fd: RawFd, dead: &Rc<std::cell::Cell<bool>>, on: bool) {
    let mut h = hub.borrow_mut();
    if dead.get() {
        return;
    }
    if on {
        h.listeners.insert(
            id,
            Listener {
                fd,
                dead: dead.clone(),
            },
        );
    } else {
        h.listeners.remove(&id);
    }
}

/// Answers one command (the `CommandResponse`), updating the subscriptions.
fn command(text: &str, subs: &mut Vec<String>) -> Value {
    let answer = |id: &str, ok: bool, data: Value, error: Option<String>| json!({ "event": "CommandResponse", "command_id": id, "success": ok, "data": data, "error": error });
    let Ok(cmd) = serde_json::from_str::<Value>(text) else {
        return answer(
            "",
            false,
            Value::Null,
            Some("invalid command: not JSON".into()),
        );
    };
    let id = cmd.get("command_id").and_then(Value::as_str).unwrap_or("");
    match cmd.get("command").and_then(Value::as_str) {
        Some(name @ ("Subscribe" | "Unsubscribe")) => {
            let Some(events) = cmd.get("events").and_then(Value::as_array) else {
                return answer(id, false, Value::Null, Some("`events` must be a list".into()));
            };
            let events: Vec<&str> = events.iter().filter_map(Value::as_str).collect();
            for e in events {
                if name == "Subscribe" && !subs.iter().any(|s| s == e) {
                    subs.push(e.to_string());
                } else if name == "Unsubscribe" {
                    subs.retain(|s| s != e);
                }
            }
            answer(id, true, json!({ "subscribed": subs }), None)
        }
        Some("Ping") => answer(id, true, json!({ "pong": true }), None),
        other => answer(
            id,
            false,
            Value::Null,
            Some(format!("unsupported command {other:?} (this floor implements Subscribe, Unsubscribe, Ping)")),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_follow_rfc_6455_lengths() {
        assert_eq!(text_frame(b"hi"), vec![0x81, 2, b'h', b'i']);
        let mid = text_frame(&[b'a'; 200]);
        assert_eq!(&mid[..4], &[0x81, 126, 0, 200]);
        assert_eq!(mid.len(), 204);
        let big = text_frame(&vec![b'a'; 70_000]);
        assert_eq!(&big[..2], &[0x81, 127]);
        assert_eq!(u64::from_be_bytes(big[2..10].try_into().unwrap()), 70_000);
        let three = [text_frame(b"hi"), mid, big].concat();
        assert_eq!(frame_count(&three), 3);
    }

    #[test]
    fn subscriptions_follow_commands() {
        let mut subs = Vec::new();
        let r = command(
            r#"{"command":"Subscribe","command_id":"1","events":["ServerMessage"]}"#,
            &mut subs,
        );
        assert_eq!(r["success"], true);
        assert_eq!(subs, vec!["ServerMessage".to_string()]);
        let r = command(r#"{"command":"Subscribe","command_id":"2"}"#, &mut subs);
        assert_eq!(r["success"], false);
        command(
            r#"{"command":"Unsubscribe","command_id":"3","events":["ServerMessage"]}"#,
            &mut subs,
        );
        assert!(subs.is_empty());
        assert_eq!(command("{", &mut subs)["success"], false);
    }

    /// A real client: subscribes, gets the event of a real `POST`, once, byte for byte.
    #[test]
    fn a_subscriber_gets_a_published_event() {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let local = tokio::task::LocalSet::new();
            local.block_on(&rt, async move {
                let listener = TcpListener::from_std(std_listener).unwrap();
                let _ = accept_loop(listener).await;
            });
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/api/ws?user_id=a"))
                .await
                .unwrap();
            ws.send(Message::text(
                r#"{"command":"Subscribe","command_id":"s1","events":["ServerMessage"]}"#,
            ))
            .await
            .unwrap();
            let reply: Value = match ws.next().await.unwrap().unwrap() {
                Message::Text(t) => serde_json::from_str(&t).unwrap(),
                other => panic!("unexpected {other:?}"),
            };
            assert_eq!(reply["command_id"], "s1");
            assert_eq!(reply["success"], true);

            let body = r#"{"message":"7:42"}"#;
            let mut http = TcpStream::connect(addr).await.unwrap();
            http.write_all(
                format!(
                    "POST /api/admin/message HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            )
            .await
            .unwrap();
            let mut answer = [0u8; 64];
            let n = http.read(&mut answer).await.unwrap();
            assert!(answer[..n].starts_with(b"HTTP/1.1 202"));

            match ws.next().await.unwrap().unwrap() {
                Message::Text(t) => assert_eq!(
                    t.as_str(),
                    r#"{"event":"ServerMessage","message":"7:42","level":"Info"}"#
                ),
                other => panic!("unexpected {other:?}"),
            }
            // Exactly one: the next thing on the socket is the answer to a ping, not a copy.
            ws.send(Message::text(r#"{"command":"Ping","command_id":"p"}"#))
                .await
                .unwrap();
            match ws.next().await.unwrap().unwrap() {
                Message::Text(t) => assert!(t.contains(r#""command_id":"p""#), "{t}"),
                other => panic!("unexpected {other:?}"),
            }
        });
    }

    #[test]
    fn admin_bodies_are_checked() {
        let e = event_of(br#"{"message":"1:2"}"#).unwrap();
        assert_eq!(
            e,
            r#"{"event":"ServerMessage","message":"1:2","level":"Info"}"#
        );
        assert!(event_of(br#"{"message":1}"#).is_err());
        assert!(event_of(br#"{"message":"x","level":"Loud"}"#).is_err());
    }
}

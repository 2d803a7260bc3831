//! The publisher: `POST /api/admin/message` with `{"message":"<seq>:<send_micros>"}`, paced at a
//! target rate or flat out, over a few keep-alive connections with requests pipelined on each.
//!
//! HTTP/1.1 is written and read by hand over a `TcpStream`: the tool needs one fixed request
//! and the status of each answer, and pipelining (several requests in flight on one
//! connection), which common clients (reqwest, hyper's client) do not do. That is ~100 lines
//! here instead of another dependency tree in the load tool.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use tokio::io::{
    AsyncBufRead, AsyncBufReadExt as _, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _,
    BufReader,
};
use tokio::net::TcpStream;
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;

use crate::{now_micros, Shared, Target};

/// An answer slower than this means the server is stuck: the connection is given up.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest status or header line accepted.
const MAX_LINE: u64 = 8 * 1024;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// Events per second, summed over all publisher connections.
    Rate(f64),
    /// As fast as the server answers, with at most `window` events per client published but
    /// not yet delivered (0: no such limit, only the pipeline depth).
    Max { window: u64 },
}

#[derive(Debug, Clone, Copy)]
pub struct PublishConfig {
    pub pace: Pace,
    pub connections: usize,
    /// Requests in flight per connection.
    pub pipeline: usize,
    pub deadline: Instant,
}

/// What the publisher did in a phase, summed over its connections.
#[derive(Default)]
pub struct Counters {
    /// Requests written.
    pub sent: AtomicU64,
    /// Answered 202.
    pub accepted: AtomicU64,
    /// Answered with another status.
    pub rejected: AtomicU64,
    /// Connections that failed (connect, write, read, timeout).
    pub errors: AtomicU64,
    pub last_error: Mutex<Option<String>>,
    pub last_rejected_status: AtomicU64,
}

impl Counters {
    fn error(&self, e: impl std::fmt::Display) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(e.to_string());
        }
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|l| l.clone())
    }
}

/// Runs one publisher connection until the deadline, then waits for its answers.
pub async fn run_connection(
    k: usize,
    config: PublishConfig,
    target: Arc<Target>,
    shared: Arc<Shared>,
    next_seq: Arc<AtomicU64>,
    counters: Arc<Counters>,
) {
    let tcp = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target.addr)).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => {
            counters.error(format!("publisher connect: {e}"));
            return;
        }
        Err(_) => {
            counters.error("publisher connect: timed out");
            return;
        }
    };
    // Each request is written whole in one call; don't let Nagle hold the next one back.
    let _ = tcp.set_nodelay(true);
    let (rd, mut wr) = tcp.into_split();
    let mut rd = BufReader::new(rd);

    let in_flight = Semaphore::new(config.pipeline.max(1));
    let written = AtomicU64::new(0);
    let done = AtomicBool::new(false);
    let wake_reader = Notify::new();

    let writer = async {
        let result = write_requests(
            k,
            &config,
            &target,
            &shared,
            &next_seq,
            &counters,
            &in_flight,
            &written,
            &wake_reader,
            &mut wr,
        )
        .await;
        done.store(true, Ordering::SeqCst);
        wake_reader.notify_one();
        result
    };
    let reader = async {
        let mut line = Vec::with_capacity(256);
        let mut answered = 0u64;
        loop {
            if answered >= written.load(Ordering::SeqCst) {
                if done.load(Ordering::SeqCst) && answered >= written.load(Ordering::SeqCst) {
                    return Ok(());
                }
                wake_reader.notified().await;
                continue;
            }
            let status =
                match tokio::time::timeout(RESPONSE_TIMEOUT, read_response(&mut rd, &mut line))
                    .await
                {
                    Ok(Ok(status)) => status,
                    Ok(Err(e)) => {
                        in_flight.close();
                        return Err(e);
                    }
                    Err(_) => {
                        in_flight.close();
                        return Err(anyhow!("no answer within {RESPONSE_TIMEOUT:?}"));
                    }
                };
            answered += 1;
            if status == 202 {
                counters.accepted.fetch_add(1, Ordering::Relaxed);
            } else {
                counters.rejected.fetch_add(1, Ordering::Relaxed);
                counters
                    .last_rejected_status
                    .store(u64::from(status), Ordering::Relaxed);
            }
            in_flight.add_permits(1);
        }
    };
    let (w, r) = tokio::join!(writer, reader);
    if let Err(e) = w {
        counters.error(format!("publisher write: {e:#}"));
    }
    if let Err(e) = r {
        counters.error(format!("publisher read: {e:#}"));
    }
    let _ = wr.shutdown().await;
}

#[allow(clippy::too_many_arguments)]
async fn write_requests(
    k: usize,
    config: &PublishConfig,
    target: &Target,
    shared: &Shared,
    next_seq: &AtomicU64,
    counters: &Counters,
    in_flight: &Semaphore,
    written: &AtomicU64,
    wake_reader: &Notify,
    wr: &mut (impl AsyncWrite + Unpin),
) -> anyhow::Result<()> {
    let start = Instant::now();
    let mut request = Vec::with_capacity(256);
    let mut tick: u32 = 0;
    loop {
        match config.pace {
            Pace::Rate(rate) => {
                // Connection k sends ticks k, k + n, k + 2n, … of the whole schedule.
                let n = config.connections.max(1) as f64;
                let at = start + Duration::from_secs_f64((k as f64 + f64::from(tick) * n) / rate);
                if at >= config.deadline {
                    return Ok(());
                }
                tokio::time::sleep_until(at).await;
            }
            Pace::Max { window } => loop {
                if Instant::now() >= config.deadline {
                    return Ok(());
                }
                if window == 0 {
                    break;
                }
                let clients = shared.alive();
                let published = counters
                    .sent
                    .load(Ordering::Relaxed)
                    .saturating_sub(counters.rejected.load(Ordering::Relaxed));
                let due = published.saturating_mul(clients);
                if due
                    <= shared
                        .delivered()
                        .saturating_add(window.saturating_mul(clients))
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            },
        }
        match tokio::time::timeout_at(config.deadline, in_flight.acquire()).await {
            Ok(Ok(permit)) => permit.forget(),
            // The deadline, or the reader gave the connection up.
            Ok(Err(_)) | Err(_) => return Ok(()),
        }
        let seq = next_seq.fetch_add(1, Ordering::Relaxed);
        let body = format!(r#"{{"message":"{seq}:{}","level":"Info"}}"#, now_micros());
        request.clear();
        request.extend_from_slice(
            format!(
                "POST /api/admin/message HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                target.host,
                body.len()
            )
            .as_bytes(),
        );
        request.extend_from_slice(body.as_bytes());
        wr.write_all(&request).await.context("writing a request")?;
        counters.sent.fetch_add(1, Ordering::Relaxed);
        written.fetch_add(1, Ordering::SeqCst);
        wake_reader.notify_one();
        tick = tick.saturating_add(1);
    }
}

/// Reads one response (skipping `100 Continue`), discards its body, returns its status.
async fn read_response<R: AsyncBufRead + Unpin>(
    rd: &mut R,
    line: &mut Vec<u8>,
) -> anyhow::Result<u16> {
    loop {
        read_line(rd, line).await?;
        let text = std::str::from_utf8(line.as_slice()).context("status line is not UTF-8")?;
        let status: u16 = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| anyhow!("bad status line {:?}", text.trim_end()))?;
        let mut length: Option<u64> = None;
        let mut chunked = false;
        loop {
            read_line(rd, line).await?;
            if line.as_slice() == b"\r\n" || line.as_slice() == b"\n" {
                break;
            }
            let text = std::str::from_utf8(line.as_slice()).context("header is not UTF-8")?;
            if let Some((name, value)) = text.split_once(':') {
                let value = value.trim();
                if name.eq_ignore_ascii_case("content-length") {
                    length = Some(value.parse().context("bad content-length")?);
                } else if name.eq_ignore_ascii_case("transfer-encoding") {
                    chunked = value.to_ascii_lowercase().contains("chunked");
                }
            }
        }
        if (100..200).contains(&status) {
            continue;
        }
        if chunked {
            loop {
                read_line(rd, line).await?;
                let text =
                    std::str::from_utf8(line.as_slice()).context("chunk size is not UTF-8")?;
                let size_hex = text.split(';').next().unwrap_or("").trim();
                let size = u64::from_str_radix(size_hex, 16)
                    .with_context(|| format!("bad chunk size {size_hex:?}"))?;
                if size == 0 {
                    // Trailers, up to the empty line.
                    loop {
                        read_line(rd, line).await?;
                        if line.as_slice() == b"\r\n" || line.as_slice() == b"\n" {
                            break;
                        }
                    }
                    break;
                }
                skip(rd, size + 2).await?;
            }
        } else if let Some(n) = length {
            skip(rd, n).await?;
        } else if status != 204 && status != 304 {
            bail!("a {status} response without a length: cannot pipeline");
        }
        return Ok(status);
    }
}

async fn read_line<R: AsyncBufRead + Unpin>(rd: &mut R, line: &mut Vec<u8>) -> anyhow::Result<()> {
    line.clear();
    let n = (&mut *rd).take(MAX_LINE).read_until(b'\n', line).await?;
    if n == 0 {
        bail!("connection closed by the server");
    }
    if line.last() != Some(&b'\n') {
        bail!("line too long or cut short");
    }
    Ok(())
}

async fn skip<R: AsyncBufRead + Unpin>(rd: &mut R, mut n: u64) -> anyhow::Result<()> {
    while n > 0 {
        let available = rd.fill_buf().await?.len();
        if available == 0 {
            bail!("connection closed in a response body");
        }
        let step = available.min(usize::try_from(n).unwrap_or(usize::MAX));
        rd.consume(step);
        n -= step as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_pipelined_responses() {
        let wire: &[u8] = b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\ndate: x\r\n\r\n\
HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 400 Bad Request\r\nContent-Length: 5\r\n\r\nhello\
HTTP/1.1 403 Forbidden\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n\
HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n";
        let mut rd = BufReader::new(wire);
        let mut line = Vec::new();
        for want in [202, 400, 403, 202] {
            assert_eq!(
                read_response(&mut rd, &mut line).await.expect("parses"),
                want
            );
        }
        assert!(read_response(&mut rd, &mut line).await.is_err());
    }
}

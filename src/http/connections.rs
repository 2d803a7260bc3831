//! Accepting connections and serving each with hyper's HTTP/1 server, as `axum::serve` does,
//! plus what it cannot: every connection's I/O is a [`ConnIo`], so that file-backed response
//! bodies leave with `sendfile` (see `zero_copy`). Each request carries its connection's
//! [`FileBacked`] registry and the peer's address (`ConnectInfo`, as `axum::serve` gives it).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::response::Response;
use axum::Router;
use futures_util::future::Either;
use futures_util::FutureExt as _;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt as _;

use super::hot::HotSegments;
use super::zero_copy::{ConnIo, FileBacked};

/// Serves `router` (with `hot` answering what it can first, see `hot`) on `listener` until
/// `shutdown` resolves; then stops accepting, lets every connection finish its request in flight
/// (idle ones close at once) and returns when all are closed, or after [`DRAIN_DEADLINE`]. Upgraded (WebSocket) connections
/// are no longer hyper's and are not waited for.
pub async fn serve(
    mut listener: TcpListener,
    router: Router,
    hot: Option<Arc<HotSegments>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    // Every connection task holds a clone of `alive_rx`: all dropped means all closed.
    let (alive_tx, alive_rx) = watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // `accept` retries transient errors (EMFILE, ECONNABORTED) itself, after a pause.
        let (tcp, addr) = tokio::select! {
            accepted = axum::serve::Listener::accept(&mut listener) => accepted,
            () = &mut shutdown => break,
        };
        // No Nagle: small writes (WebSocket events, playlist responses) leave at once instead
        // of waiting for the peer's delayed ACK.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let router = router.clone();
        let hot = hot.clone();
        let stop = stop_rx.clone();
        let alive = alive_rx.clone();
        tokio::spawn(async move {
            serve_connection(tcp, addr, router, hot, stop).await;
            drop(alive);
        });
    }
    drop(listener);
    stop_tx.send_replace(true);
    drop(alive_rx);
    // A download to a slow client can take minutes: it gets DRAIN_DEADLINE to finish, then the
    // process goes on shutting down and the connection is dropped with it.
    if tokio::time::timeout(DRAIN_DEADLINE, alive_tx.closed())
        .await
        .is_err()
    {
        tracing::warn!(
            connections = alive_tx.receiver_count(),
            "requests still in flight after {DRAIN_DEADLINE:?}: closing them"
        );
    }
    Ok(())
}

/// How long a connection may take to send a request's head, and how long a keep-alive
/// connection may sit idle between requests.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How long requests in flight may run on after shutdown begins.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

async fn serve_connection(
    tcp: tokio::net::TcpStream,
    addr: SocketAddr,
    router: Router,
    hot: Option<Arc<HotSegments>>,
    mut stop: watch::Receiver<bool>,
) {
    let files = Arc::new(FileBacked::default());
    let io = TokioIo::new(ConnIo::new(tcp, files.clone()));
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(addr));
        if let Some(answer) = hot.as_ref().and_then(|hot| hot.answer(&req, &files)) {
            return Either::Left(std::future::ready(Ok(answer)));
        }
        req.extensions_mut().insert(files.clone());
        Either::Right(router.clone().oneshot(req).map(|r| r.map(no_length_on_304)))
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    // Without a timer hyper drops its header-read timeout (it only logs that it did): a client
    // that opens a connection and never finishes a request head, or leaves a keep-alive
    // connection idle, held it forever, and enough of them (slowloris) ran the process out of
    // descriptors for everyone.
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let conn = builder.serve_connection(io, service).with_upgrades();
    let mut conn = std::pin::pin!(conn);
    let finished = tokio::select! {
        result = conn.as_mut() => Some(result),
        _ = stop.wait_for(|stop| *stop) => None,
    };
    let result = match finished {
        Some(result) => result,
        None => {
            // Finish the request in flight (if any), then close.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::trace!(error = %e, %addr, "connection ended with an error");
    }
}

/// A `304` carries no `Content-Length`: RFC 9110 §8.6 lets it only repeat the `200`'s, and axum
/// sets `0` from the empty body of an answer to `HEAD` (after every layer, so it is taken off
/// here), which a cache could take for the resource's new length.
fn no_length_on_304(mut response: Response) -> Response {
    if response.status() == axum::http::StatusCode::NOT_MODIFIED {
        response
            .headers_mut()
            .remove(axum::http::header::CONTENT_LENGTH);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// A client that never finishes its request head is dropped after the timeout (time is
    /// paused: it advances while the server waits, so the test takes no real 30 s).
    #[tokio::test(start_paused = true)]
    async fn an_unfinished_request_head_is_dropped() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = Router::new().route("/", axum::routing::get(|| async { "hi" }));
        tokio::spawn(serve(listener, router, None, std::future::pending()));
        let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        let started = tokio::time::Instant::now();
        let mut rest = Vec::new();
        // Closed (an end of stream or a reset, maybe after a `408`), at the timeout, not before.
        let _end_or_reset =
            tokio::time::timeout(HEADER_READ_TIMEOUT * 4, slow.read_to_end(&mut rest))
                .await
                .expect("the connection was still open long after the header timeout");
        assert!(started.elapsed() >= HEADER_READ_TIMEOUT);
        assert!(
            rest.is_empty() || rest.starts_with(b"HTTP/1.1 408"),
            "{rest:?}"
        );
        // A complete request on a new connection is still served.
        let mut ok = tokio::net::TcpStream::connect(addr).await.unwrap();
        ok.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        ok.read_to_end(&mut answer).await.unwrap();
        assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    }

    /// A client that asks for a large body and reads none of it is dropped once writes have
    /// waited [`super::super::zero_copy::WRITE_STALL`] (time is paused, as above).
    #[tokio::test(start_paused = true)]
    async fn a_client_that_stops_reading_is_dropped() {
        use crate::http::zero_copy::WRITE_STALL;
        const SIZE: usize = 64 << 20;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = Router::new().route("/big", axum::routing::get(|| async { vec![7u8; SIZE] }));
        tokio::spawn(serve(listener, router, None, std::future::pending()));
        let request = b"GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

        let mut stuck = tokio::net::TcpStream::connect(addr).await.unwrap();
        stuck.write_all(request).await.unwrap();
        let started = tokio::time::Instant::now();
        tokio::time::sleep(WRITE_STALL * 2).await;
        // Whatever the socket buffers held, then the end: not the whole body.
        let mut got = Vec::new();
        let _end_or_reset = stuck.read_to_end(&mut got).await;
        assert!(started.elapsed() >= WRITE_STALL);
        assert!(
            got.len() < SIZE,
            "a client that read nothing for {:?} was sent it all",
            WRITE_STALL * 2
        );
    }
}

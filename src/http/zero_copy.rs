//! Sending bytes that came from a file with `sendfile(2)`, through hyper.
//!
//! Why: hyper writes every body from user memory, so each cached segment was copied into the
//! socket once per response, and that copy was most of the cost of serving one: nginx, which
//! hands page-cache pages to the socket with `sendfile`, answered 4× our request rate for the
//! same segment (docs/benchmarks.md). hyper has no file-body API and no crate adds one, so the
//! substitution happens under hyper, in the connection's I/O:
//!
//! - a handler whose body is bytes it read from a file *registers* them on its connection
//!   ([`FileBacked::register`]): "this memory holds these bytes of that open file";
//! - when hyper writes a slice lying inside registered memory, [`ConnIo`] sends that range of
//!   the file with `sendfile` instead, and tells hyper the slice was written.
//!
//! A registration keeps its allocation alive, so no other buffer can occupy that address while it
//! stands: an address match always means the registered bytes. Where nothing matches (hyper
//! copied the bytes into its own buffer, HTTP/2 framing, a registration already pushed out), the
//! bytes are written from memory as usual. Correct either way, provided what the handler
//! registers is true — the memory was read from that file range through that handle, and the file
//! is never rewritten in place (cached encodes are append-only, and replaced by new files).

use std::collections::VecDeque;
use std::fs::File;
use std::future::Future as _;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

/// Registrations kept per connection. HTTP/1 writes one response at a time, so one would do;
/// one more covers a response still being flushed when the next handler registers. A
/// registration is dropped as soon as its last byte is sent: it must not keep a segment's memory
/// alive on an idle keep-alive connection.
const KEPT: usize = 2;

/// The file-backed memory of one connection's responses (a request extension).
#[derive(Default)]
pub struct FileBacked {
    regions: Mutex<VecDeque<Region>>,
}

struct Region {
    /// Keeps the allocation alive, so that its address range means these bytes only.
    bytes: Bytes,
    file: Arc<File>,
    /// Where `bytes[0]` is in `file`.
    offset: u64,
}

/// Where a slice is, relative to the registered memory.
enum Place {
    /// The slice starts inside a region: its first `len` bytes are in `file` at `offset`.
    Inside {
        file: Arc<File>,
        offset: u64,
        len: usize,
        /// Whether those `len` bytes end the region.
        to_end: bool,
    },
    /// A region starts `at` bytes into the slice.
    Before {
        at: usize,
    },
    Outside,
}

impl FileBacked {
    /// Declares that `bytes` hold the content of `file` from `offset` on.
    pub fn register(&self, bytes: Bytes, file: Arc<File>, offset: u64) {
        if bytes.is_empty() {
            return;
        }
        let mut regions = self.regions.lock();
        if regions.len() == KEPT {
            regions.pop_front();
        }
        regions.push_back(Region {
            bytes,
            file,
            offset,
        });
    }

    fn place(&self, slice: &[u8]) -> Place {
        let (start, end) = (
            slice.as_ptr() as usize,
            slice.as_ptr() as usize + slice.len(),
        );
        let regions = self.regions.lock();
        let mut first_after = None;
        for r in regions.iter() {
            let (r_start, r_end) = (
                r.bytes.as_ptr() as usize,
                r.bytes.as_ptr() as usize + r.bytes.len(),
            );
            if (r_start..r_end).contains(&start) {
                return Place::Inside {
                    file: r.file.clone(),
                    offset: r.offset + (start - r_start) as u64,
                    len: end.min(r_end) - start,
                    to_end: end >= r_end,
                };
            }
            if (start..end).contains(&r_start) {
                let at = r_start - start;
                first_after = Some(first_after.map_or(at, |a: usize| a.min(at)));
            }
        }
        first_after.map_or(Place::Outside, |at| Place::Before { at })
    }

    /// Drops the region that ends at `end` (its last byte is sent).
    fn release(&self, end: usize) {
        self.regions
            .lock()
            .retain(|r| r.bytes.as_ptr() as usize + r.bytes.len() != end);
    }

    fn is_empty(&self) -> bool {
        self.regions.lock().is_empty()
    }
}

/// How long a write may wait for a client that reads nothing before the connection is closed.
/// A client that stopped reading — a vanished phone, a slow-read attack — otherwise holds its
/// connection, its task and the response's buffers for as long as the TCP stack keeps
/// retrying, and enough of them exhaust the descriptors. Five times nginx's `send_timeout`
/// (60 s): a player reading a low-bitrate stream at its playback pace wakes a blocked write
/// only once it has drained a good part of the socket's buffers, which at 96 kbit/s can take
/// minutes; a player that paused a progressive download and comes back later asks again with
/// a `Range`.
pub const WRITE_STALL: std::time::Duration = std::time::Duration::from_secs(300);

/// A connection's socket as hyper sees it: reads pass through; writes of registered memory go
/// out with `sendfile`; a write that cannot progress for [`WRITE_STALL`] fails.
pub struct ConnIo {
    tcp: TcpStream,
    files: Arc<FileBacked>,
    /// Armed while a write waits for the socket; reset by any progress.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl ConnIo {
    pub fn new(tcp: TcpStream, files: Arc<FileBacked>) -> Self {
        Self {
            tcp,
            files,
            stalled: None,
        }
    }

    /// `poll_write_slices` with the stall timeout.
    fn poll_write_timed(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.poll_write_slices(cx, bufs) {
            Poll::Ready(done) => {
                self.stalled = None;
                Poll::Ready(done)
            }
            Poll::Pending => {
                let stall = self
                    .stalled
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(WRITE_STALL)));
                match stall.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        self.stalled = None;
                        metrics::counter!("http_write_stalls_total").increment(1);
                        Poll::Ready(Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "the client read nothing for too long",
                        )))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    /// Writes the start of `bufs`: either a file-backed slice with `sendfile`, or the plain
    /// slices before one (flagged `MSG_MORE`, so that with `TCP_NODELAY` the response head does
    /// not leave in a packet of its own ahead of the file's bytes).
    fn poll_write_slices(
        &self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        if self.files.is_empty() {
            return poll_write_plain(&self.tcp, cx, bufs);
        }
        let mut plain: Vec<IoSlice<'_>> = Vec::with_capacity(bufs.len());
        for buf in bufs.iter().filter(|b| !b.is_empty()) {
            match self.files.place(buf) {
                Place::Inside {
                    file,
                    offset,
                    len,
                    to_end,
                } if plain.is_empty() => {
                    let sent = ready!(self.poll_io(cx, || {
                        let mut at = offset;
                        match rustix::fs::sendfile(&self.tcp, &*file, Some(&mut at), len) {
                            // The file ended early (truncated behind our back): hyper must
                            // not take that for a written slice.
                            Ok(0) => Err(std::io::ErrorKind::UnexpectedEof.into()),
                            Ok(n) => Ok(n),
                            Err(e) => Err(e.into()),
                        }
                    }))?;
                    metrics::counter!("http_sendfile_bytes_total").increment(sent as u64);
                    if to_end && sent == len {
                        self.files.release(buf.as_ptr() as usize + len);
                    }
                    return Poll::Ready(Ok(sent));
                }
                Place::Inside { .. } => return self.poll_send_more(cx, &plain),
                Place::Before { at } => {
                    plain.push(IoSlice::new(&buf[..at]));
                    return self.poll_send_more(cx, &plain);
                }
                Place::Outside => plain.push(IoSlice::new(buf)),
            }
        }
        poll_write_plain(&self.tcp, cx, bufs)
    }

    fn poll_send_more(
        &self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.poll_io(cx, || {
            rustix::net::sendmsg(
                &self.tcp,
                bufs,
                &mut rustix::net::SendAncillaryBuffer::default(),
                rustix::net::SendFlags::MORE | rustix::net::SendFlags::NOSIGNAL,
            )
            .map_err(std::io::Error::from)
        })
    }

    /// Runs a non-blocking socket write when the socket is writable, waiting otherwise.
    fn poll_io(
        &self,
        cx: &mut Context<'_>,
        mut write: impl FnMut() -> std::io::Result<usize>,
    ) -> Poll<std::io::Result<usize>> {
        loop {
            ready!(self.tcp.poll_write_ready(cx))?;
            match self.tcp.try_io(Interest::WRITABLE, &mut write) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                done => return Poll::Ready(done),
            }
        }
    }
}

/// Plain vectored write (the path of everything not file-backed).
fn poll_write_plain(
    tcp: &TcpStream,
    cx: &mut Context<'_>,
    bufs: &[IoSlice<'_>],
) -> Poll<std::io::Result<usize>> {
    loop {
        ready!(tcp.poll_write_ready(cx))?;
        match tcp.try_write_vectored(bufs) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            done => return Poll::Ready(done),
        }
    }
}

impl AsyncRead for ConnIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for ConnIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.get_mut().poll_write_timed(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.get_mut().poll_write_timed(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpListener;

    use super::*;

    /// A connected pair: our side as a `ConnIo`, and the client's socket.
    async fn pair(files: Arc<FileBacked>) -> (ConnIo, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        (ConnIo::new(accepted.unwrap().0, files), client.unwrap())
    }

    fn file_with(content: &[u8]) -> Arc<File> {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(content).unwrap();
        Arc::new(file)
    }

    async fn read_all(mut client: TcpStream) -> Vec<u8> {
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        got
    }

    /// The substitution is seen by making the registered memory differ from the file (which a
    /// real caller never does): what arrives for the registered range is the file's.
    #[tokio::test]
    async fn registered_memory_goes_out_from_its_file_range() {
        let on_disk: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let file = file_with(&on_disk);
        // Memory: a 10-byte "tag", then 200,000 bytes standing for the file from offset 50,000.
        let memory = Bytes::from(vec![0xEEu8; 200_010]);
        let files = Arc::new(FileBacked::default());
        files.register(memory.slice(10..), file, 50_000);
        let (mut io, client) = pair(files).await;
        let reader = tokio::spawn(read_all(client));
        // A head, then one slice holding the tag and the registered bytes, as hyper writes them.
        io.write_all_buf(&mut bytes::Buf::chain(&b"HEAD\r\n"[..], memory.clone()))
            .await
            .unwrap();
        io.shutdown().await.unwrap();
        drop(io);
        let got = reader.await.unwrap();
        assert_eq!(got.len(), 6 + 200_010);
        assert_eq!(&got[..6], b"HEAD\r\n");
        assert_eq!(
            &got[6..16],
            &[0xEE; 10],
            "the bytes before the region come from memory"
        );
        assert!(
            got[16..] == on_disk[50_000..250_000],
            "the registered range comes from the file, at the registered offset"
        );
    }

    #[tokio::test]
    async fn a_slice_starting_inside_a_region_maps_to_the_right_offset() {
        let on_disk: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 256) as u8).collect();
        let memory = Bytes::from(vec![0u8; 8_000]);
        let files = Arc::new(FileBacked::default());
        files.register(memory.clone(), file_with(&on_disk), 1_000);
        let (mut io, client) = pair(files).await;
        let reader = tokio::spawn(read_all(client));
        io.write_all(&memory[3_000..5_000]).await.unwrap();
        io.shutdown().await.unwrap();
        drop(io);
        assert!(reader.await.unwrap() == on_disk[4_000..6_000]);
    }

    #[tokio::test]
    async fn unregistered_and_pushed_out_memory_is_written_as_is() {
        let files = Arc::new(FileBacked::default());
        let first = Bytes::from(vec![1u8; 1_000]);
        files.register(first.clone(), file_with(&[9u8; 1_000]), 0);
        for _ in 0..KEPT {
            files.register(Bytes::from(vec![2u8; 10]), file_with(&[9u8; 10]), 0);
        }
        let other = vec![3u8; 5_000];
        let (mut io, client) = pair(files).await;
        let reader = tokio::spawn(read_all(client));
        io.write_all(&first).await.unwrap();
        io.write_all(&other).await.unwrap();
        io.shutdown().await.unwrap();
        drop(io);
        let got = reader.await.unwrap();
        assert_eq!(&got[..1_000], &first[..]);
        assert_eq!(&got[1_000..], &other[..]);
    }

    #[tokio::test]
    async fn a_region_is_released_once_sent_whole() {
        let memory = Bytes::from(vec![0u8; 2_000]);
        let files = Arc::new(FileBacked::default());
        files.register(memory.clone(), file_with(&[4u8; 2_000]), 0);
        let (mut io, client) = pair(files.clone()).await;
        let reader = tokio::spawn(read_all(client));
        io.write_all(&memory[..1_000]).await.unwrap();
        assert!(!files.is_empty(), "half sent: still registered");
        io.write_all(&memory[1_000..]).await.unwrap();
        assert!(files.is_empty(), "sent whole: the memory is no longer held");
        io.shutdown().await.unwrap();
        drop(io);
        assert_eq!(reader.await.unwrap(), vec![4u8; 2_000]);
    }

    #[tokio::test]
    async fn a_file_shorter_than_its_registration_is_an_error_not_a_hang() {
        let memory = Bytes::from(vec![0u8; 4_096]);
        let files = Arc::new(FileBacked::default());
        files.register(memory.clone(), file_with(&[5u8; 100]), 0);
        let (mut io, client) = pair(files).await;
        let reader = tokio::spawn(read_all(client));
        let err = io.write_all(&memory).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
        drop(io);
        assert_eq!(reader.await.unwrap(), vec![5u8; 100]);
    }
}

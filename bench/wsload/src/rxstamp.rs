//! A TCP stream that knows when the kernel received the bytes it reads (`SO_TIMESTAMPNS`).
//!
//! Why: with 10,000 clients in one thread, the load tool reads a broadcast's last copy tens of
//! milliseconds after the kernel received it, simply because it reads the other 9,999 first.
//! Timing messages when the tool gets to them measures the tool as much as the server. The
//! kernel's receive timestamp says when the event reached the client's host, whatever the tool
//! does next; both figures are reported. Linux only (elsewhere, no timestamps: `None`).
//!
//! The kernel turns receive timestamping on asynchronously after the first socket asks for it,
//! so the very first bytes read may carry none: those messages count in the read-time figures
//! only.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

pub struct RxStamped {
    tcp: TcpStream,
    /// CLOCK_REALTIME of the last byte read, microseconds since the epoch.
    last_rx_micros: Option<u64>,
}

impl RxStamped {
    /// Asks the kernel for receive timestamps on `tcp` (best effort).
    pub fn new(tcp: TcpStream) -> Self {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd as _;
            let on: libc::c_int = 1;
            // SAFETY: a valid socket and a c_int option value of the right size.
            unsafe {
                libc::setsockopt(
                    tcp.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_TIMESTAMPNS,
                    (&on as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
        }
        Self {
            tcp,
            last_rx_micros: None,
        }
    }

    /// When the kernel received the bytes of the last read (wall clock, µs since the epoch).
    pub fn last_rx_micros(&self) -> Option<u64> {
        self.last_rx_micros
    }
}

/// `recvmsg` into `buf`, returning the bytes read and the timestamp the kernel attached.
#[cfg(target_os = "linux")]
fn recv_stamped(fd: std::os::fd::RawFd, buf: &mut [u8]) -> io::Result<(usize, Option<u64>)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // u64s: aligned for cmsghdr.
    let mut control = [0u64; 16];
    // SAFETY: zeroed msghdr is valid; the pointers below outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: fd is an open socket; msg points at valid buffers.
    let n = unsafe { libc::recvmsg(fd, &mut msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut stamp = None;
    // SAFETY: walking the control messages the kernel wrote, with the libc macros.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS
            {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                stamp = Some(ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000);
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok((n as usize, stamp))
}

impl AsyncRead for RxStamped {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd as _;
            let fd = this.tcp.as_raw_fd();
            loop {
                ready!(this.tcp.poll_read_ready(cx))?;
                let dst = buf.initialize_unfilled();
                match this
                    .tcp
                    .try_io(Interest::READABLE, || recv_stamped(fd, dst))
                {
                    Ok((n, stamp)) => {
                        if stamp.is_some() {
                            this.last_rx_micros = stamp;
                        }
                        buf.advance(n);
                        return Poll::Ready(Ok(()));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
        }
        #[cfg(not(target_os = "linux"))]
        {
            Pin::new(&mut this.tcp).poll_read(cx, buf)
        }
    }
}

impl AsyncWrite for RxStamped {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

/// Wall-clock microseconds since the epoch.
pub fn wall_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    #[tokio::test]
    async fn reads_carry_the_kernels_receive_time() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::spawn(async move { TcpStream::connect(addr).await.unwrap() });
        let (mut server, _) = listener.accept().await.unwrap();
        let mut client = RxStamped::new(client.await.unwrap());
        // Timestamping starts a moment after it is first asked for (see the module doc): the
        // exchange is repeated until one read carries a stamp, for at most two seconds.
        for _ in 0..40 {
            let before = wall_micros();
            server.write_all(b"hello").await.unwrap();
            // Read late: the stamp is when the bytes arrived, not when we read them.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            let mut buf = [0u8; 16];
            let n = client.read(&mut buf).await.unwrap();
            let read_at = wall_micros();
            assert_eq!(&buf[..n], b"hello");
            let Some(rx) = client.last_rx_micros() else {
                continue;
            };
            assert!(rx >= before.saturating_sub(1_000), "{rx} < {before}");
            let late = read_at - rx;
            assert!(late >= 40_000, "stamped at arrival, not at read: {late} µs");
            return;
        }
        panic!("no read carried a receive timestamp");
    }
}

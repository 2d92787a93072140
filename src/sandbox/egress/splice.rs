//! A tunnel's bytes moved between two sockets by `splice(2)` through a pipe: the kernel hands
//! the pages on, nothing is copied through this process (a user-space copy costs a read and a
//! write of every byte, and on a 2-core host the proxy's CPU is what the sandbox's download
//! waits for).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{fcntl, splice, FcntlArg, OFlag, SpliceFFlags};
use tokio::io::Interest;
use tokio::net::{TcpStream, UnixStream};

/// How much a pipe holds (best effort: an unprivileged process may get the default 64 KiB).
const PIPE_SIZE: i32 = 1 << 20;

/// A socket registered with tokio: its readiness, and its descriptor for `splice`.
pub(super) trait Socket: AsRawFd {
    fn ready(&self, interest: Interest)
        -> impl std::future::Future<Output = io::Result<()>> + Send;
    fn attempt<R>(&self, interest: Interest, f: impl FnOnce() -> io::Result<R>) -> io::Result<R>;
}

macro_rules! socket {
    ($t:ty) => {
        impl Socket for $t {
            async fn ready(&self, interest: Interest) -> io::Result<()> {
                <$t>::ready(self, interest).await.map(|_| ())
            }
            fn attempt<R>(
                &self,
                interest: Interest,
                f: impl FnOnce() -> io::Result<R>,
            ) -> io::Result<R> {
                self.try_io(interest, f)
            }
        }
    };
}
socket!(TcpStream);
socket!(UnixStream);

/// A pipe for each direction of a tunnel: (read end, write end).
pub(super) type Pipes = [(OwnedFd, OwnedFd); 2];

/// The pipes for one tunnel; an error (the process is out of descriptors) means the caller
/// copies instead.
pub(super) fn pipes() -> io::Result<Pipes> {
    Ok([pipe()?, pipe()?])
}

/// Moves bytes both ways until each side has ended its half (a half-close is passed on), or
/// either fails. Returns the bytes moved each way (`a` to `b`, `b` to `a`).
pub(super) async fn bidirectional(
    a: &impl Socket,
    b: &impl Socket,
    pipes: Pipes,
) -> io::Result<(u64, u64)> {
    let [ab, ba] = pipes;
    tokio::try_join!(one_way(a, b, ab), one_way(b, a, ba))
}

async fn one_way(
    from: &impl Socket,
    to: &impl Socket,
    (rd, wr): (OwnedFd, OwnedFd),
) -> io::Result<u64> {
    let (src, dst) = (fd(from), fd(to));
    let flags = SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK;
    let mut total = 0u64;
    loop {
        from.ready(Interest::READABLE).await?;
        let n = match from.attempt(Interest::READABLE, || {
            retry(|| splice(src, None, &wr, None, PIPE_SIZE as usize, flags))
        }) {
            Ok(0) => {
                // The other side's reader sees the end; its own half stays open.
                let _ =
                    nix::sys::socket::shutdown(dst.as_raw_fd(), nix::sys::socket::Shutdown::Write);
                return Ok(total);
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        };
        total += n as u64;
        let mut left = n;
        while left > 0 {
            to.ready(Interest::WRITABLE).await?;
            match to.attempt(Interest::WRITABLE, || {
                retry(|| splice(&rd, None, dst, None, left, flags))
            }) {
                Ok(m) => left -= m,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    }
}

fn fd(socket: &impl Socket) -> BorrowedFd<'_> {
    // SAFETY: the descriptor belongs to `socket`, which outlives the borrow.
    unsafe { BorrowedFd::borrow_raw(socket.as_raw_fd()) }
}

/// A non-blocking pipe, as large as the kernel lets us have it.
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (rd, wr) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
    let _ = fcntl(wr.as_fd(), FcntlArg::F_SETPIPE_SZ(PIPE_SIZE));
    Ok((rd, wr))
}

fn retry(mut f: impl FnMut() -> nix::Result<usize>) -> io::Result<usize> {
    loop {
        match f() {
            Err(Errno::EINTR) => continue,
            other => return other.map_err(io::Error::from),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    async fn tcp_pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (client.unwrap(), accepted.unwrap().0)
    }

    #[tokio::test]
    async fn a_tunnel_carries_both_ways_and_passes_a_half_close_on() {
        let (mut client, proxy_a) = tcp_pair().await;
        let (proxy_b, mut server) = tcp_pair().await;
        let tunnel =
            tokio::spawn(async move { bidirectional(&proxy_a, &proxy_b, pipes().unwrap()).await });
        let big: Vec<u8> = (0..5_000_000u32).map(|i| (i % 251) as u8).collect();
        let sent = big.clone();
        let writer = tokio::spawn(async move {
            client.write_all(&sent).await.unwrap();
            client.shutdown().await.unwrap();
            let mut answer = Vec::new();
            client.read_to_end(&mut answer).await.unwrap();
            answer
        });
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        assert!(
            got == big,
            "the server got {} bytes, not what was sent",
            got.len()
        );
        server.write_all(b"after the half-close").await.unwrap();
        drop(server);
        assert_eq!(writer.await.unwrap(), b"after the half-close");
        let (up, down) = tunnel.await.unwrap().unwrap();
        assert_eq!((up, down), (big.len() as u64, 20));
    }
}

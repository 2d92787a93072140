//! Connections handed over by the sandbox's relay: it accepts on 127.0.0.1:3128 in the
//! container and passes each accepted socket here (`SCM_RIGHTS` over the container's handoff
//! socket), so the proxy reads and writes the sandbox's client itself and no byte is copied
//! through the relay. Only connected TCP sockets are taken; anything else that arrives (a file,
//! a listening socket, a Unix socket) is closed unread. A socket sent here by other code in the
//! sandbox is served exactly like one the relay sent, with the same container's policy.

use std::io::{self, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::sys::socket::{
    getsockname, getsockopt, recvmsg, sockopt, AddressFamily, ControlMessageOwned, MsgFlags,
    SockType, SockaddrLike, SockaddrStorage,
};
use tokio::io::Interest;
use tokio::net::{TcpStream, UnixStream};

/// The handoff socket's name in the container's directory.
pub const HANDOFF_SOCKET: &str = "handoff.sock";

/// Reads the sockets `conn` carries, one per message, giving each connected TCP socket to
/// `serve`, until the relay hangs up.
pub(super) async fn receive(conn: UnixStream, mut serve: impl FnMut(TcpStream)) {
    loop {
        if conn.ready(Interest::READABLE).await.is_err() {
            return;
        }
        let got = conn.try_io(Interest::READABLE, || receive_one(conn.as_raw_fd()));
        match got {
            Ok(None) => return,
            Ok(Some(fds)) => {
                for fd in fds {
                    if let Some(tcp) = connected_tcp(fd) {
                        serve(tcp);
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => {
                tracing::debug!(error = %e, "egress handoff");
                return;
            }
        }
    }
}

/// One message's descriptors (owned at once, so none leaks whatever happens next); None at
/// the end of the stream.
fn receive_one(fd: i32) -> io::Result<Option<Vec<OwnedFd>>> {
    let mut byte = [0u8; 1];
    let mut iov = [IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([i32; 4]);
    let msg = recvmsg::<()>(
        fd,
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_DONTWAIT,
    )
    .map_err(io::Error::from)?;
    let mut fds = Vec::new();
    // A truncated message's descriptors were closed by the kernel; `cmsgs` refuses it.
    if let Ok(cmsgs) = msg.cmsgs() {
        for cmsg in cmsgs {
            if let ControlMessageOwned::ScmRights(raw) = cmsg {
                // SAFETY: the kernel just installed these descriptors for us; nothing else owns them.
                fds.extend(raw.into_iter().map(|r| unsafe { OwnedFd::from_raw_fd(r) }));
            }
        }
    }
    if msg.bytes == 0 && fds.is_empty() {
        return Ok(None);
    }
    Ok(Some(fds))
}

/// `fd` as a tokio TCP stream if it is a connected IPv4/IPv6 stream socket.
fn connected_tcp(fd: OwnedFd) -> Option<TcpStream> {
    let raw = fd.as_raw_fd();
    let stream = getsockopt(&fd, sockopt::SockType).ok()? == SockType::Stream;
    let listening = getsockopt(&fd, sockopt::AcceptConn).ok()?;
    let family = getsockname::<SockaddrStorage>(raw).ok()?.family();
    if !stream || listening || !matches!(family, Some(AddressFamily::Inet | AddressFamily::Inet6)) {
        return None;
    }
    let tcp = std::net::TcpStream::from(fd);
    tcp.peer_addr().ok()?;
    tcp.set_nonblocking(true).ok()?;
    let _ = tcp.set_nodelay(true);
    TcpStream::from_std(tcp).ok()
}

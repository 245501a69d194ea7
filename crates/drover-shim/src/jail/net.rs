//! The jail's network: only `lo`, brought up here, and loopback forwarders — a TCP listener on
//! `127.0.0.1:port` per [`Forward`] relaying each connection to its Unix socket (a path socket
//! works across network namespaces). Threads and std only. There is no route out.

use crate::files::Forward;
use std::io::Error;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

/// Brings the namespace's loopback interface up (`SIOCSIFFLAGS`).
pub fn lo_up() -> Result<(), String> {
    let fail = |what: &str| format!("bringing lo up ({what}): {}", Error::last_os_error());
    // SAFETY: a datagram socket used only for the two interface ioctls below, closed at the
    // end; `ifr` is a zeroed ifreq with a NUL-terminated name, as the ioctls expect.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(fail("socket"));
        }
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo".iter().enumerate() {
            ifr.ifr_name[i] = *b as libc::c_char;
        }
        let got = libc::ioctl(fd, libc::SIOCGIFFLAGS as _, &mut ifr);
        if got < 0 {
            let e = fail("SIOCGIFFLAGS");
            libc::close(fd);
            return Err(e);
        }
        ifr.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        let set = libc::ioctl(fd, libc::SIOCSIFFLAGS as _, &ifr);
        let e = (set < 0).then(|| fail("SIOCSIFFLAGS"));
        libc::close(fd);
        e.map_or(Ok(()), Err)
    }
}

/// Binds each forward's listener (before the agent starts, so its first connection queues).
pub fn bind(forwards: &[Forward]) -> Result<Vec<(TcpListener, PathBuf)>, String> {
    forwards
        .iter()
        .map(|f| {
            TcpListener::bind(("127.0.0.1", f.port))
                .map(|l| (l, f.socket.clone()))
                .map_err(|e| format!("listening on 127.0.0.1:{}: {e}", f.port))
        })
        .collect()
}

/// Serves the listeners, each on its own thread, for as long as the process lives.
pub fn serve(listeners: Vec<(TcpListener, PathBuf)>) {
    for (listener, socket) in listeners {
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let socket = socket.clone();
                std::thread::spawn(move || relay(conn, &socket));
            }
        });
    }
}

/// Copies both ways between a TCP connection and a new connection to `socket`; a socket that
/// is not there (its service is off) closes the TCP connection at once.
fn relay(tcp: TcpStream, socket: &std::path::Path) {
    let Ok(unix) = UnixStream::connect(socket) else {
        return;
    };
    let (Ok(mut tcp_r), Ok(mut unix_w)) = (tcp.try_clone(), unix.try_clone()) else {
        return;
    };
    let up = std::thread::spawn(move || {
        let _ = std::io::copy(&mut tcp_r, &mut unix_w);
        let _ = unix_w.shutdown(Shutdown::Write);
    });
    let (mut unix_r, mut tcp_w) = (unix, tcp);
    let _ = std::io::copy(&mut unix_r, &mut tcp_w);
    let _ = tcp_w.shutdown(Shutdown::Write);
    let _ = up.join();
}

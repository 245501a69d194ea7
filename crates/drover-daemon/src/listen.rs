//! The accept loop: hyper's HTTP/1 server with a header-read timeout and a connection cap, so
//! idle and half-sent connections cannot starve the daemon of file descriptors.
//!
//! - Reading a request's head (from the first byte, and between requests on a kept-alive
//!   connection, i.e. idling) has [`HEADER_TIMEOUT`]; then hyper closes the connection.
//!   Responses in progress (SSE `logs --follow`, `wait`, `drover lock` holds) are not timed.
//! - At most [`connection_cap`] connections at once; one more is answered with a 503 (JSON,
//!   `kind: busy`) and closed within a second, so the kernel's backlog never fills and the CLI
//!   is answered at once instead of hanging.
//! - The same loop serves the Unix socket and TCP ([`Accept`]); over TCP with TLS the handshake
//!   runs on the connection's own task within [`TLS_HANDSHAKE_TIMEOUT`] (holding its slot), so a
//!   slow client never stalls the accept loop. Each request carries the peer's address as a
//!   [`RemoteAddr`] extension.
//!
//! A leaf of the crate (it knows no route, store or engine), so everything that serves HTTP —
//! the API, the task sockets, the git proxy — uses it without a module cycle.

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::Semaphore;

/// A TLS client has this long to finish its handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A listener the API is served on: the admin Unix socket, a task's socket, or TCP.
pub trait Accept: Send {
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// The next connection and, over TCP, its peer's address.
    fn accept_one(
        &mut self,
    ) -> impl Future<Output = std::io::Result<(Self::Io, Option<SocketAddr>)>> + Send;
}

impl Accept for UnixListener {
    type Io = tokio::net::UnixStream;
    async fn accept_one(&mut self) -> std::io::Result<(Self::Io, Option<SocketAddr>)> {
        let (s, _) = self.accept().await?;
        Ok((s, None))
    }
}

impl Accept for TcpListener {
    type Io = tokio::net::TcpStream;
    async fn accept_one(&mut self) -> std::io::Result<(Self::Io, Option<SocketAddr>)> {
        let (s, peer) = self.accept().await?;
        // Small JSON answers: no Nagle delay.
        let _ = s.set_nodelay(true);
        Ok((s, Some(peer)))
    }
}

/// The time a client has to send a request's head, and the longest a kept-alive connection idles.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections at most, whatever the file limit allows.
pub const MAX_CONNECTIONS: usize = 4096;
/// File descriptors kept free of connections (store, logs, shims, sandboxes, gateway).
const FD_RESERVE: u64 = 512;
/// The longest shutdown waits for open connections (lock holds never end by themselves).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Connections at once: [`MAX_CONNECTIONS`], less when the file limit is lower.
pub fn connection_cap() -> usize {
    let soft = nofile().map(|(soft, _)| soft).unwrap_or(1024);
    (soft.saturating_sub(FD_RESERVE).max(64) as usize).min(MAX_CONNECTIONS)
}

/// Raises this process's soft limit on open files to its hard limit; returns the new limit.
pub fn raise_nofile() -> Option<u64> {
    let (soft, hard) = nofile()?;
    if soft < hard {
        let lim = libc::rlimit {
            rlim_cur: hard,
            rlim_max: hard,
        };
        // SAFETY: setrlimit reads the struct we pass; it only changes this process's limit.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            return Some(soft);
        }
    }
    nofile().map(|(soft, _)| soft)
}

fn nofile() -> Option<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return None;
    }
    Some((lim.rlim_cur, lim.rlim_max))
}

/// Connections over the cap being answered `busy` at once; past that they are just closed.
const REFUSING: usize = 256;
/// How long a refused client has to send its request before it is answered anyway.
const REFUSE_WAIT: Duration = Duration::from_secs(1);

/// Answers a connection over the cap with a 503: after its request (so the client, having
/// written it, reads the answer instead of a broken pipe), or after [`REFUSE_WAIT`].
async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    _slot: tokio::sync::OwnedSemaphorePermit,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(REFUSE_WAIT, stream.read(&mut buf)).await;
    let _ = tokio::time::timeout(REFUSE_WAIT, stream.write_all(busy().as_bytes())).await;
    let _ = stream.shutdown().await;
}

/// Where a request came from: `None` for the Unix socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteAddr(pub Option<SocketAddr>);

impl RemoteAddr {
    /// `ip:port`, or `unix`.
    pub fn describe(&self) -> String {
        match self.0 {
            Some(a) => a.to_string(),
            None => "unix".into(),
        }
    }
}

/// The whole answer to a connection over the cap (the API's `busy` error, 503).
fn busy() -> String {
    let body = serde_json::to_string(&drover_types::ApiError {
        kind: drover_types::ApiErrorKind::Busy,
        error: "the daemon is at its connection limit".into(),
        hint: Some("retry in a few seconds".into()),
    })
    .unwrap_or_default();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets open connections finish
/// (at most [`SHUTDOWN_GRACE`]). Connection tasks are spawned on `tasks`, so the daemon's
/// shutdown also waits for (or, past its deadline, drops) the ones still open.
pub async fn serve<L: Accept>(
    listener: L,
    app: Router,
    shutdown: impl Future<Output = ()>,
    tasks: &tokio_util::task::TaskTracker,
) {
    let cap = connection_cap();
    tracing::info!(
        "at most {cap} connections; {} s to send a request head",
        HEADER_TIMEOUT.as_secs()
    );
    serve_capped(listener, app, shutdown, tasks, cap).await
}

/// [`serve`] with at most `cap` connections at once (a task's own endpoint gets a small share,
/// so one agent cannot take the daemon's file descriptors).
pub async fn serve_capped<L: Accept>(
    listener: L,
    app: Router,
    shutdown: impl Future<Output = ()>,
    tasks: &tokio_util::task::TaskTracker,
    cap: usize,
) {
    serve_with(listener, None, app, shutdown, tasks, cap).await
}

/// [`serve_capped`], with TLS when `tls` is given (a connection over the cap is then just
/// closed: a busy answer in clear text would not be TLS).
pub async fn serve_with<L: Accept>(
    mut listener: L,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: Router,
    shutdown: impl Future<Output = ()>,
    tasks: &tokio_util::task::TaskTracker,
    cap: usize,
) {
    let slots = Arc::new(Semaphore::new(cap));
    let refusing = Arc::new(Semaphore::new(REFUSING));
    let graceful = GracefulShutdown::new();
    let cut = tokio_util::sync::CancellationToken::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            r = listener.accept_one() => r,
            _ = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(s) => s,
            Err(e) => {
                // Out of file descriptors (or a similar transient error): give closing
                // connections a moment instead of spinning on accept.
                tracing::warn!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            match (refusing.clone().try_acquire_owned(), &tls) {
                (Ok(p), None) => drop(tasks.spawn(refuse(stream, p))),
                _ => drop(stream),
            }
            continue;
        };
        let app = tower::ServiceExt::map_request(
            app.clone(),
            move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(RemoteAddr(peer));
                req
            },
        );
        let service = TowerToHyperService::new(app);
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let cut = cut.clone();
        let tls = tls.clone();
        tasks.spawn(async move {
            tokio::select! {
                // A connection's error (a client gone mid-request, a failed handshake) is its
                // own business.
                _ = async {
                    match tls {
                        None => {
                            let conn = builder.serve_connection(TokioIo::new(stream), service);
                            let _ = watcher.watch(conn).await;
                        }
                        Some(acceptor) => {
                            let Ok(Ok(stream)) = tokio::time::timeout(
                                TLS_HANDSHAKE_TIMEOUT,
                                acceptor.accept(stream),
                            )
                            .await
                            else {
                                return;
                            };
                            let conn = builder.serve_connection(TokioIo::new(stream), service);
                            let _ = watcher.watch(conn).await;
                        }
                    }
                } => {}
                // Still open after the grace (a lock held, a follower): closed, as a daemon
                // that exits closes it.
                _ = cut.cancelled() => {}
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::info!("closing connections still open after {SHUTDOWN_GRACE:?}");
        cut.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_answer_is_well_formed() {
        let busy = busy();
        let (head, body) = busy.split_once("\r\n\r\n").unwrap_or_default();
        assert!(
            head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{head}"
        );
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        assert_eq!(v["kind"], "busy");
    }

    #[test]
    fn cap_is_bounded() {
        let cap = connection_cap();
        assert!((64..=MAX_CONNECTIONS).contains(&cap));
    }
}

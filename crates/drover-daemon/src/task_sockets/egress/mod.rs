//! `egress.sock`: the `sandbox.egress` allow-list proxy (docs/design.md §11). An agent's
//! `HTTPS_PROXY`/`HTTP_PROXY` is `http://127.0.0.1:3128` (`drover_shim::EGRESS_PORT`), a
//! forwarder inside its network namespace to this socket.
//!
//! One connection, one decision: the proxy reads one request head (at most [`MAX_HEAD`] bytes,
//! within [`HEAD_TIMEOUT`]), and only `CONNECT host:port` whose authority is on the list is
//! allowed. The daemon connects, answers `200`, and from then on only splices bytes both ways;
//! nothing after the head is ever parsed (bytes that came with it are forwarded as they are).
//! So:
//!
//! - a CONNECT relayed through something inside the sandbox (a relay, a second proxy of the
//!   agent's) reaches this socket as the same CONNECT and gets the same answer;
//! - a second CONNECT or request pipelined after an allowed CONNECT, or sent inside the tunnel,
//!   is bytes to the allowed host, which the operator chose. An allowed host that is itself an
//!   open forward proxy therefore reaches whatever it reaches: never list one.
//!
//! Everything else — a plain `GET http://…` (no cleartext forwarding), any other method, a
//! malformed or unlisted authority, an IP literal not on the list, an oversized or slow head —
//! is answered `403` (`502` when an allowed host cannot be reached) and closed. Each attempt is
//! an `egress` event on the task (`authority`, `verdict`, `reason`; never a URL, a header or a
//! credential), at most [`log::EVENT_BURST`] at once and one a second after that, with the number
//! left out carried by the next one.
//!
//! List entries are exact `host:port` (hosts compared lower-case; IPv6 as `[addr]:port`) or
//! `*.suffix:port`, which allows every name under `suffix` (not `suffix` itself, never an IP).

//!
//! Modules: [`allow`] (authorities and the list), [`log`] (attempts and the task's events); the
//! proxy itself is here.

pub mod allow;
pub mod log;

pub use allow::{parse_authority, AllowList, Host};
pub use log::{Attempt, EventLog, Recorder, Verdict};

use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The most bytes of a request head the proxy reads.
pub const MAX_HEAD: usize = 8 << 10;
/// The time a client has to send its request head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// The time the daemon gives an allowed host to accept the connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The decision on one request head.
fn decide(head: &[u8], allow: &AllowList) -> Result<(Host, u16), Attempt> {
    let refused = |authority: Option<String>, reason: &str| Attempt {
        verdict: Verdict::Refused,
        authority,
        reason: Some(reason.to_string()),
    };
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err(refused(None, "not an HTTP request head")),
    }
    if req.method != Some("CONNECT") {
        return Err(refused(
            None,
            "only `CONNECT host:port` (HTTPS through the proxy) is allowed",
        ));
    }
    let target = req.path.unwrap_or_default();
    let Some((host, port)) = parse_authority(target) else {
        return Err(refused(None, "the CONNECT target is not host:port"));
    };
    let authority = format!("{host}:{port}");
    if !allow.allows(&host, port) {
        return Err(refused(Some(authority), "not in sandbox.egress"));
    }
    Ok((host, port))
}

/// Reads up to the end of a request head: the bytes read (the head, and whatever came after
/// it) and where the head ends. `Err` with a reason when it is too long or the client stopped.
async fn read_head(s: &mut UnixStream) -> Result<(Vec<u8>, usize), &'static str> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = s
            .read(&mut chunk)
            .await
            .map_err(|_| "the connection broke")?;
        if n == 0 {
            return Err("the connection closed before a whole request head");
        }
        let from = buf.len().saturating_sub(3);
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = memchr::memmem::find(&buf[from..], b"\r\n\r\n") {
            let end = from + i + 4;
            if end > MAX_HEAD {
                return Err("the request head is over 8 KiB");
            }
            return Ok((buf, end));
        }
        if buf.len() > MAX_HEAD {
            return Err("the request head is over 8 KiB");
        }
    }
}

async fn answer(s: &mut UnixStream, status: &str, text: &str) {
    let body = format!("drover: {text}\n");
    let resp = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(HEAD_TIMEOUT, s.write_all(resp.as_bytes())).await;
    let _ = s.shutdown().await;
}

/// Handles one connection: decide, then splice or refuse.
async fn handle(
    mut inside: UnixStream,
    allow: Arc<AllowList>,
    log: Arc<dyn Recorder>,
    stop: CancellationToken,
) {
    let (buf, end) = match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut inside)).await {
        Ok(Ok(read)) => read,
        Ok(Err(why)) => {
            log.record(Attempt {
                verdict: Verdict::Refused,
                authority: None,
                reason: Some(why.into()),
            });
            answer(&mut inside, "403 Forbidden", why).await;
            return;
        }
        Err(_) => {
            let why = "the request head did not arrive within 5 s";
            log.record(Attempt {
                verdict: Verdict::Refused,
                authority: None,
                reason: Some(why.into()),
            });
            answer(&mut inside, "403 Forbidden", why).await;
            return;
        }
    };
    let (host, port) = match decide(&buf[..end], &allow) {
        Ok(target) => target,
        Err(attempt) => {
            let text = match &attempt.authority {
                Some(a) => format!("egress to {a} is not allowed (sandbox.egress)"),
                None => format!(
                    "refused: {}",
                    attempt.reason.as_deref().unwrap_or("not allowed")
                ),
            };
            log.record(attempt);
            answer(&mut inside, "403 Forbidden", &text).await;
            return;
        }
    };
    let authority = format!("{host}:{port}");
    let connected = tokio::time::timeout(
        CONNECT_TIMEOUT,
        TcpStream::connect((host.connect_to(), port)),
    )
    .await;
    let mut outside = match connected {
        Ok(Ok(s)) => s,
        failed => {
            let (status, why) = match failed {
                Ok(Err(e)) => ("502 Bad Gateway", format!("cannot connect: {}", e.kind())),
                _ => (
                    "504 Gateway Timeout",
                    format!("no connection within {} s", CONNECT_TIMEOUT.as_secs()),
                ),
            };
            log.record(Attempt {
                verdict: Verdict::Unreachable,
                authority: Some(authority.clone()),
                reason: Some(why.clone()),
            });
            answer(&mut inside, status, &format!("{authority}: {why}")).await;
            return;
        }
    };
    log.record(Attempt {
        verdict: Verdict::Allowed,
        authority: Some(authority),
        reason: None,
    });
    let established = b"HTTP/1.1 200 Connection established\r\n\r\n";
    if inside.write_all(established).await.is_err() {
        return;
    }
    // What came after the head is the tunnel's first bytes: forwarded, never read.
    if outside.write_all(&buf[end..]).await.is_err() {
        return;
    }
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut inside, &mut outside) => {}
        _ = stop.cancelled() => {}
    }
}

/// Serves the proxy on `listener` until `stop` is cancelled (open tunnels end then too), at
/// most [`crate::task_sockets::CONNECTIONS`] connections at once (one more is closed).
pub async fn serve(
    listener: UnixListener,
    allow: Arc<AllowList>,
    log: Arc<dyn Recorder>,
    stop: CancellationToken,
    tasks: TaskTracker,
) {
    let slots = Arc::new(Semaphore::new(crate::task_sockets::CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stop.cancelled() => return,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!("egress proxy: accept: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            continue;
        };
        let (allow, log, stop) = (allow.clone(), log.clone(), stop.clone());
        tasks.spawn(async move {
            let _permit = permit;
            handle(stream, allow, log, stop).await;
        });
    }
}

#[cfg(test)]
mod tests;

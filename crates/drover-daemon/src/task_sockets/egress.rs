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
//! credential), at most [`EVENT_BURST`] at once and one a second after that, with the number
//! left out carried by the next one.
//!
//! List entries are exact `host:port` (hosts compared lower-case; IPv6 as `[addr]:port`) or
//! `*.suffix:port`, which allows every name under `suffix` (not `suffix` itself, never an IP).

use crate::engine::Engine;
use std::collections::HashSet;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
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
/// `egress` events written at once before the rate limit (one a second) applies.
pub const EVENT_BURST: u32 = 20;

/// A host as the list and the proxy compare it: a lower-case DNS name, or an IP address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    Name(String),
    V4(Ipv4Addr),
    V6(Ipv6Addr),
}

impl Host {
    /// What `TcpStream::connect` takes.
    fn connect_to(&self) -> String {
        match self {
            Host::Name(n) => n.clone(),
            Host::V4(a) => a.to_string(),
            Host::V6(a) => a.to_string(),
        }
    }
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::V4(a) => write!(f, "{a}"),
            Host::V6(a) => write!(f, "[{a}]"),
        }
    }
}

/// `host:port` as a CONNECT request's target (authority form), or `None` when it is not one:
/// no userinfo, no path, a port of 1–65535 in digits, a host that is a DNS name (letters,
/// digits, `-`, dot-separated non-empty labels) or an IP literal (`[…]` for IPv6).
pub fn parse_authority(s: &str) -> Option<(Host, u16)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (v6, port) = rest.split_once("]:")?;
        (Host::V6(v6.parse().ok()?), port)
    } else {
        let (host, port) = s.rsplit_once(':')?;
        let host = host.to_ascii_lowercase();
        let host = match host.parse::<Ipv4Addr>() {
            Ok(a) => Host::V4(a),
            Err(_) if is_dns_name(&host) => Host::Name(host),
            Err(_) => return None,
        };
        (host, port)
    };
    if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    Some((host, port))
}

fn is_dns_name(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
        // Every label a number (decimal, octal or 0x-hex) is an IPv4 address written the way
        // inet_aton reads it ("127.1", "0x7f.1"): never a name.
        && !h.split('.').all(is_inet_aton_number)
}

fn is_inet_aton_number(label: &str) -> bool {
    match label.strip_prefix("0x") {
        Some(hex) => hex.bytes().all(|b| b.is_ascii_hexdigit()),
        None => label.bytes().all(|b| b.is_ascii_digit()),
    }
}

/// The `sandbox.egress` list.
#[derive(Debug, Default, Clone)]
pub struct AllowList {
    exact: HashSet<(Host, u16)>,
    /// `*.suffix:port`: (`.suffix`, port).
    wildcard: Vec<(String, u16)>,
}

impl AllowList {
    /// The list, or the first entry that is not `host:port` or `*.suffix:port` (for the
    /// config's check).
    pub fn parse(entries: &[String]) -> Result<AllowList, String> {
        let mut list = AllowList::default();
        for e in entries {
            let e = e.trim();
            if let Some(rest) = e.strip_prefix("*.") {
                match parse_authority(rest) {
                    Some((Host::Name(suffix), port)) => {
                        list.wildcard.push((format!(".{suffix}"), port))
                    }
                    _ => return Err(bad_entry(e)),
                }
            } else {
                let a = parse_authority(e).ok_or_else(|| bad_entry(e))?;
                list.exact.insert(a);
            }
        }
        Ok(list)
    }

    /// The list, leaving out (with a warning) entries that are not valid.
    pub fn new(entries: &[String]) -> AllowList {
        let mut list = AllowList::default();
        for e in entries {
            match AllowList::parse(std::slice::from_ref(e)) {
                Ok(one) => {
                    list.exact.extend(one.exact);
                    list.wildcard.extend(one.wildcard);
                }
                Err(why) => tracing::warn!("sandbox.egress: {why}; left out"),
            }
        }
        list
    }

    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.wildcard.is_empty()
    }

    pub fn allows(&self, host: &Host, port: u16) -> bool {
        if self.exact.contains(&(host.clone(), port)) {
            return true;
        }
        match host {
            Host::Name(name) => self
                .wildcard
                .iter()
                .any(|(suffix, p)| *p == port && name.ends_with(suffix.as_str())),
            _ => false,
        }
    }
}

fn bad_entry(e: &str) -> String {
    format!("sandbox.egress entry {e:?} is not host:port or *.domain:port (e.g. \"registry.npmjs.org:443\")")
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Allowed,
    Refused,
    /// Allowed, but the host could not be reached.
    Unreachable,
}

/// One attempt, as its `egress` event says it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Attempt {
    pub verdict: Verdict,
    /// The CONNECT target, only when it parsed as an authority.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Where attempts go (the task's events; a test's list).
pub trait Recorder: Send + Sync + 'static {
    fn record(&self, attempt: Attempt);
}

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
        Ok(Err(e)) => {
            let why = format!("cannot connect: {}", e.kind());
            log.record(Attempt {
                verdict: Verdict::Unreachable,
                authority: Some(authority.clone()),
                reason: Some(why.clone()),
            });
            answer(
                &mut inside,
                "502 Bad Gateway",
                &format!("{authority}: {why}"),
            )
            .await;
            return;
        }
        Err(_) => {
            let why = "no connection within 10 s".to_string();
            log.record(Attempt {
                verdict: Verdict::Unreachable,
                authority: Some(authority.clone()),
                reason: Some(why.clone()),
            });
            answer(
                &mut inside,
                "504 Gateway Timeout",
                &format!("{authority}: {why}"),
            )
            .await;
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
/// most [`super::CONNECTIONS`] connections at once (one more is closed).
pub async fn serve(
    listener: UnixListener,
    allow: Arc<AllowList>,
    log: Arc<dyn Recorder>,
    stop: CancellationToken,
    tasks: TaskTracker,
) {
    let slots = Arc::new(Semaphore::new(super::CONNECTIONS));
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

/// Attempts as the task's `egress` events, rate-limited (see the module's docs).
pub struct EventLog {
    engine: Arc<Engine>,
    task: String,
    bucket: Mutex<Bucket>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
    left_out: u64,
}

impl EventLog {
    pub fn new(engine: Arc<Engine>, task: String) -> Arc<EventLog> {
        Arc::new(EventLog {
            engine,
            task,
            bucket: Mutex::new(Bucket {
                tokens: EVENT_BURST as f64,
                at: Instant::now(),
                left_out: 0,
            }),
        })
    }

    /// Whether this attempt is written, and how many were left out before it.
    fn take(&self) -> Option<u64> {
        let mut b = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64()).min(EVENT_BURST as f64);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Some(std::mem::take(&mut b.left_out))
        } else {
            b.left_out += 1;
            None
        }
    }
}

impl Recorder for EventLog {
    fn record(&self, attempt: Attempt) {
        let Some(left_out) = self.take() else { return };
        let mut data = serde_json::to_value(&attempt).unwrap_or_default();
        if left_out > 0 {
            data["left_out"] = left_out.into();
        }
        let event = drover_types::NewEvent::new(drover_types::EventKind::Egress, data);
        let engine = self.engine.clone();
        let task = self.task.clone();
        self.engine.tasks.spawn(async move {
            let patch = drover_store::TaskPatch::new();
            if let Err(e) = engine.update(&task, None, patch, vec![event]).await {
                tracing::warn!(task = task.as_str(), "egress event: {e}");
            }
        });
    }
}

#[cfg(test)]
#[path = "egress_tests.rs"]
mod tests;

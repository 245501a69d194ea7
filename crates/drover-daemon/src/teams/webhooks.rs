//! Webhooks (docs/design.md §7): per team, a URL called when one of its tasks ends
//! (`task.finished`) or starts waiting for a person (`task.needs_input`).
//!
//! - The outbox is the store's (`drover_store::WebhookStore`, migration 0011): a row is added
//!   with the state change itself, so deliveries survive a crash; one recorded as delivered is
//!   never sent again (at least once: a crash between the receiver's 2xx and its record repeats
//!   it, with the same `Drover-Delivery` id).
//! - [`run`] is the delivery worker (on `Engine::tasks`): woken by the store's change feed or by
//!   the next retry's time, it claims the due rows (held [`CLAIM_HOLD`] from other daemons on
//!   the same database), POSTs each, signs it, and records the attempt; non-2xx or
//!   no answer within [`ATTEMPT_TIMEOUT`] is retried after 1 s, 2 s, 4 s … (at most
//!   [`MAX_BACKOFF`]), [`MAX_ATTEMPTS`] attempts in all. Redirects are not followed. Every
//!   attempt is an audit record (`webhook.deliver`, the task, the team, the receiver's status or
//!   0).
//! - The body: `{"event", "delivery", "at", "task"}` (the task as a list summary: prompt,
//!   result and cmd cut to `drover_store::SUMMARY_CHARS` characters), with the headers
//!   `Drover-Event`, `Drover-Delivery` and `Drover-Signature: sha256=HEX`, the HMAC-SHA256 of
//!   the exact body bytes keyed with the team's webhook secret (its UTF-8 text, `whsec_…`).
//! - The secret is never stored: [`team_secret`] derives it from the server's random key in
//!   `DROVER_HOME/webhook.key` (0600, made on first use) and the team's name; `drover team
//!   webhook-secret NAME` shows it.
//!
//! Neither the URL (it may carry a token) nor the secret is logged.

use drover_store::{AttemptOutcome, NewAuditRecord, Store, WebhookDelivery};
use drover_types::text::{excerpt, Limit};
use drover_types::Actor;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Attempts per delivery, the first included.
pub const MAX_ATTEMPTS: u32 = 8;
/// The longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How long one attempt may take (connect, send, the receiver's status line).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Deliveries sent at once.
const BATCH: u32 = 16;
/// How long a claimed delivery stays with its worker before another may take it (the attempt's
/// record sets the real next step first, unless the worker died).
pub const CLAIM_HOLD: Duration = Duration::from_secs(3 * ATTEMPT_TIMEOUT.as_secs());

/// The server's webhook key file, in `DROVER_HOME`.
pub const KEY_FILE: &str = "webhook.key";

/// The server's random key (32 bytes in `home/webhook.key`, mode 0600), made on first use.
/// Two first uses at once agree: the file is written aside and linked into place, and whoever
/// loses the race reads the winner's.
pub fn server_key(home: &Path) -> std::io::Result<Vec<u8>> {
    let path = home.join(KEY_FILE);
    match std::fs::read(&path) {
        Ok(k) if k.len() >= 32 => return Ok(k),
        Ok(_) => {
            return Err(std::io::Error::other(format!(
                "{} is shorter than 32 bytes; remove it to make a new one (every team's \
                 webhook secret changes)",
                path.display()
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let key: [u8; 32] = rand::random();
    let tmp = home.join(format!(
        "{KEY_FILE}.{}",
        hex::encode(rand::random::<[u8; 6]>())
    ));
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&key)?;
        f.sync_all()?;
    }
    let linked = std::fs::hard_link(&tmp, &path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(key.to_vec()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => std::fs::read(&path),
        Err(e) => Err(e),
    }
}

fn hmac_hex(key: &[u8], msg: &[u8]) -> String {
    // HMAC takes a key of any length: `new_from_slice` cannot fail for it.
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(msg);
            hex::encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

/// A team's webhook secret: `whsec_` + HMAC-SHA256(server key, `drover-webhook:` + team).
pub fn team_secret(server_key: &[u8], team: &str) -> String {
    format!(
        "whsec_{}",
        hmac_hex(server_key, format!("drover-webhook:{team}").as_bytes())
    )
}

/// The `Drover-Signature` of `body` under `secret`: `sha256=` + HMAC-SHA256 hex.
pub fn signature(secret: &str, body: &[u8]) -> String {
    format!("sha256={}", hmac_hex(secret.as_bytes(), body))
}

/// Whether a webhook URL is one drover calls: `http` or `https`, with a host.
pub fn check_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("webhook_url {url:?}: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "webhook_url {url:?}: only http and https URLs are called"
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("webhook_url {url:?}: no host"));
    }
    Ok(())
}

fn cut(s: &str) -> String {
    excerpt(s, Limit::Chars(drover_store::SUMMARY_CHARS))
}

/// Whether a webhook URL names this host or a private network by address (loopback, private,
/// link-local — cloud metadata —, unspecified) or as `localhost`: only the host owner may set
/// such a URL; a key may not point the daemon at what only the daemon can reach. (A public
/// name that resolves to such an address is not caught here.)
pub fn internal_host(url: &str) -> bool {
    use std::net::IpAddr;
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return false;
    };
    // The URL parser has normalised the host: IPv4 in dotted form (`2130706433` too), IPv6 in
    // brackets, names lower-cased.
    let Some(host) = parsed.host_str() else {
        return false;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let Ok(ip) = bare.parse::<IpAddr>() else {
        let d = host.trim_end_matches('.').to_ascii_lowercase();
        return d == "localhost" || d.ends_with(".localhost");
    };
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(a) => {
            a.is_loopback()
                || a.is_private()
                || a.is_link_local()
                || a.is_unspecified()
                || a.is_broadcast()
                || a.octets()[0] == 0
                // 100.64.0.0/10 (carrier-grade NAT, some clouds' internal ranges)
                || (a.octets()[0] == 100 && (a.octets()[1] & 0xc0) == 64)
        }
        IpAddr::V6(a) => {
            let first = a.segments()[0];
            a.is_loopback()
                || a.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

/// The body of one delivery.
pub fn payload(d: &WebhookDelivery, task: &drover_types::Task) -> Vec<u8> {
    let mut task = task.clone();
    task.prompt = cut(&task.prompt);
    task.result = task.result.as_deref().map(cut);
    task.cmd = task.cmd.as_deref().map(cut);
    serde_json::to_vec(&serde_json::json!({
        "event": d.event,
        "delivery": d.id,
        "at": d.at,
        "task": task,
    }))
    .unwrap_or_default()
}

/// The wait after failed attempt number `attempt` (1-based): 1 s, 2 s, 4 s …, at most
/// [`MAX_BACKOFF`].
pub fn backoff(attempt: u32) -> Duration {
    let secs = 1u64 << attempt.saturating_sub(1).min(16);
    Duration::from_secs(secs).min(MAX_BACKOFF)
}

/// The delivery worker: runs until `stop`.
pub async fn run(store: Arc<dyn Store>, home: PathBuf, stop: CancellationToken) {
    let client = match reqwest::Client::builder()
        .timeout(ATTEMPT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("drover-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("webhooks: no HTTP client ({e}); no webhook will be delivered");
            return;
        }
    };
    let mut changes = store.subscribe();
    loop {
        changes.borrow_and_update();
        // The database's clock, not this host's: holds and retry times are compared by every
        // worker sharing the outbox, so a host whose clock runs ahead must not see another's
        // held delivery as due.
        let clock = match DbClock::read(store.as_ref()).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("webhooks: reading the database's clock: {e}");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    _ = stop.cancelled() => return,
                }
            }
        };
        let now = clock.after(Duration::ZERO);
        // Claimed, not only read: daemons sharing one database send each delivery once.
        let hold = clock.after(CLAIM_HOLD);
        match store.claim_webhooks(&now, &hold, MAX_ATTEMPTS, BATCH).await {
            Ok(due) => {
                let sends = due
                    .into_iter()
                    .map(|d| attempt(store.as_ref(), &client, &home, &clock, d));
                futures::future::join_all(sends).await;
            }
            Err(e) => tracing::warn!("webhooks: reading the outbox: {e}"),
        }
        let wait = match store.next_webhook_at(MAX_ATTEMPTS).await {
            Ok(Some(at)) => clock.until(&at),
            Ok(None) => Duration::from_secs(3600),
            Err(_) => Duration::from_secs(1),
        }
        .max(Duration::from_millis(20));
        tokio::select! {
            _ = changes.changed() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// The database's clock as seen from this host: its now when read, and how far it is from this
/// host's (`Store::db_now`).
struct DbClock {
    skew: chrono::Duration,
}

impl DbClock {
    async fn read(store: &dyn Store) -> Result<Self, drover_store::StoreError> {
        Self::from_db_time(&store.db_now().await?)
    }

    /// The clock of a database whose now is `at` at this instant.
    fn from_db_time(at: &str) -> Result<Self, drover_store::StoreError> {
        let db = chrono::DateTime::parse_from_rfc3339(at)
            .map_err(|e| drover_store::StoreError::Corrupt(format!("database time {at:?}: {e}")))?;
        Ok(DbClock {
            skew: db.with_timezone(&chrono::Utc) - chrono::Utc::now(),
        })
    }

    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now() + self.skew
    }

    /// The database's time `d` from now, as the store writes times.
    fn after(&self, d: Duration) -> String {
        (self.now() + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::seconds(60)))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }

    /// How long until `at` (RFC 3339, the database's clock); zero if past or unreadable.
    fn until(&self, at: &str) -> Duration {
        chrono::DateTime::parse_from_rfc3339(at)
            .ok()
            .and_then(|t| (t.with_timezone(&chrono::Utc) - self.now()).to_std().ok())
            .unwrap_or(Duration::ZERO)
    }
}

/// One attempt of `d`, recorded in the outbox and the audit log.
async fn attempt(
    store: &dyn Store,
    client: &reqwest::Client,
    home: &Path,
    clock: &DbClock,
    d: WebhookDelivery,
) {
    let outcome = match send(store, client, home, &d).await {
        Sent::Status(status) => {
            let at = clock.after(Duration::ZERO);
            audit(store, &d, status).await;
            if (200..300).contains(&status) {
                AttemptOutcome::Delivered { status, at }
            } else if d.attempts + 1 >= MAX_ATTEMPTS {
                tracing::warn!(
                    "webhook {} of team {}: given up after {MAX_ATTEMPTS} attempts (last status {status})",
                    d.id,
                    d.team
                );
                AttemptOutcome::GiveUp { status }
            } else {
                AttemptOutcome::Retry {
                    status,
                    next_at: clock.after(backoff(d.attempts + 1)),
                }
            }
        }
        Sent::Nothing(why) => {
            tracing::info!("webhook {} of team {}: not sent: {why}", d.id, d.team);
            AttemptOutcome::GiveUp { status: 0 }
        }
    };
    if let Err(e) = store
        .record_webhook_attempt(&d.id, outcome, MAX_ATTEMPTS)
        .await
    {
        tracing::warn!("webhook {}: recording the attempt: {e}", d.id);
    }
}

enum Sent {
    /// The receiver's status (0: no answer).
    Status(u16),
    /// Nothing to send (the team, its URL or the task is gone, or no server key).
    Nothing(String),
}

async fn send(
    store: &dyn Store,
    client: &reqwest::Client,
    home: &Path,
    d: &WebhookDelivery,
) -> Sent {
    let url = match store.team(&d.team).await {
        Ok(Some(t)) => match t.webhook_url {
            Some(u) => u,
            None => return Sent::Nothing("the team has no webhook URL any more".into()),
        },
        Ok(None) => return Sent::Nothing("the team is gone".into()),
        Err(e) => return Sent::Nothing(format!("reading the team: {e}")),
    };
    let task = match store.get_task(&d.task_id).await {
        Ok(t) => t.to_task(None),
        Err(e) => return Sent::Nothing(format!("reading the task: {e}")),
    };
    let key = match server_key(home) {
        Ok(k) => k,
        Err(e) => return Sent::Nothing(format!("{KEY_FILE}: {e}")),
    };
    let body = payload(d, &task);
    let sig = signature(&team_secret(&key, &d.team), &body);
    let res = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("Drover-Event", d.event.as_str())
        .header("Drover-Delivery", d.id.as_str())
        .header("Drover-Signature", sig)
        .body(body)
        .send()
        .await;
    match res {
        Ok(r) => Sent::Status(r.status().as_u16()),
        Err(e) => {
            // Without the URL: it may carry a token.
            tracing::info!("webhook {} of team {}: {}", d.id, d.team, e.without_url());
            Sent::Status(0)
        }
    }
}

async fn audit(store: &dyn Store, d: &WebhookDelivery, status: u16) {
    let rec = NewAuditRecord {
        at: drover_store::now(),
        actor: Actor {
            key_id: None,
            team: Some(d.team.clone()),
        },
        action: "webhook.deliver".into(),
        target: Some(d.task_id.clone()),
        remote_addr: None,
        status,
    };
    if let Err(e) = store.append_audit(rec).await {
        tracing::warn!("webhook {}: audit record: {e}", d.id);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A host whose clock is an hour behind the database's takes holds and retry times from the
    /// database's: a hold it writes ends 30 s after the database's now, and a time the
    /// database wrote 5 s ahead is 5 s away — not an hour.
    #[test]
    fn times_come_from_the_databases_clock_not_the_hosts() {
        let db_now = chrono::Utc::now() + chrono::Duration::hours(1);
        let clock =
            DbClock::from_db_time(&db_now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                .unwrap();
        let hold = chrono::DateTime::parse_from_rfc3339(&clock.after(CLAIM_HOLD)).unwrap();
        let ahead = (hold.with_timezone(&chrono::Utc) - db_now).num_milliseconds();
        assert!((29_000..=31_000).contains(&ahead), "{ahead} ms");
        let due = (db_now + chrono::Duration::seconds(5))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let wait = clock.until(&due).as_millis();
        assert!((4_000..=5_100).contains(&wait), "{wait} ms");
        assert_eq!(clock.until("2000-01-01T00:00:00.000Z"), Duration::ZERO);
    }

    #[test]
    fn backoff_doubles_from_one_second_and_is_capped() {
        let secs: Vec<u64> = (1..=8).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn secrets_differ_per_team_and_per_server_and_are_stable() {
        let k1 = [1u8; 32];
        let k2 = [2u8; 32];
        let a = team_secret(&k1, "a");
        assert!(a.starts_with("whsec_") && a.len() == 6 + 64, "{a}");
        assert_eq!(a, team_secret(&k1, "a"));
        assert_ne!(a, team_secret(&k1, "b"));
        assert_ne!(a, team_secret(&k2, "a"));
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_the_body() {
        // RFC 4231 test case 2: key "Jefe".
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn only_http_and_https_urls() {
        assert!(check_url("https://example.com/hook").is_ok());
        assert!(check_url("http://127.0.0.1:9/x?token=1").is_ok());
        for bad in [
            "ftp://example.com/",
            "file:///etc/passwd",
            "example.com",
            "",
            "http://",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn internal_hosts_are_told_from_public_ones() {
        for internal in [
            "http://127.0.0.1:8080/x",
            "http://localhost/x",
            "http://LOCALHOST./x",
            "http://a.localhost/x",
            "http://10.1.2.3/x",
            "http://192.168.0.1/x",
            "http://172.16.5.5/x",
            "http://169.254.169.254/latest/meta-data",
            "http://0.0.0.0/x",
            "http://100.100.100.200/x",
            "http://[::1]/x",
            "http://[::ffff:127.0.0.1]/x",
            "http://[fd00::1]/x",
            "http://[fe80::1]/x",
            "http://2130706433/x",
        ] {
            assert!(internal_host(internal), "{internal}");
        }
        for public in [
            "https://example.com/hook",
            "https://8.8.8.8/x",
            "http://[2001:db8::1]/x",
            "https://hooks.slack.com/services/T/B/X",
        ] {
            assert!(!internal_host(public), "{public}");
        }
    }

    #[test]
    fn the_server_key_is_made_once_0600_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let a = server_key(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let b = server_key(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a, b);
        assert_eq!(a.len(), 32);
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0);
        assert_eq!(mode, 0o600);
        // Nothing else is left in the directory.
        let n = std::fs::read_dir(dir.path())
            .map(|d| d.count())
            .unwrap_or(0);
        assert_eq!(n, 1);
    }
}

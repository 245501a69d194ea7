//! The dashboard's logins, in memory (a restart logs everyone out).
//!
//! - A **login token** (`drover web`, `POST /v1/web/login`) is 256 random bits, lives
//!   [`TOKEN_TTL`] and works once: redeeming it (even too late) removes it.
//! - A **session** (the cookie a redeemed token or a key typed into `/login` gets) is 256 random
//!   bits, lives [`SESSION_TTL`] from its creation (not sliding); at most [`MAX_SESSIONS`] live
//!   at once, the oldest dropped first.
//! - Neither secret is kept: the maps are keyed by its SHA-256, and a presented value is hashed
//!   before it is looked up (so nothing compares secrets byte by byte).
//!
//! A session is the host owner's ([`Who::Owner`], from the admin socket, valid on the loopback
//! listener only) or an API key's ([`Who::Key`], from the team listener; re-validated against the
//! store on every request by `api::access`, see [`crate::web`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// How long a one-time login token works.
pub const TOKEN_TTL: Duration = Duration::from_secs(120);
/// How long a session lives (from its login).
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Sessions at most; one more drops the oldest.
pub const MAX_SESSIONS: usize = 1000;
/// Unredeemed tokens at most (a flood of `POST /v1/web/login` cannot grow memory); one more
/// drops the oldest.
pub const MAX_TOKENS: usize = 1000;

/// Whose a token or session is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    /// The host owner (a token made on the admin socket): every route, on the loopback
    /// listener.
    Owner,
    /// An API key (a token made over TCP with that key, or the key typed into `/login`): what
    /// the key may do, while it is valid, on the team listener.
    Key { key_id: String },
}

#[derive(Debug)]
struct Entry {
    who: Who,
    expires: Instant,
    /// Creation order, for the cap.
    seq: u64,
}

#[derive(Debug, Default)]
struct Table {
    by_hash: HashMap<String, Entry>,
    order: BTreeMap<u64, String>,
}

impl Table {
    fn insert(&mut self, hash: String, who: Who, expires: Instant, seq: u64, cap: usize) {
        while self.by_hash.len() >= cap {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.by_hash.remove(&oldest);
        }
        self.order.insert(seq, hash.clone());
        self.by_hash.insert(hash, Entry { who, expires, seq });
    }

    fn remove(&mut self, hash: &str) -> Option<Entry> {
        let e = self.by_hash.remove(hash)?;
        self.order.remove(&e.seq);
        Some(e)
    }

    fn purge(&mut self, now: Instant) {
        let dead: Vec<String> = self
            .by_hash
            .iter()
            .filter(|(_, e)| e.expires <= now)
            .map(|(h, _)| h.clone())
            .collect();
        for h in dead {
            self.remove(&h);
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    tokens: Table,
    sessions: Table,
    seq: u64,
}

/// The logins of one daemon (see the module's doc).
#[derive(Debug)]
pub struct Sessions {
    inner: Mutex<Inner>,
    token_ttl: Duration,
    session_ttl: Duration,
    cap: usize,
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions::new(TOKEN_TTL, SESSION_TTL, MAX_SESSIONS)
    }
}

/// 256 random bits, hex.
fn secret() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

fn hash(secret: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(secret.as_bytes()))
}

/// What a token or a session id looks like: 64 lower-case hex digits.
pub fn well_formed(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl Sessions {
    pub fn new(token_ttl: Duration, session_ttl: Duration, cap: usize) -> Sessions {
        Sessions {
            inner: Mutex::default(),
            token_ttl,
            session_ttl,
            cap: cap.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new one-time login token for `who`, and when it expires.
    pub fn issue(&self, who: Who) -> (String, SystemTime) {
        let token = self.issue_at(who, Instant::now());
        (token, SystemTime::now() + self.token_ttl)
    }

    /// [`Sessions::issue`] at `now` (tests move the clock).
    pub fn issue_at(&self, who: Who, now: Instant) -> String {
        let token = secret();
        let mut inner = self.lock();
        inner.tokens.purge(now);
        inner.seq += 1;
        let seq = inner.seq;
        let cap = self.cap.max(MAX_TOKENS);
        inner
            .tokens
            .insert(hash(&token), who, now + self.token_ttl, seq, cap);
        token
    }

    /// Redeems a login token: once, within its lifetime; a new session `(id, who)`.
    pub fn redeem(&self, token: &str) -> Option<(String, Who)> {
        self.redeem_at(token, Instant::now())
    }

    /// [`Sessions::redeem`] at `now`.
    pub fn redeem_at(&self, token: &str, now: Instant) -> Option<(String, Who)> {
        if !well_formed(token) {
            return None;
        }
        let entry = self.lock().tokens.remove(&hash(token))?;
        if entry.expires <= now {
            return None;
        }
        Some((self.open_at(entry.who.clone(), now), entry.who))
    }

    /// A new session for `who` (a key typed into `/login`); its id.
    pub fn open(&self, who: Who) -> String {
        self.open_at(who, Instant::now())
    }

    fn open_at(&self, who: Who, now: Instant) -> String {
        let id = secret();
        let mut inner = self.lock();
        inner.sessions.purge(now);
        inner.seq += 1;
        let seq = inner.seq;
        inner
            .sessions
            .insert(hash(&id), who, now + self.session_ttl, seq, self.cap);
        id
    }

    /// Whose the live session `id` is.
    pub fn session(&self, id: &str) -> Option<Who> {
        self.session_at(id, Instant::now())
    }

    /// [`Sessions::session`] at `now`.
    pub fn session_at(&self, id: &str, now: Instant) -> Option<Who> {
        if !well_formed(id) {
            return None;
        }
        let h = hash(id);
        let mut inner = self.lock();
        match inner.sessions.by_hash.get(&h) {
            Some(e) if e.expires > now => Some(e.who.clone()),
            Some(_) => {
                inner.sessions.remove(&h);
                None
            }
            None => None,
        }
    }

    /// Ends the session `id` (logout, or its key is no longer valid).
    pub fn end(&self, id: &str) {
        self.lock().sessions.remove(&hash(id));
    }

    /// Ends every session of `key_id` (its key was found revoked or expired).
    pub fn end_key(&self, key_id: &str) {
        let mut inner = self.lock();
        let dead: Vec<String> = inner
            .sessions
            .by_hash
            .iter()
            .filter(|(_, e)| matches!(&e.who, Who::Key { key_id: k } if k == key_id))
            .map(|(h, _)| h.clone())
            .collect();
        for h in dead {
            inner.sessions.remove(&h);
        }
    }

    /// Live sessions (tests, metrics).
    pub fn len(&self) -> usize {
        self.lock().sessions.by_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The session lifetime (the cookie's `Max-Age`).
    pub fn session_ttl(&self) -> Duration {
        self.session_ttl
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn a_token_works_once() {
        let s = Sessions::default();
        let t = s.issue(Who::Owner).0;
        assert!(well_formed(&t), "{t}");
        let (id, who) = s.redeem(&t).unwrap();
        assert_eq!(who, Who::Owner);
        assert_eq!(s.session(&id), Some(Who::Owner));
        assert!(s.redeem(&t).is_none(), "a second use");
        assert_ne!(id, t);
    }

    #[test]
    fn a_token_dies_after_two_minutes_even_unused() {
        let s = Sessions::default();
        let now = Instant::now();
        let t = s.issue_at(Who::Owner, now);
        assert!(s.redeem_at(&t, now + TOKEN_TTL).is_none());
        // Too late spends it too: it never works afterwards, whatever the clock says.
        assert!(s.redeem_at(&t, now).is_none());
        let t = s.issue_at(Who::Owner, now);
        assert!(s
            .redeem_at(&t, now + TOKEN_TTL - Duration::from_secs(1))
            .is_some());
    }

    #[test]
    fn sessions_last_twelve_hours() {
        let s = Sessions::default();
        let now = Instant::now();
        let t = s.issue_at(Who::Owner, now);
        let (id, _) = s.redeem_at(&t, now).unwrap();
        let later = now + SESSION_TTL - Duration::from_secs(1);
        assert_eq!(s.session_at(&id, later), Some(Who::Owner));
        assert_eq!(s.session_at(&id, now + SESSION_TTL), None);
        assert_eq!(s.session_at(&id, now), None, "an expired session is gone");
    }

    #[test]
    fn the_cap_drops_the_oldest() {
        let s = Sessions::new(TOKEN_TTL, SESSION_TTL, 3);
        let ids: Vec<String> = (0..4)
            .map(|i| {
                s.open(Who::Key {
                    key_id: format!("k{i}"),
                })
            })
            .collect();
        assert_eq!(s.len(), 3);
        assert_eq!(s.session(&ids[0]), None);
        for id in &ids[1..] {
            assert!(s.session(id).is_some());
        }
    }

    #[test]
    fn garbage_and_guesses_find_nothing() {
        let s = Sessions::default();
        let t = s.issue(Who::Owner).0;
        for bad in [
            "",
            "x",
            &t.to_uppercase(),
            &t[..63],
            &format!("{t}0"),
            &"0".repeat(64),
        ] {
            assert!(s.redeem(bad).is_none(), "{bad}");
            assert!(s.session(bad).is_none(), "{bad}");
        }
        assert!(s.redeem(&t).is_some(), "the real one still works");
    }

    #[test]
    fn a_keys_sessions_end_together() {
        let s = Sessions::default();
        let a = s.open(Who::Key { key_id: "a".into() });
        let a2 = s.open(Who::Key { key_id: "a".into() });
        let b = s.open(Who::Key { key_id: "b".into() });
        s.end_key("a");
        assert!(s.session(&a).is_none() && s.session(&a2).is_none());
        assert!(s.session(&b).is_some());
        s.end(&b);
        assert!(s.is_empty());
    }
}

//! The tokens a test forge accepts: shared by the git server (`git_server`) and the fake REST
//! API (`fake_forge`) of one forge, so a token that expires or lacks a scope is refused by both.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scopes {
    /// Clone and fetch.
    pub read: bool,
    /// Push (git-receive-pack).
    pub write: bool,
    /// Open and comment on pull requests.
    pub pull_requests: bool,
}

impl Scopes {
    pub const ALL: Scopes = Scopes {
        read: true,
        write: true,
        pull_requests: true,
    };
    pub const READ_ONLY: Scopes = Scopes {
        read: true,
        write: false,
        pull_requests: false,
    };
}

/// The answer to a presented token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenCheck {
    Valid(Scopes),
    /// Known but past its lifetime: 401.
    Expired,
    /// Never granted (or revoked): 401.
    Unknown,
}

#[derive(Debug, Clone)]
struct Grant {
    scopes: Scopes,
    expires: Option<Instant>,
}

/// A forge's token table. Clones share it.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    grants: Arc<Mutex<HashMap<String, Grant>>>,
    /// Every token presented, in order (a test asserts a refresh happened).
    seen: Arc<Mutex<Vec<String>>>,
}

impl Tokens {
    pub fn new() -> Self {
        Self::default()
    }

    /// Accepts `token` with `scopes`, for `ttl` (`None`: until revoked).
    pub fn grant(&self, token: &str, scopes: Scopes, ttl: Option<Duration>) {
        self.grants.lock().unwrap().insert(
            token.to_string(),
            Grant {
                scopes,
                expires: ttl.map(|t| Instant::now() + t),
            },
        );
    }

    /// Ends `token` now (it answers [`TokenCheck::Expired`]).
    pub fn expire(&self, token: &str) {
        if let Some(g) = self.grants.lock().unwrap().get_mut(token) {
            g.expires = Some(Instant::now());
        }
    }

    pub fn revoke(&self, token: &str) {
        self.grants.lock().unwrap().remove(token);
    }

    /// Checks a presented token (and records it in [`Tokens::seen`]).
    pub fn check(&self, token: &str) -> TokenCheck {
        self.seen.lock().unwrap().push(token.to_string());
        match self.grants.lock().unwrap().get(token) {
            None => TokenCheck::Unknown,
            Some(g) if g.expires.is_some_and(|e| Instant::now() >= e) => TokenCheck::Expired,
            Some(g) => TokenCheck::Valid(g.scopes),
        }
    }

    /// Every token presented so far.
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

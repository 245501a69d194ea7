//! Who is calling (docs/design.md §7): the host owner on the Unix socket, or an API key over
//! TCP. Every request carries a [`Principal`] and a [`RemoteAddr`] in its extensions; handlers
//! take them with `Extension<Principal>` to check scope and team.

use drover_types::{Actor, Scope};

/// The caller of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The admin socket (`DROVER_HOME/daemon.sock`): the host owner, every scope, every team.
    Owner,
    /// An API key presented over TCP (`Authorization: Bearer drv_…`).
    Key(KeyPrincipal),
}

/// A valid (known, unexpired, unrevoked) key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPrincipal {
    pub key_id: String,
    pub team: String,
    pub scopes: Vec<Scope>,
}

impl Principal {
    /// Whether the caller holds `scope` (`admin` holds every scope).
    pub fn allows(&self, scope: Scope) -> bool {
        match self {
            Principal::Owner => true,
            Principal::Key(k) => k.scopes.contains(&scope) || k.scopes.contains(&Scope::Admin),
        }
    }

    /// The caller's team; `None` for the owner (who sees every team).
    pub fn team(&self) -> Option<&str> {
        match self {
            Principal::Owner => None,
            Principal::Key(k) => Some(&k.team),
        }
    }

    /// The key id (`created_by` of the tasks it creates).
    pub fn key_id(&self) -> Option<&str> {
        match self {
            Principal::Owner => None,
            Principal::Key(k) => Some(&k.key_id),
        }
    }

    /// Whether the caller may see something of `team` (a task, a pool, usage): the owner sees
    /// all; a key only its own team's (a task of no team is the owner's).
    pub fn sees(&self, team: Option<&str>) -> bool {
        match self {
            Principal::Owner => true,
            Principal::Key(k) => team == Some(k.team.as_str()),
        }
    }

    /// Who, for an audit record.
    pub fn actor(&self) -> Actor {
        match self {
            Principal::Owner => Actor::default(),
            Principal::Key(k) => Actor {
                key_id: Some(k.key_id.clone()),
                team: Some(k.team.clone()),
            },
        }
    }
}

pub use crate::listen::RemoteAddr;

/// A new API key's secret: `drv_` and 32 random bytes in hex (shown once, never stored).
pub fn new_key_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("drv_{}", hex::encode(bytes))
}

/// A new key's public id: `key_` and 12 hex digits.
pub fn new_key_id() -> String {
    let bytes: [u8; 6] = rand::random();
    format!("key_{}", hex::encode(bytes))
}

/// What the store keeps of a key: SHA-256 of the whole secret, lower-case hex. (A fast hash is
/// enough: the secret has 256 random bits, nothing to guess.)
pub fn hash_key(secret: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_holds_every_scope_of_its_team_only() {
        let admin = Principal::Key(KeyPrincipal {
            key_id: "key_a".into(),
            team: "a".into(),
            scopes: vec![Scope::Admin],
        });
        let reader = Principal::Key(KeyPrincipal {
            key_id: "key_r".into(),
            team: "a".into(),
            scopes: vec![Scope::TasksRead],
        });
        for s in Scope::ALL {
            assert!(admin.allows(s));
            assert!(Principal::Owner.allows(s));
        }
        assert!(reader.allows(Scope::TasksRead));
        assert!(!reader.allows(Scope::TasksWrite));
        assert!(admin.sees(Some("a")));
        assert!(!admin.sees(Some("b")));
        assert!(!admin.sees(None));
        assert!(Principal::Owner.sees(Some("b")));
    }
}

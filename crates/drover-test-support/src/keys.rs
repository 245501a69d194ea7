//! Teams and API keys written straight into a daemon's store (a second connection to its
//! SQLite file), for tests of the team server's access control: what the keys part's API does,
//! without depending on it. Secrets are made and hashed as the daemon does
//! (`drover_daemon::api::auth`).

use drover_daemon::api::auth::{hash_key, new_key_id, new_key_secret};
use drover_store::{NewKeyRecord, SqliteStore, TeamStore};
use drover_types::{KeyInfo, Scope, TeamInfo};
use std::path::Path;
use std::time::Duration;

/// A key as the test holds it: its public id and its secret.
#[derive(Debug, Clone)]
pub struct TestKey {
    pub id: String,
    pub secret: String,
}

/// The store of the daemon at `home`, with its own small runtime (the methods are blocking).
pub struct Keys {
    rt: tokio::runtime::Runtime,
    store: SqliteStore,
}

/// RFC 3339 (UTC, milliseconds, as `drover_store::now` writes it) `offset` from now, in the
/// past when `past`.
pub fn at(offset: Duration, past: bool) -> String {
    let d = chrono::Duration::from_std(offset).unwrap();
    let t = if past {
        chrono::Utc::now() - d
    } else {
        chrono::Utc::now() + d
    };
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Keys {
    pub fn open(home: &Path) -> Keys {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let store = rt
            .block_on(SqliteStore::open(&home.join("drover.db")))
            .unwrap();
        Keys { rt, store }
    }

    pub fn team(&self, name: &str) -> TeamInfo {
        let team = TeamInfo {
            name: name.into(),
            created_at: drover_store::now(),
            ..Default::default()
        };
        self.rt.block_on(self.store.create_team(&team)).unwrap()
    }

    /// A new key of `team` with `scopes`, expiring at `expires_at` if given.
    pub fn key(&self, team: &str, scopes: &[Scope], expires_at: Option<String>) -> TestKey {
        let secret = new_key_secret();
        let rec = NewKeyRecord {
            id: new_key_id(),
            team: team.into(),
            name: None,
            scopes: scopes.to_vec(),
            hash: hash_key(&secret),
            expires_at,
        };
        let info = self.busy(|| self.store.create_key(rec.clone()));
        TestKey {
            id: info.id,
            secret,
        }
    }

    pub fn revoke(&self, id: &str) {
        let now = drover_store::now();
        self.busy(|| self.store.revoke_key(id, &now));
    }

    /// Rotates `id`: a new key of the same team and scopes; the old one works for `overlap`.
    pub fn rotate(&self, id: &str, overlap: Duration) -> TestKey {
        let old = self.info(id);
        let secret = new_key_secret();
        let rec = NewKeyRecord {
            id: new_key_id(),
            team: old.team,
            name: None,
            scopes: old.scopes,
            hash: hash_key(&secret),
            expires_at: None,
        };
        let until = at(overlap, false);
        let info = self.busy(|| self.store.rotate_key(id, rec.clone(), &until));
        TestKey {
            id: info.id,
            secret,
        }
    }

    /// Runs a write of this second connection, again while SQLite answers "database is locked":
    /// the daemon writes the same file (audit records on every call), and a write transaction
    /// that read an older snapshot is refused at once (SQLITE_BUSY_SNAPSHOT), not waited for.
    fn busy<T, F: std::future::Future<Output = drover_store::Result<T>>>(
        &self,
        write: impl Fn() -> F,
    ) -> T {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            match self.rt.block_on(write()) {
                Ok(v) => return v,
                Err(e)
                    if e.to_string().contains("locked") && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("store write: {e}"),
            }
        }
    }

    pub fn info(&self, id: &str) -> KeyInfo {
        self.rt.block_on(self.store.key(id)).unwrap().unwrap()
    }
}

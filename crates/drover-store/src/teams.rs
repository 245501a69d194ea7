//! Teams and their API keys (docs/design.md §7): budgets and model lists per team; keys stored
//! only as a hash, bound to one team and a set of scopes, with expiry, revocation and rotation.
//!
//! The store keeps what it is given: whether a key is valid now (expired, revoked) is decided by
//! the caller from [`KeyInfo`]'s times; secrets never reach the store, only their hashes.

use crate::error::Result;
use async_trait::async_trait;
use drover_types::{KeyInfo, Scope, TeamInfo};

/// A key to store (`create_key`, `rotate_key`).
#[derive(Debug, Clone, PartialEq)]
pub struct NewKeyRecord {
    /// Public id (`key_…`).
    pub id: String,
    pub team: String,
    pub name: Option<String>,
    pub scopes: Vec<Scope>,
    /// SHA-256 of the secret, lower-case hex (`drover_daemon::api::auth::hash_key`).
    pub hash: String,
    pub expires_at: Option<String>,
}

#[async_trait]
pub trait TeamStore: Send + Sync {
    /// A new team; [`crate::StoreError::Exists`] if the name is taken. Times everywhere here are
    /// RFC 3339 as [`crate::now`] writes them (UTC, milliseconds), compared as strings.
    async fn create_team(&self, team: &TeamInfo) -> Result<TeamInfo>;
    /// Replaces a team's settings (budgets, models, webhook); `TeamNotFound` if there is none.
    async fn update_team(&self, team: &TeamInfo) -> Result<TeamInfo>;
    async fn team(&self, name: &str) -> Result<Option<TeamInfo>>;
    /// Every team, by name.
    async fn teams(&self) -> Result<Vec<TeamInfo>>;
    /// Stores a key of an existing team (`TeamNotFound` otherwise).
    async fn create_key(&self, key: NewKeyRecord) -> Result<KeyInfo>;
    /// The key whose secret hashes to `hash`, whatever its state (expired and revoked too).
    async fn key_by_hash(&self, hash: &str) -> Result<Option<KeyInfo>>;
    async fn key(&self, id: &str) -> Result<Option<KeyInfo>>;
    /// Keys of one team (or all), oldest first.
    async fn keys(&self, team: Option<&str>) -> Result<Vec<KeyInfo>>;
    /// Sets `last_used_at` (callers throttle: at most about once a minute per key).
    async fn touch_key(&self, id: &str, at: &str) -> Result<()>;
    /// In one transaction: stores `new` (same team and scopes as `old_id`), sets the old key's
    /// `rotated_to` and moves its `expires_at` to `old_expires_at` (never later than it was).
    async fn rotate_key(
        &self,
        old_id: &str,
        new: NewKeyRecord,
        old_expires_at: &str,
    ) -> Result<KeyInfo>;
    /// Sets `revoked_at` (kept if already set); `KeyNotFound` for an unknown id.
    async fn revoke_key(&self, id: &str, at: &str) -> Result<KeyInfo>;
}

//! TeamStore on PostgreSQL. STUB of the interface commit: H2 (pg-areas) replaces it.
#![allow(unused_variables, unused_imports, dead_code)]
use super::PgStore;
use crate::error::StoreError;
use crate::*;
use async_trait::async_trait;
use drover_types::*;

#[async_trait]
impl TeamStore for PgStore {
    async fn create_team(&self, team: &TeamInfo) -> Result<TeamInfo> {
        Err(StoreError::Corrupt(
            "postgres: teams not implemented yet".into(),
        ))
    }
    async fn update_team(&self, team: &TeamInfo) -> Result<TeamInfo> {
        Err(StoreError::Corrupt(
            "postgres: teams not implemented yet".into(),
        ))
    }
    async fn team(&self, name: &str) -> Result<Option<TeamInfo>> {
        Err(StoreError::Corrupt(
            "postgres: teams not implemented yet".into(),
        ))
    }
    async fn teams(&self) -> Result<Vec<TeamInfo>> {
        Err(StoreError::Corrupt(
            "postgres: teams not implemented yet".into(),
        ))
    }
    async fn create_key(&self, key: NewKeyRecord) -> Result<KeyInfo> {
        Err(StoreError::Corrupt(
            "postgres: teams not implemented yet".into(),
        ))
    }
    async fn key_by_hash(&self, hash: &str) -> Result<Option<KeyInfo>> {
        Err(StoreError::Corrupt(
            "postgres: teams not implemented yet".into(),
        ))
    }
    async fn key(&self, id: &str) -> Result<Option<KeyInfo>> {
        Err(StoreError::Corrupt(
            "postgres: teams not implemented yet".into(),
        ))
    }
    async fn keys(&self, team: Option<&str>) -> Result<Vec<KeyInfo>> {
        Err(StoreError::Corrupt(
            "postgres: teams not implemented yet".into(),
        ))
    }
    async fn touch_key(&self, id: &str, at: &str) -> Result<()> {
        Err(StoreError::Corrupt(
            "postgres: teams not implemented yet".into(),
        ))
    }
    async fn rotate_key(
        &self,
        old_id: &str,
        new: NewKeyRecord,
        old_expires_at: &str,
    ) -> Result<KeyInfo> {
        Err(StoreError::Corrupt(
            "postgres: teams not implemented yet".into(),
        ))
    }
    async fn revoke_key(&self, id: &str, at: &str) -> Result<KeyInfo> {
        Err(StoreError::Corrupt(
            "postgres: teams not implemented yet".into(),
        ))
    }
}

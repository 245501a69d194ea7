//! [`TeamStore`] on SQLite.

use super::SqliteStore;
use crate::error::Result;
use crate::teams::{NewKeyRecord, TeamStore};
use async_trait::async_trait;
use drover_types::{KeyInfo, TeamInfo};

// The interface commit's placeholder: the team-server work fills these in (migration 0010).
#[async_trait]
impl TeamStore for SqliteStore {
    async fn create_team(&self, _team: &TeamInfo) -> Result<TeamInfo> {
        todo!()
    }
    async fn update_team(&self, _team: &TeamInfo) -> Result<TeamInfo> {
        todo!()
    }
    async fn team(&self, _name: &str) -> Result<Option<TeamInfo>> {
        Ok(None)
    }
    async fn teams(&self) -> Result<Vec<TeamInfo>> {
        Ok(vec![])
    }
    async fn create_key(&self, _key: NewKeyRecord) -> Result<KeyInfo> {
        todo!()
    }
    async fn key_by_hash(&self, _hash: &str) -> Result<Option<KeyInfo>> {
        Ok(None)
    }
    async fn key(&self, _id: &str) -> Result<Option<KeyInfo>> {
        Ok(None)
    }
    async fn keys(&self, _team: Option<&str>) -> Result<Vec<KeyInfo>> {
        Ok(vec![])
    }
    async fn touch_key(&self, _id: &str, _at: &str) -> Result<()> {
        Ok(())
    }
    async fn rotate_key(
        &self,
        _old_id: &str,
        _new: NewKeyRecord,
        _old_expires_at: &str,
    ) -> Result<KeyInfo> {
        todo!()
    }
    async fn revoke_key(&self, _id: &str, _at: &str) -> Result<KeyInfo> {
        todo!()
    }
}

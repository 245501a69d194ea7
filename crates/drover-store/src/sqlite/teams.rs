//! [`TeamStore`] on SQLite: `teams` and `api_keys` (migration 0010).

use super::SqliteStore;
use crate::area_rows::{KeyRow, TeamRow, KEY_COLS};
use crate::error::{now, Result, StoreError};
use crate::rows::to_json;
use crate::teams::{NewKeyRecord, TeamStore};
use async_trait::async_trait;
use drover_types::{KeyInfo, TeamInfo};

async fn insert_key(
    conn: &mut sqlx::SqliteConnection,
    k: &NewKeyRecord,
    created_at: &str,
) -> Result<()> {
    let team: Option<String> = sqlx::query_scalar("SELECT name FROM teams WHERE name = ?")
        .bind(&k.team)
        .fetch_optional(&mut *conn)
        .await?;
    if team.is_none() {
        return Err(StoreError::TeamNotFound(k.team.clone()));
    }
    let res = sqlx::query(
        "INSERT INTO api_keys (id, team, name, scopes, hash, created_at, expires_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&k.id)
    .bind(&k.team)
    .bind(&k.name)
    .bind(to_json(&k.scopes)?)
    .bind(&k.hash)
    .bind(created_at)
    .bind(&k.expires_at)
    .execute(&mut *conn)
    .await;
    match res {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            Err(StoreError::Exists(k.id.clone()))
        }
        Err(e) => Err(e.into()),
    }
}

impl SqliteStore {
    async fn key_where(&self, clause: &str, value: &str) -> Result<Option<KeyInfo>> {
        sqlx::query_as::<_, KeyRow>(&format!("SELECT {KEY_COLS} FROM api_keys WHERE {clause}"))
            .bind(value)
            .fetch_optional(&self.reader)
            .await?
            .map(KeyInfo::try_from)
            .transpose()
    }

    async fn key_written(&self, id: &str) -> Result<KeyInfo> {
        sqlx::query_as::<_, KeyRow>(&format!("SELECT {KEY_COLS} FROM api_keys WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.writer)
            .await?
            .ok_or_else(|| StoreError::KeyNotFound(id.to_string()))?
            .try_into()
    }
}

#[async_trait]
impl TeamStore for SqliteStore {
    async fn create_team(&self, team: &TeamInfo) -> Result<TeamInfo> {
        let models = team.allowed_models.as_ref().map(to_json).transpose()?;
        let repos = team.allowed_repos.as_ref().map(to_json).transpose()?;
        let created_at = now();
        let mut tx = self.writer.begin().await?;
        let res = sqlx::query(
            "INSERT INTO teams (name, max_usd_per_day, max_usd_per_task, allowed_models, \
             webhook_url, allowed_repos, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&team.name)
        .bind(team.max_usd_per_day)
        .bind(team.max_usd_per_task)
        .bind(models)
        .bind(&team.webhook_url)
        .bind(repos)
        .bind(&created_at)
        .execute(&mut *tx)
        .await;
        match res {
            Ok(_) => self.commit(tx).await?,
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(StoreError::Exists(team.name.clone()))
            }
            Err(e) => return Err(e.into()),
        }
        Ok(TeamInfo {
            created_at,
            ..team.clone()
        })
    }

    async fn update_team(&self, team: &TeamInfo) -> Result<TeamInfo> {
        let models = team.allowed_models.as_ref().map(to_json).transpose()?;
        let repos = team.allowed_repos.as_ref().map(to_json).transpose()?;
        let mut tx = self.writer.begin().await?;
        let done = sqlx::query(
            "UPDATE teams SET max_usd_per_day = ?, max_usd_per_task = ?, allowed_models = ?, \
             webhook_url = ?, allowed_repos = ? WHERE name = ?",
        )
        .bind(team.max_usd_per_day)
        .bind(team.max_usd_per_task)
        .bind(models)
        .bind(&team.webhook_url)
        .bind(repos)
        .bind(&team.name)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::TeamNotFound(team.name.clone()));
        }
        self.commit(tx).await?;
        sqlx::query_as::<_, TeamRow>("SELECT * FROM teams WHERE name = ?")
            .bind(&team.name)
            .fetch_one(&self.writer)
            .await?
            .try_into()
    }

    async fn team(&self, name: &str) -> Result<Option<TeamInfo>> {
        sqlx::query_as::<_, TeamRow>("SELECT * FROM teams WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.reader)
            .await?
            .map(TeamInfo::try_from)
            .transpose()
    }

    async fn teams(&self) -> Result<Vec<TeamInfo>> {
        sqlx::query_as::<_, TeamRow>("SELECT * FROM teams ORDER BY name")
            .fetch_all(&self.reader)
            .await?
            .into_iter()
            .map(TeamInfo::try_from)
            .collect()
    }

    async fn create_key(&self, key: NewKeyRecord) -> Result<KeyInfo> {
        let mut tx = self.writer.begin().await?;
        insert_key(&mut tx, &key, &now()).await?;
        self.commit(tx).await?;
        self.key_written(&key.id).await
    }

    async fn key_by_hash(&self, hash: &str) -> Result<Option<KeyInfo>> {
        self.key_where("hash = ?", hash).await
    }

    async fn key(&self, id: &str) -> Result<Option<KeyInfo>> {
        self.key_where("id = ?", id).await
    }

    async fn keys(&self, team: Option<&str>) -> Result<Vec<KeyInfo>> {
        let sql = format!(
            "SELECT {KEY_COLS} FROM api_keys WHERE (?1 IS NULL OR team = ?1) \
             ORDER BY created_at, id"
        );
        sqlx::query_as::<_, KeyRow>(&sql)
            .bind(team)
            .fetch_all(&self.reader)
            .await?
            .into_iter()
            .map(KeyInfo::try_from)
            .collect()
    }

    async fn touch_key(&self, id: &str, at: &str) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        sqlx::query("UPDATE api_keys SET last_used_at = ? WHERE id = ?")
            .bind(at)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        self.commit(tx).await
    }

    async fn rotate_key(
        &self,
        old_id: &str,
        new: NewKeyRecord,
        old_expires_at: &str,
    ) -> Result<KeyInfo> {
        let mut tx = self.writer.begin().await?;
        let old =
            sqlx::query_as::<_, KeyRow>(&format!("SELECT {KEY_COLS} FROM api_keys WHERE id = ?"))
                .bind(old_id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| StoreError::KeyNotFound(old_id.to_string()))?;
        // Checked again here, in the one writer's transaction: two racing rotations make one
        // successor, and a revocation that came first wins.
        if old.rotated_to.is_some() || old.revoked_at.is_some() {
            return Err(StoreError::Exists(old_id.to_string()));
        }
        insert_key(&mut tx, &new, &now()).await?;
        // Never later than it was: rotating cannot extend a key's life.
        let expires = match old.expires_at.as_deref() {
            Some(e) if e < old_expires_at => e.to_string(),
            _ => old_expires_at.to_string(),
        };
        sqlx::query("UPDATE api_keys SET rotated_to = ?, expires_at = ? WHERE id = ?")
            .bind(&new.id)
            .bind(&expires)
            .bind(old_id)
            .execute(&mut *tx)
            .await?;
        self.commit(tx).await?;
        self.key_written(&new.id).await
    }

    async fn revoke_key(&self, id: &str, at: &str) -> Result<KeyInfo> {
        let mut tx = self.writer.begin().await?;
        let done =
            sqlx::query("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?")
                .bind(at)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::KeyNotFound(id.to_string()));
        }
        self.commit(tx).await?;
        self.key_written(id).await
    }
}

//! [`TeamStore`] on PostgreSQL: `teams` and `api_keys` (migration 0004). A key's hash is UNIQUE;
//! a rotation locks the old key's row (`FOR UPDATE`) and checks it inside its transaction, so
//! two daemons rotating (or one rotating, one revoking) one key at once make one successor at
//! most, and a revocation that came first wins.

use super::PgStore;
use crate::area_rows::{KeyRow, TeamRow, KEY_COLS};
use crate::error::{now, Result, StoreError};
use crate::rows::to_json;
use crate::teams::{NewKeyRecord, TeamStore};
use async_trait::async_trait;
use drover_types::{KeyInfo, TeamInfo};
use sqlx::PgConnection;

const TEAM_COLS: &str =
    "name, max_usd_per_day, max_usd_per_task, allowed_models, webhook_url, allowed_repos, created_at";

async fn insert_key(conn: &mut PgConnection, k: &NewKeyRecord, created_at: &str) -> Result<()> {
    let team: Option<String> = sqlx::query_scalar("SELECT name FROM teams WHERE name = $1")
        .bind(&k.team)
        .fetch_optional(&mut *conn)
        .await?;
    if team.is_none() {
        return Err(StoreError::TeamNotFound(k.team.clone()));
    }
    let res = sqlx::query(
        "INSERT INTO api_keys (id, team, name, scopes, hash, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
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
        // The team went away between the check and the insert.
        Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
            Err(StoreError::TeamNotFound(k.team.clone()))
        }
        Err(e) => Err(e.into()),
    }
}

impl PgStore {
    async fn key_where(&self, clause: &str, value: &str) -> Result<Option<KeyInfo>> {
        sqlx::query_as::<_, KeyRow>(&format!("SELECT {KEY_COLS} FROM api_keys WHERE {clause}"))
            .bind(value)
            .fetch_optional(&self.pool)
            .await?
            .map(KeyInfo::try_from)
            .transpose()
    }

    async fn key_written(&self, id: &str) -> Result<KeyInfo> {
        self.key_where("id = $1", id)
            .await?
            .ok_or_else(|| StoreError::KeyNotFound(id.to_string()))
    }

    async fn team_row(&self, name: &str) -> Result<Option<TeamInfo>> {
        sqlx::query_as::<_, TeamRow>(&format!("SELECT {TEAM_COLS} FROM teams WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .map(TeamInfo::try_from)
            .transpose()
    }
}

#[async_trait]
impl TeamStore for PgStore {
    async fn create_team(&self, team: &TeamInfo) -> Result<TeamInfo> {
        let models = team.allowed_models.as_ref().map(to_json).transpose()?;
        let repos = team.allowed_repos.as_ref().map(to_json).transpose()?;
        let created_at = now();
        let mut tx = self.pool.begin().await?;
        let res = sqlx::query(
            "INSERT INTO teams (name, max_usd_per_day, max_usd_per_task, allowed_models, \
             webhook_url, allowed_repos, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
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
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE teams SET max_usd_per_day = $1, max_usd_per_task = $2, allowed_models = $3, \
             webhook_url = $4, allowed_repos = $5 WHERE name = $6",
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
        self.team_row(&team.name)
            .await?
            .ok_or_else(|| StoreError::TeamNotFound(team.name.clone()))
    }

    async fn team(&self, name: &str) -> Result<Option<TeamInfo>> {
        self.team_row(name).await
    }

    async fn teams(&self) -> Result<Vec<TeamInfo>> {
        sqlx::query_as::<_, TeamRow>(&format!(
            "SELECT {TEAM_COLS} FROM teams ORDER BY name COLLATE \"C\""
        ))
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(TeamInfo::try_from)
        .collect()
    }

    async fn create_key(&self, key: NewKeyRecord) -> Result<KeyInfo> {
        let mut tx = self.pool.begin().await?;
        insert_key(&mut tx, &key, &now()).await?;
        self.commit(tx).await?;
        self.key_written(&key.id).await
    }

    async fn key_by_hash(&self, hash: &str) -> Result<Option<KeyInfo>> {
        self.key_where("hash = $1", hash).await
    }

    async fn key(&self, id: &str) -> Result<Option<KeyInfo>> {
        self.key_where("id = $1", id).await
    }

    async fn keys(&self, team: Option<&str>) -> Result<Vec<KeyInfo>> {
        let sql = format!(
            "SELECT {KEY_COLS} FROM api_keys WHERE ($1::TEXT IS NULL OR team = $1) \
             ORDER BY created_at, id COLLATE \"C\""
        );
        sqlx::query_as::<_, KeyRow>(&sql)
            .bind(team)
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(KeyInfo::try_from)
            .collect()
    }

    async fn touch_key(&self, id: &str, at: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
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
        let mut tx = self.pool.begin().await?;
        let old = sqlx::query_as::<_, KeyRow>(&format!(
            "SELECT {KEY_COLS} FROM api_keys WHERE id = $1 FOR UPDATE"
        ))
        .bind(old_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::KeyNotFound(old_id.to_string()))?;
        // Checked under the row lock: a second rotation (any daemon's) waits for the first and
        // then sees `rotated_to`; a revocation that committed first is seen here.
        if old.rotated_to.is_some() || old.revoked_at.is_some() {
            return Err(StoreError::Exists(old_id.to_string()));
        }
        insert_key(&mut tx, &new, &now()).await?;
        // Never later than it was: rotating cannot extend a key's life.
        let expires = match old.expires_at.as_deref() {
            Some(e) if e < old_expires_at => e.to_string(),
            _ => old_expires_at.to_string(),
        };
        sqlx::query("UPDATE api_keys SET rotated_to = $1, expires_at = $2 WHERE id = $3")
            .bind(&new.id)
            .bind(&expires)
            .bind(old_id)
            .execute(&mut *tx)
            .await?;
        self.commit(tx).await?;
        self.key_written(&new.id).await
    }

    async fn revoke_key(&self, id: &str, at: &str) -> Result<KeyInfo> {
        let mut tx = self.pool.begin().await?;
        let done =
            sqlx::query("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2")
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

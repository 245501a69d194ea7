//! [`LockStore`] over PostgreSQL: a grant takes a transaction-scoped advisory lock on the name
//! (`pg_advisory_xact_lock`), so concurrent workers count its holders one at a time.

use super::PgStore;
use crate::error::{now, Result};
use crate::locks::{group, LockGrant, LockRecord, LockRow, LockStore};
use async_trait::async_trait;

#[async_trait]
impl LockStore for PgStore {
    async fn try_lock(
        &self,
        name: &str,
        slots: u32,
        holder: &str,
        worker: &str,
        ticket: &str,
    ) -> Result<LockGrant> {
        let mut tx = self.pool.begin().await?;
        // One grant per name at a time across every worker, until this transaction ends.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('drover.lock:' || $1))")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let other: Option<i64> =
            sqlx::query_scalar("SELECT slots FROM locks WHERE name = $1 AND ticket <> $2 LIMIT 1")
                .bind(name)
                .bind(ticket)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(n) = other.filter(|n| *n != i64::from(slots)) {
            return Ok(LockGrant::SlotsDiffer(u32::try_from(n).unwrap_or(u32::MAX)));
        }
        let mine: Option<(i64, i64)> =
            sqlx::query_as("SELECT seq, held FROM locks WHERE ticket = $1")
                .bind(ticket)
                .fetch_optional(&mut *tx)
                .await?;
        let (seq, inserted) = match mine {
            Some((_, held)) if held != 0 => return Ok(LockGrant::Granted),
            Some((seq, _)) => (seq, false),
            None => {
                let seq: i64 = sqlx::query_scalar(
                    "INSERT INTO locks (ticket, name, slots, holder, worker, held, since) \
                     VALUES ($1, $2, $3, $4, $5, 0, $6) RETURNING seq",
                )
                .bind(ticket)
                .bind(name)
                .bind(i64::from(slots))
                .bind(holder)
                .bind(worker)
                .bind(now())
                .fetch_one(&mut *tx)
                .await?;
                (seq, true)
            }
        };
        let ahead: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM locks WHERE name = $1 AND (held = 1 OR seq < $2)",
        )
        .bind(name)
        .bind(seq)
        .fetch_one(&mut *tx)
        .await?;
        let grant = if ahead < i64::from(slots) {
            sqlx::query("UPDATE locks SET held = 1, since = $1 WHERE seq = $2")
                .bind(now())
                .bind(seq)
                .execute(&mut *tx)
                .await?;
            LockGrant::Granted
        } else {
            LockGrant::Busy
        };
        if inserted || grant == LockGrant::Granted {
            self.commit(tx).await?;
        }
        Ok(grant)
    }

    async fn unlock(&self, ticket: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let gone = sqlx::query("DELETE FROM locks WHERE ticket = $1")
            .bind(ticket)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if gone > 0 {
            self.commit(tx).await?;
        }
        Ok(())
    }

    async fn locks(&self) -> Result<Vec<LockRecord>> {
        let rows: Vec<LockRow> = sqlx::query_as(
            "SELECT ticket, name, slots, holder, worker, held, since FROM locks ORDER BY name, seq",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(group(rows))
    }

    async fn release_worker(&self, worker: &str) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let gone = sqlx::query("DELETE FROM locks WHERE worker = $1")
            .bind(worker)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if gone > 0 {
            self.commit(tx).await?;
        }
        Ok(gone)
    }
}

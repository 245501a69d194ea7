//! [`PoolStore`] over SQLite. A pool's counters are derived from its tasks (never kept in a
//! separate counter that could drift from the tasks after a crash).

use super::tasks::insert_task;
use super::SqliteStore;
use crate::area_rows::PoolTaskRow;
use crate::error::{now, Result, StoreError};
use crate::pools::{NewPool, PoolEvent, PoolRecord, PoolStats, PoolStore};
use crate::record::{NewTask, TaskRecord};
use crate::rows::{parse_opt, to_json, EventRow, PoolRow};
use async_trait::async_trait;
use drover_types::{PoolState, TaskState, Verdict};

/// What a launch checks, read in its transaction.
#[derive(sqlx::FromRow)]
struct Room {
    state: String,
    slots: i64,
    count_total: Option<i64>,
    launched: i64,
    live: i64,
}

#[async_trait]
impl PoolStore for SqliteStore {
    async fn create_pool(&self, p: NewPool) -> Result<PoolRecord> {
        let ts = now();
        let allowed = p.allowed_models.as_ref().map(to_json).transpose()?;
        let mut tx = self.writer.begin().await?;
        let res = sqlx::query(
            "INSERT INTO pools (name, state, slots, prompt, repo, base_ref, agent, cmd, model, judge_model, \
             permissions, count_total, max_failures, notify, verify, verify_rounds, max_usd, created_at, \
             streak_since, allowed_models, failure_policy, timeout_secs, stall_timeout_secs, protect, \
             memory_bytes, cpus, pids, team, pr) \
             VALUES (?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&p.name)
        .bind(p.slots)
        .bind(&p.prompt)
        .bind(&p.repo)
        .bind(&p.base_ref)
        .bind(p.agent.to_string())
        .bind(&p.cmd)
        .bind(&p.model)
        .bind(&p.judge_model)
        .bind(p.permissions.to_string())
        .bind(p.count_total)
        .bind(p.max_failures)
        .bind(&p.notify)
        .bind(to_json(&p.verify)?)
        .bind(p.verify_rounds)
        .bind(p.max_usd)
        .bind(&ts)
        .bind(&ts)
        .bind(allowed)
        .bind(p.failure_policy.to_string())
        .bind(p.timeout_secs)
        .bind(p.stall_timeout_secs)
        .bind(to_json(&p.protect)?)
        .bind(p.limits.memory_bytes.map(|v| v.min(i64::MAX as u64) as i64))
        .bind(p.limits.cpus)
        .bind(p.limits.pids.map(|v| v.min(i64::MAX as u64) as i64))
        .bind(&p.team)
        .bind(p.pr.as_ref().map(to_json).transpose()?)
        .execute(&mut *tx)
        .await;
        match res {
            Ok(_) => {
                self.commit(tx).await?;
                self.get_pool(&p.name).await
            }
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(StoreError::Exists(p.name))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn get_pool(&self, name: &str) -> Result<PoolRecord> {
        sqlx::query_as::<_, PoolRow>("SELECT * FROM pools WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.writer)
            .await?
            .ok_or_else(|| StoreError::PoolNotFound(name.to_string()))?
            .try_into()
    }

    async fn list_pools(&self) -> Result<Vec<PoolRecord>> {
        sqlx::query_as::<_, PoolRow>("SELECT * FROM pools ORDER BY created_at")
            .fetch_all(&self.reader)
            .await?
            .into_iter()
            .map(PoolRecord::try_from)
            .collect()
    }

    async fn set_pool_state(
        &self,
        name: &str,
        state: PoolState,
        stop_reason: Option<&str>,
        reset_streak: bool,
    ) -> Result<PoolRecord> {
        let mut q = String::from("UPDATE pools SET state = ?, stop_reason = ?");
        if reset_streak {
            q.push_str(", streak_since = ?, notified = 0");
        }
        q.push_str(" WHERE name = ?");
        let mut query = sqlx::query(&q).bind(state.as_str()).bind(stop_reason);
        if reset_streak {
            query = query.bind(now());
        }
        let mut tx = self.writer.begin().await?;
        let res = query.bind(name).execute(&mut *tx).await?;
        if res.rows_affected() == 0 {
            return Err(StoreError::PoolNotFound(name.to_string()));
        }
        self.commit(tx).await?;
        self.get_pool(name).await
    }

    async fn mark_pool_notified(&self, name: &str) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        let res = sqlx::query("UPDATE pools SET notified = 1 WHERE name = ? AND notified = 0")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let marked = res.rows_affected() == 1;
        if marked {
            // Only a write that changed something is committed (and so notifies).
            self.commit(tx).await?;
        }
        Ok(marked)
    }

    async fn launch_pool_task(&self, name: &str, task: NewTask) -> Result<Option<TaskRecord>> {
        let mut tx = self.writer.begin().await?;
        let room = sqlx::query_as::<_, Room>(
            "SELECT p.state, p.slots, p.count_total, p.launched, \
             (SELECT COUNT(*) FROM tasks t WHERE t.pool = p.name AND t.finished_at IS NULL \
              AND t.state NOT IN ('succeeded','failed','cancelled','interrupted')) AS live \
             FROM pools p WHERE p.name = ?",
        )
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::PoolNotFound(name.to_string()))?;
        if room.state != PoolState::Running.as_str()
            || room.live >= room.slots
            || room.count_total.is_some_and(|t| room.launched >= t)
        {
            return Ok(None);
        }
        insert_task(&mut tx, &task).await?;
        sqlx::query("UPDATE pools SET launched = launched + 1 WHERE name = ?")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        self.commit(tx).await?;
        Ok(Some(Self::fetch(&self.writer, &task.id).await?))
    }

    async fn pool_stats(&self, name: &str, soft_fail_counts: bool) -> Result<PoolStats> {
        let pool = self.get_pool(name).await?;
        let rows = sqlx::query_as::<_, PoolTaskRow>(
            "SELECT state, verdict, reason, cost_usd, finished_at FROM tasks WHERE pool = ? ORDER BY finished_at",
        )
        .bind(name)
        .fetch_all(&self.writer)
        .await?;
        let mut s = PoolStats::default();
        for r in rows {
            s.total_cost_usd += r.cost_usd.unwrap_or(0.0);
            let Some(finished) = r.finished_at else {
                s.running += 1;
                continue;
            };
            s.finished += 1;
            if r.state == TaskState::Cancelled.as_str() {
                // Stopped by a person (or by the pool's own hard stop): not the agent's failure,
                // so neither a failure nor a success for the streak.
                s.cancelled += 1;
                continue;
            }
            let failed = match parse_opt::<Verdict>("verdict", r.verdict)? {
                Some(Verdict::Success) => false,
                Some(Verdict::SoftFail) => {
                    s.soft_fails += 1;
                    soft_fail_counts
                }
                _ => true,
            };
            if failed {
                s.failures += 1;
            } else {
                s.successes += 1;
            }
            if finished >= pool.streak_since {
                if failed {
                    s.streak += 1;
                    s.last_reasons.insert(0, r.reason.unwrap_or_default());
                    s.last_reasons.truncate(5);
                } else {
                    s.streak = 0;
                    s.last_reasons.clear();
                }
            }
        }
        Ok(s)
    }

    async fn pool_event(&self, name: &str, kind: &str, data: serde_json::Value) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        sqlx::query(
            "INSERT INTO pool_events (pool, seq, ts, kind, data) \
             VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM pool_events WHERE pool = ?), ?, ?, ?)",
        )
        .bind(name)
        .bind(name)
        .bind(now())
        .bind(kind)
        .bind(data.to_string())
        .execute(&mut *tx)
        .await?;
        self.commit(tx).await
    }

    async fn pool_events(&self, name: &str, limit: i64) -> Result<Vec<PoolEvent>> {
        let rows = sqlx::query_as::<_, EventRow>(
            "SELECT seq, ts, kind, data FROM pool_events WHERE pool = ? ORDER BY seq DESC LIMIT ?",
        )
        .bind(name)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        rows.into_iter().rev().map(PoolEvent::try_from).collect()
    }
}

//! Pools: a prompt run by N sessions at a time. Their counters are derived from their tasks
//! (never kept in a separate counter that could drift from the tasks after a crash).

use crate::record::{NewTask, TaskRecord};
use crate::sqlite::{insert_task, opt_word, row_to_task, word, SqliteStore};
use crate::{now, Result, StoreError};
use drover_types::{FailurePolicy, PermissionPolicy, PoolState, TaskState, Verdict};
use serde::Serialize;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoolRecord {
    pub name: String,
    pub state: PoolState,
    pub slots: i64,
    pub prompt: String,
    pub repo: String,
    pub base_ref: String,
    pub agent: String,
    pub cmd: Option<String>,
    pub model: Option<String>,
    pub judge_model: Option<String>,
    pub permissions: PermissionPolicy,
    pub count_total: Option<i64>,
    pub max_failures: i64,
    pub notify: Option<String>,
    pub verify: Vec<String>,
    pub verify_rounds: i64,
    pub max_usd: Option<f64>,
    pub created_at: String,
    pub launched: i64,
    pub streak_since: String,
    pub notified: bool,
    /// Why it stopped, in words (`count reached`, `stopped by request`, `3 consecutive
    /// failures`): shown to people, not a closed set.
    pub stop_reason: Option<String>,
    /// Models the pool's tasks may use (the gateway refuses others); `None` = any.
    pub allowed_models: Option<Vec<String>>,
    /// What the failure streak does to running tasks.
    pub failure_policy: FailurePolicy,
    /// Clocks its tasks inherit (seconds; `None`: no limit).
    pub timeout_secs: Option<i64>,
    pub stall_timeout_secs: Option<i64>,
    /// Protected globs every task of the pool gets.
    pub protect: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct NewPool {
    pub name: String,
    pub slots: i64,
    pub prompt: String,
    pub repo: String,
    pub base_ref: String,
    pub agent: String,
    pub cmd: Option<String>,
    pub model: Option<String>,
    pub judge_model: Option<String>,
    pub permissions: PermissionPolicy,
    pub count_total: Option<i64>,
    pub max_failures: i64,
    pub notify: Option<String>,
    pub verify: Vec<String>,
    pub verify_rounds: i64,
    pub max_usd: Option<f64>,
    pub allowed_models: Option<Vec<String>>,
    pub failure_policy: FailurePolicy,
    pub timeout_secs: Option<i64>,
    pub stall_timeout_secs: Option<i64>,
    pub protect: Vec<String>,
}

/// Counters of a pool, computed from its tasks.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PoolStats {
    /// Tasks not yet terminal (queued or active).
    pub running: i64,
    pub finished: i64,
    pub successes: i64,
    pub failures: i64,
    pub soft_fails: i64,
    /// Stopped before they ended on their own; they do not count toward the streak.
    pub cancelled: i64,
    pub streak: i64,
    pub total_cost_usd: f64,
    /// Reasons of the current streak's failures, newest first (at most 5).
    pub last_reasons: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoolEvent {
    pub seq: i64,
    pub ts: String,
    pub kind: String,
    pub data: serde_json::Value,
}

fn row_to_pool(r: &SqliteRow) -> Result<PoolRecord> {
    let verify: String = r.try_get("verify")?;
    Ok(PoolRecord {
        name: r.try_get("name")?,
        state: word(r, "state")?,
        slots: r.try_get("slots")?,
        prompt: r.try_get("prompt")?,
        repo: r.try_get("repo")?,
        base_ref: r.try_get("base_ref")?,
        agent: r.try_get("agent")?,
        cmd: r.try_get("cmd")?,
        model: r.try_get("model")?,
        judge_model: r.try_get("judge_model")?,
        permissions: word(r, "permissions")?,
        count_total: r.try_get("count_total")?,
        max_failures: r.try_get("max_failures")?,
        notify: r.try_get("notify")?,
        verify: serde_json::from_str(&verify).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        verify_rounds: r.try_get("verify_rounds")?,
        max_usd: r.try_get("max_usd")?,
        created_at: r.try_get("created_at")?,
        launched: r.try_get("launched")?,
        streak_since: r.try_get("streak_since")?,
        notified: r.try_get::<i64, _>("notified")? != 0,
        stop_reason: r.try_get("stop_reason")?,
        allowed_models: r
            .try_get::<Option<String>, _>("allowed_models")?
            .and_then(|s| serde_json::from_str(&s).ok()),
        failure_policy: word(r, "failure_policy")?,
        timeout_secs: r.try_get("timeout_secs")?,
        stall_timeout_secs: r.try_get("stall_timeout_secs")?,
        protect: crate::sqlite::json_list(r, "protect")?,
    })
}

impl SqliteStore {
    pub(crate) async fn pool_create(&self, p: NewPool) -> Result<PoolRecord> {
        let verify =
            serde_json::to_string(&p.verify).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let ts = now();
        let mut tx = self.writer.begin().await?;
        let res = sqlx::query(
            "INSERT INTO pools (name, state, slots, prompt, repo, base_ref, agent, cmd, model, judge_model, \
             permissions, count_total, max_failures, notify, verify, verify_rounds, max_usd, created_at, streak_since, allowed_models, failure_policy, \
             timeout_secs, stall_timeout_secs) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&p.name)
        .bind(PoolState::Running.as_str())
        .bind(p.slots)
        .bind(&p.prompt)
        .bind(&p.repo)
        .bind(&p.base_ref)
        .bind(&p.agent)
        .bind(&p.cmd)
        .bind(&p.model)
        .bind(&p.judge_model)
        .bind(p.permissions.as_str())
        .bind(p.count_total)
        .bind(p.max_failures)
        .bind(&p.notify)
        .bind(verify)
        .bind(p.verify_rounds)
        .bind(p.max_usd)
        .bind(&ts)
        .bind(&ts)
        .bind(p.allowed_models.as_ref().map(|m| serde_json::to_string(m).unwrap_or_default()))
        .bind(p.failure_policy.as_str())
        .bind(p.timeout_secs)
        .bind(p.stall_timeout_secs)
        .execute(&mut *tx)
        .await;
        match res {
            Ok(_) => {
                if !p.protect.is_empty() {
                    let protect = serde_json::to_string(&p.protect)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                    sqlx::query("UPDATE pools SET protect = ? WHERE name = ?")
                        .bind(protect)
                        .bind(&p.name)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                self.pool_get(&p.name).await
            }
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(StoreError::Exists(p.name))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub(crate) async fn pool_get(&self, name: &str) -> Result<PoolRecord> {
        let row = sqlx::query("SELECT * FROM pools WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.writer)
            .await?;
        row.map(|r| row_to_pool(&r))
            .unwrap_or_else(|| Err(StoreError::PoolNotFound(name.to_string())))
    }

    pub(crate) async fn pool_list(&self) -> Result<Vec<PoolRecord>> {
        let rows = sqlx::query("SELECT * FROM pools ORDER BY created_at")
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(row_to_pool).collect()
    }

    pub(crate) async fn pool_set_state(
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
        let res = query.bind(name).execute(&self.writer).await?;
        if res.rows_affected() == 0 {
            return Err(StoreError::PoolNotFound(name.to_string()));
        }
        self.pool_get(name).await
    }

    pub(crate) async fn pool_mark_notified(&self, name: &str) -> Result<bool> {
        let res = sqlx::query("UPDATE pools SET notified = 1 WHERE name = ? AND notified = 0")
            .bind(name)
            .execute(&self.writer)
            .await?;
        Ok(res.rows_affected() == 1)
    }

    /// Creates the pool's next task if the pool runs, has a free slot and has not reached its
    /// count — checked and written in one transaction, so a slot is never filled twice.
    pub(crate) async fn pool_launch(
        &self,
        name: &str,
        task: NewTask,
    ) -> Result<Option<TaskRecord>> {
        let mut tx = self.writer.begin().await?;
        let row = sqlx::query(
            "SELECT p.state, p.slots, p.count_total, p.launched, \
             (SELECT COUNT(*) FROM tasks t WHERE t.pool = p.name AND t.finished_at IS NULL \
              AND t.state NOT IN ('succeeded','failed','cancelled','interrupted')) AS live \
             FROM pools p WHERE p.name = ?",
        )
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::PoolNotFound(name.to_string()))?;
        let state: PoolState = word(&row, "state")?;
        let slots: i64 = row.try_get("slots")?;
        let total: Option<i64> = row.try_get("count_total")?;
        let launched: i64 = row.try_get("launched")?;
        let live: i64 = row.try_get("live")?;
        if state != PoolState::Running || live >= slots || total.is_some_and(|t| launched >= t) {
            return Ok(None);
        }
        insert_task(&mut tx, &task).await?;
        sqlx::query("UPDATE pools SET launched = launched + 1 WHERE name = ?")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        let row = sqlx::query("SELECT * FROM tasks WHERE id = ?")
            .bind(&task.id)
            .fetch_one(&self.writer)
            .await?;
        Ok(Some(row_to_task(&row)?))
    }

    pub(crate) async fn pool_stats(&self, name: &str, soft_fail_counts: bool) -> Result<PoolStats> {
        let pool = self.pool_get(name).await?;
        let rows = sqlx::query(
            "SELECT state, verdict, reason, cost_usd, finished_at FROM tasks WHERE pool = ? ORDER BY finished_at",
        )
        .bind(name)
        .fetch_all(&self.writer)
        .await?;
        let mut s = PoolStats::default();
        for r in &rows {
            let finished: Option<String> = r.try_get("finished_at")?;
            let verdict: Option<Verdict> = opt_word(r, "verdict")?;
            let cost: Option<f64> = r.try_get("cost_usd")?;
            s.total_cost_usd += cost.unwrap_or(0.0);
            let Some(finished) = finished else {
                s.running += 1;
                continue;
            };
            s.finished += 1;
            let state: TaskState = word(r, "state")?;
            if state == TaskState::Cancelled {
                // Stopped by a person (or by the pool's own hard stop): not the agent's failure,
                // so neither a failure nor a success for the streak.
                s.cancelled += 1;
                continue;
            }
            let failed = match verdict {
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
                    let reason: Option<String> = r.try_get("reason")?;
                    s.last_reasons.insert(0, reason.unwrap_or_default());
                    s.last_reasons.truncate(5);
                } else {
                    s.streak = 0;
                    s.last_reasons.clear();
                }
            }
        }
        Ok(s)
    }

    pub(crate) async fn pool_event(
        &self,
        name: &str,
        kind: &str,
        data: serde_json::Value,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO pool_events (pool, seq, ts, kind, data) \
             VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM pool_events WHERE pool = ?), ?, ?, ?)",
        )
        .bind(name)
        .bind(name)
        .bind(now())
        .bind(kind)
        .bind(data.to_string())
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    pub(crate) async fn pool_events(&self, name: &str, limit: i64) -> Result<Vec<PoolEvent>> {
        let rows = sqlx::query(
            "SELECT seq, ts, kind, data FROM pool_events WHERE pool = ? ORDER BY seq DESC LIMIT ?",
        )
        .bind(name)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .rev()
            .map(|r| {
                let data: String = r.try_get("data")?;
                Ok(PoolEvent {
                    seq: r.try_get("seq")?,
                    ts: r.try_get("ts")?,
                    kind: r.try_get("kind")?,
                    data: serde_json::from_str(&data)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                })
            })
            .collect()
    }
}

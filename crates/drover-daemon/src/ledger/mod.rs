//! The daemon's [`Ledger`] over its store.
//!
//! Budget checks read spent amounts from memory: per scope (task, pool, team-day) the sum of
//! the usage rows stored before this ledger started, loaded from the store the first time the
//! scope is asked about (rows up to the last id seen at start, so the load never overlaps what
//! this ledger counts itself), plus every record this ledger accepted, counted the moment it
//! is queued. A budget therefore never sees less than was spent, and survives restarts.
//!
//! Writes go through one queue to a writer task ([`writer`]) that commits the usage rows
//! queued behind each other in one transaction; a response does not wait for SQLite. Events
//! share the queue, so their order with the usage rows is kept. [`StoreLedger::flush`] waits
//! until everything queued is stored: the engine calls it before a task's terminal state and at
//! shutdown. A SIGKILL loses what was queued and not yet committed (the batch being written,
//! normally a few milliseconds of responses).

mod messages;

/// `source` of the task events the gateway's traffic causes.
const SOURCE: &str = "gateway";

/// Whether a gateway event is a refusal on what was spent: the task stops `budget_exceeded`.
fn stops_for_budget(ev: &GatewayEvent) -> bool {
    matches!(
        ev,
        GatewayEvent::BudgetRefused { .. } | GatewayEvent::NoPrice { .. }
    )
}

/// Whether a stored task event is the gateway's budget refusal (as [`StoreLedger`] writes it:
/// an `error` event whose data is the [`GatewayEvent`] plus `message` and `source`).
pub fn is_budget_refusal(ev: &drover_types::Event) -> bool {
    use serde::Deserialize;
    ev.kind == EventKind::Error
        && ev.data["source"] == SOURCE
        && GatewayEvent::deserialize(&ev.data).is_ok_and(|g| stops_for_budget(&g))
}
mod writer;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use drover_gateway::{GatewayEvent, Ledger, Spent, TaskGrant, UsageRecord};
use drover_store::{Store, UsageRow};
use drover_types::{EventKind, NewEvent};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};
use tokio_util::task::TaskTracker;

use writer::Write;

/// What the ledger tells the engine. (Followers learn of the ledger's writes from the store's
/// change feed, like of any other write.)
#[derive(Debug)]
pub enum Note {
    /// A budget refused a request: end the task `budget_exceeded`.
    BudgetExceeded(String),
}

/// How long [`StoreLedger::flush`] waits for the writer.
const FLUSH_DEADLINE: Duration = Duration::from_secs(30);

/// The daemon's [`Ledger`] over `store`, and the receiver of its notes (for embedding and the
/// gateway benchmark). Starts the writer task.
pub async fn store_ledger(
    store: Arc<dyn Store>,
) -> Result<(Arc<StoreLedger>, mpsc::UnboundedReceiver<Note>), String> {
    let before = store
        .usage_last_id()
        .await
        .map_err(|e| format!("the store cannot say what was spent: {e}"))?;
    let (notes, rx) = mpsc::unbounded_channel();
    let (queue, writes) = mpsc::unbounded_channel();
    let writer = TaskTracker::new();
    writer.spawn(writer::run(store.clone(), writes, notes));
    writer.close();
    let ledger = StoreLedger {
        store,
        queue,
        writer,
        before,
        totals: Mutex::default(),
    };
    Ok((Arc::new(ledger), rx))
}

pub struct StoreLedger {
    store: Arc<dyn Store>,
    queue: mpsc::UnboundedSender<Write>,
    /// The writer task, awaited by [`StoreLedger::close`].
    writer: TaskTracker,
    /// The last usage row stored before this ledger started.
    before: i64,
    totals: Mutex<Totals>,
}

/// Spent amounts by scope: `stored` loaded from rows before this ledger, `own` accepted since.
#[derive(Default)]
struct Totals {
    stored: Sums,
    own: Sums,
}

#[derive(Default)]
struct Sums {
    /// Task id → (USD, tokens).
    task: HashMap<String, (f64, u64)>,
    pool: HashMap<String, f64>,
    /// (team, UTC day `YYYY-MM-DD`) → USD.
    team: HashMap<(String, String), f64>,
}

impl StoreLedger {
    fn totals(&self) -> std::sync::MutexGuard<'_, Totals> {
        self.totals.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until everything queued so far is stored (at most [`FLUSH_DEADLINE`]).
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.queue.send(Write::Flush(done)).is_err() {
            return;
        }
        if tokio::time::timeout(FLUSH_DEADLINE, wait).await.is_err() {
            tracing::error!("ledger: usage rows still unwritten after {FLUSH_DEADLINE:?}");
        }
    }

    /// Stores everything queued so far and ends the writer (at most [`FLUSH_DEADLINE`]);
    /// records accepted afterwards are not stored. The daemon calls it last at shutdown.
    pub async fn close(&self) {
        if self.queue.send(Write::Close).is_err() {
            return;
        }
        if tokio::time::timeout(FLUSH_DEADLINE, self.writer.wait())
            .await
            .is_err()
        {
            tracing::error!("ledger: the writer did not end within {FLUSH_DEADLINE:?}");
        }
    }

    /// Loads the scopes of `grant` not loaded yet from the rows stored before this ledger.
    async fn load(&self, grant: &TaskGrant, day: &str) -> Result<(), String> {
        let team_key = |t: &String| (t.clone(), day.to_string());
        let missing = {
            let t = self.totals();
            !t.stored.task.contains_key(&grant.task_id)
                || grant
                    .pool
                    .as_ref()
                    .is_some_and(|p| !t.stored.pool.contains_key(p))
                || grant
                    .team
                    .as_ref()
                    .is_some_and(|x| !t.stored.team.contains_key(&team_key(x)))
        };
        if !missing {
            return Ok(());
        }
        let s = self
            .store
            .spent(
                &grant.task_id,
                grant.pool.as_deref(),
                grant.team.as_deref(),
                &format!("{day}T00:00:00"),
                self.before,
            )
            .await
            .map_err(|e| {
                tracing::error!("ledger spent: {e}");
                format!("the store cannot say what was spent: {e}")
            })?;
        let mut t = self.totals();
        t.stored
            .task
            .entry(grant.task_id.clone())
            .or_insert((s.task_usd, s.task_tokens.max(0) as u64));
        if let Some(p) = &grant.pool {
            t.stored.pool.entry(p.clone()).or_insert(s.pool_usd);
        }
        if let Some(x) = &grant.team {
            // Yesterday's figures are no use any more.
            t.stored.team.retain(|(_, d), _| d.as_str() >= day);
            t.stored.team.entry(team_key(x)).or_insert(s.team_usd_today);
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Ledger for StoreLedger {
    async fn spent(&self, grant: &TaskGrant) -> Result<Spent, String> {
        let day = chrono::Utc::now().date_naive().to_string();
        self.load(grant, &day).await?;
        let t = self.totals();
        let task = |s: &Sums| s.task.get(&grant.task_id).copied().unwrap_or_default();
        let pool = |s: &Sums| {
            grant
                .pool
                .as_ref()
                .and_then(|p| s.pool.get(p))
                .copied()
                .unwrap_or(0.0)
        };
        let team = |s: &Sums| {
            grant
                .team
                .as_ref()
                .and_then(|x| s.team.get(&(x.clone(), day.clone())))
                .copied()
                .unwrap_or(0.0)
        };
        let (stored, own) = (task(&t.stored), task(&t.own));
        Ok(Spent {
            task_usd: stored.0 + own.0,
            task_tokens: stored.1 + own.1,
            pool_usd: pool(&t.stored) + pool(&t.own),
            team_usd_today: team(&t.stored) + team(&t.own),
        })
    }

    async fn record(&self, task_id: &str, rec: UsageRecord) {
        let cost = rec.cost_usd.unwrap_or(0.0);
        {
            let mut t = self.totals();
            let own = &mut t.own;
            let e = own.task.entry(task_id.to_string()).or_default();
            e.0 += cost;
            e.1 += rec.tokens.total();
            if let Some(p) = &rec.pool {
                *own.pool.entry(p.clone()).or_default() += cost;
            }
            if let Some(x) = &rec.team {
                let day = rec.at.date_naive().to_string();
                *own.team.entry((x.clone(), day)).or_default() += cost;
            }
        }
        let row = usage_row(task_id, rec);
        if let Err(mpsc::error::SendError(Write::Usage(row))) = self.queue.send(Write::Usage(row)) {
            // No writer (the runtime is going down): store it here.
            if let Err(e) = self.store.record_usage(&[row]).await {
                tracing::error!(task = task_id, "ledger record: {e}");
            }
        }
    }

    async fn event(&self, task_id: &str, ev: GatewayEvent) {
        let mut data = serde_json::to_value(&ev).unwrap_or_default();
        if let Some(o) = data.as_object_mut() {
            o.insert("message".into(), json!(messages::message(&ev)));
            o.insert("source".into(), json!(SOURCE));
        }
        let budget_exceeded = stops_for_budget(&ev);
        let write = Write::Event {
            task: task_id.to_string(),
            event: NewEvent::new(EventKind::Error, data),
            budget_exceeded,
        };
        if self.queue.send(write).is_err() {
            tracing::error!(task = task_id, "ledger event lost: the writer is gone");
        } else if budget_exceeded {
            // The refusal is stored and the engine told before the agent hears of it, so the
            // task ends `budget_exceeded` however fast the agent exits.
            self.flush().await;
        }
    }
}

fn usage_row(task_id: &str, rec: UsageRecord) -> UsageRow {
    let name = |v: serde_json::Result<serde_json::Value>| {
        v.ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default()
    };
    UsageRow {
        task_id: task_id.to_string(),
        pool: rec.pool,
        team: rec.team,
        api: name(serde_json::to_value(rec.api)),
        model: rec.model,
        input_tokens: rec.tokens.input as i64,
        output_tokens: rec.tokens.output as i64,
        cache_read_tokens: rec.tokens.cache_read as i64,
        cache_write_tokens: rec.tokens.cache_write as i64,
        cost_usd: rec.cost_usd,
        stop_reason: rec.stop_reason,
        outcome: name(serde_json::to_value(rec.outcome)),
        at: rec.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    }
}

#[cfg(test)]
mod tests;

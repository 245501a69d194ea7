//! The embedded store: SQLite in WAL mode. The only place SQL text and column names appear.
//!
//! - `tasks`, `pools`, `usage`, `teams`, `audit`, `webhooks`: one area trait each.
//! - `hosts`, `locks`: workers and build locks (one worker on SQLite: the daemon itself).
//! - Rows: `crate::rows` and `crate::area_rows`, shared with the PostgreSQL store (same column
//!   types).
//!
//! Concurrency: all writes go through a pool of exactly one connection, so SQLite never has two
//! writers racing for the lock (a deferred transaction upgrading to a write lock would fail with
//! SQLITE_BUSY instead of waiting). Reads use a separate pool and see committed snapshots (WAL).
//! Every write bumps [`Changes`] once it committed.

mod audit;
mod batches;
mod fleet;
mod hosts;
mod locks;
mod metrics;
mod pools;
mod tasks;
mod teams;
mod usage;
mod webhooks;

use crate::changes::{ChangeFeed, Changes};
use crate::error::{Result, StoreError};
use crate::record::TaskRecord;
use crate::rows::TaskRow;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool};
use std::path::Path;
use std::time::Duration;

pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    /// The select list of a task summary: every column of `tasks`, long texts cut.
    summary_cols: String,
    changes: Changes,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    pub async fn open(path: &Path) -> Result<Self> {
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts.clone())
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts.read_only(true))
            .await?;
        let summary_cols = summary_columns(&reader).await?;
        Ok(SqliteStore {
            writer,
            reader,
            summary_cols,
            changes: Changes::new(),
        })
    }

    /// A whole task row read through `conn` (the writer right after a write: read your writes).
    async fn fetch<'e, E>(conn: E, id: &str) -> Result<TaskRecord>
    where
        E: sqlx::Executor<'e, Database = Sqlite>,
    {
        sqlx::query_as::<_, TaskRow>("SELECT * FROM tasks WHERE id = ?")
            .bind(id)
            .fetch_optional(conn)
            .await?
            .ok_or_else(|| StoreError::NotFound(id.to_string()))?
            .try_into()
    }

    /// Commits `tx` and tells followers.
    async fn commit(&self, tx: sqlx::Transaction<'_, Sqlite>) -> Result<()> {
        tx.commit().await?;
        self.changes.bump();
        Ok(())
    }
}

impl ChangeFeed for SqliteStore {
    fn changes(&self) -> &Changes {
        &self.changes
    }
}

/// Every column of `tasks` (whatever migrations added), with prompt, result and cmd read from
/// their short copies (`*_head`, kept by triggers: see migration 0007) and `pending_input` as a
/// short form.
async fn summary_columns(conn: &SqlitePool) -> Result<String> {
    let cols: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info('tasks')")
        .fetch_all(conn)
        .await?;
    Ok(cols
        .iter()
        .filter(|c| !c.ends_with("_head"))
        .map(|c| match c.as_str() {
            "prompt" | "result" | "cmd" => format!("{c}_head AS {c}"),
            // A short form: who asks for what, an excerpt of the input (the whole request is in
            // `GET /v1/tasks/{id}`; `send --allow` needs only the id).
            "pending_input" => "CASE WHEN pending_input IS NULL THEN NULL ELSE json_object(\
                 'request_id', json_extract(pending_input, '$.request_id'), \
                 'tool', json_extract(pending_input, '$.tool'), \
                 'input', substr(json_extract(pending_input, '$.input'), 1, 200), \
                 'summary', json('true')) END AS pending_input"
                .to_string(),
            _ => format!("\"{c}\""),
        })
        .collect::<Vec<_>>()
        .join(", "))
}

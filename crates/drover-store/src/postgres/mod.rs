//! The shared store: PostgreSQL, for several daemons (the workers) on one database
//! (docs/design.md §8). The only place (with `sqlite/`) SQL text and column names appear.
//!
//! - `tasks`, `pools`, `usage`, `teams`, `audit`, `webhooks`, `hosts`, `locks`: one area trait
//!   each, the same traits and conformance tests as SQLite. Rows decode through `crate::rows`:
//!   the schema (`migrations/postgres/`) declares the SQLite column types (TEXT for times and
//!   JSON, BIGINT for integers, DOUBLE PRECISION for reals) so both decode the same structs.
//! - Migrations run at open under sqlx's advisory lock: daemons starting at once apply each
//!   migration once.
//! - Changes: every committing write sends `NOTIFY drover_changes` in its transaction; a listener
//!   connection bumps [`Changes`] on each notification, so followers in every daemon (SSE,
//!   `wait`, `logs --follow`) wake on writes made anywhere. The payload names the writing store,
//!   whose own listener skips it (its `commit` bumped already). A lost listener connection
//!   reconnects and bumps (a notification may have been missed meanwhile).
//! - Task summaries (`summary_cols`) and whole rows (`fetch`) for every area reading tasks.

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
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{PgPool, Postgres};
use std::str::FromStr;
use std::time::Duration;

/// The channel every write notifies.
const CHANNEL: &str = "drover_changes";

/// The database's clock as drover writes times (RFC 3339 ms UTC, like [`crate::now`]): SQL text
/// for a query (`drover_time` is defined by migration 0001). Leases use it, never a host's clock.
#[allow(dead_code)] // until the hosts area uses it
pub(super) const DB_NOW: &str = "drover_time(now())";

pub struct PgStore {
    pool: PgPool,
    /// The select list of a task summary (see [`summary_columns`]).
    summary_cols: String,
    changes: Changes,
    /// This store's notification payload: its listener skips notifications carrying it
    /// (`commit` already bumped), so a read never sees a late bump of its own earlier write.
    origin: String,
    /// Ends the listener task with the store.
    listener: tokio::task::AbortHandle,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

/// One connection to the database, closed again; `SELECT version()` on it (e.g. "PostgreSQL
/// 15.18"). The error says where and why, never the password.
async fn connect_once(opts: &PgConnectOptions) -> Result<String> {
    let at = || format!("{}:{}", opts.get_host(), opts.get_port());
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect_with(opts)
        .await
        .map_err(|e| StoreError::Connect {
            at: at(),
            reason: e.to_string().replace('\n', " "),
        })?;
    let version: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&mut conn)
        .await?;
    let _ = sqlx::Connection::close(conn).await;
    Ok(format!("{} (PostgreSQL {version})", at()))
}

impl PgStore {
    /// Whether `url` parses as a PostgreSQL connection URL; why not, without the URL.
    pub fn check_url(url: &str) -> std::result::Result<(), String> {
        PgConnectOptions::from_str(url)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Whether `url` answers, without touching its schema: `HOST:PORT (PostgreSQL VERSION)`, or
    /// why not (`drover doctor`).
    pub async fn probe(url: &str) -> Result<String> {
        connect_once(&PgConnectOptions::from_str(url)?.application_name("drover doctor")).await
    }

    /// Connects to `url` (`postgres://…`), applies pending migrations and starts listening for
    /// other daemons' writes. The URL may hold a password: it never appears in an error.
    pub async fn open(url: &str) -> Result<Self> {
        // A worker cut off mid-transaction must not hold its row locks (a task's `FOR UPDATE`)
        // until TCP gives up hours later: the server ends a session idle inside a transaction
        // after 10 s, and probes a silent client's connection after 10 s (3 × 5 s).
        let opts = PgConnectOptions::from_str(url)?
            .application_name("drover")
            .options([
                ("idle_in_transaction_session_timeout", "10s"),
                ("tcp_keepalives_idle", "10"),
                ("tcp_keepalives_interval", "5"),
                ("tcp_keepalives_count", "3"),
            ]);
        // One direct connection first: the pool would retry until its acquire timeout and
        // then say only "timed out", hiding why (refused, unknown host, TLS, password).
        let _ = connect_once(&opts).await?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        let summary_cols = summary_columns(&pool).await?;
        let changes = Changes::new();
        let origin = origin_id();
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.listen(CHANNEL).await?;
        let feed = changes.clone();
        let own = origin.clone();
        let listener = tokio::spawn(async move {
            loop {
                // `try_recv` is `None` after the connection was lost (it reconnects on the next
                // call): a notification may have been missed, so followers re-read.
                match listener.try_recv().await {
                    Ok(Some(n)) if n.payload() == own => {}
                    Ok(Some(_)) | Ok(None) => feed.bump(),
                    Err(e) => {
                        tracing::warn!("store: LISTEN {CHANNEL}: {e}; reconnecting");
                        feed.bump();
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        })
        .abort_handle();
        Ok(PgStore {
            pool,
            summary_cols,
            changes,
            origin,
            listener,
        })
    }

    /// A whole task row read through `conn` (a pool or a transaction).
    async fn fetch<'e, E>(conn: E, id: &str) -> Result<TaskRecord>
    where
        E: sqlx::Executor<'e, Database = Postgres>,
    {
        sqlx::query_as::<_, TaskRow>("SELECT * FROM tasks WHERE id = $1")
            .bind(id)
            .fetch_optional(conn)
            .await?
            .ok_or_else(|| StoreError::NotFound(id.to_string()))?
            .try_into()
    }

    /// Notifies every daemon on the database, commits `tx`, and tells this one's followers.
    async fn commit(&self, mut tx: sqlx::Transaction<'_, Postgres>) -> Result<()> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(&self.origin)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.changes.bump();
        Ok(())
    }
}

impl ChangeFeed for PgStore {
    fn changes(&self) -> &Changes {
        &self.changes
    }
}

/// A name for this store's notifications, unique among the stores on one database (process,
/// time and a random hasher key).
fn origin_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    format!("{}-{:016x}", std::process::id(), h.finish())
}

/// Every column of `tasks` (whatever migrations added), with prompt, result and cmd read from
/// their short copies (`*_head`, kept by a trigger: migration 0001) and `pending_input` as a
/// short form (who asks for what, 200 characters of the input; as SQLite's).
async fn summary_columns(pool: &PgPool) -> Result<String> {
    let cols: Vec<String> = sqlx::query_scalar(
        "SELECT column_name::text FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name = 'tasks' \
         ORDER BY ordinal_position",
    )
    .fetch_all(pool)
    .await?;
    Ok(cols
        .iter()
        .filter(|c| !c.ends_with("_head"))
        .map(|c| match c.as_str() {
            "prompt" | "result" | "cmd" => format!("{c}_head AS {c}"),
            "pending_input" => "CASE WHEN pending_input IS NULL THEN NULL ELSE \
                 jsonb_build_object(\
                 'request_id', pending_input::jsonb -> 'request_id', \
                 'tool', pending_input::jsonb -> 'tool', \
                 'input', left(pending_input::jsonb ->> 'input', 200), \
                 'summary', true)::text END AS pending_input"
                .to_string(),
            _ => format!("\"{c}\""),
        })
        .collect::<Vec<_>>()
        .join(", "))
}

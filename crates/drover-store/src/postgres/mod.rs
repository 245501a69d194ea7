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
//!   `wait`, `logs --follow`) wake on writes made anywhere. A lost listener connection
//!   reconnects and bumps once (a notification may have been missed meanwhile).

mod audit;
mod hosts;
mod locks;
mod pools;
mod tasks;
mod teams;
mod usage;
mod webhooks;

use crate::changes::{ChangeFeed, Changes};
use crate::error::Result;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{PgPool, Postgres};
use std::str::FromStr;
use std::time::Duration;

/// The channel every write notifies.
const CHANNEL: &str = "drover_changes";

#[allow(dead_code)] // until the areas use them (interface commit)
pub struct PgStore {
    pool: PgPool,
    changes: Changes,
    /// Ends the listener task with the store.
    listener: tokio::task::AbortHandle,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl PgStore {
    /// Connects to `url` (`postgres://…`), applies pending migrations and starts listening for
    /// other daemons' writes. The URL may hold a password: it never appears in an error.
    pub async fn open(url: &str) -> Result<Self> {
        let opts = PgConnectOptions::from_str(url)?.application_name("drover");
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        let changes = Changes::new();
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.listen(CHANNEL).await?;
        let feed = changes.clone();
        let listener = tokio::spawn(async move {
            loop {
                // `try_recv` is `None` after the connection was lost (it reconnects on the next
                // call): a notification may have been missed, so followers re-read.
                match listener.try_recv().await {
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
            changes,
            listener,
        })
    }

    #[allow(dead_code)]
    /// Notifies every daemon on the database, commits `tx`, and tells this one's followers.
    async fn commit(&self, mut tx: sqlx::Transaction<'_, Postgres>) -> Result<()> {
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(CHANNEL)
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

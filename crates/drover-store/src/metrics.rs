//! What the daemon's Prometheus metrics read at scrape time (docs/design.md §10): usage summed
//! per model, team and pool (the same rows `drover usage` sums), and tasks counted per state.

use crate::error::Result;
use async_trait::async_trait;
use drover_types::TaskState;

/// The usage rows of one (model, team, pool), summed.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageTotal {
    pub model: String,
    pub team: Option<String>,
    pub pool: Option<String>,
    pub requests: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_read_tokens: i64,
    pub cache_write_tokens: i64,
    /// The priced rows' cost (a row without a price adds nothing).
    pub cost_usd: f64,
}

#[async_trait]
pub trait MetricsStore: Send + Sync {
    /// Usage summed per (model, team, pool), ordered by them; only `team`'s when given.
    async fn usage_totals(&self, team: Option<&str>) -> Result<Vec<UsageTotal>>;
    /// How many tasks are in each state (states without tasks left out); only `team`'s when
    /// given.
    async fn task_counts(&self, team: Option<&str>) -> Result<Vec<(TaskState, i64)>>;
}

#[derive(sqlx::FromRow)]
pub(crate) struct TotalRow {
    model: String,
    team: Option<String>,
    pool: Option<String>,
    n: i64,
    i: i64,
    o: i64,
    cr: i64,
    cw: i64,
    usd: f64,
}

impl From<TotalRow> for UsageTotal {
    fn from(r: TotalRow) -> Self {
        UsageTotal {
            model: r.model,
            team: r.team,
            pool: r.pool,
            requests: r.n,
            input_tokens: r.i,
            output_tokens: r.o,
            cache_read_tokens: r.cr,
            cache_write_tokens: r.cw,
            cost_usd: r.usd,
        }
    }
}

/// `(state, count)` rows, each state parsed.
pub(crate) fn parse_counts(rows: Vec<(String, i64)>) -> Result<Vec<(TaskState, i64)>> {
    rows.into_iter()
        .map(|(s, n)| Ok((crate::rows::parse("state", s)?, n)))
        .collect()
}

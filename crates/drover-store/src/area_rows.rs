//! Rows of the areas other than tasks (teams and keys, audit and accounting, webhook deliveries,
//! usage sums, pool tasks), shared by the SQLite and PostgreSQL stores like `crate::rows`: both
//! schemas declare the same column names and types, so one struct decodes either.

use crate::error::{Result, StoreError};
use crate::usage::UsageLine;
use crate::webhooks::WebhookDelivery;
use drover_types::{
    AccountingRow, Actor, AuditRecord, KeyInfo, Scope, Tags, TeamInfo, ACCOUNTING_SCHEMA,
};

#[derive(sqlx::FromRow)]
pub(crate) struct TeamRow {
    name: String,
    max_usd_per_day: Option<f64>,
    max_usd_per_task: Option<f64>,
    allowed_models: Option<String>,
    webhook_url: Option<String>,
    allowed_repos: Option<String>,
    created_at: String,
}

impl TryFrom<TeamRow> for TeamInfo {
    type Error = StoreError;
    fn try_from(r: TeamRow) -> Result<TeamInfo> {
        Ok(TeamInfo {
            name: r.name,
            max_usd_per_day: r.max_usd_per_day,
            max_usd_per_task: r.max_usd_per_task,
            allowed_models: r
                .allowed_models
                .map(|m| serde_json::from_str(&m))
                .transpose()
                .map_err(|e| StoreError::Corrupt(format!("teams.allowed_models: {e}")))?,
            webhook_url: r.webhook_url,
            allowed_repos: r
                .allowed_repos
                .map(|m| serde_json::from_str(&m))
                .transpose()
                .map_err(|e| StoreError::Corrupt(format!("teams.allowed_repos: {e}")))?,
            created_at: r.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct KeyRow {
    id: String,
    team: String,
    name: Option<String>,
    scopes: String,
    created_at: String,
    last_used_at: Option<String>,
    pub(crate) expires_at: Option<String>,
    pub(crate) revoked_at: Option<String>,
    pub(crate) rotated_to: Option<String>,
}

impl TryFrom<KeyRow> for KeyInfo {
    type Error = StoreError;
    fn try_from(r: KeyRow) -> Result<KeyInfo> {
        let scopes: Vec<Scope> = serde_json::from_str(&r.scopes)
            .map_err(|e| StoreError::Corrupt(format!("api_keys.scopes: {e}")))?;
        Ok(KeyInfo {
            id: r.id,
            team: r.team,
            name: r.name,
            scopes,
            created_at: r.created_at,
            last_used_at: r.last_used_at,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
            rotated_to: r.rotated_to,
        })
    }
}

pub(crate) const KEY_COLS: &str =
    "id, team, name, scopes, created_at, last_used_at, expires_at, revoked_at, rotated_to";

#[derive(sqlx::FromRow)]
pub(crate) struct AuditRow {
    seq: i64,
    at: String,
    key_id: Option<String>,
    team: Option<String>,
    action: String,
    target: Option<String>,
    remote_addr: Option<String>,
    status: i64,
}

impl From<AuditRow> for AuditRecord {
    fn from(r: AuditRow) -> Self {
        AuditRecord {
            seq: r.seq,
            at: r.at,
            actor: Actor {
                key_id: r.key_id,
                team: r.team,
            },
            action: r.action,
            target: r.target,
            remote_addr: r.remote_addr,
            status: u16::try_from(r.status).unwrap_or(0),
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct AccountingSqlRow {
    id: String,
    created_by: Option<String>,
    team: Option<String>,
    repo: String,
    agent: String,
    model: Option<String>,
    started_at: Option<String>,
    finished_at: Option<String>,
    verdict: Option<String>,
    error_kind: Option<String>,
    tags: String,
    i: i64,
    o: i64,
    cr: i64,
    cw: i64,
    usd: Option<f64>,
    unpriced: i64,
}

impl TryFrom<AccountingSqlRow> for AccountingRow {
    type Error = StoreError;
    fn try_from(r: AccountingSqlRow) -> Result<Self> {
        let tags: Tags = serde_json::from_str(&r.tags)
            .map_err(|e| StoreError::Corrupt(format!("task {}: tags: {e}", r.id)))?;
        let duration_s = match (&r.started_at, &r.finished_at) {
            (Some(s), Some(f)) => seconds_between(s, f),
            _ => None,
        };
        let tokens = |n: i64| u64::try_from(n).unwrap_or(0);
        Ok(AccountingRow {
            schema: ACCOUNTING_SCHEMA,
            task_id: r.id,
            created_by: r.created_by,
            team: r.team,
            repo: r.repo,
            agent: r.agent,
            model: r.model,
            started_at: r.started_at,
            finished_at: r.finished_at,
            duration_s,
            input_tokens: tokens(r.i),
            output_tokens: tokens(r.o),
            cache_read_tokens: tokens(r.cr),
            cache_write_tokens: tokens(r.cw),
            // The same rule as `drover usage`: unknown if any response had no price.
            cost_usd: if r.unpriced > 0 {
                None
            } else {
                Some(r.usd.unwrap_or(0.0))
            },
            verdict: r.verdict,
            error_kind: r.error_kind,
            tags,
        })
    }
}

/// Seconds from `start` to `end` (RFC 3339), to the millisecond.
pub(crate) fn seconds_between(start: &str, end: &str) -> Option<f64> {
    let s = chrono::DateTime::parse_from_rfc3339(start).ok()?;
    let e = chrono::DateTime::parse_from_rfc3339(end).ok()?;
    let ms = (e - s).num_milliseconds().max(0);
    Some(ms as f64 / 1000.0)
}

#[derive(sqlx::FromRow)]
pub(crate) struct DeliveryRow {
    id: String,
    team: String,
    task_id: String,
    event: String,
    at: String,
    attempts: i64,
    next_at: String,
    last_status: Option<i64>,
    delivered_at: Option<String>,
}

impl From<DeliveryRow> for WebhookDelivery {
    fn from(r: DeliveryRow) -> Self {
        WebhookDelivery {
            id: r.id,
            team: r.team,
            task_id: r.task_id,
            event: r.event,
            at: r.at,
            attempts: u32::try_from(r.attempts).unwrap_or(0),
            next_at: r.next_at,
            last_status: r.last_status.and_then(|s| u16::try_from(s).ok()),
            delivered_at: r.delivered_at,
        }
    }
}

pub(crate) const DELIVERY_COLS: &str =
    "id, team, task_id, event, at, attempts, next_at, last_status, delivered_at";

#[derive(sqlx::FromRow)]
pub(crate) struct TaskSpent {
    pub(crate) usd: f64,
    pub(crate) tokens: i64,
}

#[derive(sqlx::FromRow)]
pub(crate) struct ReportRow {
    k: String,
    n: i64,
    i: i64,
    o: i64,
    cr: i64,
    cw: i64,
    usd: Option<f64>,
    unpriced: i64,
}

impl From<ReportRow> for UsageLine {
    fn from(r: ReportRow) -> Self {
        UsageLine {
            key: r.k,
            requests: r.n,
            input_tokens: r.i,
            output_tokens: r.o,
            cache_read_tokens: r.cr,
            cache_write_tokens: r.cw,
            cost_usd: if r.unpriced > 0 { None } else { r.usd },
        }
    }
}

/// What the counters need of each of the pool's tasks.
#[derive(sqlx::FromRow)]
pub(crate) struct PoolTaskRow {
    pub(crate) state: String,
    pub(crate) verdict: Option<String>,
    pub(crate) reason: Option<String>,
    pub(crate) cost_usd: Option<f64>,
    pub(crate) finished_at: Option<String>,
}

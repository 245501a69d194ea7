//! The team server's shapes (docs/design.md §7): teams, API keys and their scopes, the audit
//! log and the accounting rows of `drover audit export`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

vocab! {
    /// What an API key may do (docs/design.md §7). A key holds a set of these; `admin` holds
    /// them all for its own team and also manages its team's keys.
    pub enum Scope ("scope") {
        /// Read tasks, their events, logs and results.
        TasksRead = "tasks:read",
        /// Create, message, stop and remove tasks.
        TasksWrite = "tasks:write",
        /// Start, stop and resume pools (batches take the tasks scopes).
        PoolsWrite = "pools:write",
        /// Read metered usage and dollars.
        UsageRead = "usage:read",
        /// Read the audit log and the accounting export.
        AuditRead = "audit:read",
        /// Manage the team's keys and settings; implies every other scope.
        Admin = "admin",
    }
}

/// A task's tags (`{"customer": "acme"}`): from the request into the task, its usage rows and
/// its accounting row (`drover usage --by tag:customer`).
pub type Tags = BTreeMap<String, String>;

/// A team (`drover team ls --json`, `GET /v1/teams`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TeamInfo {
    pub name: String,
    /// The most the team's tasks may spend per UTC day, in dollars.
    pub max_usd_per_day: Option<f64>,
    /// The most one task of the team may spend, in dollars (a task's own budget may be lower).
    pub max_usd_per_task: Option<f64>,
    /// The models the team's tasks may use (`None`: any).
    pub allowed_models: Option<Vec<String>>,
    /// Called on task end and on `needs_input` (docs/design.md §7, webhooks).
    pub webhook_url: Option<String>,
    /// The repositories the team's tasks and pools may use (`None`: any the daemon can reach):
    /// absolute directories (a repo at or under one) or URL prefixes (`https://git.example.com/acme/`).
    /// Set by the host owner only.
    #[serde(default)]
    pub allowed_repos: Option<Vec<String>>,
    pub created_at: String,
}

/// `POST /v1/teams` (`drover team create NAME …`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTeamRequest {
    pub name: String,
    #[serde(default)]
    pub max_usd_per_day: Option<f64>,
    #[serde(default)]
    pub max_usd_per_task: Option<f64>,
    #[serde(default)]
    pub allowed_models: Option<Vec<String>>,
    #[serde(default)]
    pub webhook_url: Option<String>,
    #[serde(default)]
    pub allowed_repos: Option<Vec<String>>,
}

/// `PATCH /v1/teams/{name}` (`drover team update NAME …`): a partial body — an absent field
/// stays as it is, `null` clears it, a value replaces it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTeamRequest {
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_usd_per_day: Option<Option<f64>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_usd_per_task: Option<Option<f64>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub allowed_models: Option<Option<Vec<String>>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub webhook_url: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub allowed_repos: Option<Option<Vec<String>>>,
}

/// A field that is present (`null` included): `Some(value or None)`; absent is the default.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// `GET /v1/teams/{name}/webhook-secret` (`drover team webhook-secret NAME`): the key a
/// receiver checks `Drover-Signature` with (derived, never stored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WebhookSecret {
    pub team: String,
    pub secret: String,
}

/// An API key as listed (`drover key ls --json`, `GET /v1/keys`): never the key itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct KeyInfo {
    /// Public id (`key_…`), what audit records and `created_by` name.
    pub id: String,
    pub team: String,
    pub name: Option<String>,
    pub scopes: Vec<Scope>,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
    /// The key that replaced this one (`drover key rotate`); this one then expires at
    /// `expires_at` (the end of the overlap).
    pub rotated_to: Option<String>,
}

/// `POST /v1/keys` (`drover key create`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    pub team: String,
    /// Default: `tasks:read` + `tasks:write`.
    #[serde(default)]
    pub scopes: Vec<Scope>,
    #[serde(default)]
    pub name: Option<String>,
    /// Seconds until the key expires (`--expires 30d`); none: it does not expire.
    #[serde(default)]
    pub expires_secs: Option<u64>,
}

/// `POST /v1/keys/{id}/rotate`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKeyRequest {
    /// How long the old key keeps working, in seconds (default 24 h).
    #[serde(default)]
    pub overlap_secs: Option<u64>,
}

/// The default overlap of `drover key rotate`.
pub const DEFAULT_ROTATE_OVERLAP_SECS: u64 = 24 * 3600;

/// A key as created or rotated: the secret, shown this once, and its listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NewKey {
    /// `drv_…`: shown once, stored only as a hash.
    pub key: String,
    #[serde(flatten)]
    pub info: KeyInfo,
}

/// Who made a call: the key and its team; both `None` for the host owner (the Unix socket).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Actor {
    pub key_id: Option<String>,
    pub team: Option<String>,
}

/// One append-only audit record (docs/design.md §7): every mutating call, every webhook
/// delivery. Never holds a key, token or provider key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditRecord {
    pub seq: i64,
    pub at: String,
    pub actor: Actor,
    /// What was done: `task.create`, `task.stop`, `key.rotate`, `webhook.deliver`, …
    pub action: String,
    /// What it was done to: a task id, a key id, a team or pool name.
    pub target: Option<String>,
    /// The caller's address (`ip:port`; `unix` for the admin socket).
    pub remote_addr: Option<String>,
    /// The HTTP status answered (for a webhook delivery: the receiver's, 0 if unreachable).
    pub status: u16,
}

/// A page of the audit log (`GET /v1/audit`, `drover audit --json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditPage {
    pub records: Vec<AuditRecord>,
    /// Pass as `cursor=` for the next page; `None` on the last one.
    pub next_cursor: Option<String>,
}

vocab! {
    /// The formats of `drover audit export` (`GET /v1/audit/export?format=`).
    #[derive(Default)]
    pub enum ExportFormat ("export format") {
        /// One JSON object per line.
        #[default]
        Ndjson = "ndjson",
        /// RFC 4180, a header row of the field names in schema order.
        Csv = "csv",
    }
}

/// [`AccountingRow`]'s field names in schema order (the CSV header; docs/accounting.md).
pub const ACCOUNTING_FIELDS: [&str; 18] = [
    "schema",
    "task_id",
    "created_by",
    "team",
    "repo",
    "agent",
    "model",
    "started_at",
    "finished_at",
    "duration_s",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost_usd",
    "verdict",
    "error_kind",
    "tags",
];

/// The version of [`AccountingRow`] (its `schema` field); bumped on any change of its fields'
/// names or meanings (docs/accounting.md).
pub const ACCOUNTING_SCHEMA: u32 = 1;

/// One finished task's bill (`drover audit export`, docs/design.md §7 and docs/accounting.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AccountingRow {
    pub schema: u32,
    pub task_id: String,
    /// The key id that created the task (`None`: the host owner, or a pool).
    pub created_by: Option<String>,
    pub team: Option<String>,
    pub repo: String,
    pub agent: String,
    pub model: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub duration_s: Option<f64>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    pub cost_usd: Option<f64>,
    pub verdict: Option<String>,
    pub error_kind: Option<String>,
    pub tags: Tags,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounting_fields_are_the_rows_json_keys_in_order() {
        let row = AccountingRow {
            schema: ACCOUNTING_SCHEMA,
            task_id: "t".into(),
            created_by: None,
            team: None,
            repo: "r".into(),
            agent: "a".into(),
            model: None,
            started_at: None,
            finished_at: None,
            duration_s: None,
            input_tokens: 0,
            output_tokens: 0,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
            cost_usd: None,
            verdict: None,
            error_kind: None,
            tags: Tags::new(),
        };
        let json = serde_json::to_string(&row).unwrap_or_default();
        let at: Vec<usize> = ACCOUNTING_FIELDS
            .iter()
            .map(|f| json.find(&format!("\"{f}\":")).unwrap_or(usize::MAX))
            .collect();
        assert!(at.iter().all(|&i| i != usize::MAX), "{json}");
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{json}");
        let n = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&json)
            .map(|m| m.len())
            .unwrap_or(0);
        assert_eq!(n, ACCOUNTING_FIELDS.len());
    }

    #[test]
    fn a_team_update_tells_absent_from_null() {
        let u: UpdateTeamRequest =
            serde_json::from_str(r#"{"max_usd_per_day": null, "max_usd_per_task": 2.5}"#)
                .unwrap_or_default();
        assert_eq!(u.max_usd_per_day, Some(None));
        assert_eq!(u.max_usd_per_task, Some(Some(2.5)));
        assert_eq!(u.allowed_models, None);
        assert_eq!(u.webhook_url, None);
        assert!(serde_json::from_str::<UpdateTeamRequest>(r#"{"name": "x"}"#).is_err());
        let back = serde_json::to_value(&u).unwrap_or_default();
        assert_eq!(
            back,
            serde_json::json!({"max_usd_per_day": null, "max_usd_per_task": 2.5})
        );
    }

    #[test]
    fn scopes_are_their_contract_names() {
        assert_eq!(
            Scope::NAMES,
            &[
                "tasks:read",
                "tasks:write",
                "pools:write",
                "usage:read",
                "audit:read",
                "admin"
            ]
        );
        assert_eq!(
            serde_json::to_string(&Scope::TasksWrite).ok().as_deref(),
            Some("\"tasks:write\"")
        );
    }
}

use serde::{Deserialize, Serialize};

/// `POST /v1/tasks` (docs/design.md §7). The wire names are the contract: `task` (alias
/// `prompt`), `ref` (alias `base_ref`), `budget {maxUsd, maxTokens}` (the old top-level
/// `max_usd`/`max_tokens` are still taken), `timeout` in seconds or as a duration string
/// (`"30m"`; alias `timeout_secs`). An unknown field is refused (400).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// A local directory (resolved to an absolute path by the CLI), a git URL, or `owner/name`
    /// on the default forge. May be left out when `repos` is given (then `repos[0]`).
    #[serde(default)]
    pub repo: String,
    /// A multi-repo task (docs/design.md §9): its repositories, each as `repo` (at most 16);
    /// the first is the task's `repo` (`repo`, if given too, must equal it). One checkout each
    /// in the agent's workspace, one branch `drover/<id>` each, all at `ref`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repos: Vec<String>,
    /// Defaults to `HEAD`.
    #[serde(
        rename = "ref",
        alias = "base_ref",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub base_ref: Option<String>,
    /// `claude` (default) or `command`.
    pub agent: Option<String>,
    pub cmd: Option<String>,
    pub model: Option<String>,
    pub name: Option<String>,
    #[serde(default)]
    pub verify: Vec<String>,
    /// How many times a failing gate's output goes back to the agent (default 2).
    pub verify_rounds: Option<u32>,
    /// Judge model for this task (default: the daemon's `models.judge`, if any).
    pub judge_model: Option<String>,
    /// This task's budget (`{maxUsd, maxTokens}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<RequestBudget>,
    /// The older spelling of `budget.maxUsd` (give one or the other).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_usd: Option<f64>,
    /// The older spelling of `budget.maxTokens`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// What the agent is asked to do.
    #[serde(rename = "task", alias = "prompt")]
    pub prompt: String,
    /// Who asked (the owner's CLI sends `$USER`); over TCP the daemon sets the key's id and
    /// ignores this.
    pub created_by: Option<String>,
    /// This task's own provider key (`run --api-key-env VAR`). The daemon keeps it in memory
    /// only; it is never stored, logged or given to the agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<Redacted>,
    pub team: Option<String>,
    /// Permission policy for this task (default: the daemon's `permissions`).
    pub permissions: Option<crate::PermissionPolicy>,
    /// Wall-clock limit (`--timeout`; default: config `task_timeout`, else none): seconds, or a
    /// duration string such as `"30m"`.
    #[serde(
        rename = "timeout",
        alias = "timeout_secs",
        default,
        deserialize_with = "crate::clock::de_secs",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout_secs: Option<u64>,
    /// Stall limit (`--stall-timeout`; default: config `stall_timeout`, 30 min), as `timeout`.
    #[serde(
        alias = "stall_timeout",
        default,
        deserialize_with = "crate::clock::de_secs",
        skip_serializing_if = "Option::is_none"
    )]
    pub stall_timeout_secs: Option<u64>,
    /// Protected globs (`--protect`), added to the daemon's `protect` list.
    #[serde(default)]
    pub protect: Vec<String>,
    /// Resource limits (`--memory` in bytes, `--cpus`, `--pids`; default: the config's
    /// `[sandbox]` ones).
    #[serde(default)]
    pub memory_bytes: Option<u64>,
    #[serde(default)]
    pub cpus: Option<f64>,
    #[serde(default)]
    pub pids: Option<u64>,
    /// Free-form labels (`{"customer": "acme"}`) carried into usage and accounting rows.
    #[serde(default)]
    pub tags: crate::Tags,
    /// Open a pull (merge) request once the task succeeded (`--pr …`, docs/design.md §9):
    /// `{draft, base, title, allow_ci_changes}`, or `true` for the defaults; absent, `null` or
    /// `false`: none. The repository must be on a configured forge.
    #[serde(
        default,
        deserialize_with = "crate::forge::de_pr",
        skip_serializing_if = "Option::is_none"
    )]
    pub pr: Option<crate::PrOptions>,
}

impl RunRequest {
    /// The budget asked for, from `budget` or the older top-level fields; both at once is an
    /// error naming them.
    pub fn budget(&self) -> Result<RequestBudget, String> {
        let b = self.budget.unwrap_or_default();
        if (b.max_usd.is_some() && self.max_usd.is_some())
            || (b.max_tokens.is_some() && self.max_tokens.is_some())
        {
            return Err(
                "give the budget once: `budget: {maxUsd, maxTokens}` or the older top-level `max_usd`/`max_tokens`, not both".into(),
            );
        }
        Ok(RequestBudget {
            max_usd: b.max_usd.or(self.max_usd),
            max_tokens: b.max_tokens.or(self.max_tokens),
        })
    }
}

/// A task's budget in a request: `{maxUsd, maxTokens}` (also spelled `max_usd`, `max_tokens`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestBudget {
    #[serde(
        rename = "maxUsd",
        alias = "max_usd",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub max_usd: Option<f64>,
    #[serde(
        rename = "maxTokens",
        alias = "max_tokens",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub max_tokens: Option<u64>,
}

/// `POST /v1/tasks/{id}/send`
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SendRequest {
    pub message: Option<String>,
    /// Answer the pending permission request.
    #[serde(default)]
    pub allow: bool,
    #[serde(default)]
    pub deny: bool,
}

/// `POST /v1/daemon/stop`
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StopDaemonRequest {
    #[serde(default)]
    pub stop_tasks: bool,
}

/// What went wrong, in every API error body (`kind`). The daemon derives the HTTP status from
/// it (drover-daemon's `api/error.rs`); the CLI derives its exit code from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApiErrorKind {
    /// The request is wrong: a bad field, an unknown agent, a repo that is not one (400).
    Invalid,
    /// No such task, pool or route (404).
    NotFound,
    /// The request does not fit the state: a finished task, a pool that exists (409).
    Conflict,
    /// The body or the prompt is over its limit (413).
    TooLarge,
    /// The request body did not arrive in time (408).
    Timeout,
    /// The daemon is at its connection limit; retry (503).
    Busy,
    /// Not allowed from where the request came: from inside a task's sandbox (its task-scoped
    /// control endpoint) drover only allows `drover lock` and reading that task; over TCP, the
    /// key lacks the route's scope or acts for another team (403).
    Forbidden,
    /// Over TCP: no API key, or one that is unknown, expired or revoked (401).
    Unauthorized,
    /// The body is well-formed but a field's value is not acceptable: a repo that does not
    /// resolve, a model the team may not use (422).
    InvalidField,
    /// A budget or a rate limit refuses the request for now (429).
    RateLimited,
    /// Something broke inside the daemon (500).
    Internal,
    /// No agent may start: the host cannot confine it and `sandbox.isolation` is not `"none"`
    /// (503; the message names the missing feature and its remedy).
    IsolationUnavailable,
    /// A kind this client does not know (a newer daemon): judged by the HTTP status.
    #[serde(other)]
    Unknown,
}

impl ApiErrorKind {
    /// The wire name (`not_found`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ApiErrorKind::Invalid => "invalid",
            ApiErrorKind::NotFound => "not_found",
            ApiErrorKind::Conflict => "conflict",
            ApiErrorKind::TooLarge => "too_large",
            ApiErrorKind::Timeout => "timeout",
            ApiErrorKind::Busy => "busy",
            ApiErrorKind::Forbidden => "forbidden",
            ApiErrorKind::Unauthorized => "unauthorized",
            ApiErrorKind::InvalidField => "invalid_field",
            ApiErrorKind::RateLimited => "rate_limited",
            ApiErrorKind::Internal => "internal",
            ApiErrorKind::IsolationUnavailable => "isolation_unavailable",
            ApiErrorKind::Unknown => "unknown",
        }
    }
}

/// Every API error body.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApiError {
    pub kind: ApiErrorKind,
    pub error: String,
    pub hint: Option<String>,
}

/// `GET /v1/status`
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DaemonStatus {
    pub pid: u32,
    pub version: String,
    pub home: String,
    pub slots: usize,
    pub running: usize,
    pub queued: usize,
    /// The sandbox kind the daemon's mode resolved to.
    pub sandbox_mode: crate::SandboxKind,
    pub sandbox_reason: String,
}

/// `POST /v1/pools`
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PoolRequest {
    pub name: String,
    pub slots: u32,
    /// `{n}` in the prompt becomes the refill's number (1, 2, …).
    pub prompt: String,
    pub repo: String,
    pub base_ref: Option<String>,
    pub agent: Option<String>,
    pub cmd: Option<String>,
    pub model: Option<String>,
    pub judge_model: Option<String>,
    /// Stop after this many tasks.
    pub count: Option<u64>,
    /// Stop dispatching after this many consecutive failures (default 3).
    pub max_failures: Option<u32>,
    pub notify: Option<String>,
    #[serde(default)]
    pub verify: Vec<String>,
    pub verify_rounds: Option<u32>,
    pub max_usd: Option<f64>,
    pub permissions: Option<crate::PermissionPolicy>,
    /// Models the pool's tasks may use (the gateway refuses others); empty = any.
    #[serde(default)]
    pub allowed_models: Vec<String>,
    /// What the failure streak does to running tasks (default: let them finish).
    pub on_failures: Option<crate::FailurePolicy>,
    /// The pool's tasks' clocks (`--timeout`, `--stall-timeout`), as on [`RunRequest`].
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    #[serde(default)]
    pub stall_timeout_secs: Option<u64>,
    /// Protected globs (`--protect`) for every task of the pool.
    #[serde(default)]
    pub protect: Vec<String>,
    /// The pool's tasks' limits, as on [`RunRequest`].
    #[serde(default)]
    pub memory_bytes: Option<u64>,
    #[serde(default)]
    pub cpus: Option<f64>,
    #[serde(default)]
    pub pids: Option<u64>,
    /// Every task of the pool opens a pull request once it succeeded, as `pr` on
    /// [`RunRequest`].
    #[serde(
        default,
        deserialize_with = "crate::forge::de_pr",
        skip_serializing_if = "Option::is_none"
    )]
    pub pr: Option<crate::PrOptions>,
}

/// `POST /v1/pools/{name}/stop`
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PoolStopRequest {
    /// Also stop the pool's running tasks (default: let them finish).
    #[serde(default)]
    pub hard: bool,
}

/// A secret on the wire between the CLI and the daemon: serialized as the plain string (it has to
/// arrive), but `Debug` never shows it, so a debug print of a request cannot leak it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct Redacted(pub String);

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"***\"")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_key_reaches_the_daemon_but_never_a_debug_print() {
        let req = RunRequest {
            api_key: Some(Redacted("sk-secret".into())),
            ..Default::default()
        };
        assert!(!format!("{req:?}").contains("sk-secret"));
        let wire = serde_json::to_string(&req).unwrap();
        let back: RunRequest = serde_json::from_str(&wire).unwrap();
        assert_eq!(back.api_key.unwrap().0, "sk-secret");
    }
}

/// The largest prompt `POST /v1/tasks` takes (bytes); a bigger one is refused with 413.
pub const MAX_PROMPT_BYTES: usize = 1 << 20;
/// `GET /v1/tasks` page size when `limit` is not given, and the most it may ask for.
pub const LIST_DEFAULT_LIMIT: usize = 100;
pub const LIST_MAX_LIMIT: usize = 500;
/// `GET /v1/tasks/{id}/events?after=` (without `follow`) answers at most this many events; the
/// next page starts after the last `seq`.
pub const EVENTS_MAX_LIMIT: usize = 1000;
/// ... and at most about this many bytes of event data (always at least one event).
pub const EVENTS_PAGE_BYTES: usize = 1 << 20;

/// `GET /v1/tasks?all=&state=&pool=&tag=&team=&limit=&cursor=`: one page of task summaries in
/// queue order. A summary is a [`crate::Task`] whose `prompt`, `result` and `cmd` are cut to 500
/// characters (plus `…`); `GET /v1/tasks/{id}` returns the whole task. `next_cursor` is the
/// `cursor` of the next page, `None` on the last one.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskPage {
    pub tasks: Vec<crate::Task>,
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod api_error_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn kinds_are_todays_strings_and_unknown_ones_are_kept_apart() {
        for kind in [
            ApiErrorKind::Invalid,
            ApiErrorKind::NotFound,
            ApiErrorKind::Conflict,
            ApiErrorKind::TooLarge,
            ApiErrorKind::Timeout,
            ApiErrorKind::Busy,
            ApiErrorKind::Forbidden,
            ApiErrorKind::Unauthorized,
            ApiErrorKind::InvalidField,
            ApiErrorKind::RateLimited,
            ApiErrorKind::IsolationUnavailable,
            ApiErrorKind::Internal,
        ] {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            assert_eq!(serde_json::from_str::<ApiErrorKind>(&json).unwrap(), kind);
        }
        let body = r#"{"kind":"busy","error":"the daemon is at its connection limit","hint":"retry in a few seconds"}"#;
        let e: ApiError = serde_json::from_str(body).unwrap();
        assert_eq!(e.kind, ApiErrorKind::Busy);
        assert_eq!(serde_json::to_string(&e).unwrap(), body, "byte-identical");
        let newer: ApiError =
            serde_json::from_str(r#"{"kind":"from_the_future","error":"x","hint":null}"#).unwrap();
        assert_eq!(newer.kind, ApiErrorKind::Unknown);
    }
}

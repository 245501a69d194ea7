//! `GET /v1/openapi.json`: the HTTP API as an OpenAPI 3.1 document (docs/design.md §7), built
//! here in one place with utoipa's builders. Bodies and answers are the Rust types themselves
//! (`utoipa::ToSchema` next to their serde derives in drover-types and drover-store), so a field
//! added to a type is in the document; the routes, their parameters, scopes and error statuses
//! are listed in [`routes`]. The tests check that this list equals the routes `api/mod.rs`
//! registers, and that `clients/typescript/openapi.json` (from which the TypeScript client's
//! types are generated) equals [`document`] (`DROVER_BLESS=1` rewrites it).
//!
//! Each operation carries `x-drover-scope`: the API key scope it needs over TCP (`none`: no key;
//! `owner`: only the host owner, on the Unix socket). The Unix socket needs no key.

use axum::Json;
use drover_types::Scope;
use serde::{Deserialize, Serialize};
use utoipa::openapi::path::{
    HttpMethod, Operation, OperationBuilder, ParameterBuilder, ParameterIn,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    extensions::ExtensionsBuilder, ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi,
    OpenApiBuilder, Paths, RefOr, Required, ResponseBuilder,
};
use utoipa::ToSchema;

/// The name of the bearer security scheme in the document.
pub const SECURITY_SCHEME: &str = "apiKey";

/// Who may call a route over TCP (docs/design.md §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No key needed.
    Public,
    /// A key of the right team holding this scope (`admin` holds them all).
    Scope(Scope),
    /// The host owner only (the Unix socket): every key gets 403.
    Owner,
    /// Any valid key, whatever its scopes.
    AnyKey,
}

impl Access {
    /// The `x-drover-scope` value.
    pub fn label(self) -> &'static str {
        match self {
            Access::Public => "none",
            Access::Scope(s) => s.as_str(),
            Access::Owner => "owner",
            Access::AnyKey => "any",
        }
    }
}

/// `GET /v1/health`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    pub ok: bool,
    /// The daemon's version.
    pub version: String,
}

/// `DELETE /v1/tasks/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Removed {
    /// The removed task's id.
    pub removed: String,
}

/// `POST /v1/daemon/stop`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DaemonStopping {
    pub stopping: bool,
    /// Tasks stopped first (`stop_tasks`).
    pub stopped_tasks: Vec<String>,
}

/// One route of the document: what [`routes`] lists.
pub struct Route {
    pub method: HttpMethod,
    pub path: &'static str,
    pub access: Access,
    operation: Operation,
}

/// A JSON body or answer of type `T` (a `$ref` to its component).
fn json_of<T: ToSchema>() -> RefOr<Schema> {
    RefOr::Ref(utoipa::openapi::Ref::from_schema_name(T::name()))
}

fn array_of<T: ToSchema>() -> RefOr<Schema> {
    ArrayBuilder::new().items(json_of::<T>()).into()
}

fn scalar(t: Type) -> RefOr<Schema> {
    ObjectBuilder::new().schema_type(t).into()
}

/// An operation being described.
struct Op {
    b: OperationBuilder,
    access: Access,
    errors: Vec<u16>,
}

fn op(id: &str, summary: &str, access: Access) -> Op {
    let mut b = OperationBuilder::new()
        .operation_id(Some(id))
        .summary(Some(summary))
        .extensions(Some(
            ExtensionsBuilder::new()
                .add("x-drover-scope", access.label())
                .build(),
        ));
    b = match access {
        // `security: []`: no key.
        Access::Public => b.securities(Some(Vec::<SecurityRequirement>::new())),
        _ => b.security(SecurityRequirement::new(
            SECURITY_SCHEME,
            Vec::<String>::new(),
        )),
    };
    let errors = match access {
        Access::Public => vec![],
        _ => vec![401, 403],
    };
    Op { b, access, errors }
}

impl Op {
    fn tag(mut self, tag: &str) -> Self {
        self.b = self.b.tag(tag);
        self
    }

    fn describe(mut self, text: &str) -> Self {
        self.b = self.b.description(Some(text));
        self
    }

    fn param(mut self, at: ParameterIn, name: &str, schema: RefOr<Schema>, what: &str) -> Self {
        let required = match at {
            ParameterIn::Path => Required::True,
            _ => Required::False,
        };
        self.b = self.b.parameter(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(at)
                .required(required)
                .description(Some(what))
                .schema(Some(schema)),
        );
        self
    }

    fn path(self, name: &str, what: &str) -> Self {
        self.param(ParameterIn::Path, name, scalar(Type::String), what)
            .errors(&[404])
    }

    fn query(self, name: &str, t: Type, what: &str) -> Self {
        self.param(ParameterIn::Query, name, scalar(t), what)
            .errors(&[400])
    }

    fn header(self, name: &str, t: Type, what: &str) -> Self {
        self.param(ParameterIn::Header, name, scalar(t), what)
    }

    /// A JSON body of type `T` (`required`: whether it may be left out).
    fn body<T: ToSchema>(mut self, required: bool) -> Self {
        self.b = self.b.request_body(Some(
            RequestBodyBuilder::new()
                .required(Some(if required {
                    Required::True
                } else {
                    Required::False
                }))
                .content(
                    "application/json",
                    ContentBuilder::new().schema(Some(json_of::<T>())).build(),
                )
                .build(),
        ));
        self.errors(&[400, 413])
    }

    fn errors(mut self, statuses: &[u16]) -> Self {
        self.errors.extend_from_slice(statuses);
        self
    }

    /// The success answer: `status`, `what`, and its body per content type.
    fn ok(mut self, status: u16, what: &str, content: &[(&str, RefOr<Schema>)]) -> Self {
        let mut r = ResponseBuilder::new().description(what);
        for (ty, schema) in content {
            r = r.content(
                *ty,
                ContentBuilder::new().schema(Some(schema.clone())).build(),
            );
        }
        self.b = self.b.response(status.to_string(), r.build());
        self
    }

    fn route(mut self, method: HttpMethod, path: &'static str) -> Route {
        self.errors.sort_unstable();
        self.errors.dedup();
        for status in &self.errors {
            self.b = self.b.response(
                status.to_string(),
                ResponseBuilder::new()
                    .description(error_meaning(*status))
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(json_of::<drover_types::ApiError>()))
                            .build(),
                    )
                    .build(),
            );
        }
        Route {
            method,
            path,
            access: self.access,
            operation: self.b.build(),
        }
    }
}

/// What each documented error status means (docs/design.md §7).
fn error_meaning(status: u16) -> &'static str {
    match status {
        400 => "malformed: bad JSON, an unknown field, a bad query value (`invalid`)",
        401 => "over TCP: no key, or an unknown, expired or revoked one (`unauthorized`)",
        403 => "the key lacks the route's scope, acts for another team, or the route is the host owner's (`forbidden`)",
        404 => "unknown, or another team's (`not_found`; the same answer either way)",
        409 => "conflicts with the current state (`conflict`)",
        413 => "the body or the prompt is over its limit (`too_large`)",
        422 => "a well-formed field whose value is not acceptable (`invalid_field`)",
        429 => "a budget or rate limit refuses it for now (`rate_limited`)",
        _ => "error",
    }
}

const SSE_NOTE: &str =
    "With `Accept: text/event-stream` or `follow=true`: Server-Sent Events. Each \
event's `id:` is its `seq`, `event:` its kind, `data:` the Event JSON; `Last-Event-ID` (or \
`after`) resumes after that seq (replayed from the store, then live); comment lines are \
heartbeats; an `end` event follows the last event once the task is terminal, then the stream \
closes. Otherwise a JSON page of at most 1,000 events (about 1 MiB); the next page is `after` = \
the last seq.";

/// Every route the daemon serves, as documented. `api/mod.rs` registers the same set (tested).
pub fn routes() -> Vec<Route> {
    use Access::{Owner, Public};
    use HttpMethod::{Delete, Get, Patch, Post};
    let read = Access::Scope(Scope::TasksRead);
    let write = Access::Scope(Scope::TasksWrite);
    let pools = Access::Scope(Scope::PoolsWrite);
    let admin = Access::Scope(Scope::Admin);
    let sse = ("text/event-stream", scalar(Type::String));
    vec![
        op("openapi", "This document", Public)
            .tag("meta")
            .ok(200, "the OpenAPI 3.1 document", &[("application/json", scalar(Type::Object))])
            .route(Get, "/v1/openapi.json"),
        op("health", "Liveness and version", Public)
            .tag("meta")
            .ok(200, "the daemon answers", &[("application/json", json_of::<Health>())])
            .route(Get, "/v1/health"),
        op("status", "The daemon's status", Owner)
            .tag("daemon")
            .ok(200, "the status", &[("application/json", json_of::<drover_types::DaemonStatus>())])
            .route(Get, "/v1/status"),
        op("stopDaemon", "Stop the daemon", Owner)
            .tag("daemon")
            .body::<drover_types::StopDaemonRequest>(false)
            .ok(200, "stopping", &[("application/json", json_of::<DaemonStopping>())])
            .route(Post, "/v1/daemon/stop"),
        op("createTask", "Create a task", write)
            .tag("tasks")
            .header("Idempotency-Key", Type::String, "the same key and body give the same task (200); another body: 409")
            .header("X-Provider-Key", Type::String, "this task's own provider key (memory only; never stored, logged or echoed)")
            .body::<drover_types::RunRequest>(true)
            .errors(&[409, 422, 429])
            .ok(201, "the task, created", &[("application/json", json_of::<drover_types::Task>())])
            .ok(200, "an idempotent replay: the task created before", &[("application/json", json_of::<drover_types::Task>())])
            .route(Post, "/v1/tasks"),
        op("listTasks", "A page of task summaries", read)
            .tag("tasks")
            .describe("Summaries cut `prompt`, `result` and `cmd` to 500 characters; a key sees only its team's tasks.")
            .query("state", Type::String, "only tasks in this state (queued, running, succeeded, …)")
            .query("pool", Type::String, "only this pool's tasks")
            .query("team", Type::String, "only this team's tasks (a key: its own team's only; another team's is an empty page)")
            .query("tag", Type::String, "`NAME:VALUE`: only tasks with this tag")
            .query("all", Type::Boolean, "every task, not only active ones and those finished in the last hour (with a filter: every match)")
            .query("limit", Type::Integer, "1 to 500 (default 100)")
            .query("cursor", Type::String, "the previous page's cursor")
            .ok(200, "a page", &[("application/json", json_of::<drover_types::TaskPage>())])
            .route(Get, "/v1/tasks"),
        op("getTask", "One task", read)
            .tag("tasks")
            .path("id", "the task id")
            .ok(200, "the whole task", &[("application/json", json_of::<drover_types::Task>())])
            .route(Get, "/v1/tasks/{id}"),
        op("removeTask", "Remove a task (its work is committed first)", write)
            .tag("tasks")
            .path("id", "the task id")
            .errors(&[409])
            .ok(200, "removed", &[("application/json", json_of::<Removed>())])
            .route(Delete, "/v1/tasks/{id}"),
        op("taskEvents", "A task's events: a JSON page, or a resumable SSE stream", read)
            .tag("tasks")
            .describe(SSE_NOTE)
            .path("id", "the task id")
            .query("after", Type::Integer, "events after this seq")
            .query("follow", Type::Boolean, "answer Server-Sent Events, live until the task ends")
            .query("limit", Type::Integer, "events per JSON page, 1 to 1,000")
            .query("before", Type::Integer, "JSON only: the `limit` events just before this seq, in seq order (the newest page: the last seq + 1; the next older page: its first seq)")
            .header("Last-Event-ID", Type::Integer, "SSE: resume after this seq")
            .ok(200, "events", &[("application/json", array_of::<drover_types::Event>()), sse])
            .route(Get, "/v1/tasks/{id}/events"),
        op("taskDiff", "The files the task changed against its base commit", read)
            .tag("tasks")
            .describe("While the task is active its live sandbox (untracked files included), once it is over the delivered commit; a multi-repo task's files name their checkout (`repo_dir`).")
            .path("id", "the task id")
            .errors(&[409])
            .ok(200, "the changed files", &[("application/json", json_of::<drover_types::web::TaskDiff>())])
            .route(Get, "/v1/tasks/{id}/diff"),
        op("taskDiffFile", "One changed file's unified diff (cut at 256 KiB)", read)
            .tag("tasks")
            .describe("`path` as the file list names it (relative, no `..`: else 400); a file the task did not change is a 404.")
            .path("id", "the task id")
            .query("path", Type::String, "the file, relative to its checkout")
            .query("repo_dir", Type::String, "a multi-repo task's checkout")
            .errors(&[409])
            .ok(200, "the patch", &[("application/json", json_of::<drover_types::web::DiffPatch>())])
            .route(Get, "/v1/tasks/{id}/diff/file"),
        op("fleet", "The fleet view: active tasks and the most recently finished", read)
            .tag("fleet")
            .describe("Every active task and the 200 most recently finished (`finished_omitted` counts the rest), each with its last line of activity. A key sees its team's tasks only.")
            .ok(200, "the fleet", &[("application/json", json_of::<drover_types::web::FleetSnapshot>())])
            .route(Get, "/v1/fleet"),
        op("fleetEvents", "The fleet view, live (Server-Sent Events)", read)
            .tag("fleet")
            .describe("`event: snapshot`, `id:` its version, `data:` a FleetSnapshot: one at once, then one after each change (at most about 4 a second; a slow reader gets the newest). Comment lines are heartbeats; the stream ends when the daemon stops.")
            .ok(200, "snapshots", &[("text/event-stream", scalar(Type::String))])
            .route(Get, "/v1/fleet/events"),
        op("waitTask", "Wait until the task is terminal", read)
            .tag("tasks")
            .path("id", "the task id")
            .query("timeout", Type::Number, "seconds, 0 to 300 (default 30); the task as it is then")
            .ok(200, "the task", &[("application/json", json_of::<drover_types::Task>())])
            .route(Get, "/v1/tasks/{id}/wait"),
        op("taskRaw", "Bytes of the task's raw output log", read)
            .tag("tasks")
            .path("id", "the task id")
            .query("stream", Type::String, "`stdout` or `stderr`")
            .query("offset", Type::Integer, "byte offset")
            .query("len", Type::Integer, "bytes")
            .ok(200, "the bytes", &[("application/octet-stream", scalar(Type::String))])
            .route(Get, "/v1/tasks/{id}/raw"),
        op("sendTask", "Send a message or a permission answer", write)
            .tag("tasks")
            .path("id", "the task id")
            .body::<drover_types::SendRequest>(true)
            .errors(&[409])
            .ok(200, "the task", &[("application/json", json_of::<drover_types::Task>())])
            .route(Post, "/v1/tasks/{id}/send"),
        op("stopTask", "Stop a task", write)
            .tag("tasks")
            .path("id", "the task id")
            .errors(&[409])
            .ok(200, "the task", &[("application/json", json_of::<drover_types::Task>())])
            .route(Post, "/v1/tasks/{id}/stop"),
        op("createPool", "Start a pool", pools)
            .tag("pools")
            .body::<drover_types::PoolRequest>(true)
            .errors(&[409, 422])
            .ok(200, "the pool", &[("application/json", json_of::<PoolView>())])
            .route(Post, "/v1/pools"),
        op("listPools", "Every pool", read)
            .tag("pools")
            .ok(200, "the pools", &[("application/json", array_of::<PoolView>())])
            .route(Get, "/v1/pools"),
        op("getPool", "One pool, with its latest 200 events", read)
            .tag("pools")
            .path("name", "the pool name")
            .ok(200, "the pool", &[("application/json", json_of::<PoolView>())])
            .route(Get, "/v1/pools/{name}"),
        op("stopPool", "Stop a pool", pools)
            .tag("pools")
            .path("name", "the pool name")
            .body::<drover_types::PoolStopRequest>(false)
            .ok(200, "the pool", &[("application/json", json_of::<PoolView>())])
            .route(Post, "/v1/pools/{name}/stop"),
        op("resumePool", "Resume a pool", pools)
            .tag("pools")
            .path("name", "the pool name")
            .ok(200, "the pool", &[("application/json", json_of::<PoolView>())])
            .route(Post, "/v1/pools/{name}/resume"),
        op("createBatch", "Start a batch: one task per repository", write)
            .tag("batches")
            .describe("Every repository is admitted as `POST /v1/tasks` admits its one, all before anything is stored: one bad repository is the 4xx naming it, and no batch. `slots`: at most that many of its tasks past `queued` at once, across every worker.")
            .body::<drover_types::BatchRequest>(true)
            .errors(&[409, 422])
            .ok(201, "the batch, created", &[("application/json", json_of::<drover_types::BatchView>())])
            .route(Post, "/v1/batches"),
        op("listBatches", "Every batch (a key: its team's)", read)
            .tag("batches")
            .ok(200, "the batches", &[("application/json", array_of::<drover_types::BatchView>())])
            .route(Get, "/v1/batches"),
        op("getBatch", "One batch: each repository's latest task, state, PR and cost", read)
            .tag("batches")
            .path("name", "the batch name")
            .ok(200, "the batch", &[("application/json", json_of::<drover_types::BatchView>())])
            .route(Get, "/v1/batches/{name}"),
        op("stopBatch", "Stop a batch: its queued tasks cancelled, its active ones stopped", write)
            .tag("batches")
            .path("name", "the batch name")
            .ok(200, "the batch", &[("application/json", json_of::<drover_types::BatchView>())])
            .route(Post, "/v1/batches/{name}/stop"),
        op("retryBatch", "A new task for each repository whose latest task failed, was cancelled or interrupted", write)
            .tag("batches")
            .path("name", "the batch name")
            .errors(&[422])
            .ok(200, "the new tasks and the batch", &[("application/json", json_of::<drover_types::BatchRetried>())])
            .route(Post, "/v1/batches/{name}/retry"),
        op("listLocks", "Build locks held and waited for", Owner)
            .tag("daemon")
            .ok(200, "the locks", &[("application/json", scalar(Type::Object))])
            .route(Get, "/v1/locks"),
        op("acquireLock", "Hold a build lock while the connection is open", Owner)
            .tag("daemon")
            .path("name", "the lock name")
            .query("slots", Type::Integer, "how many may hold it at once (default 1)")
            .query("holder", Type::String, "who holds it, in the lock list")
            .ok(200, "`granted` once held; the body stays open while it is held", &[("text/plain", scalar(Type::String))])
            .route(Post, "/v1/locks/{name}"),
        op("listWorkers", "The workers sharing this daemon's store (the host owner only)", Owner)
            .tag("daemon")
            .ok(200, "the workers, by name", &[("application/json", array_of::<drover_types::WorkerInfo>())])
            .route(Get, "/v1/workers"),
        op("createTeam", "Create a team (the host owner only)", Owner)
            .tag("teams")
            .body::<drover_types::CreateTeamRequest>(true)
            .errors(&[409, 422])
            .ok(201, "the team", &[("application/json", json_of::<drover_types::TeamInfo>())])
            .route(Post, "/v1/teams"),
        op("listTeams", "Teams (a key: its own)", admin)
            .tag("teams")
            .ok(200, "the teams", &[("application/json", array_of::<drover_types::TeamInfo>())])
            .route(Get, "/v1/teams"),
        op("getTeam", "One team", admin)
            .tag("teams")
            .path("name", "the team name")
            .ok(200, "the team", &[("application/json", json_of::<drover_types::TeamInfo>())])
            .route(Get, "/v1/teams/{name}"),
        op("updateTeam", "Change a team's budgets, models or webhook", admin)
            .tag("teams")
            .path("name", "the team name")
            .body::<drover_types::UpdateTeamRequest>(true)
            .errors(&[422])
            .ok(200, "the team", &[("application/json", json_of::<drover_types::TeamInfo>())])
            .route(Patch, "/v1/teams/{name}"),
        op("teamWebhookSecret", "The team's webhook signing secret", admin)
            .tag("teams")
            .path("name", "the team name")
            .ok(200, "the secret", &[("application/json", json_of::<drover_types::WebhookSecret>())])
            .route(Get, "/v1/teams/{name}/webhook-secret"),
        op("createKey", "Create an API key (its secret is shown once)", admin)
            .tag("keys")
            .body::<drover_types::CreateKeyRequest>(true)
            .errors(&[422])
            .ok(201, "the key and its secret", &[("application/json", json_of::<drover_types::NewKey>())])
            .route(Post, "/v1/keys"),
        op("listKeys", "API keys (never their secrets)", admin)
            .tag("keys")
            .query("team", Type::String, "only this team's (the host owner)")
            .ok(200, "the keys", &[("application/json", array_of::<drover_types::KeyInfo>())])
            .route(Get, "/v1/keys"),
        op("rotateKey", "A new key; the old one works for the overlap", admin)
            .tag("keys")
            .path("id", "the key id")
            .body::<drover_types::RotateKeyRequest>(false)
            .errors(&[409])
            .ok(201, "the new key and its secret", &[("application/json", json_of::<drover_types::NewKey>())])
            .route(Post, "/v1/keys/{id}/rotate"),
        op("revokeKey", "Revoke a key now", admin)
            .tag("keys")
            .path("id", "the key id")
            .ok(200, "the key", &[("application/json", json_of::<drover_types::KeyInfo>())])
            .route(Post, "/v1/keys/{id}/revoke"),
        op("deleteKey", "Revoke a key now (as POST …/revoke)", admin)
            .tag("keys")
            .path("id", "the key id")
            .ok(200, "the key", &[("application/json", json_of::<drover_types::KeyInfo>())])
            .route(Delete, "/v1/keys/{id}"),
        op("usage", "Metered usage and dollars", Access::Scope(Scope::UsageRead))
            .tag("usage")
            .query("by", Type::String, "task, pool, model, day, team or tag:NAME")
            .ok(200, "one line per group", &[("application/json", array_of::<drover_store::UsageLine>())])
            .route(Get, "/v1/usage"),
        op("budgets", "Every budget's burn-down: team daily budgets and active tasks' --max-usd", Access::Scope(Scope::UsageRead))
            .tag("usage")
            .ok(200, "the budgets (a key: its team's)", &[("application/json", json_of::<drover_types::Budgets>())])
            .route(Get, "/v1/budgets"),
        op("audit", "A page of the audit log (a key: its team's)", Access::Scope(Scope::AuditRead))
            .tag("audit")
            .query("since", Type::String, "RFC 3339: records at or after it")
            .query("team", Type::String, "only this team's (a key: its own)")
            .query("limit", Type::Integer, "at most this many")
            .query("cursor", Type::String, "`next_cursor` of the previous page")
            .ok(200, "the records, oldest first", &[("application/json", json_of::<drover_types::AuditPage>())])
            .route(Get, "/v1/audit"),
        op("auditExport", "Accounting rows of finished tasks (docs/accounting.md)", Access::Scope(Scope::AuditRead))
            .tag("audit")
            .query("format", Type::String, "ndjson (default) or csv")
            .query("since", Type::String, "RFC 3339: tasks finished at or after it")
            .query("team", Type::String, "only this team's (a key: its own)")
            .ok(200, "one AccountingRow per task", &[
                ("application/x-ndjson", json_of::<drover_types::AccountingRow>()),
                ("text/csv", scalar(Type::String)),
            ])
            .route(Get, "/v1/audit/export"),
        op("webLogin", "A one-time login URL for the web dashboard (works once, for two minutes)", Access::AnyKey)
            .tag("web")
            .describe(
                "The host owner (Unix socket): a URL on the loopback listener (`web_listen`; 409 \
                 when it is off). A key over TCP: a URL on the team listener logging in as that \
                 key. A task's sandbox, or a dashboard session: 403.",
            )
            .errors(&[409])
            .ok(200, "the URL", &[("application/json", json_of::<drover_types::WebLogin>())])
            .route(Post, "/v1/web/login"),
        op("webSession", "Who the caller (the dashboard's session) is", Access::AnyKey)
            .tag("web")
            .ok(200, "the caller", &[("application/json", json_of::<drover_types::WebSession>())])
            .route(Get, "/v1/web/session"),
        op("metrics", "Prometheus metrics (OpenMetrics 1.0 text)", Access::Scope(Scope::UsageRead))
            .tag("meta")
            .describe(
                "The host owner and the scrape token (`Authorization: Bearer` of \
                 `metrics_token_env`, valid for this route only): every family. A key with \
                 usage:read: its team's task counts, tokens and dollars only. A task's sandbox: \
                 403 (docs/design.md §10).",
            )
            .ok(200, "the metrics", &[("application/openmetrics-text", scalar(Type::String))])
            .route(Get, "/metrics"),
    ]
}

/// A pool as the API answers it: its record and its counters (and, from `GET /v1/pools/{name}`,
/// its latest events; from `POST /v1/pools`, warnings about the request).
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // a schema only: the handlers build this shape as JSON
pub struct PoolView {
    #[schema(inline)]
    #[serde(flatten)]
    record: drover_store::PoolRecord,
    #[schema(inline)]
    #[serde(flatten)]
    stats: drover_store::PoolStats,
    events: Option<Vec<drover_store::PoolEvent>>,
    warnings: Option<Vec<String>>,
}

/// Adds `T` and every schema it refers to.
fn with<T: ToSchema>(out: &mut Vec<(String, RefOr<Schema>)>) {
    out.push((T::name().into_owned(), T::schema()));
    T::schemas(out);
}

fn components() -> Vec<(String, RefOr<Schema>)> {
    use drover_types as t;
    let mut out = vec![];
    with::<t::ApiError>(&mut out);
    with::<t::ApiErrorKind>(&mut out);
    with::<t::Task>(&mut out);
    with::<t::TaskPage>(&mut out);
    with::<t::RunRequest>(&mut out);
    with::<t::SendRequest>(&mut out);
    with::<t::Event>(&mut out);
    with::<t::DaemonStatus>(&mut out);
    with::<t::StopDaemonRequest>(&mut out);
    with::<t::PoolRequest>(&mut out);
    with::<t::PoolStopRequest>(&mut out);
    with::<PoolView>(&mut out);
    with::<t::BatchRequest>(&mut out);
    with::<t::BatchView>(&mut out);
    with::<t::BatchRetried>(&mut out);
    with::<drover_store::PoolEvent>(&mut out);
    with::<drover_store::UsageLine>(&mut out);
    with::<t::TeamInfo>(&mut out);
    with::<t::CreateTeamRequest>(&mut out);
    with::<t::KeyInfo>(&mut out);
    with::<t::NewKey>(&mut out);
    with::<t::CreateKeyRequest>(&mut out);
    with::<t::RotateKeyRequest>(&mut out);
    with::<t::UpdateTeamRequest>(&mut out);
    with::<t::WebhookSecret>(&mut out);
    with::<t::AuditRecord>(&mut out);
    with::<t::Actor>(&mut out);
    with::<t::AccountingRow>(&mut out);
    with::<t::AuditPage>(&mut out);
    with::<t::Scope>(&mut out);
    with::<t::WorkerInfo>(&mut out);
    with::<t::WorkerState>(&mut out);
    with::<t::WebLogin>(&mut out);
    with::<t::WebSession>(&mut out);
    with::<t::Budgets>(&mut out);
    with::<t::web::FleetSnapshot>(&mut out);
    with::<t::web::TaskDiff>(&mut out);
    with::<t::web::DiffPatch>(&mut out);
    with::<Health>(&mut out);
    with::<Removed>(&mut out);
    with::<DaemonStopping>(&mut out);
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.dedup_by(|a, b| a.0 == b.0);
    out
}

/// The whole document.
pub fn document() -> OpenApi {
    let mut paths = Paths::new();
    for r in routes() {
        paths.add_path_operation(r.path, vec![r.method], r.operation);
    }
    let bearer = HttpBuilder::new()
        .scheme(HttpAuthScheme::Bearer)
        .bearer_format("drv_…")
        .description(Some(
            "`Authorization: Bearer drv_…` over TCP (`drover key create`). The Unix socket is the \
             host owner's and needs no key.",
        ))
        .build();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("drover")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "drover's team server API (docs/design.md §7). Every error is `{kind, error, \
                     hint}` (ApiError); `x-drover-scope` names the key scope an operation needs \
                     over TCP (`none`: no key; `owner`: the host owner only, on the Unix socket).",
                ))
                .build(),
        )
        .paths(paths)
        .components(Some(
            ComponentsBuilder::new()
                .schemas_from_iter(components())
                .security_scheme(SECURITY_SCHEME, SecurityScheme::Http(bearer))
                .build(),
        ))
        .build()
}

/// The document as JSON: what `GET /v1/openapi.json` answers and `clients/typescript/openapi.json`
/// holds (pretty, with a final newline).
pub fn document_json() -> String {
    let mut s = serde_json::to_string_pretty(&document()).unwrap_or_default();
    s.push('\n');
    s
}

/// `GET /v1/openapi.json` (no key needed).
pub async fn serve() -> Json<OpenApi> {
    Json(document())
}

#[cfg(test)]
mod tests;

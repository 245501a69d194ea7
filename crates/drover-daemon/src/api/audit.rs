//! The audit middleware (docs/design.md §7): every mutating call (POST, PUT, PATCH, DELETE) on
//! every router — the admin socket, TCP, each task's scoped socket — is appended to the audit
//! log after its handler ran, refusals (401, 403, 404, 409, 422, …) included.
//!
//! A record holds only chosen fields, never a header, a body or a query string: the actor
//! (`Principal::actor`; none without a valid key), the remote address (`RemoteAddr`, or
//! `task:<id>` on a task's socket), an action from [`Route::of`], a target from the path — or,
//! for `task.create`, `pool.create`, `team.create` and `key.create`, the created id or name
//! read from the 2xx JSON answer (bounded, exact-size bodies only) — and the status.
//!
//! Each router adds it once ([`super::audited`]): on the Unix sockets inside the layers that
//! put the caller (`Principal`, `RemoteAddr`) in the request; on TCP outside the authentication,
//! which puts the key it found (a valid one) in the answer's extensions too, so calls refused
//! there (401, 403, 404) are recorded with their actor, or none without a valid key. A store
//! error while auditing is logged and the response still goes out. A lock (`POST
//! /v1/locks/{name}`) is recorded when its response starts (200 = granted), not when the lock
//! is released.

use crate::engine::Engine;
use axum::body::Body;
use axum::body::HttpBody as _;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use drover_store::{NewAuditRecord, Store};
use drover_types::Actor;
use std::sync::Arc;

use super::auth::{Principal, RemoteAddr};
use super::scoped::TaskScope;

/// The largest answer read for a created id (a task's JSON holds its prompt, ≤ 1 MiB escaped).
const MAX_CREATED_BODY: u64 = 8 << 20;
/// The longest target kept.
const MAX_TARGET: usize = 128;

/// What a mutating call did: the `action` of its audit record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    TaskCreate,
    TaskSend,
    TaskStop,
    TaskDelete,
    PoolCreate,
    PoolStop,
    PoolResume,
    TeamCreate,
    TeamUpdate,
    KeyCreate,
    KeyRotate,
    KeyRevoke,
    DaemonStop,
    LockAcquire,
    WebLogin,
    Unknown,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::TaskCreate => "task.create",
            Action::TaskSend => "task.send",
            Action::TaskStop => "task.stop",
            Action::TaskDelete => "task.delete",
            Action::PoolCreate => "pool.create",
            Action::PoolStop => "pool.stop",
            Action::PoolResume => "pool.resume",
            Action::TeamCreate => "team.create",
            Action::TeamUpdate => "team.update",
            Action::KeyCreate => "key.create",
            Action::KeyRotate => "key.rotate",
            Action::KeyRevoke => "key.revoke",
            Action::DaemonStop => "daemon.stop",
            Action::LockAcquire => "lock.acquire",
            Action::WebLogin => "web.login",
            Action::Unknown => "unknown",
        }
    }
}

/// Where a record's target comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    None,
    /// A path segment (a task id, pool, team, key id, lock name), as sent.
    Path(String),
    /// The created thing's field (`id` or `name`) in a 2xx JSON answer.
    Created(&'static str),
}

/// A mutating route: its action and target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub action: Action,
    pub target: Target,
}

impl Route {
    /// The route table (docs/design.md §7); anything else is `unknown` with no target.
    pub fn of(method: &Method, path: &str) -> Route {
        let segs: Vec<&str> = path
            .strip_prefix("/v1/")
            .unwrap_or_default()
            .split('/')
            .collect();
        let path = |s: &str| Target::Path(s.to_string());
        let (action, target) = match (method.as_str(), segs.as_slice()) {
            ("POST", ["tasks"]) => (Action::TaskCreate, Target::Created("id")),
            ("POST", ["tasks", id, "send"]) => (Action::TaskSend, path(id)),
            ("POST", ["tasks", id, "stop"]) => (Action::TaskStop, path(id)),
            ("DELETE", ["tasks", id]) => (Action::TaskDelete, path(id)),
            ("POST", ["pools"]) => (Action::PoolCreate, Target::Created("name")),
            ("POST", ["pools", name, "stop"]) => (Action::PoolStop, path(name)),
            ("POST", ["pools", name, "resume"]) => (Action::PoolResume, path(name)),
            ("POST", ["teams"]) => (Action::TeamCreate, Target::Created("name")),
            ("PUT" | "PATCH" | "POST", ["teams", name]) => (Action::TeamUpdate, path(name)),
            ("POST", ["keys"]) => (Action::KeyCreate, Target::Created("id")),
            ("POST", ["keys", id, "rotate"]) => (Action::KeyRotate, path(id)),
            ("POST", ["keys", id, "revoke"]) | ("DELETE", ["keys", id]) => {
                (Action::KeyRevoke, path(id))
            }
            ("POST", ["daemon", "stop"]) => (Action::DaemonStop, Target::None),
            ("POST", ["locks", name]) => (Action::LockAcquire, path(name)),
            ("POST", ["web", "login"]) => (Action::WebLogin, Target::None),
            _ => (Action::Unknown, Target::None),
        };
        Route { action, target }
    }
}

/// Whether `method` changes something (and so is audited).
pub fn is_mutating(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

/// A target as stored: only ids and names made of safe characters, never anything that looks
/// like a key or token (`drv_…`, `drv-…`): a caller can put anything in a path.
pub fn clean_target(s: &str) -> String {
    let safe = !s.is_empty()
        && s.len() <= MAX_TARGET
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '@'))
        && !s.to_ascii_lowercase().starts_with("drv");
    if safe {
        s.to_string()
    } else {
        "(redacted)".into()
    }
}

/// The middleware ([`super::finish`] adds it to every router).
pub async fn record(State(engine): State<Arc<Engine>>, req: Request, next: Next) -> Response {
    if !is_mutating(req.method()) {
        return next.run(req).await;
    }
    let route = Route::of(req.method(), req.uri().path());
    let before = req.extensions().get::<Principal>().map(Principal::actor);
    let remote = match req.extensions().get::<TaskScope>() {
        Some(scope) => format!("task:{}", scope.0),
        None => req
            .extensions()
            .get::<RemoteAddr>()
            .map(RemoteAddr::describe)
            .unwrap_or_else(|| "unknown".into()),
    };
    let resp = next.run(req).await;
    let status = resp.status();
    // A layer inside this one that authenticates (TCP) puts the key it found in the answer,
    // refusals included; none: no valid key was presented.
    let actor = before
        .or_else(|| resp.extensions().get::<Principal>().map(Principal::actor))
        .unwrap_or_default();
    let (resp, target) = match &route.target {
        Target::None => (resp, None),
        Target::Path(s) => (resp, Some(clean_target(s))),
        Target::Created(field) if status.is_success() => created(resp, field).await,
        Target::Created(_) => (resp, None),
    };
    append(&*engine.store, actor, route.action, target, remote, status).await;
    resp
}

/// Appends one record; a store error is logged, never the caller's problem. For callers that
/// refuse a mutating call before the routes (the TCP authentication's 401) too.
pub async fn append(
    store: &dyn Store,
    actor: Actor,
    action: Action,
    target: Option<String>,
    remote: String,
    status: StatusCode,
) {
    let rec = NewAuditRecord {
        at: drover_store::now(),
        actor,
        action: action.as_str().into(),
        target,
        remote_addr: Some(remote),
        status: status.as_u16(),
    };
    if let Err(e) = store.append_audit(rec).await {
        tracing::warn!(action = action.as_str(), "audit record not stored: {e}");
    }
}

/// Reads `field` of a 2xx JSON answer and gives the answer back unchanged. Only bodies of a
/// known size up to [`MAX_CREATED_BODY`] are read (axum's `Json` answers are); others keep
/// their body and get no target.
async fn created(resp: Response, field: &str) -> (Response, Option<String>) {
    let exact = resp.body().size_hint().exact();
    if !matches!(exact, Some(n) if n <= MAX_CREATED_BODY) {
        return (resp, None);
    }
    let (parts, body) = resp.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_CREATED_BODY as usize).await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!("audit: the answer could not be read: {e}");
            let err = super::ApiErr::internal("the answer could not be read");
            return (err.into_response(), None);
        }
    };
    let target = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v.get(field).and_then(|s| s.as_str()).map(clean_target));
    (Response::from_parts(parts, Body::from(bytes)), target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_map_to_their_actions_and_targets() {
        let cases = [
            (
                Method::POST,
                "/v1/tasks",
                "task.create",
                Target::Created("id"),
            ),
            (
                Method::POST,
                "/v1/tasks/ab12/send",
                "task.send",
                Target::Path("ab12".into()),
            ),
            (
                Method::POST,
                "/v1/tasks/ab12/stop",
                "task.stop",
                Target::Path("ab12".into()),
            ),
            (
                Method::DELETE,
                "/v1/tasks/ab12",
                "task.delete",
                Target::Path("ab12".into()),
            ),
            (
                Method::POST,
                "/v1/pools",
                "pool.create",
                Target::Created("name"),
            ),
            (
                Method::POST,
                "/v1/pools/p/stop",
                "pool.stop",
                Target::Path("p".into()),
            ),
            (
                Method::POST,
                "/v1/pools/p/resume",
                "pool.resume",
                Target::Path("p".into()),
            ),
            (
                Method::POST,
                "/v1/teams",
                "team.create",
                Target::Created("name"),
            ),
            (
                Method::PATCH,
                "/v1/teams/a",
                "team.update",
                Target::Path("a".into()),
            ),
            (
                Method::POST,
                "/v1/keys",
                "key.create",
                Target::Created("id"),
            ),
            (
                Method::POST,
                "/v1/keys/key_1/rotate",
                "key.rotate",
                Target::Path("key_1".into()),
            ),
            (
                Method::DELETE,
                "/v1/keys/key_1",
                "key.revoke",
                Target::Path("key_1".into()),
            ),
            (
                Method::POST,
                "/v1/keys/key_1/revoke",
                "key.revoke",
                Target::Path("key_1".into()),
            ),
            (Method::POST, "/v1/daemon/stop", "daemon.stop", Target::None),
            (
                Method::POST,
                "/v1/locks/build",
                "lock.acquire",
                Target::Path("build".into()),
            ),
            (Method::POST, "/v1/nope", "unknown", Target::None),
            (Method::PUT, "/v1/tasks", "unknown", Target::None),
            (Method::POST, "/elsewhere", "unknown", Target::None),
        ];
        for (m, p, action, target) in cases {
            let r = Route::of(&m, p);
            assert_eq!((r.action.as_str(), r.target), (action, target), "{m} {p}");
        }
        assert!(is_mutating(&Method::DELETE) && !is_mutating(&Method::GET));
    }

    #[test]
    fn targets_never_keep_secrets_or_odd_text() {
        assert_eq!(clean_target("ab12cd34"), "ab12cd34");
        assert_eq!(clean_target("key_0123456789ab"), "key_0123456789ab");
        for bad in [
            "drv_0123abcd",
            "DRV_x",
            "drv-abc",
            "a%20b",
            "a b",
            "",
            &"x".repeat(MAX_TARGET + 1),
        ] {
            assert_eq!(clean_target(bad), "(redacted)", "{bad:?}");
        }
    }
}

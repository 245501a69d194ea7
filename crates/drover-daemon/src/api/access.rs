//! Access control over TCP (docs/design.md §7): who the caller is, and what each route needs.
//!
//! [`authenticate`] wraps the TCP router (never the Unix socket, which is the host owner's):
//!
//! 1. [`required`] looks the route up in ONE table ([`Need`]). `GET /v1/health` and
//!    `GET /v1/openapi.json` are public; everything else needs a key.
//! 2. The key: exactly one `Authorization: Bearer drv_<64 hex>` header (the scheme's case is
//!    free, RFC 9110); its SHA-256 is looked up in the store on every request (no cache: a
//!    revoke takes effect on the next request); unknown, expired or revoked → 401
//!    `unauthorized`, one message for all of them (and for a malformed header), so the answer
//!    never says which. Without the header, the web dashboard's session cookie of a key
//!    ([`crate::web`]) stands for that key: the key is read again from the store on every
//!    request (revoked or expired → 401 and the session ends); a cookie-authenticated request
//!    other than `GET`/`HEAD` needs `x-drover-csrf: 1` (403).
//! 3. The rule: a route not in the table → 404 (a key never reaches a route nobody wrote a rule
//!    for); [`Need::OwnerOnly`] (status, daemon stop, locks, workers, creating teams) → 403 for every key;
//!    a missing scope → 403 `forbidden` naming it (`admin` holds every scope, for its own team).
//! 4. Team visibility: `/v1/tasks/{id}…` resolves only the EXACT id of a task of the key's team,
//!    `/v1/pools/{name}…` only a pool of its team, `/v1/batches/{name}…` only a batch of its team, `/v1/teams/{name}…` only its team,
//!    `/v1/keys/{id}…` only its team's key; anything else is the very 404 a missing one gets
//!    (before any body is read), so nothing tells whether another team's exists.
//! 5. The request carries [`Principal::Key`]; `last_used_at` is written at most once a minute
//!    per key, off the request's path.

use super::auth::{hash_key, KeyPrincipal, Principal};
use super::ApiErr;
use crate::engine::Engine;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use drover_store::StoreError;
use drover_types::{ApiErrorKind, KeyInfo, RunRequest, Scope};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a route needs from a caller over TCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// No key (`/v1/health`, `/v1/openapi.json`).
    Public,
    /// A valid key holding this scope (`admin` holds all).
    Scoped(Scope),
    /// The host owner only (the Unix socket): 403 for every key.
    OwnerOnly,
    /// Any valid key, whatever its scopes (`/v1/web/…`).
    AnyKey,
}

/// The one segment [`segments`] gives `/metrics` (the only route outside `/v1/`; a segment of
/// a `/v1/` path never holds a `/`).
pub const METRICS: &str = "/metrics";

/// The rule of every route (method, path segments after `/v1/`); `None`: not a route. A route
/// added to [`super::routes`] without a rule here fails `every_route_has_a_rule`.
pub fn required(method: &Method, segments: &[&str]) -> Option<Need> {
    use Need::*;
    use Scope::{Admin, AuditRead, PoolsWrite, TasksRead, TasksWrite, UsageRead};
    let named = |s: &str| !s.is_empty();
    let need = match (method.as_str(), segments) {
        ("GET", ["health"] | ["openapi.json"]) => Public,
        ("GET", ["status"] | ["locks"] | ["workers"]) => OwnerOnly,
        ("POST", ["daemon", "stop"]) => OwnerOnly,
        ("POST", ["locks", n]) if named(n) => OwnerOnly,
        ("GET", ["tasks"]) => Scoped(TasksRead),
        ("POST", ["tasks"]) => Scoped(TasksWrite),
        ("GET", ["tasks", id]) if named(id) => Scoped(TasksRead),
        ("DELETE", ["tasks", id]) if named(id) => Scoped(TasksWrite),
        ("GET", ["tasks", id, "events" | "wait" | "raw" | "diff"]) if named(id) => {
            Scoped(TasksRead)
        }
        ("GET", ["tasks", id, "diff", "file"]) if named(id) => Scoped(TasksRead),
        // The dashboard's fleet view: a key sees its team's cards only.
        ("GET", ["fleet"] | ["fleet", "events"]) => Scoped(TasksRead),
        ("POST", ["tasks", id, "send" | "stop"]) if named(id) => Scoped(TasksWrite),
        ("GET", ["pools"]) => Scoped(TasksRead),
        ("GET", ["pools", n]) if named(n) => Scoped(TasksRead),
        ("POST", ["pools"]) => Scoped(PoolsWrite),
        ("POST", ["pools", n, "stop" | "resume"]) if named(n) => Scoped(PoolsWrite),
        // Batches are tasks, grouped: the tasks scopes.
        ("GET", ["batches"]) => Scoped(TasksRead),
        ("GET", ["batches", n]) if named(n) => Scoped(TasksRead),
        ("POST", ["batches"]) => Scoped(TasksWrite),
        ("POST", ["batches", n, "stop" | "retry"]) if named(n) => Scoped(TasksWrite),
        ("GET", ["usage"] | ["budgets"]) => Scoped(UsageRead),
        // Or the scrape token (see `authenticate`); a key sees its team's series only.
        ("GET", [METRICS]) => Scoped(UsageRead),
        ("GET", ["audit", ..]) => Scoped(AuditRead),
        // Creating a team is the host owner's; an admin key manages its own team.
        ("POST", ["teams"]) => OwnerOnly,
        (_, ["teams", ..] | ["keys", ..]) => Scoped(Admin),
        // The dashboard: a login URL for the key itself, and who it is.
        ("POST", ["web", "login"]) | ("GET", ["web", "session"]) => AnyKey,
        _ => return None,
    };
    Some(need)
}

/// The path's segments after `/v1/` (as sent: never percent-decoded here, so an encoded id
/// matches nothing of another team); `/metrics` is `[METRICS]`.
pub(crate) fn segments(path: &str) -> Option<Vec<&str>> {
    if path == METRICS {
        return Some(vec![METRICS]);
    }
    path.strip_prefix("/v1/").map(|p| p.split('/').collect())
}

/// The middleware's state: the engine (the store) and when each key was last touched.
#[derive(Clone)]
pub struct Gate {
    engine: Arc<Engine>,
    touched: Arc<Mutex<HashMap<String, Instant>>>,
}

impl Gate {
    pub fn new(engine: Arc<Engine>) -> Self {
        Gate {
            engine,
            touched: Arc::default(),
        }
    }
}

/// `last_used_at` is written at most this often per key.
pub const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// The TCP router's middleware (see the module's doc). A valid key is also put in the answer's
/// extensions, refusals included, for the audit layer outside this one (`api::audit`).
pub async fn authenticate(State(gate): State<Gate>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let segs = segments(&path);
    let need = segs.as_deref().and_then(|s| required(req.method(), s));
    if need == Some(Need::Public) {
        return next.run(req).await;
    }
    // `GET /metrics` with the configured scrape token (valid for that route only).
    if need.is_some() && segs.as_deref() == Some(&[METRICS][..]) {
        if let Some(token) = &gate.engine.config.metrics_token {
            if super::metrics::scrape_token(req.headers(), token) {
                req.extensions_mut().insert(super::metrics::Scraper);
                return next.run(req).await;
            }
        }
    }
    let (key, session) = match caller(&gate.engine, req.headers()).await {
        Ok(k) => k,
        Err(e) => return e.into_response(),
    };
    let principal = Principal::Key(key);
    if let Some(session) = session {
        if !crate::web::csrf_ok(req.method(), req.headers()) {
            let mut resp = super::ApiErr::csrf_refused().into_response();
            resp.extensions_mut().insert(principal);
            return resp;
        }
        req.extensions_mut().insert(crate::web::ViaCookie(session));
    }
    // The key goes in the answer too, refusals included: the audit layer outside this one
    // records who made the call (`api::audit`).
    let answer = |resp: Response, principal: Principal| {
        let mut resp = resp;
        resp.extensions_mut().insert(principal);
        resp
    };
    let (Some(need), Some(segs)) = (need, segs) else {
        let resp = super::body::not_found().await.into_response();
        return answer(resp, principal);
    };
    if let Err(e) = allowed(&principal, need, &segs) {
        return answer(e.into_response(), principal);
    }
    if let Err(e) = visible(&gate.engine, &principal, &segs).await {
        return answer(e.into_response(), principal);
    }
    if let Principal::Key(k) = &principal {
        touch(&gate, &k.key_id);
    }
    req.extensions_mut().insert(principal.clone());
    answer(next.run(req).await, principal)
}

/// A route's rule applied to a valid key.
fn allowed(principal: &Principal, need: Need, segs: &[&str]) -> Result<(), ApiErr> {
    match need {
        Need::Public | Need::AnyKey => Ok(()),
        Need::OwnerOnly => {
            let what = match segs {
                ["teams"] => "creating a team",
                ["daemon", ..] => "stopping the daemon",
                ["locks", ..] => "build locks",
                ["workers"] => "the list of workers",
                _ => "the daemon's status",
            };
            Err(ApiErr::new(
                ApiErrorKind::Forbidden,
                format!("forbidden: {what} is the host owner's only, never an API key's"),
                Some("run it on the server as the user the daemon runs as (the Unix socket)"),
            ))
        }
        Need::Scoped(scope) if principal.allows(scope) => Ok(()),
        Need::Scoped(scope) => {
            let hint = format!(
                "use a key with {scope} (a team admin: `drover key create --team TEAM --scope {scope}`)"
            );
            Err(ApiErr::new(
                ApiErrorKind::Forbidden,
                format!("forbidden: this key lacks the {scope} scope"),
                Some(hint.as_str()),
            ))
        }
    }
}

/// Another team's task or pool (or one that does not exist, or not named by its exact id):
/// the same 404 as a missing one.
async fn visible(engine: &Engine, principal: &Principal, segs: &[&str]) -> Result<(), ApiErr> {
    if matches!(principal, Principal::Owner) {
        return Ok(());
    }
    match segs {
        ["tasks", id, ..] => match engine.store.get_task(id).await {
            Ok(t) if principal.sees(t.team.as_deref()) => Ok(()),
            Ok(_) | Err(StoreError::NotFound(_)) => {
                Err(StoreError::NotFound((*id).to_string()).into())
            }
            Err(e) => Err(e.into()),
        },
        // A team and a key are an admin key's own team's only (before any body is read).
        ["teams", name, ..] if principal.team() != Some(*name) => Err(super::teams::no_team(name)),
        ["keys", id, ..] => match engine.store.key(id).await {
            Ok(Some(k)) if principal.sees(Some(&k.team)) => Ok(()),
            Ok(_) => Err(StoreError::KeyNotFound((*id).to_string()).into()),
            Err(e) => Err(e.into()),
        },
        ["batches", name, ..] => match engine.store.batch(name).await {
            Ok(b) if principal.sees(b.team.as_deref()) => Ok(()),
            Ok(_) | Err(StoreError::BatchNotFound(_)) => {
                Err(StoreError::BatchNotFound((*name).to_string()).into())
            }
            Err(e) => Err(e.into()),
        },
        ["pools", name, ..] => match engine.store.get_pool(name).await {
            Ok(p) if principal.sees(p.team.as_deref()) => Ok(()),
            Ok(_) | Err(StoreError::PoolNotFound(_)) => {
                Err(StoreError::PoolNotFound((*name).to_string()).into())
            }
            Err(e) => Err(e.into()),
        },
        _ => Ok(()),
    }
}

/// The one 401 (no key, a malformed header, an unknown, expired or revoked key alike).
fn unauthorized(missing: bool) -> ApiErr {
    let error = if missing {
        "unauthorized: this route needs an API key"
    } else {
        "unauthorized: the API key is not valid (malformed, unknown, expired or revoked)"
    };
    ApiErr::new(
        ApiErrorKind::Unauthorized,
        error,
        Some(
            "send `Authorization: Bearer drv_…` (the CLI: DROVER_API_KEY); a team admin makes \
             keys with `drover key create`",
        ),
    )
}

/// The caller's valid key — from the bearer header, else from the dashboard's session cookie
/// (then the session's id) — or the 401.
async fn caller(
    engine: &Engine,
    headers: &HeaderMap,
) -> Result<(KeyPrincipal, Option<String>), ApiErr> {
    if headers.contains_key(header::AUTHORIZATION) {
        return Ok((key_of(engine, headers).await?, None));
    }
    let Some(door) = engine.web.team() else {
        return Err(unauthorized(true));
    };
    let Some(id) = crate::web::session_cookie(headers, door.addr.port()) else {
        return Err(unauthorized(true));
    };
    let ended = || {
        ApiErr::new(
            ApiErrorKind::Unauthorized,
            "unauthorized: the dashboard's session has ended (expired, or its key is no longer valid)",
            Some("log in again at /login"),
        )
    };
    let Some(crate::web::sessions::Who::Key { key_id }) = engine.web.sessions.session(&id) else {
        return Err(ended());
    };
    let info = engine.store.key(&key_id).await.map_err(ApiErr::from)?;
    match info {
        Some(info) if key_usable(&info, &drover_store::now()) => Ok((
            KeyPrincipal {
                key_id: info.id,
                team: info.team,
                scopes: info.scopes,
            },
            Some(id),
        )),
        _ => {
            engine.web.sessions.end_key(&key_id);
            Err(ended())
        }
    }
}

/// The caller's valid key, or the 401.
async fn key_of(engine: &Engine, headers: &HeaderMap) -> Result<KeyPrincipal, ApiErr> {
    valid_key(engine, bearer(headers)?).await
}

/// The valid key whose secret is `secret` (`drv_…`), or the one 401 for a malformed, unknown,
/// expired or revoked one.
pub async fn valid_key(engine: &Engine, secret: &str) -> Result<KeyPrincipal, ApiErr> {
    if !well_formed(secret) {
        return Err(unauthorized(false));
    }
    let info = engine
        .store
        .key_by_hash(&hash_key(secret))
        .await
        .map_err(ApiErr::from)?
        .ok_or_else(|| unauthorized(false))?;
    if !key_usable(&info, &drover_store::now()) {
        return Err(unauthorized(false));
    }
    Ok(KeyPrincipal {
        key_id: info.id,
        team: info.team,
        scopes: info.scopes,
    })
}

/// Neither revoked nor expired at `now` (RFC 3339 as [`drover_store::now`] writes it): the one
/// rule, [`crate::teams::keys::key_state`].
pub fn key_usable(info: &KeyInfo, now: &str) -> bool {
    crate::teams::keys::key_state(info, now) == crate::teams::keys::KeyState::Valid
}

/// The secret of the one `Authorization: Bearer drv_<64 hex>` header.
fn bearer(headers: &HeaderMap) -> Result<&str, ApiErr> {
    let mut all = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = all.next() else {
        return Err(unauthorized(true));
    };
    if all.next().is_some() {
        return Err(unauthorized(false));
    }
    let value = value.to_str().map_err(|_| unauthorized(false))?;
    let (scheme, secret) = value.split_once(' ').ok_or_else(|| unauthorized(false))?;
    if !scheme.eq_ignore_ascii_case("bearer") || !well_formed(secret) {
        return Err(unauthorized(false));
    }
    Ok(secret)
}

/// `drv_` and 64 lower-case hex digits (what [`super::auth::new_key_secret`] makes).
fn well_formed(secret: &str) -> bool {
    secret.strip_prefix("drv_").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Records that the key was used, at most once per [`TOUCH_EVERY`], on a task of its own.
fn touch(gate: &Gate, key_id: &str) {
    let now = Instant::now();
    {
        let mut touched = gate.touched.lock().unwrap_or_else(|e| e.into_inner());
        if touched
            .get(key_id)
            .is_some_and(|t| now.duration_since(*t) < TOUCH_EVERY)
        {
            return;
        }
        touched.insert(key_id.to_string(), now);
    }
    let engine = gate.engine.clone();
    let id = key_id.to_string();
    gate.engine.tasks.spawn(async move {
        if let Err(e) = engine.store.touch_key(&id, &drover_store::now()).await {
            tracing::warn!("key {id}: last_used_at not stored: {e}");
        }
    });
}

/// A key's `POST /v1/tasks`: the task is its team's (naming another team is 403) and
/// `created_by` is the key, whatever the body says.
pub fn bind_task(principal: &Principal, req: &mut RunRequest) -> Result<(), ApiErr> {
    let Principal::Key(k) = principal else {
        return Ok(());
    };
    if let Some(team) = req.team.as_deref().filter(|t| *t != k.team) {
        return Err(ApiErr::new(
            ApiErrorKind::Forbidden,
            format!(
                "forbidden: this key belongs to team {}; it cannot create tasks of team {team}",
                k.team
            ),
            Some("leave `team` out (a key's tasks are its team's), or use that team's key"),
        ));
    }
    req.team = Some(k.team.clone());
    req.created_by = Some(k.key_id.clone());
    Ok(())
}

/// [`check_repo`], but a URL of a configured forge passes: the host owner chose that forge
/// (`[forges.NAME]`), whatever network it is on.
pub fn check_repo_on(engine: &Engine, principal: &Principal, repo: &str) -> Result<(), ApiErr> {
    if crate::git_proxy::forge_repo(&engine.forges, repo).is_some() {
        return Ok(());
    }
    check_repo(principal, repo)
}

/// A key's `repo` URL may not name this host or a private network (the rule of webhook URLs,
/// `teams::webhooks::internal_host`): a clone is a request the daemon makes, so a key could
/// otherwise probe what only the daemon reaches. A path on the server is not a URL (allowed).
pub fn check_repo(principal: &Principal, repo: &str) -> Result<(), ApiErr> {
    if matches!(principal, Principal::Owner) {
        return Ok(());
    }
    if !drover_sandbox::is_url(repo) {
        return Ok(());
    }
    let url = match repo.split_once(':') {
        // scp-like `user@host:path` as an ssh URL, for the host check.
        Some((host, path)) if !repo.contains("://") => format!("ssh://{host}/{path}"),
        _ => repo.to_string(),
    };
    if crate::teams::webhooks::internal_host(&url) {
        return Err(ApiErr::new(
            ApiErrorKind::Forbidden,
            "forbidden: the repo URL names this host or a private network",
            Some("give a public clone URL, or ask the host owner to run it"),
        ));
    }
    Ok(())
}

/// A task or pool of a team with `allowed_repos` uses only those (docs/design.md §7): checked on
/// the request's repo before anything is cloned or fetched; else 403 naming the team's repos.
pub async fn check_team_repo(
    engine: &Engine,
    team: Option<&str>,
    repo: &str,
) -> Result<(), ApiErr> {
    let Some(team) = team else { return Ok(()) };
    let Some(t) = engine.store.team(team).await? else {
        return Ok(()); // an unknown team is refused by the team rules (422)
    };
    let Some(allowed) = t.allowed_repos else {
        return Ok(());
    };
    if crate::teams::policy::repo_allowed(&allowed, repo) {
        return Ok(());
    }
    Err(ApiErr::new(
        ApiErrorKind::Forbidden,
        format!(
            "forbidden: team {team} may use only its repos ({}), not {repo:?}",
            if allowed.is_empty() {
                "none".to_string()
            } else {
                allowed.join(", ")
            }
        ),
        Some("the host owner sets them: `drover team update TEAM --allow-repo DIR|URL`"),
    ))
}

/// A key's task or pool starts only from a commit its team may see
/// ([`crate::teams::policy::base_visible`]); else the very 422 of a ref that does not exist, so
/// the answer never tells that another team's branch or commit does.
pub async fn check_base(
    engine: &Engine,
    principal: &Principal,
    repo: &str,
    git_ref: &str,
    repo_dir: &std::path::Path,
    commit: &str,
) -> Result<(), ApiErr> {
    let Principal::Key(k) = principal else {
        return Ok(());
    };
    if crate::teams::policy::base_visible(engine.store.as_ref(), &k.team, repo_dir, commit)
        .await
        .map_err(ApiErr::from)?
    {
        return Ok(());
    }
    Err(drover_sandbox::SandboxError::UnknownRef {
        repo: repo.to_string(),
        git_ref: git_ref.to_string(),
    }
    .into())
}

/// `WWW-Authenticate: Bearer` on 401s (RFC 6750).
pub async fn challenge(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    if resp.status() == axum::http::StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"drover\""),
        );
    }
    resp
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// Every `.route("…", get(…).post(…))` of `api/mod.rs`, as (method, path), also when
    /// rustfmt wrapped the call over several lines.
    fn registered() -> Vec<(Method, String)> {
        let src = include_str!("mod.rs");
        let mut out = vec![];
        let calls: Vec<&str> = src.split(".route(").skip(1).collect();
        for call in calls {
            let rest = call.trim_start();
            let Some(rest) = rest.strip_prefix('"') else {
                continue;
            };
            let Some((path, handlers)) = rest.split_once('"') else {
                continue;
            };
            // The handlers end where the routes end (a `fn` or the end of the chain).
            let handlers = handlers.split("\n}").next().unwrap_or(handlers);
            for (needle, m) in [
                ("get(", Method::GET),
                ("post(", Method::POST),
                ("delete(", Method::DELETE),
                ("put(", Method::PUT),
                ("patch(", Method::PATCH),
            ] {
                let found = handlers
                    .match_indices(needle)
                    .any(|(i, _)| i == 0 || !handlers.as_bytes()[i - 1].is_ascii_alphanumeric());
                if found {
                    out.push((m, path.to_string()));
                }
            }
        }
        out
    }

    #[test]
    fn every_route_has_a_rule() {
        let routes = registered();
        assert!(routes.len() >= 19, "{routes:?}");
        assert!(
            routes
                .iter()
                .any(|(_, p)| p == "/v1/teams/{name}/webhook-secret"),
            "a wrapped .route( call is read too: {routes:?}"
        );
        for (method, path) in routes {
            let concrete = path.replace(['{', '}'], "");
            let segs = segments(&concrete).unwrap_or_default();
            assert!(
                required(&method, &segs).is_some(),
                "{method} {path} has no rule in api::access::required"
            );
        }
    }

    #[test]
    fn the_table() {
        use Need::*;
        let r = |m: Method, p: &str| required(&m, &p.split('/').collect::<Vec<_>>());
        assert_eq!(r(Method::GET, "health"), Some(Public));
        assert_eq!(r(Method::POST, "health"), None);
        assert_eq!(r(Method::GET, "status"), Some(OwnerOnly));
        assert_eq!(r(Method::POST, "daemon/stop"), Some(OwnerOnly));
        assert_eq!(r(Method::POST, "locks/x"), Some(OwnerOnly));
        assert_eq!(r(Method::GET, "workers"), Some(OwnerOnly));
        assert_eq!(r(Method::POST, "teams"), Some(OwnerOnly));
        assert_eq!(r(Method::GET, "teams"), Some(Scoped(Scope::Admin)));
        assert_eq!(r(Method::POST, "keys/k/rotate"), Some(Scoped(Scope::Admin)));
        assert_eq!(
            r(Method::GET, "tasks/a/raw"),
            Some(Scoped(Scope::TasksRead))
        );
        assert_eq!(
            r(Method::POST, "tasks/a/send"),
            Some(Scoped(Scope::TasksWrite))
        );
        assert_eq!(
            r(Method::DELETE, "tasks/a"),
            Some(Scoped(Scope::TasksWrite))
        );
        assert_eq!(
            r(Method::POST, "pools/p/resume"),
            Some(Scoped(Scope::PoolsWrite))
        );
        assert_eq!(r(Method::GET, "pools/p"), Some(Scoped(Scope::TasksRead)));
        assert_eq!(r(Method::GET, "usage"), Some(Scoped(Scope::UsageRead)));
        assert_eq!(
            required(&Method::GET, &segments("/metrics").unwrap()),
            Some(Scoped(Scope::UsageRead))
        );
        assert_eq!(segments("/metrics/x"), None);
        assert_eq!(
            r(Method::GET, "metrics"),
            None,
            "/v1/metrics is not a route"
        );
        assert_eq!(
            r(Method::GET, "audit/export"),
            Some(Scoped(Scope::AuditRead))
        );
        // Not routes: an empty id, a sub-resource nobody wrote, another method.
        assert_eq!(r(Method::GET, "tasks/"), None);
        assert_eq!(r(Method::GET, "tasks/a/b"), None);
        assert_eq!(r(Method::PUT, "tasks/a"), None);
        assert_eq!(r(Method::GET, "nope"), None);
        assert_eq!(r(Method::POST, "web/login"), Some(AnyKey));
        assert_eq!(r(Method::GET, "web/session"), Some(AnyKey));
        assert_eq!(r(Method::GET, "web/login"), None);
    }

    #[test]
    fn only_one_well_formed_bearer_header_passes() {
        let secret = format!("drv_{}", "ab".repeat(32));
        let h = |values: &[&str]| {
            let mut m = HeaderMap::new();
            for v in values {
                m.append(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
            }
            m
        };
        let ok = format!("Bearer {secret}");
        assert_eq!(bearer(&h(&[&ok])).ok(), Some(secret.as_str()));
        let lower = format!("bearer {secret}");
        assert_eq!(bearer(&h(&[&lower])).ok(), Some(secret.as_str()));
        for bad in [
            vec![],
            vec![ok.clone(), ok],
            vec![format!("Bearer  {secret}")],
            vec![format!("Basic {secret}")],
            vec![format!("Bearer {}", secret.to_uppercase())],
            vec![format!("Bearer {secret}x")],
            vec![format!("Bearer {}", &secret[..20])],
            vec!["Bearer".to_string()],
            vec![format!("Bearer drv_{}", "g".repeat(64))],
        ] {
            let refs: Vec<&str> = bad.iter().map(String::as_str).collect();
            let e = bearer(&h(&refs)).unwrap_err();
            assert_eq!(e.body.kind, ApiErrorKind::Unauthorized, "{bad:?}");
        }
    }

    #[test]
    fn expiry_and_revocation() {
        let mut k = KeyInfo {
            id: "key_1".into(),
            team: "a".into(),
            name: None,
            scopes: vec![Scope::TasksRead],
            created_at: "2026-01-01T00:00:00.000Z".into(),
            last_used_at: None,
            expires_at: None,
            revoked_at: None,
            rotated_to: None,
        };
        let now = "2026-06-01T00:00:00.000Z";
        assert!(key_usable(&k, now));
        k.expires_at = Some("2026-06-01T00:00:01.000Z".into());
        assert!(key_usable(&k, now));
        k.expires_at = Some(now.into());
        assert!(!key_usable(&k, now));
        k.expires_at = None;
        k.revoked_at = Some("2026-05-01T00:00:00.000Z".into());
        assert!(!key_usable(&k, now));
    }

    #[test]
    fn a_key_creates_tasks_of_its_own_team_only() {
        let key = Principal::Key(KeyPrincipal {
            key_id: "key_a".into(),
            team: "a".into(),
            scopes: vec![Scope::TasksWrite],
        });
        let mut req: RunRequest = serde_json::from_value(serde_json::json!({
            "repo": "/r", "prompt": "p", "created_by": "key_forged"
        }))
        .unwrap();
        bind_task(&key, &mut req).unwrap();
        assert_eq!(req.team.as_deref(), Some("a"));
        assert_eq!(req.created_by.as_deref(), Some("key_a"));
        req.team = Some("b".into());
        let e = bind_task(&key, &mut req).unwrap_err();
        assert_eq!(e.body.kind, ApiErrorKind::Forbidden);
        let mut owner = req.clone();
        bind_task(&Principal::Owner, &mut owner).unwrap();
        assert_eq!(owner.team.as_deref(), Some("b"));
    }
}

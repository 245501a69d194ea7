//! HTTP+JSON API on `DROVER_HOME/daemon.sock` (the host owner's door: every route, no key) and,
//! with `listen`, over TCP ([`tcp`]: the same routes behind [`access::authenticate`], API keys,
//! scopes and team visibility; docs/design.md §7). One module per resource.
//!
//! | route | what |
//! | --- | --- |
//! | `GET /v1/health` | `{ok, version}` (no key over TCP) |
//! | `GET /v1/status` | daemon pid, slots, sandbox mode |
//! | `POST /v1/daemon/stop` | stop the daemon (`{"stop_tasks": true}` stops tasks first) |
//! | `POST /v1/tasks` | create a task ([`drover_types::RunRequest`]; `Idempotency-Key`, `X-Provider-Key`; 201, 200 on a replay) |
//! | `GET /v1/tasks?all=&state=&pool=&team=&tag=&limit=&cursor=` | a page of task summaries ([`drover_types::TaskPage`]) |
//! | `GET /v1/tasks/{id}` | one task (id or unique prefix) |
//! | `GET /v1/tasks/{id}/events?after=&follow=&limit=` | events as JSON (≤ 1,000 a page), or SSE on `Accept: text/event-stream` or `follow` (`Last-Event-ID` works like `after`; an `end` event closes it) |
//! | `GET /v1/tasks/{id}/events?before=&limit=` | the `limit` events before seq `before`, in seq order: the newest page first, older ones by cursor ([`event_pages`]) |
//! | `GET /v1/tasks/{id}/diff` | the files the task changed against its base commit ([`drover_types::web::TaskDiff`]; [`diff`]) |
//! | `GET /v1/tasks/{id}/diff/file?path=&repo_dir=` | one file's unified diff, cut at 256 KiB ([`drover_types::web::DiffPatch`]) |
//! | `GET /v1/fleet` | the fleet view: active tasks and the latest finished ([`drover_types::web::FleetSnapshot`]; a key: its team's; [`fleet`]) |
//! | `GET /v1/fleet/events` | SSE: a `snapshot` event at once and after each change (≤ 4/s; one state shared by all followers) |
//! | `GET /v1/tasks/{id}/raw?stream=&offset=&len=` | bytes of the raw stdout/stderr log |
//! | `GET /v1/tasks/{id}/wait?timeout=` | the task once terminal (or as is after `timeout` s) |
//! | `POST /v1/tasks/{id}/send` | a message or a permission answer |
//! | `POST /v1/tasks/{id}/stop` | stop it |
//! | `DELETE /v1/tasks/{id}` | remove it (its work is committed first) |
//! | `POST /v1/pools`, `GET /v1/pools[/{name}]` | start, list, show pools |
//! | `POST /v1/pools/{name}/stop` / `resume` | stop (`{"hard": true}` stops its tasks too), resume |
//! | `POST /v1/batches`, `GET /v1/batches[/{name}]` | start (one task per repository, [`batches`]), list, show batches |
//! | `POST /v1/batches/{name}/stop` / `retry` | stop its tasks; a new task for each repository whose latest failed |
//! | `GET /v1/locks`, `POST /v1/locks/{name}?slots=&holder=` | build locks (held while the connection is open, on every worker) |
//! | `GET /v1/workers` | the workers sharing the store ([`drover_types::WorkerInfo`]; host owner only) |
//! | `GET /v1/usage?by=task|pool|model|day|team|tag:NAME&team=` | metered usage and dollars (a key: its team's) |
//! | `GET /v1/budgets` | team daily budgets (spent today) and active tasks' `--max-usd` ([`drover_types::Budgets`]; a key: its team's) |
//! | `GET /v1/audit?since=&team=&limit=&cursor=` | the audit log ([`drover_types::AuditPage`]; a key: its team's) |
//! | `GET /v1/audit/export?format=ndjson|csv&since=&team=` | accounting rows of finished tasks, streamed |
//! | `POST /v1/teams`, `GET /v1/teams[/{name}]`, `PATCH /v1/teams/{name}` | teams ([`teams`]; creating one is the host owner's) |
//! | `GET /v1/teams/{name}/webhook-secret` | the team's webhook signing secret |
//! | `POST /v1/keys`, `GET /v1/keys?team=` | create (the secret, once), list API keys ([`keys`]) |
//! | `POST /v1/keys/{id}/rotate` / `revoke`, `DELETE /v1/keys/{id}` | rotate (old key valid for the overlap), revoke |
//! | `GET /v1/openapi.json` | this API as OpenAPI 3.1 ([`openapi`]; no key needed) |
//! | `GET /metrics` | Prometheus metrics, OpenMetrics text ([`metrics`]; over TCP a `usage:read` key — its team's series — or the scrape token) |
//! | `POST /v1/web/login` | a one-time dashboard login URL ([`web::login`]) |
//! | `GET /v1/web/session` | who the caller (the dashboard's session) is |
//!
//! The web dashboard's loopback listener serves these routes too, behind the host owner's
//! session cookie ([`web_router`], [`crate::web`]); the TCP listener serves the dashboard's pages
//! in front of them.
//!
//! Every mutating call on every router is appended to the audit log ([`audit`]).
//!
//! A task's sandbox gets its own socket with these routes behind a filter ([`scoped`]): only
//! `drover lock` and reading that task; the rest is `403 {kind: forbidden}`.
//!
//! Every refusal — including bad JSON, a wrong content type, an oversized body, a bad query
//! string or an unknown route — is `{kind, error, hint}` with a 4xx ([`body`]).

pub mod access;
pub mod audit;
mod audit_log;
pub mod auth;
mod batches;
pub mod body;
mod budgets;
mod daemon;
mod diff;
mod error;
mod event_pages;
mod fleet;
mod keys;

mod locks;
pub mod metrics;
pub mod openapi;
mod pools;
mod protect;
mod raw;
pub mod scoped;
mod task_repos;
mod task_request;
mod tasks;
pub mod tcp;
mod teams;
mod usage;
pub mod web;
mod workers;

use crate::engine::Engine;
use crate::{DaemonError, Home};
pub use error::ApiErr;
use std::sync::Arc;

/// The largest request body (bytes) of the routes that carry a prompt (`POST /v1/tasks`,
/// `POST /v1/pools`, `POST /v1/batches`): a prompt of up to [`drover_types::MAX_PROMPT_BYTES`] with room for JSON
/// escaping and the other fields.
pub const MAX_BODY_BYTES: usize = 4 << 20;
/// The largest body of every other route (docs/design.md §7: "a body over 1 MiB" is a 413).
pub const MAX_SMALL_BODY_BYTES: usize = 1 << 20;

/// The admin socket's router: every route, as the host owner ([`auth::Principal::Owner`]).
pub fn router(engine: Arc<Engine>) -> axum::Router {
    router_as(engine, auth::Principal::Owner, auth::RemoteAddr(None))
}

/// Every route, every request made as `principal` from `remote` (tests of the handlers' own
/// checks serve this on a socket of their own), audited.
pub fn router_as(
    engine: Arc<Engine>,
    principal: auth::Principal,
    remote: auth::RemoteAddr,
) -> axum::Router {
    audited(finish(routes(), engine.clone()), engine)
        .layer(axum::Extension(principal))
        .layer(axum::Extension(remote))
}

/// A task's own control endpoint (`run/<id>/daemon.sock`): the same routes behind
/// [`scoped::filter`], which allows only what an agent may do for itself, as `task_id`.
pub fn scoped_router(engine: Arc<Engine>, task_id: &str) -> axum::Router {
    let scope = scoped::TaskScope(task_id.into());
    let routes = routes().route_layer(axum::middleware::from_fn_with_state(
        scope.clone(),
        scoped::filter,
    ));
    audited(finish(routes, engine.clone()), engine)
        // For the audit records' `remote_addr` (`task:<id>`).
        .layer(axum::Extension(scope))
        .layer(axum::Extension(auth::Principal::Owner))
        .layer(axum::Extension(auth::RemoteAddr(None)))
}

/// The TCP listener's router: every route behind [`access::authenticate`], which checks the
/// key, the route's scope and the team, and puts the [`auth::Principal`] in the request (the
/// peer's [`auth::RemoteAddr`] is put there per connection by [`crate::listen`]). The audit layer is
/// outside it, so its refusals are recorded too (it reports the key in its answer).
/// The dashboard's pages (`/`, `/ui/*`, `/login`) are served in front of the API.
pub fn tcp_router(engine: Arc<Engine>) -> axum::Router {
    let gate = access::Gate::new(engine.clone());
    let authenticated = finish(routes(), engine.clone()).layer(
        axum::middleware::from_fn_with_state(gate, access::authenticate),
    );
    let api =
        audited(authenticated, engine.clone()).layer(axum::middleware::from_fn(access::challenge));
    let (port, tls) = engine
        .web
        .team()
        .map(|d| (d.addr.port(), d.tls))
        .unwrap_or_default();
    web::pages::router(web::pages::Door {
        engine,
        kind: web::pages::Kind::Team { port, tls },
    })
    .fallback_service(api)
}

/// The web dashboard's loopback listener's API ([`crate::web`]): every route behind
/// [`web::gate::owner`] (the host owner's session cookie, the CSRF header), audited
/// with the peer as `remote_addr` (put in each request by [`crate::listen`]).
pub fn web_router(engine: Arc<Engine>, gate: web::gate::Loopback) -> axum::Router {
    let authenticated = finish(routes(), engine.clone())
        .layer(axum::middleware::from_fn_with_state(gate, web::gate::owner));
    audited(authenticated, engine)
}

fn routes() -> axum::Router<Arc<Engine>> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/v1/health", get(daemon::health))
        .route("/v1/status", get(daemon::status))
        .route("/v1/daemon/stop", post(daemon::stop))
        .route("/v1/tasks", post(tasks::create).get(tasks::list))
        .route("/v1/tasks/{id}", get(tasks::show).delete(tasks::remove))
        .route("/v1/tasks/{id}/events", get(tasks::events))
        .route("/v1/tasks/{id}/diff", get(diff::files))
        .route("/v1/tasks/{id}/diff/file", get(diff::file))
        .route("/v1/fleet", get(fleet::snapshot))
        .route("/v1/fleet/events", get(fleet::events))
        .route("/v1/tasks/{id}/wait", get(tasks::wait))
        .route("/v1/tasks/{id}/raw", get(raw::raw))
        .route("/v1/tasks/{id}/send", post(tasks::send))
        .route("/v1/tasks/{id}/stop", post(tasks::stop))
        .route("/v1/pools", post(pools::create).get(pools::list))
        .route("/v1/pools/{name}", get(pools::show))
        .route("/v1/pools/{name}/stop", post(pools::stop))
        .route("/v1/pools/{name}/resume", post(pools::resume))
        .route("/v1/batches", post(batches::create).get(batches::list))
        .route("/v1/batches/{name}", get(batches::show))
        .route("/v1/batches/{name}/stop", post(batches::stop))
        .route("/v1/batches/{name}/retry", post(batches::retry))
        .route("/v1/locks", get(locks::list))
        .route("/v1/workers", get(workers::list))
        .route("/v1/usage", get(usage::usage))
        .route("/v1/budgets", get(budgets::budgets))
        .route("/v1/audit", get(audit_log::list))
        .route("/v1/audit/export", get(audit_log::export))
        .route("/v1/locks/{name}", post(locks::acquire))
        .route("/v1/teams", post(teams::create).get(teams::list))
        .route("/v1/teams/{name}", get(teams::show).patch(teams::update))
        .route(
            "/v1/teams/{name}/webhook-secret",
            get(teams::webhook_secret),
        )
        .route("/v1/keys", post(keys::create).get(keys::list))
        .route("/v1/keys/{id}", axum::routing::delete(keys::revoke))
        .route("/v1/keys/{id}/rotate", post(keys::rotate))
        .route("/v1/keys/{id}/revoke", post(keys::revoke))
        .route("/v1/openapi.json", get(openapi::serve))
        .route("/v1/web/login", post(web::login::login))
        .route("/v1/web/session", get(web::login::session))
        .route("/metrics", get(metrics::metrics))
}

fn finish(routes: axum::Router<Arc<Engine>>, engine: Arc<Engine>) -> axum::Router {
    routes
        .fallback(body::not_found)
        .method_not_allowed_fallback(body::method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(body::bounded))
        .with_state(engine)
}

/// `router` with the audit log's middleware ([`audit::record`]) around it: every answer to a
/// mutating call, refusals included, is recorded. Add it outside anything that can refuse a
/// call and inside the layers that put the caller (`Principal`, `RemoteAddr`) in the request
/// (or have the refusing layer put the `Principal` in its answer, as TCP's authentication does).
fn audited(router: axum::Router, engine: Arc<Engine>) -> axum::Router {
    router.layer(axum::middleware::from_fn_with_state(engine, audit::record))
}

/// Serves until the engine is told to stop (`POST /v1/daemon/stop`, or the caller's shutdown
/// token: the binary cancels it on SIGTERM/SIGINT).
pub async fn serve(engine: Arc<Engine>, home: &Home) -> Result<(), DaemonError> {
    let path = home.socket();
    // A socket left by a daemon that died; absent is the usual case (bind reports the rest).
    let _ = std::fs::remove_file(&path);
    let listener = tokio::net::UnixListener::bind(&path).map_err(DaemonError::Socket)?;
    if let Some(addr) = engine.config.web_listen {
        let web = web::listener::bind(addr, &home.root).await?;
        if let Ok(a) = web.local_addr() {
            engine.web.set_loopback(a);
        }
        engine
            .tasks
            .spawn(web::listener::serve(engine.clone(), web));
    }
    if let Some(listen) = engine.config.listen.clone() {
        let bound = tcp::bind(&listen, &home.root).await?;
        engine.web.set_team(crate::web::TeamDoor {
            addr: bound.addr,
            tls: listen.tls.is_some(),
        });
        engine.tasks.spawn(tcp::serve(engine.clone(), bound));
    }
    let shutdown = engine.stopping().cancelled_owned();
    let tasks = engine.tasks.clone();
    tracing::info!("listening on {}", path.display());
    crate::listen::serve(listener, router(engine), shutdown, &tasks).await;
    Ok(())
}

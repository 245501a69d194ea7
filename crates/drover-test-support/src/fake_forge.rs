//! A fake forge REST API: the subset of GitHub, GitLab, Bitbucket Cloud, Bitbucket Data Center
//! and Gitea (Forgejo) drover uses, with each one's real paths, JSON field names, status codes,
//! error bodies and `Retry-After`. The only stand-in of the forge tests: git itself is real
//! (`git_server`), and both share one [`Tokens`] table.
//!
//! - Find the open PR of a head branch, open one, comment on one.
//! - Auth per kind (GitHub `Authorization: Bearer|token T`, GitLab `PRIVATE-TOKEN: T` or
//!   `Authorization: Bearer T`, Bitbucket `Authorization: Bearer T`, Gitea `Authorization:
//!   token|Bearer T`): unknown or expired → 401, no `pull_requests` scope → 403, each in the
//!   kind's error JSON.
//! - GitHub App: `POST /app/installations/{id}/access_tokens` verifies the RS256 JWT with the
//!   app's public key and mints installation tokens into [`Tokens`]; `GET
//!   /repos/{o}/{r}/installation` names the installation ([`FakeForge::enable_github_app`]).
//! - Test hooks: [`FakeForge::prs`], [`FakeForge::comments`], [`FakeForge::requests`],
//!   [`FakeForge::fail_next`] (scripted answers, FIFO), [`FakeForge::lose_next_create_answer`]
//!   (creates the PR, then answers 502).
//!
//! Answers to an already-open PR for the same head: GitHub 422 "A pull request already
//! exists…", GitLab 409, Bitbucket DC 409 `DuplicatePullRequestException`, Gitea 409; Bitbucket
//! Cloud updates and returns the open one (200), as Bitbucket Cloud does.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use drover_forge::ForgeKind;
use serde_json::{json, Value};

use crate::forge_tokens::{Scopes, TokenCheck, Tokens};

/// A PR as the fake stores it (kind-neutral).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakePr {
    /// GitHub/Gitea/Bitbucket number, GitLab iid.
    pub number: u64,
    /// The head branch name (`drover/<id>`), without `refs/heads/` or `owner:`.
    pub head: String,
    pub base: String,
    pub title: String,
    pub body: String,
    pub draft: bool,
    pub state: FakePrState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FakePrState {
    Open,
    Closed,
    Merged,
}

/// One request the fake answered.
#[derive(Debug, Clone)]
pub struct FakeRequest {
    pub method: String,
    /// The raw path (still percent-encoded), without the query.
    pub path: String,
    pub query: String,
    pub status: u16,
    /// Headers drover must send (lower-case names): user-agent, accept, x-github-api-version.
    pub headers: HashMap<String, String>,
    pub at: std::time::Instant,
}

/// A GitHub App the fake knows (see [`FakeForge::enable_github_app`]).
#[derive(Debug, Clone)]
pub struct FakeApp {
    pub app_id: String,
    /// The app's public key (PEM) the JWT is checked with.
    pub public_key_pem: String,
    pub installation_id: u64,
    /// Lifetime of minted installation tokens (GitHub: 1 h).
    pub token_ttl: Duration,
    /// Repositories (`owner/name`) of the installation; empty: every repository.
    pub repos: Vec<String>,
}

#[derive(Debug, Clone)]
struct Failure {
    method: String,
    path_contains: String,
    status: u16,
    retry_after: Option<u64>,
    /// GitHub's primary limit: `x-ratelimit-remaining: 0` and a reset this many seconds away.
    reset_in: Option<u64>,
}

#[derive(Default)]
struct Inner {
    prs: HashMap<String, Vec<FakePr>>,
    comments: HashMap<(String, u64), Vec<String>>,
    requests: Vec<FakeRequest>,
    failures: VecDeque<Failure>,
    lose_next_create: bool,
    app: Option<FakeApp>,
    minted: Vec<String>,
}

struct Shared {
    kind: ForgeKind,
    tokens: Tokens,
    base: String,
    inner: Mutex<Inner>,
}

/// A running fake forge API on `127.0.0.1`; it stops when dropped.
pub struct FakeForge {
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl FakeForge {
    /// Starts the fake API of `kind` (on its own thread and runtime: usable from sync and async
    /// tests), accepting the tokens of `tokens`.
    pub fn start(kind: ForgeKind, tokens: Tokens) -> FakeForge {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            kind,
            tokens,
            base: format!("http://127.0.0.1:{port}"),
            inner: Mutex::new(Inner::default()),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let state = shared.clone();
        std::thread::Builder::new()
            .name(format!("fake-forge-{kind}"))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                    let app = axum::Router::new().fallback(handle).with_state(state);
                    let serve = axum::serve(listener, app);
                    tokio::select! {
                        _ = serve => {}
                        _ = stopped => {}
                    }
                });
            })
            .unwrap();
        FakeForge {
            shared,
            stop: Some(stop),
        }
    }

    pub fn kind(&self) -> ForgeKind {
        self.shared.kind
    }

    /// `http://127.0.0.1:PORT` (no path).
    pub fn base_url(&self) -> String {
        self.shared.base.clone()
    }

    /// The base to put in `[forges.X] api`: GitHub the root, GitLab `/api/v4`, Bitbucket Cloud
    /// `/2.0`, Bitbucket DC `/rest/api/1.0`, Gitea `/api/v1`.
    pub fn api_url(&self) -> String {
        format!("{}{}", self.shared.base, api_prefix(self.shared.kind))
    }

    pub fn tokens(&self) -> &Tokens {
        &self.shared.tokens
    }

    /// The PRs of `repo_path` (`owner/name`, GitLab `group/sub/name`, Bitbucket DC
    /// `PROJ/repo`), in creation order.
    pub fn prs(&self, repo_path: &str) -> Vec<FakePr> {
        self.lock().prs.get(repo_path).cloned().unwrap_or_default()
    }

    /// The comments on PR `number` of `repo_path`, in order.
    pub fn comments(&self, repo_path: &str, number: u64) -> Vec<String> {
        self.lock()
            .comments
            .get(&(repo_path.to_string(), number))
            .cloned()
            .unwrap_or_default()
    }

    /// Every request answered: (method, path without query, status).
    pub fn requests(&self) -> Vec<(String, String, u16)> {
        self.lock()
            .requests
            .iter()
            .map(|r| (r.method.clone(), r.path.clone(), r.status))
            .collect()
    }

    /// Every request answered, with query, headers and time.
    pub fn request_log(&self) -> Vec<FakeRequest> {
        self.lock().requests.clone()
    }

    /// The next request with `method` whose path contains `path_contains` is answered
    /// `status` (in the kind's error JSON; 429 and 403 with `Retry-After` when `retry_after`).
    /// Queued answers are used first in, first out.
    pub fn fail_next(
        &self,
        method: &str,
        path_contains: &str,
        status: u16,
        retry_after: Option<u64>,
    ) {
        self.lock().failures.push_back(Failure {
            method: method.to_uppercase(),
            path_contains: path_contains.to_string(),
            status,
            retry_after,
            reset_in: None,
        });
    }

    /// GitHub's primary rate limit: the next matching request is answered 403 with
    /// `x-ratelimit-remaining: 0` and `x-ratelimit-reset` = now + `reset_in` (epoch seconds).
    pub fn exhaust_next(&self, method: &str, path_contains: &str, reset_in: u64) {
        self.lock().failures.push_back(Failure {
            method: method.to_uppercase(),
            path_contains: path_contains.to_string(),
            status: 403,
            retry_after: None,
            reset_in: Some(reset_in),
        });
    }

    /// The next PR create succeeds, but its answer is a 502 (the "answer lost" case).
    pub fn lose_next_create_answer(&self) {
        self.lock().lose_next_create = true;
    }

    /// Adds an open PR as if someone opened it on the forge.
    pub fn add_pr(&self, repo_path: &str, head: &str, base: &str, title: &str) -> u64 {
        let mut inner = self.lock();
        insert_pr(&mut inner, repo_path, head, base, title, "", false)
    }

    /// Sets PR `number`'s state (a closed or merged PR is not "the open PR of its head").
    pub fn set_state(&self, repo_path: &str, number: u64, state: FakePrState) {
        let mut inner = self.lock();
        if let Some(pr) = inner
            .prs
            .get_mut(repo_path)
            .and_then(|v| v.iter_mut().find(|p| p.number == number))
        {
            pr.state = state;
        }
    }

    /// Makes this (GitHub) fake a GitHub App's home: installation tokens are minted for JWTs
    /// signed by the app's key.
    pub fn enable_github_app(&self, app: FakeApp) {
        self.lock().app = Some(app);
    }

    /// Installation tokens minted so far, in order.
    pub fn minted_tokens(&self) -> Vec<String> {
        self.lock().minted.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.shared.inner.lock().unwrap()
    }
}

impl Drop for FakeForge {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn api_prefix(kind: ForgeKind) -> &'static str {
    match kind {
        ForgeKind::Github => "",
        ForgeKind::Gitlab => "/api/v4",
        ForgeKind::BitbucketCloud => "/2.0",
        ForgeKind::BitbucketDc => "/rest/api/1.0",
        ForgeKind::Gitea => "/api/v1",
    }
}

fn insert_pr(
    inner: &mut Inner,
    repo: &str,
    head: &str,
    base: &str,
    title: &str,
    body: &str,
    draft: bool,
) -> u64 {
    let list = inner.prs.entry(repo.to_string()).or_default();
    let number = list.iter().map(|p| p.number).max().unwrap_or(0) + 1;
    list.push(FakePr {
        number,
        head: head.to_string(),
        base: base.to_string(),
        title: title.to_string(),
        body: body.to_string(),
        draft,
        state: FakePrState::Open,
    });
    number
}

/// `%XX` decoding of one path segment.
fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query_map(q: &str) -> HashMap<String, String> {
    url::form_urlencoded::parse(q.as_bytes())
        .into_owned()
        .collect()
}

fn json_response(status: u16, body: Value, extra: &[(&str, String)]) -> Response {
    let mut r = (
        StatusCode::from_u16(status).unwrap(),
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response();
    for (k, v) in extra {
        r.headers_mut().insert(
            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    r
}

/// The kind's error JSON for `status` with `message`.
fn error_body(kind: ForgeKind, status: u16, message: &str) -> Value {
    match kind {
        ForgeKind::Github => json!({
            "message": message,
            "documentation_url": "https://docs.github.com/rest",
            "status": status.to_string(),
        }),
        ForgeKind::Gitlab => json!({ "message": message }),
        ForgeKind::BitbucketCloud => json!({"type": "error", "error": {"message": message}}),
        ForgeKind::BitbucketDc => json!({"errors": [{
            "context": null,
            "message": message,
            "exceptionName": match status {
                401 => "com.atlassian.bitbucket.auth.IncorrectPasswordAuthenticationException",
                403 => "com.atlassian.bitbucket.AuthorisationException",
                409 => "com.atlassian.bitbucket.pull.DuplicatePullRequestException",
                _ => "com.atlassian.bitbucket.ServiceException",
            },
        }]}),
        ForgeKind::Gitea => json!({"message": message, "url": "/api/swagger"}),
    }
}

fn default_message(kind: ForgeKind, status: u16) -> &'static str {
    match (kind, status) {
        (ForgeKind::Github, 401) => "Bad credentials",
        (ForgeKind::Github, 403) => "Resource not accessible by personal access token",
        (ForgeKind::Github, 422) => "Validation Failed",
        (ForgeKind::Github, 429) => "API rate limit exceeded",
        (ForgeKind::Gitlab, 401) => "401 Unauthorized",
        (ForgeKind::Gitlab, 403) => "403 Forbidden",
        (ForgeKind::Gitlab, 409) => "409 Conflict",
        (ForgeKind::BitbucketCloud, 401) => "Unauthorized",
        (ForgeKind::BitbucketCloud, 403) => {
            "Your credentials lack one or more required privilege scopes."
        }
        (ForgeKind::BitbucketDc, 401) => {
            "Authentication failed. Please check your credentials and try again."
        }
        (ForgeKind::BitbucketDc, 403) => "You are not permitted to access this resource",
        (ForgeKind::Gitea, 401) => "token is required",
        (ForgeKind::Gitea, 403) => {
            "token does not have at least one of required scope(s): [write:repository]"
        }
        (_, 409) => "conflict",
        (_, 429) => "Too Many Requests",
        (_, 502) => "Bad Gateway",
        _ => "error",
    }
}

fn kind_error(kind: ForgeKind, status: u16, retry_after: Option<u64>) -> Response {
    let mut body = error_body(kind, status, default_message(kind, status));
    let mut extra = Vec::new();
    if let Some(s) = retry_after {
        extra.push(("retry-after", s.to_string()));
        if kind == ForgeKind::Github && status == 403 {
            body = error_body(
                kind,
                403,
                "You have exceeded a secondary rate limit. Please wait a few minutes before you \
                 try again.",
            );
        }
    }
    match (kind, status) {
        (ForgeKind::Github, 403) if retry_after.is_none() => {
            extra.push((
                "x-accepted-github-permissions",
                "pull_requests=write".into(),
            ));
        }
        (ForgeKind::Gitlab, 403) => {
            body = json!({
                "error": "insufficient_scope",
                "error_description": "The request requires higher privileges than provided by \
                                      the access token.",
                "scope": "api",
            });
        }
        (ForgeKind::BitbucketCloud, 403) => {
            body["error"]["detail"] = json!({"granted": ["repository"], "required":
                ["pullrequest:write"]});
        }
        _ => {}
    }
    json_response(status, body, &extra)
}

/// The token the request carries, as the kind reads it.
fn presented_token(kind: ForgeKind, headers: &HeaderMap) -> Option<String> {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let scheme = |prefixes: &[&str]| {
        auth.as_deref().and_then(|a| {
            prefixes
                .iter()
                .find_map(|p| a.strip_prefix(p).map(|t| t.trim().to_string()))
        })
    };
    match kind {
        ForgeKind::Github | ForgeKind::Gitea => scheme(&["Bearer ", "token "]),
        ForgeKind::Gitlab => headers
            .get("private-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .or_else(|| scheme(&["Bearer "])),
        ForgeKind::BitbucketCloud | ForgeKind::BitbucketDc => scheme(&["Bearer "]),
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let query = uri.query().unwrap_or("").to_string();
    let response = answer(&shared, &method, &path, &query, &headers, &body);
    let mut kept = HashMap::new();
    for name in [
        "user-agent",
        "accept",
        "x-github-api-version",
        "content-type",
    ] {
        if let Some(v) = headers.get(name).and_then(|v| v.to_str().ok()) {
            kept.insert(name.to_string(), v.to_string());
        }
    }
    shared.inner.lock().unwrap().requests.push(FakeRequest {
        method: method.to_string(),
        path,
        query,
        status: response.status().as_u16(),
        headers: kept,
        at: std::time::Instant::now(),
    });
    response
}

fn answer(
    shared: &Shared,
    method: &Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let kind = shared.kind;
    // Scripted answers first.
    {
        let mut inner = shared.inner.lock().unwrap();
        if let Some(i) = inner
            .failures
            .iter()
            .position(|f| f.method == method.as_str() && path.contains(&f.path_contains))
        {
            let f = inner.failures.remove(i).unwrap();
            drop(inner);
            return scripted(kind, &f, path);
        }
    }
    let Some(rest) = path.strip_prefix(api_prefix(kind)) else {
        return kind_error(kind, 404, None);
    };
    let segs: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
    // GitHub App endpoints authenticate with the app's JWT, not a token.
    if kind == ForgeKind::Github {
        match (method.as_str(), segs.as_slice()) {
            ("POST", ["app", "installations", id, "access_tokens"]) => {
                return mint(shared, headers, id);
            }
            ("GET", ["repos", o, r, "installation"]) => {
                return installation(shared, headers, &format!("{o}/{r}"));
            }
            _ => {}
        }
    }
    match presented_token(kind, headers).map(|t| shared.tokens.check(&t)) {
        Some(TokenCheck::Valid(scopes)) => {
            if !scopes.pull_requests {
                return kind_error(kind, 403, None);
            }
        }
        _ => return kind_error(kind, 401, None),
    }
    let q = query_map(query);
    let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let post = method == Method::POST;
    let get = method == Method::GET;
    match kind {
        ForgeKind::Github | ForgeKind::Gitea => match segs.as_slice() {
            ["repos", o, r, "pulls"] if get => {
                let repo = format!("{o}/{r}");
                let open = q.get("state").is_none_or(|s| s == "open");
                let mut list: Vec<FakePr> = shared
                    .inner
                    .lock()
                    .unwrap()
                    .prs
                    .get(&repo)
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|p| !open || p.state == FakePrState::Open)
                    .collect();
                if kind == ForgeKind::Github {
                    if let Some(h) = q.get("head") {
                        let branch = h.split_once(':').map_or(h.as_str(), |(_, b)| b);
                        list.retain(|p| p.head == branch);
                    }
                    let v: Vec<Value> = list.iter().map(|p| pr_json(shared, &repo, p)).collect();
                    json_response(200, Value::Array(v), &[])
                } else {
                    // Gitea pages with page (from 1) and limit (at most 50).
                    let limit: usize = q
                        .get("limit")
                        .and_then(|l| l.parse().ok())
                        .unwrap_or(30)
                        .clamp(1, 50);
                    let page: usize = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
                    let total = list.len();
                    let v: Vec<Value> = list
                        .iter()
                        .skip((page.max(1) - 1) * limit)
                        .take(limit)
                        .map(|p| pr_json(shared, &repo, p))
                        .collect();
                    json_response(
                        200,
                        Value::Array(v),
                        &[("x-total-count", total.to_string())],
                    )
                }
            }
            ["repos", o, r, "pulls"] if post => {
                let repo = format!("{o}/{r}");
                let head = str_field(&body, "head");
                let head = head
                    .split_once(':')
                    .map_or(head.clone(), |(_, b)| b.to_string());
                let title = str_field(&body, "title");
                let draft = if kind == ForgeKind::Github {
                    body["draft"].as_bool().unwrap_or(false)
                } else {
                    title.starts_with("WIP:") || title.starts_with("[WIP]")
                };
                create(
                    shared,
                    &repo,
                    &head,
                    &str_field(&body, "base"),
                    &title,
                    &str_field(&body, "body"),
                    draft,
                )
            }
            ["repos", o, r, "issues", n, "comments"] if post => comment(
                shared,
                &format!("{o}/{r}"),
                n,
                &str_field(&body, "body"),
                json!({"id": 1, "body": str_field(&body, "body")}),
            ),
            _ => kind_error(kind, 404, None),
        },
        ForgeKind::Gitlab => match segs.as_slice() {
            ["projects", id, "merge_requests"] if get => {
                let repo = decode(id);
                let opened = q.get("state").is_none_or(|s| s == "opened");
                let v: Vec<Value> = shared
                    .inner
                    .lock()
                    .unwrap()
                    .prs
                    .get(&repo)
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .filter(|p| !opened || p.state == FakePrState::Open)
                    .filter(|p| q.get("source_branch").is_none_or(|b| *b == p.head))
                    .map(|p| pr_json(shared, &repo, p))
                    .collect();
                json_response(200, Value::Array(v), &[])
            }
            ["projects", id, "merge_requests"] if post => create(
                shared,
                &decode(id),
                &str_field(&body, "source_branch"),
                &str_field(&body, "target_branch"),
                &str_field(&body, "title"),
                &str_field(&body, "description"),
                body["draft"].as_bool().unwrap_or(false),
            ),
            ["projects", id, "merge_requests", n, "notes"] if post => comment(
                shared,
                &decode(id),
                n,
                &str_field(&body, "body"),
                json!({"id": 1, "body": str_field(&body, "body"), "noteable_type": "MergeRequest"}),
            ),
            _ => kind_error(kind, 404, None),
        },
        ForgeKind::BitbucketCloud => match segs.as_slice() {
            ["repositories", ws, slug, "pullrequests"] if get => {
                let repo = format!("{ws}/{slug}");
                let filter = q.get("q").cloned().unwrap_or_default();
                let branch = quoted_after(&filter, "source.branch.name=");
                let open = filter.contains("state=\"OPEN\"");
                let v: Vec<Value> = shared
                    .inner
                    .lock()
                    .unwrap()
                    .prs
                    .get(&repo)
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .filter(|p| !open || p.state == FakePrState::Open)
                    .filter(|p| branch.as_ref().is_none_or(|b| *b == p.head))
                    .map(|p| pr_json(shared, &repo, p))
                    .collect();
                json_response(
                    200,
                    json!({"values": v, "pagelen": 10, "size": v.len(), "page": 1}),
                    &[],
                )
            }
            ["repositories", ws, slug, "pullrequests"] if post => create(
                shared,
                &format!("{ws}/{slug}"),
                body["source"]["branch"]["name"].as_str().unwrap_or(""),
                body["destination"]["branch"]["name"]
                    .as_str()
                    .unwrap_or("main"),
                &str_field(&body, "title"),
                &str_field(&body, "description"),
                body["draft"].as_bool().unwrap_or(false),
            ),
            ["repositories", ws, slug, "pullrequests", n, "comments"] if post => {
                let raw = body["content"]["raw"].as_str().unwrap_or("").to_string();
                comment(
                    shared,
                    &format!("{ws}/{slug}"),
                    n,
                    &raw,
                    json!({"id": 1, "type": "pullrequest_comment", "content": {"raw": raw}}),
                )
            }
            _ => kind_error(kind, 404, None),
        },
        ForgeKind::BitbucketDc => match segs.as_slice() {
            ["projects", p, "repos", r, "pull-requests"] if get => {
                let repo = format!("{p}/{r}");
                let at = q.get("at").cloned();
                let open = q.get("state").is_none_or(|s| s == "OPEN");
                let v: Vec<Value> = shared
                    .inner
                    .lock()
                    .unwrap()
                    .prs
                    .get(&repo)
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .filter(|p| !open || p.state == FakePrState::Open)
                    .filter(|p| {
                        at.as_ref()
                            .is_none_or(|a| a.strip_prefix("refs/heads/").unwrap_or(a) == p.head)
                    })
                    .map(|p| pr_json(shared, &repo, p))
                    .collect();
                json_response(
                    200,
                    json!({"size": v.len(), "limit": 25, "start": 0, "isLastPage": true,
                           "values": v}),
                    &[],
                )
            }
            ["projects", p, "repos", r, "pull-requests"] if post => {
                let strip = |v: &Value| {
                    let id = v["id"].as_str().unwrap_or("");
                    id.strip_prefix("refs/heads/").unwrap_or(id).to_string()
                };
                create(
                    shared,
                    &format!("{p}/{r}"),
                    &strip(&body["fromRef"]),
                    &strip(&body["toRef"]),
                    &str_field(&body, "title"),
                    &str_field(&body, "description"),
                    body["draft"].as_bool().unwrap_or(false),
                )
            }
            ["projects", p, "repos", r, "pull-requests", n, "comments"] if post => comment(
                shared,
                &format!("{p}/{r}"),
                n,
                &str_field(&body, "text"),
                json!({"id": 1, "version": 0, "text": str_field(&body, "text")}),
            ),
            _ => kind_error(kind, 404, None),
        },
    }
}

fn str_field(v: &Value, name: &str) -> String {
    v[name].as_str().unwrap_or("").to_string()
}

/// `"X"` after `key` in a Bitbucket Cloud `q` filter.
fn quoted_after(filter: &str, key: &str) -> Option<String> {
    let rest = &filter[filter.find(key)? + key.len()..];
    let rest = rest.trim_start().strip_prefix('"')?;
    Some(rest[..rest.find('"')?].to_string())
}

fn scripted(kind: ForgeKind, f: &Failure, path: &str) -> Response {
    if let Some(reset_in) = f.reset_in {
        let reset = chrono::Utc::now().timestamp() + reset_in as i64;
        return json_response(
            f.status,
            error_body(kind, f.status, "API rate limit exceeded for user."),
            &[
                ("x-ratelimit-limit", "5000".into()),
                ("x-ratelimit-remaining", "0".into()),
                ("x-ratelimit-reset", reset.to_string()),
            ],
        );
    }
    match (kind, f.status) {
        (ForgeKind::Github, 422) => json_response(
            422,
            json!({"message": "Validation Failed", "errors": [{"resource": "PullRequest",
                   "code": "custom", "message": format!("A pull request already exists for {}.",
                   path)}], "documentation_url":
                   "https://docs.github.com/rest/pulls/pulls#create-a-pull-request",
                   "status": "422"}),
            &[],
        ),
        _ => kind_error(kind, f.status, f.retry_after),
    }
}

fn pr_json(shared: &Shared, repo: &str, p: &FakePr) -> Value {
    let base = &shared.base;
    let n = p.number;
    match shared.kind {
        ForgeKind::Github | ForgeKind::Gitea => {
            let url = if shared.kind == ForgeKind::Github {
                format!("{base}/{repo}/pull/{n}")
            } else {
                format!("{base}/{repo}/pulls/{n}")
            };
            json!({
                "id": 1000 + n, "number": n, "html_url": url,
                "state": if p.state == FakePrState::Open { "open" } else { "closed" },
                "merged": p.state == FakePrState::Merged,
                "draft": p.draft, "title": p.title, "body": p.body,
                "head": {"ref": p.head, "label": format!("{}:{}", repo.split('/').next()
                    .unwrap_or(""), p.head)},
                "base": {"ref": p.base},
            })
        }
        ForgeKind::Gitlab => json!({
            "id": 1000 + n, "iid": n, "web_url": format!("{base}/{repo}/-/merge_requests/{n}"),
            "state": match p.state { FakePrState::Open => "opened", FakePrState::Closed =>
                "closed", FakePrState::Merged => "merged" },
            "draft": p.draft, "title": p.title, "description": p.body,
            "source_branch": p.head, "target_branch": p.base,
        }),
        ForgeKind::BitbucketCloud => json!({
            "type": "pullrequest", "id": n,
            "state": match p.state { FakePrState::Open => "OPEN", FakePrState::Closed =>
                "DECLINED", FakePrState::Merged => "MERGED" },
            "draft": p.draft, "title": p.title, "description": p.body,
            "links": {"html": {"href": format!("{base}/{repo}/pull-requests/{n}")}},
            "source": {"branch": {"name": p.head}},
            "destination": {"branch": {"name": p.base}},
        }),
        ForgeKind::BitbucketDc => {
            let (proj, r) = repo.split_once('/').unwrap_or((repo, ""));
            json!({
                "id": n, "version": 0,
                "state": match p.state { FakePrState::Open => "OPEN", FakePrState::Closed =>
                    "DECLINED", FakePrState::Merged => "MERGED" },
                "open": p.state == FakePrState::Open,
                "draft": p.draft, "title": p.title, "description": p.body,
                "fromRef": {"id": format!("refs/heads/{}", p.head), "displayId": p.head},
                "toRef": {"id": format!("refs/heads/{}", p.base), "displayId": p.base},
                "links": {"self": [{"href":
                    format!("{base}/projects/{proj}/repos/{r}/pull-requests/{n}")}]},
            })
        }
    }
}

fn create(
    shared: &Shared,
    repo: &str,
    head: &str,
    base: &str,
    title: &str,
    body: &str,
    draft: bool,
) -> Response {
    let kind = shared.kind;
    if head.is_empty() || title.is_empty() {
        return kind_error(
            kind,
            if kind == ForgeKind::Github { 422 } else { 400 },
            None,
        );
    }
    let mut inner = shared.inner.lock().unwrap();
    let existing = inner.prs.get_mut(repo).and_then(|v| {
        v.iter_mut()
            .find(|p| p.head == head && p.state == FakePrState::Open)
    });
    if let Some(p) = existing {
        let n = p.number;
        return match kind {
            ForgeKind::Github => json_response(
                422,
                json!({"message": "Validation Failed", "errors": [{"resource": "PullRequest",
                       "code": "custom", "message": format!("A pull request already exists for \
                       {}:{head}.", repo.split('/').next().unwrap_or(""))}],
                       "documentation_url":
                       "https://docs.github.com/rest/pulls/pulls#create-a-pull-request",
                       "status": "422"}),
                &[],
            ),
            ForgeKind::Gitlab => json_response(
                409,
                json!({"message": [format!("Another open merge request already exists for \
                       this source branch: !{n}")]}),
                &[],
            ),
            ForgeKind::BitbucketDc => json_response(
                409,
                json!({"errors": [{"context": null, "message": "Only one pull request may be \
                       open for a given source and target branch", "exceptionName":
                       "com.atlassian.bitbucket.pull.DuplicatePullRequestException"}]}),
                &[],
            ),
            ForgeKind::Gitea => json_response(
                409,
                json!({"message": "pull request already exists for these targets",
                       "url": "/api/swagger"}),
                &[],
            ),
            ForgeKind::BitbucketCloud => {
                // Bitbucket Cloud updates the open PR of the same source and returns it.
                p.title = title.to_string();
                p.body = body.to_string();
                let p = p.clone();
                drop(inner);
                json_response(200, pr_json(shared, repo, &p), &[])
            }
        };
    }
    let number = insert_pr(&mut inner, repo, head, base, title, body, draft);
    let lost = std::mem::take(&mut inner.lose_next_create);
    let pr = inner
        .prs
        .get(repo)
        .and_then(|v| v.iter().find(|p| p.number == number))
        .cloned()
        .unwrap();
    drop(inner);
    if lost {
        return kind_error(kind, 502, None);
    }
    json_response(201, pr_json(shared, repo, &pr), &[])
}

fn comment(shared: &Shared, repo: &str, number: &str, text: &str, answer: Value) -> Response {
    let kind = shared.kind;
    let Ok(n) = number.parse::<u64>() else {
        return kind_error(kind, 404, None);
    };
    let mut inner = shared.inner.lock().unwrap();
    if !inner
        .prs
        .get(repo)
        .is_some_and(|v| v.iter().any(|p| p.number == n))
    {
        return kind_error(kind, 404, None);
    }
    inner
        .comments
        .entry((repo.to_string(), n))
        .or_default()
        .push(text.to_string());
    json_response(201, answer, &[])
}

#[derive(serde::Deserialize)]
struct AppClaims {
    iss: Value,
    iat: i64,
    exp: i64,
}

/// Checks the app JWT of `headers`; `Err`: the message of GitHub's 401.
fn check_jwt(shared: &Shared, headers: &HeaderMap) -> Result<FakeApp, String> {
    let kind = shared.kind;
    let unauthorized = |m: &str| Err(m.to_string());
    let Some(app) = shared.inner.lock().unwrap().app.clone() else {
        return unauthorized("no GitHub App here");
    };
    let Some(jwt) = presented_token(kind, headers) else {
        return unauthorized("A JSON web token could not be decoded");
    };
    let Ok(key) = jsonwebtoken::DecodingKey::from_rsa_pem(app.public_key_pem.as_bytes()) else {
        return unauthorized("bad app key");
    };
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.leeway = 0;
    validation.required_spec_claims = ["exp"].map(String::from).into();
    let data = match jsonwebtoken::decode::<AppClaims>(&jwt, &key, &validation) {
        Ok(data) => data,
        Err(e) => {
            return unauthorized(&format!("A JSON web token could not be decoded ({e})"));
        }
    };
    let iss = match &data.claims.iss {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if iss != app.app_id {
        return unauthorized("'Issuer' claim ('iss') must be an Integer");
    }
    let now = chrono::Utc::now().timestamp();
    if data.claims.iat > now + 60 || data.claims.exp - data.claims.iat > 600 {
        return unauthorized(
            "'Expiration time' claim ('exp') is too far in the future (at most 10 minutes)",
        );
    }
    Ok(app)
}

fn mint(shared: &Shared, headers: &HeaderMap, id: &str) -> Response {
    let app = match check_jwt(shared, headers) {
        Ok(app) => app,
        Err(m) => return json_response(401, error_body(shared.kind, 401, &m), &[]),
    };
    if id.parse::<u64>().ok() != Some(app.installation_id) {
        return kind_error(shared.kind, 404, None);
    }
    let mut inner = shared.inner.lock().unwrap();
    let token = format!("ghs_fake{}x{}", app.installation_id, inner.minted.len() + 1);
    inner.minted.push(token.clone());
    drop(inner);
    shared
        .tokens
        .grant(&token, Scopes::ALL, Some(app.token_ttl));
    let expires = chrono::Utc::now()
        + chrono::Duration::from_std(app.token_ttl).unwrap_or(chrono::Duration::hours(1));
    json_response(
        201,
        json!({
            "token": token,
            "expires_at": expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "permissions": {"contents": "write", "pull_requests": "write"},
            "repository_selection": "selected",
        }),
        &[],
    )
}

fn installation(shared: &Shared, headers: &HeaderMap, repo: &str) -> Response {
    let app = match check_jwt(shared, headers) {
        Ok(app) => app,
        Err(m) => return json_response(401, error_body(shared.kind, 401, &m), &[]),
    };
    if !app.repos.is_empty() && !app.repos.iter().any(|r| r == repo) {
        return kind_error(shared.kind, 404, None);
    }
    json_response(
        200,
        json!({
            "id": app.installation_id,
            "app_id": app.app_id.parse::<u64>().unwrap_or(0),
            "account": {"login": repo.split('/').next().unwrap_or("")},
        }),
        &[],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_percent_escapes() {
        assert_eq!(decode("group%2Fsub%2Fname"), "group/sub/name");
        assert_eq!(decode("a%2"), "a%2");
        assert_eq!(decode("plain"), "plain");
    }

    #[test]
    fn reads_bitbucket_cloud_filters() {
        let q = r#"source.branch.name="drover/t1" AND state="OPEN""#;
        assert_eq!(
            quoted_after(q, "source.branch.name=").as_deref(),
            Some("drover/t1")
        );
    }

    #[tokio::test]
    async fn github_subset_answers_like_github() {
        let tokens = Tokens::new();
        tokens.grant("good", Scopes::ALL, None);
        tokens.grant("ro", Scopes::READ_ONLY, None);
        let f = FakeForge::start(ForgeKind::Github, tokens);
        let c = reqwest::Client::new();
        let url = format!("{}/repos/o/r/pulls", f.api_url());
        let pr = json!({"title": "t", "head": "drover/x", "base": "main", "body": "b"});
        let r = c.post(&url).json(&pr).send().await.unwrap();
        assert_eq!(r.status(), 401);
        let r = c
            .post(&url)
            .bearer_auth("ro")
            .json(&pr)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        let r = c
            .post(&url)
            .bearer_auth("good")
            .json(&pr)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let r = c
            .post(&url)
            .header("authorization", "token good")
            .json(&pr)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422);
        let r = c
            .get(format!("{url}?head=o:drover/x&state=open"))
            .bearer_auth("good")
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap();
        assert_eq!(v[0]["number"], 1);
        assert_eq!(f.prs("o/r").len(), 1);
        f.fail_next("GET", "/pulls", 429, Some(3));
        let r = c.get(&url).bearer_auth("good").send().await.unwrap();
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()["retry-after"], "3");
    }
}

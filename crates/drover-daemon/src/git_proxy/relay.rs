//! The proxy's HTTP handler: git's smart-HTTP requests only (`GET …/info/refs?service=…`,
//! `POST …/git-upload-pack`, `POST …/git-receive-pack`), checked against the caller's
//! [`Scope`], relayed to the forge with the credential, bodies streamed both ways.
//!
//! What git shows when drover refuses: another repository or a push of a fetch-only scope at
//! `info/refs` → `fatal: remote error: drover: …` (an `ERR` advertisement); a push of a ref the
//! scope may not write (another branch, a delete) → ` ! [remote rejected] REF (drover: this task
//! may push only drover/<id>)` and `remote: drover: …`; the forge refusing drover's token even
//! after a refresh, or a permission → `fatal: remote error: drover: the forge refused …`. Never
//! the forge's own auth challenge (git would ask for a password).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use drover_forge::RepoRef;
use futures::StreamExt;

use super::{pkt, Capability, GitProxy, Refused, RETRY_BODY};

/// Who is asking: the daemon (capabilities in the path) or one task (its socket).
#[derive(Clone)]
pub enum Ctx {
    Daemon(Arc<GitProxy>),
    /// A task's socket: its scope is read from the store on each request.
    Task(Arc<GitProxy>, Arc<dyn drover_store::Store>, String),
}

pub fn router(ctx: Ctx) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(ctx)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Service {
    UploadPack,
    ReceivePack,
}

impl Service {
    fn name(self) -> &'static str {
        match self {
            Service::UploadPack => "git-upload-pack",
            Service::ReceivePack => "git-receive-pack",
        }
    }
    fn parse(s: &str) -> Option<Service> {
        match s {
            "git-upload-pack" => Some(Service::UploadPack),
            "git-receive-pack" => Some(Service::ReceivePack),
            _ => None,
        }
    }
}

/// One of the three requests of git's smart HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Advertise(Service),
    Rpc(Service),
}

impl Op {
    fn service(self) -> Service {
        match self {
            Op::Advertise(s) | Op::Rpc(s) => s,
        }
    }
    /// Where git expects drover's own answer: the content type of this request's answer.
    fn content_type(self) -> String {
        match self {
            Op::Advertise(s) => format!("application/x-{}-advertisement", s.name()),
            Op::Rpc(s) => format!("application/x-{}-result", s.name()),
        }
    }
}

fn plain(status: StatusCode, text: &str) -> Response {
    let mut r = Response::new(Body::from(format!("{text}\n")));
    *r.status_mut() = status;
    r
}

/// An answer git prints as `remote error: MESSAGE`.
fn git_error(op: Op, message: &str) -> Response {
    let mut r = Response::new(Body::from(pkt::err_advertisement(message)));
    if let Ok(v) = HeaderValue::from_str(&op.content_type()) {
        r.headers_mut().insert("content-type", v);
    }
    r.headers_mut()
        .insert("cache-control", HeaderValue::from_static("no-cache"));
    r
}

async fn handle(State(ctx): State<Ctx>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let (proxy, cap, rest) = match &ctx {
        Ctx::Task(p, store, id) => {
            let task = match store.get_task(id).await {
                Ok(t) => t,
                Err(_) => return plain(StatusCode::FORBIDDEN, "drover: this task is gone"),
            };
            let scope = super::scope(p, &task).unwrap_or(super::Scope {
                repos: vec![],
                push_task: Some(id.clone()),
            });
            (
                p.clone(),
                Capability::new(scope),
                path.trim_start_matches('/').to_string(),
            )
        }
        Ctx::Daemon(p) => {
            let Some((key, rest)) = path.strip_prefix("/c/").and_then(|r| r.split_once('/')) else {
                return plain(StatusCode::NOT_FOUND, "not found");
            };
            let Some(cap) = p.lookup(key) else {
                return plain(StatusCode::FORBIDDEN, "drover: unknown or ended capability");
            };
            (p.clone(), cap, rest.to_string())
        }
    };
    let query = req.uri().query().unwrap_or("").to_string();
    // `<repo path>/<suffix>`: the suffix names the operation.
    let (op, repo_path) = if let Some(repo) = rest.strip_suffix("/info/refs") {
        let service = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("service="))
            .and_then(Service::parse);
        match (req.method().as_str(), service) {
            ("GET", Some(s)) => (Op::Advertise(s), repo),
            // Dumb HTTP (no service) is not served.
            _ => {
                return plain(
                    StatusCode::FORBIDDEN,
                    "drover: only git's smart HTTP is served",
                )
            }
        }
    } else if let Some((repo, s)) = rest
        .rsplit_once('/')
        .and_then(|(r, s)| Service::parse(s).map(|s| (r, s)))
    {
        if req.method() != "POST" {
            return plain(StatusCode::METHOD_NOT_ALLOWED, "drover: POST only");
        }
        (Op::Rpc(s), repo)
    } else {
        return plain(StatusCode::NOT_FOUND, "not found");
    };
    let Some(repo) = cap
        .scope
        .repos
        .iter()
        .find(|r| super::url_path(&r.clone_url).as_deref() == Some(repo_path))
        .cloned()
    else {
        let names: Vec<&str> = cap.scope.repos.iter().map(|r| r.path.as_str()).collect();
        let message = match names.is_empty() {
            true => "drover: this task has no repository on a configured forge".to_string(),
            false => format!("drover: this task may use only {}", names.join(", ")),
        };
        return git_error(op, &message);
    };
    if op.service() == Service::ReceivePack && cap.scope.push_task.is_none() {
        return git_error(op, &cap.scope.push_refusal());
    }
    relay(&proxy, &cap, &repo, op, req).await
}

/// The request's body: whole when it is at most [`RETRY_BODY`] (a retry can send it again),
/// else its first part and the rest still streaming.
enum Payload {
    Whole(Bytes),
    Streaming(Bytes, Body),
}

async fn read_body(body: Body) -> Result<Payload, String> {
    let mut stream = body.into_data_stream();
    let mut buf = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| e.to_string())?;
        buf.extend_from_slice(&chunk);
        if buf.len() > RETRY_BODY {
            return Ok(Payload::Streaming(
                Bytes::from(buf),
                Body::from_stream(stream),
            ));
        }
    }
    Ok(Payload::Whole(Bytes::from(buf)))
}

async fn relay(
    proxy: &GitProxy,
    cap: &Capability,
    repo: &RepoRef,
    op: Op,
    req: Request,
) -> Response {
    let forward: Vec<(String, HeaderValue)> =
        ["content-type", "content-encoding", "accept", "git-protocol"]
            .iter()
            .filter_map(|h| req.headers().get(*h).map(|v| (h.to_string(), v.clone())))
            .collect();
    let mut payload = match op {
        Op::Advertise(_) => None,
        Op::Rpc(_) => match read_body(req.into_body()).await {
            Ok(p) => Some(p),
            Err(e) => return plain(StatusCode::BAD_REQUEST, &format!("drover: {e}")),
        },
    };
    if op == Op::Rpc(Service::ReceivePack) {
        let head = match &payload {
            Some(Payload::Whole(b)) | Some(Payload::Streaming(b, _)) => b.clone(),
            None => Bytes::new(),
        };
        let encoded = forward.iter().any(|(k, _)| k == "content-encoding");
        let parsed = (!encoded).then(|| pkt::parse_push(&head)).flatten();
        let Some(push) = parsed.filter(|p| p.complete || head.is_empty()) else {
            return git_error(op, "drover: push request not understood (signed and compressed pushes are not relayed)");
        };
        if push.push_options {
            // The forge acts on push options (GitLab: open a merge request to any branch, set
            // it to merge when the pipeline passes; skip CI): not a task's to send. Refused as
            // a report-status (in side-band when asked: git reads the answer there).
            let body = pkt::refusal(&push, |_| {
                "drover: push options (git push -o) are not relayed".to_string()
            });
            let mut r = Response::new(Body::from(body));
            if let Ok(v) = HeaderValue::from_str(&op.content_type()) {
                r.headers_mut().insert("content-type", v);
            }
            return r;
        }
        if push
            .commands
            .iter()
            .any(|c| c.is_delete() || !cap.scope.may_push(&c.refname))
        {
            let refusal = cap.scope.push_refusal();
            let body = pkt::refusal(&push, |c| {
                if c.is_delete() || !cap.scope.may_push(&c.refname) {
                    refusal.clone()
                } else {
                    "drover: not pushed: another ref of this push was refused".to_string()
                }
            });
            let mut r = Response::new(Body::from(body));
            if let Ok(v) = HeaderValue::from_str(&op.content_type()) {
                r.headers_mut().insert("content-type", v);
            }
            return r;
        }
    }
    let Some(entry) = proxy.forges.get(&repo.forge) else {
        return git_error(
            op,
            &format!("drover: forge {} is not configured", repo.forge),
        );
    };
    let credential = entry.credential.clone();
    // Only what was checked goes on: `service=` as parsed (a second `service=` would be the
    // one git-http-backend reads), nothing else of the client's query.
    let url = match op {
        Op::Advertise(s) => format!("{}/info/refs?service={}", repo.clone_url, s.name()),
        Op::Rpc(_) => format!("{}/{}", repo.clone_url, suffix(op)),
    };
    let mut token = match credential.token_for(repo).await {
        Ok(t) => t,
        Err(e) => {
            cap.set_refused(Refused::Credential(e.to_string()));
            return git_error(
                op,
                &format!("drover: no token for forge {}: {e}", repo.forge),
            );
        }
    };
    let mut retried = false;
    loop {
        let mut rb = proxy
            .http
            .request(
                if matches!(op, Op::Advertise(_)) {
                    reqwest::Method::GET
                } else {
                    reqwest::Method::POST
                },
                &url,
            )
            .header("authorization", credential.git_authorization(&token))
            .header("user-agent", "git/drover-proxy");
        for (k, v) in &forward {
            rb = rb.header(k.as_str(), v.clone());
        }
        let retryable = !matches!(payload, Some(Payload::Streaming(..)));
        rb = match payload.take() {
            None => rb,
            Some(Payload::Whole(b)) => {
                payload = Some(Payload::Whole(b.clone()));
                rb.body(b)
            }
            Some(Payload::Streaming(head, rest)) => {
                let first = futures::stream::once(async move { Ok::<Bytes, axum::Error>(head) });
                rb.body(reqwest::Body::wrap_stream(
                    first.chain(rest.into_data_stream()),
                ))
            }
        };
        let resp = match rb.send().await {
            Ok(r) => r,
            Err(e) => {
                let why = e.without_url().to_string();
                cap.set_refused(Refused::Unreachable(why.clone()));
                return git_error(
                    op,
                    &format!("drover: cannot reach the forge for {}: {why}", repo.path),
                );
            }
        };
        match resp.status().as_u16() {
            401 if !retried && retryable && credential.refreshable() => {
                retried = true;
                token = match credential.refresh_for(repo, &token).await {
                    Ok(t) => t,
                    Err(e) => {
                        cap.set_refused(Refused::Credential(e.to_string()));
                        return git_error(
                            op,
                            &format!("drover: no token for forge {}: {e}", repo.forge),
                        );
                    }
                };
                tracing::info!(forge = %repo.forge, repo = %repo.path, "forge answered 401; token refreshed, retrying");
                continue;
            }
            401 => {
                cap.set_refused(Refused::Unauthorized);
                let how = match retryable {
                    false => "a request too large to send twice, so no refresh was tried".into(),
                    true => credential.unauthorized_hint(),
                };
                return git_error(
                    op,
                    &format!(
                        "drover: the forge refused drover's token for {} ([forges.{}]): {how}",
                        repo.path, repo.forge
                    ),
                );
            }
            403 => {
                cap.set_refused(Refused::Forbidden);
                let hint = match op.service() {
                    Service::ReceivePack => drover_forge::push_permission_hint(repo.kind),
                    Service::UploadPack => "the token needs read access to the repository",
                };
                return git_error(
                    op,
                    &format!(
                        "drover: the forge refused {} on {} (403 Forbidden): {hint}",
                        match op.service() {
                            Service::ReceivePack => "the push",
                            Service::UploadPack => "the fetch",
                        },
                        repo.path
                    ),
                );
            }
            _ => {}
        }
        let mut out = Response::builder().status(resp.status().as_u16());
        for h in [
            "content-type",
            "cache-control",
            "expires",
            "pragma",
            "content-encoding",
        ] {
            if let Some(v) = resp.headers().get(h) {
                out = out.header(h, v.as_bytes());
            }
        }
        return out
            .body(Body::from_stream(resp.bytes_stream()))
            .unwrap_or_else(|_| {
                plain(StatusCode::BAD_GATEWAY, "drover: bad answer from the forge")
            });
    }
}

fn suffix(op: Op) -> &'static str {
    match op {
        Op::Advertise(_) => "info/refs",
        Op::Rpc(Service::UploadPack) => "git-upload-pack",
        Op::Rpc(Service::ReceivePack) => "git-receive-pack",
    }
}

//! A test forge's git server: bare repos under a temp root served by the REAL `git
//! http-backend` (CGI) over HTTP on 127.0.0.1, behind a token check against [`Tokens`].
//!
//! Auth: `Authorization: Basic base64(any-user:TOKEN)` or `Bearer TOKEN`. None, unknown or expired
//! → 401 with `WWW-Authenticate: Basic realm="test-forge"`; a push (`git-receive-pack`, either the
//! advertisement or the POST) with a token lacking the `write` scope → 403 with a body saying so.
//! Every request is recorded ([`GitServer::requests`]). Stops on drop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use base64::Engine as _;
use tokio::io::AsyncWriteExt;

use crate::forge_tokens::{TokenCheck, Tokens};
use crate::git::git;

/// One request the server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitRequest {
    pub method: String,
    /// The path and query, e.g. `/o/r.git/info/refs?service=git-upload-pack`.
    pub path: String,
    pub status: u16,
    /// The token presented (None: no credentials).
    pub token: Option<String>,
}

#[derive(Clone)]
struct Shared {
    root: PathBuf,
    tokens: Tokens,
    log: Arc<Mutex<Vec<GitRequest>>>,
}

/// The running server (see the module docs).
pub struct GitServer {
    addr: SocketAddr,
    root: tempfile::TempDir,
    log: Arc<Mutex<Vec<GitRequest>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl GitServer {
    /// Starts serving an empty root on 127.0.0.1:<free port> in a background thread.
    pub fn start(tokens: Tokens) -> GitServer {
        let root = tempfile::tempdir().unwrap();
        let log = Arc::new(Mutex::new(vec![]));
        let shared = Shared {
            root: root.path().to_path_buf(),
            tokens,
            log: log.clone(),
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let app = axum::Router::new().fallback(handle).with_state(shared);
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
        });
        GitServer {
            addr,
            root,
            log,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:<port>` (no trailing slash): a repo is at `<url>/<path>.git`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The clone URL of `path` (`<url>/<path>.git`).
    pub fn repo_url(&self, path: &str) -> String {
        format!("{}/{path}.git", self.url())
    }

    /// The bare repo of `path` on disk (`<root>/<path>.git`).
    pub fn repo_dir(&self, path: &str) -> PathBuf {
        self.root.path().join(format!("{path}.git"))
    }

    /// Creates a bare repo at `<root>/<path>.git` with one commit on `main` holding a README.
    pub fn create_repo(&self, path: &str) -> PathBuf {
        let bare = self.repo_dir(path);
        std::fs::create_dir_all(&bare).unwrap();
        git(&bare, &["init", "--bare", "-q", "-b", "main"]);
        git(&bare, &["config", "http.receivepack", "true"]);
        let work = tempfile::tempdir().unwrap();
        git(work.path(), &["init", "-q", "-b", "main"]);
        std::fs::write(work.path().join("README"), format!("{path}\n")).unwrap();
        crate::git::commit_all(work.path(), "initial");
        git(
            work.path(),
            &["push", "-q", bare.to_str().unwrap(), "main:refs/heads/main"],
        );
        bare
    }

    /// The branches of `path` and their commits (`refs/heads/` stripped), sorted by name.
    pub fn branches(&self, path: &str) -> Vec<(String, String)> {
        let out = git(
            &self.repo_dir(path),
            &[
                "for-each-ref",
                "--format=%(refname:strip=2) %(objectname)",
                "refs/heads/",
            ],
        );
        out.lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(b, c)| (b.to_string(), c.to_string()))
            .collect()
    }

    /// The commit of `branch` in `path`, if it exists.
    pub fn branch(&self, path: &str, branch: &str) -> Option<String> {
        self.branches(path)
            .into_iter()
            .find(|(b, _)| b == branch)
            .map(|(_, c)| c)
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<GitRequest> {
        self.log.lock().unwrap().clone()
    }

    /// How many `POST …/git-upload-pack` (fetches/clones that transferred) `path` answered 200.
    pub fn upload_packs(&self, path: &str) -> usize {
        let want = format!("/{path}.git/git-upload-pack");
        self.requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path == want && r.status == 200)
            .count()
    }
}

impl Drop for GitServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn presented_token(headers: &HeaderMap) -> Option<String> {
    let v = headers.get("authorization")?.to_str().ok()?;
    if let Some(b) = v.strip_prefix("Basic ") {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b.trim())
            .ok()?;
        let s = String::from_utf8(raw).ok()?;
        return s.split_once(':').map(|(_, t)| t.to_string());
    }
    v.strip_prefix("Bearer ").map(|t| t.trim().to_string())
}

fn plain(status: StatusCode, text: &str) -> Response {
    let mut r = Response::new(Body::from(text.to_string()));
    *r.status_mut() = status;
    r
}

async fn handle(State(s): State<Shared>, req: Request) -> Response {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let full = if query.is_empty() {
        path.clone()
    } else {
        format!("{path}?{query}")
    };
    let token = presented_token(req.headers());
    let response = answer(&s, req, &path, &query, token.as_deref()).await;
    s.log.lock().unwrap().push(GitRequest {
        method,
        path: full,
        status: response.status().as_u16(),
        token,
    });
    response
}

async fn answer(
    s: &Shared,
    req: Request,
    path: &str,
    query: &str,
    token: Option<&str>,
) -> Response {
    let scopes = match token.map(|t| s.tokens.check(t)) {
        Some(TokenCheck::Valid(scopes)) => scopes,
        _ => {
            let mut r = plain(StatusCode::UNAUTHORIZED, "authentication required\n");
            r.headers_mut().insert(
                "www-authenticate",
                HeaderValue::from_static("Basic realm=\"test-forge\""),
            );
            return r;
        }
    };
    let push = path.ends_with("/git-receive-pack") || query.contains("service=git-receive-pack");
    if push && !scopes.write {
        return plain(
            StatusCode::FORBIDDEN,
            "this token may not push: it lacks the write scope\n",
        );
    }
    if !scopes.read {
        return plain(
            StatusCode::FORBIDDEN,
            "this token may not read: it lacks the read scope\n",
        );
    }
    let method = req.method().to_string();
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let encoding = req
        .headers()
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body: Bytes = match axum::body::to_bytes(req.into_body(), usize::MAX).await {
        Ok(b) => b,
        Err(_) => return plain(StatusCode::BAD_REQUEST, "unreadable body\n"),
    };
    cgi(
        &s.root,
        &method,
        path,
        query,
        &content_type,
        encoding.as_deref(),
        body,
    )
    .await
}

/// Runs `git http-backend` for one request and turns its CGI answer into a response.
async fn cgi(
    root: &Path,
    method: &str,
    path: &str,
    query: &str,
    content_type: &str,
    encoding: Option<&str>,
    body: Bytes,
) -> Response {
    let mut cmd = tokio::process::Command::new("git");
    cmd.arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", method)
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("CONTENT_TYPE", content_type)
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("REMOTE_USER", "drover-test")
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(e) = encoding {
        cmd.env("HTTP_CONTENT_ENCODING", e);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("git http-backend: {e}\n"),
            )
        }
    };
    let mut stdin = child.stdin.take().unwrap();
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(&body).await;
        drop(stdin);
    });
    let out = match child.wait_with_output().await {
        Ok(o) => o,
        Err(e) => {
            return plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("git http-backend: {e}\n"),
            )
        }
    };
    let _ = writer.await;
    parse_cgi(&out.stdout)
}

fn parse_cgi(raw: &[u8]) -> Response {
    let (head, body) = match raw.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => (&raw[..i], &raw[i + 4..]),
        None => match raw.windows(2).position(|w| w == b"\n\n") {
            Some(i) => (&raw[..i], &raw[i + 2..]),
            None => return plain(StatusCode::BAD_GATEWAY, "no CGI header from git\n"),
        },
    };
    let mut r = Response::new(Body::from(body.to_vec()));
    for line in String::from_utf8_lossy(head).lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        if k.eq_ignore_ascii_case("status") {
            let code = v.split(' ').next().and_then(|c| c.parse::<u16>().ok());
            if let Some(s) = code.and_then(|c| StatusCode::from_u16(c).ok()) {
                *r.status_mut() = s;
            }
        } else if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            r.headers_mut().append(name, value);
        }
    }
    r
}

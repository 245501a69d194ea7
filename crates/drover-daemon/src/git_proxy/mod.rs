//! drover's git smart-HTTP proxy (docs/design.md §9): the only way git reaches a configured
//! forge. Forge credentials stay in the daemon: the proxy adds `Authorization`
//! ([`drover_forge::Credential::git_authorization`]) to each request it relays, refreshes the
//! token once on a 401 and retries, and never hands a token to any git process, sandbox, log or
//! event. Who may do what is a [`Scope`]:
//!
//! - a task's: served on its own socket (`run/<id>/git.sock`, reached from inside the jail
//!   through a loopback forwarder on `127.0.0.1:`[`GIT_PORT`]; with `isolation = none` a
//!   loopback TCP port of its own) — the socket identifies the task, no token; fetch of the
//!   task's repo(s), push only `refs/heads/drover/<id>` (and below);
//! - the daemon's own operations (the mirror's clone/fetch, the end-of-task push): a daemon-wide
//!   loopback listener whose request paths carry a random capability (`/c/<cap>/…`) for one
//!   repo and one operation, valid while its [`Capability`] guard lives — a drover capability,
//!   never a forge token.
//!
//! Files: [`pkt`] (pkt-lines), [`relay`] (the HTTP handler), [`remote`] (the mirrors' hook),
//! [`task`] (a task's socket and its sandbox's `origin`).

pub mod pkt;
pub mod relay;
pub mod remote;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use drover_forge::{Forges, RepoRef};

/// The loopback port of the git forwarder inside a confined task (the sandbox's `origin` is
/// `http://127.0.0.1:GIT_PORT/<repo path>.git`).
pub const GIT_PORT: u16 = 3129;
/// The task socket's file name in `run/<id>/`.
pub const GIT_SOCK: &str = "git.sock";
/// A POST body up to this size is kept for a retry after a 401; a larger one is streamed once.
pub const RETRY_BODY: usize = 8 << 20;

/// What one client of the proxy may do.
#[derive(Debug, Clone)]
pub struct Scope {
    /// The repositories it may reach (the first one's path names them in refusals).
    pub repos: Vec<RepoRef>,
    /// The task whose branch `drover/<id>` (and below) it may push; `None`: fetch only.
    pub push_task: Option<String>,
}

impl Scope {
    /// Whether `refname` is one this scope may create or update.
    pub fn may_push(&self, refname: &str) -> bool {
        let Some(id) = &self.push_task else {
            return false;
        };
        let branch = format!("refs/heads/drover/{id}");
        refname == branch || refname.starts_with(&format!("{branch}/"))
    }

    /// The line git shows for a refused push.
    pub fn push_refusal(&self) -> String {
        match &self.push_task {
            Some(id) => format!("drover: this task may push only drover/{id}"),
            None => "drover: this operation may only fetch".to_string(),
        }
    }
}

/// Why the forge refused a request of a scope (read by the end-of-task push for its reason).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// 401 even after a refresh.
    Unauthorized,
    /// 403: the token lacks a permission.
    Forbidden,
    /// The credential could not be had (token_cmd failed).
    Credential(String),
    /// The forge could not be reached.
    Unreachable(String),
}

/// A scope in use, with what the forge refused it last.
#[derive(Debug)]
pub struct Capability {
    pub scope: Scope,
    refused: Mutex<Option<Refused>>,
}

impl Capability {
    pub fn new(scope: Scope) -> Arc<Self> {
        Arc::new(Capability {
            scope,
            refused: Mutex::new(None),
        })
    }
    pub fn refused(&self) -> Option<Refused> {
        self.refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
    fn set_refused(&self, r: Refused) {
        *self.refused.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
    }
}

/// The proxy: the forges, an HTTP client, the daemon-wide listener's port and its live
/// capabilities.
pub struct GitProxy {
    pub forges: Arc<Forges>,
    http: reqwest::Client,
    port: u16,
    caps: Mutex<HashMap<String, Arc<Capability>>>,
    /// `isolation = none`: each task's own loopback port.
    task_ports: Mutex<HashMap<String, u16>>,
}

/// A daemon capability's URL for one repository; the capability ends when this is dropped.
pub struct CapabilityUrl {
    pub url: String,
    pub capability: Arc<Capability>,
    key: String,
    proxy: Arc<GitProxy>,
}

impl Drop for CapabilityUrl {
    fn drop(&mut self) {
        self.proxy
            .caps
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.key);
    }
}

impl GitProxy {
    /// Binds the daemon-wide loopback listener and serves it on `tasks` until `stop`.
    pub async fn start(
        forges: Arc<Forges>,
        tasks: &tokio_util::task::TaskTracker,
        stop: tokio_util::sync::CancellationToken,
    ) -> std::io::Result<Arc<GitProxy>> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        // A forge that does not accept: the request ends (bodies stream, so no total timeout;
        // a stall after connecting ends the daemon's git, drover_sandbox::HTTP_STALL_SECS).
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(std::io::Error::other)?;
        let proxy = Arc::new(GitProxy {
            forges,
            http,
            port,
            caps: Mutex::new(HashMap::new()),
            task_ports: Mutex::new(HashMap::new()),
        });
        let app = relay::router(relay::Ctx::Daemon(proxy.clone()));
        let t = tasks.clone();
        tasks.spawn(async move {
            crate::listen::serve_capped(listener, app, stop.cancelled_owned(), &t, 256).await;
        });
        Ok(proxy)
    }

    /// The forge repository `url` is, if it is on a configured forge.
    pub fn repo(&self, url: &str) -> Option<RepoRef> {
        forge_repo(&self.forges, url)
    }

    /// A capability URL for `scope` (its first repo), valid until the result is dropped.
    pub fn capability(self: &Arc<Self>, scope: Scope) -> Option<CapabilityUrl> {
        let path = url_path(&scope.repos.first()?.clone_url)?;
        let key = hex::encode(rand::random::<[u8; 24]>());
        let capability = Capability::new(scope);
        self.caps
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.clone(), capability.clone());
        Some(CapabilityUrl {
            url: format!("http://127.0.0.1:{}/c/{key}/{path}", self.port),
            capability,
            key,
            proxy: self.clone(),
        })
    }

    fn lookup(&self, key: &str) -> Option<Arc<Capability>> {
        self.caps
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()
    }

    pub(crate) fn set_task_port(&self, id: &str, port: Option<u16>) {
        let mut ports = self.task_ports.lock().unwrap_or_else(|e| e.into_inner());
        match port {
            Some(p) => ports.insert(id.to_string(), p),
            None => ports.remove(id),
        };
    }

    pub(crate) fn task_port(&self, id: &str) -> Option<u16> {
        self.task_ports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .copied()
    }
}

/// The path part of a clone URL, without the leading `/` (`acme/app.git`).
pub fn url_path(clone_url: &str) -> Option<String> {
    let u = url::Url::parse(clone_url).ok()?;
    let p = u.path().trim_start_matches('/').to_string();
    (!p.is_empty()).then_some(p)
}

/// `url` on a configured forge ([`Forges::resolve`] of a URL; a local path or a URL of no
/// configured forge: `None`).
pub fn forge_repo(forges: &Forges, url: &str) -> Option<RepoRef> {
    if !url.contains("://") {
        return None;
    }
    forges.resolve(url).ok().flatten()
}

/// The scope of task `task`: its repos on a configured forge (None: none is).
pub fn scope(proxy: &GitProxy, task: &drover_store::TaskRecord) -> Option<Scope> {
    let repos: Vec<_> = task
        .repo_list()
        .iter()
        .filter_map(|r| proxy.repo(&r.repo))
        .collect();
    (!repos.is_empty()).then(|| Scope {
        repos,
        push_task: Some(task.id.clone()),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use drover_forge::{CredentialSpec, ForgeKind, ForgeSettings};

    #[test]
    fn a_task_may_push_only_below_its_branch() {
        let s = Scope {
            repos: vec![],
            push_task: Some("abc".into()),
        };
        assert!(s.may_push("refs/heads/drover/abc"));
        assert!(s.may_push("refs/heads/drover/abc/x"));
        for r in [
            "refs/heads/drover/abcd",
            "refs/heads/main",
            "refs/tags/drover/abc",
            "refs/heads/drover/ab",
        ] {
            assert!(!s.may_push(r), "{r}");
        }
        let fetch_only = Scope {
            repos: vec![],
            push_task: None,
        };
        assert!(!fetch_only.may_push("refs/heads/drover/abc"));
    }

    #[test]
    fn urls_of_a_configured_forge_are_its_repos() {
        let settings = |name: &str, kind, git: &str| ForgeSettings {
            name: name.into(),
            kind,
            api: "https://api.example".into(),
            git: git.into(),
            credential: CredentialSpec::Cmd {
                cmd: "true".into(),
                ttl: None,
            },
            default: false,
        };
        let forges = Forges::new(
            vec![
                settings("gh", ForgeKind::Github, "https://github.com"),
                settings("bb", ForgeKind::BitbucketDc, "https://bb.example/git"),
            ],
            vec![],
        );
        let r = forge_repo(&forges, "https://github.com/acme/app.git").unwrap();
        assert_eq!((r.forge.as_str(), r.path.as_str()), ("gh", "acme/app"));
        let r = forge_repo(&forges, "https://bb.example/git/scm/PROJ/repo.git").unwrap();
        assert_eq!(r.path, "PROJ/repo");
        assert!(forge_repo(&forges, "https://github.company.com/acme/app.git").is_none());
        assert!(forge_repo(&forges, "https://gitlab.com/acme/app.git").is_none());
        assert!(forge_repo(&forges, "/local/path").is_none());
        assert_eq!(
            url_path("https://github.com/acme/app.git").unwrap(),
            "acme/app.git"
        );
    }

    #[tokio::test]
    async fn the_daemon_listener_serves_only_live_capabilities_and_smart_http() {
        let forges = Arc::new(Forges::new(
            vec![ForgeSettings {
                name: "t".into(),
                kind: ForgeKind::Github,
                api: "http://127.0.0.1:9".into(),
                git: "http://127.0.0.1:9".into(),
                credential: CredentialSpec::Cmd {
                    cmd: "echo tok".into(),
                    ttl: None,
                },
                default: true,
            }],
            vec![],
        ));
        let tasks = tokio_util::task::TaskTracker::new();
        let stop = tokio_util::sync::CancellationToken::new();
        let proxy = GitProxy::start(forges, &tasks, stop.clone()).await.unwrap();
        let repo = proxy.repo("http://127.0.0.1:9/acme/app.git").unwrap();
        let cap = proxy
            .capability(Scope {
                repos: vec![repo],
                push_task: None,
            })
            .unwrap();
        let http = reqwest::Client::new();
        let get = |url: String| {
            let http = http.clone();
            async move {
                let r = http.get(url).send().await.unwrap();
                (r.status().as_u16(), r.text().await.unwrap())
            }
        };
        let base = cap.url.clone();
        let root = base.split("/c/").next().unwrap().to_string();
        // Dumb HTTP and unknown paths: refused.
        assert_eq!(get(format!("{base}/HEAD")).await.0, 404);
        assert_eq!(get(format!("{base}/info/refs")).await.0, 403);
        // A push through a fetch-only capability, another repo: git's ERR line.
        let (s, body) = get(format!("{base}/info/refs?service=git-receive-pack")).await;
        assert_eq!(s, 200);
        assert!(
            body.contains("ERR drover: this operation may only fetch"),
            "{body}"
        );
        let other = base.replace("acme/app.git", "acme/other.git");
        let (_, body) = get(format!("{other}/info/refs?service=git-upload-pack")).await;
        assert!(
            body.contains("ERR drover: this task may use only acme/app"),
            "{body}"
        );
        // A guessed or ended capability: 403.
        let guessed = format!(
            "{root}/c/{}/acme/app.git/info/refs?service=git-upload-pack",
            "0".repeat(48)
        );
        assert_eq!(get(guessed).await.0, 403);
        let ended = format!("{base}/info/refs?service=git-upload-pack");
        drop(cap);
        assert_eq!(get(ended).await.0, 403);
        stop.cancel();
    }

    /// Only the checked `service=` goes to the forge: a second `service=` (git-http-backend
    /// reads the last one) or any other query of the client's does not.
    #[tokio::test]
    async fn only_the_checked_service_reaches_the_forge() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = upstream.local_addr().unwrap().port();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let server = tokio::spawn(async move {
            while let Ok((mut c, _)) = upstream.accept().await {
                let mut buf = vec![0u8; 8192];
                let n = c.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                let _ = tx.send(head.lines().next().unwrap_or("").to_string());
                let body = pkt::line(b"# service=git-upload-pack\n");
                let _ = c
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/x-git-upload-pack-advertisement\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .await;
                let _ = c.write_all(&body).await;
            }
        });
        let base = format!("http://127.0.0.1:{port}");
        let forges = Arc::new(Forges::new(
            vec![ForgeSettings {
                name: "t".into(),
                kind: ForgeKind::Gitea,
                api: base.clone(),
                git: base.clone(),
                credential: CredentialSpec::Cmd {
                    cmd: "echo tok".into(),
                    ttl: None,
                },
                default: true,
            }],
            vec![],
        ));
        let tasks = tokio_util::task::TaskTracker::new();
        let stop = tokio_util::sync::CancellationToken::new();
        let proxy = GitProxy::start(forges, &tasks, stop.clone()).await.unwrap();
        let repo = proxy.repo(&format!("{base}/acme/app.git")).unwrap();
        let cap = proxy
            .capability(Scope {
                repos: vec![repo],
                push_task: None,
            })
            .unwrap();
        let r = reqwest::get(format!(
            "{}/info/refs?service=git-upload-pack&service=git-receive-pack&x=1",
            cap.url
        ))
        .await
        .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let line = tokio::time::timeout(std::time::Duration::from_secs(30), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            line,
            "GET /acme/app.git/info/refs?service=git-upload-pack HTTP/1.1"
        );
        server.abort();
        stop.cancel();
    }

    /// A push asking for push options (the forge acts on them: GitLab opens a merge request to
    /// any branch, merges it when the pipeline passes, skips CI) is refused before the forge,
    /// whichever command line names the capability.
    #[tokio::test]
    async fn a_push_with_push_options_is_refused() {
        let forges = Arc::new(Forges::new(
            vec![ForgeSettings {
                name: "t".into(),
                kind: ForgeKind::Gitlab,
                api: "http://127.0.0.1:9".into(),
                git: "http://127.0.0.1:9".into(),
                credential: CredentialSpec::Cmd {
                    cmd: "echo tok".into(),
                    ttl: None,
                },
                default: true,
            }],
            vec![],
        ));
        let tasks = tokio_util::task::TaskTracker::new();
        let stop = tokio_util::sync::CancellationToken::new();
        let proxy = GitProxy::start(forges, &tasks, stop.clone()).await.unwrap();
        let repo = proxy.repo("http://127.0.0.1:9/acme/app.git").unwrap();
        let cap = proxy
            .capability(Scope {
                repos: vec![repo],
                push_task: Some("abc".into()),
            })
            .unwrap();
        let z = "0".repeat(40);
        let a = "1".repeat(40);
        let http = reqwest::Client::new();
        for second_line in [false, true] {
            let mut body = match second_line {
                false => pkt::line(
                    format!("{z} {a} refs/heads/drover/abc\0 report-status push-options\n")
                        .as_bytes(),
                ),
                true => {
                    let mut b = pkt::line(
                        format!("{z} {a} refs/heads/drover/abc\0 report-status\n").as_bytes(),
                    );
                    b.extend(pkt::line(
                        format!("{z} {a} refs/heads/drover/abc/x\0push-options\n").as_bytes(),
                    ));
                    b
                }
            };
            body.extend_from_slice(pkt::FLUSH);
            body.extend(pkt::line(b"merge_request.create"));
            body.extend(pkt::line(b"merge_request.merge_when_pipeline_succeeds"));
            body.extend_from_slice(pkt::FLUSH);
            body.extend_from_slice(b"PACK");
            let r = http
                .post(format!("{}/git-receive-pack", cap.url))
                .header("content-type", "application/x-git-receive-pack-request")
                .body(body)
                .send()
                .await
                .unwrap();
            let text = r.text().await.unwrap();
            assert!(
                text.contains(
                    "ng refs/heads/drover/abc drover: push options (git push -o) are not relayed"
                ),
                "second line {second_line}: {text}"
            );
        }
        stop.cancel();
    }
}

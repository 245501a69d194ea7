//! Talks to the daemon over `DROVER_HOME/daemon.sock`, starting it when absent (never inside a
//! task: there `DROVER_HOME` is the task's run dir and its socket the task-scoped endpoint) —
//! or, with `DROVER_URL` set, to a team server over HTTP(S) with `DROVER_API_KEY` as a bearer
//! key ([`Transport::Http`]; docs/design.md §7): never a daemon started then, and the key is
//! read from the environment only (never a flag: keys do not belong in argv).

use crate::error::{CliError, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::client::legacy::Client as HyperClient;
use hyperlocal::{UnixConnector, Uri};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One URL path segment, percent-encoded: an id or a name reaches the daemon exactly as typed
/// (`%`, `/`, `?`, spaces… included), never as part of the path's syntax.
pub fn segment(s: &str) -> String {
    use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
    const SEGMENT: &percent_encoding::AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_');
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// `DROVER_HOME`, else `$XDG_DATA_HOME/drover`, else `~/.local/share/drover`.
pub fn drover_home() -> PathBuf {
    if let Some(h) = std::env::var_os("DROVER_HOME").filter(|v| !v.is_empty()) {
        return absolute(Path::new(&h));
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("drover");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into());
    PathBuf::from(home).join(".local/share/drover")
}

/// The task this process runs in (`DROVER_TASK_ID`, set for every agent and gate), if any.
pub fn inside_task() -> Option<String> {
    std::env::var("DROVER_TASK_ID")
        .ok()
        .filter(|v| !v.is_empty())
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}

/// A response body, whichever the transport.
pub type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, std::io::Error>;

/// `DROVER_URL`, when the CLI talks to a team server instead of the local daemon.
pub fn remote_url() -> Option<String> {
    std::env::var("DROVER_URL")
        .ok()
        .map(|v| v.trim().trim_end_matches('/').to_string())
        .filter(|v| !v.is_empty())
}

/// How requests reach the daemon.
#[derive(Clone)]
enum Transport {
    /// `DROVER_HOME/daemon.sock` (the host owner: no key).
    Unix {
        socket: PathBuf,
        http: HyperClient<UnixConnector, Full<Bytes>>,
    },
    /// A team server (`DROVER_URL`), with `DROVER_API_KEY` as the bearer key.
    Http {
        base: String,
        key: Option<String>,
        http: reqwest::Client,
    },
}

#[derive(Clone)]
pub struct Client {
    pub home: PathBuf,
    transport: Transport,
}

impl Client {
    pub fn new(home: PathBuf) -> Client {
        let socket = home.join("daemon.sock");
        Client {
            home,
            transport: Transport::Unix {
                socket,
                // The daemon closes connections idle for 5 s: never reuse one that old.
                http: HyperClient::builder(hyper_util::rt::TokioExecutor::new())
                    .pool_idle_timeout(Duration::from_secs(2))
                    .pool_timer(hyper_util::rt::TokioTimer::new())
                    .build(UnixConnector),
            },
        }
    }

    /// A client to the team server at `url` (`http://` or `https://`): `DROVER_API_KEY` is the
    /// key, `DROVER_CA_CERT` (PEM) a private CA to trust besides the web's roots.
    pub fn remote(url: &str) -> Result<Client> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(CliError::input(format!(
                "DROVER_URL={url}: give http://HOST:PORT or https://HOST:PORT"
            )));
        }
        let key = std::env::var("DROVER_API_KEY")
            .ok()
            .map(|k| k.trim().to_string())
            .filter(|k| !k.is_empty());
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .http1_only()
            // The server closes connections idle for 5 s: never reuse one that old.
            .pool_idle_timeout(Duration::from_secs(2))
            .connect_timeout(Duration::from_secs(10));
        if let Some(ca) = std::env::var_os("DROVER_CA_CERT").filter(|v| !v.is_empty()) {
            let ca = PathBuf::from(ca);
            let pem = std::fs::read(&ca).map_err(|e| {
                CliError::on_user_path(&e, format!("DROVER_CA_CERT {}: {e}", ca.display()))
            })?;
            let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| {
                CliError::input(format!(
                    "DROVER_CA_CERT {}: not a PEM certificate: {e}",
                    ca.display()
                ))
            })?;
            builder = builder.add_root_certificate(cert);
        }
        let http = builder
            .build()
            .map_err(|e| CliError::internal(format!("HTTP client: {e}")))?;
        Ok(Client {
            home: drover_home(),
            transport: Transport::Http {
                base: url.to_string(),
                key,
                http,
            },
        })
    }

    /// A client to a running daemon, starting one first (and saying so on stderr) if needed —
    /// except inside a task, where `DROVER_HOME` is the task's own control endpoint: there an
    /// endpoint that does not answer is an error (exit 3), never a reason to start a daemon.
    /// With `DROVER_URL` set: the team server there, never a local daemon.
    pub async fn connect() -> Result<Client> {
        if let Some(url) = remote_url() {
            return Client::remote(&url);
        }
        let client = Client::new(drover_home());
        if client.probe().await? {
            return Ok(client);
        }
        if let Some(task) = inside_task() {
            return Err(client.unreachable_inside(&task));
        }
        client
            .start_daemon(&drover_daemon::Flags::default(), &[])
            .await?;
        Ok(client)
    }

    /// Whether a daemon answers on the socket. A daemon that answers with an error (e.g. `busy`
    /// at its connection limit) is that error: it is running, so none is started.
    async fn probe(&self) -> Result<bool> {
        let Transport::Unix { socket, http } = &self.transport else {
            return Ok(true);
        };
        let uri: hyper::Uri = Uri::new(socket, "/v1/status").into();
        let req = Request::get(uri).body(Full::new(Bytes::new()))?;
        let resp = match http.request(req).await {
            Ok(resp) => resp,
            Err(_) => return Ok(false),
        };
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(true);
        }
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        Err(CliError::from_api(status, &bytes))
    }

    pub async fn ping(&self) -> bool {
        self.get::<serde_json::Value>("/v1/status").await.is_ok()
    }

    /// Starts `drover daemon --foreground` (with `flags`, and `envs` over this environment)
    /// detached (own session, output to daemon.log) and waits until it answers.
    pub async fn start_daemon(
        &self,
        flags: &drover_daemon::Flags,
        envs: &[(String, String)],
    ) -> Result<u32> {
        if let Some(task) = inside_task() {
            return Err(self.unreachable_inside(&task));
        }
        // Cannot create it: an I/O failure (exit 3), not the user's input.
        std::fs::create_dir_all(&self.home)
            .context(format!("cannot create DROVER_HOME {}", self.home.display()))
            .with_hint("set DROVER_HOME to a writable directory")?;
        // A bad config.toml, DROVER_* variable or flag (e.g. a negative price) is the user's to
        // fix: one line and a hint, exit 2, nothing started. The daemon loads the same layers.
        // vars_os-based: a variable that is not UTF-8 is left out, not a panic.
        let env = drover_daemon::Environment::process().with_pairs(envs.to_vec());
        drover_daemon::Config::load_with(&self.home, &env, flags)?;
        let exe = std::env::current_exe().context("current exe")?;
        let log_path = self.home.join("daemon.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .context(log_path.display())?;
        let log2 = log.try_clone()?;
        let mut extra = vec![];
        if let Some(s) = flags.slots {
            extra.extend(["--slots".to_string(), s.to_string()]);
        }
        if let Some(m) = &flags.sandbox {
            extra.extend(["--sandbox".to_string(), m.clone()]);
        }
        for (flag, v) in [
            ("--listen", &flags.listen),
            ("--tls-cert", &flags.tls_cert),
            ("--tls-key", &flags.tls_key),
            ("--web-listen", &flags.web_listen),
        ] {
            if let Some(v) = v {
                extra.extend([flag.to_string(), v.clone()]);
            }
        }
        let mut cmd = std::process::Command::new(exe);
        cmd.arg("daemon")
            .arg("--foreground")
            .args(extra)
            .env("DROVER_HOME", &self.home)
            .envs(envs.iter().map(|(k, v)| (k, v)))
            .stdin(std::process::Stdio::null())
            .stdout(log)
            .stderr(log2);
        use std::os::unix::process::CommandExt;
        // SAFETY: setsid is async-signal-safe; runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        let mut child = cmd.spawn().context("could not start the daemon")?;
        let pid = child.id();
        let mut delay = Duration::from_millis(5);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if self.ping().await {
                eprintln!(
                    "drover: started the daemon (pid {pid}, log {})",
                    log_path.display()
                );
                // The daemon lives on in its own session; init reaps it.
                std::mem::forget(child);
                return Ok(pid);
            }
            if let Ok(Some(status)) = child.try_wait() {
                let tail = tail_of(&log_path, 12);
                return Err(CliError::unreachable(format!(
                    "the daemon exited at start ({status}): {tail}"
                ))
                .hint(format!("see {}", log_path.display())));
            }
            if std::time::Instant::now() > deadline {
                return Err(
                    CliError::unreachable("the daemon did not answer within 20 s")
                        .hint(format!("see {}", log_path.display())),
                );
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(200));
        }
    }

    /// Sends one request; a non-2xx answer becomes the daemon's classified error. The body is
    /// left to the caller (collected, streamed, or held open).
    async fn open(&self, method: Method, path: &str, accept: &str, body: Vec<u8>) -> Result<Body> {
        let (socket, http) = match &self.transport {
            Transport::Unix { socket, http } => (socket, http),
            Transport::Http { base, key, http } => {
                return self
                    .open_http(base, key.as_deref(), http, method, path, accept, body)
                    .await
            }
        };
        let uri: hyper::Uri = Uri::new(socket, path).into();
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .header("accept", accept)
            .body(Full::new(Bytes::from(body)))?;
        let resp = http.request(req).await.map_err(|e| self.unreachable(e))?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            return Err(CliError::from_api(status, &bytes));
        }
        Ok(resp
            .into_body()
            .map_err(std::io::Error::other)
            .boxed_unsync())
    }

    /// [`Client::open`] over HTTP(S) to a team server.
    #[allow(clippy::too_many_arguments)]
    async fn open_http(
        &self,
        base: &str,
        key: Option<&str>,
        http: &reqwest::Client,
        method: Method,
        path: &str,
        accept: &str,
        body: Vec<u8>,
    ) -> Result<Body> {
        let mut req = http
            .request(method, format!("{base}{path}"))
            .header("content-type", "application/json")
            .header("accept", accept)
            .body(body);
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        let resp = req.send().await.map_err(|e| self.unreachable(e))?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            let bytes = resp.bytes().await.unwrap_or_default();
            return Err(CliError::from_api(status, &bytes));
        }
        let resp: hyper::Response<reqwest::Body> = resp.into();
        Ok(resp
            .into_body()
            .map_err(std::io::Error::other)
            .boxed_unsync())
    }

    /// Inside task `task` the endpoint did not answer.
    fn unreachable_inside(&self, task: &str) -> CliError {
        CliError::unreachable(format!(
            "inside task {task} drover does not start a daemon, and the task's control endpoint {} does not answer",
            self.home.join("daemon.sock").display()
        ))
        .hint("the daemon may be restarting: retry in a moment")
    }

    fn unreachable(&self, e: impl std::error::Error) -> CliError {
        // The whole chain on one line (reqwest's own text is only "error sending request").
        let mut why = e.to_string();
        let mut source = e.source();
        while let Some(cause) = source {
            let text = cause.to_string();
            if !why.contains(&text) {
                why = format!("{why}: {text}");
            }
            source = cause.source();
        }
        match &self.transport {
            Transport::Unix { socket, .. } => CliError::unreachable(format!(
                "the daemon at {} is unreachable: {why}",
                socket.display()
            ))
            .hint("start it with `drover daemon`, or check DROVER_HOME"),
            Transport::Http { base, .. } => CliError::unreachable(format!(
                "the server at {base} is unreachable: {why}"
            ))
            .hint("check DROVER_URL (and DROVER_CA_CERT for a server whose certificate a private CA signed)"),
        }
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T> {
        let body = self
            .open(method, path, "application/json", body.unwrap_or_default())
            .await?;
        let bytes = body
            .collect()
            .await
            .context("reading the daemon's answer")?
            .to_bytes();
        serde_json::from_slice(&bytes).context("unreadable answer from the daemon")
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.call(Method::GET, path, None).await
    }

    /// Every task summary `GET /v1/tasks` lists (`all`: not only active and recent ones),
    /// following the pages' cursors.
    pub async fn list_tasks(&self, all: bool) -> Result<Vec<drover_types::Task>> {
        let mut tasks = Vec::new();
        let mut cursor = String::new();
        loop {
            let page: drover_types::TaskPage = self
                .get(&format!("/v1/tasks?all={all}&cursor={cursor}"))
                .await?;
            tasks.extend(page.tasks);
            match page.next_cursor {
                // A requeued task can move to a later page: keep its last place only.
                Some(next) if next != cursor => cursor = next,
                _ => break,
            }
        }
        let mut seen = std::collections::HashSet::new();
        let mut out: Vec<_> = tasks
            .into_iter()
            .rev()
            .filter(|t| seen.insert(t.id.clone()))
            .collect();
        out.reverse();
        Ok(out)
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        let body = serde_json::to_vec(body)?;
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn patch<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T> {
        let body = serde_json::to_vec(body)?;
        self.call(Method::PATCH, path, Some(body)).await
    }

    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.call(Method::DELETE, path, None).await
    }

    /// POSTs to `path` and waits for the first line of the answer (`granted`); the returned body
    /// keeps the connection — and so whatever the daemon granted — until it is dropped.
    pub async fn hold(&self, path: &str) -> Result<Body> {
        use hyper::body::Body as _;
        let mut body = self.open(Method::POST, path, "text/plain", vec![]).await?;
        let mut got = Vec::new();
        while !got.contains(&b'\n') {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Some(d) = frame.data_ref() {
                        got.extend_from_slice(d);
                    }
                }
                _ => {
                    return Err(CliError::unreachable(
                        "the daemon closed the lock before granting it",
                    ))
                }
            }
            if body.is_end_stream() && !got.contains(&b'\n') {
                return Err(CliError::unreachable(
                    "the daemon closed the lock before granting it",
                ));
            }
        }
        Ok(body)
    }

    /// GETs `path` and copies the answer's body to `out` as it arrives (`drover audit export`).
    pub async fn download(&self, path: &str, out: &mut impl std::io::Write) -> Result<()> {
        let mut body = self.open(Method::GET, path, "*/*", vec![]).await?;
        while let Some(frame) = body.frame().await {
            let frame = frame.context("the daemon's answer broke off")?;
            if let Some(d) = frame.data_ref() {
                out.write_all(d).context("writing the answer")?;
            }
        }
        out.flush().context("writing the answer")
    }

    /// Follows `path` as SSE, calling `on_event(id, data)` for each event, until the stream ends.
    pub async fn sse(
        &self,
        path: &str,
        mut on_event: impl FnMut(&str, &str) -> bool,
    ) -> Result<()> {
        use eventsource_stream::Eventsource;
        use futures::StreamExt;
        let body = self
            .open(Method::GET, path, "text/event-stream", vec![])
            .await?;
        let stream = body.into_data_stream().eventsource();
        futures::pin_mut!(stream);
        while let Some(ev) = stream.next().await {
            let ev = ev.context("event stream broke")?;
            if !on_event(&ev.id, &ev.data) {
                break;
            }
        }
        Ok(())
    }
}

/// The daemon's last words: its log from the last `drover:` error line on (at most `n` lines).
fn tail_of(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let from = lines
        .iter()
        .rposition(|l| l.starts_with("drover: "))
        .unwrap_or(lines.len().saturating_sub(n));
    let tail = &lines[from..(from + n).min(lines.len())];
    tail.iter()
        .map(|l| l.trim_start_matches("drover: ").trim())
        .collect::<Vec<_>>()
        .join(" ")
}

//! A real browser for the dashboard's tests: Debian's headless Chromium driven over WebDriver
//! (`chromedriver`) with fantoccini. Nothing is downloaded: a missing `chromium` or
//! `chromium-driver` fails the test in one line naming the package (`scripts/test.sh` installs
//! both with apt).
//!
//! [`Browser`] is synchronous (it owns a small runtime of its own), so a test drives it from
//! plain `#[test]` code next to the CLI helpers; never call it from inside a tokio runtime.
//! Every wait has a deadline and fails the test saying what did not appear. The chromedriver
//! process (and the Chromium it started: same process group) is killed when the [`Browser`]
//! drops, even when the test failed half-way.

use fantoccini::{elements::Element, Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long [`Browser::start`] waits for chromedriver to listen and Chromium to open a session.
pub const START_DEADLINE: Duration = Duration::from_secs(60);
/// The default deadline of [`Browser::wait_for`] and the helpers built on it.
pub const WAIT: Duration = Duration::from_secs(30);

/// The browser's window, as the screenshots show it.
pub const WINDOW: (u32, u32) = (1400, 900);

/// `chromium` (Debian package `chromium`): `DROVER_CHROMIUM`, else on `PATH`, else
/// `/usr/bin/chromium`. Fails the test naming the package when there is none.
pub fn chromium() -> PathBuf {
    find(
        "DROVER_CHROMIUM",
        &["chromium", "chromium-browser"],
        "/usr/bin/chromium",
    )
    .unwrap_or_else(|| {
        panic!(
            "chromium not found (DROVER_CHROMIUM, PATH, /usr/bin/chromium): install Debian's \
             `chromium` package (apt-get install -y chromium chromium-driver; scripts/test.sh does)"
        )
    })
}

/// `chromedriver` (Debian package `chromium-driver`), found like [`chromium`].
pub fn chromedriver() -> PathBuf {
    find(
        "DROVER_CHROMEDRIVER",
        &["chromedriver"],
        "/usr/bin/chromedriver",
    )
    .unwrap_or_else(|| {
        panic!(
            "chromedriver not found (DROVER_CHROMEDRIVER, PATH, /usr/bin/chromedriver): install \
             Debian's `chromium-driver` package (apt-get install -y chromium chromium-driver; \
             scripts/test.sh does)"
        )
    })
}

fn find(var: &str, names: &[&str], fallback: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(var) {
        let p = PathBuf::from(p);
        return is_executable(&p).then_some(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in names {
            let p = dir.join(name);
            if is_executable(&p) {
                return Some(p);
            }
        }
    }
    let p = PathBuf::from(fallback);
    is_executable(&p).then_some(p)
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Where screenshots go: `<target>/test-artifacts/web/`, the workspace's target dir found from
/// `CARGO_TARGET_DIR`, else from the test binary's path (`<target>/<profile>/deps/<test>`).
pub fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            let exe = std::env::current_exe().ok()?;
            let deps = exe.ancestors().find(|a| a.ends_with("deps"))?;
            Some(deps.parent()?.parent()?.to_path_buf())
        })
        .unwrap_or_else(|| std::env::temp_dir().join("drover-target"));
    let dir = target.join("test-artifacts").join("web");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

/// A headless Chromium under its own chromedriver.
pub struct Browser {
    client: Option<Client>,
    rt: tokio::runtime::Runtime,
    driver: Child,
    /// chromedriver's log (removed by [`Browser::close`]; kept when a test failed).
    log: PathBuf,
    /// Chromium's own profile (removed on drop).
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver on a free loopback port (at most [`START_DEADLINE`] until it
    /// answers) and opens a headless Chromium session through it.
    pub fn start() -> Browser {
        let chromium = chromium();
        let chromedriver = chromedriver();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("browser runtime");
        let port = free_port();
        let log = artifacts_dir().join(format!("chromedriver-{port}.log"));
        let mut cmd = Command::new(&chromedriver);
        cmd.arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group: Chromium and its helpers are killed with it.
            .process_group(0);
        let driver = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", chromedriver.display()));
        let profile = tempfile::Builder::new()
            .prefix("drover-chromium")
            .tempdir()
            .expect("chromium profile dir");
        let mut browser = Browser {
            rt,
            client: None,
            driver,
            log: log.clone(),
            _profile: profile,
        };
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + START_DEADLINE;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = browser.driver.try_wait() {
                panic!(
                    "chromedriver exited before it listened ({status}); see {}",
                    log.display()
                );
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on {url} within {START_DEADLINE:?}; see {}",
                log.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let (w, h) = WINDOW;
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium.to_string_lossy(),
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    format!("--window-size={w},{h}"),
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    "--no-default-browser-check",
                    "--disable-extensions",
                    "--disable-background-networking",
                    "--disable-component-update",
                    format!("--user-data-dir={}", browser._profile.path().display()),
                ],
            },
        });
        let caps = match caps {
            Value::Object(m) => m,
            _ => unreachable!(),
        };
        // Two rustls providers are linked (ring, aws-lc-rs): pick the workspace's, ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let connect = async {
            ClientBuilder::rustls()
                .expect("rustls WebDriver connector")
                .capabilities(caps)
                .connect(&url)
                .await
        };
        let left = deadline.saturating_duration_since(Instant::now());
        let client = match browser
            .rt
            .block_on(async { tokio::time::timeout(left, connect).await })
        {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => panic!("open a Chromium session: {e}; see {}", log.display()),
            Err(_) => panic!(
                "Chromium did not open a session within {START_DEADLINE:?}; see {}",
                log.display()
            ),
        };
        browser.client = Some(client);
        browser
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("browser session")
    }

    fn block<T>(&self, what: &str, f: impl std::future::Future<Output = T>) -> T {
        match self
            .rt
            .block_on(async { tokio::time::timeout(WAIT, f).await })
        {
            Ok(v) => v,
            Err(_) => panic!("browser: {what} did not answer within {WAIT:?}"),
        }
    }

    /// Opens `url` (returns once the page has loaded).
    pub fn goto(&self, url: &str) {
        let shown = url.split('?').next().unwrap_or(url);
        self.block(&format!("goto {shown}"), self.client().goto(url))
            .unwrap_or_else(|e| panic!("browser: goto {shown}: {e}"));
    }

    /// The page's address now.
    pub fn url(&self) -> String {
        self.block("current_url", self.client().current_url())
            .map(|u| u.to_string())
            .unwrap_or_else(|e| panic!("browser: current_url: {e}"))
    }

    /// Runs `script` (a function body: `return …;`, `arguments[i]`) in the page; its result.
    pub fn eval(&self, script: &str, args: Vec<Value>) -> Value {
        self.block("execute", self.client().execute(script, args))
            .unwrap_or_else(|e| panic!("browser: script failed: {e}\n{script}"))
    }

    /// Runs an async `script` (its last argument is the callback to call with the result).
    pub fn eval_async(&self, script: &str, args: Vec<Value>) -> Value {
        self.block("execute_async", self.client().execute_async(script, args))
            .unwrap_or_else(|e| panic!("browser: async script failed: {e}\n{script}"))
    }

    /// The elements matching `css` now (none: empty).
    pub fn all(&self, css: &str) -> Vec<Element> {
        self.block("find_all", self.client().find_all(Locator::Css(css)))
            .unwrap_or_else(|e| panic!("browser: find_all {css}: {e}"))
    }

    /// How many elements match `css` now.
    pub fn count(&self, css: &str) -> usize {
        self.eval(
            "return document.querySelectorAll(arguments[0]).length;",
            vec![json!(css)],
        )
        .as_u64()
        .unwrap_or(0) as usize
    }

    /// Waits (at most `limit`) until an element matches `css`; returns the first.
    pub fn wait_for(&self, css: &str, limit: Duration) -> Element {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(e) = self.all(css).into_iter().next() {
                return e;
            }
            if Instant::now() >= deadline {
                let body = self.body_text();
                panic!(
                    "browser: nothing matched `{css}` within {limit:?} on {}\npage text:\n{body}",
                    self.url()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits (at most `limit`) until the page's script `cond` (a function body returning a
    /// value) returns something truthy; returns that value.
    pub fn wait_until(&self, what: &str, limit: Duration, cond: &str, args: Vec<Value>) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let v = self.eval(cond, args.clone());
            let truthy = match &v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return v;
            }
            if Instant::now() >= deadline {
                let body = self.body_text();
                panic!(
                    "browser: timed out ({limit:?}) waiting for {what} on {}; last value {v}\npage text:\n{body}",
                    self.url()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits (at most `limit`) until the text of the first element matching `css` satisfies
    /// `pred`; returns that text.
    pub fn wait_text(&self, css: &str, limit: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let t = self
                .eval(
                    "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
                    vec![json!(css)],
                )
                .as_str()
                .map(str::to_string);
            if let Some(t) = &t {
                if pred(t) {
                    return t.clone();
                }
            }
            if Instant::now() >= deadline {
                panic!(
                    "browser: the text of `{css}` did not become what the test waits for within \
                     {limit:?} on {}; last: {t:?}",
                    self.url()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The text (`textContent`) of the first element matching `css`, waiting for it up to
    /// [`WAIT`].
    pub fn text(&self, css: &str) -> String {
        self.wait_for(css, WAIT);
        self.eval(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent : '';",
            vec![json!(css)],
        )
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// Clicks the first element matching `css`, waiting for it up to [`WAIT`].
    pub fn click(&self, css: &str) {
        let e = self.wait_for(css, WAIT);
        self.block(&format!("click {css}"), e.click())
            .unwrap_or_else(|e| panic!("browser: click {css}: {e}"));
    }

    /// Types `text` into the first element matching `css`.
    pub fn type_into(&self, css: &str, text: &str) {
        let e = self.wait_for(css, WAIT);
        self.block(&format!("send_keys {css}"), e.send_keys(text))
            .unwrap_or_else(|e| panic!("browser: type into {css}: {e}"));
    }

    /// The whole page's visible text (for failure messages).
    pub fn body_text(&self) -> String {
        let v = self.rt.block_on(async {
            tokio::time::timeout(
                Duration::from_secs(5),
                self.client().execute(
                    "return document.body ? document.body.innerText : '';",
                    vec![],
                ),
            )
            .await
        });
        match v {
            Ok(Ok(Value::String(s))) => s.chars().take(4000).collect(),
            _ => String::from("(unreadable)"),
        }
    }

    /// Saves a PNG of the window as `<target>/test-artifacts/web/NAME.png`; returns its path.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let png = self
            .block(&format!("screenshot {name}"), self.client().screenshot())
            .unwrap_or_else(|e| panic!("browser: screenshot {name}: {e}"));
        assert!(
            png.starts_with(b"\x89PNG"),
            "browser: screenshot {name} is not a PNG"
        );
        let path = artifacts_dir().join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    /// Ends the session (Chromium quits) and chromedriver.
    pub fn close(mut self) {
        if let Some(c) = self.client.take() {
            let _ = self
                .rt
                .block_on(async { tokio::time::timeout(Duration::from_secs(10), c.close()).await });
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // SIGKILL the whole group: chromedriver and the Chromium it started.
        let pgid = self.driver.id() as i32;
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// A loopback port nobody listens on now.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

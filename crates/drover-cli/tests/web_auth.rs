//! The web dashboard's doors (docs/design.md §10): the loopback listener (`web_listen`, one-time
//! URLs from `drover web`, the host owner's session cookie, the `Host` check, the CSRF header)
//! and the team listener's key sessions (`/login` with a key, one-time URLs bound to a key,
//! re-validated against the store on every request, team visibility).
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;
use drover_test_support::daemon::InProcessDaemon;
use drover_types::Scope;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

/// The loopback listener's address (`DROVER_HOME/web.addr`).
fn web_addr(home: &Path) -> SocketAddr {
    let file = drover_daemon::api::web::listener::addr_file(home);
    let mut addr = None;
    drover_test_support::poll::poll("web.addr", Duration::from_secs(30), || {
        addr = std::fs::read_to_string(&file)
            .ok()
            .and_then(|s| s.trim().parse().ok());
        addr.is_some()
    });
    addr.unwrap()
}

/// An answer: status, head (lower-cased names kept as sent), body.
struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    /// The value of header `name` (case-insensitive), if any.
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }

    /// `name=value` of the `Set-Cookie` header.
    fn cookie(&self) -> String {
        let c = self.header("set-cookie").expect("a set-cookie header");
        c.split(';').next().unwrap().trim().to_string()
    }
}

/// One raw HTTP/1.1 request with the `Host` header given (none: `127.0.0.1:PORT`).
fn raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    host: Option<&str>,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let host = host.map(str::to_string).unwrap_or_else(|| addr.to_string());
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut out = vec![];
    let _ = s.read_to_end(&mut out);
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no answer to {method} {path}"));
    let head = String::from_utf8_lossy(&out[..split]).to_string();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let mut b = out[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        b = drover_test_support::http::dechunk(&b);
    }
    Answer {
        status,
        head,
        body: String::from_utf8_lossy(&b).into_owned(),
    }
}

impl TcpServer {
    /// A JSON request on the admin socket: status and body.
    fn owner_json(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        drover_test_support::http::json(&self.env.sock(), method, path, body)
    }
}

/// The path and query of a URL `http://HOST:PORT/…`.
fn path_of(url: &str) -> String {
    let rest = url.split_once("://").unwrap().1;
    format!("/{}", rest.split_once('/').unwrap().1)
}

/// Logs in on the loopback listener with a fresh `drover web` URL; the `Cookie` value.
fn owner_login(env: &Env, web: SocketAddr) -> String {
    let url = env.ok(&["web"]);
    let a = raw(web, "GET", &path_of(&url), None, &[], "");
    assert_eq!(a.status, 303, "{}", a.head);
    a.cookie()
}

fn task_body(env: &Env, marker: &str) -> String {
    json!({
        "repo": env.repo.display().to_string(),
        "prompt": format!("task {marker}"),
        "agent": "command",
        "cmd": format!("echo {marker}"),
    })
    .to_string()
}

#[test]
fn drover_web_prints_a_url_that_logs_in_once() {
    let srv = TcpServer::start();
    let web = web_addr(&srv.env.home);
    let out = srv.env.run(&["web"]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let url = stdout.trim();
    assert_eq!(stdout.lines().count(), 1, "the URL alone: {stdout:?}");
    assert!(
        url.starts_with(&format!("http://{web}/login?token=")),
        "{url} ({web})"
    );
    // A real HTTP client: the redirect, the cookie, then the API with it.
    srv.rt.block_on(async {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let r = http.get(url).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 303);
        assert_eq!(r.headers()["location"], "/");
        assert_eq!(r.headers()["cache-control"], "no-store");
        let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
        assert!(
            set.starts_with(&format!("drover_session_{}=", web.port())),
            "{set}"
        );
        for flag in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
            assert!(set.contains(flag), "{flag}: {set}");
        }
        assert!(!set.contains("Secure"), "plain loopback HTTP: {set}");
        let cookie = set.split(';').next().unwrap().to_string();
        let tasks = http
            .get(format!("http://{web}/v1/tasks"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(tasks.status().as_u16(), 200);
        let page: Value = tasks.json().await.unwrap();
        assert!(page["tasks"].is_array(), "{page}");
        let who: Value = http
            .get(format!("http://{web}/v1/web/session"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(who["owner"], true, "{who}");
        // The token worked once.
        let again = http.get(url).send().await.unwrap();
        assert_eq!(again.status().as_u16(), 401);
        assert!(again.headers().get("set-cookie").is_none());
        let text = again.text().await.unwrap();
        assert!(text.contains("already used or expired"), "{text}");
        assert!(
            !text.contains(url.split('=').nth(1).unwrap()),
            "never echoed"
        );
    });
}

#[test]
fn the_loopback_api_needs_the_cookie_and_the_right_host() {
    let srv = TcpServer::start();
    let web = web_addr(&srv.env.home);
    // No cookie: 401 on the API; the public routes and the pages answer.
    let a = raw(web, "GET", "/v1/tasks", None, &[], "");
    assert_eq!(a.status, 401, "{}", a.body);
    assert!(a.body.contains("drover web"), "{}", a.body);
    let bogus = format!("drover_session_{}={}", web.port(), "ab".repeat(32));
    let a = raw(web, "GET", "/v1/tasks", None, &[("cookie", &bogus)], "");
    assert_eq!(a.status, 401, "a made-up session: {}", a.body);
    for path in [
        "/v1/health",
        "/v1/openapi.json",
        "/",
        "/ui/app.js",
        "/login",
    ] {
        let a = raw(web, "GET", path, None, &[], "");
        assert_eq!(a.status, 200, "{path}: {}", a.head);
    }
    // The pages' security headers.
    let page = raw(web, "GET", "/", None, &[], "");
    let csp = page.header("content-security-policy").unwrap();
    assert!(
        csp.contains("default-src 'self'")
            && csp.contains("script-src 'self'")
            && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(page.header("x-content-type-options").unwrap(), "nosniff");
    assert_eq!(page.header("referrer-policy").unwrap(), "no-referrer");
    assert!(page.body.contains("/ui/app.js"));
    let login = raw(web, "GET", "/login", None, &[], "");
    assert_eq!(login.header("cache-control").unwrap(), "no-store");

    // The owner's cookie works under every loopback name of the port, and under no other Host
    // (DNS rebinding: a page of evil.example resolved to 127.0.0.1 sends its own name).
    let cookie = owner_login(&srv.env, web);
    let port = web.port();
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
    ] {
        let a = raw(
            web,
            "GET",
            "/v1/tasks",
            Some(&host),
            &[("cookie", &cookie)],
            "",
        );
        assert_eq!(a.status, 200, "{host}: {}", a.body);
    }
    for host in [
        format!("evil.example:{port}"),
        format!("127.0.0.1:{}", port.wrapping_add(1)),
        "127.0.0.1".to_string(),
        "localhost".to_string(),
    ] {
        for path in ["/v1/tasks", "/", "/login"] {
            let a = raw(web, "GET", path, Some(&host), &[("cookie", &cookie)], "");
            assert_eq!(a.status, 421, "{host} {path}: {}", a.body);
            assert_eq!(a.body.trim().lines().count(), 1, "one line: {}", a.body);
        }
    }
}

#[test]
fn a_cookie_post_needs_the_csrf_header_and_is_audited_with_the_peer() {
    let srv = TcpServer::start();
    let web = web_addr(&srv.env.home);
    let cookie = owner_login(&srv.env, web);
    let body = task_body(&srv.env, "csrf");
    let json_ct = ("content-type", "application/json");
    let a = raw(
        web,
        "POST",
        "/v1/tasks",
        None,
        &[("cookie", &cookie), json_ct],
        &body,
    );
    assert_eq!(a.status, 403, "{}", a.body);
    assert!(a.body.contains("x-drover-csrf"), "{}", a.body);
    let a = raw(
        web,
        "POST",
        "/v1/tasks",
        None,
        &[("cookie", &cookie), json_ct, ("x-drover-csrf", "0")],
        &body,
    );
    assert_eq!(a.status, 403, "{}", a.body);
    let ok = raw(
        web,
        "POST",
        "/v1/tasks",
        None,
        &[("cookie", &cookie), json_ct, ("x-drover-csrf", "1")],
        &body,
    );
    assert_eq!(ok.status, 201, "{}", ok.body);
    let id = serde_json::from_str::<Value>(&ok.body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    // The header alone (no cookie) is nothing.
    let a = raw(
        web,
        "POST",
        "/v1/tasks",
        None,
        &[json_ct, ("x-drover-csrf", "1")],
        &body,
    );
    assert_eq!(a.status, 401, "{}", a.body);
    // A dashboard session cannot mint more logins.
    let a = raw(
        web,
        "POST",
        "/v1/web/login",
        None,
        &[("cookie", &cookie), ("x-drover-csrf", "1")],
        "",
    );
    assert_eq!(a.status, 403, "{}", a.body);
    // Audited as the host owner, from the browser's address.
    let records = srv.env.json(&["audit", "--json"]);
    let rec = records
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["action"] == "task.create" && r["target"] == id.as_str())
        .unwrap_or_else(|| panic!("{records:#}"));
    let remote = rec["remote_addr"].as_str().unwrap();
    assert!(remote.starts_with("127.0.0.1:"), "{rec}");
    assert_eq!(rec["status"], 201);
    let refused = records
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "task.create" && r["status"] == 403)
        .count();
    assert_eq!(refused, 2, "{records:#}");
}

#[test]
fn a_token_dies_unused_after_its_lifetime() {
    let env = Env::new();
    let rt = runtime();
    let exe = Path::new(env!("CARGO_BIN_EXE_drover"));
    let daemon = rt.block_on(InProcessDaemon::start_with(&env.home, exe, |c| {
        c.web_token_ttl = Duration::from_millis(500);
    }));
    let web = web_addr(&env.home);
    let url = env.ok(&["web"]);
    let fresh = env.ok(&["web"]);
    // Time passing is what this checks: past the token's lifetime, it is refused.
    std::thread::sleep(Duration::from_millis(700));
    let a = raw(web, "GET", &path_of(&url), None, &[], "");
    assert_eq!(a.status, 401, "{}", a.head);
    assert!(a.header("set-cookie").is_none());
    let a = raw(web, "GET", &path_of(&fresh), None, &[], "");
    assert_eq!(a.status, 401, "{}", a.head);
    // A new one works at once.
    let url = env.ok(&["web"]);
    let a = raw(web, "GET", &path_of(&url), None, &[], "");
    assert_eq!(a.status, 303, "{}", a.head);
    rt.block_on(daemon.shutdown());
}

#[test]
fn with_web_listen_off_there_is_no_listener_and_drover_web_says_how() {
    let env = Env::new();
    let rt = runtime();
    let exe = Path::new(env!("CARGO_BIN_EXE_drover"));
    let daemon = rt.block_on(InProcessDaemon::start_with(&env.home, exe, |c| {
        c.web_listen = None;
    }));
    assert!(!drover_daemon::api::web::listener::addr_file(&env.home).exists());
    let out = env.run(&["web"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("web_listen"), "{err}");
    assert!(out.stdout.is_empty());
    let (status, body) =
        drover_test_support::http::json(&env.sock(), "POST", "/v1/web/login", "{}");
    assert_eq!(status, 409, "{body}");
    rt.block_on(daemon.shutdown());
}

#[test]
fn a_non_loopback_web_listen_is_refused_in_one_line() {
    let env = Env::new();
    let out = env.run(&["daemon", "--foreground", "--web-listen", "0.0.0.0:0"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    // One line saying what and what to do (the CLI's usual hint line after it).
    let first = err.lines().next().unwrap();
    assert!(
        first.contains("web_listen") && first.contains("not a loopback address"),
        "{err}"
    );
    assert!(first.contains("use listen"), "{err}");
}

#[test]
fn the_agent_inside_a_task_cannot_get_a_login() {
    let env = Env::new();
    let id = env.run_command_task(
        "drover web > url.txt 2> err.txt; echo \"web-exit=$?\"; cat err.txt",
        "ask for a login",
    );
    let t = env.wait(&id);
    assert_eq!(t["state"], "succeeded", "{t:#}");
    let text = serde_json::to_string(&env.events(&id)).unwrap();
    assert!(text.contains("web-exit=2"), "{text}");
    assert!(text.contains("forbidden"), "{text}");
    assert!(!text.contains("token="), "{text}");
    let records = env.json(&["audit", "--json"]);
    let rec = records
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["action"] == "web.login")
        .unwrap_or_else(|| panic!("{records:#}"));
    assert_eq!(rec["status"], 403);
    assert_eq!(rec["remote_addr"], format!("task:{id}").as_str());
}

/// The team listener: keys log in (form or one-time URL), see their team only, and their
/// sessions end with them.
#[test]
fn key_sessions_on_the_team_listener() {
    let srv = TcpServer::start();
    srv.keys.team("a");
    srv.keys.team("b");
    let rw = [Scope::TasksRead, Scope::TasksWrite];
    let ka = srv.keys.key("a", &rw, None);
    let kb = srv.keys.key("b", &[Scope::TasksRead], None);
    let kb_w = srv.keys.key("b", &rw, None);
    let (s, ta) = srv.call(
        "POST",
        "/v1/tasks",
        Some(&ka.secret),
        &task_body(&srv.env, "ta"),
    );
    assert_eq!(s, 201, "{ta}");
    let ta = serde_json::from_str::<Value>(&ta).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, tb) = srv.call(
        "POST",
        "/v1/tasks",
        Some(&kb_w.secret),
        &task_body(&srv.env, "tb"),
    );
    assert_eq!(s, 201, "{tb}");
    let tb = serde_json::from_str::<Value>(&tb).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let tcp = srv.addr;
    let form = ("content-type", "application/x-www-form-urlencoded");

    // The pages are there; a bad key is the form again, one message for every kind of bad.
    let page = raw(tcp, "GET", "/login", None, &[], "");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("name=\"key\""), "{}", page.body);
    assert!(page.header("content-security-policy").is_some());
    let revoked = srv.keys.key("a", &rw, None);
    srv.keys.revoke(&revoked.id);
    for bad in [
        format!("drv_{}", "0".repeat(64)),
        revoked.secret,
        "nonsense".to_string(),
        String::new(),
    ] {
        let a = raw(tcp, "POST", "/login", None, &[form], &format!("key={bad}"));
        assert_eq!(a.status, 401, "{bad}: {}", a.head);
        assert!(
            a.body.contains("Unknown, expired or revoked key."),
            "{}",
            a.body
        );
        assert!(a.header("set-cookie").is_none());
    }
    // Another site's form: refused.
    let a = raw(
        tcp,
        "POST",
        "/login",
        None,
        &[form, ("origin", "https://evil.example")],
        &format!("key={}", ka.secret),
    );
    assert_eq!(a.status, 403);

    // Key a logs in with the form.
    let a = raw(
        tcp,
        "POST",
        "/login",
        None,
        &[form],
        &format!("key={}", ka.secret),
    );
    assert_eq!(a.status, 303, "{}", a.head);
    let set = a.header("set-cookie").unwrap();
    assert!(
        set.starts_with(&format!("drover_session_{}=", tcp.port())),
        "{set}"
    );
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(!set.contains("Secure"), "no TLS: {set}");
    let cookie_a = a.cookie();
    let list = |cookie: &str| {
        let a = raw(
            tcp,
            "GET",
            "/v1/tasks?all=true",
            None,
            &[("cookie", cookie)],
            "",
        );
        assert_eq!(a.status, 200, "{}", a.body);
        let v: Value = serde_json::from_str(&a.body).unwrap();
        v["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(list(&cookie_a), vec![ta]);
    let a = raw(
        tcp,
        "GET",
        &format!("/v1/tasks/{tb}"),
        None,
        &[("cookie", &cookie_a)],
        "",
    );
    assert_eq!(a.status, 404, "another team's task: {}", a.body);
    let who = raw(
        tcp,
        "GET",
        "/v1/web/session",
        None,
        &[("cookie", &cookie_a)],
        "",
    );
    let who: Value = serde_json::from_str(&who.body).unwrap();
    assert_eq!(who["team"], "a");
    assert_eq!(who["key_id"], ka.id.as_str());
    // CSRF over TCP too.
    let body = task_body(&srv.env, "again");
    let json_ct = ("content-type", "application/json");
    let a = raw(
        tcp,
        "POST",
        "/v1/tasks",
        None,
        &[("cookie", &cookie_a), json_ct],
        &body,
    );
    assert_eq!(a.status, 403, "{}", a.body);
    let a = raw(
        tcp,
        "POST",
        "/v1/tasks",
        None,
        &[("cookie", &cookie_a), json_ct, ("x-drover-csrf", "1")],
        &body,
    );
    assert_eq!(a.status, 201, "{}", a.body);
    // The team cookie is nothing on the owner's loopback listener.
    let web = web_addr(&srv.env.home);
    let value = cookie_a.split_once('=').unwrap().1;
    let as_owner = format!("drover_session_{}={value}", web.port());
    let a = raw(web, "GET", "/v1/tasks", None, &[("cookie", &as_owner)], "");
    assert_eq!(a.status, 401, "{}", a.body);

    // Key b (read only) asks for a one-time URL over TCP: it logs in as b, on the team listener.
    let bearer_b = format!("Bearer {}", kb.secret);
    let key_login = || {
        let a = raw(
            tcp,
            "POST",
            "/v1/web/login",
            None,
            &[("authorization", &bearer_b)],
            "",
        );
        assert_eq!(a.status, 200, "{}", a.body);
        serde_json::from_str::<Value>(&a.body).unwrap()["url"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let url = key_login();
    // On the Host the request was sent to.
    assert!(
        url.starts_with(&format!("http://{tcp}/login?token=")),
        "{url}"
    );
    let a = raw(tcp, "GET", &path_of(&url), None, &[], "");
    assert_eq!(a.status, 303, "{}", a.head);
    let cookie_b = a.cookie();
    assert_eq!(list(&cookie_b), vec![tb.clone()]);
    // The key's own scopes: read only.
    let a = raw(
        tcp,
        "POST",
        "/v1/tasks",
        None,
        &[("cookie", &cookie_b), json_ct, ("x-drover-csrf", "1")],
        &body,
    );
    assert_eq!(a.status, 403, "{}", a.body);
    // Used once; and a key URL is nothing on the owner's listener.
    assert_eq!(raw(tcp, "GET", &path_of(&url), None, &[], "").status, 401);
    let url = key_login();
    assert_eq!(raw(web, "GET", &path_of(&url), None, &[], "").status, 401);
    // `drover web` against the team server: a key-bound URL there.
    let out = srv
        .env
        .cmd(&["web"])
        .env("DROVER_URL", format!("http://{tcp}"))
        .env("DROVER_API_KEY", &kb.secret)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let url = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        url.starts_with(&format!("http://{tcp}/login?token=")),
        "{url}"
    );
    assert_eq!(raw(tcp, "GET", &path_of(&url), None, &[], "").status, 303);

    // Revoking key a ends its session at the next request.
    srv.keys.revoke(&ka.id);
    let a = raw(tcp, "GET", "/v1/tasks", None, &[("cookie", &cookie_a)], "");
    assert_eq!(a.status, 401, "{}", a.body);
    let a = raw(tcp, "GET", "/v1/tasks", None, &[("cookie", &cookie_a)], "");
    assert_eq!(a.status, 401, "{}", a.body);
    assert_eq!(list(&cookie_b), vec![tb]);
}

/// `GET /v1/budgets` (the cost view's burn-down): team daily budgets and active tasks'
/// `--max-usd`; a key sees its team's only, with `usage:read`.
#[test]
fn budgets_show_teams_and_active_task_budgets_by_team() {
    // A task budget needs the gateway (on without a provider key: nothing is called here).
    let env = Env::new();
    let rt = runtime();
    let exe = Path::new(env!("CARGO_BIN_EXE_drover"));
    let daemon = rt.block_on(InProcessDaemon::start_with(&env.home, exe, |c| {
        c.upstreams.gateway = drover_daemon::config::GatewaySwitch::On;
        c.listen = Some(drover_daemon::config::Listen {
            addr: "127.0.0.1:0".parse().unwrap(),
            tls: None,
        });
    }));
    let file = drover_daemon::api::tcp::addr_file(&env.home);
    let mut addr = None;
    drover_test_support::poll::poll("listen.addr", Duration::from_secs(30), || {
        addr = std::fs::read_to_string(&file)
            .ok()
            .and_then(|s| s.trim().parse().ok());
        addr.is_some()
    });
    let srv = TcpServer {
        rt,
        daemon: Some(daemon),
        addr: addr.unwrap(),
        keys: drover_test_support::keys::Keys::open(&env.home),
        env,
    };
    srv.keys.team("a");
    srv.keys.team("b");
    let (s, b) = srv.owner_json("PATCH", "/v1/teams/a", r#"{"max_usd_per_day": 5.0}"#);
    assert_eq!(s, 200, "{b}");
    let ka = srv
        .keys
        .key("a", &[Scope::TasksWrite, Scope::UsageRead], None);
    let kb_read = srv.keys.key("b", &[Scope::TasksRead], None);
    let body = json!({
        "repo": srv.env.repo.display().to_string(),
        "prompt": "budgeted",
        "agent": "command",
        "cmd": "sleep 60",
        "budget": {"maxUsd": 1.5},
    })
    .to_string();
    let (s, t) = srv.call("POST", "/v1/tasks", Some(&ka.secret), &body);
    assert_eq!(s, 201, "{t}");
    let id = serde_json::from_str::<Value>(&t).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    srv.env
        .until(&id, "the task runs", |t| t["state"] == "running");
    let (s, all) = srv.owner_json("GET", "/v1/budgets", "");
    assert_eq!(s, 200, "{all}");
    let all: Value = serde_json::from_str(&all).unwrap();
    let teams: Vec<&str> = all["teams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["team"].as_str().unwrap())
        .collect();
    assert_eq!(teams, ["a", "b"], "{all:#}");
    assert_eq!(all["teams"][0]["max_usd_per_day"], 5.0);
    assert_eq!(all["teams"][0]["spent_today_usd"], 0.0);
    let hours = all["teams"][0]["hourly_usd"].as_array().unwrap();
    let hour = chrono::Timelike::hour(&chrono::Utc::now()) as usize;
    assert!((hour..=hour + 1).contains(&hours.len()), "{all:#}");
    assert!(hours.iter().all(|h| h == 0.0), "{all:#}");
    let task = all["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id.as_str())
        .unwrap_or_else(|| panic!("{all:#}"));
    assert_eq!(task["max_usd"], 1.5);
    assert_eq!(task["team"], "a");
    // Key a: its team only. Key b without usage:read: 403.
    let (s, mine) = srv.call("GET", "/v1/budgets", Some(&ka.secret), "");
    assert_eq!(s, 200, "{mine}");
    let mine: Value = serde_json::from_str(&mine).unwrap();
    assert_eq!(mine["teams"].as_array().unwrap().len(), 1, "{mine:#}");
    assert_eq!(mine["teams"][0]["team"], "a");
    let (s, _) = srv.call("GET", "/v1/budgets", Some(&kb_read.secret), "");
    assert_eq!(s, 403);
    let (s, b) = srv.owner_json("POST", &format!("/v1/tasks/{id}/stop"), "");
    assert!((200..300).contains(&s), "{b}");
}

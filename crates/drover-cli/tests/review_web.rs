//! Attack review of the dashboard's data (issue 14): what an untrusted agent can make the
//! daemon do through its own task's diff (the only dashboard route its socket reaches).
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;
use serde_json::Value;
use std::time::Duration;

/// An agent fills its checkout with a big untracked file and calls its own diff many times at
/// once: each call would hash the whole checkout with the daemon's git, outside the task's
/// cgroup. A task gets at most two reads at a time; one more is a 503 `busy` in one line, and
/// the places come back once the reads answered.
#[test]
fn a_flood_of_one_tasks_diffs_is_refused_not_run() {
    let env = Env::new();
    let id = env.run_command_task(
        "head -c 48000000 /dev/urandom > noise.bin; echo ready; sleep 600",
        "big untracked file",
    );
    poll("the big file", Duration::from_secs(120), || {
        serde_json::to_string(&env.events(&id))
            .unwrap()
            .contains("ready")
    });
    let path = format!("/v1/tasks/{id}/diff");
    let answers: Vec<(u16, Vec<u8>)> = std::thread::scope(|s| {
        // All eight start before any is joined.
        #[allow(clippy::needless_collect)]
        let calls: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    let (st, _, body) = http(&env, "GET", &path, &[], b"");
                    (st, body)
                })
            })
            .collect();
        calls.into_iter().map(|c| c.join().unwrap()).collect()
    });
    let mut busy = 0;
    for (st, body) in &answers {
        let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        match st {
            200 => assert!(v["files"].is_array(), "{v}"),
            503 => {
                busy += 1;
                assert_eq!(v["kind"], "busy", "{v}");
                let e = v["error"].as_str().unwrap();
                assert!(!e.contains('\n') && e.contains("already being read"), "{e}");
            }
            other => panic!("{other}: {v}"),
        }
    }
    assert!(busy >= 1, "eight reads at once all ran");
    assert!(busy <= 6, "at least two ran: {answers:?}");
    // The places are given back.
    let (st, _, body) = http(&env, "GET", &path, &[], b"");
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    env.ok(&["stop", &id]);
}

/// The loopback listener's address (`DROVER_HOME/web.addr`).
fn web_addr(home: &std::path::Path) -> std::net::SocketAddr {
    let file = drover_daemon::api::web::listener::addr_file(home);
    let mut addr = None;
    poll("web.addr", Duration::from_secs(30), || {
        addr = std::fs::read_to_string(&file)
            .ok()
            .and_then(|s| s.trim().parse().ok());
        addr.is_some()
    });
    addr.unwrap()
}

/// Sends one HTTP/1.1 request; the open stream.
fn send(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> std::net::TcpStream {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: 0\r\n"
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s
}

/// Everything the stream sends until it closes, or a panic after `limit`.
fn read_until_closed(mut s: std::net::TcpStream, limit: Duration) -> String {
    use std::io::Read;
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = std::time::Instant::now() + limit;
    let mut out = vec![];
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return String::from_utf8_lossy(&out).into_owned(),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("{e}"),
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still open after {limit:?}: {}",
            String::from_utf8_lossy(&out)
        );
    }
}

/// A dashboard tab left open keeps its live streams after the person logged out (or the
/// session's 12 hours passed): the fleet feed and a task's event stream must end with the
/// session, as they do with a revoked key.
#[test]
fn live_streams_end_with_the_dashboard_session() {
    let srv = TcpServer::start();
    let env = &srv.env;
    let web = web_addr(&env.home);
    let url = env.ok(&["web"]);
    let path = format!(
        "/{}",
        url.split_once("://").unwrap().1.split_once('/').unwrap().1
    );
    let login = read_until_closed(send(web, "GET", path.trim(), &[]), Duration::from_secs(30));
    assert!(login.starts_with("HTTP/1.1 303"), "{login}");
    let cookie = login
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("set-cookie")
                .then(|| v.trim().split(';').next().unwrap().to_string())
        })
        .unwrap();
    let id = env.run_command_task("echo hi; sleep 600", "a live task");
    let sse = [("cookie", cookie.as_str()), ("accept", "text/event-stream")];
    let fleet = send(web, "GET", "/v1/fleet/events", &sse);
    let events = send(web, "GET", &format!("/v1/tasks/{id}/events"), &sse);
    std::thread::sleep(Duration::from_secs(1));
    let out = read_until_closed(
        send(
            web,
            "POST",
            "/logout",
            &[("cookie", cookie.as_str()), ("x-drover-csrf", "1")],
        ),
        Duration::from_secs(30),
    );
    assert!(out.starts_with("HTTP/1.1 204"), "{out}");
    for (what, s) in [("fleet", fleet), ("events", events)] {
        let got = read_until_closed(s, Duration::from_secs(20));
        assert!(got.starts_with("HTTP/1.1 200"), "{what}: {got}");
        assert!(got.contains("text/event-stream"), "{what}: {got}");
    }
    // And the cookie opens nothing new.
    let again = read_until_closed(
        send(web, "GET", "/v1/fleet/events", &sse),
        Duration::from_secs(30),
    );
    assert!(again.starts_with("HTTP/1.1 401"), "{again}");
    env.ok(&["stop", &id]);
}

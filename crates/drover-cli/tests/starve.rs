//! Nothing one agent prints and nothing a local client does starves the daemon: a 50 MB line and
//! 50 MB of NUL bytes become small events pointing into the raw log, later tasks still end fast,
//! memory returns, and idle or half-sent connections neither block `drover ls` nor stay open.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;
use serde_json::Value;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

const MB50: u64 = 50 << 20;
/// The daemon's header-read timeout (`drover_daemon::listen::HEADER_TIMEOUT`).
const HEADER_TIMEOUT: Duration = drover_daemon::listen::HEADER_TIMEOUT;
/// The time a client has to send a request body (`drover_daemon::api::body::BODY_TIMEOUT`).
const BODY_TIMEOUT: Duration = drover_daemon::api::body::BODY_TIMEOUT;

fn millis(ts: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(ts.as_str().unwrap())
        .unwrap()
        .timestamp_millis()
}

fn rss_kb(pid: i32) -> u64 {
    status_kb(pid, "VmRSS:")
}

fn status_kb(pid: i32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

fn read_range(path: &std::path::Path, offset: u64, len: u64) -> Vec<u8> {
    let mut f = std::fs::File::open(path).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    let mut buf = vec![0u8; len as usize];
    f.read_exact(&mut buf).unwrap();
    buf
}

#[test]
fn a_50mb_line_and_50mb_of_nul_bytes_leave_the_daemon_fast_and_small() {
    let env = Env::new();
    env.ok(&["daemon", "--slots", "2"]);
    let cmd = format!(
        "head -c {MB50} /dev/zero | tr '\\0' x; echo; echo after; head -c {MB50} /dev/zero"
    );
    let big = env.run_command_task(&cmd, "flood");
    let t = env.wait(&big);
    assert_eq!(t["state"], "succeeded", "{t:#}");

    let stdout_log = env.home.join("tasks").join(&big).join("stdout.log");
    assert_eq!(
        std::fs::metadata(&stdout_log).unwrap().len(),
        2 * MB50 + "\nafter\n".len() as u64,
        "the raw log keeps every byte"
    );
    let evs = env.events(&big);
    let total: usize = evs.iter().map(|e| e.to_string().len()).sum();
    assert!(total < 100 << 10, "events hold {total} bytes");
    let texts: Vec<&Value> = evs.iter().filter(|e| e["kind"] == "text").collect();
    assert_eq!(texts.len(), 3, "{texts:#?}");

    // The long line: a 16 KiB excerpt, marked, pointing at exactly its bytes.
    let line = &texts[0]["data"];
    assert_eq!(line["truncated"], true);
    assert_eq!(line["raw"]["stream"], "stdout");
    let (off, len) = (
        line["raw"]["offset"].as_u64().unwrap(),
        line["raw"]["len"].as_u64().unwrap(),
    );
    assert_eq!((off, len), (0, MB50));
    let text = line["text"].as_str().unwrap();
    assert!(
        text.len() <= (16 << 10) + 4 && text.starts_with("xxxx"),
        "{}",
        text.len()
    );
    let raw = read_range(&stdout_log, off, len + 1);
    assert!(raw[..len as usize].iter().all(|&b| b == b'x'));
    assert_eq!(raw[len as usize], b'\n');

    assert_eq!(texts[1]["data"]["text"], "after");

    // The NUL bytes: no bytes in the event, just what and where.
    let nul = &texts[2]["data"];
    assert_eq!(nul["binary"], true, "{nul}");
    assert_eq!(nul["raw"]["offset"].as_u64().unwrap(), MB50 + 7);
    assert_eq!(nul["raw"]["len"].as_u64().unwrap(), MB50);
    assert!(nul.to_string().len() < 300, "{nul}");
    assert!(read_range(&stdout_log, MB50 + 7, MB50)
        .iter()
        .all(|&b| b == 0));
    // The API serves the exact bytes of a range.
    let sock = env.home.join("daemon.sock");
    let (status, body) = drover_test_support::http::json(
        &sock,
        "GET",
        &format!(
            "/v1/tasks/{big}/raw?stream=stdout&offset={}&len=8",
            MB50 - 3
        ),
        "",
    );
    assert_eq!((status, body.as_str()), (200, "xxx\nafte"));
    let (status, body) = drover_test_support::http::json(
        &sock,
        "GET",
        &format!("/v1/tasks/{big}/raw?stream=stdout&offset={}", 2 * MB50),
        "",
    );
    assert_eq!((status, body.len()), (200, 7), "the tail: 7 NUL bytes");
    let (status, _) = drover_test_support::http::json(
        &sock,
        "GET",
        &format!("/v1/tasks/{big}/raw?stream=stdout&offset={}", 3 * MB50),
        "",
    );
    assert_eq!(status, 400);

    // Shown safely: `logs` prints a placeholder, never the bytes.
    let logs = env.run(&["logs", &big]);
    assert!(logs.status.success());
    assert!(!logs.stdout.contains(&0u8));
    assert!(String::from_utf8_lossy(&logs.stdout).contains("[binary output: 52428800 bytes"));

    // The next trivial tasks each end in under a second, created → finished.
    for i in 0..10 {
        let id = env.run_command_task(&format!("echo t{i}"), "trivial");
        let t = env.wait(&id);
        assert_eq!(t["state"], "succeeded", "{t:#}");
        let took = millis(&t["finished_at"]) - millis(&t["created_at"]);
        eprintln!("trivial task {i}: {took} ms");
        assert!(took < 1000, "trivial task {i} took {took} ms");
    }

    // Memory came back (a deadline, not a sleep: the allocator may return it a little later).
    let pid = env.daemon_pid().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut rss = rss_kb(pid);
    while rss >= 50 << 10 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        rss = rss_kb(pid);
    }
    let peak = status_kb(pid, "VmHWM:");
    eprintln!("daemon RSS after the flood: {rss} KiB (peak {peak} KiB)");
    assert!(
        peak < 128 << 10,
        "the daemon peaked at {peak} KiB: a long line was held whole"
    );
    assert!(rss < 50 << 10, "daemon RSS {rss} KiB");
}

/// Raises this process's open-file limit to its hard limit; returns the soft limit now.
fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
    }
    lim.rlim_cur
}

/// Reads until the daemon closes `s` or `deadline` passes; whether it was closed.
fn closed_by(s: &mut UnixStream, deadline: Instant) -> bool {
    let mut buf = [0u8; 256];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return true,
            // A 408 or similar before the close is fine too.
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn idle_and_slowloris_connections_neither_block_ls_nor_stay_open() {
    assert!(raise_nofile() >= 1500, "this test needs 1,500 open files");
    let env = Env::new();
    env.ok(&["daemon", "--slots", "2"]);
    let sock = env.home.join("daemon.sock");

    // A live follower that must outlive the header timeout (its response is in progress).
    // (In the task's checkout: a confined agent sees nothing else of the test's.)
    let cmd = "echo started; while [ ! -e release ]; do sleep 0.05; done; echo released";
    let held = env.run_command_task(cmd, "held");
    let t = env.until(&held, "running", |t| t["state"] == "running");
    let release = std::path::Path::new(t["sandbox"].as_str().unwrap()).join("release");
    let mut follower = env
        .cmd(&["logs", &held, "--follow"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();

    let opened = Instant::now();
    let idle: Vec<UnixStream> = (0..1000)
        .map(|_| UnixStream::connect(&sock).unwrap())
        .collect();
    let mut slow: Vec<UnixStream> = (0..200)
        .map(|_| {
            let mut s = UnixStream::connect(&sock).unwrap();
            s.write_all(b"GET /v1/tasks HTTP/1.1\r\nHost: drover\r\nX-Slow: ")
                .unwrap();
            s
        })
        .collect();
    // And one that sends its head but only part of the body it announced.
    let mut slow_body = UnixStream::connect(&sock).unwrap();
    slow_body
        .write_all(b"POST /v1/tasks HTTP/1.1\r\nHost: drover\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"repo\":")
        .unwrap();
    eprintln!("1,200 connections opened in {:?}", opened.elapsed());

    let t0 = Instant::now();
    let ls = env.run(&["ls"]);
    let took = t0.elapsed();
    eprintln!("drover ls with 1,200 idle and slowloris connections: {took:?}");
    assert!(ls.status.success(), "{ls:?}");
    assert!(String::from_utf8_lossy(&ls.stdout).contains(&held[..8]));
    assert!(took < Duration::from_secs(1), "ls took {took:?}");

    // Every slowloris and idle connection is closed by the daemon within the header timeout
    // (plus scheduling slack on a loaded machine).
    let deadline = opened + HEADER_TIMEOUT + Duration::from_secs(3);
    for (i, s) in slow.iter_mut().enumerate() {
        assert!(
            closed_by(s, deadline),
            "slowloris connection {i} still open"
        );
    }
    let closed_at = opened.elapsed();
    eprintln!("200 slowloris connections closed {closed_at:?} after opening");
    assert!(closed_at >= HEADER_TIMEOUT - Duration::from_millis(500));
    for (i, mut s) in idle.into_iter().enumerate() {
        assert!(
            closed_by(&mut s, deadline),
            "idle connection {i} still open"
        );
    }

    // The slow body is answered 408 with a JSON error once the body timeout is over.
    slow_body
        .set_read_timeout(Some(BODY_TIMEOUT + Duration::from_secs(5)))
        .unwrap();
    let mut answer = String::new();
    slow_body.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""kind":"timeout""#), "{answer}");
    assert!(opened.elapsed() >= BODY_TIMEOUT - Duration::from_millis(500));

    // The follower's stream is older than the header timeout and still open.
    assert!(
        follower.try_wait().unwrap().is_none(),
        "logs --follow ended early"
    );
    std::fs::write(&release, "").unwrap();
    let done = env.wait(&held);
    assert_eq!(done["state"], "succeeded", "{done:#}");
    let out = follower.wait_with_output().unwrap();
    assert!(out.status.success());
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(out.contains("started") && out.contains("released"), "{out}");
}

#[test]
fn lists_and_events_come_in_pages_and_show_returns_the_whole_task() {
    let env = Env::new();
    env.ok(&["daemon", "--slots", "1"]);
    let long = "p".repeat(100_000);
    let ids: Vec<String> = (0..5)
        .map(|_| env.run_command_task("true", &long))
        .collect();
    for id in &ids {
        env.wait(id);
    }
    // `ls --json` follows the cursor over pages of summaries.
    let listed: Vec<Value> = serde_json::from_str(&env.ok(&["ls", "--all", "--json"])).unwrap();
    let listed_ids: Vec<&str> = listed.iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(
        listed_ids,
        ids.iter().map(String::as_str).collect::<Vec<_>>()
    );
    for t in &listed {
        let p = t["prompt"].as_str().unwrap();
        assert!(p.chars().count() <= 501 && p.ends_with('…'), "{}", p.len());
    }
    assert_eq!(env.show(&ids[0])["prompt"].as_str().unwrap().len(), 100_000);

    // The API pages with `limit` and `cursor`.
    let sock = env.home.join("daemon.sock");
    let mut cursor = String::new();
    let mut paged = vec![];
    let mut pages = 0;
    loop {
        let (status, page) = drover_test_support::http::json(
            &sock,
            "GET",
            &format!("/v1/tasks?all=true&limit=2&cursor={cursor}"),
            "",
        );
        assert_eq!(status, 200, "{page}");
        let page: Value = serde_json::from_str(&page).unwrap();
        let tasks = page["tasks"].as_array().unwrap();
        assert!(tasks.len() <= 2);
        paged.extend(tasks.iter().map(|t| t["id"].as_str().unwrap().to_string()));
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_string(),
            None => break,
        }
        assert!(pages < 10, "the cursor does not advance");
    }
    assert_eq!(paged, ids);
    assert_eq!(pages, 3);
    // Events page too (at most 1,000 an answer); `logs` follows the pages.
    let many = env.run_command_task("seq 2500", "many lines");
    env.wait(&many);
    let (status, page) =
        drover_test_support::http::json(&sock, "GET", &format!("/v1/tasks/{many}/events"), "");
    assert_eq!(status, 200);
    let page: Vec<Value> = serde_json::from_str(&page).unwrap();
    assert_eq!(page.len(), 1000);
    let evs = env.events(&many);
    let seqs: Vec<i64> = evs.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    let texts: Vec<&str> = evs
        .iter()
        .filter(|e| e["kind"] == "text")
        .map(|e| e["data"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts.len(), 2500);
    assert_eq!((texts[0], texts[2499]), ("1", "2500"));
    let (status, _) = drover_test_support::http::json(
        &sock,
        "GET",
        &format!("/v1/tasks/{many}/events?limit=1001"),
        "",
    );
    assert_eq!(status, 400);

    for bad in ["limit=0", "limit=501", "cursor=abc"] {
        let (status, body) =
            drover_test_support::http::json(&sock, "GET", &format!("/v1/tasks?{bad}"), "");
        assert_eq!(status, 400, "{bad}: {body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["kind"], "invalid", "{bad}: {body}");
    }
}

#[test]
fn a_prompt_over_1_mib_is_refused_with_413_and_nothing_starts() {
    let env = Env::new();
    env.ok(&["daemon"]);
    let sock = env.home.join("daemon.sock");
    let req = serde_json::json!({
        "repo": env.repo.display().to_string(),
        "agent": "command",
        "cmd": "true",
        "prompt": "p".repeat((1 << 20) + 1),
    });
    let (status, body) =
        drover_test_support::http::json(&sock, "POST", "/v1/tasks", &req.to_string());
    assert_eq!(status, 413, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["kind"], "too_large");
    assert!(body["error"].as_str().unwrap().contains("1 MiB"), "{body}");
    assert!(body["hint"].is_string());
    // The same limit for a pool, whose tasks would inherit the prompt.
    let pool = serde_json::json!({
        "name": "big", "slots": 1, "repo": env.repo.display().to_string(),
        "agent": "command", "cmd": "true", "prompt": "p".repeat((1 << 20) + 1),
    });
    let (status, body) =
        drover_test_support::http::json(&sock, "POST", "/v1/pools", &pool.to_string());
    assert_eq!(status, 413, "{body}");
    let pools: Vec<Value> = serde_json::from_str(&env.ok(&["pool", "ls", "--json"])).unwrap();
    assert!(pools.is_empty(), "{pools:#?}");
    // A body over the 4 MiB limit is refused from its announced length, as JSON.
    let mut s = UnixStream::connect(&sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"POST /v1/tasks HTTP/1.1\r\nHost: drover\r\ncontent-type: application/json\r\ncontent-length: 5000000\r\n\r\n{")
        .unwrap();
    let mut answer = vec![0u8; 4096];
    let n = s.read(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains(r#""kind":"too_large""#), "{answer}");
    let listed: Vec<Value> = serde_json::from_str(&env.ok(&["ls", "--all", "--json"])).unwrap();
    assert!(listed.is_empty(), "{listed:#?}");
}

#[test]
fn connections_over_the_cap_are_refused_at_once_and_slots_come_back() {
    assert!(raise_nofile() >= 1000, "this test needs 1,000 open files");
    let env = Env::new();
    // A daemon whose hard file limit is 700: its cap is 700 - 512 = 188 connections.
    let mut start = env.cmd(&["daemon"]);
    use std::os::unix::process::CommandExt;
    unsafe {
        start.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 700,
                rlim_max: 700,
            };
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            Ok(())
        });
    }
    assert!(start.output().unwrap().status.success());
    let sock = env.home.join("daemon.sock");
    let opened = Instant::now();
    let held: Vec<UnixStream> = (0..188)
        .map(|_| UnixStream::connect(&sock).unwrap())
        .collect();
    // One more is answered at once: 503, a JSON error, closed.
    let mut extra = UnixStream::connect(&sock).unwrap();
    extra
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let mut answer = String::new();
    extra.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains(r#""kind":"busy""#), "{answer}");
    assert!(
        opened.elapsed() < HEADER_TIMEOUT,
        "refused only after {:?}",
        opened.elapsed()
    );
    // The CLI is told so, quickly, with exit 3.
    let t0 = Instant::now();
    let ls = env.run(&["ls"]);
    assert_eq!(ls.status.code(), Some(3), "{ls:?}");
    let err = String::from_utf8_lossy(&ls.stderr);
    eprintln!("ls at the cap: {err}");
    assert!(err.contains("connection limit"), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(2));
    // Once the idle connections time out, their slots are free again.
    let deadline = opened + HEADER_TIMEOUT + Duration::from_secs(3);
    for (i, mut s) in held.into_iter().enumerate() {
        assert!(
            closed_by(&mut s, deadline),
            "idle connection {i} still open"
        );
    }
    let ls = env.run(&["ls"]);
    assert!(ls.status.success(), "{ls:?}");
}

/// An events page is bounded by bytes as well as by count: 200 events of ~16 KiB come in pages
/// of at most about 1 MiB, and following the pages still yields every event once, in order.
#[test]
fn event_pages_are_bounded_by_bytes() {
    let env = Env::new();
    env.ok(&["daemon"]);
    let id = env.run_command_task(
        "for i in $(seq 1 200); do head -c 20000 /dev/zero | tr '\\0' y; echo; done",
        "wide lines",
    );
    let t = env.wait(&id);
    assert_eq!(t["state"], "succeeded", "{t:#}");
    let sock = env.home.join("daemon.sock");
    let (mut after, mut seen, mut pages) = (0i64, 0usize, 0usize);
    loop {
        let (status, body) = drover_test_support::http::json(
            &sock,
            "GET",
            &format!("/v1/tasks/{id}/events?after={after}"),
            "",
        );
        assert_eq!(status, 200, "{body}");
        assert!(
            body.len() <= (1 << 20) + (80 << 10),
            "a page of {} bytes",
            body.len()
        );
        let evs: Vec<Value> = serde_json::from_str(&body).unwrap();
        let Some(last) = evs.last() else { break };
        for e in &evs {
            assert_eq!(e["seq"].as_i64().unwrap(), after + 1, "a gap or a repeat");
            after += 1;
        }
        assert_eq!(last["seq"].as_i64().unwrap(), after);
        seen += evs.len();
        pages += 1;
        assert!(pages < 100, "no end of pages");
    }
    let texts = env
        .events(&id)
        .iter()
        .filter(|e| e["kind"] == "text")
        .count();
    assert_eq!(texts, 200);
    assert!(seen >= 200, "{seen} events");
    assert!(pages >= 3, "200 × 16 KiB in {pages} pages");
    // Following (SSE, read in bounded batches) yields the same events, once each, in order.
    let followed: Vec<i64> = env
        .ok(&["logs", "--follow", "--json", &id])
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["seq"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(followed, (1..=after).collect::<Vec<_>>());
}

//! The dashboard's data (docs/design.md §10): `GET /v1/fleet` (groups, counts, last lines, a
//! key's team only), `GET /v1/fleet/events` (a snapshot at once and after a change, one state
//! shared by every follower), `GET /v1/tasks/{id}/events?before=` (paging back over 5,000
//! events), `GET /v1/tasks/{id}/diff[/file]` (a live sandbox, a delivered commit, path attacks,
//! a symlink pointing out, the 256 KiB cut).
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;
use drover_types::Scope;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// A Server-Sent Events stream read as it arrives (HTTP/1.0: no chunking, ends at close).
struct Sse<S: Read> {
    s: S,
    buf: Vec<u8>,
    head: bool,
}

impl<S: Read + Write> Sse<S> {
    fn open(mut s: S, path: &str, auth: Option<&str>) -> Sse<S> {
        let mut req =
            format!("GET {path} HTTP/1.0\r\nhost: drover\r\naccept: text/event-stream\r\n");
        if let Some(k) = auth {
            req.push_str(&format!("authorization: Bearer {k}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).unwrap();
        Sse {
            s,
            buf: vec![],
            head: false,
        }
    }

    /// The next `snapshot` event's (id, data), within `limit`.
    fn next(&mut self, limit: Duration) -> (String, Value) {
        let deadline = Instant::now() + limit;
        loop {
            if !self.head {
                if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&self.buf[..i]).to_string();
                    assert!(head.contains(" 200 "), "{head}");
                    assert!(head.contains("text/event-stream"), "{head}");
                    self.buf.drain(..i + 4);
                    self.head = true;
                }
            }
            if self.head {
                while let Some(i) = self.buf.windows(2).position(|w| w == b"\n\n") {
                    let frame = String::from_utf8_lossy(&self.buf[..i]).to_string();
                    self.buf.drain(..i + 2);
                    let (mut id, mut event, mut data) =
                        (String::new(), String::new(), String::new());
                    for line in frame.lines() {
                        if let Some(v) = line.strip_prefix("id:") {
                            id = v.trim().to_string();
                        } else if let Some(v) = line.strip_prefix("event:") {
                            event = v.trim().to_string();
                        } else if let Some(v) = line.strip_prefix("data:") {
                            data.push_str(v.strip_prefix(' ').unwrap_or(v));
                        }
                    }
                    if event == "snapshot" {
                        return (id, serde_json::from_str(&data).unwrap());
                    }
                }
            }
            assert!(Instant::now() < deadline, "no snapshot within {limit:?}");
            let mut chunk = [0u8; 65536];
            match self.s.read(&mut chunk) {
                Ok(0) => panic!("the stream ended"),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("{e}"),
            }
        }
    }

    /// Snapshots until one satisfies `pred`.
    fn until(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no snapshot with {what}");
            let (_, v) = self.next(left);
            if pred(&v) {
                return v;
            }
        }
    }
}

fn unix_sse(env: &Env, path: &str) -> Sse<std::os::unix::net::UnixStream> {
    let s = std::os::unix::net::UnixStream::connect(env.sock()).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    Sse::open(s, path, None)
}

fn get(env: &Env, path: &str) -> (u16, Value) {
    let (s, _, b) = http(env, "GET", path, &[], b"");
    (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
}

fn card<'a>(fleet: &'a Value, id: &str) -> &'a Value {
    fleet["cards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no card {id} in {fleet:#}"))
}

fn has_card(fleet: &Value, id: &str) -> bool {
    fleet["cards"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["id"] == id)
}

fn count(fleet: &Value, group: &str) -> usize {
    fleet["cards"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["group"] == group)
        .count()
}

fn last_line(env: &Env, id: &str) -> Option<String> {
    env.events(id)
        .iter()
        .rev()
        .find(|e| e["kind"] == "text")
        .and_then(|e| e["data"]["text"].as_str().map(str::to_string))
}

#[test]
fn the_fleet_groups_its_tasks_with_their_last_lines_and_follows_changes() {
    let perm = "python3 -c \"open('perm.txt','w').write('x')\"";
    let provider = Provider::start(json!({ "scenarios": [
        { "name": "perm", "match": "NEEDS-BASH", "turns": [
            { "content": [ {"type": "tool_use", "name": "Bash",
                            "input": {"command": perm, "description": "write a file"}} ] },
            { "content": [ {"type": "text", "text": "done"} ] } ] },
        { "name": "default", "turns": [ { "content": [ {"type": "text", "text": "hello"} ] } ] }
    ]}));
    let env = Env::claude(&provider);
    let ok = env.run_command_task(
        "echo first; printf 'the \\033[31mlast\\033[0m line\\n'",
        "ok",
    );
    let bad = env.run_command_task("echo about to fail; exit 3", "bad");
    let slow = env.run_command_task("echo working on it; sleep 600", "slow");
    let asks = env.ok(&["run", "NEEDS-BASH: run a command"]);
    env.wait(&ok);
    env.wait(&bad);
    env.until(&asks, "needs_input", |t| t["state"] == "needs_input");
    poll("the slow task's line", Duration::from_secs(60), || {
        last_line(&env, &slow).as_deref() == Some("working on it")
    });

    let (s, fleet) = get(&env, "/v1/fleet");
    assert_eq!(s, 200, "{fleet}");
    assert_eq!(count(&fleet, "completed"), 1, "{fleet:#}");
    assert_eq!(count(&fleet, "failed"), 1, "{fleet:#}");
    assert_eq!(count(&fleet, "working"), 1, "{fleet:#}");
    assert_eq!(count(&fleet, "needs_input"), 1, "{fleet:#}");
    assert_eq!(count(&fleet, "verifying"), 0);
    assert_eq!(fleet["finished_omitted"], 0);
    let c = card(&fleet, &ok);
    assert_eq!(c["state"], "succeeded");
    // Control sequences removed.
    assert_eq!(c["last_line"], "the last line");
    assert_eq!(c["agent"], "command");
    assert_eq!(card(&fleet, &bad)["group"], "failed");
    assert_eq!(card(&fleet, &slow)["last_line"], "working on it");
    let asking = card(&fleet, &asks);
    assert_eq!(asking["group"], "needs_input");
    let line = asking["last_line"].as_str().unwrap();
    assert!(line.contains("Bash"), "{line}");
    // Cards list active tasks first, then the finished ones, newest first.
    let ids: Vec<&str> = fleet["cards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 4);
    let mut done = [bad.as_str(), ok.as_str()];
    done.sort_by_key(|id| {
        std::cmp::Reverse(
            card(&fleet, id)["finished_at"]
                .as_str()
                .unwrap()
                .to_string(),
        )
    });
    assert_eq!(&ids[2..], &done[..]);

    // SSE: a snapshot at once, another after a change.
    let mut sse = unix_sse(&env, "/v1/fleet/events");
    let (id, first) = sse.next(Duration::from_secs(30));
    assert_eq!(id, first["version"].to_string());
    assert_eq!(first["cards"].as_array().unwrap().len(), 4);
    let new = env.run_command_task("echo late arrival", "late");
    let seen = sse.until("the new task's line", |v| {
        has_card(v, &new) && card(v, &new)["last_line"] == "late arrival"
    });
    assert!(seen["version"].as_u64().unwrap() > first["version"].as_u64().unwrap());
    env.ok(&["send", &asks, "--allow"]);
    sse.until("the answered task leaving needs_input", |v| {
        card(v, &asks)["group"] != "needs_input"
    });
    env.ok(&["stop", &slow]);
}

/// Many followers, one computation per change; keys see their team's cards only.
#[test]
fn followers_share_one_state_and_keys_see_their_teams_cards() {
    let server = TcpServer::start();
    let env = &server.env;
    server.keys.team("a");
    server.keys.team("b");
    let a = server
        .keys
        .key("a", &[Scope::TasksRead, Scope::TasksWrite], None);
    let b = server
        .keys
        .key("b", &[Scope::TasksRead, Scope::TasksWrite], None);
    let usage_only = server.keys.key("a", &[Scope::UsageRead], None);
    let make = |key: &str, line: &str| -> String {
        let body = json!({ "repo": env.repo.display().to_string(), "task": "t", "agent": "command",
                           "cmd": format!("echo {line}") });
        let (s, v) = server.call("POST", "/v1/tasks", Some(key), &body.to_string());
        assert_eq!(s, 201, "{v}");
        serde_json::from_str::<Value>(&v).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let ta = make(&a.secret, "from-a");
    let tb = make(&b.secret, "from-b");
    let own = env.run_command_task("echo from-owner", "mine");
    for id in [&ta, &tb, &own] {
        env.wait(id);
    }
    let fleet_of = |key: &str| -> Value {
        let (s, v) = server.call("GET", "/v1/fleet", Some(key), "");
        assert_eq!(s, 200, "{v}");
        serde_json::from_str(&v).unwrap()
    };
    let fa = fleet_of(&a.secret);
    assert_eq!(fa["cards"].as_array().unwrap().len(), 1, "{fa:#}");
    assert_eq!(card(&fa, &ta)["last_line"], "from-a");
    assert_eq!(card(&fa, &ta)["team"], "a");
    let fb = fleet_of(&b.secret);
    assert_eq!(fb["cards"].as_array().unwrap().len(), 1, "{fb:#}");
    assert!(has_card(&fb, &tb));
    let (_, all) = get(env, "/v1/fleet");
    assert_eq!(all["cards"].as_array().unwrap().len(), 3);
    // No key, a key without tasks:read.
    assert_eq!(server.call("GET", "/v1/fleet", None, "").0, 401);
    assert_eq!(
        server
            .call("GET", "/v1/fleet", Some(&usage_only.secret), "")
            .0,
        403
    );
    assert_eq!(
        server
            .call("GET", "/v1/fleet/events", Some(&usage_only.secret), "")
            .0,
        403
    );
    // Another team's diff and paged events: the 404 of a missing task.
    for path in [
        format!("/v1/tasks/{tb}/diff"),
        format!("/v1/tasks/{tb}/diff/file?path=x"),
        format!("/v1/tasks/{tb}/events?before=5"),
    ] {
        let (s, v) = server.call("GET", &path, Some(&a.secret), "");
        assert_eq!(s, 404, "{path}: {v}");
    }
    assert_eq!(
        server
            .call("GET", &format!("/v1/tasks/{ta}/diff"), Some(&a.secret), "")
            .0,
        200
    );

    // A key's stream over TCP: its team's cards only, also after a change.
    let tcp = std::net::TcpStream::connect(server.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut sa = Sse::open(tcp, "/v1/fleet/events", Some(&a.secret));
    let (_, first) = sa.next(Duration::from_secs(30));
    assert_eq!(first["cards"].as_array().unwrap().len(), 1, "{first:#}");

    // 20 followers on the socket; then changes: one computation per (coalesced) change.
    let mut followers: Vec<_> = (0..20).map(|_| unix_sse(env, "/v1/fleet/events")).collect();
    for f in &mut followers {
        let (_, v) = f.next(Duration::from_secs(30));
        assert_eq!(v["cards"].as_array().unwrap().len(), 3);
    }
    let before = drover_daemon::engine::fleet::computations();
    let tb2 = make(&b.secret, "b-again");
    let ta2 = make(&a.secret, "a-again");
    let mut last = vec![];
    for f in &mut followers {
        last.push(f.until("both new tasks finished", |v| {
            has_card(v, &ta2)
                && has_card(v, &tb2)
                && card(v, &ta2)["state"] == "succeeded"
                && card(v, &tb2)["state"] == "succeeded"
        }));
    }
    let seen_a = sa.until("a's new task", |v| has_card(v, &ta2));
    assert!(!has_card(&seen_a, &tb2), "{seen_a:#}");
    assert!(seen_a["cards"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["team"] == "a"));
    let computed = drover_daemon::engine::fleet::computations() - before;
    // Two tasks through queued → preparing → running → succeeded: a handful of states,
    // whatever the number of followers (20 followers computing their own: ≥ 20 × that).
    assert!(computed >= 1, "{computed}");
    assert!(computed < 40, "{computed} computations for 21 followers");
    // The states followers got are the same objects: same version, same generation time.
    let newest = last
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .max()
        .unwrap();
    for v in last
        .iter()
        .filter(|v| v["version"].as_u64() == Some(newest))
    {
        assert_eq!(
            v["generated_at"],
            last.iter()
                .find(|v| v["version"].as_u64() == Some(newest))
                .unwrap()["generated_at"]
        );
    }
}

#[test]
fn events_page_backwards_from_a_cursor_over_5000_events() {
    let env = Env::new();
    let id = env.run_command_task("seq 1 5000", "many lines");
    let t = env.wait(&id);
    assert_eq!(t["state"], "succeeded");
    let last = t["events_count"].as_i64().unwrap_or(0);
    let (s, newest) = get(
        &env,
        &format!("/v1/tasks/{id}/events?before=1000000&limit=1000"),
    );
    assert_eq!(s, 200, "{newest}");
    let newest = newest.as_array().unwrap().clone();
    assert_eq!(newest.len(), 1000);
    let top = newest.last().unwrap()["seq"].as_i64().unwrap();
    assert!(last == 0 || top == last, "{top} {last}");
    // Page back to the first event: contiguous, in order, 5,000 lines in all.
    let mut all: Vec<Value> = newest;
    loop {
        let first = all[0]["seq"].as_i64().unwrap();
        if first == 1 {
            break;
        }
        let (s, page) = get(
            &env,
            &format!("/v1/tasks/{id}/events?before={first}&limit=1000"),
        );
        assert_eq!(s, 200);
        let page = page.as_array().unwrap().clone();
        assert!(!page.is_empty() && page.len() <= 1000);
        assert_eq!(page.last().unwrap()["seq"].as_i64().unwrap(), first - 1);
        all.splice(0..0, page);
    }
    for (i, e) in all.iter().enumerate() {
        assert_eq!(e["seq"].as_i64().unwrap(), i as i64 + 1);
    }
    let lines: Vec<&str> = all
        .iter()
        .filter(|e| e["kind"] == "text")
        .map(|e| e["data"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(lines.len(), 5000);
    assert_eq!(lines[0], "1");
    assert_eq!(lines[4999], "5000");
    // Bad cursors.
    for q in [
        "before=0",
        "before=-1",
        "before=5&after=2",
        "before=5&follow=1",
        "before=5&limit=1001",
    ] {
        let (s, v) = get(&env, &format!("/v1/tasks/{id}/events?{q}"));
        assert_eq!(s, 400, "{q}: {v}");
    }
}

#[test]
fn the_diff_of_a_live_and_a_finished_task_with_path_attacks_and_the_cut() {
    let env = Env::new();
    std::fs::write(env.repo.join("gone.txt"), "bye\n").unwrap();
    env.git(&["add", "-A"]);
    env.git(&["commit", "-qm", "more"]);
    let live = env.run_command_task(
        "printf 'hello\\n' > live.txt; echo change >> README.md; rm gone.txt; \
         ln -s /etc/passwd leak; mkdir d; ln -s /etc d/etc; \
         head -c 400000 /dev/zero | tr '\\0' a | fold -w 100 > big.txt; \
         printf '\\000\\001\\002' > blob.bin; echo ready; sleep 600",
        "live",
    );
    poll("the live task's files", Duration::from_secs(60), || {
        last_line(&env, &live).as_deref() == Some("ready")
    });
    let (s, diff) = get(&env, &format!("/v1/tasks/{live}/diff"));
    assert_eq!(s, 200, "{diff}");
    let file = |d: &Value, p: &str| -> Value {
        d["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["path"] == p)
            .cloned()
            .unwrap_or_else(|| panic!("{p} not in {d:#}"))
    };
    assert_eq!(file(&diff, "live.txt")["status"], "added");
    assert_eq!(file(&diff, "live.txt")["added"], 1);
    assert_eq!(file(&diff, "README.md")["status"], "modified");
    assert_eq!(file(&diff, "gone.txt")["status"], "deleted");
    assert_eq!(file(&diff, "leak")["status"], "added");
    assert_eq!(file(&diff, "d/etc")["status"], "added");
    assert_eq!(file(&diff, "blob.bin")["binary"], true);
    assert_eq!(file(&diff, "big.txt")["added"], 4000);
    assert!(diff["base_commit"].is_string());

    let patch = |id: &str, p: &str| -> (u16, Value) {
        let q: String = url_escape(p);
        get(&env, &format!("/v1/tasks/{id}/diff/file?path={q}"))
    };
    let (s, p) = patch(&live, "live.txt");
    assert_eq!(s, 200, "{p}");
    assert!(p["patch"].as_str().unwrap().contains("+hello"), "{p}");
    assert_eq!(p["truncated"], false);
    // A symlink pointing out is its target's name, never the target's content.
    let (s, p) = patch(&live, "leak");
    assert_eq!(s, 200, "{p}");
    let text = p["patch"].as_str().unwrap();
    assert!(text.contains("+/etc/passwd"), "{text}");
    assert!(!text.contains("root:"), "{text}");
    let (s, p) = patch(&live, "d/etc");
    assert_eq!(s, 200);
    assert!(!p["patch"].as_str().unwrap().contains("passwd"), "{p}");
    // Through the link: not a changed file.
    assert_eq!(patch(&live, "d/etc/passwd").0, 404);
    assert_eq!(patch(&live, "leak/x").0, 404);
    assert_eq!(patch(&live, "never.txt").0, 404);
    for bad in [
        "../etc/passwd",
        "/etc/passwd",
        "d/../../x",
        "./live.txt",
        "a//b",
        "",
    ] {
        let (s, v) = patch(&live, bad);
        assert_eq!(s, 400, "{bad:?}: {v}");
    }
    // The 256 KiB cut.
    let (s, p) = patch(&live, "big.txt");
    assert_eq!(s, 200);
    assert_eq!(p["truncated"], true, "{}", p["bytes"]);
    assert!(p["bytes"].as_u64().unwrap() > 400_000);
    assert!(p["patch"].as_str().unwrap().len() <= 256 << 10);
    let (_, p) = patch(&live, "blob.bin");
    assert!(p["patch"].as_str().unwrap().contains("Binary files"), "{p}");
    env.ok(&["stop", &live]);

    // A finished task: its delivered commit.
    let done = env.run_command_task(
        "printf 'x\\ny\\n' > done.txt; ln -s /etc/shadow out",
        "done",
    );
    let t = env.wait(&done);
    assert_eq!(t["state"], "succeeded");
    let (s, diff) = get(&env, &format!("/v1/tasks/{done}/diff"));
    assert_eq!(s, 200, "{diff}");
    assert_eq!(diff["commit"], t["commit"]);
    let paths: Vec<&str> = diff["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, vec!["done.txt", "out"]);
    let (s, p) = patch(&done, "done.txt");
    assert_eq!(s, 200);
    assert!(p["patch"].as_str().unwrap().contains("+y"), "{p}");
    assert_eq!(patch(&done, "README.md").0, 404);
    assert_eq!(patch(&done, "../README.md").0, 400);
}

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'_' | b'-' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

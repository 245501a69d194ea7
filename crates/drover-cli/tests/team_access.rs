//! The team server's access control over TCP (docs/design.md §7; issue 11 "Must show"): the
//! access matrix (2 teams × key kinds × every route), attacks on the `Authorization` header and
//! on team boundaries, and key rotation with an overlap.
//!
//! The expected statuses come from the rule table written out HERE (not from the daemon's
//! `api::access` table): a change to either shows up as a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;
use drover_test_support::keys::{at, Keys, TestKey};
use drover_test_support::net;
use drover_types::Scope;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

type Server = TcpServer;

impl TcpServer {
    fn owner(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        let (status, _, b) = drover_test_support::http::request(
            &self.env.sock(),
            method,
            path,
            &[("content-type", "application/json")],
            body.as_bytes(),
        );
        (status, String::from_utf8_lossy(&b).into_owned())
    }

    /// A finished command task created over TCP with `key`; its id.
    fn task(&self, key: &TestKey, marker: &str) -> String {
        let body = json!({
            "repo": self.env.repo.display().to_string(),
            "prompt": format!("task {marker}"),
            "agent": "command",
            "cmd": format!("echo {marker}"),
        });
        let (status, b) = self.call("POST", "/v1/tasks", Some(&key.secret), &body.to_string());
        assert!((200..300).contains(&status), "create: {status} {b}");
        let id = serde_json::from_str::<Value>(&b).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let (status, t) = self.owner("GET", &format!("/v1/tasks/{id}/wait?timeout=120"), "");
        assert_eq!(status, 200, "{t}");
        let t: Value = serde_json::from_str(&t).unwrap();
        assert_eq!(t["state"], "succeeded", "{t:#}");
        id
    }
}

/// The key kinds of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Read,
    Write,
    Admin,
    Expired,
    Revoked,
    None,
    Garbage,
}

/// What a route needs, as this test states it (docs/design.md §7 and the issue's decisions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    Public,
    Scope(Scope),
    OwnerOnly,
    /// Not a route: 401 without a valid key, 404 with one.
    Unknown,
}

/// What a key kind holds.
fn holds(kind: Kind, scope: Scope) -> bool {
    match kind {
        Kind::Read => scope == Scope::TasksRead,
        Kind::Write => matches!(scope, Scope::TasksRead | Scope::TasksWrite),
        Kind::Admin => true,
        _ => false,
    }
}

/// The target of a route: none, the key's own team's task/pool, or the other team's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    None,
    Own,
    Other,
    /// A prefix of the other team's task id (the owner's convenience, never a key's).
    OtherPrefix,
}

#[derive(Debug, PartialEq, Eq)]
enum Expect {
    Status(u16),
    /// Whatever the host owner gets for the same request (the handler decides).
    AsOwner,
}

fn expected(kind: Kind, need: Need, target: Target) -> Expect {
    if need == Need::Public {
        return Expect::AsOwner;
    }
    if matches!(
        kind,
        Kind::Expired | Kind::Revoked | Kind::None | Kind::Garbage
    ) {
        return Expect::Status(401);
    }
    match need {
        Need::Unknown => Expect::Status(404),
        Need::OwnerOnly => Expect::Status(403),
        Need::Scope(s) if !holds(kind, s) => Expect::Status(403),
        _ if matches!(target, Target::Other | Target::OtherPrefix) => Expect::Status(404),
        _ => Expect::AsOwner,
    }
}

/// Every route (docs/design.md §7), with a request that changes nothing when it is allowed
/// (bad bodies, a finished task, a stopped pool). `{T}`: a task id, `{P}`: a pool name.
fn routes() -> Vec<(&'static str, &'static str, &'static str, Need, bool)> {
    use Need::{OwnerOnly, Public, Unknown};
    let sc = Need::Scope;
    let r = drover_types::Scope::TasksRead;
    let w = drover_types::Scope::TasksWrite;
    let p = drover_types::Scope::PoolsWrite;
    // (method, path, body, need, has a target)
    vec![
        ("GET", "/v1/health", "", Public, false),
        ("GET", "/v1/openapi.json", "", Public, false),
        ("GET", "/v1/status", "", OwnerOnly, false),
        ("POST", "/v1/daemon/stop", "{}", OwnerOnly, false),
        ("GET", "/v1/locks", "", OwnerOnly, false),
        ("POST", "/v1/locks/build", "", OwnerOnly, false),
        ("GET", "/v1/workers", "", OwnerOnly, false),
        ("GET", "/v1/tasks", "", sc(r), false),
        ("GET", "/v1/tasks?all=true", "", sc(r), false),
        ("POST", "/v1/tasks", "{}", sc(w), false),
        ("GET", "/v1/tasks/{T}", "", sc(r), true),
        ("GET", "/v1/tasks/{T}/events", "", sc(r), true),
        ("GET", "/v1/tasks/{T}/wait?timeout=0", "", sc(r), true),
        (
            "GET",
            "/v1/tasks/{T}/raw?stream=stdout&offset=0&len=4",
            "",
            sc(r),
            true,
        ),
        (
            "POST",
            "/v1/tasks/{T}/send",
            r#"{"allow":true,"deny":true}"#,
            sc(w),
            true,
        ),
        ("POST", "/v1/tasks/{T}/stop", "", sc(w), true),
        ("GET", "/v1/pools", "", sc(r), false),
        ("POST", "/v1/pools", "{}", sc(p), false),
        ("GET", "/v1/pools/{P}", "", sc(r), true),
        ("POST", "/v1/pools/{P}/stop", "{}", sc(p), true),
        ("POST", "/v1/pools/{P}/resume", "", sc(p), true),
        (
            "GET",
            "/v1/usage",
            "",
            sc(drover_types::Scope::UsageRead),
            false,
        ),
        (
            "GET",
            "/v1/audit",
            "",
            sc(drover_types::Scope::AuditRead),
            false,
        ),
        (
            "GET",
            "/v1/teams",
            "",
            sc(drover_types::Scope::Admin),
            false,
        ),
        ("POST", "/v1/teams", r#"{"name":"c"}"#, OwnerOnly, false),
        (
            "GET",
            "/v1/teams/{M}",
            "",
            sc(drover_types::Scope::Admin),
            true,
        ),
        (
            "GET",
            "/v1/teams/{M}/webhook-secret",
            "",
            sc(drover_types::Scope::Admin),
            true,
        ),
        (
            "PATCH",
            "/v1/teams/{M}",
            r#"{"bogus":1}"#,
            sc(drover_types::Scope::Admin),
            true,
        ),
        ("GET", "/v1/keys", "", sc(drover_types::Scope::Admin), false),
        (
            "POST",
            "/v1/keys",
            "{}",
            sc(drover_types::Scope::Admin),
            false,
        ),
        ("GET", "/v1/nope", "", Unknown, false),
        ("DELETE", "/v1/tasks", "", Unknown, false),
    ]
}

#[test]
fn access_matrix_two_teams_every_key_kind_every_route() {
    let s = Server::start();
    s.keys.team("a");
    s.keys.team("b");
    let mut keys: BTreeMap<(char, Kind), Option<String>> = BTreeMap::new();
    let mut key_ids: BTreeMap<char, Vec<String>> = BTreeMap::new();
    for team in ['a', 'b'] {
        let t = team.to_string();
        let all = Scope::ALL.to_vec();
        let ids = key_ids.entry(team).or_default();
        let mut mk = |scopes: &[Scope], exp: Option<String>| {
            let k = s.keys.key(&t, scopes, exp);
            ids.push(k.id);
            Some(k.secret)
        };
        keys.insert((team, Kind::Read), mk(&[Scope::TasksRead], None));
        keys.insert(
            (team, Kind::Write),
            mk(&[Scope::TasksRead, Scope::TasksWrite], None),
        );
        keys.insert((team, Kind::Admin), mk(&[Scope::Admin], None));
        keys.insert(
            (team, Kind::Expired),
            mk(&all, Some(at(Duration::from_secs(1), true))),
        );
        let revoked = s.keys.key(&t, &all, None);
        s.keys.revoke(&revoked.id);
        keys.insert((team, Kind::Revoked), Some(revoked.secret));
        keys.insert((team, Kind::None), None);
        keys.insert(
            (team, Kind::Garbage),
            Some(format!("drv_{}", "0123456789abcdef".repeat(4))),
        );
    }
    let secret = |team: char, kind: Kind| keys[&(team, kind)].clone();

    // Each team's task (created with its write key over TCP) and pool (its admin key).
    let mut tasks = BTreeMap::new();
    let mut pools = BTreeMap::new();
    for team in ['a', 'b'] {
        let write = TestKey {
            id: String::new(),
            secret: secret(team, Kind::Write).unwrap(),
        };
        let id = s.task(&write, &format!("marker-of-team-{team}"));
        let (_, t) = s.owner("GET", &format!("/v1/tasks/{id}"), "");
        let t: Value = serde_json::from_str(&t).unwrap();
        assert_eq!(
            t["team"],
            team.to_string(),
            "a key's task is its team's: {t:#}"
        );
        tasks.insert(team, id);
        let pool = format!("pool-of-team-{team}");
        let body = json!({
            "name": pool, "slots": 1, "count": 1, "prompt": "p",
            "repo": s.env.repo.display().to_string(),
            "agent": "command", "cmd": format!("echo marker-of-team-{team}"),
        });
        let (status, b) = s.call(
            "POST",
            "/v1/pools",
            secret(team, Kind::Admin).as_deref(),
            &body.to_string(),
        );
        assert_eq!(status, 200, "{b}");
        // Its task carries the team; then the pool is stopped (stop/resume change nothing).
        let launched = drover_test_support::poll::until(
            "the pool's task",
            Duration::from_secs(60),
            Duration::from_millis(100),
            || {
                let (_, b) = s.owner("GET", "/v1/tasks?all=true", "");
                serde_json::from_str::<Value>(&b).unwrap()
            },
            |page| {
                page["tasks"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|t| t["pool"] == pool.as_str())
            },
        );
        let pool_task = launched["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["pool"] == pool.as_str())
            .unwrap()
            .clone();
        assert_eq!(pool_task["team"], team.to_string(), "{pool_task:#}");
        assert_eq!(
            s.owner("POST", &format!("/v1/pools/{pool}/stop"), "{}").0,
            200
        );
        pools.insert(team, pool);
    }

    let mut owner_cache: BTreeMap<(String, String), u16> = BTreeMap::new();
    let mut cells = 0usize;
    let mut failures = vec![];
    let kinds = [
        Kind::Read,
        Kind::Write,
        Kind::Admin,
        Kind::Expired,
        Kind::Revoked,
        Kind::None,
        Kind::Garbage,
    ];
    for team in ['a', 'b'] {
        let other = if team == 'a' { 'b' } else { 'a' };
        let mut foreign = vec![
            tasks[&other].clone(),
            pools[&other].clone(),
            format!("marker-of-team-{other}"),
        ];
        foreign.extend(key_ids[&other].iter().cloned());
        for kind in kinds {
            let key = secret(team, kind);
            for (method, path, body, need, targeted) in routes() {
                let targets: &[Target] = if targeted {
                    &[Target::Own, Target::Other, Target::OtherPrefix]
                } else {
                    &[Target::None]
                };
                for &target in targets {
                    let (task, pool) = match target {
                        Target::Own | Target::None => (tasks[&team].clone(), pools[&team].clone()),
                        Target::Other => (tasks[&other].clone(), pools[&other].clone()),
                        Target::OtherPrefix => (
                            tasks[&other][..4].to_string(),
                            pools[&other][..6].to_string(),
                        ),
                    };
                    let member = match target {
                        Target::Own | Target::None => team.to_string(),
                        _ => other.to_string(),
                    };
                    let path = path
                        .replace("{T}", &task)
                        .replace("{P}", &pool)
                        .replace("{M}", &member);
                    let (status, got) = s.call(method, &path, key.as_deref(), body);
                    cells += 1;
                    let want = match expected(kind, need, target) {
                        Expect::Status(n) => n,
                        Expect::AsOwner => *owner_cache
                            .entry((method.to_string(), path.clone()))
                            .or_insert_with(|| s.owner(method, &path, body).0),
                    };
                    if status != want {
                        failures.push(format!(
                            "team {team} {kind:?} {method} {path}: {status} (want {want}) {got}"
                        ));
                    }
                    // 0 cross-team reads: nothing of the other team in any answer.
                    // (A 404 may repeat the id the request named: that is not a read.)
                    for f in foreign.iter().filter(|f| !path.contains(f.as_str())) {
                        if got.contains(f.as_str()) {
                            failures.push(format!(
                                "team {team} {kind:?} {method} {path}: answer shows {f}: {got}"
                            ));
                        }
                    }
                    if status == 401 {
                        let v: Value = serde_json::from_str(&got).unwrap_or_default();
                        assert_eq!(v["kind"], "unauthorized", "{got}");
                        assert!(v["hint"].as_str().unwrap_or("").contains("Bearer"), "{got}");
                    }
                    if status == 403 {
                        let v: Value = serde_json::from_str(&got).unwrap_or_default();
                        assert_eq!(v["kind"], "forbidden", "{got}");
                    }
                }
            }
        }
        // The legitimate reads do see the team's own things.
        let (_, list) = s.call(
            "GET",
            "/v1/tasks?all=true",
            secret(team, Kind::Read).as_deref(),
            "",
        );
        assert!(list.contains(&tasks[&team]), "{list}");
        let (_, list) = s.call("GET", "/v1/pools", secret(team, Kind::Read).as_deref(), "");
        assert!(list.contains(&pools[&team]), "{list}");
    }
    // DELETE last (it removes): the other team's task and a prefix are 404 for every valid
    // key; the own task is 403 without tasks:write and removed with it.
    for team in ['a', 'b'] {
        let other = if team == 'a' { 'b' } else { 'a' };
        for kind in kinds {
            let key = secret(team, kind);
            for target in [Target::Other, Target::OtherPrefix] {
                let id = match target {
                    Target::Other => tasks[&other].clone(),
                    _ => tasks[&other][..4].to_string(),
                };
                let (status, got) =
                    s.call("DELETE", &format!("/v1/tasks/{id}"), key.as_deref(), "");
                cells += 1;
                let want = match expected(kind, Need::Scope(Scope::TasksWrite), target) {
                    Expect::Status(n) => n,
                    Expect::AsOwner => unreachable!(),
                };
                if status != want {
                    failures.push(format!(
                        "team {team} {kind:?} DELETE {id}: {status} (want {want}) {got}"
                    ));
                }
            }
        }
        for kind in [
            Kind::Read,
            Kind::Expired,
            Kind::Revoked,
            Kind::None,
            Kind::Garbage,
        ] {
            let (status, _) = s.call(
                "DELETE",
                &format!("/v1/tasks/{}", tasks[&team]),
                secret(team, kind).as_deref(),
                "",
            );
            cells += 1;
            let want = if kind == Kind::Read { 403 } else { 401 };
            if status != want {
                failures.push(format!(
                    "team {team} {kind:?} DELETE own: {status} (want {want})"
                ));
            }
        }
        let (status, got) = s.call(
            "DELETE",
            &format!("/v1/tasks/{}", tasks[&team]),
            secret(team, Kind::Write).as_deref(),
            "",
        );
        cells += 1;
        if status != 200 {
            failures.push(format!("team {team} Write DELETE own: {status} {got}"));
        }
    }
    println!("access matrix: {cells} requests (2 teams × {} key kinds × {} routes, targets own/other/prefix)", kinds.len(), routes().len() + 1);
    assert!(
        failures.is_empty(),
        "{} of {cells} wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Both teams' tasks are gone only by their own keys; the owner sees that.
    for team in ['a', 'b'] {
        assert_eq!(
            s.owner("GET", &format!("/v1/tasks/{}", tasks[&team]), "").0,
            404
        );
    }
}

#[test]
fn header_and_team_attacks_are_refused() {
    let s = Server::start();
    s.keys.team("a");
    s.keys.team("b");
    let a = s
        .keys
        .key("a", &[Scope::TasksRead, Scope::TasksWrite], None);
    let b = s
        .keys
        .key("b", &[Scope::TasksRead, Scope::TasksWrite], None);
    let b_task = s.task(&b, "secret-of-b");
    let get = |headers: &[(&str, &str)]| {
        let (status, _, body) = net::request(s.addr, "GET", "/v1/tasks", headers, b"");
        (status, String::from_utf8_lossy(&body).into_owned())
    };
    let good = format!("Bearer {}", a.secret);
    assert_eq!(get(&[("authorization", &good)]).0, 200);
    // The scheme's case is free (RFC 9110); everything else must be exact.
    assert_eq!(
        get(&[("authorization", &format!("bearer {}", a.secret))]).0,
        200
    );
    let long = format!("Bearer {}", "x".repeat(10 * 1024));
    let attacks: Vec<(&str, Vec<(&str, String)>)> = vec![
        (
            "two Authorization headers",
            vec![
                ("authorization", good.clone()),
                ("authorization", good.clone()),
            ],
        ),
        (
            "another key after a valid one",
            vec![
                ("authorization", good.clone()),
                ("authorization", format!("Bearer {}", b.secret)),
            ],
        ),
        (
            "two spaces",
            vec![("authorization", format!("Bearer  {}", a.secret))],
        ),
        ("no scheme", vec![("authorization", a.secret.clone())]),
        (
            "Basic",
            vec![("authorization", format!("Basic {}", a.secret))],
        ),
        (
            "trailing junk",
            vec![("authorization", format!("{good} x"))],
        ),
        (
            "upper-case secret",
            vec![(
                "authorization",
                format!("Bearer {}", a.secret.to_uppercase()),
            )],
        ),
        ("10 KB header", vec![("authorization", long)]),
        (
            "the hash instead of the key",
            vec![(
                "authorization",
                format!(
                    "Bearer drv_{}",
                    drover_daemon::api::auth::hash_key(&a.secret)
                ),
            )],
        ),
        ("X-Api-Key", vec![("x-api-key", a.secret.clone())]),
    ];
    for (what, headers) in attacks {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, body) = get(&h);
        assert_eq!(status, 401, "{what}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["kind"], "unauthorized", "{what}: {body}");
        assert!(!body.contains(&a.secret), "{what}: the key echoed: {body}");
    }
    // The 401 names the scheme (RFC 6750).
    let (_, head, _) = net::request(s.addr, "GET", "/v1/tasks", &[], b"");
    assert!(
        head.to_ascii_lowercase()
            .contains("www-authenticate: bearer"),
        "{head}"
    );

    // Team A's key naming team b: 403, nothing created; a forged created_by is replaced.
    let before = s.owner("GET", "/v1/tasks?all=true", "").1;
    let body = json!({
        "repo": s.env.repo.display().to_string(), "prompt": "x", "agent": "command",
        "cmd": "true", "team": "b",
    });
    let (status, got) = s.call("POST", "/v1/tasks", Some(&a.secret), &body.to_string());
    assert_eq!(status, 403, "{got}");
    assert_eq!(
        s.owner("GET", "/v1/tasks?all=true", "").1,
        before,
        "nothing created"
    );
    let body = json!({
        "repo": s.env.repo.display().to_string(), "prompt": "x", "agent": "command",
        "cmd": "true", "created_by": "key_forged",
    });
    let (status, got) = s.call("POST", "/v1/tasks", Some(&a.secret), &body.to_string());
    assert!((200..300).contains(&status), "{got}");
    let t: Value = serde_json::from_str(&got).unwrap();
    assert_eq!(t["team"], "a");
    assert_eq!(t["created_by"], a.id.as_str(), "{t:#}");

    // Another team's task by its id, a prefix of it, its name: the very 404 of a missing task.
    let missing = "ffff0000";
    let (status, not_found) = s.call("GET", &format!("/v1/tasks/{missing}"), Some(&a.secret), "");
    assert_eq!(status, 404);
    for id in [
        b_task.clone(),
        b_task[..3].to_string(),
        b_task[..7].to_string(),
    ] {
        let (status, got) = s.call("GET", &format!("/v1/tasks/{id}"), Some(&a.secret), "");
        assert_eq!(status, 404, "{id}: {got}");
        assert_eq!(
            got.replace(&id, "ID"),
            not_found.replace(missing, "ID"),
            "{id}"
        );
    }
    // Usage: a key sees its team's usage only, grouped any way (the filter is forced in the
    // store's query; tests/audit_keys.rs checks the sums); naming another team is 403.
    let admin = s.keys.key("a", &[Scope::Admin], None);
    // An admin key cannot touch another team's keys: 404 (as a missing key), and they still work.
    for (method, path) in [
        ("POST", format!("/v1/keys/{}/revoke", b.id)),
        ("POST", format!("/v1/keys/{}/rotate", b.id)),
        ("DELETE", format!("/v1/keys/{}", b.id)),
    ] {
        let (status, got) = s.call(method, &path, Some(&admin.secret), "{}");
        assert_eq!(status, 404, "{method} {path}: {got}");
    }
    assert_eq!(s.call("GET", "/v1/tasks", Some(&b.secret), "").0, 200);
    let (_, listed) = s.call("GET", "/v1/keys", Some(&admin.secret), "");
    assert!(!listed.contains(&b.id), "{listed}");
    assert!(listed.contains(&a.id), "{listed}");
    for by in ["task", "pool", "model", "day", "team", "tag:customer"] {
        let (status, got) = s.call(
            "GET",
            &format!("/v1/usage?by={by}"),
            Some(&admin.secret),
            "",
        );
        assert_eq!(status, 200, "{by}: {got}");
        assert!(!got.contains(&b_task), "{by}: {got}");
        assert_eq!(s.owner("GET", &format!("/v1/usage?by={by}"), "").0, 200);
    }
    assert_eq!(
        s.call("GET", "/v1/usage?team=b", Some(&admin.secret), "").0,
        403
    );
    // The owner still finds B's task by prefix (the owner's convenience).
    assert_eq!(
        s.owner("GET", &format!("/v1/tasks/{}", &b_task[..6]), "").0,
        200
    );
}

#[test]
fn a_rotated_key_works_for_its_overlap_then_fails_and_a_revoke_is_immediate() {
    let s = Server::start();
    s.keys.team("a");
    let old = s.keys.key("a", &[Scope::TasksRead], None);
    let use_key = |k: &TestKey| s.call("GET", "/v1/tasks", Some(&k.secret), "").0;
    assert_eq!(use_key(&old), 200);
    // last_used_at is written (off the request's path).
    drover_test_support::poll::poll("last_used_at", Duration::from_secs(10), || {
        s.keys.info(&old.id).last_used_at.is_some()
    });

    let new = s.keys.rotate(&old.id, Duration::from_secs(2));
    // During the overlap both work.
    assert_eq!(use_key(&old), 200, "the old key works during the overlap");
    assert_eq!(use_key(&new), 200);
    assert_eq!(
        s.keys.info(&old.id).rotated_to.as_deref(),
        Some(new.id.as_str())
    );
    // After it, the old one is 401 and the new one still works.
    drover_test_support::poll::poll(
        "the old key to expire after its overlap",
        Duration::from_secs(15),
        || use_key(&old) == 401,
    );
    assert_eq!(use_key(&new), 200);

    // A revoke takes effect on the next request.
    s.keys.revoke(&new.id);
    assert_eq!(use_key(&new), 401);
}

#[test]
fn health_is_public_and_tcp_has_the_unix_sockets_limits() {
    let s = Server::start();
    let (status, body) = s.call("GET", "/v1/health", None, "");
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    // The same over the owner's socket.
    assert_eq!(s.owner("GET", "/v1/health", "").0, 200);
    // A connection that never sends its request head is closed (the head timeout).
    use std::io::Read;
    let mut idle = std::net::TcpStream::connect(s.addr).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(
        drover_daemon::listen::HEADER_TIMEOUT.as_secs() + 10,
    )))
    .unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 64];
    let n = idle.read(&mut buf).unwrap_or(usize::MAX);
    assert!(
        n != usize::MAX,
        "the idle connection was not closed within {:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() >= drover_daemon::listen::HEADER_TIMEOUT - Duration::from_millis(500)
    );
}

#[test]
fn listen_settings_are_checked_and_an_open_listener_is_flagged() {
    let env = Env::new().with_env("DROVER_LOG", "debug");
    let out = env.run(&[
        "daemon",
        "--foreground",
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        "/nonexistent.pem",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--tls-cert") && err.contains("without tls_key"),
        "{err}"
    );
    let out = env.run(&["daemon", "--foreground", "--listen", "nowhere"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("HOST:PORT"));
    // A certificate that is not one: the daemon does not start (one line naming the file).
    let bad = env.tmp.path().join("bad.pem");
    std::fs::write(&bad, "not a certificate").unwrap();
    let bad = bad.display().to_string();
    let out = env.run(&[
        "daemon",
        "--foreground",
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        &bad,
        "--tls-key",
        &bad,
    ]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bad.pem"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // `drover daemon --listen` (in the background) serves TCP; the address is in listen.addr.
    env.ok(&["daemon", "--listen", "127.0.0.1:0"]);
    let addr: SocketAddr = drover_test_support::poll::some(
        "listen.addr",
        Duration::from_secs(20),
        Duration::from_millis(20),
        || {
            std::fs::read_to_string(env.home.join("listen.addr"))
                .ok()
                .and_then(|s| s.trim().parse().ok())
        },
    );
    let (status, body) = net::call(addr, "GET", "/v1/health", None, "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(net::call(addr, "GET", "/v1/tasks", None, "").0, 401);
    // A key used over TCP (and refused: a wrong one) is nowhere in the daemon's log or store.
    let keys = Keys::open(&env.home);
    keys.team("a");
    let key = keys.key("a", &[Scope::TasksRead], None);
    assert_eq!(
        net::call(addr, "GET", "/v1/tasks", Some(&key.secret), "").0,
        200
    );
    let wrong = format!("drv_{}", "cd".repeat(32));
    assert_eq!(net::call(addr, "GET", "/v1/tasks", Some(&wrong), "").0, 401);
    env.ok(&["daemon", "stop"]);
    drop(keys);
    let log = std::fs::read_to_string(env.home.join("daemon.log")).unwrap();
    assert!(
        log.contains("team server listening on http://127.0.0.1:"),
        "{log}"
    );
    for entry in std::fs::read_dir(&env.home).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            let bytes = std::fs::read(&p).unwrap();
            for secret in [&key.secret, &wrong] {
                assert!(
                    !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                    "a key in {}",
                    p.display()
                );
            }
        }
    }
    // doctor flags plain HTTP on a non-loopback address.
    let env = env.with_env("DROVER_LISTEN", "0.0.0.0:7420");
    let out = env.run(&["doctor"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("listen"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("without TLS"), "{line}");
}

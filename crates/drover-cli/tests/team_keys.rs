//! Teams and API keys (docs/design.md §7) through the CLI on the admin socket (the host owner),
//! and the handlers' own checks for key callers (an admin key of one team, a key without
//! `admin`) on an in-process router that makes every request as that key.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;
use serde_json::{json, Value};
use std::process::Output;

fn code(out: &Output) -> Option<i32> {
    out.status.code()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Exit 2 with one line on stderr containing `what`.
fn refused(out: &Output, what: &str) {
    let err = stderr(out);
    assert_eq!(
        code(out),
        Some(2),
        "expected exit 2 ({what}); stderr: {err}"
    );
    assert!(err.contains(what), "stderr lacks {what:?}: {err}");
}

fn teams(env: &Env) -> Vec<Value> {
    env.json(&["team", "ls", "--json"])
        .as_array()
        .unwrap()
        .clone()
}

fn keys(env: &Env) -> Vec<Value> {
    env.json(&["key", "ls", "--json"])
        .as_array()
        .unwrap()
        .clone()
}

/// Every file of the store (the database and its WAL), concatenated.
fn store_bytes(env: &Env) -> Vec<u8> {
    let mut all = vec![];
    for f in ["drover.db", "drover.db-wal", "drover.db-shm"] {
        all.extend(std::fs::read(env.home.join(f)).unwrap_or_default());
    }
    all
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn teams_are_created_listed_and_updated_and_bad_input_creates_nothing() {
    let env = Env::new();
    let name = env.ok(&[
        "team",
        "create",
        "platform",
        "--max-usd-per-day",
        "50",
        "--max-usd-per-task",
        "2.5",
        "--allow-model",
        "claude-sonnet-4-6",
        "--allow-model",
        "claude-haiku-4-5",
        "--webhook-url",
        "https://hooks.example.com/drover",
    ]);
    assert_eq!(name, "platform");
    let t = &teams(&env)[0];
    assert_eq!(t["name"], "platform");
    assert_eq!(t["max_usd_per_day"], 50.0);
    assert_eq!(t["max_usd_per_task"], 2.5);
    assert_eq!(
        t["allowed_models"],
        json!(["claude-sonnet-4-6", "claude-haiku-4-5"])
    );
    assert_eq!(t["webhook_url"], "https://hooks.example.com/drover");
    let table = env.ok(&["team", "ls"]);
    assert!(table.starts_with("NAME"), "{table}");
    assert!(
        table.contains("platform") && table.contains("$50") && table.contains("$2.5"),
        "{table}"
    );

    // Bad names, budgets and URLs: exit 2, one line, nothing created.
    for bad in ["Platform", "-x", "_x", "a b", "a/b", "a.b", &"a".repeat(64)] {
        refused(&env.run(&["team", "create", "--", bad]), "team name");
    }
    refused(
        &env.run(&["team", "create", "x", "--max-usd-per-day=-1"]),
        "--max-usd-per-day",
    );
    refused(
        &env.run(&["team", "create", "x", "--max-usd-per-task", "0"]),
        "--max-usd-per-task",
    );
    refused(
        &env.run(&[
            "team",
            "create",
            "x",
            "--webhook-url",
            "ftp://example.com/x",
        ]),
        "only http and https",
    );
    refused(&env.run(&["team", "create", "platform"]), "already exists");
    // The API says the same with its contract's statuses.
    let (status, body) = api_json(&env, "POST", "/v1/teams", r#"{"name": "UPPER"}"#);
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["kind"],
        "invalid_field"
    );
    let (status, body) = api_json(
        &env,
        "POST",
        "/v1/teams",
        r#"{"name": "x", "max_usd_per_day": -5}"#,
    );
    assert_eq!(status, 422, "{body}");
    let (status, _) = api_json(&env, "POST", "/v1/teams", r#"{"name": "platform"}"#);
    assert_eq!(status, 409);
    let (status, _) = api_json(&env, "POST", "/v1/teams", r#"{"name": "x", "owner": "me"}"#);
    assert_eq!(status, 422, "unknown fields are refused");
    assert_eq!(teams(&env).len(), 1, "a refused team was created");

    // Update: given flags replace, --unset clears, the rest stays.
    env.ok(&[
        "team",
        "update",
        "platform",
        "--max-usd-per-task",
        "3",
        "--unset",
        "webhook-url",
    ]);
    let t = &teams(&env)[0];
    assert_eq!(t["max_usd_per_day"], 50.0);
    assert_eq!(t["max_usd_per_task"], 3.0);
    assert_eq!(t["webhook_url"], Value::Null);
    assert_eq!(t["allowed_models"].as_array().unwrap().len(), 2);
    // A partial PATCH: null clears, an absent field stays.
    let (status, body) = api_json(
        &env,
        "PATCH",
        "/v1/teams/platform",
        r#"{"allowed_models": null}"#,
    );
    assert_eq!(status, 200, "{body}");
    let t = &teams(&env)[0];
    assert_eq!(t["allowed_models"], Value::Null);
    assert_eq!(t["max_usd_per_task"], 3.0);
    let (status, _) = api_json(
        &env,
        "PATCH",
        "/v1/teams/platform",
        r#"{"webhook_url": "file:///etc/passwd"}"#,
    );
    assert_eq!(status, 422);
    assert_eq!(teams(&env)[0]["webhook_url"], Value::Null);
    refused(
        &env.run(&["team", "update", "nosuch", "--max-usd-per-day", "1"]),
        "team not found: nosuch",
    );
    refused(
        &env.run(&["team", "update", "platform"]),
        "nothing to update",
    );
}

#[test]
fn a_key_is_printed_once_and_only_its_hash_is_stored() {
    let env = Env::new();
    env.ok(&["team", "create", "platform"]);
    let out = env.run(&["key", "create", "--team", "platform", "--name", "ci"]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    // The key alone on stdout; the note on stderr.
    let secret = stdout.trim_end_matches('\n');
    assert_eq!(stdout.lines().count(), 1, "{stdout:?}");
    assert!(
        secret.starts_with("drv_") && secret.len() == 4 + 64,
        "{secret}"
    );
    assert!(secret[4..].chars().all(|c| c.is_ascii_hexdigit()));
    assert!(stderr(&out).contains("shown once"), "{}", stderr(&out));
    assert!(!stderr(&out).contains(secret));

    let listed = keys(&env);
    assert_eq!(listed.len(), 1);
    let k = &listed[0];
    assert!(k["id"].as_str().unwrap().starts_with("key_"));
    assert_eq!(k["team"], "platform");
    assert_eq!(k["name"], "ci");
    assert_eq!(k["scopes"], json!(["tasks:read", "tasks:write"]));
    assert_eq!(k["expires_at"], Value::Null);
    // Never the key, in any listing.
    for args in [
        &["key", "ls", "--json"][..],
        &["key", "ls"],
        &["key", "ls", "--team", "platform"],
        &["team", "ls", "--json"],
    ] {
        assert!(
            !env.ok(args).contains(&secret[4..]),
            "{args:?} shows the key"
        );
    }
    let (_, body) = api_json(&env, "GET", "/v1/keys", "");
    assert!(!body.contains(&secret[4..]));

    // The store holds its SHA-256, never the key.
    use sha2::Digest;
    let hash = hex::encode(sha2::Sha256::digest(secret.as_bytes()));
    let stored = store_bytes(&env);
    assert!(
        contains(&stored, &hash),
        "the key's hash is not in the store"
    );
    assert!(!contains(&stored, &secret[4..]), "the key is in the store");
    // Nor anywhere else under DROVER_HOME (the daemon's log included).
    for f in walk(&env.home) {
        let bytes = std::fs::read(&f).unwrap_or_default();
        assert!(
            !contains(&bytes, &secret[4..]),
            "{} holds the key",
            f.display()
        );
    }

    // Scopes, expiry.
    let admin = env.ok(&[
        "key",
        "create",
        "--team",
        "platform",
        "--scope",
        "admin",
        "--scope",
        "usage:read",
        "--expires",
        "1h",
    ]);
    assert_ne!(admin, secret);
    let k = keys(&env)
        .into_iter()
        .find(|k| k["scopes"] == json!(["admin", "usage:read"]))
        .expect("the admin key");
    let expires = chrono::DateTime::parse_from_rfc3339(k["expires_at"].as_str().unwrap()).unwrap();
    let in_secs = (expires.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_seconds();
    assert!((3500..=3600).contains(&in_secs), "expires in {in_secs} s");

    // Bad input: exit 2, no key.
    refused(
        &env.run(&["key", "create", "--team", "nosuch"]),
        "no team named nosuch",
    );
    refused(
        &env.run(&["key", "create", "--team", "platform", "--scope", "root"]),
        "root",
    );
    refused(
        &env.run(&["key", "create", "--team", "platform", "--expires", "soon"]),
        "--expires",
    );
    let (status, _) = api_json(
        &env,
        "POST",
        "/v1/keys",
        r#"{"team": "platform", "expires_secs": 0}"#,
    );
    assert_eq!(status, 422);
    let (status, _) = api_json(
        &env,
        "POST",
        "/v1/keys",
        r#"{"team": "platform", "scopes": ["everything"]}"#,
    );
    assert_eq!(status, 400);
    for (body, status) in [
        (r#"{"team": "platform", "name": "\u001b[2Jx"}"#, 422),
        (r#"{"team": "platform", "name": ""}"#, 422),
        (r#"{"team": "platform", "scopes": "admin"}"#, 422),
        (r#"{"team": "platform", "secret": "drv_mine"}"#, 422),
        (r#"{"team": "platform""#, 400),
        (r#"{"team": 5}"#, 422),
    ] {
        let (st, b) = api_json(&env, "POST", "/v1/keys", body);
        assert_eq!(st, status, "{body}: {b}");
        let v: Value = serde_json::from_str(&b).unwrap();
        assert!(v["kind"].is_string() && v["error"].is_string(), "{b}");
    }
    let (st, _) = api_json(
        &env,
        "PATCH",
        "/v1/teams/platform",
        r#"{"max_usd_per_day": "lots"}"#,
    );
    assert_eq!(st, 422);
    let (st, _) = api_json(&env, "GET", "/v1/keys?team=platform&all=1", "");
    assert_eq!(st, 400, "unknown query parameters are refused");
    assert_eq!(keys(&env).len(), 2, "a refused key was created");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => out.extend(walk(&p)),
            Ok(t) if t.is_file() => out.push(p),
            _ => {}
        }
    }
    out
}

fn key_by_id(env: &Env, id: &str) -> Value {
    keys(env)
        .into_iter()
        .find(|k| k["id"] == id)
        .unwrap_or_else(|| panic!("no key {id}"))
}

/// The id of the key just printed: the listing never has the secret, so the newest key.
fn key_id_of(env: &Env, secret: &str) -> String {
    assert!(secret.starts_with("drv_"), "{secret}");
    keys(env).last().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn rotation_keeps_the_old_key_for_the_overlap_and_revocation_is_final() {
    let env = Env::new();
    env.ok(&["team", "create", "platform"]);
    let first = env.ok(&[
        "key",
        "create",
        "--team",
        "platform",
        "--name",
        "app",
        "--scope",
        "tasks:read",
    ]);
    let old = key_id_of(&env, &first);
    let second = env.ok(&["key", "rotate", &old, "--overlap", "1h"]);
    assert!(second.starts_with("drv_") && second != first);
    let new = key_id_of(&env, &second);
    assert_ne!(new, old);
    let o = key_by_id(&env, &old);
    let n = key_by_id(&env, &new);
    assert_eq!(o["rotated_to"], new.as_str());
    let until = chrono::DateTime::parse_from_rfc3339(o["expires_at"].as_str().unwrap()).unwrap();
    let left = (until.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_seconds();
    assert!(
        (3500..=3600).contains(&left),
        "the overlap ends in {left} s"
    );
    // The successor: same team, scopes and name; no expiry (the old one had none).
    assert_eq!(n["team"], "platform");
    assert_eq!(n["name"], "app");
    assert_eq!(n["scopes"], json!(["tasks:read"]));
    assert_eq!(n["expires_at"], Value::Null);
    let table = env.ok(&["key", "ls"]);
    assert!(table.contains(&format!("rotated → {new}")), "{table}");
    // Rotated once: rotate the new one.
    refused(&env.run(&["key", "rotate", &old]), "already rotated");

    // Overlap 0: the old key ends now.
    let third = env.ok(&["key", "rotate", &new, "--overlap", "0"]);
    let newest = key_id_of(&env, &third);
    let table = env.ok(&["key", "ls"]);
    let line = table.lines().find(|l| l.starts_with(&new)).unwrap();
    assert!(line.trim_end().ends_with("expired"), "{line}");

    // Revoke: at once, shown in ls, cannot be rotated; DELETE does the same.
    assert_eq!(
        env.ok(&["key", "revoke", &newest]),
        format!("{newest} revoked")
    );
    assert!(key_by_id(&env, &newest)["revoked_at"].is_string());
    let line = env
        .ok(&["key", "ls"])
        .lines()
        .find(|l| l.starts_with(&newest))
        .unwrap()
        .to_string();
    assert!(line.trim_end().ends_with("revoked"), "{line}");
    refused(&env.run(&["key", "rotate", &newest]), "revoked");
    let other = env.ok(&["key", "create", "--team", "platform"]);
    let other_id = key_id_of(&env, &other);
    let (status, body) = api_json(&env, "DELETE", &format!("/v1/keys/{other_id}"), "");
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(v["revoked_at"].is_string(), "{v}");
    assert!(v.get("key").is_none(), "a revocation answer carries no key");
    // Unknown ids.
    refused(
        &env.run(&["key", "revoke", "key_000000000000"]),
        "key_000000000000",
    );
    refused(
        &env.run(&["key", "rotate", "key_000000000000"]),
        "key_000000000000",
    );
    let (status, _) = api_json(
        &env,
        "POST",
        &format!("/v1/keys/{other_id}/rotate"),
        r#"{"overlap_secs": 99999999999}"#,
    );
    assert!(status == 409 || status == 422, "{status}");
}

#[test]
fn team_policy_caps_budgets_checks_models_and_needs_a_known_team() {
    // The gateway is on (a provider key), so budgets are enforceable; the tasks run the
    // `command` agent and never call it.
    let provider = Provider::start(json!({ "scenarios": [] }));
    let env = Env::claude(&provider);
    env.ok(&[
        "team",
        "create",
        "capped",
        "--max-usd-per-task",
        "0.5",
        "--allow-model",
        "m-ok",
    ]);
    let run = |extra: &[&str]| -> Output {
        let mut args = vec![
            "run", "--agent", "command", "--cmd", "true", "--team", "capped",
        ];
        args.extend(extra);
        args.push("x");
        env.run(&args)
    };
    let budget = |out: Output| -> Value {
        assert_eq!(code(&out), Some(0), "{}", stderr(&out));
        let id = String::from_utf8(out.stdout).unwrap().trim().to_string();
        env.show(&id)["budget"]["max_usd"].clone()
    };
    assert_eq!(
        budget(run(&["--max-usd", "2"])),
        0.5,
        "the cap lowers a budget"
    );
    assert_eq!(
        budget(run(&[])),
        0.5,
        "the cap is the budget of a task without one"
    );
    assert_eq!(
        budget(run(&["--max-usd", "0.1"])),
        0.1,
        "a lower own budget stays"
    );
    assert_eq!(budget(run(&["--model", "m-ok"])), 0.5);
    let before = env
        .json(&["ls", "--all", "--json"])
        .as_array()
        .unwrap()
        .len();
    refused(&run(&["--model", "m-other"]), "may not use model m-other");
    let out = env.run(&[
        "run", "--agent", "command", "--cmd", "true", "--team", "nosuch", "x",
    ]);
    refused(&out, "no team named nosuch");
    assert!(
        stderr(&out).contains("drover team create nosuch"),
        "{}",
        stderr(&out)
    );
    let (status, body) = api_json(
        &env,
        "POST",
        "/v1/tasks",
        &json!({"repo": env.repo, "prompt": "x", "agent": "command", "cmd": "true",
                "team": "nosuch"})
        .to_string(),
    );
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["kind"],
        "invalid_field"
    );
    let after = env
        .json(&["ls", "--all", "--json"])
        .as_array()
        .unwrap()
        .len();
    assert_eq!(before, after, "a refused task was created");
}

#[test]
fn config_teams_are_imported_and_the_store_wins_afterwards() {
    let env = Env::new();
    std::fs::create_dir_all(&env.home).unwrap();
    std::fs::write(
        env.home.join("config.toml"),
        "[teams.cfg]\nmax_usd_per_day = 3.0\nallowed_models = [\"a\"]\n",
    )
    .unwrap();
    env.ok(&["daemon"]);
    let t = &teams(&env)[0];
    assert_eq!(t["name"], "cfg");
    assert_eq!(t["max_usd_per_day"], 3.0);
    assert_eq!(t["allowed_models"], json!(["a"]));
    env.ok(&["team", "update", "cfg", "--max-usd-per-day", "7"]);
    env.ok(&["daemon", "stop"]);
    env.ok(&["daemon"]);
    let t = &teams(&env)[0];
    assert_eq!(
        t["max_usd_per_day"], 7.0,
        "the config overwrote the stored team"
    );
    assert_eq!(teams(&env).len(), 1);
}

#[test]
fn the_webhook_secret_is_derived_per_team_and_stable() {
    let env = Env::new();
    env.ok(&["team", "create", "a"]);
    env.ok(&["team", "create", "b"]);
    let sa = env.ok(&["team", "webhook-secret", "a"]);
    assert!(sa.starts_with("whsec_") && sa.len() == 6 + 64, "{sa}");
    assert_eq!(env.ok(&["team", "webhook-secret", "a"]), sa);
    assert_ne!(env.ok(&["team", "webhook-secret", "b"]), sa);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(env.home.join("webhook.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // Never stored.
    assert!(!contains(&store_bytes(&env), &sa[6..]));
    env.ok(&["daemon", "stop"]);
    assert_eq!(
        env.ok(&["team", "webhook-secret", "a"]),
        sa,
        "changed on restart"
    );
    refused(
        &env.run(&["team", "webhook-secret", "nosuch"]),
        "team not found",
    );
}

// The handlers' own checks for key callers: an in-process engine, served on sockets of the
// test's own where every request is made as one key (what the TCP listener does after it
// checked the bearer key).

mod as_key {
    use drover_daemon::api::auth::{KeyPrincipal, Principal, RemoteAddr};
    use drover_daemon::api::router_as;
    use drover_daemon::engine::Engine;
    use drover_daemon::listen;
    use drover_daemon::{CancellationToken, Config, Home};
    use drover_store::NewKeyRecord;
    use drover_types::{Scope, TeamInfo};
    use serde_json::Value;
    use std::path::{Path, PathBuf};
    use std::sync::Arc;

    struct Server {
        _tmp: tempfile::TempDir,
        engine: Arc<Engine>,
        stop: CancellationToken,
        dir: PathBuf,
    }

    impl Server {
        async fn new() -> Server {
            let tmp = tempfile::tempdir().unwrap();
            let home = tmp.path().join("h");
            std::fs::create_dir_all(&home).unwrap();
            let config = Config::load(&home).unwrap();
            let stop = CancellationToken::new();
            let (engine, _) = Engine::open(config, Home::new(&home), &stop).await.unwrap();
            let engine = Arc::new(engine);
            for name in ["a", "b"] {
                let t = TeamInfo {
                    name: name.into(),
                    ..TeamInfo::default()
                };
                engine.store.create_team(&t).await.unwrap();
            }
            let dir = tmp.path().to_path_buf();
            Server {
                _tmp: tmp,
                engine,
                stop,
                dir,
            }
        }

        /// A socket where every request is made as `p`.
        fn serve_as(&self, label: &str, p: Principal) -> PathBuf {
            let sock = self.dir.join(format!("{label}.sock"));
            let listener = tokio::net::UnixListener::bind(&sock).unwrap();
            let app = router_as(self.engine.clone(), p, RemoteAddr(None));
            let stop = self.stop.clone().cancelled_owned();
            let tasks = self.engine.tasks.clone();
            tokio::spawn(async move { listen::serve(listener, app, stop, &tasks).await });
            sock
        }

        async fn key(&self, team: &str, id: &str, scopes: Vec<Scope>) -> Principal {
            self.engine
                .store
                .create_key(NewKeyRecord {
                    id: id.into(),
                    team: team.into(),
                    name: None,
                    scopes: scopes.clone(),
                    hash: format!("hash-of-{id}"),
                    expires_at: None,
                })
                .await
                .unwrap();
            Principal::Key(KeyPrincipal {
                key_id: id.into(),
                team: team.into(),
                scopes,
            })
        }
    }

    async fn call(sock: &Path, method: &str, path: &str, body: &str) -> (u16, Value) {
        let (sock, method, path, body) = (
            sock.to_path_buf(),
            method.to_string(),
            path.to_string(),
            body.to_string(),
        );
        let (status, text) = tokio::task::spawn_blocking(move || {
            drover_test_support::http::json(&sock, &method, &path, &body)
        })
        .await
        .unwrap();
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, v)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_admin_key_acts_only_for_its_team_and_other_keys_not_at_all() {
        let s = Server::new().await;
        let admin_a = s.key("a", "key_00000000000a", vec![Scope::Admin]).await;
        let writer_a = s
            .key(
                "a",
                "key_0000000000a2",
                vec![Scope::TasksRead, Scope::TasksWrite],
            )
            .await;
        s.key("b", "key_00000000000b", vec![Scope::Admin]).await;
        let admin = s.serve_as("admin-a", admin_a);
        let writer = s.serve_as("writer-a", writer_a);

        // Its own team: list, show, update, keys, webhook secret.
        let (st, v) = call(&admin, "GET", "/v1/teams", "").await;
        assert_eq!(st, 200, "{v}");
        let names: Vec<&str> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["a"], "an admin key saw another team");
        assert_eq!(call(&admin, "GET", "/v1/teams/a", "").await.0, 200);
        // Its budgets and models are the host owner's: an admin key raising them is refused and
        // changes nothing; its webhook URL is its own.
        for body in [
            r#"{"max_usd_per_task": 1000}"#,
            r#"{"max_usd_per_day": null}"#,
            r#"{"allowed_models": ["claude-opus-4-1"]}"#,
        ] {
            let (st, v) = call(&admin, "PATCH", "/v1/teams/a", body).await;
            assert_eq!(
                (st, v["kind"].clone()),
                (403, Value::from("forbidden")),
                "{body}"
            );
        }
        let (_, v) = call(&admin, "GET", "/v1/teams/a", "").await;
        assert_eq!(v["max_usd_per_task"], Value::Null, "unchanged: {v}");
        let (st, v) = call(
            &admin,
            "PATCH",
            "/v1/teams/a",
            r#"{"webhook_url": "https://hooks.example.com/drover"}"#,
        )
        .await;
        assert_eq!(
            (st, v["webhook_url"].clone()),
            (200, Value::from("https://hooks.example.com/drover"))
        );
        assert_eq!(
            call(&admin, "GET", "/v1/teams/a/webhook-secret", "")
                .await
                .0,
            200
        );
        // A key may not point the daemon at this host or a private network.
        for url in [
            "http://127.0.0.1:9/x",
            "http://localhost/x",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/x",
            "http://10.0.0.1/x",
        ] {
            let body = serde_json::json!({ "webhook_url": url }).to_string();
            let (st, v) = call(&admin, "PATCH", "/v1/teams/a", &body).await;
            assert_eq!(
                (st, v["kind"].clone()),
                (403, Value::from("forbidden")),
                "{url}: {v}"
            );
        }
        let (st, v) = call(
            &admin,
            "PATCH",
            "/v1/teams/a",
            r#"{"webhook_url": "https://example.com/h"}"#,
        )
        .await;
        assert_eq!(
            (st, v["webhook_url"].clone()),
            (200, Value::from("https://example.com/h"))
        );
        let (st, v) = call(&admin, "POST", "/v1/keys", r#"{"team": "a"}"#).await;
        assert_eq!(st, 201, "{v}");
        let made = v["id"].as_str().unwrap().to_string();
        let (st, v) = call(&admin, "GET", "/v1/keys", "").await;
        assert_eq!(st, 200);
        assert!(
            v.as_array().unwrap().iter().all(|k| k["team"] == "a"),
            "{v}"
        );
        assert_eq!(v.as_array().unwrap().len(), 3);
        let (st, _) = call(&admin, "POST", &format!("/v1/keys/{made}/rotate"), "{}").await;
        assert_eq!(st, 201);
        let (st, _) = call(&admin, "POST", &format!("/v1/keys/{made}/revoke"), "").await;
        assert_eq!(st, 200);

        // Another team: 404 as if it did not exist (same body as a team or key that does
        // not), 403 where the request names it.
        let (st_b, body_b) = call(&admin, "GET", "/v1/teams/b", "").await;
        let (st_none, body_none) = call(&admin, "GET", "/v1/teams/zz", "").await;
        assert_eq!((st_b, st_none), (404, 404));
        assert_eq!(body_b["kind"], body_none["kind"]);
        assert_eq!(body_b["hint"], body_none["hint"]);
        assert_eq!(
            call(&admin, "PATCH", "/v1/teams/b", r#"{"max_usd_per_day": 9}"#)
                .await
                .0,
            404
        );
        assert_eq!(
            call(&admin, "GET", "/v1/teams/b/webhook-secret", "")
                .await
                .0,
            404
        );
        for (method, path) in [
            ("POST", "/v1/keys/key_00000000000b/rotate"),
            ("POST", "/v1/keys/key_00000000000b/revoke"),
            ("DELETE", "/v1/keys/key_00000000000b"),
        ] {
            let (st, v) = call(&admin, method, path, "").await;
            assert_eq!(st, 404, "{method} {path}: {v}");
            assert_eq!(v["kind"], "not_found");
        }
        let (st, v) = call(
            &admin,
            "POST",
            "/v1/keys",
            r#"{"team": "b", "scopes": ["admin"]}"#,
        )
        .await;
        assert_eq!(st, 403, "{v}");
        assert_eq!(v["kind"], "forbidden");
        assert!(
            v["error"]
                .as_str()
                .unwrap()
                .contains("only for its own team"),
            "{v}"
        );
        assert_eq!(call(&admin, "GET", "/v1/keys?team=b", "").await.0, 403);
        // Creating teams is the host owner's.
        let (st, v) = call(&admin, "POST", "/v1/teams", r#"{"name": "c"}"#).await;
        assert_eq!((st, v["kind"].clone()), (403, Value::from("forbidden")));

        // A key without admin: 403 everywhere here, its own team included.
        for (method, path, body) in [
            ("GET", "/v1/teams", ""),
            ("GET", "/v1/teams/a", ""),
            ("PATCH", "/v1/teams/a", r#"{"max_usd_per_day": 9}"#),
            ("GET", "/v1/teams/a/webhook-secret", ""),
            ("POST", "/v1/keys", r#"{"team": "a", "scopes": ["admin"]}"#),
            ("GET", "/v1/keys", ""),
            ("POST", "/v1/keys/key_00000000000a/rotate", "{}"),
            ("POST", "/v1/keys/key_00000000000a/revoke", ""),
            ("DELETE", "/v1/keys/key_00000000000a", ""),
            ("POST", "/v1/teams", r#"{"name": "c"}"#),
        ] {
            let (st, v) = call(&writer, method, path, body).await;
            assert!(st == 403, "{method} {path}: {st} {v}");
            assert_eq!(v["kind"], "forbidden");
        }

        // Nothing of team b changed; no team c.
        let b_keys = s.engine.store.keys(Some("b")).await.unwrap();
        assert_eq!(b_keys.len(), 1);
        assert!(b_keys[0].revoked_at.is_none() && b_keys[0].rotated_to.is_none());
        assert!(s.engine.store.team("c").await.unwrap().is_none());
        assert_eq!(
            s.engine
                .store
                .team("b")
                .await
                .unwrap()
                .unwrap()
                .max_usd_per_day,
            None
        );
        let a_keys = s.engine.store.keys(Some("a")).await.unwrap();
        assert!(a_keys
            .iter()
            .find(|k| k.id == "key_00000000000a")
            .unwrap()
            .revoked_at
            .is_none());
        s.stop.cancel();
    }
}

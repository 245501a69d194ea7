//! The audit log, accounting export and usage as a team's API key sees them over TCP
//! (docs/design.md §7, docs/accounting.md): only its own team's, never another's; refused
//! calls recorded with the key that made them (or none without a valid key).
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;
use drover_store::{SqliteStore, UsageRow, UsageStore};
use drover_test_support::keys::TestKey;
use drover_types::Scope;
use serde_json::{json, Value};

type Server = TcpServer;

impl TcpServer {
    fn get(&self, path: &str, key: Option<&str>) -> (u16, Value) {
        let (status, body) = self.call("GET", path, key, "");
        (
            status,
            serde_json::from_str(&body).unwrap_or(Value::String(body)),
        )
    }

    /// A finished command task created over TCP with `key`; its id.
    fn task(&self, key: &TestKey) -> String {
        let body = json!({
            "repo": self.env.repo.display().to_string(),
            "prompt": "p", "agent": "command", "cmd": "true",
        });
        let (status, b) = self.call("POST", "/v1/tasks", Some(&key.secret), &body.to_string());
        assert!((200..300).contains(&status), "create: {status} {b}");
        let id = serde_json::from_str::<Value>(&b).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let (status, t) = self.call(
            "GET",
            &format!("/v1/tasks/{id}/wait?timeout=120"),
            Some(&key.secret),
            "",
        );
        assert_eq!(status, 200, "{t}");
        id
    }

    /// Metered usage for `task` of `team`, written to the daemon's store as its gateway would.
    fn usage(&self, task: &str, team: &str, tokens: i64, usd: f64) {
        let store = self
            .rt
            .block_on(SqliteStore::open(&self.env.home.join("drover.db")))
            .unwrap();
        let row = UsageRow {
            task_id: task.into(),
            pool: None,
            team: Some(team.into()),
            api: "anthropic".into(),
            model: "claude-sonnet-4-6".into(),
            input_tokens: tokens,
            output_tokens: 1,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
            cost_usd: Some(usd),
            stop_reason: Some("end_turn".into()),
            outcome: "ok".into(),
            at: drover_store::now(),
        };
        self.rt.block_on(store.record_usage(&[row])).unwrap();
    }
}

impl Server {
    /// The unchanged CLI against this server as `key` (`DROVER_URL` + `DROVER_API_KEY`).
    fn remote(&self, key: &TestKey, args: &[&str]) -> std::process::Output {
        let cli_home = self.env.tmp.path().join("cli-home");
        let mut c = self.env.cmd(args);
        c.env("DROVER_HOME", &cli_home)
            .env("DROVER_URL", format!("http://{}", self.addr))
            .env("DROVER_API_KEY", &key.secret)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let child = c.spawn().unwrap();
        finish_within(
            child,
            std::time::Duration::from_secs(120),
            &format!("drover {args:?}"),
        )
    }
}

fn teams(v: &Value) -> Vec<Option<String>> {
    v["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["actor"]["team"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn a_key_sees_only_its_own_teams_audit_usage_and_accounting() {
    let s = TcpServer::start();
    s.keys.team("a");
    s.keys.team("b");
    let a = s.keys.key(
        "a",
        &[
            Scope::TasksRead,
            Scope::TasksWrite,
            Scope::AuditRead,
            Scope::UsageRead,
        ],
        None,
    );
    let b = s.keys.key("b", &[Scope::Admin], None);
    let a_writer = s
        .keys
        .key("a", &[Scope::TasksRead, Scope::TasksWrite], None);
    let ta = s.task(&a);
    let tb = s.task(&b);
    s.usage(&ta, "a", 10, 0.5);
    s.usage(&tb, "b", 20, 2.0);
    // Refusals: a key of team a stopping b's task (404), a garbage key creating (401), a key
    // without the scope.
    assert_eq!(
        s.call(
            "POST",
            &format!("/v1/tasks/{tb}/stop"),
            Some(&a.secret),
            "{}"
        )
        .0,
        404
    );
    assert_eq!(
        s.call("POST", "/v1/tasks", Some("drv_garbage"), "{}").0,
        401
    );
    assert_eq!(
        s.call("POST", "/v1/pools", Some(&a_writer.secret), "{}").0,
        403
    );

    // The owner sees everything: both creations, each with its key, team and TCP address.
    let (status, _) = s.get("/v1/audit", None);
    assert_eq!(status, 401, "TCP without a key");
    let owner = api_json(&s.env, "GET", "/v1/audit", "");
    assert_eq!(owner.0, 200);
    let all: Value = serde_json::from_str(&owner.1).unwrap();
    let records = all["records"].as_array().unwrap();
    let create_a = records
        .iter()
        .find(|r| r["action"] == "task.create" && r["target"] == ta.as_str())
        .expect("a's create");
    assert_eq!(create_a["actor"], json!({"key_id": a.id, "team": "a"}));
    assert!(
        create_a["remote_addr"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:"),
        "{create_a}"
    );
    let refused = records
        .iter()
        .find(|r| r["action"] == "task.stop" && r["target"] == tb.as_str())
        .expect("a's refused stop");
    assert_eq!(
        (refused["status"].as_u64(), &refused["actor"]["key_id"]),
        (Some(404), &json!(a.id))
    );
    let unauth = records
        .iter()
        .find(|r| r["action"] == "task.create" && r["status"] == 401)
        .expect("the 401");
    assert_eq!(unauth["actor"], json!({"key_id": null, "team": null}));
    let forbidden = records
        .iter()
        .find(|r| r["action"] == "pool.create" && r["status"] == 403)
        .expect("the 403");
    assert_eq!(forbidden["actor"]["key_id"], json!(a_writer.id));
    assert!(teams(&all).contains(&Some("b".into())));
    assert!(!owner.1.contains("drv_"), "{}", owner.1);

    // Key a: only team a's records, whatever it asks.
    let (status, mine) = s.get("/v1/audit", Some(&a.secret));
    assert_eq!(status, 200, "{mine}");
    let mine_teams = teams(&mine);
    assert!(!mine_teams.is_empty());
    assert!(
        mine_teams.iter().all(|t| t.as_deref() == Some("a")),
        "{mine:#}"
    );
    // Not even through a's own refused call: its target is left out of a key's view (the owner
    // sees it, above).
    assert!(
        !mine.to_string().contains(&tb),
        "b's task id leaked: {mine:#}"
    );
    let a_refused = mine["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["action"] == "task.stop" && r["status"] == 404)
        .expect("a's refused stop, in a's view");
    assert_eq!(a_refused["target"], Value::Null);
    let (status, body) = s.get("/v1/audit?team=b", Some(&a.secret));
    assert_eq!(
        (status, body["kind"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );
    let (status, _) = s.get("/v1/audit", Some(&a_writer.secret));
    assert_eq!(status, 403, "no audit:read");
    // Key b (admin) sees b's, never a's.
    let (_, theirs) = s.get("/v1/audit", Some(&b.secret));
    assert!(
        teams(&theirs).iter().all(|t| t.as_deref() == Some("b")),
        "{theirs:#}"
    );
    assert!(!theirs.to_string().contains(&ta), "{theirs:#}");
    assert!(!theirs.to_string().contains(&a.id), "{theirs:#}");
    assert!(!teams(&theirs).is_empty());

    // Accounting export: a's task only, in both formats.
    for format in ["ndjson", "csv"] {
        let (status, text) = s.call(
            "GET",
            &format!("/v1/audit/export?format={format}"),
            Some(&a.secret),
            "",
        );
        assert_eq!(status, 200, "{text}");
        assert!(
            text.contains(&ta) && !text.contains(&tb),
            "{format}: {text}"
        );
        let (status, _) = s.call(
            "GET",
            &format!("/v1/audit/export?format={format}&team=b"),
            Some(&a.secret),
            "",
        );
        assert_eq!(status, 403);
    }
    let (status, _) = s.call("GET", "/v1/audit/export", Some(&a_writer.secret), "");
    assert_eq!(status, 403);
    // The same through the CLI against the server.
    let out = s.remote(&a, &["audit", "export", "--format", "csv"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = String::from_utf8(out.stdout).unwrap();
    assert!(
        csv.starts_with("schema,task_id,") && csv.contains(&ta) && !csv.contains(&tb),
        "{csv}"
    );
    let out = s.remote(&a, &["audit", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!listed.is_empty() && listed.iter().all(|r| r["actor"]["team"] == "a"));
    let out = s.remote(&a, &["audit", "--team", "b"]);
    assert_eq!(out.status.code(), Some(2), "403 is exit 2");
    let out = s.remote(&a_writer, &["audit", "export", "--format", "ndjson"]);
    assert_eq!(out.status.code(), Some(2), "no audit:read");
    let out = s.remote(&a, &["usage", "--by", "tag:customer", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Usage: a's only, grouped any way; another team's is 403.
    let (status, usage) = s.get("/v1/usage?by=task", Some(&a.secret));
    assert_eq!(status, 200, "{usage}");
    let keys: Vec<&str> = usage
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, [ta.as_str()]);
    let (_, by_team) = s.get("/v1/usage?by=team", Some(&a.secret));
    assert_eq!(by_team.as_array().unwrap().len(), 1);
    assert_eq!(by_team[0]["key"], "a");
    assert_eq!(by_team[0]["cost_usd"], 0.5);
    let (status, _) = s.get("/v1/usage?team=b", Some(&a.secret));
    assert_eq!(status, 403);
    let (status, _) = s.get("/v1/usage", Some(&a_writer.secret));
    assert_eq!(status, 403, "no usage:read");
    // The owner sees both teams.
    let (_, owner_usage) = api_json(&s.env, "GET", "/v1/usage?by=team", "");
    let owner_usage: Value = serde_json::from_str(&owner_usage).unwrap();
    assert_eq!(owner_usage.as_array().unwrap().len(), 2, "{owner_usage:#}");
}

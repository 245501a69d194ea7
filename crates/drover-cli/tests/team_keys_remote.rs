//! `drover team …` and `drover key …` against a team server over TCP with an admin key
//! (`DROVER_URL`, `DROVER_API_KEY`): the key manages its own team's keys and settings only; a
//! key it rotates with no overlap stops working at once, and the new one works.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;
use drover_test_support::keys::Keys;
use drover_test_support::net;
use drover_types::Scope;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;

struct Remote {
    _rt: tokio::runtime::Runtime,
    env: Env,
    url: String,
    cli_home: PathBuf,
}

impl Remote {
    /// `drover` against the server with `key`.
    fn drover(&self, key: &str, args: &[&str]) -> Output {
        let mut c = self.env.cmd(args);
        c.env("DROVER_HOME", &self.cli_home)
            .env("DROVER_URL", &self.url)
            .env("DROVER_API_KEY", key)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        finish_within(
            c.spawn().unwrap(),
            CLI_DEADLINE,
            &format!("drover {args:?}"),
        )
    }

    fn ok(&self, key: &str, args: &[&str]) -> String {
        let out = self.drover(key, args);
        assert!(
            out.status.success(),
            "drover {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    fn refused(&self, key: &str, args: &[&str], what: &str) {
        let out = self.drover(key, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "drover {args:?}: {err}");
        assert!(err.contains(what), "drover {args:?}: {err}");
    }
}

#[test]
fn an_admin_key_manages_its_own_team_over_tcp() {
    let env = Env::new();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let exe = Path::new(env!("CARGO_BIN_EXE_drover"));
    let (_daemon, addr) = rt.block_on(net::start_listening(&env.home, exe, None));
    let keys = Keys::open(&env.home);
    keys.team("a");
    keys.team("b");
    let admin = keys.key("a", &[Scope::Admin], None);
    let other = keys.key("b", &[Scope::Admin], None);
    drop(keys);
    let r = Remote {
        _rt: rt,
        url: format!("http://127.0.0.1:{}", addr.port()),
        cli_home: env.tmp.path().join("cli-home"),
        env,
    };
    let a = admin.secret.as_str();

    // Its team only.
    let teams: Value = serde_json::from_str(&r.ok(a, &["team", "ls", "--json"])).unwrap();
    let names: Vec<&str> = teams
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a"]);
    r.refused(
        a,
        &["team", "update", "a", "--max-usd-per-task", "1000"],
        "set by the host owner",
    );
    r.refused(
        a,
        &["team", "update", "b", "--max-usd-per-task", "1"],
        "team not found",
    );
    r.refused(a, &["team", "create", "c"], "host owner");
    r.refused(a, &["team", "webhook-secret", "b"], "team not found");
    r.refused(
        a,
        &[
            "team",
            "update",
            "a",
            "--webhook-url",
            "http://169.254.169.254/x",
        ],
        "internal address",
    );

    // Keys: creates one for its team (which works), not for another; lists its team's only.
    let made = r.ok(
        a,
        &["key", "create", "--team", "a", "--scope", "tasks:read"],
    );
    assert!(made.starts_with("drv_"));
    let listed = r.ok(&made, &["ls", "--json"]);
    assert!(
        listed.starts_with('['),
        "the new key does not work: {listed}"
    );
    r.refused(
        a,
        &["key", "create", "--team", "b"],
        "only for its own team",
    );
    r.refused(a, &["key", "ls", "--team", "b"], "only for its own team");
    r.refused(&made, &["key", "ls"], "admin");
    let ks: Value = serde_json::from_str(&r.ok(a, &["key", "ls", "--json"])).unwrap();
    assert!(
        ks.as_array().unwrap().iter().all(|k| k["team"] == "a"),
        "{ks}"
    );
    assert!(!ks.to_string().contains(&made[4..]) && !ks.to_string().contains(&a[4..]));
    r.refused(a, &["key", "revoke", &other.id], &other.id);
    r.refused(a, &["key", "rotate", &other.id], &other.id);
    // Team b's admin key still works: nothing of b changed.
    assert!(r
        .ok(&other.secret, &["key", "ls", "--json"])
        .contains(&other.id));

    // Rotating itself with no overlap: the old key fails at once (401), the new one works.
    let next = r.ok(a, &["key", "rotate", &admin.id, "--overlap", "0"]);
    assert!(next.starts_with("drv_") && next != a);
    r.refused(a, &["key", "ls"], "");
    let out = r.drover(a, &["key", "ls"]);
    assert!(String::from_utf8_lossy(&out.stderr)
        .to_lowercase()
        .contains("key"));
    assert!(r.ok(&next, &["key", "ls", "--json"]).contains(&admin.id));
    // And revoking: immediate.
    let made_id = serde_json::from_str::<Value>(&r.ok(&next, &["key", "ls", "--json"]))
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["scopes"] == serde_json::json!(["tasks:read"]))
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    r.ok(&next, &["key", "revoke", &made_id]);
    r.refused(&made, &["ls"], "");
}

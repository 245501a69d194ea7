//! The TypeScript client (`clients/typescript`) against a real daemon over TCP (issue 11, "Must
//! show"): a daemon with `--listen 127.0.0.1:0`, a team and a key made over the owner's socket,
//! then `npm run build` and `node --test` in `clients/typescript` with the server's URL, the key,
//! the team and a repository in the environment. The node tests are the seed's `tasks.create`,
//! its events read to `end` across forced disconnects, idempotency, errors and the served spec.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

fn client_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../clients/typescript")
}

/// Runs `program args` in the client's folder with `vars`; fails the test with its output if it
/// fails or takes longer than `limit`.
fn run_in_client(program: &str, args: &[&str], vars: &[(&str, String)], limit: Duration) {
    let mut c = Command::new(program);
    c.args(args)
        .current_dir(client_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in vars {
        c.env(k, v);
    }
    let what = format!("{program} {args:?} in clients/typescript");
    let out = finish_within(c.spawn().unwrap(), limit, &what);
    assert!(
        out.status.success(),
        "{what} exited {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_typescript_client_runs_the_seed_against_a_real_daemon() {
    let modules = client_dir().join("node_modules/.bin/tsc");
    assert!(
        modules.exists(),
        "{} is missing: run scripts/test.sh (it runs npm ci in clients/typescript)",
        modules.display()
    );
    // A provider key turns the gateway on, so the seed's budget can be enforced (the command
    // agent never calls it).
    let env = Env::new()
        .with_env("ANTHROPIC_API_KEY", "sk-ant-test-key")
        .with_env("ANTHROPIC_BASE_URL", "http://127.0.0.1:9");
    env.ok(&["daemon", "--listen", "127.0.0.1:0"]);
    let addr_file = env.home.join("listen.addr");
    poll("the daemon's listen.addr", Duration::from_secs(30), || {
        std::fs::read_to_string(&addr_file).is_ok_and(|s| !s.trim().is_empty())
    });
    let addr = std::fs::read_to_string(&addr_file)
        .unwrap()
        .trim()
        .to_string();

    // The host owner makes the team and the key (the Unix socket needs no key).
    let (status, body) = api_json(&env, "POST", "/v1/teams", r#"{"name":"platform"}"#);
    assert_eq!(status, 201, "team create: {body}");
    let (status, body) = api_json(
        &env,
        "POST",
        "/v1/keys",
        r#"{"team":"platform","scopes":["tasks:read","tasks:write"],"name":"ts-client"}"#,
    );
    assert_eq!(status, 201, "key create: {body}");
    let key: serde_json::Value = serde_json::from_str(&body).unwrap();
    let key = key["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("drv_"), "{body}");

    let vars = [
        ("DROVER_URL", format!("http://{addr}")),
        ("DROVER_API_KEY", key),
        ("DROVER_TEST_TEAM", "platform".to_string()),
        ("DROVER_TEST_REPO", env.repo.display().to_string()),
    ];
    run_in_client("npm", &["run", "build"], &vars, Duration::from_secs(120));
    run_in_client(
        "node",
        &["--test", "--test-timeout=120000", "dist/test/"],
        &vars,
        Duration::from_secs(240),
    );
}

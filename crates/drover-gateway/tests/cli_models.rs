//! Which models the pinned agent CLIs actually ask for, on their own defaults, and that the
//! built-in price table prices every one of them (else a dollar budget would refuse them all).
//!
//! Runs the real Claude Code (`DROVER_CLAUDE_BIN`) and Codex (`DROVER_CODEX_BIN`) CLIs against
//! the fake provider, without `--model`, and reads the `model` field of the requests they sent.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::Duration;

use drover_fake_provider::RunningProvider;
use drover_gateway::PriceTable;
use drover_test_support::{agents, provider};

const SET: &str = r#"{"scenarios": [{"name": "default", "turns": [
  {"content": [{"type": "text", "text": "hello"}]}]}]}"#;

// Overloaded (529) for the first six attempts: Claude Code 2.1.328 gives up on its main model
// after three and, given `--fallback-model`, asks the fallback.
const OVERLOADED: &str = r#"{"scenarios": [{"name": "default", "turns": [
  {"content": [{"type": "text", "text": "hello"}], "fail_first": [{"status": 529}, {"status": 529},
   {"status": 529}, {"status": 529}, {"status": 529}, {"status": 529}]}]}]}"#;

async fn provider() -> RunningProvider {
    provider::start(SET).await
}

/// Runs a CLI to completion (60 s deadline) with only the given environment; it must succeed.
async fn run(program: &str, args: &[&str], env: &[(&str, String)], dir: &std::path::Path) {
    let out = output(program, args, env, dir).await;
    assert!(
        out.status.success(),
        "{program} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs a CLI to completion (60 s deadline) with only the given environment.
async fn output(
    program: &str,
    args: &[&str],
    env: &[(&str, String)],
    dir: &std::path::Path,
) -> std::process::Output {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{program} did not finish within 60 s"))
        .unwrap()
}

/// Models in request order, with the status each got.
fn asked(p: &RunningProvider) -> Vec<(String, u16)> {
    p.log()
        .into_iter()
        .filter_map(|r| r.model.map(|m| (m, r.status)))
        .collect()
}

fn models(p: &RunningProvider) -> Vec<String> {
    let mut m: Vec<String> = p.log().into_iter().filter_map(|r| r.model).collect();
    m.sort();
    m.dedup();
    m
}

#[tokio::test]
async fn the_pinned_clis_default_models_are_priced() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let work = tmp.path().join("work");
    std::fs::create_dir_all(home.join(".codex")).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    let prices = PriceTable::builtin();

    // Claude Code: its default (main) model, and any side model it uses on the way.
    let fake = provider().await;
    run(
        &agents::claude_bin(),
        &["-p", "say hi"],
        &[
            ("HOME", home.display().to_string()),
            ("DISABLE_AUTOUPDATER", "1".into()),
            ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1".into()),
            ("ANTHROPIC_BASE_URL", fake.base_url()),
            ("ANTHROPIC_API_KEY", "sk-test".into()),
        ],
        &work,
    )
    .await;
    let mut claude = models(&fake);
    assert!(
        claude.contains(&"claude-opus-5-5".to_string()),
        "Claude Code 2.1.328 asks for claude-opus-5-5 by default: {claude:?}"
    );
    let claude_env = [
        ("HOME", home.display().to_string()),
        ("DISABLE_AUTOUPDATER", "1".into()),
        ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1".into()),
        ("ANTHROPIC_API_KEY", "sk-test".into()),
    ];
    // Overloaded main model, no --fallback-model: 2.1.328 has no automatic fallback; it
    // gives up after three 529s having asked only its main model.
    let fake = provider::start(OVERLOADED).await;
    let mut env = claude_env.to_vec();
    env.push(("ANTHROPIC_BASE_URL", fake.base_url()));
    let out = output(&agents::claude_bin(), &["-p", "say hi"], &env, &work).await;
    assert!(!out.status.success(), "a run that only got 529s failed");
    assert_eq!(
        asked(&fake),
        vec![("claude-opus-5-5".to_string(), 529); 3],
        "no automatic fallback"
    );
    // With --fallback-model (the aliases an operator would pass), the fallback it asks for
    // after three 529s on the main model answers; every model asked is checked below.
    for (alias, model) in [
        ("sonnet", "claude-sonnet-5-5"),
        ("haiku", "claude-haiku-5-5"),
    ] {
        let fake = provider::start(OVERLOADED).await;
        let mut env = claude_env.to_vec();
        env.push(("ANTHROPIC_BASE_URL", fake.base_url()));
        let args = ["-p", "say hi", "--fallback-model", alias];
        run(&agents::claude_bin(), &args, &env, &work).await;
        let log = asked(&fake);
        assert_eq!(
            log[..3],
            vec![("claude-opus-5-5".to_string(), 529); 3],
            "{log:?}"
        );
        assert!(log[3..].iter().all(|(m, _)| m == model), "{log:?}");
        assert_eq!(log.last().map(|l| l.1), Some(200), "{log:?}");
        claude.extend(models(&fake));
    }

    // Codex: its default model through a custom Responses provider (as drover runs it).
    let fake = provider().await;
    let url = format!("{}/v1", fake.base_url());
    run(
        &agents::codex_bin(),
        &[
            "exec",
            "--json",
            "--skip-git-repo-check",
            "-c",
            "model_provider=\"drover\"",
            "-c",
            "model_providers.drover.name=\"drover\"",
            "-c",
            &format!("model_providers.drover.base_url=\"{url}\""),
            "-c",
            "model_providers.drover.env_key=\"OPENAI_API_KEY\"",
            "-c",
            "model_providers.drover.wire_api=\"responses\"",
            "say hi",
        ],
        &[
            ("HOME", home.display().to_string()),
            ("CODEX_HOME", home.join(".codex").display().to_string()),
            ("OPENAI_API_KEY", "sk-test".into()),
        ],
        &work,
    )
    .await;
    let codex = models(&fake);
    assert!(!codex.is_empty(), "codex sent no request");

    let unpriced: Vec<_> = claude
        .iter()
        .chain(&codex)
        .filter(|m| prices.get(m).is_none())
        .collect();
    assert!(
        unpriced.is_empty(),
        "models the pinned CLIs use but the built-in table does not price: {unpriced:?} (claude {claude:?}, codex {codex:?})"
    );
}

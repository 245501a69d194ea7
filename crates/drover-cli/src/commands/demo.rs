//! `drover demo`: the main job in one command — a small fleet on a generated repository, live
//! progress, and a closing table. Offline by default: Claude Code talks to drover's fake provider
//! unless ANTHROPIC_API_KEY is set.

use crate::cli::DemoArgs;
use crate::client::Client;
use crate::error::{CliError, Context, Result};
use drover_types::{RunRequest, Task};
use serde_json::json;
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

fn sh(dir: &Path, args: &[&str]) -> Result<()> {
    let ok = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=drover demo",
            "-c",
            "user.email=demo@drover.invalid",
        ])
        .args(args)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if ok {
        Ok(())
    } else {
        Err(
            CliError::internal(format!("git {args:?} failed in {}", dir.display()))
                .hint("is git installed?"),
        )
    }
}

fn make_repo(dir: &Path) -> Result<()> {
    let write = |p: &str, s: &str| {
        let path = dir.join(p);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, s)
    };
    std::fs::create_dir_all(dir).context(dir.display())?;
    (|| -> std::io::Result<()> {
        write("README.md", "# demo\n\nA tiny project for drover's demo.\n")?;
        write("src/app.py", "def add(a, b):\n    return a + b\n")?;
        write(".gitignore", "__pycache__/\n")
    })()
    .context("writing the demo repo")?;
    sh(dir, &["init", "-q"])?;
    sh(dir, &["add", "-A"])?;
    sh(dir, &["commit", "-qm", "demo: initial commit"])
}

/// The offline script: what the fake model answers to each demo prompt.
fn scenarios() -> serde_json::Value {
    let write = |file: &str, content: &str, done: &str| {
        json!([
            { "content": [ {"type": "text", "text": format!("I'll create {file}.")},
                           {"type": "tool_use", "name": "Write", "input": {"file_path": file, "content": content}} ],
              "usage": {"input": 1800, "output": 120, "cache_creation": 1500}, "delay_ms": 400 },
            { "content": [ {"type": "text", "text": done} ], "usage": {"input": 2100, "output": 40, "cache_read": 1500}, "delay_ms": 300 }
        ])
    };
    json!({ "scenarios": [
        { "name": "greeting", "match": "DEMO-GREETING",
          "turns": write("src/greeting.py", "def greet(name):\n    return f\"Hello, {name}!\"\n", "Added src/greeting.py with greet().") },
        { "name": "tests", "match": "DEMO-TESTS",
          "turns": write("tests/test_app.py", "from src.app import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n", "Added a test for add().") },
        { "name": "docs", "match": "DEMO-DOCS",
          "turns": write("CONTRIBUTING.md", "# Contributing\n\nRun the tests with `pytest`.\n", "Wrote CONTRIBUTING.md.") },
        { "name": "default", "turns": [ { "content": [ {"type": "text", "text": "Nothing to do."} ] } ] }
    ]})
}

pub async fn demo(args: DemoArgs) -> Result<i32> {
    let base = match &args.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("drover-demo-{}", std::process::id())),
    };
    let repo = base.join("repo");
    make_repo(&repo)?;
    let home = std::env::var_os("DROVER_HOME")
        .map(Into::into)
        .unwrap_or_else(|| base.join("home"));
    let client = Client::new(home);
    let mut envs = vec![("DROVER_PERMISSIONS".to_string(), "allow".to_string())];
    let _provider = if std::env::var("ANTHROPIC_API_KEY").is_ok_and(|k| !k.is_empty()) {
        eprintln!("demo: ANTHROPIC_API_KEY is set: the sessions use the real Anthropic API");
        None
    } else {
        let set = drover_fake_provider::ScenarioSet::from_json(&scenarios().to_string())
            .context("demo scenarios")?;
        let p = drover_fake_provider::FakeProvider::start(set, ([127, 0, 0, 1], 0).into())
            .await
            .context("fake provider")?;
        eprintln!(
            "demo: offline — Claude Code talks to drover's fake provider at {}",
            p.base_url()
        );
        envs.push(("ANTHROPIC_BASE_URL".into(), p.base_url()));
        envs.push(("ANTHROPIC_API_KEY".into(), "demo-key-not-secret".into()));
        Some(p)
    };
    if client.ping().await {
        return Err(CliError::input(format!(
            "a daemon already runs for {}",
            client.home.display()
        ))
        .hint("unset DROVER_HOME (the demo uses its own), or stop it with `drover daemon stop`"));
    }
    client
        .start_daemon(
            &drover_daemon::Flags {
                slots: Some(args.slots),
                ..Default::default()
            },
            &envs,
        )
        .await?;
    eprintln!("demo: repository {}", repo.display());
    // The dashboard, while the demo runs (a one-time login, valid 2 minutes; `drover web` makes
    // another).
    match client
        .post::<_, drover_types::WebLogin>("/v1/web/login", &json!({}))
        .await
    {
        Ok(login) => eprintln!("demo: watch the fleet in a browser: {}\n", login.url),
        Err(_) => eprintln!("demo: (no web dashboard: web_listen is off)\n"),
    }
    let mut ids = vec![];
    let prompts = [
        (
            "greeting",
            "DEMO-GREETING: add src/greeting.py with a greet(name) function",
        ),
        (
            "tests",
            "DEMO-TESTS: add a pytest test for add() in src/app.py",
        ),
        ("docs", "DEMO-DOCS: write a short CONTRIBUTING.md"),
    ];
    for i in 0..args.tasks {
        let req = if i < prompts.len() {
            RunRequest {
                repo: repo.display().to_string(),
                name: Some(prompts[i].0.into()),
                model: Some("claude-sonnet-4-6".into()),
                prompt: prompts[i].1.into(),
                ..Default::default()
            }
        } else {
            RunRequest {
                repo: repo.display().to_string(),
                agent: Some("command".into()),
                cmd: Some(format!(
                    "git log --oneline | wc -l > COMMITS-{i}.txt; echo counted commits"
                )),
                name: Some(format!("count-{i}")),
                prompt: "count the commits".into(),
                ..Default::default()
            }
        };
        let t: Task = client.post("/v1/tasks", &req).await?;
        ids.push(t.id);
    }
    let started = std::time::Instant::now();
    let mut seen: HashMap<String, String> = HashMap::new();
    let tasks = loop {
        let tasks = client.list_tasks(true).await?;
        let tasks: Vec<Task> = tasks.into_iter().filter(|t| ids.contains(&t.id)).collect();
        for t in &tasks {
            let label = crate::format::state_label(t);
            if seen.get(&t.id) != Some(&label) {
                let name = t.name.clone().unwrap_or_default();
                eprintln!(
                    "[{:>5.1}s] {} {:<10} {}",
                    started.elapsed().as_secs_f64(),
                    t.id,
                    name,
                    label
                );
                seen.insert(t.id.clone(), label);
            }
        }
        if tasks.iter().all(|t| t.state.is_terminal()) {
            break tasks;
        }
        if started.elapsed() > Duration::from_secs(600) {
            return Err(
                CliError::internal("the demo did not finish within 10 minutes")
                    .hint("see `drover ls`"),
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!();
    println!(
        "{:<10} {:<10} {:<11} {:<18} {:<12} COST",
        "TASK", "NAME", "STATE", "BRANCH", "COMMIT"
    );
    for t in &tasks {
        println!(
            "{:<10} {:<10} {:<11} {:<18} {:<12} {}",
            t.id,
            t.name.clone().unwrap_or_default(),
            t.state.as_str(),
            t.branch,
            t.commit
                .as_deref()
                .map(|c| &c[..c.len().min(10)])
                .unwrap_or("-"),
            t.cost_usd
                .map(|c| format!("${c:.4}"))
                .unwrap_or_else(|| "-".into())
        );
    }
    println!(
        "\nbranches are in {}: git -C {} log --oneline --all",
        repo.display(),
        repo.display()
    );
    let _: serde_json::Value = client
        .post("/v1/daemon/stop", &json!({ "stop_tasks": true }))
        .await?;
    let ok = tasks
        .iter()
        .all(|t| t.state == drover_types::TaskState::Succeeded);
    Ok(if ok { 0 } else { 1 })
}

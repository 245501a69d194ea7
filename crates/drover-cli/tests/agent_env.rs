//! The environment of agents and gates is built from an allow-list: secrets in the daemon's
//! environment (provider keys, cloud credentials, any token) never reach them.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;

const SECRETS: &[(&str, &str)] = &[
    ("ANTHROPIC_API_KEY", "sk-ant-daemon-secret-1234"),
    ("AWS_SECRET_ACCESS_KEY", "aws-secret-5678"),
    ("SOME_RANDOM_TOKEN", "random-token-9012"),
];

fn vars(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn get<'a>(vars: &'a [(String, String)], k: &str) -> Option<&'a str> {
    vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

#[test]
fn agents_and_gates_never_see_the_daemons_secrets() {
    let mut env = Env::new().with_env("LC_TIME", "C");
    for (k, v) in SECRETS {
        env = env.with_env(k, v);
    }
    // Both write into the checkout (a confined agent or gate writes nowhere else the test can
    // read); the files are committed to the task's branch.
    let id = env.ok(&[
        "run",
        "--agent",
        "command",
        "--cmd",
        "env > agent.env",
        "--verify",
        "env > gate.env",
        "print the environment",
    ]);
    let t = env.wait(&id);
    assert_eq!(t["state"], "succeeded", "{t:#}");
    // The daemon had them (it started the gateway with the key).
    assert_eq!(t["metered_by"], "gateway", "{t:#}");

    for (who, file) in [("agent", "agent.env"), ("gate", "gate.env")] {
        let text = env.git(&["show", &format!("drover/{id}:{file}")]);
        for (k, v) in SECRETS {
            assert!(!text.contains(v), "{who} saw the value of {k}:\n{text}");
        }
        let vars = vars(&text);
        assert!(
            get(&vars, "AWS_SECRET_ACCESS_KEY").is_none(),
            "{who}: {text}"
        );
        assert!(get(&vars, "SOME_RANDOM_TOKEN").is_none(), "{who}: {text}");
        // What they do get: the base list and drover's own variables.
        assert_eq!(get(&vars, "DROVER_TASK_ID"), Some(id.as_str()), "{who}");
        assert_eq!(
            get(&vars, "HOME"),
            Some(env.user_home.to_str().unwrap()),
            "{who}"
        );
        assert_eq!(get(&vars, "LC_TIME"), Some("C"), "{who}");
        let drover_dir = std::path::Path::new(env!("CARGO_BIN_EXE_drover"))
            .parent()
            .unwrap();
        assert!(
            get(&vars, "PATH").is_some_and(|p| p.starts_with(drover_dir.to_str().unwrap())),
            "{who}: {text}"
        );
        match who {
            // The agent reaches the provider through the gateway, with a task token.
            "agent" => {
                assert!(
                    get(&vars, "ANTHROPIC_API_KEY").is_some_and(|k| k.starts_with("drv-")),
                    "{text}"
                );
                assert!(get(&vars, "ANTHROPIC_BASE_URL")
                    .is_some_and(|u| u.starts_with("http://127.0.0.1:")));
            }
            // A gate runs the agent's code: no key of any kind.
            _ => assert!(get(&vars, "ANTHROPIC_API_KEY").is_none(), "{text}"),
        }
    }
}

/// An env with the daemon's secrets (and `CLAUDE_CODE_OAUTH_TOKEN`, a login) in its environment.
fn env_with_secrets() -> Env {
    let mut env = Env::new().with_env("CLAUDE_CODE_OAUTH_TOKEN", "oauth-daemon-login-3456");
    for (k, v) in SECRETS {
        env = env.with_env(k, v);
    }
    env
}

fn assert_no_secret(who: &str, text: &str) {
    for (k, v) in SECRETS
        .iter()
        .chain(&[("CLAUDE_CODE_OAUTH_TOKEN", "oauth-daemon-login-3456")])
    {
        assert!(!text.contains(v), "{who} saw the value of {k}:\n{text}");
        assert!(!text.contains(&format!("{k}=")), "{who} got {k}:\n{text}");
    }
}

#[test]
fn a_pools_notify_command_never_sees_the_daemons_secrets() {
    let env = env_with_secrets();
    let file = env.tmp.path().join("notify.env");
    let notify = format!("env > {}; env", file.display());
    env.ok(&[
        "pool",
        "start",
        "leaky",
        "--slots",
        "1",
        "--agent",
        "command",
        "--cmd",
        "exit 1",
        "--prompt",
        "p",
        "--max-failures",
        "1",
        "--notify",
        &notify,
    ]);
    let p = drover_test_support::poll::until(
        "the notify event",
        std::time::Duration::from_secs(120),
        std::time::Duration::from_millis(100),
        || env.json(&["pool", "show", "leaky", "--json"]),
        |p| {
            p["events"]
                .as_array()
                .is_some_and(|evs| evs.iter().any(|e| e["kind"] == "notify"))
        },
    );
    let ev = p["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "notify")
        .unwrap();
    assert_eq!(ev["data"]["exit_code"], 0, "{ev:#}");
    let tail = ev["data"]["output_tail"].as_str().unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    for (who, text) in [("notify's output", tail), ("notify's env", text.as_str())] {
        assert_no_secret(who, text);
        // What it does get: its own variables and the base list.
        let vars = vars(text);
        assert_eq!(get(&vars, "DROVER_POOL"), Some("leaky"), "{who}: {text}");
        assert_eq!(get(&vars, "DROVER_STREAK"), Some("1"), "{who}: {text}");
        assert_eq!(
            get(&vars, "HOME"),
            Some(env.user_home.to_str().unwrap()),
            "{who}"
        );
    }
}

#[test]
fn a_git_filter_an_agent_sets_up_never_runs_outside_its_jail() {
    let env = env_with_secrets();
    let file = env.tmp.path().join("filter.env");
    // The agent asks git to run a clean filter on every file; the daemon's `git add` (when it
    // commits the task's work, on the host) must not run it — not even with a clean
    // environment: it would run as the daemon's user, outside the jail.
    let cmd = format!(
        "echo '* filter=x' > .gitattributes && git config filter.x.clean 'env > {}; cat' && echo work > work.txt",
        file.display()
    );
    let id = env.run_command_task(&cmd, "set up a filter");
    let t = env.wait(&id);
    assert_eq!(t["state"], "succeeded", "{t:#}");
    assert!(t["commit"].is_string(), "the work was committed: {t:#}");
    assert!(
        !file.exists(),
        "the daemon's git ran the agent's filter on the host"
    );
    let branch = format!("drover/{id}");
    let work = std::process::Command::new("git")
        .args(["show", &format!("{branch}:work.txt")])
        .current_dir(&env.repo)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&work.stdout),
        "work\n",
        "committed as written"
    );
}

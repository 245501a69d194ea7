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
    let out = env.tmp.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let (agent_file, gate_file) = (out.join("agent.env"), out.join("gate.env"));
    let id = env.ok(&[
        "run",
        "--agent",
        "command",
        "--cmd",
        &format!("env > {}", agent_file.display()),
        "--verify",
        &format!("env > {}", gate_file.display()),
        "print the environment",
    ]);
    let t = env.wait(&id);
    assert_eq!(t["state"], "succeeded", "{t:#}");
    // The daemon had them (it started the gateway with the key).
    assert_eq!(t["metered_by"], "gateway", "{t:#}");

    for (who, file) in [("agent", &agent_file), ("gate", &gate_file)] {
        let text = std::fs::read_to_string(file).unwrap();
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

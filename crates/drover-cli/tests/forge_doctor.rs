//! `drover doctor` names each configured forge and whether its token can be had, never the token.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use serde_json::Value;

#[test]
fn doctor_checks_each_forges_token_without_showing_it() {
    let env = Env::new().with_env("FORGE_TOKEN_FOR_DOCTOR", "tok-doctor-env-5150");
    std::fs::create_dir_all(&env.home).unwrap();
    std::fs::write(
        env.home.join("config.toml"),
        r#"
[forges.good]
kind = "gitlab"
api = "https://gitlab.example.com/api/v4"
git = "https://gitlab.example.com"
token_cmd = "echo tok-doctor-cmd-4242"
default = true

[forges.env]
kind = "github"
api = "https://api.github.com"
git = "https://github.com"
token_env = "FORGE_TOKEN_FOR_DOCTOR"

[forges.broken]
kind = "gitea"
api = "https://gitea.example.com/api/v1"
git = "https://gitea.example.com"
token_cmd = "echo 'vault is sealed' >&2; exit 3"
"#,
    )
    .unwrap();
    let out = env.run(&["doctor", "--json"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    for secret in ["tok-doctor-cmd-4242", "tok-doctor-env-5150"] {
        assert!(!text.contains(secret), "doctor showed a token: {text}");
    }
    let v: Value = serde_json::from_str(&text).unwrap();
    let forges: Vec<&Value> = v
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["check"] == "forge")
        .collect();
    assert_eq!(forges.len(), 3, "one line per forge: {text}");
    let line = |name: &str| {
        forges
            .iter()
            .find(|c| {
                c["detail"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("{name}:"))
            })
            .unwrap_or_else(|| panic!("no forge line for {name}: {text}"))
    };
    let good = line("good");
    assert_eq!(good["ok"], true, "{good}");
    let detail = good["detail"].as_str().unwrap();
    assert!(
        detail.contains("gitlab") && detail.contains("default"),
        "{detail}"
    );
    assert_eq!(line("env")["ok"], true, "{}", line("env"));
    let broken = line("broken");
    assert_eq!(broken["ok"], false, "{broken}");
    assert!(
        broken["detail"]
            .as_str()
            .unwrap()
            .contains("vault is sealed"),
        "the token_cmd's own reason is shown: {broken}"
    );
    assert!(broken["hint"].as_str().unwrap().contains("[forges.broken]"));
    // A forge that cannot give a token does not fail doctor as a whole.
    let plain = env.run(&["doctor"]);
    let plain_text = String::from_utf8_lossy(&plain.stdout);
    assert!(plain_text.contains("FAIL forge"), "{plain_text}");
}

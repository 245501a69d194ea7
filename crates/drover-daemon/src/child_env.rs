//! The environment of what the daemon starts for a task — agents (through their shim) and gate
//! commands — built from an allow-list, as codex builds its tools' (`env_clear`): a variable of
//! the daemon's environment reaches a child only if it is named here. The daemon holds provider
//! keys and whatever else its own environment carries (cloud credentials, tokens); none of it
//! is passed unless listed, so a secret nobody thought of is never leaked.
//!
//! What a child gets, later entries winning: [`Inherited::for_agent`] / [`Inherited::for_gate`]
//! (this list), then the adapter's own variables, then drover's (`DROVER_TASK_ID`,
//! `DROVER_HOME`, `DROVER_BIN`, `PATH` with drover's directory in front), then the gateway's
//! grant (its URL and the task's token).

/// What a shell and the usual tools need to behave as they do for the user.
const BASE: &[&str] = &[
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LANGUAGE",
    "TERM",
    "TZ",
    "TMPDIR",
    "SHELL",
    // Where the user's tools keep their configuration and caches (git, npm, codex …).
    "XDG_CONFIG_HOME",
    "XDG_CACHE_HOME",
    "XDG_DATA_HOME",
    "XDG_STATE_HOME",
    "XDG_RUNTIME_DIR",
];
/// Where the usual toolchains live, so a gate's `cargo test` / `go test` / `mvn` / a venv's
/// `pytest` finds what it finds for the user. (Not `SSH_AUTH_SOCK`: the agent gets no keys.)
const TOOLCHAINS: &[&str] = &[
    "CARGO_HOME",
    "RUSTUP_HOME",
    "RUSTUP_TOOLCHAIN",
    "GOPATH",
    "GOROOT",
    "GOCACHE",
    "GOMODCACHE",
    "JAVA_HOME",
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
    "PYTHONPATH",
    "NVM_DIR",
    "NODE_PATH",
    "PNPM_HOME",
    "DENO_DIR",
    "GEM_HOME",
    "GEM_PATH",
];
/// Prefixes passed whole: the locale categories.
const BASE_PREFIXES: &[&str] = &["LC_"];
/// The host's network setup (proxies, extra CA certificates): a tool that downloads needs it.
const NETWORK: &[&str] = &[
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "NODE_EXTRA_CA_CERTS",
];
/// Provider credentials and endpoints: an agent gets them only when drover's gateway is off —
/// then it talks to the provider itself, with the login the daemon was started with. With the
/// gateway on, the grant gives it the gateway's URL and a task token instead. Gates never get
/// them.
const PROVIDER: &[&str] = &[
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_BASE_URL",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "CODEX_API_KEY",
];

/// `PATH`, kept aside: children get it with drover's directory in front (see
/// `drover_env` in the engine).
pub const PATH: &str = "PATH";

/// Whether `name` is a provider credential or endpoint (never added by `pass_env`).
pub fn is_provider_var(name: &str) -> bool {
    PROVIDER.contains(&name)
}

fn listed(name: &str, lists: &[&[&str]]) -> bool {
    lists.iter().any(|l| l.contains(&name))
}

/// The daemon's environment, captured once at the edge; children get the allow-listed part.
#[derive(Clone, Default)]
pub struct Inherited {
    vars: Vec<(String, String)>,
    /// The config's `pass_env`: names the operator adds to the allow-list.
    extra: Vec<String>,
}

impl std::fmt::Debug for Inherited {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Values can be provider keys: names only.
        let names: Vec<&str> = self.vars.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("Inherited").field("vars", &names).finish()
    }
}

impl Inherited {
    /// From the variables the edge captured (`config::Environment`), or given ones (tests).
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Inherited {
        Inherited {
            vars: vars.into_iter().collect(),
            extra: Vec::new(),
        }
    }

    /// Also passes these names (the config's `pass_env`; provider keys are refused there).
    pub fn passing(mut self, names: &[String]) -> Inherited {
        self.extra = names.to_vec();
        self
    }

    /// The daemon's `PATH`, if it has one.
    pub fn path(&self) -> Option<&str> {
        self.get(PATH)
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn select(&self, keep: impl Fn(&str) -> bool) -> Vec<(String, String)> {
        self.vars
            .iter()
            .filter(|(k, _)| {
                listed(k, &[BASE, NETWORK, TOOLCHAINS])
                    || self.extra.iter().any(|e| e == k)
                    || BASE_PREFIXES.iter().any(|p| k.starts_with(p))
                    || keep(k)
            })
            .cloned()
            .collect()
    }

    /// An agent's inherited variables: the base list, the network setup, the names its adapter
    /// asks for (`Adapter::env_passthrough`), and the provider's only with the gateway off.
    pub fn for_agent(&self, passthrough: &[&str], gateway_on: bool) -> Vec<(String, String)> {
        self.select(|k| passthrough.contains(&k) || (!gateway_on && PROVIDER.contains(&k)))
    }

    /// A gate command's inherited variables: the base list and the network setup. A gate runs
    /// the agent's code: never a provider key.
    pub fn for_gate(&self) -> Vec<(String, String)> {
        self.select(|_| false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn daemon_env() -> Inherited {
        Inherited::from_vars(
            [
                ("HOME", "/home/u"),
                ("PATH", "/usr/bin"),
                ("LC_ALL", "C.UTF-8"),
                ("HTTPS_PROXY", "http://proxy:3128"),
                ("ANTHROPIC_API_KEY", "sk-ant-secret"),
                ("AWS_SECRET_ACCESS_KEY", "aws-secret"),
                ("SOME_RANDOM_TOKEN", "tok"),
                ("CLAUDE_CONFIG_DIR", "/home/u/.claude-x"),
                ("CODEX_HOME", "/home/u/.codex-x"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    fn names(vars: &[(String, String)]) -> Vec<&str> {
        let mut n: Vec<&str> = vars.iter().map(|(k, _)| k.as_str()).collect();
        n.sort_unstable();
        n
    }

    #[test]
    fn toolchains_and_the_configs_pass_env_are_passed_and_nothing_else() {
        let env = Inherited::from_vars(
            [
                ("CARGO_HOME", "/c"),
                ("MY_TOOL_DIR", "/t"),
                ("AWS_SECRET_ACCESS_KEY", "aws-secret"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        assert_eq!(names(&env.for_gate()), ["CARGO_HOME"]);
        let env = env.passing(&["MY_TOOL_DIR".to_string()]);
        assert_eq!(names(&env.for_gate()), ["CARGO_HOME", "MY_TOOL_DIR"]);
        assert_eq!(
            names(&env.for_agent(&[], true)),
            ["CARGO_HOME", "MY_TOOL_DIR"]
        );
    }

    #[test]
    fn a_gate_gets_the_base_list_only() {
        assert_eq!(
            names(&daemon_env().for_gate()),
            ["HOME", "HTTPS_PROXY", "LC_ALL"]
        );
    }

    #[test]
    fn an_agent_gets_what_its_adapter_names_and_provider_keys_only_without_the_gateway() {
        let env = daemon_env();
        assert_eq!(
            names(&env.for_agent(&["CLAUDE_CONFIG_DIR"], true)),
            ["CLAUDE_CONFIG_DIR", "HOME", "HTTPS_PROXY", "LC_ALL"]
        );
        assert_eq!(
            names(&env.for_agent(&["CODEX_HOME"], false)),
            [
                "ANTHROPIC_API_KEY",
                "CODEX_HOME",
                "HOME",
                "HTTPS_PROXY",
                "LC_ALL"
            ]
        );
        for vars in [
            env.for_agent(&[], true),
            env.for_agent(&[], false),
            env.for_gate(),
        ] {
            assert!(!names(&vars)
                .iter()
                .any(|k| k.contains("AWS") || k.contains("RANDOM")));
        }
        assert_eq!(env.path(), Some("/usr/bin"));
    }
}

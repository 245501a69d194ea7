#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The loader: precedence of the layers, and each class of error with its message. No test
//! touches the process environment: each hands in its own [`Environment`].

use super::*;

fn home_with(toml: Option<&str>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    if let Some(t) = toml {
        std::fs::write(dir.path().join("config.toml"), t).unwrap();
    }
    dir
}

fn env(pairs: &[(&str, &str)]) -> Environment {
    Environment::from_pairs(pairs.iter().copied())
}

fn load(
    home: &tempfile::TempDir,
    e: &[(&str, &str)],
    flags: &Flags,
) -> Result<Config, ConfigError> {
    Config::load_with(home.path(), &env(e), flags)
}

fn err(home: &tempfile::TempDir, e: &[(&str, &str)], flags: &Flags) -> ConfigError {
    let e = load(home, e, flags).expect_err("the configuration should be refused");
    let text = e.to_string();
    assert!(!text.contains('\n'), "one line: {text:?}");
    e
}

#[test]
fn defaults_without_a_file() {
    let home = home_with(None);
    let c = load(&home, &[], &Flags::default()).unwrap();
    assert_eq!(c.slots, 4);
    assert_eq!(c.sandbox, SandboxMode::Auto);
    assert_eq!(c.permissions, PermissionPolicy::Ask);
    assert_eq!(c.on_interrupt, OnInterrupt::Resume);
    assert_eq!(c.stop_grace, Duration::from_secs(5));
    assert_eq!(c.stall_timeout, Some(DEFAULT_STALL_TIMEOUT));
    assert_eq!(c.task_timeout, None);
    assert!(c.builtin_prices);
    assert_eq!(c.claude_bin, None);
    assert!(!c.upstreams.gateway_on(), "no key, no gateway");
}

#[test]
fn file_beats_default_env_beats_file_flag_beats_env() {
    let home = home_with(Some(
        "slots = 6\nsandbox = \"worktree\"\nclaude_bin = \"/file/claude\"\n\
         [models]\nworker = \"file-model\"\njudge = \"file-judge\"\n",
    ));
    let none = Flags::default();
    let c = load(&home, &[], &none).unwrap();
    assert_eq!((c.slots, c.sandbox), (6, SandboxMode::Worktree));
    assert_eq!(c.worker_model.as_deref(), Some("file-model"));

    let vars = [
        ("DROVER_SLOTS", "7"),
        ("DROVER_SANDBOX", "overlay"),
        ("DROVER_WORKER_MODEL", "env-model"),
        ("DROVER_CODEX_BIN", "/env/codex"),
        // Blank counts as unset: the file's value stays.
        ("DROVER_CLAUDE_BIN", " "),
    ];
    let c = load(&home, &vars, &none).unwrap();
    assert_eq!((c.slots, c.sandbox), (7, SandboxMode::Overlay));
    assert_eq!(c.worker_model.as_deref(), Some("env-model"));
    assert_eq!(
        c.judge_model.as_deref(),
        Some("file-judge"),
        "a sibling key stays"
    );
    assert_eq!(c.claude_bin.as_deref(), Some("/file/claude"));
    assert_eq!(
        c.agent_binary(BinarySetting::Codex).as_deref(),
        Some("/env/codex")
    );
    assert_eq!(
        c.agent_binary(BinarySetting::Claude).as_deref(),
        Some("/file/claude")
    );

    let flags = Flags {
        slots: Some(8),
        sandbox: Some("auto".into()),
        ..Flags::default()
    };
    let c = load(&home, &vars, &flags).unwrap();
    assert_eq!((c.slots, c.sandbox), (8, SandboxMode::Auto));
}

#[test]
fn a_model_that_looks_like_a_number_stays_text() {
    let home = home_with(None);
    let c = load(&home, &[("DROVER_WORKER_MODEL", "123")], &Flags::default()).unwrap();
    assert_eq!(c.worker_model.as_deref(), Some("123"));
}

#[test]
fn an_unreadable_file_is_an_error_not_an_empty_config() {
    let home = home_with(None);
    std::fs::create_dir(home.path().join("config.toml")).unwrap();
    let e = err(&home, &[], &Flags::default());
    assert!(matches!(e, ConfigError::Unreadable { .. }), "{e:?}");
    let path = home.path().join("config.toml").display().to_string();
    assert!(
        e.to_string().starts_with(&format!("cannot read {path}: ")),
        "{e}"
    );
    assert!(e.hint().contains("remove it"), "{}", e.hint());
}

#[test]
fn a_file_that_is_not_utf8_is_named() {
    let home = home_with(None);
    std::fs::write(home.path().join("config.toml"), b"slots = 4\n\xff\xfe\n").unwrap();
    let e = err(&home, &[], &Flags::default());
    assert!(matches!(e, ConfigError::NotUtf8 { .. }), "{e:?}");
    assert!(e.to_string().contains("config.toml: not UTF-8"), "{e}");
}

#[test]
fn bad_toml_names_the_file_and_the_line() {
    let home = home_with(Some("slots = 4\n\nsandbox = \n"));
    let e = err(&home, &[], &Flags::default());
    assert!(matches!(e, ConfigError::Syntax { line: 3, .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains("config.toml: invalid TOML at line 3"),
        "{e}"
    );
    assert!(e.hint().starts_with("fix "), "{}", e.hint());
}

#[test]
fn a_wrong_type_names_the_file_and_the_key() {
    let home = home_with(Some("slots = \"many\"\n"));
    let e = err(&home, &[], &Flags::default());
    let path = home.path().join("config.toml");
    match &e {
        ConfigError::Invalid {
            origin: Origin::File(p),
            message,
        } => {
            assert_eq!(p, &path);
            assert!(message.starts_with("slots: "), "{message}");
            assert!(message.contains("many"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_unknown_key_is_refused() {
    let home = home_with(Some("slot = 4\n"));
    let e = err(&home, &[], &Flags::default());
    assert!(e.to_string().contains("slot"), "{e}");
    assert!(e.to_string().contains("config.toml"), "{e}");
    let home = home_with(Some("[models]\nwroker = \"x\"\n"));
    assert!(err(&home, &[], &Flags::default())
        .to_string()
        .contains("wroker"));
}

#[test]
fn a_bad_value_names_its_layer() {
    let home = home_with(Some("task_timeout = \"soon\"\n"));
    let e = err(&home, &[], &Flags::default());
    let text = e.to_string();
    assert!(
        text.contains("config.toml: task_timeout = \"soon\""),
        "{text}"
    );
    assert!(text.contains("\"1h30m\""), "{text}");

    let home = home_with(Some("sandbox = \"worktree\"\n"));
    let e = err(&home, &[("DROVER_SANDBOX", "bogus")], &Flags::default());
    assert!(
        matches!(&e, ConfigError::Invalid { origin: Origin::Env(v), .. } if v == "DROVER_SANDBOX"),
        "{e:?}"
    );
    assert!(
        e.to_string().contains("use auto, overlay or worktree"),
        "{e}"
    );
    assert_eq!(e.hint(), "fix or unset DROVER_SANDBOX");

    let e = err(&home, &[("DROVER_SLOTS", "lots")], &Flags::default());
    assert!(
        e.to_string()
            .starts_with("environment variable DROVER_SLOTS: "),
        "{e}"
    );

    let zero = Flags {
        slots: Some(0),
        ..Flags::default()
    };
    let e = err(&home, &[], &zero);
    assert!(
        matches!(&e, ConfigError::Invalid { origin: Origin::Flag(f), .. } if f == "--slots"),
        "{e:?}"
    );

    let home = home_with(Some("permissions = \"sometimes\"\n"));
    assert!(err(&home, &[], &Flags::default())
        .to_string()
        .contains("use ask, allow or deny"));
    let home = home_with(Some("stop_grace_secs = -1\n"));
    assert!(err(&home, &[], &Flags::default())
        .to_string()
        .contains("stop_grace_secs = -1"));
    let home = home_with(Some(
        "[gateway.prices.\"m\"]\ninput = -1.0\noutput = 1.0\ncache_read = 0.1\ncache_write = 1.0\n",
    ));
    assert!(err(&home, &[], &Flags::default())
        .to_string()
        .contains(r#"gateway.prices."m".input = -1"#));
}

#[test]
fn upstreams_come_from_the_environment_handed_in() {
    let home = home_with(None);
    let c = load(
        &home,
        &[
            ("ANTHROPIC_API_KEY", "sk-secret"),
            ("ANTHROPIC_BASE_URL", "http://proxy"),
            ("OPENAI_BASE_URL", "http://oai/v1"),
            ("DROVER_OPENAI_BASE_URL", "http://own/v1"),
            ("DROVER_GATEWAY_PORT", "4111"),
            ("CLAUDE_CONFIG_DIR", "/cc"),
            ("HOME", "/home/u"),
        ],
        &Flags::default(),
    )
    .unwrap();
    let up = &c.upstreams;
    assert!(up.gateway_on(), "a key turns the gateway on");
    assert_eq!(up.anthropic_base, "http://proxy");
    assert_eq!(up.openai_base, "http://own/v1", "DROVER_ wins");
    assert_eq!(up.gateway_port, Some(4111));
    assert_eq!(c.claude_config_dir.as_deref(), Some(Path::new("/cc")));
    assert_eq!(
        c.direct_judge_endpoint(),
        Some(("http://proxy".to_string(), "sk-secret".to_string()))
    );
    assert!(!format!("{c:?}").contains("sk-secret"), "keys never print");

    let c = load(
        &home,
        &[
            ("ANTHROPIC_API_KEY", "k"),
            ("DROVER_GATEWAY", "off"),
            ("HOME", "/home/u"),
        ],
        &Flags::default(),
    )
    .unwrap();
    assert!(!c.upstreams.gateway_on());
    assert_eq!(
        c.upstreams.anthropic_base,
        drover_gateway::DEFAULT_ANTHROPIC_BASE
    );
    assert_eq!(
        c.claude_config_dir.as_deref(),
        Some(Path::new("/home/u/.claude"))
    );
    let c = load(&home, &[("DROVER_GATEWAY", "on")], &Flags::default()).unwrap();
    assert!(c.upstreams.gateway_on(), "on without a key");

    let e = err(&home, &[("DROVER_GATEWAY_PORT", "http")], &Flags::default());
    assert!(e.to_string().contains("DROVER_GATEWAY_PORT"), "{e}");
}

#[test]
fn pass_env_adds_names_to_the_childrens_allow_list_but_never_a_provider_key() {
    let home = home_with(Some("pass_env = [\"MY_TOOL_DIR\"]\n"));
    let c = load(
        &home,
        &[("MY_TOOL_DIR", "/t"), ("AWS_SECRET_ACCESS_KEY", "s")],
        &Flags::default(),
    )
    .unwrap();
    let gate: Vec<String> = c.inherited.for_gate().into_iter().map(|(k, _)| k).collect();
    assert_eq!(gate, ["MY_TOOL_DIR"]);
    let home = home_with(Some("pass_env = [\"ANTHROPIC_API_KEY\"]\n"));
    let e = err(&home, &[], &Flags::default()).to_string();
    assert!(e.contains("pass_env") && e.contains("provider"), "{e}");
    let home = home_with(Some("pass_env = [\"A-B\"]\n"));
    assert!(err(&home, &[], &Flags::default())
        .to_string()
        .contains("not a variable name"));
}

#[test]
fn the_sandbox_table_fills_the_confinement() {
    let home = home_with(Some(
        "[sandbox]\nkind = \"worktree\"\nisolation = \"none\"\n\
         ro_paths = [\"/opt/tools\", \"~/.cargo/../.rustup\"]\nrw_paths = [\"/var/cache/x\"]\n\
         egress = [\"Registry.npmjs.org:443\", \"[::1]:8080\", \"10.0.0.1:3128\", \"*.crates.io:443\"]\n\
         memory = \"2G\"\ncpus = 1.5\npids = 512\n",
    ));
    let c = load(&home, &[("HOME", "/home/u")], &Flags::default()).unwrap();
    assert_eq!(c.sandbox, SandboxMode::Worktree);
    let k = &c.confinement;
    assert_eq!(k.isolation, drover_types::Isolation::None);
    assert_eq!(
        k.ro_paths,
        [
            PathBuf::from("/opt/tools"),
            PathBuf::from("/home/u/.rustup")
        ]
    );
    assert_eq!(k.rw_paths, [PathBuf::from("/var/cache/x")]);
    assert_eq!(
        k.egress,
        [
            "registry.npmjs.org:443",
            "[::1]:8080",
            "10.0.0.1:3128",
            "*.crates.io:443"
        ]
    );
    assert_eq!(k.limits.memory_bytes, Some(2 << 30));
    assert_eq!(k.limits.cpus, Some(1.5));
    assert_eq!(k.limits.pids, Some(512));
}

#[test]
fn without_a_sandbox_table_agents_are_confined_without_limits() {
    let c = load(&home_with(None), &[], &Flags::default()).unwrap();
    assert_eq!(c.confinement, Confinement::default());
    assert_eq!(c.confinement.isolation, drover_types::Isolation::Full);
}

#[test]
fn the_string_form_is_the_tables_kind_and_overrides_keep_the_other_keys() {
    let c = load(
        &home_with(Some("sandbox = \"worktree\"\n")),
        &[],
        &Flags::default(),
    )
    .unwrap();
    assert_eq!(c.sandbox, SandboxMode::Worktree);
    assert_eq!(c.confinement.isolation, drover_types::Isolation::Full);

    let home = home_with(Some(
        "[sandbox]\nkind = \"worktree\"\nisolation = \"none\"\npids = 64\n",
    ));
    let c = load(&home, &[("DROVER_SANDBOX", "overlay")], &Flags::default()).unwrap();
    assert_eq!(c.sandbox, SandboxMode::Overlay);
    assert_eq!(c.confinement.isolation, drover_types::Isolation::None);
    assert_eq!(c.confinement.limits.pids, Some(64));

    let flags = Flags {
        sandbox: Some("auto".into()),
        ..Flags::default()
    };
    let c = load(&home, &[("DROVER_SANDBOX_ISOLATION", "full")], &flags).unwrap();
    assert_eq!(c.sandbox, SandboxMode::Auto);
    assert_eq!(c.confinement.isolation, drover_types::Isolation::Full);
    assert_eq!(c.confinement.limits.pids, Some(64));

    let e = err(
        &home,
        &[],
        &Flags {
            sandbox: Some("bogus".into()),
            ..Flags::default()
        },
    );
    assert!(
        matches!(&e, ConfigError::Invalid { origin: Origin::Flag(f), .. } if f == "--sandbox"),
        "{e:?}"
    );
}

#[test]
fn bad_sandbox_values_name_the_file_the_key_and_what_to_write() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "egress = [\"registry.npmjs.org\"]",
            "sandbox.egress = \"registry.npmjs.org\": no port",
            "host:port",
        ),
        (
            "egress = [\"example.org:0\"]",
            "sandbox.egress = \"example.org:0\": port",
            "1-65535",
        ),
        (
            "egress = [\"example.org:70000\"]",
            "sandbox.egress",
            "1-65535",
        ),
        (
            "egress = [\"http://x.org:443\"]",
            "sandbox.egress",
            "not a host name",
        ),
        (
            "egress = [\"a b:443\"]",
            "sandbox.egress",
            "not a host name",
        ),
        (
            "egress = [\"127.1:80\"]",
            "sandbox.egress = \"127.1:80\"",
            "all four parts",
        ),
        ("egress = [\"*.:443\"]", "sandbox.egress", "not a host name"),
        (
            "memory = \"lots\"",
            "sandbox.memory = \"lots\": give a size",
            "2G",
        ),
        ("memory = \"12K\"", "sandbox.memory", "at least 1M"),
        ("cpus = 0", "sandbox.cpus", "number of CPUs"),
        ("pids = 0", "sandbox.pids = 0", "at least 1 process"),
        (
            "isolation = \"partial\"",
            "sandbox.isolation = \"partial\"",
            "\"none\"",
        ),
        (
            "kind = \"docker\"",
            "unknown sandbox mode \"docker\"",
            "overlay",
        ),
        (
            "ro_paths = [\"relative/dir\"]",
            "sandbox.ro_paths = \"relative/dir\"",
            "absolute",
        ),
        ("isolaton = \"none\"", "unknown field", "isolaton"),
        ("pids = \"many\"", "sandbox.pids", "invalid type"),
    ];
    for (line, want, also) in cases {
        let home = home_with(Some(&format!("[sandbox]\n{line}\n")));
        let e = err(&home, &[], &Flags::default());
        let text = e.to_string();
        let file = home.path().join("config.toml").display().to_string();
        assert!(text.starts_with(&format!("{file}: ")), "{line}: {text}");
        assert!(text.contains(want), "{line}: {text}");
        assert!(text.contains(also), "{line}: {text}");
        assert!(e.hint().contains("config.toml"), "{}", e.hint());
    }
    let home = home_with(None);
    let e = err(
        &home,
        &[("DROVER_SANDBOX_ISOLATION", "off")],
        &Flags::default(),
    );
    assert!(
        matches!(&e, ConfigError::Invalid { origin: Origin::Env(v), .. } if v == "DROVER_SANDBOX_ISOLATION"),
        "{e:?}"
    );
    assert_eq!(e.hint(), "fix or unset DROVER_SANDBOX_ISOLATION");
}

#[test]
fn no_exposed_path_may_reach_drover_home() {
    let home = home_with(None);
    let root = home.path().canonicalize().unwrap();
    for p in [
        root.clone(),
        root.join("tasks"),
        root.join("x/../gateway.key"),
        root.parent().unwrap().to_path_buf(),
        PathBuf::from("/"),
    ] {
        for key in ["ro_paths", "rw_paths"] {
            std::fs::write(
                home.path().join("config.toml"),
                format!("[sandbox]\n{key} = [{:?}]\n", p.display().to_string()),
            )
            .unwrap();
            let e = err(&home, &[], &Flags::default()).to_string();
            assert!(e.contains(&format!("sandbox.{key}")), "{e}");
            assert!(e.contains("overlaps DROVER_HOME"), "{e}");
        }
    }
}

#[test]
fn drover_lease_secs_is_a_number() {
    let home = home_with(None);
    let c = load(&home, &[("DROVER_LEASE_SECS", "3")], &Flags::default()).unwrap();
    assert_eq!(c.lease_secs, 3);
}

#[test]
fn a_bad_database_url_is_one_line_naming_the_variable_and_never_the_password() {
    let home = home_with(None);
    for url in [
        "postgres://drover:pa55word@db:notaport/drover",
        "mysql://drover:pa55word@db/drover",
    ] {
        let e = err(&home, &[("DROVER_DATABASE_URL", url)], &Flags::default()).to_string();
        assert!(
            e.contains("DROVER_DATABASE_URL") && e.contains("database_url"),
            "{e}"
        );
        assert!(!e.contains("pa55word") && !e.contains('\n'), "{e}");
    }
    let ok = load(
        &home,
        &[(
            "DROVER_DATABASE_URL",
            "postgres://drover:pa55word@db:5432/drover",
        )],
        &Flags::default(),
    )
    .unwrap();
    assert_eq!(
        ok.database_url.map(|u| u.expose().to_string()).as_deref(),
        Some("postgres://drover:pa55word@db:5432/drover")
    );
}

#[test]
fn the_otlp_headers_stay_in_the_daemon() {
    let home = home_with(None);
    let vars = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "authorization=Bearer%20otlp-s3cret",
        ),
    ];
    let c = load(&home, &vars, &Flags::default()).unwrap();
    let otel = c.otel.as_ref().expect("exporter on");
    assert_eq!(otel.traces.as_ref().unwrap().headers.len(), 1);
    assert!(!format!("{c:?}").contains("otlp-s3cret"));
    for env in [
        c.inherited.for_gate(),
        c.inherited.for_agent(&[], false),
        c.inherited.for_agent(&[], true),
    ] {
        assert!(env
            .iter()
            .all(|(k, v)| !k.starts_with("OTEL_") && !v.contains("s3cret")));
    }
    let home = home_with(Some("pass_env = [\"OTEL_EXPORTER_OTLP_HEADERS\"]\n"));
    let e = err(&home, &vars, &Flags::default()).to_string();
    assert!(e.contains("pass_env") && e.contains("collector"), "{e}");
}

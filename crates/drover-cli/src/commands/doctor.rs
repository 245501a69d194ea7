//! `drover doctor`: what works on this machine, and what to do about what does not.

use crate::client::{drover_home, Client};
use crate::error::Result;
use drover_agents::BinarySetting;
use serde_json::json;

use super::doctor_check::Check;

fn version_of(program: &str, arg: &str) -> std::result::Result<String, String> {
    match std::process::Command::new(program).arg(arg).output() {
        Ok(o) if o.status.success() => Ok(String::from_utf8_lossy(&o.stdout).trim().to_string()),
        Ok(o) => Err(format!(
            "{program} {arg} exited {}: {}",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!("{program}: {e}")),
    }
}

pub async fn doctor(json: bool) -> Result<i32> {
    let home = drover_home();
    let mut checks = vec![];
    let writable = std::fs::create_dir_all(&home).and_then(|_| {
        let probe = home.join(".doctor");
        std::fs::write(&probe, b"ok")?;
        std::fs::remove_file(probe)
    });
    checks.push(Check {
        name: "home",
        ok: writable.is_ok(),
        detail: format!(
            "{}{}",
            home.display(),
            writable.err().map(|e| format!(": {e}")).unwrap_or_default()
        ),
        hint: Some("set DROVER_HOME to a writable directory".into()),
    });
    let git = version_of("git", "--version");
    checks.push(Check {
        name: "git",
        ok: git.is_ok(),
        detail: git.unwrap_or_else(|e| e),
        hint: Some("install git (drover shells out to it)".into()),
    });
    let cfg = drover_daemon::Config::load(&home).ok();
    let mode = cfg.as_ref().map(|c| c.sandbox).unwrap_or_default();
    let sandboxes = drover_sandbox::Sandboxes::new(&home, mode);
    checks.push(Check {
        name: "sandbox",
        ok: true,
        detail: format!("{}: {}", sandboxes.kind(), sandboxes.mode_reason()),
        hint: None,
    });
    let isolation_checks = isolation_checks(cfg.as_ref());
    let isolation_essential: Vec<&'static str> = isolation_checks
        .iter()
        .filter(|(_, essential)| *essential)
        .map(|(c, _)| c.name)
        .collect();
    checks.extend(isolation_checks.into_iter().map(|(c, _)| c));
    // The limits part's probe: which controllers a task's cgroup gets here (informative: a
    // task asking for a limit this host cannot enforce fails on its own, saying so).
    let cg = drover_cgroup::probe(&home);
    let names = |v: &[drover_cgroup::Controller]| {
        v.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", ")
    };
    checks.push(Check {
        name: "cgroups",
        ok: cg.missing.is_empty(),
        detail: match (cg.version, cg.missing.is_empty()) {
            (None, _) => {
                "no usable cgroup hierarchy: --memory/--cpus/--pids cannot be enforced".into()
            }
            (Some(v), true) => format!("{v:?}: {}", names(&cg.working)),
            (Some(v), false) => format!(
                "{v:?}: {} work; missing {} (limits on them cannot be enforced)",
                names(&cg.working),
                names(&cg.missing)
            ),
        },
        hint: cg.remedy,
    });
    checks.push(store_check(cfg.as_ref(), &home).await);
    checks.extend(agent_checks(cfg.as_ref()));
    checks.extend(super::doctor_forges::forge_checks(cfg.as_ref()).await);
    checks.push(price_check(&home));
    if let Some(check) = listen_check(cfg.as_ref()) {
        checks.push(check);
    }
    if let Some(cfg) = &cfg {
        // Where OpenTelemetry goes (docs/design.md §10), never its headers.
        checks.push(Check {
            name: "opentelemetry",
            ok: true,
            detail: drover_daemon::config::OtelSettings::describe(cfg.otel.as_ref()),
            hint: None,
        });
    }
    let client = Client::new(home.clone());
    let daemon = client.get::<drover_types::DaemonStatus>("/v1/status").await;
    checks.push(Check {
        name: "daemon",
        ok: true,
        detail: match daemon {
            Ok(s) => format!(
                "running, pid {}, {} slots, sandbox {}",
                s.pid, s.slots, s.sandbox_mode
            ),
            Err(_) => "not running (any drover command starts it)".into(),
        },
        hint: None,
    });
    let essential_ok = checks
        .iter()
        .filter(|c| {
            matches!(c.name, "home" | "git" | "store") || isolation_essential.contains(&c.name)
        })
        .all(|c| c.ok);
    if json {
        let v: Vec<_> = checks
            .iter()
            .map(|c| json!({ "check": c.name, "ok": c.ok, "detail": c.detail, "hint": if c.ok { None } else { c.hint.clone() } }))
            .collect();
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        for c in &checks {
            println!(
                "{} {:<14} {}",
                if c.ok { "ok  " } else { "FAIL" },
                c.name,
                c.detail
            );
            if !c.ok {
                if let Some(h) = &c.hint {
                    println!("     {:<14} hint: {h}", "");
                }
            }
        }
    }
    Ok(if essential_ok { 0 } else { 1 })
}

/// The store (docs/design.md §8): SQLite in `DROVER_HOME`, or the PostgreSQL database of
/// `database_url` — reachable or not, and this daemon's worker name. The URL's password is never
/// shown (only host and port).
async fn store_check(cfg: Option<&drover_daemon::Config>, home: &std::path::Path) -> Check {
    let (Some(cfg), Some(url)) = (cfg, cfg.and_then(|c| c.database_url.as_ref())) else {
        return Check {
            name: "store",
            ok: true,
            detail: format!("sqlite: {}", drover_daemon::Home::new(home).db().display()),
            hint: None,
        };
    };
    let probe = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        drover_store::PgStore::probe(url.expose()),
    )
    .await;
    let (ok, detail) = match probe {
        Ok(Ok(at)) => (true, format!("postgresql at {at}")),
        Ok(Err(e)) => (false, format!("postgresql: {e}")),
        Err(_) => (false, "postgresql: no answer within 10 s".to_string()),
    };
    Check {
        name: "store",
        ok,
        detail: format!(
            "{detail}; worker {}, lease {}s, {} slots",
            cfg.worker_name, cfg.lease_secs, cfg.slots
        ),
        hint: Some(
            "check DROVER_DATABASE_URL (database_url): host, port, user, password and database"
                .into(),
        ),
    }
}

/// The team server's listener (docs/design.md §7), when `listen` is set: plain HTTP on an
/// address other than loopback is allowed but flagged (keys and prompts in the clear).
fn listen_check(cfg: Option<&drover_daemon::Config>) -> Option<Check> {
    let listen = cfg?.listen.as_ref()?;
    let exposed = listen.exposed_without_tls();
    Some(Check {
        name: "listen",
        ok: !exposed,
        detail: match (&listen.tls, exposed) {
            (Some(_), _) => format!("https://{} (TLS)", listen.addr),
            (None, false) => format!("http://{} (loopback only)", listen.addr),
            (None, true) => format!(
                "http://{} without TLS: API keys and prompts cross the network in the clear",
                listen.addr
            ),
        },
        hint: Some(
            "set tls_cert and tls_key (PEM), or listen on 127.0.0.1 behind a TLS proxy".into(),
        ),
    })
}

/// Isolation (docs/design.md §11): the configured `sandbox.isolation`, then one line per feature
/// the jail needs, from the same probe the daemon runs at start. With `isolation = "full"` a
/// missing required feature is essential (the daemon starts no task); with `"none"` the lines
/// only inform.
fn isolation_checks(cfg: Option<&drover_daemon::Config>) -> Vec<(Check, bool)> {
    let isolation = cfg.map(|c| c.confinement.isolation).unwrap_or_default();
    let full = isolation == drover_types::Isolation::Full;
    let report = drover_shim::probe::probe();
    let mut out = vec![(
        Check {
            name: "isolation",
            ok: !full || report.first_missing().is_none(),
            detail: match (full, report.first_missing()) {
                (true, None) => "full: agents run confined (sandbox.isolation)".into(),
                (true, Some(f)) => format!(
                    "full, but {} is missing: the daemon starts no task",
                    f.feature.name()
                ),
                (false, _) => {
                    "none (sandbox.isolation = \"none\"): agents run unconfined, on purpose".into()
                }
            },
            hint: Some(
                "fix what the lines below say, or set `isolation = \"none\"` under [sandbox] in \
                 config.toml to run agents unconfined on purpose"
                    .into(),
            ),
        },
        full,
    )];
    for f in report.findings {
        out.push((
            Check {
                name: f.feature.check_name(),
                ok: f.ok || !f.required,
                detail: if f.ok || f.required {
                    f.detail
                } else {
                    format!("{} (optional)", f.detail)
                },
                hint: f.remedy,
            },
            full && f.required,
        ));
    }
    out
}

/// The models the pinned agent CLIs ask for when no `--model` is given (measured by
/// `drover-gateway/tests/cli_models.rs`).
const AGENT_DEFAULT_MODELS: &[(&str, &str)] = &[
    ("claude-opus-5-5", "Claude Code's default"),
    ("gpt-6.1-sol", "Codex's default"),
];

/// Every default model must have a price, or a dollar budget refuses all of its requests.
fn price_check(home: &std::path::Path) -> Check {
    let cfg = match drover_daemon::Config::load(home) {
        Ok(c) => c,
        Err(e) => {
            return Check {
                name: "prices",
                ok: false,
                detail: e.to_string(),
                hint: Some(format!("fix {}", home.join("config.toml").display())),
            }
        }
    };
    let prices = cfg.price_table();
    let mut wanted: Vec<(String, &str)> = AGENT_DEFAULT_MODELS
        .iter()
        .map(|(m, why)| (m.to_string(), *why))
        .collect();
    let alias = |m: &String| cfg.aliases.get(m).cloned().unwrap_or_else(|| m.clone());
    if let Some(m) = &cfg.worker_model {
        wanted.push((alias(m), "models.worker"));
    }
    if let Some(m) = &cfg.judge_model {
        wanted.push((alias(m), "models.judge"));
    }
    let missing: Vec<String> = wanted
        .iter()
        .filter(|(m, _)| prices.get(m).is_none())
        .map(|(m, why)| format!("{m} ({why})"))
        .collect();
    let names: Vec<&str> = wanted.iter().map(|(m, _)| m.as_str()).collect();
    Check {
        name: "prices",
        ok: missing.is_empty(),
        detail: if missing.is_empty() {
            format!("default models priced: {}", names.join(", "))
        } else {
            format!(
                "no price for {}: a dollar budget refuses every request for them",
                missing.join(", ")
            )
        },
        hint: wanted
            .iter()
            .find(|(m, _)| prices.get(m).is_none())
            .map(|(m, _)| {
                format!(
                    "add [gateway.prices.\"{m}\"] input/output/cache_read/cache_write (USD per million tokens) to {}",
                    home.join("config.toml").display()
                )
            }),
    }
}

/// Each agent: found or not, its version, and what it needs. Agents are optional: a missing one
/// is reported, not fatal. The binaries are the daemon's (`claude_bin`/`codex_bin`, from
/// config.toml or `DROVER_*_BIN`); with a config that does not load (the prices check says
/// why), the names on PATH.
fn agent_checks(cfg: Option<&drover_daemon::Config>) -> Vec<Check> {
    let bin = |setting: BinarySetting, name: &str| {
        cfg.and_then(|c| c.agent_binary(setting))
            .unwrap_or_else(|| name.to_string())
    };
    let claude_bin = bin(BinarySetting::Claude, "claude");
    let codex_bin = bin(BinarySetting::Codex, "codex");
    let claude = version_of(&claude_bin, "--version");
    let codex = version_of(&codex_bin, "--version");
    let found = |r: &std::result::Result<String, String>, bin: &str, needs: &str| match r {
        Ok(v) => format!("found {bin}: {v}; needs {needs}"),
        Err(e) => format!("not found ({e}); needs {needs}"),
    };
    let claude_hint = "npm install -g @anthropic-ai/claude-code, or set DROVER_CLAUDE_BIN";
    vec![
        Check {
            name: "agent claude",
            ok: claude.is_ok(),
            detail: found(
                &claude,
                &claude_bin,
                "ANTHROPIC_API_KEY (claude -p bills API credits; see docs/agents.md)",
            ),
            hint: Some(claude_hint.into()),
        },
        Check {
            name: "agent claude-bg",
            ok: claude.is_ok(),
            detail: found(
                &claude,
                &claude_bin,
                "a Claude login (claude --bg bills the subscription) or a gateway/ANTHROPIC_BASE_URL",
            ),
            hint: Some(claude_hint.into()),
        },
        Check {
            name: "agent codex",
            ok: codex.is_ok(),
            detail: found(
                &codex,
                &codex_bin,
                "OPENAI_API_KEY (+ OPENAI_BASE_URL for a Responses-API endpoint) or a codex login",
            ),
            hint: Some("npm install -g @openai/codex, or set DROVER_CODEX_BIN".into()),
        },
        Check {
            name: "agent command",
            ok: true,
            detail: "found /bin/sh; needs --cmd".into(),
            hint: None,
        },
    ]
}

//! `drover doctor`: what works on this machine, and what to do about what does not.

use crate::client::{drover_home, Client};
use crate::error::Result;
use serde_json::json;

struct Check {
    name: &'static str,
    ok: bool,
    detail: String,
    hint: Option<String>,
}

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
    let mode = drover_daemon::Config::load(&home)
        .map(|c| c.sandbox)
        .unwrap_or_default();
    let sandboxes = drover_sandbox::Sandboxes::new(&home, mode);
    checks.push(Check {
        name: "sandbox",
        ok: true,
        detail: format!("{}: {}", sandboxes.kind(), sandboxes.mode_reason()),
        hint: None,
    });
    let claude_bin = std::env::var("DROVER_CLAUDE_BIN")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "claude".into());
    let claude = version_of(&claude_bin, "--version");
    checks.push(Check {
        name: "agent claude",
        ok: claude.is_ok(),
        detail: match &claude {
            Ok(v) => {
                format!("{claude_bin}: {v}; needs ANTHROPIC_API_KEY (or a login) for the real API")
            }
            Err(e) => e.clone(),
        },
        hint: Some("npm install -g @anthropic-ai/claude-code, or set DROVER_CLAUDE_BIN".into()),
    });
    let sh = version_of("/bin/sh", "-c").map(|_| "/bin/sh".to_string());
    checks.push(Check {
        name: "agent command",
        ok: true,
        detail: sh.unwrap_or_else(|_| "/bin/sh".into()),
        hint: None,
    });
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
        .filter(|c| matches!(c.name, "home" | "git"))
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

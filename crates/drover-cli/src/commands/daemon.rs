//! `drover daemon [--foreground] [--slots N]`, `daemon stop [--stop-tasks]`, `daemon status`.

use crate::cli::{DaemonAction, DaemonArgs};
use crate::client::{drover_home, Client};
use crate::error::{Context, Result};
use std::time::Duration;

fn flags(args: &DaemonArgs) -> drover_daemon::Flags {
    drover_daemon::Flags {
        slots: args.slots,
        sandbox: args.sandbox.clone(),
        listen: args.listen.clone(),
        tls_cert: args.tls_cert.clone(),
        tls_key: args.tls_key.clone(),
        web_listen: args.web_listen.clone(),
    }
}

/// The daemon's configuration: the one place the CLI hands the daemon its environment.
fn config(args: &DaemonArgs) -> Result<drover_daemon::Config> {
    let home = drover_home();
    std::fs::create_dir_all(&home)
        .context(format!("cannot create DROVER_HOME {}", home.display()))
        .with_hint("set DROVER_HOME to a writable directory")?;
    let env = drover_daemon::Environment::process();
    Ok(drover_daemon::Config::load_with(&home, &env, &flags(args))?)
}

pub fn foreground(args: DaemonArgs) -> Result<i32> {
    let cfg = config(&args)?;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DROVER_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let shutdown = drover_daemon::CancellationToken::new();
    rt.spawn(cancel_on_signal(shutdown.clone()));
    rt.block_on(drover_daemon::run(cfg, shutdown))?;
    Ok(0)
}

/// SIGTERM or SIGINT stop the daemon (agents keep running under their shims).
async fn cancel_on_signal(shutdown: drover_daemon::CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!("no SIGTERM handler ({e}); stop the daemon with `drover daemon stop`");
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    shutdown.cancel();
}

pub async fn background(args: DaemonArgs) -> Result<i32> {
    let client = Client::new(drover_home());
    match args.action {
        Some(DaemonAction::Stop { stop_tasks }) => {
            if !client.ping().await {
                eprintln!("drover: no daemon is running for {}", client.home.display());
                return Ok(0);
            }
            let pid = std::fs::read_to_string(client.home.join("daemon.pid")).ok();
            let body = drover_types::StopDaemonRequest { stop_tasks };
            let v: serde_json::Value = client.post("/v1/daemon/stop", &body).await?;
            // Wait until it is gone, so a following `drover …` starts a fresh one.
            for _ in 0..400 {
                if !client.ping().await {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            if let Some(pid) = pid.and_then(|p| p.trim().parse::<i32>().ok()) {
                for _ in 0..400 {
                    // SAFETY: signal 0 only checks that the process exists.
                    if unsafe { libc::kill(pid, 0) } != 0 {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
            }
            let n = v
                .get("stopped_tasks")
                .and_then(|s| s.as_array())
                .map(|a| a.len())
                .unwrap_or(0);
            if stop_tasks {
                eprintln!("drover: daemon stopped ({n} tasks stopped first)");
            } else {
                eprintln!("drover: daemon stopped; running tasks continue under their shims");
            }
            Ok(0)
        }
        Some(DaemonAction::Status { json }) => {
            match client.get::<drover_types::DaemonStatus>("/v1/status").await {
                Ok(s) => {
                    if json {
                        println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default());
                    } else {
                        println!(
                            "running: pid {}, {} of {} slots used, {} queued, sandbox {} ({})",
                            s.pid, s.running, s.slots, s.queued, s.sandbox_mode, s.sandbox_reason
                        );
                    }
                    Ok(0)
                }
                Err(_) => {
                    println!("not running ({})", client.home.display());
                    Ok(3)
                }
            }
        }
        None => {
            if client.ping().await {
                let s: drover_types::DaemonStatus = client.get("/v1/status").await?;
                eprintln!("drover: the daemon is already running (pid {})", s.pid);
                return Ok(0);
            }
            let pid = client.start_daemon(&flags(&args), &[]).await?;
            println!("{pid}");
            Ok(0)
        }
    }
}

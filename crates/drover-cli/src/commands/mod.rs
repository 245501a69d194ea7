//! One module per command group; [`dispatch`] picks one.

mod agents;
mod audit;
mod batch;
mod bench;
mod bench_api;
mod bench_dispatch;
mod bench_isolation;
mod bench_repo;
mod bench_web;
pub mod bg_follow;
mod daemon;
mod demo;
mod doctor;
mod doctor_check;
mod doctor_forges;
pub mod key;
mod lock;
mod logs;
mod metrics;
mod multi_repo;
mod pool;
mod remote;
mod tasks;
pub mod team;
mod web;
mod workers;

use crate::cli::{Cli, Command};
use crate::error::{Context, Result};

pub fn dispatch(cli: Cli) -> Result<i32> {
    match cli.command {
        // The shim runs no async runtime: it must stay small.
        Command::Shim { dir } => Ok(drover_shim::run::run(&dir)),
        Command::Jail { args } => Ok(drover_shim::jail::main_args(&args)),
        Command::Daemon(args) if args.foreground && args.action.is_none() => {
            daemon::foreground(args)
        }
        other => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("tokio runtime")?;
            rt.block_on(run(other))
        }
    }
}

async fn run(cmd: Command) -> Result<i32> {
    remote::refuse_local_only(&cmd)?;
    match cmd {
        Command::Run(args) => tasks::run(args).await,
        Command::Ls { all, json } => tasks::ls(all, json).await,
        Command::Show { id, json } => tasks::show(&id, json).await,
        Command::Wait { ids, json } => tasks::wait(&ids, json).await,
        Command::Send {
            id,
            message,
            allow,
            deny,
        } => tasks::send(&id, message, allow, deny).await,
        Command::Stop { id } => tasks::stop(&id).await,
        Command::Rm { id } => tasks::rm(&id).await,
        Command::Logs { id, follow, json } => logs::logs(&id, follow, json).await,
        Command::Attach { id } => logs::attach(&id).await,
        Command::Agents => agents::agents().await,
        Command::Pool { action } => pool::pool(action).await,
        Command::Batch { action } => batch::batch(action).await,
        Command::Usage { by, json } => pool::usage(by, json).await,
        Command::Metrics => metrics::metrics().await,
        Command::Audit(args) => audit::audit(args).await,
        Command::Team { action } => team::team(action).await,
        Command::Key { action } => key::key(action).await,
        Command::Lock { name, slots, cmd } => lock::lock(&name, slots, &cmd).await,
        Command::Workers { json } => workers::workers(json).await,
        Command::Web { open } => web::web(open).await,
        Command::Daemon(args) => daemon::background(args).await,
        Command::Doctor { json } => doctor::doctor(json).await,
        Command::FakeProvider { scenarios, port } => {
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            drover_fake_provider::run_cli(&scenarios, addr)
                .await
                .context("fake provider")?;
            Ok(0)
        }
        Command::Bench(args) => bench::bench(args).await,
        Command::Demo(args) => demo::demo(args).await,
        Command::ClaudeBgFollow(args) => bg_follow::follow(args).await,
        Command::Shim { .. } | Command::Jail { .. } => Ok(2),
    }
}

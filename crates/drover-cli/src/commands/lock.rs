//! `drover lock NAME [--slots N] -- CMD…`: run CMD while holding a host-wide build lock. Inside a
//! sandbox the agent's environment (DROVER_HOME, DROVER_TASK_ID, PATH) is enough to reach the
//! daemon. The lock is held by this process's connection: if it dies, the lock is released.

use crate::client::Client;
use crate::error::{CliError, Result};

pub async fn lock(name: &str, slots: usize, cmd: &[String]) -> Result<i32> {
    let client = Client::connect().await?;
    let holder = std::env::var("DROVER_TASK_ID").unwrap_or_default();
    let path = format!("/v1/locks/{name}?slots={slots}&holder={holder}");
    let held = client.hold(&path).await?;
    let status = std::process::Command::new(&cmd[0]).args(&cmd[1..]).status();
    drop(held);
    match status {
        Ok(s) => Ok(s.code().unwrap_or(1)),
        Err(e) => Err(CliError::input(format!("{}: {e}", cmd[0]))),
    }
}

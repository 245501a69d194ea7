//! `drover workers [--json]`: the workers sharing the daemon's store (docs/design.md §8): one
//! on SQLite (the daemon itself), every daemon on the database with PostgreSQL. The host
//! owner's only (a key over TCP gets 403).

use crate::client::Client;
use crate::error::Result;
use drover_types::WorkerInfo;

pub async fn workers(json: bool) -> Result<i32> {
    let client = Client::connect().await?;
    let workers: Vec<WorkerInfo> = client.get("/v1/workers").await?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&workers).unwrap_or_default()
        );
    } else {
        print!("{}", crate::format::workers_table(&workers));
    }
    Ok(0)
}

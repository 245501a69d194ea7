//! `drover metrics`: the daemon's Prometheus metrics (`GET /metrics`), as the scraper gets them
//! (OpenMetrics text), over the local socket or, with `DROVER_URL`, with the API key (a
//! `usage:read` key sees its own team's series only).

use crate::client::Client;
use crate::error::Result;

pub async fn metrics() -> Result<i32> {
    let client = Client::connect().await?;
    let mut out = std::io::stdout().lock();
    client.download("/metrics", &mut out).await?;
    Ok(0)
}

//! Runs the fake provider: `cargo run -p drover-fake-provider --example fake_provider -- FILE [PORT]`.

use std::net::SocketAddr;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let file = args
        .next()
        .ok_or("usage: fake_provider SCENARIOS.json [PORT]")?;
    let port: u16 = args.next().map(|p| p.parse()).transpose()?.unwrap_or(0);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    drover_fake_provider::run_cli(std::path::Path::new(&file), addr).await?;
    Ok(())
}

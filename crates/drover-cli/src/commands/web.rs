//! `drover web [--open]`: a one-time login URL for the web dashboard (docs/design.md §10),
//! printed alone on stdout. The local daemon's is on its loopback listener (the host owner's
//! session); with `DROVER_URL` the team server makes one on its listener, bound to
//! `DROVER_API_KEY`. The URL works once, for two minutes.
//!
//! `--open` also hands it to `$BROWSER` (else `xdg-open`) as an argument: that command line is
//! visible to other users of the host (`ps`) while it runs, which is why the token in it works
//! only once and only briefly — the browser spends it at once.

use crate::client::Client;
use crate::error::{CliError, Result};
use drover_types::WebLogin;

pub async fn web(open: bool) -> Result<i32> {
    let client = Client::connect().await?;
    let login: WebLogin = client.post("/v1/web/login", &serde_json::json!({})).await?;
    println!("{}", login.url);
    if open {
        open_browser(&login.url)?;
    }
    Ok(0)
}

/// Starts `$BROWSER` (its first entry, as `prog args…`) or `xdg-open` with `url` as the last
/// argument; does not wait for it.
fn open_browser(url: &str) -> Result<()> {
    let browser = std::env::var("BROWSER")
        .ok()
        .and_then(|b| b.split(':').next().map(str::to_string))
        .filter(|b| !b.trim().is_empty());
    let words: Vec<String> = match &browser {
        Some(b) => b.split_whitespace().map(str::to_string).collect(),
        None => vec!["xdg-open".into()],
    };
    let Some((prog, args)) = words.split_first() else {
        return Ok(());
    };
    std::process::Command::new(prog)
        .args(args)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .map_err(|e| {
            CliError::input(format!("cannot start {prog}: {e}"))
                .hint("open the URL printed above yourself, or set BROWSER")
        })?;
    Ok(())
}

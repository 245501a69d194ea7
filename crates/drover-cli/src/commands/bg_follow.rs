//! `drover claude-bg-follow` (hidden): the agent process of a `claude-bg` task. The follower
//! itself is `drover_agents::claude_bg::follow`, next to the adapter that reads its lines; this
//! is its entry: its arguments (`cli::FollowArgs`) and its environment (where Claude keeps its
//! sessions).

use crate::cli::FollowArgs;
use crate::error::{CliError, Kind, Result};
use drover_agents::claude_bg::follow;
use std::path::PathBuf;

pub async fn follow(args: FollowArgs) -> Result<i32> {
    let claude_config = std::env::var_os("CLAUDE_CONFIG_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".claude")))
        .ok_or_else(|| CliError::input("claude-bg: neither CLAUDE_CONFIG_DIR nor HOME is set"))?;
    let args = follow::FollowArgs {
        task: args.task,
        claude: args.claude,
        model: args.model,
        resume: args.resume,
        claude_config,
        settings: follow::settings(|k| std::env::var(k).ok().filter(|v| !v.is_empty())),
    };
    // A follower that cannot start (no signal handlers) is drover's failure, not the input's.
    follow::follow(args)
        .await
        .map_err(|e| CliError::from_source(Kind::Internal, e))
}

//! `--protect` in requests: compile the globs (a bad one is a 400), warn about globs that match
//! nothing at the base commit.

use super::ApiErr;
use crate::engine::Engine;
use drover_sandbox::{InvalidGlob, Protect, Resolved};

pub fn compile(globs: &[String]) -> Result<Protect, ApiErr> {
    Protect::new(globs).map_err(|e| {
        ApiErr::new(
            drover_types::ApiErrorKind::Invalid,
            e.to_string(),
            Some(InvalidGlob::HINT),
        )
    })
}

/// One warning per glob of `protect` that matches no file of the base commit.
pub async fn unmatched(engine: &Engine, resolved: &Resolved, protect: &Protect) -> Vec<String> {
    let short = resolved.commit.get(..12).unwrap_or(&resolved.commit);
    match engine
        .sandboxes
        .unmatched_globs(&resolved.repo_dir, &resolved.commit, protect)
        .await
    {
        Ok(globs) => globs
            .into_iter()
            .map(|g| format!("--protect {g:?} matches no file at the base commit {short}"))
            .collect(),
        Err(e) => vec![format!(
            "could not list the files of the base commit {short} to check --protect: {e}"
        )],
    }
}

//! `drover run --repo A --repo B …` (docs/design.md §9): a multi-repo task's repositories, each
//! taken like a single `--repo` (a local directory becomes its absolute path).

use crate::error::{CliError, Result};

/// The most repositories one task holds (the daemon checks the same).
const MAX_REPOS: usize = 16;

/// `(repo, repos)` for the request: the first repository (the current directory when none is
/// given), and every one when there are several (else empty: an ordinary task). Several
/// repositories with `--protect`, or more than 16, are refused before anything is sent.
pub fn repos_for(given: Vec<String>, protect: &[String]) -> Result<(String, Vec<String>)> {
    if given.len() <= 1 {
        return Ok((super::remote::repo_for(given.into_iter().next())?, vec![]));
    }
    if given.len() > MAX_REPOS {
        return Err(CliError::input(format!(
            "{} --repo given; a task holds at most {MAX_REPOS} repositories",
            given.len()
        ))
        .hint("split the work into several tasks, or one task per repository with `drover batch start`"));
    }
    if !protect.is_empty() {
        return Err(CliError::input(
            "--protect applies to one repository; it cannot be used with several --repo",
        )
        .hint("leave --protect out, or run one task per repository"));
    }
    let repos = given
        .into_iter()
        .map(|r| super::remote::repo_for(Some(r)))
        .collect::<Result<Vec<_>>>()?;
    Ok((repos[0].clone(), repos))
}

//! Input checks every client gets: the daemon's API applies them to each request, and the CLI
//! applies the same ones before it sends anything (so a refusal reads the same either way).
//! Each returns a one-line message naming the flag and what to give instead.

/// `--max-usd`: a finite number of dollars above zero (NaN, infinities and negatives would
/// silently mean "no budget" or "never run").
pub fn max_usd(v: Option<f64>) -> Result<(), String> {
    match v {
        Some(x) if !x.is_finite() || x <= 0.0 => Err(format!(
            "--max-usd {x}: give a positive number of dollars, e.g. --max-usd 0.50"
        )),
        _ => Ok(()),
    }
}

/// `--max-tokens`: at least 1 (a budget of 0 tokens could never let a request through).
pub fn max_tokens(v: Option<u64>) -> Result<(), String> {
    match v {
        Some(0) => {
            Err("--max-tokens 0: give a positive number of tokens, e.g. --max-tokens 200000".into())
        }
        _ => Ok(()),
    }
}

/// A prompt: one rule for every agent — empty or blank is refused.
pub fn prompt(p: &str) -> Result<(), String> {
    if p.trim().is_empty() {
        Err(
            "the prompt is empty: give PROMPT, --prompt-file FILE, or `-` to read it from stdin"
                .into(),
        )
    } else {
        Ok(())
    }
}

/// The longest prompt an agent that takes it as a command-line argument (`codex`) can get: one
/// argument may not exceed 128 KiB.
pub const ARG_PROMPT_MAX: usize = 100 * 1024;

/// A prompt for `agent`: [`prompt`], and at most `arg_max` bytes when the agent takes it as a
/// command-line argument (its adapter says so).
pub fn prompt_for(agent: &str, arg_max: Option<usize>, p: &str) -> Result<(), String> {
    prompt(p)?;
    match arg_max {
        Some(max) if p.len() > max => Err(format!(
            "the prompt is {} KB: the {agent} agent takes it as a command-line argument, at most {} KB",
            p.len() / 1024,
            max / 1024
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_that_would_silently_mean_no_budget_are_refused() {
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -3.0, 0.0, -0.0] {
            assert!(max_usd(Some(bad)).is_err(), "{bad} accepted");
        }
        assert!(max_usd(Some(0.02)).is_ok());
        assert!(max_usd(None).is_ok());
        assert!(max_tokens(Some(0)).is_err());
        assert!(max_tokens(Some(1)).is_ok());
        assert!(prompt(" \n\t").is_err());
        assert!(prompt("x").is_ok());
    }
}

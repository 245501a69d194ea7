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

/// A memory size (`--memory`, config `sandbox.memory`): a whole number of bytes, or a number
/// with a binary unit — `K`, `M`, `G`, `T` (also `KB`/`KiB`…, any case; 1K = 1024 bytes, as in
/// docker and systemd): `512M`, `2G`, `1.5G`. At least 1 MiB (less could not even start a
/// shell). The error is a phrase to put after the flag or key.
pub fn memory_size(s: &str) -> Result<u64, String> {
    let bad = || format!("{s:?} is not a memory size: write e.g. 512M, 2G or 1.5G");
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit = unit.trim().to_ascii_lowercase();
    let shift = match unit.trim_end_matches("ib").trim_end_matches('b') {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return Err(bad()),
    };
    if num.is_empty() || (unit == "b" && shift != 0) {
        return Err(bad());
    }
    let bytes = if num.contains('.') {
        let v: f64 = num.parse().map_err(|_| bad())?;
        let b = v * (1u64 << shift) as f64;
        if !b.is_finite() || b >= u64::MAX as f64 {
            return Err(bad());
        }
        b as u64
    } else {
        let v: u64 = num.parse().map_err(|_| bad())?;
        v.checked_mul(1u64 << shift).ok_or_else(bad)?
    };
    if bytes < 1 << 20 {
        return Err(format!(
            "{s:?} is below 1M: give at least 1M, e.g. 512M or 2G"
        ));
    }
    Ok(bytes)
}

/// CPUs (`--cpus`, config `sandbox.cpus`): a number of cores above zero, e.g. 0.5 or 2.
pub fn cpus(v: f64) -> Result<f64, String> {
    if (0.01..=4096.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!(
            "{v} is not a CPU count: give a number of cores, e.g. 0.5, 1.5 or 4"
        ))
    }
}

/// Processes (`--pids`, config `sandbox.pids`): at least 1.
pub fn pids(v: u64) -> Result<u64, String> {
    if v == 0 {
        Err("0 processes could not start the agent: give e.g. 512".into())
    } else {
        Ok(v)
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
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

    #[test]
    fn memory_sizes() {
        assert_eq!(memory_size("2G"), Ok(2 << 30));
        assert_eq!(memory_size("512m"), Ok(512 << 20));
        assert_eq!(memory_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(memory_size(" 64 MB "), Ok(64 << 20));
        assert_eq!(memory_size("1048576"), Ok(1 << 20));
        for bad in [
            "",
            "G",
            "2X",
            "-1G",
            "1.2.3G",
            "99999999999T",
            "1K",
            "100",
            "2 G B",
        ] {
            let e = memory_size(bad).expect_err(bad);
            assert!(!e.contains('\n'), "{e}");
        }
        assert!(cpus(1.5).is_ok());
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(cpus(bad).is_err(), "{bad}");
        }
        assert!(pids(0).is_err());
        assert_eq!(pids(512), Ok(512));
    }
}

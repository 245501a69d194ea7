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

/// A dollar amount given with `flag` (a team's `--max-usd-per-day`, `--max-usd-per-task`): a
/// finite number above zero, like `--max-usd`.
pub fn dollars(flag: &str, v: Option<f64>) -> Result<(), String> {
    match v {
        Some(x) if !x.is_finite() || x <= 0.0 => Err(format!(
            "{flag} {x}: give a positive number of dollars, e.g. {flag} 5"
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

/// The smallest `--memory` accepted: below it nothing (not even a shell) starts.
pub const MEMORY_MIN: u64 = 1 << 20;

/// `--memory SIZE`: bytes, or a number with a unit `K`, `M`, `G`, `T` (binary: `512M` is
/// 512 MiB; `KiB`/`MB`/`GiB`… spell the same; case-insensitive), e.g. `512M`, `2G`, `1.5GiB`.
pub fn parse_memory(s: &str) -> Result<u64, String> {
    let bad =
        || format!("--memory {s}: give a size such as 512M, 2G or 1.5GiB (bytes without a unit)");
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let num: f64 = num.parse().map_err(|_| bad())?;
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit.trim_end_matches('b').trim_end_matches('i');
    let scale: u64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => return Err(bad()),
    };
    let bytes = num * scale as f64;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(bad());
    }
    let bytes = bytes.round() as u64;
    memory(Some(bytes)).map_err(|e| format!("--memory {s}: {e}"))?;
    Ok(bytes)
}

/// A memory limit in bytes (the API's `memory_bytes`): at least [`MEMORY_MIN`].
pub fn memory(v: Option<u64>) -> Result<(), String> {
    match v {
        Some(b) if b < MEMORY_MIN => Err(format!(
            "a memory limit of {b} bytes is too small: give at least 1M (e.g. --memory 512M)"
        )),
        _ => Ok(()),
    }
}

/// `--cpus N`: a finite number of CPUs, at least 0.01 (e.g. 0.5, 2).
pub fn cpus(v: Option<f64>) -> Result<(), String> {
    match v {
        Some(c) if !c.is_finite() || c < 0.01 => Err(format!(
            "--cpus {c}: give a number of CPUs of at least 0.01, e.g. --cpus 0.5 or --cpus 2"
        )),
        _ => Ok(()),
    }
}

/// `--cpus` as typed on the command line.
pub fn parse_cpus(s: &str) -> Result<f64, String> {
    let c: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("--cpus {s}: give a number of CPUs, e.g. --cpus 0.5 or --cpus 2"))?;
    cpus(Some(c))?;
    Ok(c)
}

/// `--pids N`: how many processes and threads at once, at least 1.
pub fn pids(v: Option<u64>) -> Result<(), String> {
    match v {
        Some(0) => Err("--pids 0: give at least 1 process, e.g. --pids 256".into()),
        _ => Ok(()),
    }
}

/// `--pids` as typed on the command line.
pub fn parse_pids(s: &str) -> Result<u64, String> {
    let p: u64 = s
        .trim()
        .parse()
        .map_err(|_| format!("--pids {s}: give a whole number of processes, e.g. --pids 256"))?;
    pids(Some(p))?;
    Ok(p)
}

/// A task's or pool's limits (API bodies): each as its flag's check.
pub fn limits(l: &crate::Limits) -> Result<(), String> {
    memory(l.memory_bytes)?;
    cpus(l.cpus)?;
    pids(l.pids)
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

    #[test]
    #[allow(clippy::unwrap_used)]
    fn sizes_cpus_and_pids_parse_and_bad_ones_say_what_to_give() {
        assert_eq!(parse_memory("512M"), Ok(512 << 20));
        assert_eq!(parse_memory("2G"), Ok(2 << 30));
        assert_eq!(parse_memory("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_memory("64mb"), Ok(64 << 20));
        assert_eq!(parse_memory("1048576"), Ok(1 << 20));
        for bad in ["", "M", "12X", "-5M", "1.2.3G", "100", "1e30G", "nanM"] {
            let e = parse_memory(bad).unwrap_err();
            assert!(e.starts_with("--memory "), "{bad}: {e}");
        }
        assert_eq!(parse_cpus("0.5"), Ok(0.5));
        for bad in ["0", "-1", "nan", "inf", "x", "0.001"] {
            assert!(parse_cpus(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_pids("64"), Ok(64));
        for bad in ["0", "-1", "1.5", "x"] {
            assert!(parse_pids(bad).is_err(), "{bad}");
        }
        assert!(limits(&crate::Limits {
            memory_bytes: Some(10),
            ..Default::default()
        })
        .is_err());
    }
}

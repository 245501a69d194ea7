//! `drover audit [--since T] [--team T] [--json] [--limit N]` and `drover audit export --format
//! ndjson|csv [--since T] [--team T]` (docs/design.md §7, docs/accounting.md).

use crate::cli::{AuditAction, AuditArgs};
use crate::client::{segment, Client};
use crate::error::{CliError, Result};
use crate::format;
use drover_types::{AuditPage, AuditRecord};

pub async fn audit(args: AuditArgs) -> Result<i32> {
    if let Some(AuditAction::Export {
        format,
        since,
        team,
    }) = args.action
    {
        let query = query(since.as_deref(), team.as_deref())?;
        let client = Client::connect().await?;
        let mut out = std::io::stdout().lock();
        client
            .download(
                &format!("/v1/audit/export?format={format}{query}"),
                &mut out,
            )
            .await?;
        return Ok(0);
    }
    let query = query(args.since.as_deref(), args.team.as_deref())?;
    let client = Client::connect().await?;
    let mut records: Vec<AuditRecord> = Vec::new();
    let mut cursor = String::new();
    loop {
        let page: AuditPage = client
            .get(&format!("/v1/audit?cursor={cursor}{query}"))
            .await?;
        records.extend(page.records);
        if args.limit.is_some_and(|n| records.len() >= n) {
            records.truncate(args.limit.unwrap_or_default());
            break;
        }
        match page.next_cursor {
            Some(next) if next != cursor => cursor = next,
            _ => break,
        }
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&records).unwrap_or_default()
        );
    } else {
        print!("{}", format::audit_table(&records));
    }
    Ok(0)
}

/// `&since=…&team=…` for the given filters; an age in `since` becomes the time that long ago.
fn query(since: Option<&str>, team: Option<&str>) -> Result<String> {
    let mut q = String::new();
    if let Some(s) = since {
        q.push_str(&format!(
            "&since={}",
            segment(&since_time(s, chrono::Utc::now())?)
        ));
    }
    if let Some(t) = team {
        q.push_str(&format!("&team={}", segment(t)));
    }
    Ok(q)
}

/// `--since`: an RFC 3339 time (to UTC), or an age — a number and `s`, `m`, `h`, `d` or `w` —
/// before `now`.
pub fn since_time(s: &str, now: chrono::DateTime<chrono::Utc>) -> Result<String> {
    let fmt =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(fmt(t.with_timezone(&chrono::Utc)));
    }
    let bad = || {
        CliError::input(format!("--since {s:?}: not an RFC 3339 time or an age"))
            .hint("e.g. --since 24h, --since 7d or --since 2026-03-01T00:00:00Z")
    };
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (n, unit) = s.split_at(split);
    let n: i64 = n.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(bad()),
    };
    let age = n
        .checked_mul(secs)
        .and_then(chrono::Duration::try_seconds)
        .ok_or_else(bad)?;
    now.checked_sub_signed(age).map(fmt).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn since_takes_times_and_ages() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-03-08T12:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(since_time("24h", now).unwrap(), "2026-03-07T12:00:00.000Z");
        assert_eq!(since_time("7d", now).unwrap(), "2026-03-01T12:00:00.000Z");
        assert_eq!(since_time("90s", now).unwrap(), "2026-03-08T11:58:30.000Z");
        assert_eq!(
            since_time("2026-03-01T02:00:00+02:00", now).unwrap(),
            "2026-03-01T00:00:00.000Z"
        );
        for bad in [
            "",
            "h",
            "24",
            "24y",
            "-1h",
            "1.5h",
            "yesterday",
            "99999999999999999999d",
        ] {
            assert!(since_time(bad, now).is_err(), "{bad:?}");
        }
    }
}

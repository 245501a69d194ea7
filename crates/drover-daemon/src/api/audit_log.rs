//! `GET /v1/audit` (the audit log, a page at a time) and `GET /v1/audit/export` (accounting
//! rows of finished tasks as NDJSON or CSV, streamed a page at a time; docs/accounting.md).
//! Both need `audit:read`; a key reads only its own team's (records whose actor is of its team,
//! its team's webhook deliveries included — without the target of a call refused 401/403/404,
//! which may name another team's task; rows of its team's tasks) and naming another team is 403.

use super::auth::Principal;
use super::body::ApiQuery;
use super::ApiErr;
use crate::engine::Engine;
use axum::body::{Body, Bytes};
use axum::extract::{Extension, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use drover_store::{AuditFilter, Store};
use drover_types::{AccountingRow, ApiErrorKind, AuditPage, ExportFormat, Scope};
use serde::Deserialize;
use std::sync::Arc;

/// `GET /v1/audit`'s page size when none is asked for, and the most it gives.
pub const DEFAULT_LIMIT: u32 = 100;
pub const MAX_LIMIT: u32 = 1000;
/// Rows read from the store per chunk of an export.
const EXPORT_PAGE: u32 = 500;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    since: Option<String>,
    team: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    #[serde(default)]
    format: ExportFormat,
    since: Option<String>,
    team: Option<String>,
}

/// `since=` as the store compares it (RFC 3339 in UTC, milliseconds, as `drover_store::now`).
pub fn normalize_since(since: Option<String>) -> Result<Option<String>, ApiErr> {
    let Some(s) = since else { return Ok(None) };
    let t = chrono::DateTime::parse_from_rfc3339(&s).map_err(|_| {
        ApiErr::new(
            ApiErrorKind::Invalid,
            format!("since={s:?} is not an RFC 3339 time"),
            Some("e.g. since=2026-03-01T00:00:00Z (`drover audit --since` also takes 24h, 7d)"),
        )
    })?;
    Ok(Some(
        t.with_timezone(&chrono::Utc)
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    ))
}

/// The team a caller reads: a key's own (naming another is 403), the owner's choice.
pub fn team_view(
    who: &Principal,
    scope: Scope,
    team: Option<String>,
) -> Result<Option<String>, ApiErr> {
    if !who.allows(scope) {
        return Err(ApiErr::new(
            ApiErrorKind::Forbidden,
            format!("forbidden: this key lacks the {scope} scope"),
            Some("ask your team's admin for a key with that scope"),
        ));
    }
    match who.team() {
        None => Ok(team),
        Some(own) => match team {
            Some(t) if t != own => Err(ApiErr::new(
                ApiErrorKind::Forbidden,
                "forbidden: a key reads only its own team's records",
                Some("leave out team=, or use a key of that team"),
            )),
            _ => Ok(Some(own.to_string())),
        },
    }
}

pub async fn list(
    State(engine): State<Arc<Engine>>,
    Extension(who): Extension<Principal>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<AuditPage>, ApiErr> {
    let team = team_view(&who, Scope::AuditRead, q.team)?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let after_seq = match q.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(c.parse::<i64>().map_err(|_| {
            ApiErr::new(
                ApiErrorKind::Invalid,
                format!("cursor={c:?} is not a cursor of this log"),
                Some("pass the next_cursor of the previous page as it was"),
            )
        })?),
    };
    let filter = AuditFilter {
        since: normalize_since(q.since)?,
        team,
        after_seq,
        limit: Some(limit),
        ..Default::default()
    };
    let mut records = engine.store.audit(&filter).await?;
    if who.team().is_some() {
        hide_unseen_targets(&mut records);
    }
    let next_cursor = match records.last() {
        Some(last) if records.len() == limit as usize => Some(last.seq.to_string()),
        _ => None,
    };
    Ok(Json(AuditPage {
        records,
        next_cursor,
    }))
}

/// A key's view of its team's records: a call refused with 401, 403 or 404 may name another
/// team's task or pool (the scope check comes before the team's, and a 404 is "not yours or
/// not there"), so such a record's target is left out; the host owner sees it.
fn hide_unseen_targets(records: &mut [drover_types::AuditRecord]) {
    for r in records {
        if matches!(r.status, 401 | 403 | 404) {
            r.target = None;
        }
    }
}

pub async fn export(
    State(engine): State<Arc<Engine>>,
    Extension(who): Extension<Principal>,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> Result<Response, ApiErr> {
    let filter = AuditFilter {
        since: normalize_since(q.since)?,
        team: team_view(&who, Scope::AuditRead, q.team)?,
        limit: Some(EXPORT_PAGE),
        ..Default::default()
    };
    // The first page is read before answering, so a store error is a proper 500.
    let first = engine.store.accounting(&filter).await?;
    let format = q.format;
    let content_type = match format {
        ExportFormat::Ndjson => "application/x-ndjson",
        ExportFormat::Csv => "text/csv; charset=utf-8",
    };
    let header_row = match format {
        ExportFormat::Csv => Some(Bytes::from(csv_line(
            drover_types::ACCOUNTING_FIELDS
                .iter()
                .map(|f| Some(f.to_string())),
        ))),
        ExportFormat::Ndjson => None,
    };
    let store = engine.store.clone();
    let pages = futures::stream::unfold(
        Pager {
            store,
            filter,
            first: Some(first),
            done: false,
        },
        move |mut p| async move {
            let rows = p.next().await?;
            let chunk = rows.map(|rows| encode(format, &rows));
            Some((chunk, p))
        },
    );
    let body = futures::StreamExt::chain(
        futures::stream::iter(header_row.map(Ok::<_, ExportError>)),
        pages,
    );
    Ok((
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(body),
    )
        .into_response())
}

/// Why an export stopped mid-way (the connection is then cut: a client sees a broken body).
#[derive(Debug, thiserror::Error)]
#[error("export: {0}")]
struct ExportError(#[from] drover_store::StoreError);

/// Reads accounting rows a page at a time, each after the last one's `(finished_at, id)`.
struct Pager {
    store: Arc<dyn Store>,
    filter: AuditFilter,
    first: Option<Vec<AccountingRow>>,
    done: bool,
}

impl Pager {
    async fn next(&mut self) -> Option<Result<Vec<AccountingRow>, ExportError>> {
        if self.done {
            return None;
        }
        let rows = match self.first.take() {
            Some(rows) => rows,
            None => match self.store.accounting(&self.filter).await {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!("accounting export: {e}");
                    self.done = true;
                    return Some(Err(e.into()));
                }
            },
        };
        if rows.len() < EXPORT_PAGE as usize {
            self.done = true;
        }
        match rows.last() {
            Some(last) => {
                self.filter.after_task = Some((
                    last.finished_at.clone().unwrap_or_default(),
                    last.task_id.clone(),
                ));
                Some(Ok(rows))
            }
            None => None,
        }
    }
}

fn encode(format: ExportFormat, rows: &[AccountingRow]) -> Bytes {
    let mut out = String::new();
    for row in rows {
        match format {
            ExportFormat::Ndjson => {
                out.push_str(&serde_json::to_string(row).unwrap_or_default());
                out.push('\n');
            }
            ExportFormat::Csv => out.push_str(&csv_line(csv_cells(row))),
        }
    }
    Bytes::from(out)
}

/// A row's cells in [`drover_types::ACCOUNTING_FIELDS`] order; `None` is an empty cell.
fn csv_cells(r: &AccountingRow) -> Vec<Option<String>> {
    let n = |v: u64| Some(v.to_string());
    // Numbers written as in the NDJSON (`0.0`, `1.5`): one text per value in both formats.
    let f = |v: Option<f64>| v.and_then(|x| serde_json::to_string(&x).ok());
    vec![
        Some(r.schema.to_string()),
        Some(r.task_id.clone()),
        r.created_by.clone(),
        r.team.clone(),
        Some(r.repo.clone()),
        Some(r.agent.clone()),
        r.model.clone(),
        r.started_at.clone(),
        r.finished_at.clone(),
        f(r.duration_s),
        n(r.input_tokens),
        n(r.output_tokens),
        n(r.cache_read_tokens),
        n(r.cache_write_tokens),
        f(r.cost_usd),
        r.verdict.clone(),
        r.error_kind.clone(),
        Some(serde_json::to_string(&r.tags).unwrap_or_else(|_| "{}".into())),
    ]
}

/// One RFC 4180 record (CRLF-terminated): a cell with a comma, quote, CR or LF is quoted, its
/// quotes doubled.
fn csv_line(cells: impl IntoIterator<Item = Option<String>>) -> String {
    let cells: Vec<String> = cells
        .into_iter()
        .map(|c| {
            let c = c.unwrap_or_default();
            if c.contains([',', '"', '\r', '\n']) {
                format!("\"{}\"", c.replace('"', "\"\""))
            } else {
                c
            }
        })
        .collect();
    format!("{}\r\n", cells.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_types::ACCOUNTING_FIELDS;

    fn row() -> AccountingRow {
        AccountingRow {
            schema: 1,
            task_id: "t1".into(),
            created_by: None,
            team: Some("a".into()),
            repo: "/r, \"x\"".into(),
            agent: "command".into(),
            model: None,
            started_at: Some("2026-03-01T00:00:00.000Z".into()),
            finished_at: Some("2026-03-01T00:00:01.500Z".into()),
            duration_s: Some(1.5),
            input_tokens: 3,
            output_tokens: 4,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
            cost_usd: Some(0.25),
            verdict: Some("success".into()),
            error_kind: None,
            tags: [("customer".to_string(), "acme".to_string())].into(),
        }
    }

    #[test]
    fn csv_quotes_as_rfc_4180_and_leaves_nulls_empty() {
        let line = csv_line(csv_cells(&row()));
        assert_eq!(
            line,
            "1,t1,,a,\"/r, \"\"x\"\"\",command,,2026-03-01T00:00:00.000Z,\
             2026-03-01T00:00:01.500Z,1.5,3,4,0,0,0.25,success,,\"{\"\"customer\"\":\"\"acme\"\"}\"\r\n"
        );
        assert_eq!(csv_cells(&row()).len(), ACCOUNTING_FIELDS.len());
        assert_eq!(
            csv_line(ACCOUNTING_FIELDS.iter().map(|f| Some(f.to_string()))),
            format!("{}\r\n", ACCOUNTING_FIELDS.join(","))
        );
    }

    #[test]
    fn a_key_reads_only_its_team() {
        use super::super::auth::KeyPrincipal;
        let key = Principal::Key(KeyPrincipal {
            key_id: "key_a".into(),
            team: "a".into(),
            scopes: vec![Scope::AuditRead],
        });
        assert_eq!(
            team_view(&key, Scope::AuditRead, None).ok(),
            Some(Some("a".into()))
        );
        assert_eq!(
            team_view(&key, Scope::AuditRead, Some("a".into())).ok(),
            Some(Some("a".into()))
        );
        let other = team_view(&key, Scope::AuditRead, Some("b".into()));
        assert!(matches!(other, Err(e) if e.body.kind == ApiErrorKind::Forbidden));
        let lacking = team_view(&key, Scope::UsageRead, None);
        assert!(matches!(lacking, Err(e) if e.body.kind == ApiErrorKind::Forbidden));
        assert_eq!(
            team_view(&Principal::Owner, Scope::AuditRead, Some("b".into())).ok(),
            Some(Some("b".into()))
        );
        assert_eq!(
            team_view(&Principal::Owner, Scope::AuditRead, None).ok(),
            Some(None)
        );
    }

    #[test]
    fn since_is_normalized_to_the_stores_form() {
        assert_eq!(
            normalize_since(Some("2026-03-01T02:00:00+02:00".into())).ok(),
            Some(Some("2026-03-01T00:00:00.000Z".into()))
        );
        assert!(normalize_since(Some("yesterday".into())).is_err());
        assert_eq!(normalize_since(None).ok(), Some(None));
    }
}

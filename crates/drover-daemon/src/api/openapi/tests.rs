#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

/// `(METHOD, path)` of every `.route("…", get(..).post(..))` call in `src`.
fn routes_in_source(src: &str) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    let mut rest = src;
    while let Some(at) = rest.find(".route(") {
        rest = &rest[at + ".route(".len()..];
        let Some(open) = rest.find('"') else { break };
        if !rest[..open].trim().is_empty() {
            // Not a route registration (`.route(` in text or a call without a path literal).
            continue;
        }
        let after = &rest[open + 1..];
        let close = after.find('"').unwrap();
        let path = &after[..close];
        // The call's arguments: up to the `)` that closes `.route(`.
        let mut depth = 1;
        let mut end = 0;
        for (i, c) in after.char_indices().skip(close + 1) {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i;
                        break;
                    }
                }
                _ => {}
            }
        }
        let args = &after[close + 1..end];
        let mut found = false;
        for m in METHODS {
            let pat = format!("{m}(");
            let mut from = 0;
            while let Some(i) = args[from..].find(&pat) {
                let i = from + i;
                let before = args[..i].chars().last();
                // `get(`, `.post(`, `axum::routing::delete(`; not a handler's `x::get(`.
                let routing = args[..i].ends_with("routing::");
                if routing || !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                    out.insert((m.to_uppercase(), path.to_string()));
                    found = true;
                }
                from = i + pat.len();
            }
        }
        assert!(found, "route {path}: no method found in {args:?}");
        rest = &after[end..];
    }
    out
}

fn api_sources() -> Vec<(PathBuf, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api");
    let mut files = vec![];
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            // This document's own `.route(method, path)` list is what is compared.
            if p.ends_with("openapi") || p.ends_with("openapi.rs") {
                continue;
            }
            // The dashboard's pages (`/`, `/ui/*`, `/login`, `/logout`: HTML, not the JSON API).
            if p.ends_with("web/pages.rs") {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let mut text = std::fs::read_to_string(&p).unwrap();
                // Routes are registered by the code, not by its tests.
                if let Some(at) = text.find("#[cfg(test)]") {
                    text.truncate(at);
                }
                files.push((p, text));
            }
        }
    }
    files
}

fn method_name(m: &HttpMethod) -> &'static str {
    match m {
        HttpMethod::Get => "GET",
        HttpMethod::Post => "POST",
        HttpMethod::Put => "PUT",
        HttpMethod::Delete => "DELETE",
        HttpMethod::Patch => "PATCH",
        HttpMethod::Options => "OPTIONS",
        HttpMethod::Head => "HEAD",
        HttpMethod::Trace => "TRACE",
    }
}

#[test]
fn the_scanner_reads_route_lines() {
    let src = r#"
        .route("/v1/a", get(x::list).post(x::create))
        .route(
            "/v1/a/{id}",
            get(x::show).delete(x::remove),
        )
        .route_layer(foo)
        .route("/v1/b", post(b::get))
        .route("/v1/c", axum::routing::delete(c::revoke))
    "#;
    let got = routes_in_source(src);
    let want: BTreeSet<(String, String)> = [
        ("GET", "/v1/a"),
        ("POST", "/v1/a"),
        ("GET", "/v1/a/{id}"),
        ("DELETE", "/v1/a/{id}"),
        ("POST", "/v1/b"),
        ("DELETE", "/v1/c"),
    ]
    .into_iter()
    .map(|(m, p)| (m.to_string(), p.to_string()))
    .collect();
    assert_eq!(got, want);
}

/// Drift (1): the document lists exactly the routes the daemon registers.
#[test]
fn the_document_lists_exactly_the_routes_the_router_registers() {
    let mut registered = BTreeSet::new();
    for (_, text) in api_sources() {
        registered.extend(routes_in_source(&text));
    }
    assert!(
        registered.contains(&("GET".into(), "/v1/tasks/{id}".into())),
        "the scan found no routes: {registered:?}"
    );
    let documented: BTreeSet<(String, String)> = routes()
        .iter()
        .map(|r| (method_name(&r.method).to_string(), r.path.to_string()))
        .collect();
    let missing: Vec<_> = registered.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&registered).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "api/openapi.rs `routes()` and the router disagree.\n registered but not documented: \
         {missing:?}\n documented but not registered: {extra:?}\nadd the route to `routes()` \
         (with its scope, parameters, body and answers), then DROVER_BLESS=1 cargo test -p \
         drover-daemon openapi to rewrite clients/typescript/openapi.json"
    );
    // One operation per (method, path).
    assert_eq!(documented.len(), routes().len());
}

fn committed_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../clients/typescript/openapi.json")
}

/// Drift (2): the TypeScript client's copy is what the daemon serves.
#[test]
fn the_committed_document_is_what_the_daemon_serves() {
    let now = document_json();
    let path = committed_path();
    if std::env::var_os("DROVER_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &now).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    let a: serde_json::Value = serde_json::from_str(&now).unwrap();
    let b: serde_json::Value = serde_json::from_str(&committed).unwrap_or_default();
    assert!(
        a == b,
        "{} is not the document the daemon serves: rewrite it with \
         `DROVER_BLESS=1 cargo test -p drover-daemon openapi`, then regenerate the client's \
         types (`npm run generate` in clients/typescript) and commit both",
        path.display()
    );
}

fn refs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("$ref", serde_json::Value::String(s)) => out.push(s.clone()),
                    _ => refs(x, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

#[test]
fn every_reference_resolves_and_the_basics_hold() {
    let doc: serde_json::Value = serde_json::from_str(&document_json()).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let mut all = vec![];
    refs(&doc, &mut all);
    assert!(all.len() > 20, "{all:?}");
    for r in all {
        let name = r.strip_prefix("#/components/schemas/").unwrap_or(&r);
        assert!(schemas.contains_key(name), "{r} does not resolve");
    }
    // Closed sets are enums of their wire strings.
    assert_eq!(
        doc["components"]["schemas"]["Scope"]["enum"],
        serde_json::json!(Scope::NAMES)
    );
    let states = &doc["components"]["schemas"]["TaskState"]["enum"];
    assert_eq!(states, &serde_json::json!(drover_types::TaskState::NAMES));
    // The bearer scheme, public routes without it, a scope on every operation.
    assert_eq!(
        doc["components"]["securitySchemes"][SECURITY_SCHEME]["scheme"],
        "bearer"
    );
    for r in routes() {
        let m = method_name(&r.method).to_lowercase();
        let o = &doc["paths"][r.path][&m];
        assert_eq!(o["x-drover-scope"], r.access.label(), "{m} {}", r.path);
        match r.access {
            Access::Public => assert_eq!(o["security"], serde_json::json!([])),
            _ => {
                assert_eq!(o["security"][0][SECURITY_SCHEME], serde_json::json!([]));
                for s in ["401", "403"] {
                    assert_eq!(
                        o["responses"][s]["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/ApiError",
                        "{m} {} {s}",
                        r.path
                    );
                }
            }
        }
    }
    let events = &doc["paths"]["/v1/tasks/{id}/events"]["get"]["responses"]["200"]["content"];
    assert!(events.get("text/event-stream").is_some(), "{events:#}");
}

/// The document's scopes are the access table's (`api::access::required`, what TCP enforces).
#[test]
fn the_documented_scopes_are_the_enforced_ones() {
    use crate::api::access::{required, Need};
    for r in routes() {
        let concrete = r.path.replace(['{', '}'], "");
        // As the TCP middleware splits it (`/metrics` is the one route outside `/v1/`).
        let segments = crate::api::access::segments(&concrete).unwrap();
        let method = axum::http::Method::from_bytes(method_name(&r.method).as_bytes()).unwrap();
        let enforced = required(&method, &segments);
        let documented = match r.access {
            Access::Public => Need::Public,
            Access::Scope(s) => Need::Scoped(s),
            Access::Owner => Need::OwnerOnly,
            Access::AnyKey => Need::AnyKey,
        };
        assert_eq!(enforced, Some(documented), "{method} {}", r.path);
    }
}

//! The dashboard's files, compiled into the binary.

/// `(path under /ui/, content type, bytes)` of every file the dashboard loads.
pub const FILES: &[(&str, &str, &str)] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("assets/index.html"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("assets/style.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/app.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/api.js"),
    ),
    (
        "format.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/format.js"),
    ),
    (
        "fleet.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/fleet.js"),
    ),
    (
        "task.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/task.js"),
    ),
    (
        "pools.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/pools.js"),
    ),
    (
        "cost.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/cost.js"),
    ),
];

/// The file at `path` (e.g. `app.js`), if the dashboard has one.
pub fn file(path: &str) -> Option<(&'static str, &'static str)> {
    FILES
        .iter()
        .find(|(p, _, _)| *p == path)
        .map(|(_, ty, body)| (*ty, *body))
}

//! `GET /v1/tasks/{id}/events` as SSE that survives disconnects (docs/design.md §7): a client
//! that drops the connection and comes back with `Last-Event-ID` sees every event once, in
//! order, then an `end` event; a resume point beyond the task's last event is a 400.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;
use serde_json::Value;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// One SSE frame: `id:` (if any), `event:`, `data:`.
#[derive(Debug, Clone)]
struct Frame {
    id: Option<i64>,
    event: String,
    data: String,
}

/// An SSE response read as it arrives over the daemon's socket.
struct Stream {
    sock: UnixStream,
    head: Option<String>,
    raw: Vec<u8>,
    /// De-chunked body bytes not yet cut into frames.
    body: Vec<u8>,
    closed: bool,
}

impl Stream {
    fn open(env: &Env, path: &str, headers: &[(&str, &str)]) -> Stream {
        let mut sock = UnixStream::connect(env.sock()).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut req =
            format!("GET {path} HTTP/1.1\r\nhost: drover\r\naccept: text/event-stream\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        sock.write_all(req.as_bytes()).unwrap();
        Stream {
            sock,
            head: None,
            raw: vec![],
            body: vec![],
            closed: false,
        }
    }

    /// Reads until `want` frames (or the end of the stream), at most 60 s.
    fn frames(&mut self, want: usize) -> Vec<Frame> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut out = vec![];
        loop {
            out.extend(self.cut_frames());
            if out.len() >= want || self.closed {
                return out;
            }
            assert!(
                Instant::now() < deadline,
                "no more SSE frames within 60 s: {out:?}"
            );
            let mut buf = [0u8; 16 << 10];
            match self.sock.read(&mut buf) {
                Ok(0) => self.closed = true,
                Ok(n) => self.raw.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("reading the stream: {e}"),
            }
            self.dechunk();
        }
    }

    fn dechunk(&mut self) {
        if self.head.is_none() {
            let Some(i) = self.raw.windows(4).position(|w| w == b"\r\n\r\n") else {
                return;
            };
            let head = String::from_utf8_lossy(&self.raw[..i]).to_string();
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            assert!(
                head.to_ascii_lowercase().contains("text/event-stream"),
                "{head}"
            );
            self.head = Some(head);
            self.raw.drain(..i + 4);
        }
        // Whole chunks only; a partial one waits for more bytes.
        while let Some(i) = self.raw.windows(2).position(|w| w == b"\r\n") {
            let n = usize::from_str_radix(std::str::from_utf8(&self.raw[..i]).unwrap().trim(), 16)
                .unwrap();
            if n == 0 {
                self.closed = true;
                self.raw.clear();
                return;
            }
            if self.raw.len() < i + 2 + n + 2 {
                return;
            }
            self.body.extend_from_slice(&self.raw[i + 2..i + 2 + n]);
            self.raw.drain(..i + 2 + n + 2);
        }
    }

    fn cut_frames(&mut self) -> Vec<Frame> {
        let mut out = vec![];
        while let Some(i) = self.body.windows(2).position(|w| w == b"\n\n") {
            let chunk = String::from_utf8(self.body[..i].to_vec()).unwrap();
            self.body.drain(..i + 2);
            let field = |name: &str| {
                chunk
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(|v| v.trim_start().to_string())
            };
            // A comment (`:`) alone is a heartbeat, not an event.
            if chunk.lines().all(|l| l.starts_with(':')) {
                continue;
            }
            out.push(Frame {
                id: field("id:").map(|v| v.parse().unwrap()),
                event: field("event:").unwrap_or_default(),
                data: field("data:").unwrap_or_default(),
            });
        }
        out
    }
}

#[test]
fn a_stream_read_across_two_disconnects_sees_every_event_once_in_order_then_end() {
    let env = Env::new();
    let id = env.run_command_task(
        "for i in $(seq 1 300); do echo line-$i; sleep 0.01; done",
        "three hundred lines",
    );
    let path = format!("/v1/tasks/{id}/events");
    let mut seen: Vec<i64> = vec![];
    let mut texts = vec![];
    let mut end = None;
    let mut connections = 0;
    while end.is_none() {
        connections += 1;
        assert!(connections <= 3 || seen.len() > 3, "no progress");
        let last = seen.last().map(|s| s.to_string());
        let headers: Vec<(&str, &str)> = match &last {
            Some(l) => vec![("last-event-id", l.as_str())],
            None => vec![],
        };
        let mut s = Stream::open(&env, &path, &headers);
        // The first two connections are dropped part-way; the third reads to the end.
        let want = if connections <= 2 { 60 } else { usize::MAX };
        for f in s.frames(want) {
            if f.event == "end" {
                assert!(f.id.is_none(), "{f:?}");
                end = Some(serde_json::from_str::<Value>(&f.data).unwrap());
                continue;
            }
            assert!(end.is_none(), "an event after end: {f:?}");
            let seq = f.id.unwrap_or_else(|| panic!("an event without id: {f:?}"));
            let ev: Value = serde_json::from_str(&f.data).unwrap();
            assert_eq!(ev["seq"], seq);
            assert_eq!(ev["kind"], f.event.as_str());
            if f.event == "text" {
                texts.push(ev["data"]["text"].as_str().unwrap().to_string());
            }
            seen.push(seq);
        }
        if connections >= 3 {
            assert!(
                s.closed || end.is_some(),
                "the third stream neither ended nor closed"
            );
        }
        drop(s);
    }
    assert!(
        connections >= 3,
        "the task ended before the stream was dropped twice"
    );
    let end = end.unwrap();
    assert_eq!(end["state"], "succeeded", "{end}");
    let stored = env.events(&id);
    let last = stored.last().unwrap()["seq"].as_i64().unwrap();
    assert_eq!(
        seen,
        (1..=last).collect::<Vec<_>>(),
        "each event once, in order"
    );
    let lines: Vec<String> = (1..=300).map(|i| format!("line-{i}")).collect();
    assert_eq!(texts, lines);

    // A finished task's stream, resumed at its last event: only `end`.
    let mut s = Stream::open(&env, &path, &[("last-event-id", &last.to_string())]);
    let frames = s.frames(usize::MAX);
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0].event, "end");

    // Beyond the end, or not a number: 400 {kind, error, hint}.
    let beyond = (last + 88).to_string();
    for (headers, query, needle) in [
        (
            vec![("last-event-id", beyond.as_str())],
            "",
            format!("Last-Event-ID {beyond} is beyond the task's last event ({last})"),
        ),
        (
            vec![("last-event-id", "banana")],
            "",
            "Last-Event-ID must be".to_string(),
        ),
        (
            vec![],
            "?follow=1&after=100000",
            format!("after 100000 is beyond the task's last event ({last})"),
        ),
        (vec![], "?after=-1", "after -1".to_string()),
    ] {
        let mut h = headers.clone();
        h.push(("accept", "text/event-stream"));
        let (status, _, body) = http(&env, "GET", &format!("{path}{query}"), &h, b"");
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(status, 400, "{v}");
        assert_eq!(v["kind"], "invalid");
        assert!(v["hint"].is_string(), "{v}");
        assert!(
            v["error"].as_str().unwrap().starts_with(needle.as_str()),
            "{v}"
        );
    }
    // Without SSE, the JSON pages of `drover logs` are unchanged.
    let (status, head, body) = http(&env, "GET", &format!("{path}?after=3"), &[], b"");
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase().contains("application/json"),
        "{head}"
    );
    let page: Vec<Value> = serde_json::from_slice(&body).unwrap();
    assert_eq!(page[0]["seq"], 4);
}

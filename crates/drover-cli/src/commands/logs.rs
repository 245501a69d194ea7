//! logs, attach.

use crate::client::Client;
use crate::error::Result;
use crate::format;
use drover_types::{Event, SendRequest, Task};
use std::io::Write;
use std::time::Duration;

fn print_event(e: &Event, json: bool) {
    let mut out = std::io::stdout().lock();
    if json {
        let _ = writeln!(out, "{}", serde_json::to_string(e).unwrap_or_default());
    } else if let Some(line) = format::event(e) {
        let _ = writeln!(out, "{line}");
    }
    let _ = out.flush();
}

pub async fn logs(id: &str, follow: bool, json: bool) -> Result<i32> {
    let path = super::tasks::task_path(id)?;
    let client = Client::connect().await?;
    let task: Task = client.get(&path).await?;
    if !follow {
        print_after(&client, &task.id, 0, json).await?;
        return Ok(0);
    }
    follow_events(&client, &task.id, 0, json).await?;
    Ok(0)
}

/// Prints the stored events after `after`, page by page; returns the last seq printed.
async fn print_after(client: &Client, id: &str, mut after: i64, json: bool) -> Result<i64> {
    loop {
        let evs: Vec<Event> = client
            .get(&format!("/v1/tasks/{id}/events?after={after}"))
            .await?;
        let Some(last) = evs.last() else {
            return Ok(after);
        };
        after = last.seq;
        for e in &evs {
            print_event(e, json);
        }
    }
}

/// Prints events after `after` until the task ends. If the daemon goes away mid-stream (a
/// restart), reconnects and resumes from the last seq printed: nothing twice, nothing missed.
pub async fn follow_events(client: &Client, id: &str, mut after: i64, json: bool) -> Result<i64> {
    let mut failures = 0;
    loop {
        let path = format!("/v1/tasks/{id}/events?follow=true&after={after}");
        let res = client
            .sse(&path, |_, data| {
                if let Ok(e) = serde_json::from_str::<Event>(data) {
                    if e.seq > after {
                        after = e.seq;
                        print_event(&e, json);
                    }
                }
                true
            })
            .await;
        match client.get::<Task>(&format!("/v1/tasks/{id}")).await {
            Ok(t) if t.state.is_terminal() => {
                // Drain anything written after the stream ended.
                return print_after(client, id, after, json).await;
            }
            Ok(_) => failures = 0,
            Err(e) if e.kind == crate::error::Kind::Input => return Err(e),
            Err(e) => {
                failures += 1;
                if failures > 50 {
                    return Err(e);
                }
            }
        }
        if let Err(e) = res {
            if e.kind == crate::error::Kind::Input {
                return Err(e);
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub async fn attach(id: &str) -> Result<i32> {
    let path = super::tasks::task_path(id)?;
    let client = Client::connect().await?;
    let task: Task = client.get(&path).await?;
    let tid = task.id.clone();
    eprintln!(
        "drover: attached to {tid} ({}); type a line to send it, Ctrl-D or Ctrl-C to detach",
        task.state
    );
    let follower = {
        let client = client.clone();
        let tid = tid.clone();
        tokio::spawn(async move { follow_events(&client, &tid, 0, false).await })
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(16);
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut line = String::new();
        loop {
            line.clear();
            match stdin.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if tx.blocking_send(line.trim_end().to_string()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let mut follower = follower;
    loop {
        tokio::select! {
            line = rx.recv() => match line {
                None => break,
                Some(l) if l.trim().is_empty() => {}
                Some(l) => {
                    let req = match l.as_str() {
                        "/allow" => SendRequest { allow: true, ..Default::default() },
                        "/deny" => SendRequest { deny: true, ..Default::default() },
                        _ => SendRequest { message: Some(l), ..Default::default() },
                    };
                    if let Err(e) = client.post::<_, Task>(&format!("/v1/tasks/{tid}/send"), &req).await {
                        e.print();
                    }
                }
            },
            r = &mut follower => {
                if let Ok(Err(e)) = r { return Err(e); }
                let t: Task = client.get(&format!("/v1/tasks/{tid}")).await?;
                eprintln!("drover: task {tid} is {}", t.state);
                return Ok(0);
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    follower.abort();
    eprintln!("drover: detached; task {tid} keeps running (drover attach {tid} to come back)");
    Ok(0)
}

//! `GET /v1/tasks/{id}/raw?stream=stdout|stderr&offset=&len=`: bytes of a task's raw log, e.g.
//! the whole line an event holds only an excerpt of (its `raw: {stream, offset, len}`).
//! Streamed in 64 KiB reads: any length costs the daemon no more memory than that.

use super::body::ApiQuery;
use super::ApiErr;
use crate::engine::Engine;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::Response;
use serde::Deserialize;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawStream {
    Stdout,
    Stderr,
}

#[derive(Deserialize)]
pub struct RawQuery {
    stream: RawStream,
    #[serde(default)]
    offset: u64,
    /// Default: to the end of the log.
    len: Option<u64>,
}

pub async fn raw(
    State(engine): State<Arc<Engine>>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<RawQuery>,
) -> Result<Response, ApiErr> {
    let task = engine.store.find_task(&id).await?;
    let files = engine.home.task(&task.id);
    let path = match q.stream {
        RawStream::Stdout => files.stdout(),
        RawStream::Stderr => files.stderr(),
    };
    let (mut file, size) = match tokio::fs::File::open(&path).await {
        Ok(f) => {
            let size = f.metadata().await.map(|m| m.len()).unwrap_or(0);
            (Some(f), size)
        }
        // The agent has not started (or printed nothing on this stream) yet.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (None, 0),
        // A log the daemon cannot open is its own failure, not the caller's.
        Err(e) => return Err(ApiErr::internal(format!("{}: {e}", path.display()))),
    };
    if q.offset > size {
        return Err(ApiErr::invalid(format!(
            "offset {} is past the end of the log ({size} bytes)",
            q.offset
        )));
    }
    let len = q.len.unwrap_or(u64::MAX).min(size - q.offset);
    if let Some(f) = file.as_mut() {
        f.seek(std::io::SeekFrom::Start(q.offset))
            .await
            .map_err(|e| ApiErr::internal(format!("{}: {e}", path.display())))?;
    }
    let body = futures::stream::unfold(
        (file.map(|f| f.take(len)), vec![0u8; 64 << 10]),
        |(mut r, mut buf)| async move {
            let n = r.as_mut()?.read(&mut buf).await.ok()?;
            if n == 0 {
                return None;
            }
            let chunk = bytes::Bytes::copy_from_slice(&buf[..n]);
            Some((Ok::<_, std::io::Error>(chunk), (r, buf)))
        },
    );
    Response::builder()
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, len)
        .body(Body::from_stream(body))
        .map_err(|e| ApiErr::internal(e.to_string()))
}

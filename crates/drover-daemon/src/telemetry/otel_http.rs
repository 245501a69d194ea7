//! The OTLP exporters' HTTP client: reqwest on the daemon's own tokio runtime.
//!
//! The SDK's batch span processor and periodic metric reader export from threads of their own
//! (no tokio reactor there); each request is spawned onto the daemon's runtime and awaited from
//! that thread. Every request has the export timeout, so an unreachable collector costs those
//! threads at most that long and never touches a task.

use bytes::Bytes;
use http::{Request, Response};
use opentelemetry_http::{HttpClient, HttpError};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct RuntimeClient {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

impl RuntimeClient {
    pub fn new(runtime: tokio::runtime::Handle, timeout: Duration) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .timeout(timeout)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(RuntimeClient { client, runtime })
    }
}

#[async_trait::async_trait]
impl HttpClient for RuntimeClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.client.clone();
        let request: reqwest::Request = request.try_into()?;
        let sent = self.runtime.spawn(async move {
            let response = client.execute(request).await?.error_for_status()?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, headers, body))
        });
        let (status, headers, body) = sent.await??;
        let mut out = Response::builder().status(status).body(body)?;
        *out.headers_mut() = headers;
        Ok(out)
    }
}

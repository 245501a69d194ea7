//! The team server's TCP listener (docs/design.md §7): `drover daemon --listen HOST:PORT
//! [--tls-cert F --tls-key F]`.
//!
//! The same routes as the admin socket behind [`super::access::authenticate`] (every route but
//! `GET /v1/health` and `GET /v1/openapi.json` needs an API key), served by the same loop
//! ([`crate::listen`]: head timeout, connection cap, busy answer), with TLS from rustls (ring)
//! when configured. The bound address is written to `DROVER_HOME/listen.addr` (port 0 picks
//! one) and logged. Plain HTTP on an address other than loopback is allowed, with a warning.

use crate::config::{Listen, TlsFiles};
use crate::engine::Engine;
use crate::DaemonError;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

/// `DROVER_HOME/listen.addr`: the address the TCP listener is bound to (`ip:port`, one line).
pub fn addr_file(home: &Path) -> std::path::PathBuf {
    home.join("listen.addr")
}

/// A bound TCP listener, ready to serve.
pub struct Bound {
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    pub addr: SocketAddr,
}

/// Binds `listen` (and loads its certificate), so a daemon that cannot serve TCP fails at
/// start with one line, before anything else runs.
pub async fn bind(listen: &Listen, home: &Path) -> Result<Bound, DaemonError> {
    let file = addr_file(home);
    // A previous daemon's address is never mistaken for this one's.
    let _ = std::fs::remove_file(&file);
    let tls = match &listen.tls {
        Some(files) => Some(acceptor(files)?),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(listen.addr)
        .await
        .map_err(|e| DaemonError::Listen(format!("cannot listen on {}: {e}", listen.addr)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| DaemonError::Listen(format!("listen {}: {e}", listen.addr)))?;
    std::fs::write(&file, format!("{addr}\n"))
        .map_err(|e| DaemonError::Listen(format!("cannot write {}: {e}", file.display())))?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(
        "team server listening on {scheme}://{addr} (address in {})",
        file.display()
    );
    if listen.exposed_without_tls() {
        tracing::warn!(
            "{addr} is not loopback and has no TLS: API keys and prompts cross the network in \
             the clear; give --tls-cert and --tls-key"
        );
    }
    Ok(Bound {
        listener,
        tls,
        addr,
    })
}

/// rustls with the ring provider, HTTP/1.1 only (the loop serves HTTP/1).
fn acceptor(files: &TlsFiles) -> Result<tokio_rustls::TlsAcceptor, DaemonError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |what: &str, path: &Path, e: &dyn std::fmt::Display| {
        DaemonError::Listen(format!("TLS {what} {}: {e}", path.display()))
    };
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| bad("certificate", &files.cert, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad("certificate", &files.cert, &e))?;
    if certs.is_empty() {
        return Err(bad(
            "certificate",
            &files.cert,
            &"no certificate in the file",
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| bad("key", &files.key, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| DaemonError::Listen(format!("TLS: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| bad("certificate and key", &files.cert, &e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Serves the TCP router on `bound` until the engine stops.
pub async fn serve(engine: Arc<Engine>, bound: Bound) {
    let shutdown = engine.stopping().cancelled_owned();
    let tasks = engine.tasks.clone();
    let app = super::tcp_router(engine);
    crate::listen::serve_with(
        bound.listener,
        bound.tls,
        app,
        shutdown,
        &tasks,
        // Half the daemon's connections at most: a crowd of network clients never takes
        // the file descriptors the owner's socket and the tasks need.
        (crate::listen::connection_cap() / 2).max(32),
    )
    .await;
}

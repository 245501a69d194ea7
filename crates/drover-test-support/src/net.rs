//! The team server over TCP: an in-process daemon that also listens on `127.0.0.1:0` (plain or
//! TLS), raw HTTP/1.1 requests to it (so a test can send what no client would: two
//! `Authorization` headers, a 10 KB header), and a private CA with a server certificate (rcgen).

use crate::daemon::InProcessDaemon;
use drover_daemon::config::{Listen, TlsFiles};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Starts an in-process daemon on `home` that also serves TCP on `127.0.0.1:0` (TLS with
/// `tls`), and returns it with the address it bound (read from `DROVER_HOME/listen.addr`).
pub async fn start_listening(
    home: &Path,
    exe: &Path,
    tls: Option<TlsFiles>,
) -> (InProcessDaemon, SocketAddr) {
    let addr_file = drover_daemon::api::tcp::addr_file(home);
    let daemon = InProcessDaemon::start_with(home, exe, |c| {
        c.listen = Some(Listen {
            addr: "127.0.0.1:0".parse().unwrap(),
            tls,
        });
    })
    .await;
    let mut addr = None;
    crate::poll::eventually("listen.addr", Duration::from_secs(30), || {
        addr = std::fs::read_to_string(&addr_file)
            .ok()
            .and_then(|s| s.trim().parse::<SocketAddr>().ok());
        addr.is_some()
    })
    .await;
    (daemon, addr.unwrap())
}

/// One raw request to `addr` (`connection: close`): status, head, de-chunked body.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    crate::http::exchange(s, method, path, headers, body)
}

/// A request with `Authorization: Bearer KEY` when `key` is given (a JSON body when `body` is
/// not empty): the status and the body as text.
pub fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: &str,
) -> (u16, String) {
    let auth = key.map(|k| format!("Bearer {k}"));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("authorization", a));
    }
    let (status, _, b) = request(addr, method, path, &headers, body.as_bytes());
    (status, String::from_utf8_lossy(&b).into_owned())
}

/// A private CA and a server certificate for `localhost` and `127.0.0.1`, as PEM files in `dir`.
pub struct TestCerts {
    pub ca: PathBuf,
    pub server: TlsFiles,
}

pub fn certs(dir: &Path) -> TestCerts {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
    std::fs::create_dir_all(dir).unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "drover test CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    let paths = TestCerts {
        ca: dir.join("ca.pem"),
        server: TlsFiles {
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
        },
    };
    std::fs::write(&paths.ca, ca.pem()).unwrap();
    std::fs::write(&paths.server.cert, cert.pem()).unwrap();
    std::fs::write(&paths.server.key, key.serialize_pem()).unwrap();
    paths
}

/// A reqwest (rustls) client for the team server at `base` (`http://…` or `https://…`):
/// trusts `ca` (PEM) when given, sends `key` as `Authorization: Bearer` when given.
pub struct Api {
    base: String,
    key: Option<String>,
    http: reqwest::Client,
}

impl Api {
    pub fn new(base: &str, ca: Option<&Path>, key: Option<&str>) -> Api {
        let mut b = reqwest::Client::builder().use_rustls_tls();
        if let Some(ca) = ca {
            let pem = std::fs::read(ca).unwrap();
            b = b.add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap());
        }
        Api {
            base: base.trim_end_matches('/').to_string(),
            key: key.map(str::to_string),
            http: b.build().unwrap(),
        }
    }

    /// One request (a JSON body when given): the status and the body as JSON (`Null` if none).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(k) = &self.key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        )
    }
}

//! Raw HTTP/1.1 over the daemon's Unix socket, for requests the CLI would refuse to send.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// One request over `sock` (`connection: close`): the status, the head and the (de-chunked)
/// body. Reads for at most 60 s.
pub fn request(
    sock: &Path,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let s = UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    exchange(s, method, path, headers, body)
}

/// One request on an open connection (Unix or TCP): see [`request`].
pub fn exchange(
    mut s: impl Read + Write,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nhost: drover\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    // A server may answer (413) before reading the whole body; a broken pipe is fine then.
    let _ = s.write_all(body);
    let mut raw = vec![];
    // The answer is checked below: a cut one has no head and fails the test there.
    let _ = s.read_to_end(&mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer to {method} {path}: {raw:?}"));
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let mut body = raw[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (status, head, body)
}

/// A JSON request over `sock`: the status and the body as text.
pub fn json(sock: &Path, method: &str, path: &str, body: &str) -> (u16, String) {
    let (status, _, b) = request(
        sock,
        method,
        path,
        &[("content-type", "application/json")],
        body.as_bytes(),
    );
    (status, String::from_utf8_lossy(&b).into_owned())
}

/// The payload of a chunked body.
pub fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = vec![];
    while let Some(i) = b.windows(2).position(|w| w == b"\r\n") {
        let n = usize::from_str_radix(std::str::from_utf8(&b[..i]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&b[i + 2..i + 2 + n]);
        b = &b[i + 2 + n + 2..];
    }
    out
}

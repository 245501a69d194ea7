//! The egress proxy against real TCP listeners on 127.0.0.1 standing in for hosts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tokio::net::TcpListener;

#[derive(Default)]
struct Attempts(Mutex<Vec<Attempt>>);

impl Recorder for Attempts {
    fn record(&self, attempt: Attempt) {
        self.0.lock().unwrap().push(attempt);
    }
}

impl Attempts {
    fn all(&self) -> Vec<Attempt> {
        self.0.lock().unwrap().clone()
    }
}

struct Proxy {
    _dir: tempfile::TempDir,
    sock: PathBuf,
    attempts: Arc<Attempts>,
    stop: CancellationToken,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn proxy(allowed: &[String]) -> Proxy {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("egress.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let attempts = Arc::new(Attempts::default());
    let stop = CancellationToken::new();
    let log: Arc<dyn Recorder> = attempts.clone();
    tokio::spawn(serve(
        listener,
        Arc::new(AllowList::parse(allowed).unwrap()),
        log,
        stop.clone(),
        TaskTracker::new(),
    ));
    Proxy {
        _dir: dir,
        sock,
        attempts,
        stop,
    }
}

/// A "host" on 127.0.0.1 that echoes each connection's bytes back, prefixed by `hello`.
async fn echo_host() -> (u16, tokio::sync::mpsc::UnboundedReceiver<()>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let _ = tx.send(());
            tokio::spawn(async move {
                s.write_all(b"hello\n").await.unwrap();
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    (port, rx)
}

/// A "host" that records every byte it receives (until the client closes) and answers nothing.
async fn recording_host() -> (u16, tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut got = vec![];
                let _ = s.read_to_end(&mut got).await;
                let _ = tx.send(got);
            });
        }
    });
    (port, rx)
}

async fn read_until(s: &mut UnixStream, want: &[u8]) -> Vec<u8> {
    let mut got = vec![];
    let mut buf = [0u8; 4096];
    tokio::time::timeout(Duration::from_secs(10), async {
        while memchr::memmem::find(&got, want).is_none() {
            let n = s.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("the proxy answered within 10 s");
    got
}

async fn read_all(s: &mut UnixStream) -> String {
    let mut got = vec![];
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut got))
        .await
        .expect("the proxy closed within 10 s")
        .unwrap();
    String::from_utf8_lossy(&got).to_string()
}

async fn connect(sock: &Path, head: &str) -> UnixStream {
    let mut s = UnixStream::connect(sock).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    s
}

fn connect_head(authority: &str) -> String {
    format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n")
}

#[tokio::test]
async fn an_allowed_authority_connects_and_bytes_flow_both_ways() {
    let (port, mut accepted) = echo_host().await;
    let p = proxy(&[format!("127.0.0.1:{port}")]);
    let mut s = connect(&p.sock, &connect_head(&format!("127.0.0.1:{port}"))).await;
    let got = read_until(&mut s, b"hello\n").await;
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("HTTP/1.1 200 Connection established\r\n\r\n"),
        "{text}"
    );
    accepted.recv().await.unwrap();
    s.write_all(b"ping through the tunnel").await.unwrap();
    let echoed = read_until(&mut s, b"ping through the tunnel").await;
    assert!(memchr::memmem::find(&echoed, b"ping through the tunnel").is_some());
    assert_eq!(
        p.attempts.all(),
        vec![Attempt {
            verdict: Verdict::Allowed,
            authority: Some(format!("127.0.0.1:{port}")),
            reason: None
        }]
    );
}

#[tokio::test]
async fn an_unlisted_authority_is_refused_and_never_connected() {
    let (allowed, _a) = echo_host().await;
    let (unlisted, mut reached) = echo_host().await;
    let p = proxy(&[format!("127.0.0.1:{allowed}")]);
    let mut s = connect(&p.sock, &connect_head(&format!("127.0.0.1:{unlisted}"))).await;
    let text = read_all(&mut s).await;
    assert!(text.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{text}");
    assert!(text.contains("is not allowed (sandbox.egress)"), "{text}");
    let a = p.attempts.all();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].verdict, Verdict::Refused);
    assert_eq!(a[0].authority, Some(format!("127.0.0.1:{unlisted}")));
    assert!(
        reached.try_recv().is_err(),
        "the unlisted host was connected"
    );
}

/// Everything that is not `CONNECT listed-host:port` gets a 403 and nothing is connected.
#[tokio::test]
async fn other_requests_and_bad_authorities_are_refused() {
    let (port, mut reached) = echo_host().await;
    let p = proxy(&[format!("localhost:{port}")]);
    let heads = [
        // Plain HTTP forwarding (and a userinfo in it that must not be logged).
        format!("GET http://user:secret@localhost:{port}/ HTTP/1.1\r\nHost: localhost\r\n\r\n"),
        format!("POST http://localhost:{port}/ HTTP/1.1\r\n\r\n"),
        // The same host by its IP literal, which is not on the list.
        connect_head(&format!("127.0.0.1:{port}")),
        connect_head(&format!("[::1]:{port}")),
        // Malformed authorities.
        connect_head(&format!("user:secret@localhost:{port}")),
        connect_head("localhost"),
        connect_head(&format!("localhost:{port}/path")),
        connect_head("localhost:0"),
        connect_head(&format!("localhost.:{port}")),
        connect_head(&format!("127.1:{port}")),
        // Not HTTP.
        "\x16\x03\x01 a TLS hello\r\n\r\n".to_string(),
        // A head over 8 KiB.
        format!(
            "CONNECT localhost:{port} HTTP/1.1\r\nX-Pad: {}\r\n\r\n",
            "a".repeat(9000)
        ),
    ];
    for head in &heads {
        let mut s = connect(&p.sock, head).await;
        let text = read_all(&mut s).await;
        assert!(
            text.starts_with("HTTP/1.1 403 Forbidden\r\n"),
            "{head:.60}: {text}"
        );
    }
    let attempts = p.attempts.all();
    assert_eq!(attempts.len(), heads.len());
    assert!(attempts.iter().all(|a| a.verdict == Verdict::Refused));
    let logged = serde_json::to_string(&attempts).unwrap();
    assert!(
        !logged.contains("secret"),
        "a credential was logged: {logged}"
    );
    assert!(reached.try_recv().is_err(), "a refused request connected");
    // The listed name itself still works.
    let mut s = connect(&p.sock, &connect_head(&format!("LOCALHOST:{port}"))).await;
    let got = read_until(&mut s, b"hello\n").await;
    assert!(got.starts_with(b"HTTP/1.1 200 "));
}

/// A CONNECT relayed by something inside the sandbox (here a byte relay in front of the
/// socket, as an agent could run) gets the same answer as a direct one.
#[tokio::test]
async fn a_connect_relayed_through_an_inner_relay_gets_the_same_refusal() {
    let (allowed, _a) = echo_host().await;
    let (unlisted, mut reached) = echo_host().await;
    let p = proxy(&[format!("127.0.0.1:{allowed}")]);
    // The agent's relay: a TCP port forwarding every connection to the egress socket.
    let relay = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let relay_port = relay.local_addr().unwrap().port();
    let sock = p.sock.clone();
    tokio::spawn(async move {
        while let Ok((mut a, _)) = relay.accept().await {
            let sock = sock.clone();
            tokio::spawn(async move {
                let mut b = UnixStream::connect(&sock).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut a, &mut b).await;
            });
        }
    });
    let head = connect_head(&format!("127.0.0.1:{unlisted}"));
    let mut direct = connect(&p.sock, &head).await;
    let direct = read_all(&mut direct).await;
    let mut relayed = TcpStream::connect(("127.0.0.1", relay_port)).await.unwrap();
    relayed.write_all(head.as_bytes()).await.unwrap();
    let mut got = vec![];
    tokio::time::timeout(Duration::from_secs(10), relayed.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&got), direct);
    assert!(direct.starts_with("HTTP/1.1 403 "), "{direct}");
    assert!(reached.try_recv().is_err());
    let a = p.attempts.all();
    assert_eq!(a.len(), 2);
    assert!(a.iter().all(|a| a.verdict == Verdict::Refused));
}

/// After an allowed CONNECT the proxy only splices: a second CONNECT pipelined in the same
/// write, or sent later inside the tunnel, reaches the allowed host as bytes (here a host that
/// records them, as a forward proxy there would read them); drover decides nothing more and
/// logs one attempt. What the allowed host does with them is its business: the operator allowed
/// it (the module's docs say never to list an open proxy).
#[tokio::test]
async fn after_an_allowed_connect_nothing_is_parsed() {
    let (proxy_host, mut received) = recording_host().await;
    let (unlisted, mut reached) = echo_host().await;
    let p = proxy(&[format!("127.0.0.1:{proxy_host}")]);
    let second = connect_head(&format!("127.0.0.1:{unlisted}"));
    // Pipelined: both heads in one write.
    let both = format!(
        "{}{second}",
        connect_head(&format!("127.0.0.1:{proxy_host}"))
    );
    let mut s = connect(&p.sock, &both).await;
    let got = read_until(&mut s, b"\r\n\r\n").await;
    assert!(got.starts_with(b"HTTP/1.1 200 "), "{got:?}");
    // Later, inside the tunnel.
    s.write_all(second.as_bytes()).await.unwrap();
    s.shutdown().await.unwrap();
    let bytes = tokio::time::timeout(Duration::from_secs(10), received.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&bytes), format!("{second}{second}"));
    assert!(
        reached.try_recv().is_err(),
        "drover connected the second target"
    );
    let a = p.attempts.all();
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(a[0].verdict, Verdict::Allowed);
}

#[tokio::test]
async fn an_allowed_host_that_is_down_is_a_502() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    let p = proxy(&[format!("127.0.0.1:{port}")]);
    let mut s = connect(&p.sock, &connect_head(&format!("127.0.0.1:{port}"))).await;
    let text = read_all(&mut s).await;
    assert!(text.starts_with("HTTP/1.1 502 "), "{text}");
    assert_eq!(p.attempts.all()[0].verdict, Verdict::Unreachable);
}

#[test]
fn authorities_and_the_list() {
    let h = |s: &str| parse_authority(s);
    assert_eq!(
        h("Registry.Example.com:443"),
        Some((Host::Name("registry.example.com".into()), 443))
    );
    assert_eq!(
        h("[::1]:8080"),
        Some((Host::V6(std::net::Ipv6Addr::LOCALHOST), 8080))
    );
    assert_eq!(h("10.0.0.1:22"), Some((Host::V4([10, 0, 0, 1].into()), 22)));
    for bad in [
        "",
        "host",
        "host:",
        ":443",
        "host:65536",
        "host:+1",
        "a b:1",
        "a@b:1",
        "-a.com:1",
        "a..com:1",
        "a.com.:1",
        "127.1:1",
        "0x7f.1:1",
        "0x7f000001:1",
        "[::1]",
        "::1:80",
    ] {
        assert_eq!(h(bad), None, "{bad}");
    }
    let list = AllowList::parse(&[
        "registry.npmjs.org:443".into(),
        "*.crates.io:443".into(),
        "10.0.0.1:8080".into(),
    ])
    .unwrap();
    let ok = |s: &str| {
        let (host, port) = parse_authority(s).unwrap();
        list.allows(&host, port)
    };
    assert!(ok("registry.npmjs.org:443"));
    assert!(ok("REGISTRY.npmjs.org:443"));
    assert!(!ok("registry.npmjs.org:80"));
    assert!(!ok("evil-registry.npmjs.org.attacker.com:443"));
    assert!(ok("static.crates.io:443"));
    assert!(ok("a.b.crates.io:443"));
    assert!(
        !ok("crates.io:443"),
        "a wildcard does not cover its own domain"
    );
    assert!(!ok("evilcrates.io:443"));
    assert!(ok("10.0.0.1:8080"));
    assert!(!ok("10.0.0.2:8080"));
    for bad in [
        "*.:443",
        "*:443",
        "example.com",
        "*.1.2.3.4:443",
        "http://x:1",
    ] {
        assert!(AllowList::parse(&[bad.to_string()]).is_err(), "{bad}");
    }
}

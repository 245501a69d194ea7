//! A daemon in the test's process, listening on TCP as a team server (docs/design.md §7), with
//! its store's teams and keys at hand.

use super::Env;
use drover_test_support::daemon::InProcessDaemon;
use drover_test_support::keys::Keys;
use drover_test_support::net;
use std::net::SocketAddr;
use std::path::Path;

/// A two-thread runtime for a test that drives an in-process daemon.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

pub struct TcpServer {
    pub rt: tokio::runtime::Runtime,
    pub daemon: Option<InProcessDaemon>,
    pub addr: SocketAddr,
    pub keys: Keys,
    pub env: Env,
}

impl TcpServer {
    pub fn start() -> TcpServer {
        let env = Env::new();
        let rt = runtime();
        let exe = Path::new(env!("CARGO_BIN_EXE_drover"));
        let (daemon, addr) = rt.block_on(net::start_listening(&env.home, exe, None));
        let keys = Keys::open(&env.home);
        TcpServer {
            rt,
            daemon: Some(daemon),
            addr,
            keys,
            env,
        }
    }

    /// A request over TCP with `key` as its bearer key (none: no header).
    pub fn call(&self, method: &str, path: &str, key: Option<&str>, body: &str) -> (u16, String) {
        net::call(self.addr, method, path, key, body)
    }
}

impl Drop for TcpServer {
    fn drop(&mut self) {
        if let Some(d) = self.daemon.take() {
            self.rt.block_on(d.shutdown());
        }
    }
}

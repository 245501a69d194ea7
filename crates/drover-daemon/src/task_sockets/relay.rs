//! `gateway.sock`: a byte relay to the gateway's loopback port. Nothing is read or changed:
//! the task's token, in every request, is what the gateway authenticates and meters (a
//! confined agent reaches this socket through a loopback forwarder inside its network
//! namespace, at the same `http://127.0.0.1:PORT` as an unconfined one).

use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpStream, UnixListener};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Relays every connection on `listener` to `gateway` until `stop` is cancelled (open
/// connections end then too), at most [`super::CONNECTIONS`] at once (one more is closed).
pub async fn serve(
    listener: UnixListener,
    gateway: SocketAddr,
    stop: CancellationToken,
    tasks: TaskTracker,
) {
    let slots = Arc::new(Semaphore::new(super::CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stop.cancelled() => return,
        };
        let mut inside = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!("gateway relay: accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            continue;
        };
        let stop = stop.clone();
        tasks.spawn(async move {
            let _permit = permit;
            let Ok(mut outside) = TcpStream::connect(gateway).await else {
                return;
            };
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut inside, &mut outside) => {}
                _ = stop.cancelled() => {}
            }
        });
    }
}

//! Accepting connections, and shutting down gracefully.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::{error, info};

use crate::Broker;
use crate::connection;

/// Lets a caller ask a running server to stop and wait until it has.
#[derive(Debug)]
pub struct ServerHandle {
    stop: watch::Sender<bool>,
    done: tokio::task::JoinHandle<()>,
}

impl ServerHandle {
    /// Close every connection with `320 CONNECTION_FORCED` and wait for the server to end.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.done.await;
    }
}

/// Start serving `listeners` in the background; see [`serve`].
#[must_use]
pub fn spawn(broker: Arc<Broker>, listeners: Vec<TcpListener>) -> ServerHandle {
    let (stop, mut stopped_rx) = watch::channel(false);
    let done = tokio::spawn(serve(broker, listeners, async move {
        stopped(&mut stopped_rx).await;
    }));
    ServerHandle { stop, done }
}

/// Accept AMQP connections on every listener until `shutdown` completes; then close
/// every connection with `320 CONNECTION_FORCED` and return once they have all ended.
pub async fn serve(
    broker: Arc<Broker>,
    listeners: Vec<TcpListener>,
    shutdown: impl Future<Output = ()>,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    // Every connection task holds a clone of `alive`; when all are dropped, `all_done`
    // yields `None` and shutdown is complete.
    let (alive, mut all_done) = mpsc::channel::<()>(1);
    let mut acceptors = JoinSet::new();
    for listener in listeners {
        match listener.local_addr() {
            Ok(addr) => info!(%addr, "listening for AMQP 0-9-1"),
            Err(e) => error!(error = %e, "listener has no local address"),
        }
        acceptors.spawn(accept_loop(
            listener,
            broker.clone(),
            stop_rx.clone(),
            alive.clone(),
        ));
    }
    drop(alive);
    shutdown.await;
    info!("shutting down: closing connections");
    let _ = stop_tx.send(true);
    acceptors.shutdown().await;
    let _ = all_done.recv().await;
    info!("all connections closed");
    broker.sync_queues().await;
    info!("messages synced to disk");
}

/// Resolves once `stop` turns true (or its sender is gone).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn accept_loop(
    listener: TcpListener,
    broker: Arc<Broker>,
    mut stop: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    let _ = socket.set_nodelay(true);
                    let broker = broker.clone();
                    let stop = stop.clone();
                    let alive = alive.clone();
                    tokio::spawn(async move {
                        connection::run(socket, peer, broker, stop).await;
                        drop(alive);
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off briefly, keep serving.
                    error!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
            () = stopped(&mut stop) => return,
        }
    }
}

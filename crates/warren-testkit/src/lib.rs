//! Test fixtures for Warren.
//!
//! Owns: [`TestBroker`], a real broker serving on an ephemeral loopback port with its own
//! temporary data directory, and [`raw::RawClient`], a byte-level AMQP client for
//! feeding the broker malformed input and reading back exactly what it answers.
//!
//! Must not know: broker internals. Everything here goes through the public broker API
//! and real sockets, so tests exercise what clients see.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "test fixtures: a panic is how a fixture reports a broken test environment"
)]

pub mod client_0_8;
pub mod raw;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tempfile::TempDir;
use tokio::net::TcpListener;
use warren_broker::{Broker, Config, ServerHandle};

/// A stopped [`TestBroker`]'s data directory, to start again.
#[derive(Debug)]
pub struct StoppedBroker {
    data: TempDir,
}

impl StoppedBroker {
    /// Start a broker on the kept data directory.
    pub async fn start(self) -> TestBroker {
        TestBroker::start_in(self.data, |_| {}).await
    }
}

/// A broker serving on `127.0.0.1:<ephemeral>` until [`TestBroker::shutdown`] or drop.
#[derive(Debug)]
pub struct TestBroker {
    addr: SocketAddr,
    broker: Arc<Broker>,
    server: Option<ServerHandle>,
    _data: TempDir,
}

impl TestBroker {
    /// Start with test-friendly defaults (a short login-failure delay).
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Start after adjusting the configuration.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let data = tempfile::tempdir().expect("temporary data directory");
        Self::start_in(data, adjust).await
    }

    /// Stop gracefully (as on SIGTERM) and start again on the same data directory and
    /// a new port.
    pub async fn restart(self) -> Self {
        self.stop().await.start().await
    }

    /// Stop gracefully (as on SIGTERM), keeping the data directory for [`StoppedBroker::start`].
    pub async fn stop(mut self) -> StoppedBroker {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
        let Self { broker, _data, .. } = self;
        // The definition store stays locked until the old broker is gone.
        let weak = Arc::downgrade(&broker);
        drop(broker);
        for _ in 0..500 {
            if weak.strong_count() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(weak.strong_count(), 0, "old broker still referenced");
        // Let the old queue tasks notice and close their files.
        tokio::time::sleep(Duration::from_millis(50)).await;
        StoppedBroker { data: _data }
    }

    async fn start_in(data: TempDir, adjust: impl FnOnce(&mut Config)) -> Self {
        let mut config = Config::new(data.path().join("data"));
        config.auth_failure_delay = Duration::from_millis(200);
        config.close_timeout = Duration::from_secs(2);
        adjust(&mut config);
        let broker = Broker::new(config).expect("broker starts");
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let server = warren_broker::spawn(broker.clone(), vec![listener]);
        Self {
            addr,
            broker,
            server: Some(server),
            _data: data,
        }
    }

    /// Where the broker listens.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// An AMQP URL for the default vhost with guest/guest.
    #[must_use]
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@{}/%2f", self.addr)
    }

    /// The data directory the broker runs on.
    #[must_use]
    pub fn data_dir(&self) -> std::path::PathBuf {
        self._data.path().join("data")
    }

    /// The broker itself.
    #[must_use]
    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// Close every connection with `320 CONNECTION_FORCED` and stop serving.
    pub async fn shutdown(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }
}

/// Whether something accepts connections on `addr`. A connection to a free port in the
/// ephemeral range can, rarely, be made to itself (TCP simultaneous open when the
/// kernel picks that same port as the local one): that is nobody listening.
pub async fn accepts(addr: SocketAddr) -> bool {
    match tokio::net::TcpStream::connect(addr).await {
        Ok(stream) => stream.local_addr().ok() != stream.peer_addr().ok(),
        Err(_) => false,
    }
}

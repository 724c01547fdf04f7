//! Issue item 1: the `warren` binary itself: flags and environment, listening on both
//! loopback addresses, and a clean stop on SIGTERM/SIGINT with 320 CONNECTION_FORCED.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is the failure report"
)]

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use warren_testkit::raw::RawClient;

/// A port nothing listens on, never the same twice in this process: tests run in
/// parallel, and the kernel may hand a just-released port out again.
fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut given = GIVEN.lock().unwrap();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

fn warren() -> Command {
    Command::new(env!("CARGO_BIN_EXE_warren"))
}

/// The binary, given flags for 127.0.0.1:`port` and the data directory `data`.
fn warren_on_loopback(port: u16, data: &str) -> Command {
    let mut command = warren();
    command.args([
        "--bind",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--data-dir",
        data,
    ]);
    command
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn wait_for_port(addr: SocketAddr) {
    let started = Instant::now();
    while !warren_testkit::accepts(addr).await {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{addr} never accepted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn listens_on_both_loopbacks_from_env_and_stops_on_sigterm_with_320() {
    let port = free_port();
    let data = tempfile_dir();
    let child = warren()
        .env("WARREN_PORT", port.to_string())
        .env("WARREN_DATA_DIR", &data)
        .env("WARREN_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut running = Running(child);
    let v4 = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    wait_for_port(v4).await;
    assert!(
        std::path::Path::new(&data).is_dir(),
        "data directory created"
    );
    let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, port));
    let ipv6_available = TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).is_ok();
    let mut clients = vec![RawClient::open(v4).await];
    if ipv6_available {
        clients.push(RawClient::open(v6).await);
    }
    signal(&running.0, "-TERM");
    for c in &mut clients {
        let closed = c.expect_connection_close().await;
        assert_eq!(closed.code, 320);
    }
    let started = Instant::now();
    loop {
        if let Some(status) = running.0.try_wait().unwrap() {
            assert!(status.success(), "{status:?}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "did not exit");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = std::fs::remove_dir_all(&data);
}

#[tokio::test]
async fn flags_set_address_and_port_and_sigint_stops_it() {
    let port = free_port();
    let data = tempfile_dir();
    let child = warren_on_loopback(port, &data)
        .args(["--log-level", "debug"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut running = Running(child);
    wait_for_port(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await;
    let mut c = RawClient::open(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await;
    signal(&running.0, "-INT");
    assert_eq!(c.expect_connection_close().await.code, 320);
    let output = tokio::task::spawn_blocking(move || running.0.wait_with_output_ref())
        .await
        .unwrap();
    assert!(output.0.success());
    assert!(output.1.contains("SIGINT received"), "{}", output.1);
    let _ = std::fs::remove_dir_all(&data);
}

/// Starts the binary with `flags` and publishes until the connection is blocked;
/// returns the reason given.
async fn blocked_reason(flags: &[&str]) -> String {
    use warren_codec::method::Method;
    use warren_codec::spec::{AMQPClass, connection};
    use warren_testkit::raw::publish_frames;

    let port = free_port();
    let data = tempfile_dir();
    let child = warren_on_loopback(port, &data)
        .args(["--log-level", "warn"])
        .args(flags)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _running = Running(child);
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    wait_for_port(addr).await;
    let mut c = RawClient::open(addr).await;
    let started = Instant::now();
    // Publishes until one is held back: the first may beat the first check.
    let blocked = loop {
        assert!(started.elapsed() < Duration::from_secs(10), "never blocked");
        c.send(&publish_frames(1, "", "nowhere", &[], b"x")).await;
        if let Ok(Some((_, m))) =
            tokio::time::timeout(Duration::from_millis(500), c.read_method()).await
        {
            break m;
        }
    };
    let _ = std::fs::remove_dir_all(&data);
    match blocked {
        Method::Other(AMQPClass::Connection(connection::AMQPMethod::Blocked(b))) => {
            b.reason.to_string()
        }
        other => panic!("expected connection.blocked, got {other:?}"),
    }
}

#[tokio::test]
async fn over_the_memory_high_watermark_a_publisher_is_blocked() {
    // Far below any broker's resident size: the alarm goes on at the first check.
    let reason = blocked_reason(&["--memory-high-watermark", "1MiB"]).await;
    assert_eq!(reason, "low on memory");
}

#[tokio::test]
async fn under_the_free_disk_space_limit_a_publisher_is_blocked() {
    // More than any disk has free.
    let reason = blocked_reason(&["--disk-free-limit", "1000000GiB"]).await;
    assert_eq!(reason, "low on disk");
}

fn tempfile_dir() -> String {
    let dir = std::env::temp_dir().join(format!(
        "warren-bin-test-{}-{}",
        std::process::id(),
        free_port()
    ));
    dir.to_string_lossy().into_owned()
}

trait WaitOutput {
    fn wait_with_output_ref(&mut self) -> (std::process::ExitStatus, String);
}

impl WaitOutput for Child {
    fn wait_with_output_ref(&mut self) -> (std::process::ExitStatus, String) {
        use std::io::Read;
        let status = self.wait().unwrap();
        let mut err = String::new();
        if let Some(mut stderr) = self.stderr.take() {
            let _ = stderr.read_to_string(&mut err);
        }
        (status, err)
    }
}

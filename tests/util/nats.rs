//! A real `nats-server -js` on a free loopback port with its file store in a temp dir,
//! started by the test and killed by [`Drop`]; [`Nats::kill`] and [`Nats::restart`] stop it
//! hard and bring it back on the same port and store. Debian's `nats-server` (2.9) is needed
//! (`.ci/run` installs it).

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream;

/// Every wait on the server is bounded by this.
pub const NATS_WAIT: Duration = Duration::from_secs(15);

/// A running (or killed, to be restarted) server.
pub struct Nats {
    child: Option<Child>,
    /// Its client port on 127.0.0.1.
    pub port: u16,
    /// Its JetStream store.
    pub dir: tempfile::TempDir,
}

impl Nats {
    /// Starts a server; returns once it accepts connections.
    pub fn start() -> Nats {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut n = Nats {
            child: None,
            port,
            dir: tempfile::tempdir().expect("temp dir"),
        };
        n.restart();
        n
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// `kill -9`: no goodbye to clients, the store as the disk has it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same port and store (after [`Nats::kill`]).
    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string(), "-sd"])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts (apt-get install nats-server)");
        self.child = Some(child);
        let deadline = Instant::now() + NATS_WAIT;
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server did not listen on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A JetStream context on this server, for the test's own looks.
    pub async fn js(&self) -> jetstream::Context {
        let client = tokio::time::timeout(NATS_WAIT, async_nats::connect(self.url()))
            .await
            .expect("connects in time")
            .expect("connects");
        jetstream::new(client)
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Messages in stream `name` now.
pub async fn stream_messages(js: &jetstream::Context, name: &str) -> u64 {
    let mut s = js.get_stream(name).await.expect("the stream exists");
    s.info().await.expect("stream info").state.messages
}

/// Waits (bounded) until `f` holds, polling every 50 ms; panics with `what` otherwise.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if f().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

//! HTTPS and `wss://`, with certificates made by the test (rcgen): the daemon serves HTTPS
//! from `[tls]` and swaps in a renewed certificate on SIGHUP; an upstream on `wss://` is
//! trusted through the system roots (here `SSL_CERT_FILE`, as on any Linux box).

use std::sync::Arc;
use std::time::Duration;

use futures_util::SinkExt;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

use crate::util::live::{canonical, Firehose, Subscriber, WAIT};

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca() -> Ca {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).expect("self-signed");
    Ca { cert, key }
}

/// A leaf for `localhost` signed by `ca`: (cert PEM, key PEM, cert DER).
fn leaf(ca: &Ca) -> (String, String, Vec<u8>) {
    let key = KeyPair::generate().expect("key");
    let params = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    let cert = params.signed_by(&key, &ca.cert, &ca.key).expect("signed");
    (cert.pem(), key.serialize_pem(), cert.der().to_vec())
}

fn client(ca: &Ca) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.cert.der().clone()).expect("root");
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

/// GETs /healthz over HTTPS: the status line and the server's certificate.
async fn https_healthz(addr: std::net::SocketAddr, ca: &Ca) -> (String, Vec<u8>) {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from("localhost").expect("name");
    let mut tls = tokio::time::timeout(WAIT, client(ca).connect(name, tcp))
        .await
        .expect("handshake in time")
        .expect("handshake");
    let cert: Vec<u8> = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c: &CertificateDer<'_>| c.to_vec())
        .expect("a certificate");
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(WAIT, tls.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).to_string();
    (text.lines().next().unwrap_or("").to_string(), cert)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_is_served_and_a_renewed_certificate_loads_on_sighup() {
    let fh = Firehose::start("127.0.0.1:0").await;
    let dir = tempfile::tempdir().expect("tmp");
    let ca = ca();
    let (cert, key, first) = leaf(&ca);
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert).expect("write");
    std::fs::write(&key_path, key).expect("write");
    let config = dir.path().join("liveguard.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\n[[source]]\nurl = \"{}\"\nformat = \"canonical\"\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
            fh.url(),
            cert_path.display(),
            key_path.display()
        ),
    )
    .expect("write");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_liveguard"))
        .args(["run", "--config"])
        .arg(&config)
        .env("LIVEGUARD_STATE_DIR", crate::util::state_dir())
        .env("NO_COLOR", "1")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start");
    let mut stderr = std::io::BufReader::new(child.stderr.take().expect("stderr"));
    let addr = crate::util::listening_addr(&mut stderr);
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    let (status, served) = https_healthz(addr, &ca).await;
    assert!(status.contains("200"), "{status}");
    assert_eq!(served, first);
    let (cert, key, renewed) = leaf(&ca);
    std::fs::write(&cert_path, cert).expect("write");
    std::fs::write(&key_path, key).expect("write");
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(hup.success());
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, served) = https_healthz(addr, &ca).await;
        assert!(status.contains("200"), "{status}");
        if served == renewed {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the renewed certificate never served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wss_upstream_is_trusted_through_the_system_roots() {
    let dir = tempfile::tempdir().expect("tmp");
    let ca = ca();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.cert.pem()).expect("write");
    let (cert, key, _) = leaf(&ca);
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert).expect("write");
    std::fs::write(&key_path, key).expect("write");
    let server = liveguard::tls::load(&liveguard::tls::TlsConfig {
        cert: cert_path,
        key: key_path,
    })
    .expect("tls");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let acceptor = tokio_rustls::TlsAcceptor::from(server);
    let upstream = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        let tls = acceptor.accept(tcp).await.expect("tls");
        let mut ws = tokio_tungstenite::accept_async(tls).await.expect("ws");
        ws.send(Message::Text(
            canonical("r1", "w1", "troll", "加我vx便宜一半").into(),
        ))
        .await
        .expect("send");
        // Hold the connection until the test ends.
        let _ = futures_util::StreamExt::next(&mut ws).await;
    });
    let state = crate::util::state_dir();
    let mut child = crate::util::run_command(&format!("wss://localhost:{port}/"), &state)
        .env("SSL_CERT_FILE", &ca_file)
        .spawn()
        .expect("start");
    let mut stderr = std::io::BufReader::new(child.stderr.take().expect("stderr"));
    let addr = crate::util::listening_addr(&mut stderr);
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    let mut sub = Subscriber::connect(addr, "since=0").await;
    assert_eq!(sub.next_alert().await["msg_ids"][0], "w1", "read over wss://");
    let _ = child.kill();
    let _ = child.wait();
    upstream.abort();
}

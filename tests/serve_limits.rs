//! `certbound serve` under abuse: slow headers, huge headers, bodies, too
//! many connections, too many AS calls in flight, and SIGTERM while a
//! request is in flight. In process over raw TCP (the accept loop itself,
//! `certbound::fronts::http::run`), plus one run of the real binary for the
//! signal.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use certbound::backends::limit::InflightLimit;
use certbound::backends::memory::MemoryBackend;
use certbound::backends::{Answer, Claims, IntrospectionError, IntrospectionRequest, Introspector};
use certbound::config::{ProxyKind, ServeConfig, ServeLimits};
use certbound::decision::BindingPolicy;
use certbound::{Settings, StandardAuthorizer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, Notify, Semaphore};

const TOKEN: &str = "serve-limits-token";

/// A backend that holds every call until the test opens the gate.
struct Gated {
    inner: MemoryBackend,
    gate: Arc<Semaphore>,
    entered: Arc<Notify>,
}

#[async_trait]
impl Introspector for Gated {
    async fn introspect(
        &self,
        request: &IntrospectionRequest,
    ) -> Result<Answer, IntrospectionError> {
        self.entered.notify_one();
        let _permit = self.gate.acquire().await;
        self.inner.introspect(request).await
    }
}

struct Server {
    addr: std::net::SocketAddr,
    gate: Arc<Semaphore>,
    entered: Arc<Notify>,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<()>,
}

fn serve_config(limits: ServeLimits) -> ServeConfig {
    let map: std::collections::HashMap<String, String> = [
        ("CERTBOUND_BACKEND", "rfc7662"),
        (
            "CERTBOUND_INTROSPECTION_ENDPOINT",
            "http://127.0.0.1:9/introspect",
        ),
        ("CERTBOUND_INTROSPECTION_CLIENT_ID", "rs"),
        ("CERTBOUND_INTROSPECTION_CLIENT_SECRET", "s"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let env = certbound::config::Env::from_map(&map);
    let mut serve = certbound::config::Config::from_env(&env).unwrap().serve;
    assert_eq!(serve.proxy, ProxyKind::Nginx);
    serve.limits = limits;
    serve
}

/// Serves a gated in-memory backend behind an in-flight cap of
/// `max_inflight`, without binding (no certificates needed here).
async fn start(limits: ServeLimits, max_inflight: usize) -> Server {
    let memory = MemoryBackend::new();
    memory.insert(
        TOKEN,
        Claims {
            active: true,
            sub: Some("alice".into()),
            ..Default::default()
        },
    );
    let gate = Arc::new(Semaphore::new(0));
    let entered = Arc::new(Notify::new());
    let backend = Gated {
        inner: memory,
        gate: gate.clone(),
        entered: entered.clone(),
    };
    let backend = Arc::new(InflightLimit::new(Arc::new(backend), max_inflight));
    let mut settings = Settings::default();
    settings.validation.binding = BindingPolicy::Off;
    settings.deadline = Duration::from_secs(30);
    let authorizer = Arc::new(StandardAuthorizer::new(backend, settings));
    let app = certbound::fronts::http::router(authorizer, serve_config(limits));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let done = tokio::spawn(certbound::fronts::http::run(listener, app, limits, async {
        let _ = rx.await;
    }));
    Server {
        addr,
        gate,
        entered,
        stop: Some(tx),
        done,
    }
}

fn authorize_request(connection: &str) -> String {
    format!(
        "GET /authorize HTTP/1.1\r\nHost: certbound\r\nX-Original-Method: GET\r\n\
         X-Original-URI: /example\r\nAuthorization: Bearer {TOKEN}\r\nConnection: {connection}\r\n\r\n"
    )
}

/// Reads until the server closes (or `limit` passes: then `None`).
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut out = Vec::new();
    match tokio::time::timeout(limit, stream.read_to_end(&mut out)).await {
        Ok(_) => Some(String::from_utf8_lossy(&out).into_owned()),
        Err(_) => None,
    }
}

/// Reads one response head (up to the blank line).
async fn read_head(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut byte = [0u8; 1];
    while !out.ends_with(b"\r\n\r\n") {
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut byte)).await {
            Ok(Ok(1)) => out.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn status_of(head: &str) -> &str {
    head.split(' ').nth(1).unwrap_or("")
}

fn limits() -> ServeLimits {
    ServeLimits {
        header_read_timeout: Duration::from_secs(1),
        ..ServeLimits::default()
    }
}

#[tokio::test]
async fn headers_must_arrive_within_the_timeout_even_byte_by_byte() {
    let server = start(limits(), 8).await;
    // Half a request, then silence: closed, never answered.
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    silent
        .write_all(b"GET /authorize HTTP/1.1\r\nHost: certbound\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut silent, Duration::from_secs(10)).await;
    let answer = answer.expect("a silent client must be disconnected");
    assert!(!answer.contains(" 200 "), "{answer}");

    // Slowloris: a byte every 100 ms keeps the connection busy, but the
    // header deadline does not move; the connection is closed before the
    // request is complete.
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    let request = authorize_request("close");
    let mut sent = 0;
    for byte in request.as_bytes() {
        if slow.write_all(&[*byte]).await.is_err() {
            break;
        }
        sent += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        sent < request.len(),
        "a client dripping its headers was never cut off"
    );
    // An idle kept-alive connection is closed after the same timeout.
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    idle.write_all(authorize_request("keep-alive").as_bytes())
        .await
        .unwrap();
    server.gate.add_permits(1);
    assert_eq!(status_of(&read_head(&mut idle).await), "200");
    assert!(
        read_until_closed(&mut idle, Duration::from_secs(10))
            .await
            .is_some(),
        "an idle keep-alive connection must be closed"
    );
}

#[tokio::test]
async fn oversized_headers_get_431_and_bodies_are_not_buffered() {
    let server = start(limits(), 8).await;
    let mut big = TcpStream::connect(server.addr).await.unwrap();
    let filler = "a".repeat(40 * 1024);
    let request =
        format!("GET /authorize HTTP/1.1\r\nHost: certbound\r\nX-Filler: {filler}\r\n\r\n");
    let _ = big.write_all(request.as_bytes()).await;
    assert_eq!(status_of(&read_head(&mut big).await), "431");

    let mut many = TcpStream::connect(server.addr).await.unwrap();
    let mut request = String::from("GET /authorize HTTP/1.1\r\nHost: certbound\r\n");
    for i in 0..150 {
        request.push_str(&format!("X-H{i}: v\r\n"));
    }
    request.push_str("\r\n");
    let _ = many.write_all(request.as_bytes()).await;
    assert_eq!(status_of(&read_head(&mut many).await), "431");

    // A 10 MB body on an authorization request: answered without reading
    // it (a token-less request: 401), then the connection closes.
    let mut body = TcpStream::connect(server.addr).await.unwrap();
    let head = "POST /authorize HTTP/1.1\r\nHost: certbound\r\nX-Original-Method: GET\r\n\
                X-Original-URI: /example\r\nContent-Length: 10000000\r\n\r\n";
    body.write_all(head.as_bytes()).await.unwrap();
    let writer = {
        let chunk = vec![b'x'; 64 * 1024];
        let (mut r, mut w) = body.into_split();
        let writer = tokio::spawn(async move {
            for _ in 0..(10_000_000 / chunk.len()) {
                if w.write_all(&chunk).await.is_err() {
                    break;
                }
            }
        });
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match tokio::time::timeout(Duration::from_secs(10), r.read(&mut byte)).await {
                Ok(Ok(1)) => head.push(byte[0]),
                _ => break,
            }
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        assert_eq!(status_of(&head), "401", "{head}");
        assert!(head
            .to_ascii_lowercase()
            .contains("x-certbound-reason: token_missing"));
        writer
    };
    writer.abort();
}

#[tokio::test]
async fn connections_beyond_the_cap_get_503_at_once() {
    let server = start(
        ServeLimits {
            max_connections: 2,
            header_read_timeout: Duration::from_secs(30),
            ..ServeLimits::default()
        },
        8,
    )
    .await;
    let first = TcpStream::connect(server.addr).await.unwrap();
    let second = TcpStream::connect(server.addr).await.unwrap();
    // Accepted in order: the third is over the cap.
    let mut third = TcpStream::connect(server.addr).await.unwrap();
    let answer = read_until_closed(&mut third, Duration::from_secs(10))
        .await
        .expect("the connection over the cap is closed");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
    assert!(answer.contains("x-certbound-reason: overloaded"));
    drop(first);
    drop(second);
    // Once the two are gone, connections are served again.
    let mut served = None;
    for _ in 0..100 {
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let head = read_head(&mut s).await;
        if status_of(&head) == "200" {
            served = Some(head);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(served.is_some(), "never served again after the cap");
}

#[tokio::test]
async fn as_calls_beyond_the_cap_get_503_while_others_go_on() {
    let server = start(limits(), 1).await;
    // The first request reaches the backend and waits there.
    let mut first = TcpStream::connect(server.addr).await.unwrap();
    first
        .write_all(authorize_request("close").as_bytes())
        .await
        .unwrap();
    server.entered.notified().await;
    // The second is refused at once, not queued.
    let mut second = TcpStream::connect(server.addr).await.unwrap();
    second
        .write_all(authorize_request("close").as_bytes())
        .await
        .unwrap();
    let head = read_head(&mut second).await;
    assert_eq!(status_of(&head), "503", "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("x-certbound-reason: overloaded"), "{head}");
    assert!(lower.contains("retry-after: 1"), "{head}");
    // Health and local refusals do not need the AS.
    let mut health = TcpStream::connect(server.addr).await.unwrap();
    health
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(status_of(&read_head(&mut health).await), "200");
    // The first one completes when the AS answers.
    server.gate.add_permits(1);
    assert_eq!(status_of(&read_head(&mut first).await), "200");
}

#[tokio::test]
async fn stop_refuses_new_connections_and_lets_requests_in_flight_finish() {
    let mut server = start(limits(), 8).await;
    let mut in_flight = TcpStream::connect(server.addr).await.unwrap();
    in_flight
        .write_all(authorize_request("keep-alive").as_bytes())
        .await
        .unwrap();
    server.entered.notified().await;
    server.stop.take().unwrap().send(()).unwrap();
    // New connections are refused once the loop has stopped accepting.
    let mut refused = false;
    for _ in 0..100 {
        if TcpStream::connect(server.addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "new connections still accepted after stop");
    assert!(
        !server.done.is_finished(),
        "stopped with a request in flight"
    );
    // The request in flight is answered, then its connection is closed.
    server.gate.add_permits(1);
    let rest = read_until_closed(&mut in_flight, Duration::from_secs(10))
        .await
        .expect("closed after the answer");
    assert!(rest.starts_with("HTTP/1.1 200"), "{rest:?}");
    tokio::time::timeout(Duration::from_secs(10), server.done)
        .await
        .expect("drained")
        .unwrap();
}

/// The real binary: SIGTERM while a request waits for a slow AS.
#[test]
fn sigterm_drains_the_real_process() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::process::{Command, Stdio};

    // A one-shot "AS" that answers after the signal was sent.
    let as_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let as_addr = as_listener.local_addr().unwrap();
    let (signalled_tx, signalled_rx) = std::sync::mpsc::channel::<()>();
    let (reached_tx, reached_rx) = std::sync::mpsc::channel::<()>();
    let as_thread = std::thread::spawn(move || {
        let (mut s, _) = as_listener.accept().unwrap();
        let mut buf = [0u8; 8192];
        let _ = s.read(&mut buf);
        reached_tx.send(()).unwrap();
        signalled_rx.recv().unwrap();
        let body = r#"{"active":true,"sub":"alice"}"#;
        let _ = write!(
            s,
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
    });
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_certbound"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env_clear()
        .env("CERTBOUND_BACKEND", "rfc7662")
        .env(
            "CERTBOUND_INTROSPECTION_ENDPOINT",
            format!("http://{as_addr}/introspect"),
        )
        .env("CERTBOUND_INTROSPECTION_CLIENT_ID", "rs")
        .env("CERTBOUND_INTROSPECTION_CLIENT_SECRET", "s")
        .env("CERTBOUND_REQUIRE_BINDING", "false")
        .env("CERTBOUND_TIMEOUT_MS", "20000")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("certbound serve ready") {
        line.clear();
        assert_ne!(log.read_line(&mut line).unwrap(), 0, "serve did not start");
    }
    let mut client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    client
        .write_all(authorize_request("keep-alive").as_bytes())
        .unwrap();
    reached_rx.recv().unwrap();
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    // Wait for the drain to start, then let the AS answer.
    while !line.contains("draining") {
        line.clear();
        assert_ne!(log.read_line(&mut line).unwrap(), 0, "no drain logged");
    }
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "a new connection was accepted while draining"
    );
    signalled_tx.send(()).unwrap();
    let mut answer = String::new();
    client.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    as_thread.join().unwrap();
}

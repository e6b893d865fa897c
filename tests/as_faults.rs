//! A misbehaving authorization server, in process, for every HTTP backend
//! (Authlete, RFC 7662, JWT/JWKS): a pooled connection the AS closed while
//! idle, a request the AS may have received, redirects to another host, and
//! the same failure giving the same reason and detail on every backend.
//! The whole matrix against the binary (TLS, slow drip, resets, timing) is
//! `scripts/fault_matrix.py` (`make fault-matrix`).

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use certbound::backends::jwks::{Jwks, JwksLocation, JwksSettings, Lookup};
use certbound::fronts::lambda::handle_event;
use common::*;
use serde_json::{json, Value};

/// Reads one HTTP/1.1 request (head and `Content-Length` body); `None` at EOF.
fn read_request(stream: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let length = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())
                .flatten()
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).ok()?;
    Some((head, body))
}

fn reply(stream: &mut TcpStream, body: &Value) {
    let body = body.to_string();
    let answer = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(answer.as_bytes());
}

/// What the second exchange on the first connection does.
#[derive(Clone, Copy, PartialEq)]
enum Then {
    /// After the first answer, the AS closes the connection when told to
    /// (its keep-alive timeout), without reading anything more.
    CloseWhenIdle,
    /// The AS reads the second request, then closes without answering: it
    /// may have acted on it, so it must not be sent again.
    ReadThenClose,
}

/// A keep-alive AS: connection 0 answers once and then does `then`; every
/// later connection answers every request. Counts requests per connection.
struct KeepAliveAs {
    url: String,
    requests: Arc<Mutex<Vec<usize>>>,
    unread_at_close: Arc<AtomicUsize>,
    close: mpsc::Sender<()>,
    closed: mpsc::Receiver<()>,
}

impl KeepAliveAs {
    fn start(then: Then, answer: fn(&str) -> Value) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::<usize>::new()));
        let unread_at_close = Arc::new(AtomicUsize::new(usize::MAX));
        let (close, close_rx) = mpsc::channel::<()>();
        let (closed_tx, closed) = mpsc::channel::<()>();
        let (r, u) = (requests.clone(), unread_at_close.clone());
        std::thread::spawn(move || {
            let mut close_rx = Some(close_rx);
            for (index, stream) in listener.incoming().enumerate() {
                let Ok(mut stream) = stream else { return };
                r.lock().unwrap().push(0);
                let (r, u) = (r.clone(), u.clone());
                let first = if index == 0 { close_rx.take() } else { None };
                let closed_tx = closed_tx.clone();
                std::thread::spawn(move || {
                    while let Some((head, _)) = read_request(&mut stream) {
                        r.lock().unwrap()[index] += 1;
                        let path = head.split(' ').nth(1).unwrap_or("").to_owned();
                        reply(&mut stream, &answer(&path));
                        let Some(signal) = &first else { continue };
                        match then {
                            Then::CloseWhenIdle => {
                                let _ = signal.recv();
                                // What of the next request had reached us: nothing.
                                stream.set_nonblocking(true).unwrap();
                                let mut peek = [0u8; 4096];
                                let unread = stream.peek(&mut peek).unwrap_or(0);
                                u.store(unread, Ordering::SeqCst);
                            }
                            Then::ReadThenClose => {
                                if read_request(&mut stream).is_some() {
                                    r.lock().unwrap()[index] += 1;
                                }
                            }
                        }
                        drop(stream);
                        let _ = closed_tx.send(());
                        return;
                    }
                });
            }
        });
        Self {
            url,
            requests,
            unread_at_close,
            close,
            closed,
        }
    }

    /// Closes the idle first connection and waits until it is closed, then
    /// lets the FIN reach this process's kernel without running the runtime
    /// (as when a busy or frozen process resumes): the pool does not know yet.
    fn close_idle_connection(&self) {
        self.close.send(()).unwrap();
        self.closed.recv_timeout(Duration::from_secs(5)).unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }

    fn requests(&self) -> Vec<usize> {
        self.requests.lock().unwrap().clone()
    }
}

fn rfc7662_env(url: &str) -> HashMap<String, String> {
    [
        ("CERTBOUND_BACKEND", "rfc7662".to_owned()),
        (
            "CERTBOUND_INTROSPECTION_ENDPOINT",
            format!("{url}/introspect"),
        ),
        ("CERTBOUND_INTROSPECTION_CLIENT_ID", "rs".to_owned()),
        (
            "CERTBOUND_INTROSPECTION_CLIENT_SECRET",
            "rs-secret-value".to_owned(),
        ),
        ("CERTBOUND_TIMEOUT_MS", "2000".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn bound_claims(_: &str) -> Value {
    json!({"active": true, "sub": "john", "client_id": "tpp", "scope": "accounts",
           "exp": 4_102_444_800i64, "cnf": {"x5t#S256": EVENTS_THUMBPRINT}})
}

fn bound_authlete(_: &str) -> Value {
    let mut answer = authlete_answer("OK");
    answer["certificateThumbprint"] = json!(EVENTS_THUMBPRINT);
    answer
}

fn events_event() -> Value {
    serde_json::from_str(include_str!("../events/rest-request.json")).unwrap()
}

async fn decide(
    env: &HashMap<String, String>,
    authorizer: &certbound::StandardAuthorizer,
) -> Value {
    let config = config(env);
    handle_event(authorizer, config.http_api_response, events_event(), None)
        .await
        .unwrap()
}

fn reason(v: &Value) -> (&str, &str) {
    (
        v["context"]["reason"].as_str().unwrap_or("-"),
        v["context"]["introspection_exception"]
            .as_str()
            .unwrap_or("-"),
    )
}

#[tokio::test]
async fn rfc7662_a_pooled_connection_the_as_closed_while_idle_is_retried_on_a_new_one() {
    let server = KeepAliveAs::start(Then::CloseWhenIdle, bound_claims);
    let env = rfc7662_env(&server.url);
    let (_, authorizer) = authorizer(&env);
    assert_eq!(effect(&decide(&env, &authorizer).await), "Allow");
    server.close_idle_connection();
    let second = decide(&env, &authorizer).await;
    assert_eq!(effect(&second), "Allow", "{:?}", reason(&second));
    // One request on the closed connection, one on a new one; not a byte of
    // the second request had reached the AS on the closed connection.
    assert_eq!(server.requests(), [1, 1]);
    assert_eq!(server.unread_at_close.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn authlete_a_pooled_connection_the_as_closed_while_idle_is_retried_on_a_new_one() {
    let server = KeepAliveAs::start(Then::CloseWhenIdle, bound_authlete);
    let env = authlete_env(&server.url, false, &[("CERTBOUND_TIMEOUT_MS", "2000")]);
    let (_, authorizer) = authorizer(&env);
    assert_eq!(effect(&decide(&env, &authorizer).await), "Allow");
    server.close_idle_connection();
    let second = decide(&env, &authorizer).await;
    assert_eq!(effect(&second), "Allow", "{:?}", reason(&second));
    assert_eq!(server.requests(), [1, 1]);
    assert_eq!(server.unread_at_close.load(Ordering::SeqCst), 0);
}

fn jwks_doc(path: &str) -> Value {
    let n = URL_SAFE_NO_PAD.encode([0xc5u8; 256]);
    let key = |kid: &str| json!({"kty": "RSA", "kid": kid, "n": n, "e": "AQAB"});
    // The first fetch has k1 only; later ones k1 and k2 (a rotation).
    static FETCHES: AtomicUsize = AtomicUsize::new(0);
    let _ = path;
    if FETCHES.fetch_add(1, Ordering::SeqCst) == 0 {
        json!({"keys": [key("k1")]})
    } else {
        json!({"keys": [key("k1"), key("k2")]})
    }
}

#[tokio::test]
async fn jwks_a_pooled_connection_the_as_closed_while_idle_is_retried_on_a_new_one() {
    let server = KeepAliveAs::start(Then::CloseWhenIdle, jwks_doc);
    let client = certbound::transport::build_client(&Default::default()).unwrap();
    let jwks = Jwks::new(
        client,
        JwksLocation::Uri(format!("{}/jwks", server.url)),
        JwksSettings::default(),
    );
    assert!(matches!(jwks.key("k1").await, Ok(Lookup::Found(_))));
    server.close_idle_connection();
    // An unknown kid refetches the set over the pooled connection.
    let second = jwks.key("k2").await;
    assert!(matches!(second, Ok(Lookup::Found(_))), "{second:?}");
    assert_eq!(server.requests(), [1, 1]);
    assert_eq!(server.unread_at_close.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_request_the_as_may_have_received_is_never_sent_again() {
    for backend in ["rfc7662", "authlete"] {
        let server = KeepAliveAs::start(
            Then::ReadThenClose,
            if backend == "rfc7662" {
                bound_claims
            } else {
                bound_authlete
            },
        );
        let env = if backend == "rfc7662" {
            rfc7662_env(&server.url)
        } else {
            authlete_env(&server.url, false, &[("CERTBOUND_TIMEOUT_MS", "2000")])
        };
        let (_, authorizer) = authorizer(&env);
        let first = decide(&env, &authorizer).await;
        let second = decide(&env, &authorizer).await;
        assert_eq!(effect(&first), "Allow", "{backend}");
        assert_eq!(effect(&second), "Deny", "{backend}");
        let (why, detail) = reason(&second);
        assert_eq!(why, "as_unavailable", "{backend}");
        assert!(
            detail.contains("connection closed by the AS before an answer"),
            "{backend}: {detail}"
        );
        // Read once by the AS, never sent again, no new connection.
        assert_eq!(server.requests(), [2], "{backend}");
    }
}

/// An AS that answers every request on every connection with `answer` and
/// `Keep-Alive: timeout={seconds}`; counts requests per connection.
fn announcing_as(seconds: u64, answer: Value) -> (String, Arc<Mutex<Vec<usize>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(Mutex::new(Vec::<usize>::new()));
    let r = requests.clone();
    std::thread::spawn(move || {
        for (index, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { return };
            r.lock().unwrap().push(0);
            let (r, body) = (r.clone(), answer.to_string());
            std::thread::spawn(move || {
                while read_request(&mut stream).is_some() {
                    r.lock().unwrap()[index] += 1;
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nKeep-Alive: timeout={seconds}\r\nContent-Length: {}\r\n\r\n",
                        body.len()
                    );
                    let _ = stream.write_all(format!("{head}{body}").as_bytes());
                }
            });
        }
    });
    (url, requests)
}

#[tokio::test]
async fn a_connection_is_not_reused_past_the_keep_alive_timeout_the_as_announced() {
    // timeout=1: this client keeps it idle at most 0 s (one second of margin):
    // every call on a new connection, none racing the AS's close.
    let (url, requests) = announcing_as(1, bound_claims(""));
    let env = rfc7662_env(&url);
    let (_, authz) = authorizer(&env);
    for _ in 0..3 {
        assert_eq!(effect(&decide(&env, &authz).await), "Allow");
    }
    assert_eq!(*requests.lock().unwrap(), [1, 1, 1]);
    // timeout=5: reused for up to 4 s.
    let (url, requests) = announcing_as(5, bound_claims(""));
    let env = rfc7662_env(&url);
    let (_, authz) = authorizer(&env);
    for _ in 0..3 {
        assert_eq!(effect(&decide(&env, &authz).await), "Allow");
    }
    assert_eq!(*requests.lock().unwrap(), [3]);
}

/// Started so that a test can say it received nothing at all.
struct Thief {
    listener: TcpListener,
}

impl Thief {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        Self { listener }
    }
    fn url(&self) -> String {
        format!("http://{}", self.listener.local_addr().unwrap())
    }
    fn connections(&self) -> usize {
        std::iter::from_fn(|| self.listener.accept().ok()).count()
    }
}

/// An AS that answers every request with the same raw HTTP response.
fn raw_as(response: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let response = Arc::new(response);
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let response = response.clone();
            std::thread::spawn(move || {
                while read_request(&mut stream).is_some() {
                    if stream.write_all(&response).is_err() {
                        return;
                    }
                }
            });
        }
    });
    url
}

/// The environment of `backend` pointed at `base` (a JWKS at `{base}/jwks`).
fn env_for(backend: &str, base: &str) -> HashMap<String, String> {
    let mut env = match backend {
        "authlete" => authlete_env(base, false, &[]),
        "rfc7662" => rfc7662_env(base),
        _ => [
            ("CERTBOUND_BACKEND", "jwt".to_owned()),
            ("CERTBOUND_JWT_ISSUER", "https://issuer.example".to_owned()),
            ("CERTBOUND_JWT_JWKS_URI", format!("{base}/jwks")),
            ("CERTBOUND_JWT_AUDIENCE", "https://api.example".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect(),
    };
    env.insert("CERTBOUND_TIMEOUT_MS".into(), "1000".into());
    env.insert("CERTBOUND_CONNECT_TIMEOUT_MS".into(), "300".into());
    env
}

/// A JWT naming kid `k1` (its signature is never checked: the keys cannot be had).
fn jwt() -> String {
    let part = |v: Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.{}",
        part(json!({"alg": "RS256", "typ": "at+jwt", "kid": "k1"})),
        part(json!({"iss": "https://issuer.example", "sub": "john"})),
        URL_SAFE_NO_PAD.encode([7u8; 256])
    )
}

/// One decision by `backend` against `base`: (effect, reason, detail, ms).
async fn one(backend: &str, base: &str) -> (String, String, String, u128) {
    let env = env_for(backend, base);
    let (config, authorizer) = authorizer(&env);
    let mut event = events_event();
    if backend == "jwt" {
        event["headers"]["Authorization"] = json!(format!("Bearer {}", jwt()));
        event["multiValueHeaders"]["Authorization"] = json!([format!("Bearer {}", jwt())]);
    }
    let started = Instant::now();
    let out = handle_event(&authorizer, config.http_api_response, event, None)
        .await
        .unwrap();
    let ms = started.elapsed().as_millis();
    let (why, detail) = reason(&out);
    (
        effect(&out).to_owned(),
        why.to_owned(),
        detail.to_owned(),
        ms,
    )
}

#[tokio::test]
async fn a_redirect_is_never_followed_and_the_other_host_receives_nothing() {
    for backend in ["authlete", "rfc7662", "jwt"] {
        let thief = Thief::start();
        for status in [301u16, 302, 303, 307, 308] {
            let base = raw_as(
                format!(
                    "HTTP/1.1 {status} Moved\r\nLocation: {}/steal\r\nContent-Length: 0\r\n\r\n",
                    thief.url()
                )
                .into_bytes(),
            );
            let (effect, why, detail, _) = one(backend, &base).await;
            assert_eq!(
                (effect.as_str(), why.as_str()),
                ("Deny", "as_error"),
                "{backend} {status}"
            );
            assert!(
                detail.contains(&format!("HTTP {status} (redirects are not followed)")),
                "{backend} {status}: {detail}"
            );
        }
        assert_eq!(
            thief.connections(),
            0,
            "{backend}: the other host was contacted"
        );
    }
}

#[tokio::test]
async fn the_same_failure_gives_the_same_reason_and_detail_on_every_backend() {
    let refused = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let http = |status: &str, ctype: &str, body: &[u8]| {
        let mut r = format!(
            "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        r.extend_from_slice(body);
        raw_as(r)
    };
    let depth = 100_000;
    let nested = [
        &b"{\"active\":true,\"x\":"[..],
        &b"[".repeat(depth),
        &b"]".repeat(depth),
        b"}",
    ]
    .concat();
    let big = [
        &b"{\"active\":true,\"pad\":\""[..],
        &b"x".repeat(10_000_000),
        b"\"}",
    ]
    .concat();
    let cases: Vec<(&str, String, &str, &str)> = vec![
        ("refused", refused, "as_unavailable", "connect refused"),
        (
            "503",
            http("503 Service Unavailable", "application/json", b"{}"),
            "as_error",
            "HTTP 503 (server error)",
        ),
        (
            "401",
            http("401 Unauthorized", "application/json", b"{}"),
            "as_error",
            "HTTP 401 (credentials refused)",
        ),
        (
            "403",
            http("403 Forbidden", "application/json", b"{}"),
            "as_error",
            "HTTP 403 (caller refused)",
        ),
        (
            "empty",
            http("200 OK", "application/json", b""),
            "as_error",
            "empty body",
        ),
        (
            "not JSON",
            http("200 OK", "text/html", b"<html>maintenance</html>"),
            "as_error",
            "body is not JSON (syntax error)",
        ),
        (
            "10 MB",
            http("200 OK", "application/json", &big),
            "as_error",
            "body larger than the limit",
        ),
        (
            "nested",
            http("200 OK", "application/json", &nested),
            "as_error",
            "JSON nested too deeply",
        ),
    ];
    for (name, base, want_reason, want_phrase) in cases {
        let mut details = Vec::new();
        for backend in ["authlete", "rfc7662", "jwt"] {
            let (effect, why, detail, ms) = one(backend, &base).await;
            assert_eq!(effect, "Deny", "{name} {backend}");
            assert_eq!(why, want_reason, "{name} {backend}: {detail}");
            assert!(detail.contains(want_phrase), "{name} {backend}: {detail}");
            // CERTBOUND_TIMEOUT_MS + 100 ms.
            assert!(ms < 1100, "{name} {backend}: {ms} ms");
            details.push(detail);
        }
        if name != "10 MB" {
            // Word for word (the JWKS size limit is smaller: 256 KiB).
            assert!(
                details.iter().all(|d| *d == details[0]),
                "{name}: {details:?}"
            );
        }
    }
}

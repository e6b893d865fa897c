//! The answer cache: every rule of `src/cache.rs`, against the Authlete
//! double (a deciding backend) and an RFC 7662 double (claims), with the
//! cache on.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use certbound::fronts::lambda::handle_event;
use certbound::{AuthRequest, Authorizer, Settings, StandardAuthorizer};
use common::*;
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

async fn calls(server: &MockServer) -> usize {
    server.received_requests().await.unwrap_or_default().len()
}

fn reason(out: &Value) -> &str {
    out["context"]["reason"].as_str().unwrap_or("-")
}

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

fn cached(env: &HashMap<String, String>, extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut env = env.clone();
    env.insert("CERTBOUND_CACHE_TTL_S".into(), "60".into());
    for (k, v) in extra {
        env.insert(k.to_string(), v.to_string());
    }
    env
}

struct Flow {
    config: certbound::config::Config,
    authorizer: StandardAuthorizer,
}

impl Flow {
    fn new(env: &HashMap<String, String>) -> Self {
        let (config, authorizer) = authorizer(env);
        Self { config, authorizer }
    }
    async fn run(&self, event: Value) -> Value {
        handle_event(&self.authorizer, self.config.http_api_response, event, None)
            .await
            .unwrap()
    }
}

/// An RFC 7662 endpoint answering `body` for every token (counted).
async fn rfc7662(body: Value) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/introspect"))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(&server)
        .await;
    server
}

fn rfc7662_env(server: &MockServer) -> HashMap<String, String> {
    [
        ("CERTBOUND_BACKEND", "rfc7662".to_owned()),
        (
            "CERTBOUND_INTROSPECTION_ENDPOINT",
            format!("{}/introspect", server.uri()),
        ),
        ("CERTBOUND_INTROSPECTION_CLIENT_ID", "rs".into()),
        ("CERTBOUND_INTROSPECTION_CLIENT_SECRET", "s".into()),
        (
            "CERTBOUND_SCOPE_RULES_INLINE",
            "[[rule]]\nmethod='GET'\npath='/accounts/*/balances'\nscopes=['accounts']\n\
             [[rule]]\nmethod='POST'\npath='/payments'\nscopes=['payments']"
                .into(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn payment(mut event: Value) -> Value {
    event["methodArn"] =
        json!("arn:aws:execute-api:eu-west-2:123456789012:a1b2c3d4e5/prod/POST/payments");
    event["resource"] = json!("/payments");
    event["path"] = json!("/payments");
    event["httpMethod"] = json!("POST");
    event["pathParameters"] = json!(null);
    event
}

#[tokio::test]
async fn claims_hits_never_cross_a_certificate_a_route_or_an_expiry() {
    let a = gen_cert("ec-p256", "client-a");
    let b = gen_cert("ec-p256", "client-b");
    let server = rfc7662(json!({"active": true, "sub": "alice", "scope": "accounts",
        "exp": now() + 3600, "cnf": {"x5t#S256": a.openssl_thumbprint}}))
    .await;
    let flow = Flow::new(&cached(&rfc7662_env(&server), &[]));
    let out = flow.run(rest_event(Some(&bearer()), Some(&a.pem))).await;
    assert_eq!(effect(&out), "Allow");
    assert_eq!(calls(&server).await, 1);
    // Same token, another certificate: decided from the cached claims.
    let out = flow.run(rest_event(Some(&bearer()), Some(&b.pem))).await;
    assert_eq!((effect(&out), reason(&out)), ("Deny", "cert_mismatch"));
    // Same token, a route that needs another scope.
    let out = flow
        .run(payment(rest_event(Some(&bearer()), Some(&a.pem))))
        .await;
    assert_eq!((effect(&out), reason(&out)), ("Deny", "scope_insufficient"));
    let out = flow.run(rest_event(Some(&bearer()), Some(&a.pem))).await;
    assert_eq!(effect(&out), "Allow");
    assert_eq!(calls(&server).await, 1, "all hits");
}

#[tokio::test]
async fn a_cached_answer_never_outlives_the_token() {
    let a = gen_cert("ec-p256", "client-a");
    let exp = now() + 2;
    let server = rfc7662(json!({"active": true, "sub": "alice", "scope": "accounts",
        "exp": exp, "cnf": {"x5t#S256": a.openssl_thumbprint}}))
    .await;
    let flow = Flow::new(&cached(
        &rfc7662_env(&server),
        &[("CERTBOUND_LEEWAY_S", "0")],
    ));
    assert_eq!(
        effect(&flow.run(rest_event(Some(&bearer()), Some(&a.pem))).await),
        "Allow"
    );
    assert_eq!(
        effect(&flow.run(rest_event(Some(&bearer()), Some(&a.pem))).await),
        "Allow"
    );
    assert_eq!(calls(&server).await, 1);
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let out = flow.run(rest_event(Some(&bearer()), Some(&a.pem))).await;
    assert_eq!((effect(&out), reason(&out)), ("Deny", "token_expired"));
    assert_eq!(calls(&server).await, 2, "the entry expired with the token");
}

#[tokio::test]
async fn deciding_backends_are_cached_per_certificate_and_scope_set() {
    let a = gen_cert("ec-p256", "client-a");
    let b = gen_cert("ec-p256", "client-b");
    let server = bound_double("OK", &a).await;
    let rules = "[[rule]]\nmethod='GET'\npath='/accounts/*/balances'\nscopes=['accounts']\n\
                 [[rule]]\nmethod='POST'\npath='/payments'\nscopes=['payments']";
    let flow = Flow::new(&cached(
        &authlete_env(
            &server.uri(),
            false,
            &[("CERTBOUND_SCOPE_RULES_INLINE", rules)],
        ),
        &[],
    ));
    assert_eq!(
        effect(&flow.run(rest_event(Some(&bearer()), Some(&a.pem))).await),
        "Allow"
    );
    assert_eq!(
        effect(&flow.run(rest_event(Some(&bearer()), Some(&a.pem))).await),
        "Allow"
    );
    assert_eq!(calls(&server).await, 1);
    // Another certificate: another key, Authlete is asked (and refuses).
    let out = flow.run(rest_event(Some(&bearer()), Some(&b.pem))).await;
    assert_eq!(effect(&out), "Deny");
    assert_eq!(calls(&server).await, 2);
    // Another scope set: another key.
    flow.run(payment(rest_event(Some(&bearer()), Some(&a.pem))))
        .await;
    assert_eq!(calls(&server).await, 3);
    // The negative answer for B was not kept (negative TTL 0).
    flow.run(rest_event(Some(&bearer()), Some(&b.pem))).await;
    assert_eq!(calls(&server).await, 4);
}

#[tokio::test]
async fn negative_answers_only_with_a_negative_ttl() {
    let a = gen_cert("ec-p256", "client-a");
    let server = rfc7662(json!({"active": false})).await;
    let flow = Flow::new(&cached(&rfc7662_env(&server), &[]));
    for _ in 0..3 {
        flow.run(rest_event(Some(&bearer()), Some(&a.pem))).await;
    }
    assert_eq!(calls(&server).await, 3);
    let flow = Flow::new(&cached(
        &rfc7662_env(&server),
        &[("CERTBOUND_CACHE_NEGATIVE_TTL_S", "5")],
    ));
    for _ in 0..3 {
        let out = flow.run(rest_event(Some(&bearer()), Some(&a.pem))).await;
        assert_eq!(reason(&out), "token_inactive");
    }
    assert_eq!(calls(&server).await, 4);
}

#[tokio::test]
async fn dpop_failures_and_server_errors_are_never_cached() {
    let a = gen_cert("ec-p256", "client-a");
    let server = bound_double("OK", &a).await;
    let flow = Flow::new(&cached(&authlete_env(&server.uri(), false, &[]), &[]));
    let mut dpop = rest_event(Some(&format!("DPoP {TOKEN}")), Some(&a.pem));
    dpop["headers"]["DPoP"] = json!("eyJ0eXAiOiJkcG9wK2p3dCJ9.eyJodG0iOiJHRVQifQ.c2ln");
    for _ in 0..3 {
        assert_eq!(effect(&flow.run(dpop.clone()).await), "Allow");
    }
    assert_eq!(
        calls(&server).await,
        3,
        "each DPoP proof is checked by the AS"
    );

    for answer in [
        ResponseTemplate::new(503),
        ResponseTemplate::new(200).set_body_string("not json"),
        ResponseTemplate::new(200).set_body_json(authlete_answer("INTERNAL_SERVER_ERROR")),
        ResponseTemplate::new(200)
            .set_body_json(authlete_answer("OK"))
            .set_delay(Duration::from_millis(800)),
    ] {
        let server = MockServer::start().await;
        mount_authlete(&server, answer).await;
        let flow = Flow::new(&cached(
            &authlete_env(&server.uri(), false, &[("CERTBOUND_TIMEOUT_MS", "300")]),
            &[],
        ));
        for _ in 0..2 {
            assert_eq!(
                effect(&flow.run(rest_event(Some(&bearer()), Some(&a.pem))).await),
                "Deny"
            );
        }
        assert_eq!(calls(&server).await, 2);
    }
}

#[tokio::test]
async fn an_expired_entry_is_never_used_even_when_the_as_is_down() {
    let a = gen_cert("ec-p256", "client-a");
    let server = bound_double("OK", &a).await;
    let flow = Flow::new(&cached(
        &authlete_env(&server.uri(), false, &[]),
        &[("CERTBOUND_CACHE_TTL_S", "1")],
    ));
    assert_eq!(
        effect(&flow.run(rest_event(Some(&bearer()), Some(&a.pem))).await),
        "Allow"
    );
    assert_eq!(
        effect(&flow.run(rest_event(Some(&bearer()), Some(&a.pem))).await),
        "Allow"
    );
    server.reset().await;
    mount_authlete(&server, ResponseTemplate::new(503)).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let out = flow.run(rest_event(Some(&bearer()), Some(&a.pem))).await;
    assert_eq!((effect(&out), reason(&out)), ("Deny", "as_error"));
}

/// Answers OK after a delay, counting calls.
#[derive(Clone)]
struct Slow(Arc<AtomicUsize>, BoundTo);

impl Respond for Slow {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.0.fetch_add(1, Ordering::SeqCst);
        self.1
            .respond(request)
            .set_delay(Duration::from_millis(300))
    }
}

#[tokio::test]
async fn concurrent_misses_make_one_call() {
    let a = gen_cert("ec-p256", "client-a");
    let server = MockServer::start().await;
    let count = Arc::new(AtomicUsize::new(0));
    mount_authlete(&server, Slow(count.clone(), bound("OK", &a))).await;
    let flow = Arc::new(Flow::new(&cached(
        &authlete_env(&server.uri(), false, &[]),
        &[],
    )));
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (flow, pem) = (flow.clone(), a.pem.clone());
            tokio::spawn(async move { flow.run(rest_event(Some(&bearer()), Some(&pem))).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(effect(&t.await.unwrap()), "Allow");
    }
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

/// Counts `on_enter` and `on_allow` around the standard authorizer.
struct Counting {
    inner: StandardAuthorizer,
    entered: AtomicUsize,
    allowed: AtomicUsize,
}

#[async_trait]
impl Authorizer for Counting {
    fn introspector(&self) -> &dyn certbound::Introspector {
        self.inner.introspector()
    }
    fn settings(&self) -> &Settings {
        self.inner.settings()
    }
    async fn on_enter(&self, _: &AuthRequest) {
        self.entered.fetch_add(1, Ordering::SeqCst);
    }
    async fn on_allow(&self, _: &AuthRequest, _: &certbound::Verdict) {
        self.allowed.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn hooks_run_on_hits_too() {
    let a = gen_cert("ec-p256", "client-a");
    let server = bound_double("OK", &a).await;
    let (config, inner) = authorizer(&cached(&authlete_env(&server.uri(), false, &[]), &[]));
    let counting = Counting {
        inner,
        entered: AtomicUsize::new(0),
        allowed: AtomicUsize::new(0),
    };
    for _ in 0..5 {
        handle_event(
            &counting,
            config.http_api_response,
            rest_event(Some(&bearer()), Some(&a.pem)),
            None,
        )
        .await
        .unwrap();
    }
    assert_eq!(calls(&server).await, 1);
    assert_eq!(counting.entered.load(Ordering::SeqCst), 5);
    assert_eq!(counting.allowed.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn capacity_is_bounded() {
    let a = gen_cert("ec-p256", "client-a");
    let server = rfc7662(
        json!({"active": true, "scope": "accounts", "exp": now() + 3600,
        "cnf": {"x5t#S256": a.openssl_thumbprint}}),
    )
    .await;
    let env = cached(
        &rfc7662_env(&server),
        &[("CERTBOUND_CACHE_MAX_ENTRIES", "50")],
    );
    let config = config(&env);
    let cache = certbound::cache::CachedBackend::new(
        Arc::new(certbound::backends::rfc7662::Rfc7662Introspector::new(
            certbound::transport::build_client(&config.http).unwrap(),
            match config.backend {
                certbound::config::BackendConfig::Rfc7662(c) => c,
                _ => unreachable!(),
            },
        )),
        config.cache,
    );
    for i in 0..500 {
        let request = certbound::IntrospectionRequest {
            token: format!("token-{i}").into(),
            scheme: certbound::request::Scheme::Bearer,
            scopes: None,
            client_cert: None,
            dpop: None,
            htm: None,
            htu: None,
        };
        let traced = certbound::Introspector::introspect_traced(&cache, &request).await;
        assert!(traced.result.is_ok());
    }
    let entries = cache.entries().await;
    assert!(entries <= 50, "{entries} entries");
    assert_eq!(calls(&server).await, 500);
}

#[test]
fn cache_settings_are_validated() {
    for (var, value) in [
        ("CERTBOUND_CACHE_TTL_S", "-1"),
        ("CERTBOUND_CACHE_TTL_S", "86400"),
        ("CERTBOUND_CACHE_NEGATIVE_TTL_S", "3600"),
        ("CERTBOUND_CACHE_MAX_ENTRIES", "0"),
    ] {
        let env = authlete_env("https://as.example", false, &[(var, value)]);
        let e = certbound::config::Config::from_env(&certbound::config::Env::from_map(&env))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with(&format!("{var} is invalid")), "{e}");
    }
}

/// `certbound serve` as a black box: the decision log says `cache`, and
/// `introspection_ms` only when the AS was asked.
#[tokio::test]
async fn the_decision_log_says_hit_miss_or_bypass() {
    use std::io::{BufRead, BufReader};
    let a = gen_cert("ec-p256", "client-a");
    let server = bound_double("OK", &a).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_certbound"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env_clear()
        .envs(cached(&authlete_env(&server.uri(), false, &[]), &[]))
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let lines = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| serde_json::from_str::<Value>(&l).ok())
            .filter(|l| l["message"] == "decision")
            .take(3)
            .collect::<Vec<_>>()
    });
    let client = certbound::transport::build_client(&Default::default()).unwrap();
    let cert = percent_encoding::utf8_percent_encode(&a.pem, percent_encoding::NON_ALPHANUMERIC)
        .to_string();
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (scheme, proof) in [
        ("Bearer", None),
        ("Bearer", None),
        ("DPoP", Some("eyJ0eXAiOiJkcG9wK2p3dCJ9.e30.c2ln")),
    ] {
        let mut r = client
            .get(format!("http://127.0.0.1:{port}/authorize"))
            .header("Authorization", format!("{scheme} {TOKEN}"))
            .header("X-Original-Method", "GET")
            .header("X-Original-URI", "/accounts/1/balances")
            .header("X-Ssl-Cert", &cert);
        if let Some(p) = proof {
            r = r.header("DPoP", p);
        }
        assert_eq!(r.send().await.unwrap().status(), 200);
    }
    let lines = lines.join().unwrap();
    child.kill().unwrap();
    let _ = child.wait();
    let seen: Vec<(&str, bool)> = lines
        .iter()
        .map(|l| {
            (
                l["cache"].as_str().unwrap_or("?"),
                l["introspection_ms"].is_number(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [("miss", true), ("hit", false), ("bypass", true)],
        "{lines:?}"
    );
}

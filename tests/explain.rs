//! `certbound explain`: the steps an operator reads, for the situations
//! they ask about, and never a token, a secret or a certificate body.

mod common;

use std::collections::HashMap;

use certbound::explain::{explain, request_from_event, request_from_http};
use certbound::Reason;
use common::*;
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const RS_SECRET: &str = "rs-client-secret-value";

fn rfc7662_env(base: &str) -> HashMap<String, String> {
    [
        ("CERTBOUND_BACKEND", "rfc7662".to_string()),
        (
            "CERTBOUND_INTROSPECTION_ENDPOINT",
            format!("{base}/introspect"),
        ),
        ("CERTBOUND_INTROSPECTION_CLIENT_ID", "rs".into()),
        ("CERTBOUND_INTROSPECTION_CLIENT_SECRET", RS_SECRET.into()),
        (
            "CERTBOUND_SCOPE_RULES_INLINE",
            "[[rule]]\nmethod='GET'\npath='/accounts/{id}/balances'\nscopes=['accounts']".into(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

async fn rfc7662_double(answer: serde_json::Value) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/introspect"))
        .respond_with(ResponseTemplate::new(200).set_body_json(answer))
        .mount(&server)
        .await;
    server
}

fn assert_nothing_secret(text: &str, cert_pem: &str) {
    assert!(!text.contains(TOKEN), "token in the explanation:\n{text}");
    assert!(!text.contains(RS_SECRET), "secret in the explanation");
    assert!(!text.contains(API_SECRET) && !text.contains(SERVICE_TOKEN));
    let body_line = cert_pem.lines().nth(1).unwrap();
    assert!(
        !text.contains(body_line),
        "certificate body in the explanation"
    );
    assert!(!text.contains("BEGIN CERTIFICATE"));
}

#[tokio::test]
async fn a_stolen_token_is_explained_as_cert_mismatch_with_both_thumbprints() {
    let owner = gen_cert("ec-p256", "owner");
    let thief = gen_cert("ec-p256", "thief");
    let server = rfc7662_double(json!({
        "active": true, "client_id": "tpp", "sub": "john", "scope": "accounts",
        "exp": 4_102_444_800i64, "cnf": {"x5t#S256": owner.openssl_thumbprint}
    }))
    .await;
    let config = config(&rfc7662_env(&server.uri()));
    let event = rest_event(Some(&format!("Bearer {TOKEN}")), Some(&thief.pem));
    let (request, kind) = request_from_event(event.to_string().as_bytes()).unwrap();
    assert_eq!(kind, "REQUEST event");
    let backend = certbound::bootstrap::bare_backend(&config).unwrap();
    let e = explain(&config, backend, &request, "test").await;
    assert_eq!(e.verdict.reason, Some(Reason::CertMismatch));
    let t = &e.text;
    assert!(
        t.contains("route         /accounts/{id}/balances id=1234"),
        "{t}"
    );
    assert!(t.contains("subject CN=thief"), "{t}");
    assert!(
        t.contains("rule #1 (GET /accounts/{id}/balances) requires: accounts"),
        "{t}"
    );
    assert!(t.contains("answered in"), "{t}");
    assert!(
        t.contains(&format!("cnf x5t#S256  {}", owner.openssl_thumbprint)),
        "{t}"
    );
    assert!(
        t.contains(&format!(
            "cert_mismatch: the token is bound to x5t#S256 {}, the request presented {}",
            owner.openssl_thumbprint, thief.openssl_thumbprint
        )),
        "{t}"
    );
    assert!(t.contains("certbound serve: HTTP 401"), "{t}");
    let hash = &certbound::request::token_hash(TOKEN)[..8];
    assert!(t.contains(&format!("sha256 {hash}")), "{t}");
    assert_nothing_secret(t, &thief.pem);
}

#[tokio::test]
async fn authlete_refusals_keep_the_result_code() {
    let cert = gen_cert("ec-p256", "client");
    let server = MockServer::start().await;
    mount_authlete(&server, bound("FORBIDDEN", &cert)).await;
    let config = config(&authlete_env(&server.uri(), false, &[]));
    let event = rest_event(Some(&format!("Bearer {TOKEN}")), Some(&cert.pem));
    let (request, _) = request_from_event(event.to_string().as_bytes()).unwrap();
    let backend = certbound::bootstrap::bare_backend(&config).unwrap();
    let e = explain(&config, backend, &request, "test").await;
    assert_eq!(e.verdict.reason, Some(Reason::ScopeInsufficient));
    assert_eq!(e.verdict.context["resultCode"].to_string(), "A064302");
    let t = &e.text;
    assert!(t.contains("resultCode    A064302"), "{t}");
    assert!(t.contains("scope_insufficient"), "{t}");
    assert!(t.contains("certbound serve: HTTP 403"), "{t}");
    assert_nothing_secret(t, &cert.pem);
}

#[tokio::test]
async fn local_refusals_say_the_backend_was_not_asked() {
    let server = rfc7662_double(json!({"active": true})).await;
    let config = config(&rfc7662_env(&server.uri()));
    let raw = format!(
        "GET /authorize HTTP/1.1\nHost: x\nX-Original-Method: GET\n\
         X-Original-URI: /accounts/1%2F2/balances\nAuthorization: Bearer {TOKEN}\n"
    );
    let (request, _) = request_from_http(raw.as_bytes(), &config.serve).unwrap();
    let backend = certbound::bootstrap::bare_backend(&config).unwrap();
    let e = explain(&config, backend, &request, "test").await;
    assert_eq!(e.verdict.reason, Some(Reason::PathRejected));
    assert!(e.text.contains("not asked"), "{}", e.text);
    assert!(server.received_requests().await.unwrap().is_empty());
    // A request without the proxy's headers is not understood.
    let err = request_from_http(b"GET /authorize HTTP/1.1\r\nHost: x\r\n\r\n", &config.serve)
        .unwrap_err();
    assert!(err.contains("x-original-method"), "{err}");
}

#[tokio::test]
async fn the_command_prints_the_steps_and_exits_1_on_refusal() {
    let cert = gen_cert("ec-p256", "client");
    let server = rfc7662_double(json!({"active": false})).await;
    let dir = tempfile::tempdir().unwrap();
    let event = dir.path().join("event.json");
    std::fs::write(
        &event,
        rest_event(Some(&format!("Bearer {TOKEN}")), Some(&cert.pem)).to_string(),
    )
    .unwrap();
    let env = rfc7662_env(&server.uri());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_certbound"))
            .args(["explain", "--event"])
            .arg(&event)
            .env_clear()
            .envs(&env)
            .env("RUST_LOG", "debug")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("4. decided by\n   token_inactive"),
        "{stdout}"
    );
    assert_nothing_secret(&stdout, &cert.pem);
    assert_nothing_secret(&stderr, &cert.pem);
}

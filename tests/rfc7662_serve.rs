//! The RFC 7662 backend's own decisions, and the HTTP auth front
//! (`certbound serve`) with every certificate header format.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use certbound::backends::rfc7662::parse_response;
use certbound::backends::{Answer, IntrospectionResponse};
use certbound::cert::ClientCert;
use certbound::decision::{before_backend, decide, BindingPolicy, Facts, Validation};
use certbound::request::{parse_authorization, AuthRequest, PresentedCert, Source};
use certbound::Action;
use common::*;
use serde_json::{json, Value};
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const NOW: i64 = 1_800_000_000;

/// The core's decision over an RFC 7662 answer, as `authorize` makes it.
fn run_decide(
    body: Value,
    cert: Option<&ClientCert>,
    scopes: Option<&[&str]>,
    scheme: &str,
    binding: BindingPolicy,
) -> IntrospectionResponse {
    let mut r = AuthRequest::new(Source::Http, "GET", "/x", "GET /x");
    r.credentials = parse_authorization(&format!("{scheme} {TOKEN}"));
    r.client_cert = cert
        .map(|c| PresentedCert::Present(c.clone()))
        .unwrap_or_default();
    let scopes: Option<Vec<String>> = scopes.map(|s| s.iter().map(|x| x.to_string()).collect());
    let facts = Facts {
        request: &r,
        scopes: scopes.as_deref(),
        backend_verifies_dpop: false,
        realm: None,
    };
    let validation = Validation {
        binding,
        ..Validation::default()
    };
    before_backend(&facts, &validation).unwrap_or_else(|| {
        decide(
            &facts,
            &validation,
            Answer::Claims(parse_response(body).unwrap()),
            NOW,
        )
    })
}

#[test]
fn rfc7662_decisions() {
    let a = gen_cert("ec-p256", "client-a");
    let b = gen_cert("rsa", "client-b");
    let cert_a = ClientCert::from_pem(&a.pem).unwrap();
    let cert_b = ClientCert::from_pem(&b.pem).unwrap();
    let bound = |extra: Value| {
        let mut v = json!({"active": true, "client_id": "client-a", "sub": "client-a", "scope": "api:read api:write",
                           "exp": NOW + 60, "iat": NOW - 60, "token_type": "Bearer",
                           "cnf": {"x5t#S256": a.openssl_thumbprint}});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        v
    };
    use BindingPolicy::{Certificate as Required, Off};
    type Case<'a> = (
        &'a str,
        Value,
        Option<&'a ClientCert>,
        Option<&'a [&'a str]>,
        &'a str,
        BindingPolicy,
        Action,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            "valid",
            bound(json!({})),
            Some(&cert_a),
            Some(&["api:read"]),
            "Bearer",
            Required,
            Action::Ok,
            "certbound.ok",
        ),
        (
            "no scope required",
            bound(json!({})),
            Some(&cert_a),
            None,
            "Bearer",
            Required,
            Action::Ok,
            "certbound.ok",
        ),
        (
            "inactive",
            json!({"active": false}),
            Some(&cert_a),
            None,
            "Bearer",
            Required,
            Action::Unauthorized,
            "certbound.token_inactive",
        ),
        (
            "expired beyond the leeway",
            bound(json!({"exp": NOW - 11})),
            Some(&cert_a),
            None,
            "Bearer",
            Required,
            Action::Unauthorized,
            "certbound.token_expired",
        ),
        (
            "expired within the leeway",
            bound(json!({"exp": NOW - 5})),
            Some(&cert_a),
            None,
            "Bearer",
            Required,
            Action::Ok,
            "certbound.ok",
        ),
        (
            "not yet valid",
            bound(json!({"nbf": NOW + 11})),
            Some(&cert_a),
            None,
            "Bearer",
            Required,
            Action::Unauthorized,
            "certbound.token_not_yet_valid",
        ),
        (
            "nbf within the leeway",
            bound(json!({"nbf": NOW + 5})),
            Some(&cert_a),
            None,
            "Bearer",
            Required,
            Action::Ok,
            "certbound.ok",
        ),
        (
            "issued in the future",
            bound(json!({"iat": NOW + 60})),
            Some(&cert_a),
            None,
            "Bearer",
            Required,
            Action::Unauthorized,
            "certbound.token_not_yet_valid",
        ),
        (
            "other cert",
            bound(json!({})),
            Some(&cert_b),
            None,
            "Bearer",
            Required,
            Action::Unauthorized,
            "certbound.cert_mismatch",
        ),
        (
            "no cert",
            bound(json!({})),
            None,
            None,
            "Bearer",
            Required,
            Action::Unauthorized,
            "certbound.cert_missing",
        ),
        (
            "no cert, binding optional, bound token",
            bound(json!({})),
            None,
            None,
            "Bearer",
            Off,
            Action::Unauthorized,
            "certbound.cert_missing",
        ),
        (
            "unbound, binding required",
            json!({"active": true, "scope": "api:read"}),
            Some(&cert_a),
            None,
            "Bearer",
            Required,
            Action::Unauthorized,
            "certbound.token_unbound",
        ),
        (
            "unbound, binding optional",
            json!({"active": true, "scope": "api:read"}),
            None,
            Some(&["api:read"]),
            "Bearer",
            Off,
            Action::Ok,
            "certbound.ok",
        ),
        (
            "bound even when binding optional",
            bound(json!({})),
            Some(&cert_b),
            None,
            "Bearer",
            Off,
            Action::Unauthorized,
            "certbound.cert_mismatch",
        ),
        (
            "missing scope",
            bound(json!({})),
            Some(&cert_a),
            Some(&["api:read", "admin"]),
            "Bearer",
            Required,
            Action::Forbidden,
            "certbound.scope_insufficient",
        ),
        (
            "DPoP-bound token as bearer",
            bound(json!({"cnf": {"jkt": "abc", "x5t#S256": a.openssl_thumbprint}})),
            Some(&cert_a),
            None,
            "Bearer",
            Required,
            Action::Unauthorized,
            "certbound.dpop_unverifiable",
        ),
        (
            "DPoP scheme",
            bound(json!({})),
            Some(&cert_a),
            None,
            "DPoP",
            Required,
            Action::Unauthorized,
            "certbound.dpop_unverifiable",
        ),
        (
            "DPoP scheme, certificate-or-dpop",
            bound(json!({})),
            Some(&cert_a),
            None,
            "DPoP",
            BindingPolicy::CertificateOrDpop,
            Action::Unauthorized,
            "certbound.dpop_unverifiable",
        ),
        (
            "case of thumbprint matters",
            bound(json!({"cnf": {"x5t#S256": a.openssl_thumbprint.to_lowercase()}})),
            Some(&cert_a),
            None,
            "Bearer",
            Required,
            Action::Unauthorized,
            "certbound.cert_mismatch",
        ),
        (
            "standard base64 thumbprint never matches",
            bound(
                json!({"cnf": {"x5t#S256": a.openssl_thumbprint.replace('-', "+").replace('_', "/")}}),
            ),
            Some(&cert_a),
            None,
            "Bearer",
            Required,
            if a.openssl_thumbprint.contains(['-', '_']) {
                Action::Unauthorized
            } else {
                Action::Ok
            },
            if a.openssl_thumbprint.contains(['-', '_']) {
                "certbound.cert_mismatch"
            } else {
                "certbound.ok"
            },
        ),
    ];
    for (name, body, cert, scopes, scheme, binding, action, code) in cases {
        let r = run_decide(body, cert, scopes, scheme, binding);
        assert_eq!(r.action, action, "{name}");
        assert_eq!(r.result_code.as_deref(), Some(code), "{name}");
        let challenge = r.challenge.as_ref().map(ToString::to_string);
        match action {
            Action::Ok => assert!(challenge.is_none(), "{name}"),
            Action::Forbidden => assert_eq!(
                challenge.as_deref(),
                Some(
                    r#"Bearer error="insufficient_scope",error_description="token lacks a required scope",scope="admin""#
                ),
                "{name}"
            ),
            _ => assert!(
                challenge
                    .as_deref()
                    .unwrap()
                    .contains("error=\"invalid_token\""),
                "{name}"
            ),
        }
    }
    let ok = run_decide(bound(json!({})), Some(&cert_a), None, "Bearer", Required);
    assert_eq!(ok.client_id.as_deref(), Some("client-a"));
    assert_eq!(
        ok.scopes,
        Some(vec!["api:read".to_string(), "api:write".to_string()])
    );
    assert_eq!(ok.expires_at_ms, Some((NOW + 60) * 1000));
}

const RS_ID: &str = "certbound-rs";
const RS_SECRET: &str = "rs secret/with+chars";

/// An RFC 7662 endpoint double: client_secret_basic with form-encoded
/// credentials (RFC 6749 §2.3.1), form body with the token.
async fn rfc7662_double(answer: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    let basic = format!(
        "Basic {}",
        STANDARD.encode("certbound-rs:rs%20secret%2Fwith%2Bchars")
    );
    Mock::given(method("POST"))
        .and(path("/token/introspection"))
        .and(header("authorization", basic.as_str()))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(body_string_contains(format!("token={TOKEN}").as_str()))
        .and(body_string_contains("token_type_hint=access_token"))
        .respond_with(answer)
        .mount(&server)
        .await;
    server
}

fn rfc7662_env(base: &str, extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut env: HashMap<String, String> = [
        ("CERTBOUND_BACKEND", "rfc7662".to_string()),
        ("CERTBOUND_INTROSPECTION_ENDPOINT", format!("{base}/token/introspection")),
        ("CERTBOUND_INTROSPECTION_CLIENT_ID", RS_ID.into()),
        ("CERTBOUND_INTROSPECTION_CLIENT_SECRET", RS_SECRET.into()),
        ("CERTBOUND_SCOPE_RULES_INLINE", "[[rule]]\nmethod='GET'\npath='/example'\nscopes=['api:read']\n[[rule]]\nmethod='POST'\npath='/example'\nscopes=['api:write']".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    for (k, v) in extra {
        env.insert(k.to_string(), v.to_string());
    }
    env
}

async fn serve(env: &HashMap<String, String>) -> String {
    let (config, authorizer) = authorizer(env);
    let limits = config.serve.limits;
    let app = certbound::fronts::http::router(Arc::new(authorizer), config.serve);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(certbound::fronts::http::run(
        listener,
        app,
        limits,
        std::future::pending(),
    ));
    format!("http://{addr}")
}

struct Call<'a> {
    method: &'a str,
    uri: &'a str,
    token: Option<&'a str>,
    cert: Option<(&'a str, String)>,
}

async fn call(base: &str, c: Call<'_>) -> reqwest::Response {
    let client = certbound::transport::build_client(&Default::default()).unwrap();
    let mut r = client
        .get(format!("{base}/authorize"))
        .header("X-Original-Method", c.method)
        .header("X-Original-URI", c.uri);
    if let Some(t) = c.token {
        r = r.header("Authorization", t);
    }
    if let Some((name, value)) = c.cert {
        r = r.header(name, value);
    }
    r.send().await.unwrap()
}

fn www(r: &reqwest::Response) -> String {
    r.headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn serve_mode_matrix() {
    let a = gen_cert("ec-p256", "client-a");
    let b = gen_cert("ec-p256", "client-b");
    let answer = json!({"active": true, "client_id": "client-a", "sub": "client-a", "scope": "api:read",
                        "exp": 4_000_000_000i64, "cnf": {"x5t#S256": a.openssl_thumbprint}});
    let as_server = rfc7662_double(ResponseTemplate::new(200).set_body_json(answer)).await;
    let base = serve(&rfc7662_env(&as_server.uri(), &[])).await;
    let bearer = format!("Bearer {TOKEN}");
    let nginx = |pem: &str| {
        (
            "x-ssl-cert",
            percent_encoding::utf8_percent_encode(pem, percent_encoding::NON_ALPHANUMERIC)
                .to_string(),
        )
    };

    // A's cert + A's token → 200 with the context as headers.
    let r = call(
        &base,
        Call {
            method: "GET",
            uri: "/example?x=1",
            token: Some(&bearer),
            cert: Some(nginx(&a.pem)),
        },
    )
    .await;
    assert_eq!(r.status(), 200);
    let h = r.headers();
    assert_eq!(h["x-certbound-sub"], "client-a");
    assert_eq!(h["x-certbound-client-id"], "client-a");
    assert_eq!(h["x-certbound-scope"], "api:read");
    assert_eq!(
        h["x-certbound-cert-thumbprint"],
        a.openssl_thumbprint.as_str()
    );
    assert!(h.get("www-authenticate").is_none());

    // B's cert → 401 invalid_token.
    let r = call(
        &base,
        Call {
            method: "GET",
            uri: "/example",
            token: Some(&bearer),
            cert: Some(nginx(&b.pem)),
        },
    )
    .await;
    assert_eq!(r.status(), 401);
    assert!(
        www(&r).starts_with("Bearer error=\"invalid_token\""),
        "{}",
        www(&r)
    );
    assert!(r.headers().get("x-certbound-sub").is_none());
    assert_eq!(r.headers()["x-certbound-reason"], "cert_mismatch");

    // No cert → 401; no token → 401 with a bare challenge; bad scheme → 401 invalid_request.
    let r = call(
        &base,
        Call {
            method: "GET",
            uri: "/example",
            token: Some(&bearer),
            cert: None,
        },
    )
    .await;
    assert_eq!(
        (r.status().as_u16(), www(&r).contains("invalid_token")),
        (401, true)
    );
    let r = call(
        &base,
        Call {
            method: "GET",
            uri: "/example",
            token: None,
            cert: Some(nginx(&a.pem)),
        },
    )
    .await;
    assert_eq!((r.status().as_u16(), www(&r)), (401, "Bearer".to_string()));
    let r = call(
        &base,
        Call {
            method: "GET",
            uri: "/example",
            token: Some("Basic eDp5"),
            cert: Some(nginx(&a.pem)),
        },
    )
    .await;
    assert_eq!(
        (r.status().as_u16(), www(&r).contains("invalid_request")),
        (401, true)
    );

    // Missing scope → 403 insufficient_scope with scope="api:write".
    let r = call(
        &base,
        Call {
            method: "POST",
            uri: "/example",
            token: Some(&bearer),
            cert: Some(nginx(&a.pem)),
        },
    )
    .await;
    assert_eq!(r.status(), 403);
    assert!(
        www(&r).contains("error=\"insufficient_scope\"") && www(&r).contains("scope=\"api:write\""),
        "{}",
        www(&r)
    );
    // Path tricks do not escape the rule.
    let r = call(
        &base,
        Call {
            method: "POST",
            uri: "/foo/../example/",
            token: Some(&bearer),
            cert: Some(nginx(&a.pem)),
        },
    )
    .await;
    assert_eq!(r.status(), 403);

    // Garbage in the certificate header → 401, never 200.
    let r = call(
        &base,
        Call {
            method: "GET",
            uri: "/example",
            token: Some(&bearer),
            cert: Some(("x-ssl-cert", "garbage".into())),
        },
    )
    .await;
    assert_eq!(r.status(), 401);

    // Health.
    let r = reqwest::get(format!("{base}/healthz")).await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn serve_mode_understands_envoy_and_rfc9440_headers() {
    let a = gen_cert("rsa", "client-a");
    let answer = json!({"active": true, "sub": "s", "scope": "api:read", "cnf": {"x5t#S256": a.openssl_thumbprint}});
    let as_server = rfc7662_double(ResponseTemplate::new(200).set_body_json(answer)).await;
    let bearer = format!("Bearer {TOKEN}");
    let url_pem = percent_encoding::utf8_percent_encode(&a.pem, percent_encoding::NON_ALPHANUMERIC)
        .to_string();
    for (format, header_name, value) in [
        (
            "xfcc",
            "x-forwarded-client-cert",
            format!(
                "By=spiffe://gw;Hash=00;Cert=\"{}\";Subject=\"CN=client-a\"",
                envoy_escape(&a.pem)
            ),
        ),
        (
            "rfc9440",
            "client-cert",
            format!(":{}:", STANDARD.encode(&a.der)),
        ),
    ] {
        let base = serve(&rfc7662_env(
            &as_server.uri(),
            &[("CERTBOUND_CERT_FORMAT", format)],
        ))
        .await;
        let r = call(
            &base,
            Call {
                method: "GET",
                uri: "/example",
                token: Some(&bearer),
                cert: Some((header_name, value.clone())),
            },
        )
        .await;
        assert_eq!(r.status(), 200, "{header_name}");
        // The nginx header is ignored when another header is configured.
        let r = call(
            &base,
            Call {
                method: "GET",
                uri: "/example",
                token: Some(&bearer),
                cert: Some(("x-ssl-cert", url_pem.clone())),
            },
        )
        .await;
        assert_eq!(
            r.status(),
            401,
            "{header_name}: only the configured header is trusted"
        );
    }
}

#[tokio::test]
async fn serve_mode_as_failures_are_500() {
    let a = gen_cert("ec-p256", "client-a");
    let bearer = format!("Bearer {TOKEN}");
    let url_pem = percent_encoding::utf8_percent_encode(&a.pem, percent_encoding::NON_ALPHANUMERIC)
        .to_string();
    for answer in [
        ResponseTemplate::new(503),
        ResponseTemplate::new(200).set_body_string("not json"),
        ResponseTemplate::new(200).set_body_json(json!({"active": "yes"})),
        ResponseTemplate::new(200).set_body_json(json!({"scope": "api:read"})),
    ] {
        let as_server = rfc7662_double(answer).await;
        let base = serve(&rfc7662_env(&as_server.uri(), &[])).await;
        let r = call(
            &base,
            Call {
                method: "GET",
                uri: "/example",
                token: Some(&bearer),
                cert: Some(("x-ssl-cert", url_pem.clone())),
            },
        )
        .await;
        assert_eq!(r.status(), 500);
        assert!(www(&r).contains("server_error"));
    }
    // Wrong client secret: the double does not match → 404 → 500, never 200.
    let as_server =
        rfc7662_double(ResponseTemplate::new(200).set_body_json(json!({"active": true}))).await;
    let base = serve(&rfc7662_env(
        &as_server.uri(),
        &[("CERTBOUND_INTROSPECTION_CLIENT_SECRET", "wrong")],
    ))
    .await;
    let r = call(
        &base,
        Call {
            method: "GET",
            uri: "/example",
            token: Some(&bearer),
            cert: Some(("x-ssl-cert", url_pem)),
        },
    )
    .await;
    assert_eq!(r.status(), 500);
}

#[tokio::test]
async fn rfc7662_backend_through_the_lambda_front() {
    let a = gen_cert("ed25519", "client-a");
    let b = gen_cert("ed25519", "client-b");
    let answer = json!({"active": true, "sub": "client-a", "client_id": "client-a", "scope": "api:read",
                        "cnf": {"x5t#S256": a.openssl_thumbprint}});
    let as_server = rfc7662_double(ResponseTemplate::new(200).set_body_json(answer)).await;
    let (config, authz) = authorizer(&rfc7662_env(&as_server.uri(), &[]));
    let bearer = format!("Bearer {TOKEN}");
    let run = |pem: String| {
        let event = rest_event(Some(&bearer), Some(&pem));
        let (c, a) = (&config, &authz);
        async move {
            certbound::fronts::lambda::handle_event(a, c.http_api_response, event, None)
                .await
                .unwrap()
        }
    };
    let out = run(a.pem.clone()).await;
    assert_eq!(effect(&out), "Allow");
    assert_eq!(out["principalId"], "client-a");
    let out = run(b.pem.clone()).await;
    assert_eq!(effect(&out), "Deny");
    assert_eq!(out["context"]["action"], "UNAUTHORIZED");
}

#[tokio::test]
async fn a_token_the_as_does_not_introspect_is_invalid_not_an_as_failure() {
    // node oidc-provider answers 400 unsupported_token_type for a JWT: the
    // client sent a token this AS does not take, the AS is fine (401, not 500).
    let a = gen_cert("ec-p256", "client-a");
    let url_pem = percent_encoding::utf8_percent_encode(&a.pem, percent_encoding::NON_ALPHANUMERIC)
        .to_string();
    let bearer = format!("Bearer {TOKEN}");
    for (answer, status, reason) in [
        (
            ResponseTemplate::new(400).set_body_json(json!({"error": "unsupported_token_type",
                "error_description": "Structured JWT Tokens cannot be introspected via the introspection_endpoint"})),
            401,
            "token_invalid",
        ),
        (
            ResponseTemplate::new(400).set_body_json(json!({"error": "invalid_request"})),
            500,
            "as_error",
        ),
    ] {
        let as_server = rfc7662_double(answer).await;
        let base = serve(&rfc7662_env(&as_server.uri(), &[])).await;
        let r = call(
            &base,
            Call {
                method: "GET",
                uri: "/example",
                token: Some(&bearer),
                cert: Some(("x-ssl-cert", url_pem.clone())),
            },
        )
        .await;
        assert_eq!(r.status(), status);
        assert_eq!(r.headers()["x-certbound-reason"], reason);
    }
}

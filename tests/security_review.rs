//! The security review's findings, one test (or more) each: every one of
//! them produced an honest `OK` for the wrong request on the code before
//! the decision moved into the core.
//!
//! 1. Authlete never enforced binding.      5. Scope rules failed open.
//! 2. XFCC: the client's element won.       6. The secret could set anything.
//! 3. serve trusted client method/URI.      7. Tokens reached logs / Debug.
//! 4. Rules saw another path than routers.  8. HTTP API 1.0 / typed events.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use certbound::fronts::lambda::{handle_event, Event, HandlerError};
use certbound::{AuthRequest, Authorizer, Context, IntrospectionError, IntrospectionRequest};
use certbound::{IntrospectionResponse, Introspector, Settings, StandardAuthorizer};
use common::*;
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn run(env: &HashMap<String, String>, event: Value) -> Result<Value, HandlerError> {
    let (c, a) = authorizer(env);
    handle_event(&a, c.http_api_response, event, None).await
}

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

async fn calls(server: &MockServer) -> usize {
    server.received_requests().await.unwrap_or_default().len()
}

fn reason(out: &Value) -> &str {
    out["context"]["reason"].as_str().unwrap_or("-")
}

// ---------------------------------------------------------------- 1 -------

#[tokio::test]
async fn f1_authlete_unbound_token_without_certificate_is_refused_before_the_as() {
    // Any client of the Authlete service without certificate-bound tokens:
    // the AS says OK and names no certificateThumbprint.
    let server = authlete_double("OK").await;
    let env = authlete_env(&server.uri(), false, &[]);
    let out = run(&env, rest_event(Some(&bearer()), None)).await.unwrap();
    assert_eq!((effect(&out), reason(&out)), ("Deny", "cert_missing"));
    let token_event = json!({"type": "TOKEN", "authorizationToken": bearer(), "methodArn": ARN});
    let out = run(&env, token_event.clone()).await.unwrap();
    assert_eq!((effect(&out), reason(&out)), ("Deny", "cert_missing"));
    assert!(
        out["context"]["resultMessage"]
            .as_str()
            .unwrap()
            .contains("TOKEN authorizers never see it"),
        "{out}"
    );
    let strict = authlete_env(&server.uri(), false, &[("CERTBOUND_POLICY", "false")]);
    assert_eq!(
        run(&strict, token_event).await.unwrap_err(),
        HandlerError::Unauthorized
    );
    assert_eq!(
        calls(&server).await,
        0,
        "no AS call for a request that cannot succeed"
    );
}

#[tokio::test]
async fn f1_authlete_ok_is_checked_against_the_presented_certificate() {
    let a = gen_cert("ec-p256", "client-a");
    let b = gen_cert("ec-p256", "client-b");
    // An AS that says OK for a token bound to A whatever certificate it is
    // given (misconfigured, or not given the certificate at all).
    let server = MockServer::start().await;
    let mut answer = authlete_answer("OK");
    answer["certificateThumbprint"] = json!(a.openssl_thumbprint);
    mount_authlete(&server, ResponseTemplate::new(200).set_body_json(answer)).await;
    let env = authlete_env(&server.uri(), true, &[]);
    let out = run(&env, rest_event(Some(&bearer()), Some(&b.pem)))
        .await
        .unwrap();
    assert_eq!((effect(&out), reason(&out)), ("Deny", "cert_mismatch"));
    assert!(out["context"]["challenge"]
        .as_str()
        .unwrap()
        .contains("invalid_token"));
    let out = run(&env, rest_event(Some(&bearer()), Some(&a.pem)))
        .await
        .unwrap();
    assert_eq!(effect(&out), "Allow");
    // Even with binding off, a bound token needs its certificate.
    let off = authlete_env(
        &server.uri(),
        true,
        &[("CERTBOUND_REQUIRE_BINDING", "false")],
    );
    let out = run(&off, rest_event(Some(&bearer()), Some(&b.pem)))
        .await
        .unwrap();
    assert_eq!((effect(&out), reason(&out)), ("Deny", "cert_mismatch"));
    let out = run(&off, rest_event(Some(&bearer()), None)).await.unwrap();
    assert_eq!((effect(&out), reason(&out)), ("Deny", "cert_missing"));
}

#[tokio::test]
async fn f1_authlete_unbound_token_with_a_certificate_is_refused_unless_binding_is_off() {
    let a = gen_cert("ec-p256", "client-a");
    let server = authlete_double("OK").await;
    let env = authlete_env(&server.uri(), false, &[]);
    let out = run(&env, rest_event(Some(&bearer()), Some(&a.pem)))
        .await
        .unwrap();
    assert_eq!((effect(&out), reason(&out)), ("Deny", "token_unbound"));
    let off = authlete_env(
        &server.uri(),
        false,
        &[("CERTBOUND_REQUIRE_BINDING", "false")],
    );
    for cert in [Some(a.pem.as_str()), None] {
        let out = run(&off, rest_event(Some(&bearer()), cert)).await.unwrap();
        assert_eq!(effect(&out), "Allow", "binding off: unbound tokens pass");
    }
}

#[tokio::test]
async fn f1_dpop_bound_tokens_need_an_explicit_policy_and_a_verified_proof() {
    let server = authlete_double("OK").await; // unbound to any certificate
    let dpop_event = |proof: bool, scheme: &str| {
        let mut e = rest_event(Some(&format!("{scheme} {TOKEN}")), None);
        if proof {
            e["headers"]["DPoP"] = json!("eyJ0eXAiOiJkcG9wK2p3dCJ9.eyJodG0iOiJHRVQifQ.c2ln");
        }
        e
    };
    let default = authlete_env(&server.uri(), false, &[]);
    let out = run(&default, dpop_event(true, "DPoP")).await.unwrap();
    assert_eq!((effect(&out), reason(&out)), ("Deny", "cert_missing"));
    assert_eq!(calls(&server).await, 0);

    let either = authlete_env(
        &server.uri(),
        false,
        &[("CERTBOUND_REQUIRE_BINDING", "certificate-or-dpop")],
    );
    let out = run(&either, dpop_event(true, "DPoP")).await.unwrap();
    assert_eq!(effect(&out), "Allow", "{out}");
    let sent = received_bodies(&server).await;
    assert_eq!(sent.len(), 1);
    assert!(sent[0]["dpop"].is_string() && sent[0]["htm"] == "GET" && sent[0]["htu"].is_string());
    // Never a plain bearer token, and never DPoP without a proof.
    let out = run(&either, dpop_event(false, "Bearer")).await.unwrap();
    assert_eq!((effect(&out), reason(&out)), ("Deny", "cert_missing"));
    let out = run(&either, dpop_event(false, "DPoP")).await.unwrap();
    assert_eq!((effect(&out), reason(&out)), ("Deny", "cert_missing"));
    let a = gen_cert("ec-p256", "client-a");
    let out = run(&either, rest_event(Some(&bearer()), Some(&a.pem)))
        .await
        .unwrap();
    assert_eq!((effect(&out), reason(&out)), ("Deny", "token_unbound"));
}

#[tokio::test]
async fn f1_authlete_expiry_is_checked_too() {
    let a = gen_cert("ec-p256", "client-a");
    let server = MockServer::start().await;
    let mut answer = authlete_answer("OK");
    answer["certificateThumbprint"] = json!(a.openssl_thumbprint);
    answer["expiresAt"] = json!(1_000_000_000_000i64);
    mount_authlete(&server, ResponseTemplate::new(200).set_body_json(answer)).await;
    let env = authlete_env(&server.uri(), false, &[]);
    let out = run(&env, rest_event(Some(&bearer()), Some(&a.pem)))
        .await
        .unwrap();
    assert_eq!((effect(&out), reason(&out)), ("Deny", "token_expired"));
}

// ------------------------------------------------------------- serve ------

const RS_SECRET: &str = "rs-secret-value";

/// An RFC 7662 endpoint whose token is bound to `thumbprint` and carries
/// `scope`; counts calls.
async fn rfc7662_as(thumbprint: &str, scope: &str) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/introspect"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "active": true, "sub": "client-a", "client_id": "client-a", "scope": scope,
            "exp": 4_102_444_800i64, "cnf": {"x5t#S256": thumbprint}
        })))
        .mount(&server)
        .await;
    server
}

const RULES: &str = "[[rule]]\nmethod='GET'\npath='/example'\nscopes=['api:read']\n\
    [[rule]]\nmethod='POST'\npath='/example'\nscopes=['api:write']\n\
    [[rule]]\nmethod='*'\npath='/accounts/*/balances'\nscopes=['accounts']\n\
    [[rule]]\nmethod='*'\npath='/admin/**'\nscopes=['admin']\n\
    [[rule]]\nmethod='GET'\npath='/public'\nscopes=[]";

fn rfc7662_env(server: &MockServer, extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut env: HashMap<String, String> = [
        ("CERTBOUND_BACKEND", "rfc7662".to_owned()),
        (
            "CERTBOUND_INTROSPECTION_ENDPOINT",
            format!("{}/introspect", server.uri()),
        ),
        ("CERTBOUND_INTROSPECTION_CLIENT_ID", "rs".into()),
        ("CERTBOUND_INTROSPECTION_CLIENT_SECRET", RS_SECRET.into()),
        ("CERTBOUND_SCOPE_RULES_INLINE", RULES.into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for (k, v) in extra {
        env.insert(k.to_string(), v.to_string());
    }
    env
}

async fn serve_with(authorizer: Arc<dyn Authorizer>, env: &HashMap<String, String>) -> String {
    let app = certbound::fronts::http::router(authorizer, config(env).serve);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

async fn serve(env: &HashMap<String, String>) -> String {
    let (_, a) = authorizer(env);
    serve_with(Arc::new(a), env).await
}

/// A raw HTTP/1.1 request (repeated headers, odd targets), answered as
/// (status, headers).
async fn raw_call(base: &str, request: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text.to_ascii_lowercase())
}

fn nginx(pem: &str) -> String {
    percent_encoding::utf8_percent_encode(pem, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// `GET {target}` with the given header lines, `Connection: close`.
fn req(method: &str, target: &str, headers: &[(&str, String)]) -> String {
    let mut r = format!("{method} {target} HTTP/1.1\r\nHost: gw.example\r\nConnection: close\r\n");
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    r.push_str("\r\n");
    r
}

fn reason_header(headers: &str) -> String {
    headers
        .lines()
        .find_map(|l| l.strip_prefix("x-certbound-reason: "))
        .unwrap_or("-")
        .trim()
        .to_owned()
}

// ---------------------------------------------------------------- 2 -------

#[tokio::test]
async fn f2_xfcc_uses_the_last_element_only() {
    let victim = gen_cert("ec-p256", "victim");
    let attacker = gen_cert("ec-p256", "attacker");
    let server = rfc7662_as(&victim.openssl_thumbprint, "api:read").await;
    let env = rfc7662_env(
        &server,
        &[
            ("CERTBOUND_PROXY", "envoy"),
            ("CERTBOUND_PATH_PREFIX", "/ext_authz"),
        ],
    );
    let base = serve(&env).await;
    let element = |c: &TestCert, by: &str| {
        format!(
            "By=spiffe://{by};Hash=00;Cert=\"{}\";Subject=\"CN=x,O=a;b\"",
            envoy_escape(&c.pem)
        )
    };
    // APPEND_FORWARD: the client sends the victim's public certificate as
    // its own element; Envoy appends the real one (the attacker's).
    let forged = format!(
        "{},{}",
        element(&victim, "client"),
        element(&attacker, "gw")
    );
    assert_eq!(
        xfcc_call(&base, &[forged]).await,
        (401, "cert_mismatch".into())
    );
    // The victim's own connection: the last element is theirs.
    let honest = format!(
        "{},{}",
        element(&attacker, "client"),
        element(&victim, "gw")
    );
    assert_eq!(xfcc_call(&base, &[honest]).await.0, 200);
    // Unbalanced quotes in a client element cannot shift the split.
    let unbalanced = format!("By=\"x;Cert=junk,{}", element(&victim, "gw"));
    assert_eq!(
        xfcc_call(&base, &[unbalanced]).await,
        (401, "cert_unreadable".into())
    );
    // Two XFCC headers: refused.
    let two = [element(&victim, "a"), element(&victim, "b")];
    assert_eq!(
        xfcc_call(&base, &two).await,
        (401, "cert_unreadable".into())
    );
}

/// `GET /ext_authz/example` with a token and these XFCC header values.
async fn xfcc_call(base: &str, values: &[String]) -> (u16, String) {
    let mut headers = vec![("Authorization", bearer())];
    headers.extend(
        values
            .iter()
            .map(|v| ("X-Forwarded-Client-Cert", v.clone())),
    );
    let (status, h) = raw_call(base, &req("GET", "/ext_authz/example", &headers)).await;
    (status, reason_header(&h))
}

#[tokio::test]
async fn f2_a_value_shaped_for_another_format_is_refused() {
    let a = gen_cert("ec-p256", "client-a");
    let server = rfc7662_as(&a.openssl_thumbprint, "api:read").await;
    let base = serve(&rfc7662_env(&server, &[])).await; // nginx format
    let xfcc = format!("By=x;Cert=\"{}\"", envoy_escape(&a.pem));
    for value in [xfcc, format!(":{}:", "QUJD")] {
        let (status, h) = raw_call(
            &base,
            &req(
                "GET",
                "/authorize",
                &[
                    ("Authorization", bearer()),
                    ("X-Original-Method", "GET".into()),
                    ("X-Original-URI", "/example".into()),
                    ("X-Ssl-Cert", value),
                ],
            ),
        )
        .await;
        assert_eq!((status, reason_header(&h)), (401, "cert_unreadable".into()));
    }
    let (status, _) = raw_call(
        &base,
        &req(
            "GET",
            "/authorize",
            &[
                ("Authorization", bearer()),
                ("X-Original-Method", "GET".into()),
                ("X-Original-URI", "/example".into()),
                ("X-Ssl-Cert", nginx(&a.pem)),
            ],
        ),
    )
    .await;
    assert_eq!(status, 200);
}

// ---------------------------------------------------------------- 3 -------

#[tokio::test]
async fn f3_serve_requires_the_configured_proxy_headers() {
    let a = gen_cert("ec-p256", "client-a");
    let server = rfc7662_as(&a.openssl_thumbprint, "api:read").await;
    let nginx_base = serve(&rfc7662_env(&server, &[])).await;
    let common = |extra: &[(&'static str, String)]| -> Vec<(&'static str, String)> {
        let mut h = vec![("Authorization", bearer()), ("X-Ssl-Cert", nginx(&a.pem))];
        h.extend(extra.iter().cloned());
        h
    };
    // Missing URI: refused, never "no scope".
    let (status, h) = raw_call(
        &nginx_base,
        &req(
            "POST",
            "/authorize",
            &common(&[("X-Original-Method", "POST".into())]),
        ),
    )
    .await;
    assert_eq!(
        (status, reason_header(&h)),
        (500, "event_invalid".into()),
        "{h}"
    );
    // Repeated: the client's copy and the proxy's.
    let (status, _) = raw_call(
        &nginx_base,
        &req(
            "POST",
            "/authorize",
            &common(&[
                ("X-Original-Method", "POST".into()),
                ("X-Original-URI", "/public".into()),
                ("X-Original-URI", "/example".into()),
            ]),
        ),
    )
    .await;
    assert_eq!(status, 500);
    let (status, _) = raw_call(
        &nginx_base,
        &req(
            "POST",
            "/authorize",
            &common(&[
                ("X-Original-Method", "POST".into()),
                ("X-Original-URI", "/example".into()),
            ]),
        ),
    )
    .await;
    assert_eq!(status, 403, "POST /example needs api:write");
    assert_eq!(
        calls(&server).await,
        1,
        "refused requests never reach the AS"
    );

    // Traefik names them X-Forwarded-*; an X-Original-URI the client sent
    // is not read.
    let traefik = serve(&rfc7662_env(
        &server,
        &[
            ("CERTBOUND_PROXY", "traefik"),
            ("CERTBOUND_CERT_FORMAT", "nginx"),
        ],
    ))
    .await;
    let (status, _) = raw_call(
        &traefik,
        &req(
            "GET",
            "/",
            &common(&[
                ("X-Original-Method", "GET".into()),
                ("X-Original-URI", "/public".into()),
                ("X-Forwarded-Method", "POST".into()),
                ("X-Forwarded-Uri", "/example".into()),
            ]),
        ),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = raw_call(
        &traefik,
        &req("GET", "/", &common(&[("X-Original-URI", "/public".into())])),
    )
    .await;
    assert_eq!(status, 500);
}

#[tokio::test]
async fn f3_health_cannot_shadow_a_protected_path() {
    let a = gen_cert("ec-p256", "client-a");
    let server = rfc7662_as(&a.openssl_thumbprint, "api:read").await;
    let env = rfc7662_env(
        &server,
        &[
            ("CERTBOUND_PROXY", "envoy"),
            ("CERTBOUND_PATH_PREFIX", "/ext_authz"),
            ("CERTBOUND_SCOPE_DEFAULT", "deny"),
        ],
    );
    let base = serve(&env).await;
    let (status, text) = raw_call(&base, &req("GET", "/healthz", &[])).await;
    assert_eq!(status, 200, "{text}");
    // Under Envoy the protected path /healthz arrives as /ext_authz/healthz
    // and is authorized like any other.
    let (status, h) = raw_call(&base, &req("GET", "/ext_authz/healthz", &[])).await;
    assert_eq!((status, reason_header(&h)), (401, "token_missing".into()));
    let xfcc = format!("By=gw;Cert=\"{}\"", envoy_escape(&a.pem));
    let (status, h) = raw_call(
        &base,
        &req(
            "GET",
            "/ext_authz/healthz",
            &[
                ("Authorization", bearer()),
                ("X-Forwarded-Client-Cert", xfcc.clone()),
            ],
        ),
    )
    .await;
    assert_eq!((status, reason_header(&h)), (403, "route_unmatched".into()));
    let (status, _) = raw_call(
        &base,
        &req(
            "GET",
            "/ext_authz/example?x=1",
            &[
                ("Authorization", bearer()),
                ("X-Forwarded-Client-Cert", xfcc),
            ],
        ),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = raw_call(&base, &req("GET", "/ext_authzfoo/example", &[])).await;
    assert_eq!(
        status, 404,
        "outside the prefix: not an authorization request"
    );
}

// ---------------------------------------------------------------- 4 -------

#[tokio::test]
async fn f4_concrete_paths_that_read_two_ways_are_refused() {
    let a = gen_cert("ec-p256", "client-a");
    let server = rfc7662_as(&a.openssl_thumbprint, "api:read").await;
    let base = serve(&rfc7662_env(&server, &[])).await;
    let cert = nginx(&a.pem);
    let call = |m: &str, uri: &str| {
        let request = req(
            "GET",
            "/authorize",
            &[
                ("Authorization", bearer()),
                ("X-Original-Method", m.into()),
                ("X-Original-URI", uri.into()),
                ("X-Ssl-Cert", cert.clone()),
            ],
        );
        let base = base.clone();
        async move {
            let (status, h) = raw_call(&base, &request).await;
            (status, reason_header(&h))
        }
    };
    for uri in [
        "/accounts/1%2F2/balances",
        "/public/..%2Fadmin/users",
        "/public/%2e%2e/admin/users",
        "/admin;x=1/users",
        "/public%5C..%5Cadmin",
        "/admin%00/users",
    ] {
        assert_eq!(
            call("GET", uri).await,
            (403, "path_rejected".into()),
            "{uri}"
        );
    }
    // Spellings of a protected path match its rule.
    for (m, uri) in [
        ("GET", "/ADMIN/users"),
        ("GET", "/Admin"),
        ("GET", "/public/../admin/x"),
        ("DELETE", "/%61dmin/x"),
        ("GET", "/accounts/42/balances"),
        ("HEAD", "/example?evil=1"),
    ] {
        let (status, reason) = call(m, uri).await;
        if m == "HEAD" {
            assert_eq!(status, 200, "HEAD /example is a GET: api:read suffices");
        } else {
            assert_eq!(
                (status, reason.as_str()),
                (403, "scope_insufficient"),
                "{m} {uri}"
            );
        }
    }
    assert_eq!(call("POST", "/example/").await.0, 403);
    assert_eq!(call("GET", "/public").await.0, 200);
}

#[tokio::test]
async fn f4_lambda_rules_match_api_gateway_route_templates() {
    let a = gen_cert("ec-p256", "client-a");
    let server = bound_double("OK", &a).await; // scopes: accounts payments
    let rules = "[[rule]]\nmethod='GET'\npath='/accounts/{id}/balances'\nscopes=['accounts']\n\
        [[rule]]\nmethod='POST'\npath='/payments'\nscopes=['payments:write']\n\
        [[rule]]\nmethod='*'\npath='/admin/**'\nscopes=['admin']";
    let env = authlete_env(
        &server.uri(),
        false,
        &[
            ("CERTBOUND_SCOPE_RULES_INLINE", rules),
            ("CERTBOUND_SCOPE_DEFAULT", "deny"),
        ],
    );
    // An id holding an encoded '/' is still one segment of the route.
    let mut e = rest_event(Some(&bearer()), Some(&a.pem));
    e["pathParameters"] = json!({"id": "1/2"});
    e["path"] = json!("/accounts/1%2F2/balances");
    let out = run(&env, e).await.unwrap();
    assert_eq!(effect(&out), "Allow", "{out}");
    assert_eq!(
        received_bodies(&server).await[0]["scopes"],
        json!(["accounts"])
    );
    // A greedy route: the proxy value's segments are matched.
    let mut e = rest_event(Some(&bearer()), Some(&a.pem));
    e["resource"] = json!("/{proxy+}");
    e["pathParameters"] = json!({"proxy": "admin/users"});
    e["path"] = json!("/admin/users");
    e["methodArn"] =
        json!("arn:aws:execute-api:eu-west-2:123456789012:a1b2c3d4e5/prod/GET/admin/users");
    let out = run(&env, e).await.unwrap();
    assert_eq!((effect(&out), reason(&out)), ("Deny", "scope_insufficient"));

    // HTTP API 2.0 on a named stage: rawPath carries /prod.
    let mut v2 = v2_event(Some(&bearer()), Some(&a.pem));
    v2["rawPath"] = json!("/prod/payments");
    v2["requestContext"]["stage"] = json!("prod");
    v2["routeKey"] = json!("$default");
    v2["requestContext"]["routeKey"] = json!("$default");
    let out = run(&env, v2.clone()).await.unwrap();
    assert_eq!((effect(&out), reason(&out)), ("Deny", "scope_insufficient"));
    assert!(out["context"]["challenge"]
        .as_str()
        .unwrap()
        .contains("scope=\"payments:write\""));
    // Its route key, when not $default, is what is matched.
    v2["routeKey"] = json!("POST /admin/{proxy+}");
    v2["pathParameters"] = json!({"proxy": "x"});
    let out = run(&env, v2.clone()).await.unwrap();
    assert_eq!(reason(&out), "scope_insufficient");
    assert!(out["context"]["challenge"]
        .as_str()
        .unwrap()
        .contains("scope=\"admin\""));
    // No rule: refused under `deny`, without asking the AS.
    let before = calls(&server).await;
    v2["routeKey"] = json!("GET /other");
    v2["requestContext"]["http"]["method"] = json!("GET");
    let out = run(&env, v2).await.unwrap();
    assert_eq!((effect(&out), reason(&out)), ("Deny", "route_unmatched"));
    assert_eq!(calls(&server).await, before);
}

#[tokio::test]
async fn f4_hooks_see_the_normalised_path_and_the_route() {
    let event = |arn_path: &str| {
        let mut e = rest_event(Some(&bearer()), None);
        e["path"] = json!(format!("/{arn_path}"));
        e["methodArn"] = json!(format!(
            "arn:aws:execute-api:eu-west-2:123456789012:a1b2c3d4e5/prod/GET/{arn_path}"
        ));
        e
    };
    for p in ["time/", "x/../time", "%74ime", "time?x=1", "/time"] {
        let r = Event::parse(&event(p)).unwrap().to_auth_request().unwrap();
        assert_eq!(r.path, "/time", "{p}");
        assert_eq!(r.route.as_deref(), Some("/accounts/{id}/balances"));
    }
    let r = Event::parse(&event("a%2Fb"))
        .unwrap()
        .to_auth_request()
        .unwrap();
    assert_eq!(r.path, "", "a refused path is never a plausible one");
    assert!(r.path_error.is_some());
    assert_eq!(r.raw_path, "/a%2Fb");
}

// ---------------------------------------------------------------- 5 -------

#[tokio::test]
async fn f5_rules_that_could_never_match_stop_the_start() {
    for (rules, needle) in [
        (
            "[[rule]]\nmethod='GET'\npath='/accounts/{id/balances'\nscopes=['a']",
            "scope rule #1",
        ),
        (
            "[[rule]]\nmethod='GET '\npath='/x'\nscopes=['a']",
            "whitespace",
        ),
        (
            "[[rule]]\nmethod='GET'\npath='/x/'\nscopes=['a']",
            "ends with '/'",
        ),
    ] {
        let env = authlete_env(
            "https://as.example",
            false,
            &[("CERTBOUND_SCOPE_RULES_INLINE", rules)],
        );
        let e = certbound::config::Config::from_env(&certbound::config::Env::from_map(&env))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("CERTBOUND_SCOPE_RULES_INLINE is invalid") && e.contains(needle),
            "{e}"
        );
    }
}

// ---------------------------------------------------------------- 7 -------

#[test]
fn f7_debug_never_shows_the_token() {
    let mut e = rest_event(Some(&bearer()), None);
    e["headers"]["DPoP"] = json!("proof");
    let event = Event::parse(&e).unwrap();
    let request = event.to_auth_request().unwrap();
    let shown = format!("{event:?} {request:?}");
    assert!(!shown.contains(TOKEN), "{shown}");
    let introspection = IntrospectionRequest {
        token: TOKEN.into(),
        scheme: certbound::request::Scheme::Bearer,
        scopes: None,
        client_cert: None,
        dpop: None,
        htm: None,
        htu: None,
    };
    assert!(!format!("{introspection:?}").contains(TOKEN));
    let c = config(&authlete_env("https://as.example", false, &[]));
    assert!(!format!("{c:?}").contains(API_SECRET));
}

#[test]
fn f7_parse_errors_name_fields_not_values() {
    let mut e = rest_event(Some(&bearer()), None);
    e["headers"]["Authorization"] = json!([bearer(), 5]);
    let err = Event::parse(&e).unwrap_err().to_string();
    assert!(!err.contains(TOKEN), "{err}");
    assert!(err.contains("headers"), "{err}");
    let mut e = rest_event(Some(&bearer()), None);
    e["requestContext"]["requestId"] = json!({"token": TOKEN});
    let err = Event::parse(&e).unwrap_err().to_string();
    assert!(!err.contains(TOKEN) && err.contains("requestId"), "{err}");
}

// ---------------------------------------------------------------- 8 -------

#[tokio::test]
async fn f8_http_api_v1_reads_the_certificate_from_authentication_first() {
    let a = gen_cert("ec-p256", "client-a");
    let b = gen_cert("ec-p256", "client-b");
    let server = bound_double("OK", &a).await;
    let env = authlete_env(&server.uri(), false, &[]);
    let mut e = rest_event(Some(&bearer()), Some(&b.pem));
    e["version"] = json!("1.0");
    e["requestContext"]["authentication"] =
        json!({"clientCert": {"clientCertPem": a.pem, "subjectDN": "CN=a"}});
    let out = run(&env, e.clone()).await.unwrap();
    assert_eq!(effect(&out), "Allow");
    assert_eq!(
        out["context"]["cert_thumbprint"],
        a.openssl_thumbprint.as_str()
    );
    e["requestContext"]["authentication"] = json!(null);
    let out = run(&env, e).await.unwrap();
    assert_eq!((effect(&out), reason(&out)), ("Deny", "token_inactive"));
}

// ------------------------------------------------------- challenges -------

/// A hook that rewrites the context's challenge (as a hook may: the key
/// feeds API Gateway's gateway responses).
struct Rewriting(StandardAuthorizer);

#[async_trait]
impl Authorizer for Rewriting {
    fn introspector(&self) -> &dyn Introspector {
        self.0.introspector()
    }
    fn settings(&self) -> &Settings {
        self.0.settings()
    }
    async fn determine_scopes(&self, r: &AuthRequest) -> Option<Vec<String>> {
        self.0.determine_scopes(r).await
    }
    async fn update_policy_context(
        &self,
        _: &AuthRequest,
        _: &IntrospectionRequest,
        _: Result<&IntrospectionResponse, &IntrospectionError>,
        context: &mut Context,
    ) {
        context.insert("challenge".into(), "Bearer error=\"hooked\"".into());
    }
}

#[tokio::test]
async fn challenges_come_from_the_verdict_not_the_context() {
    let a = gen_cert("ec-p256", "client-a");
    let server = rfc7662_as(&a.openssl_thumbprint, "api:read").await;
    let env = rfc7662_env(&server, &[("CERTBOUND_REALM", "bank")]);
    let (_, inner) = authorizer(&env);
    let base = serve_with(Arc::new(Rewriting(inner)), &env).await;
    let (status, h) = raw_call(
        &base,
        &req(
            "GET",
            "/authorize",
            &[
                ("Authorization", bearer()),
                ("X-Original-Method", "POST".into()),
                ("X-Original-URI", "/example".into()),
                ("X-Ssl-Cert", nginx(&a.pem)),
            ],
        ),
    )
    .await;
    assert_eq!(status, 403);
    assert!(
        h.contains(
            "www-authenticate: bearer realm=\"bank\",error=\"insufficient_scope\",error_description=\"token lacks a required scope\",scope=\"api:write\""
        ),
        "{h}"
    );
    assert!(!h.contains("hooked"));
}

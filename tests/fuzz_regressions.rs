//! Every failure the fuzz targets (`fuzz/`, README "Fuzzing") found, as a
//! plain test: the input, written out readably, and the behaviour that is
//! required of it. The raw libFuzzer inputs are kept in
//! `fuzz/seeds/<target>/` so that the fuzzers start from them too.

use std::sync::Arc;

use certbound::backends::memory::MemoryBackend;
use certbound::backends::{Claims, Confirmation};
use certbound::cert::ClientCert;
use certbound::request::{parse_authorization, PresentedCert, Source};
use certbound::route::{normalize_path, PathError};
use certbound::scopes::ScopeRules;
use certbound::{authorize, AuthRequest, Decision, Reason, Settings, StandardAuthorizer};

mod common;

/// The whole flow for `GET raw_path` with a token bound to the presented
/// certificate and holding `granted`, under `rules`.
async fn decide(
    rules: &str,
    method: &str,
    raw_path: &str,
    granted: &[&str],
) -> (Decision, Option<Reason>) {
    let cert = common::gen_cert("ec-p256", "fuzz-regression");
    let backend = Arc::new(MemoryBackend::new());
    backend.insert(
        "tok",
        Claims {
            active: true,
            scopes: granted.iter().map(|s| s.to_string()).collect(),
            exp: Some(4_102_444_800),
            cnf: Confirmation {
                x5t_s256: Some(cert.openssl_thumbprint.clone()),
                jkt: None,
            },
            ..Default::default()
        },
    );
    let authorizer = StandardAuthorizer::new(backend, Settings::default())
        .with_scope_rules(ScopeRules::from_toml(rules).unwrap());
    let mut request = AuthRequest::new(Source::Http, method, raw_path, "");
    request.credentials = parse_authorization("Bearer tok");
    request.client_cert = PresentedCert::Present(ClientCert::from_der(cert.der).unwrap());
    let verdict = authorize(&authorizer, &request).await;
    (verdict.decision, verdict.reason)
}

/// route_model, crash-4fc202aa: `/%252e%252e` is `/%2e%2e` to certbound (a
/// literal segment, matching `/**`, no scope) but `/..` — the root, which
/// needs `s0` — to anything that decodes once more (a backend or
/// framework decoding again, as IIS did; Spring's StrictHttpFirewall
/// refuses `%25` for this reason). A path whose decoded segment still
/// holds a percent-escape is refused, like the other ambiguous paths.
#[tokio::test]
async fn double_encoded_dot_segment_is_refused_not_matched_as_a_literal() {
    const RULES: &str = r#"
        [[rule]]
        method = "ANY"
        path = "/"
        scopes = ["s0"]
        [[rule]]
        method = "GET"
        path = "/**"
        scopes = []
    "#;
    assert_eq!(
        decide(RULES, "GET", "/%252e%252e", &[]).await,
        (Decision::Deny, Some(Reason::PathRejected))
    );
    assert_eq!(
        decide(RULES, "GET", "/", &[]).await,
        (Decision::Deny, Some(Reason::ScopeInsufficient)),
        "the root itself needs s0"
    );
    for raw in [
        "/%252e%252e",
        "/a/%252E%252E/admin",
        "/%252fadmin",
        "/%25%32%65%25%32%65",
        "/x%2541dmin",
    ] {
        assert_eq!(normalize_path(raw), Err(PathError::DoubleEncoded), "{raw}");
    }
    // A '%' that does not start an escape once decoded stays readable.
    assert_eq!(normalize_path("/100%25").unwrap().as_path(), "/100%");
    assert_eq!(normalize_path("/a%25zz").unwrap().as_path(), "/a%zz");
}

/// route_model, crash-98704046: literal segments match without regard to
/// case, and the first matching rule wins — so `/Admin` (public, listed
/// first) answered for `POST /admin`, which a case-sensitive router (API
/// Gateway, nginx) routes to the resource of `/admin/**` (needs `s1`).
/// When the first rule matching with exact case is another one than the
/// first matching without regard to case, both rules' scopes are required.
#[tokio::test]
async fn a_rule_differing_only_in_case_does_not_shadow_the_exact_one() {
    const RULES: &str = r#"
        [[rule]]
        method = "ANY"
        path = "/Admin"
        scopes = []
        [[rule]]
        method = "POST"
        path = "/admin/**"
        scopes = ["s1"]
    "#;
    assert_eq!(
        decide(RULES, "POST", "/admin", &[]).await,
        (Decision::Deny, Some(Reason::ScopeInsufficient))
    );
    assert_eq!(
        decide(RULES, "POST", "/admin", &["s1"]).await.0,
        Decision::Allow
    );
    // The exact-case rule of its own, and one a case-insensitive backend
    // reads as /Admin: unchanged.
    assert_eq!(
        decide(RULES, "POST", "/Admin", &[]).await.0,
        Decision::Allow
    );
    assert_eq!(
        decide(RULES, "POST", "/ADMIN/x", &[]).await.0,
        Decision::Deny
    );
    let rules = ScopeRules::from_toml(RULES).unwrap();
    let target = |p: &str| certbound::route::RouteTarget::from_path(&normalize_path(p).unwrap());
    assert_eq!(
        rules.required("POST", &target("/admin")),
        Some(vec!["s1".to_owned()])
    );
    assert_eq!(rules.required("GET", &target("/admin")), Some(vec![]));
}

/// lambda_event, found by `make fuzz-smoke` in CI: an HTTP API 2.0 event
/// that also carries a `methodArn` was answered with a policy about its
/// `routeArn`, while a reader looking at `methodArn` first (as a REST
/// event is read) sees another resource. No event API Gateway sends has
/// both; an event with both is ambiguous and is refused, whatever its kind.
#[tokio::test]
async fn an_event_with_both_method_arn_and_route_arn_is_refused() {
    use certbound::config::HttpApiResponse;
    use certbound::fronts::lambda::{handle_event, Event, EventError};

    let authorizer = StandardAuthorizer::new(Arc::new(MemoryBackend::new()), Settings::default());
    let load = |name: &str| -> serde_json::Value {
        let text = std::fs::read_to_string(format!("{}/events/{name}", env!("CARGO_MANIFEST_DIR")))
            .unwrap();
        serde_json::from_str(&text).unwrap()
    };
    let other = "arn:aws:execute-api:us-east-1:123456789012:abc/prod/GET/other";
    let mut v2 = load("http-api-v2.json");
    v2["methodArn"] = other.into();
    let mut rest = load("rest-request.json");
    rest["routeArn"] = other.into();
    let mut token = load("token.json");
    token["routeArn"] = other.into();
    for (name, event) in [("v2", v2), ("rest", rest), ("token", token)] {
        assert!(
            matches!(Event::parse(&event), Err(EventError::AmbiguousResource)),
            "{name}: not refused as ambiguous"
        );
        for http_api in [HttpApiResponse::Policy, HttpApiResponse::Simple] {
            let out = handle_event(&authorizer, http_api, event.clone(), None).await;
            assert!(out.is_err(), "{name}: answered {out:?}");
        }
    }
}

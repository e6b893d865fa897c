//! The JWT backend (RFC 9068 and Cognito) with keys and a JWKS generated
//! here: verification, hostile tokens, the key cache (one fetch for many
//! decisions, rotation, cool-down, single flight, failures), and the core's
//! decision over the claims (binding, expiry, scopes).

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use certbound::backends::jwks::{JwksLocation, JwksSettings};
use certbound::backends::jwt::{JwtBackend, JwtConfig, JwtProfile, SUPPORTED_ALGORITHMS};
use certbound::fronts::lambda::{handle_event, HandlerError};
use certbound::{Settings, StandardAuthorizer};
use common::signing::*;
use common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// An issuer: a JWKS (counted) and OpenID metadata on a wiremock server.
struct Issuer {
    server: MockServer,
    keys: Vec<SigningKey>,
}

impl Issuer {
    async fn start(keys: Vec<SigningKey>) -> Self {
        let server = MockServer::start().await;
        let issuer = Self { server, keys };
        issuer
            .publish(&issuer.keys.iter().collect::<Vec<_>>())
            .await;
        issuer
    }

    fn uri(&self) -> String {
        self.server.uri()
    }

    /// (Re)mounts the JWKS with these keys, and the metadata.
    async fn publish(&self, keys: &[&SigningKey]) {
        self.server.reset().await;
        let jwks = json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()});
        Mock::given(method("GET"))
            .and(path("/jwks"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(jwks)
                    .insert_header("cache-control", "max-age=3600"),
            )
            .mount(&self.server)
            .await;
        Mock::given(method("GET"))
            .and(path("/.well-known/openid-configuration"))
            .respond_with(ResponseTemplate::new(200).set_body_json(
                json!({"issuer": self.uri(), "jwks_uri": format!("{}/jwks", self.uri())}),
            ))
            .mount(&self.server)
            .await;
    }

    async fn jwks_fetches(&self) -> usize {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .filter(|r| r.url.path() == "/jwks")
            .count()
    }

    /// RFC 9068 claims bound to `thumbprint`, scope `accounts`.
    fn claims(&self, thumbprint: &str) -> Value {
        json!({"iss": self.uri(), "sub": "alice", "client_id": "tpp-app", "aud": "https://api.bank.example",
               "iat": now(), "exp": now() + 300, "jti": "j-1", "scope": "accounts",
               "cnf": {"x5t#S256": thumbprint}})
    }
}

const RULES: &str = "[[rule]]\nmethod='GET'\npath='/accounts/*/balances'\nscopes=['accounts']\n\
    [[rule]]\nmethod='POST'\npath='/payments'\nscopes=['payments']";

fn jwt_env(issuer: &str, extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut env: HashMap<String, String> = [
        ("CERTBOUND_BACKEND", "jwt"),
        ("CERTBOUND_JWT_ISSUER", issuer),
        ("CERTBOUND_JWT_AUDIENCE", "https://api.bank.example"),
        ("CERTBOUND_SCOPE_RULES_INLINE", RULES),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        env.insert(k.to_string(), v.to_string());
    }
    env
}

async fn run(env: &HashMap<String, String>, event: Value) -> Result<Value, HandlerError> {
    let (c, a) = authorizer(env);
    handle_event(&a, c.http_api_response, event, None).await
}

fn reason(out: &Value) -> &str {
    out["context"]["reason"].as_str().unwrap_or("-")
}

fn with_token(token: &str, cert: Option<&str>) -> Value {
    rest_event(Some(&format!("Bearer {token}")), cert)
}

#[tokio::test]
async fn rfc9068_decisions() {
    let a = gen_cert("ec-p256", "client-a");
    let b = gen_cert("ec-p256", "client-b");
    let issuer = Issuer::start(vec![
        signing_key("rsa", "rsa-1"),
        signing_key("ec", "ec-1"),
        signing_key("ed", "ed-1"),
    ])
    .await;
    let env = jwt_env(&issuer.uri(), &[]);
    let (config, authz) = authorizer(&env);
    let decide = |event: Value| {
        let (config, authz) = (&config, &authz);
        async move {
            handle_event(authz, config.http_api_response, event, None)
                .await
                .unwrap()
        }
    };
    for key in &issuer.keys {
        let token = sign(key, Some("at+jwt"), &issuer.claims(&a.openssl_thumbprint));
        let out = decide(with_token(&token, Some(&a.pem))).await;
        assert_eq!(effect(&out), "Allow", "{:?}: {out}", key.alg);
        assert_eq!(out["principalId"], "alice");
        assert_eq!(out["context"]["client_id"], "tpp-app");
        assert_eq!(out["context"]["scope"], "accounts");
    }
    let rsa = &issuer.keys[0];
    let good = issuer.claims(&a.openssl_thumbprint);
    let token = sign(rsa, Some("at+jwt"), &good);
    let mut cases: Vec<(&str, Value, &str)> = vec![
        (
            "other certificate",
            with_token(&token, Some(&b.pem)),
            "cert_mismatch",
        ),
        ("no certificate", with_token(&token, None), "cert_missing"),
    ];
    let mut payment = with_token(&token, Some(&a.pem));
    payment["methodArn"] =
        json!("arn:aws:execute-api:eu-west-2:123456789012:a1b2c3d4e5/prod/POST/payments");
    payment["resource"] = json!("/payments");
    payment["httpMethod"] = json!("POST");
    payment["path"] = json!("/payments");
    cases.push(("missing scope", payment, "scope_insufficient"));
    // Tampered payload: the signature no longer verifies.
    let parts: Vec<&str> = token.split('.').collect();
    let mut evil = good.clone();
    evil["scope"] = json!("accounts payments admin");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(evil.to_string()),
        parts[2]
    );
    cases.push((
        "tampered payload",
        with_token(&tampered, Some(&a.pem)),
        "token_invalid",
    ));
    // alg none, unsigned.
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(json!({"alg": "none", "typ": "at+jwt", "kid": "rsa-1"}).to_string()),
        URL_SAFE_NO_PAD.encode(good.to_string())
    );
    cases.push(("alg none", with_token(&none, Some(&a.pem)), "token_invalid"));
    // HS256 keyed with the RSA public key (the classic confusion).
    let public_n = rsa.jwk["n"].as_str().unwrap().to_owned();
    let mut hs = Header::new(Algorithm::HS256);
    hs.kid = Some("rsa-1".into());
    hs.typ = Some("at+jwt".into());
    let confused =
        jsonwebtoken::encode(&hs, &good, &EncodingKey::from_secret(public_n.as_bytes())).unwrap();
    cases.push((
        "HS256 with the RSA public key",
        with_token(&confused, Some(&a.pem)),
        "token_invalid",
    ));
    // RS256 header naming the EC key.
    let mut misfit = Header::new(Algorithm::ES256);
    misfit.kid = Some("rsa-1".into());
    misfit.typ = Some("at+jwt".into());
    let misfit = jsonwebtoken::encode(&misfit, &good, &issuer.keys[1].encoding).unwrap();
    cases.push((
        "ES256 signature, kid of an RSA key",
        with_token(&misfit, Some(&a.pem)),
        "token_invalid",
    ));
    let mut claims_cases: Vec<(&str, Value, &str)> = vec![
        ("expired", json!({"exp": now() - 60}), "token_expired"),
        (
            "not yet valid",
            json!({"nbf": now() + 600}),
            "token_not_yet_valid",
        ),
        (
            "issued in the future",
            json!({"iat": now() + 600}),
            "token_not_yet_valid",
        ),
        (
            "wrong issuer",
            json!({"iss": "https://evil.example"}),
            "token_invalid",
        ),
        (
            "wrong audience",
            json!({"aud": "https://other.example"}),
            "token_invalid",
        ),
        ("no exp", json!({"exp": null}), "token_invalid"),
        ("no jti", json!({"jti": null}), "token_invalid"),
        ("unbound", json!({"cnf": null}), "token_unbound"),
        (
            "DPoP-bound",
            json!({"cnf": {"jkt": "abc"}}),
            "dpop_unverifiable",
        ),
    ];
    for (name, change, want) in claims_cases.drain(..) {
        let mut c = good.clone();
        for (k, v) in change.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        cases.push((
            name,
            with_token(&sign(rsa, Some("at+jwt"), &c), Some(&a.pem)),
            want,
        ));
    }
    cases.push((
        "typ JWT",
        with_token(&sign(rsa, Some("JWT"), &good), Some(&a.pem)),
        "token_invalid",
    ));
    let unknown = signing_key("rsa", "rsa-unknown");
    cases.push((
        "unknown kid",
        with_token(&sign(&unknown, Some("at+jwt"), &good), Some(&a.pem)),
        "token_invalid",
    ));
    cases.push((
        "not a JWT",
        with_token("opaque-token-value", Some(&a.pem)),
        "token_invalid",
    ));
    for (name, event, want) in cases {
        let out = decide(event).await;
        assert_eq!(
            (effect(&out), reason(&out)),
            ("Deny", want),
            "{name}: {out}"
        );
        let challenge = out["context"]["challenge"].as_str().unwrap();
        let error = if want == "scope_insufficient" {
            "insufficient_scope"
        } else {
            "invalid_token"
        };
        assert!(challenge.contains(error), "{name}: {challenge}");
    }
    // One JWKS fetch (discovery, then keys) for all those decisions, even
    // with an unknown kid (one refetch, then the cool-down).
    assert_eq!(issuer.jwks_fetches().await, 2);
}

#[tokio::test]
async fn policy_false_maps_invalid_tokens_to_401() {
    let a = gen_cert("ec-p256", "client-a");
    let issuer = Issuer::start(vec![signing_key("ec", "ec-1")]).await;
    let env = jwt_env(&issuer.uri(), &[("CERTBOUND_POLICY", "false")]);
    let mut c = issuer.claims(&a.openssl_thumbprint);
    c["iss"] = json!("https://evil.example");
    let token = sign(&issuer.keys[0], Some("at+jwt"), &c);
    assert_eq!(
        run(&env, with_token(&token, Some(&a.pem)))
            .await
            .unwrap_err(),
        HandlerError::Unauthorized
    );
}

fn backend(issuer: &Issuer, settings: JwksSettings) -> Arc<JwtBackend> {
    let client = certbound::transport::build_client(&Default::default()).unwrap();
    Arc::new(JwtBackend::new(
        client,
        JwtConfig {
            issuer: issuer.uri(),
            jwks: JwksLocation::Uri(format!("{}/jwks", issuer.uri())),
            profile: JwtProfile::Rfc9068,
            audiences: vec!["https://api.bank.example".into()],
            client_ids: vec![],
            algorithms: SUPPORTED_ALGORITHMS.to_vec(),
            context_claims: vec![],
            jwks_settings: settings,
        },
    ))
}

#[tokio::test]
async fn jwks_is_fetched_once_for_many_decisions_and_once_per_rotation() {
    let a = gen_cert("ec-p256", "client-a");
    let issuer = Issuer::start(vec![signing_key("rsa", "old"), signing_key("ec", "new")]).await;
    issuer.publish(&[&issuer.keys[0]]).await;
    let jwt = backend(&issuer, JwksSettings::default());
    let authz = StandardAuthorizer::new(jwt.clone(), Settings::default());
    let token = sign(
        &issuer.keys[0],
        Some("at+jwt"),
        &issuer.claims(&a.openssl_thumbprint),
    );
    for _ in 0..100 {
        let out = handle_event(
            &authz,
            certbound::config::HttpApiResponse::Policy,
            with_token(&token, Some(&a.pem)),
            None,
        )
        .await
        .unwrap();
        assert_eq!(effect(&out), "Allow");
    }
    assert_eq!((issuer.jwks_fetches().await, jwt.jwks().fetches()), (1, 1));
    // The issuer rotates to a new key: one refetch picks it up.
    issuer.publish(&[&issuer.keys[0], &issuer.keys[1]]).await;
    let rotated = sign(
        &issuer.keys[1],
        Some("at+jwt"),
        &issuer.claims(&a.openssl_thumbprint),
    );
    for _ in 0..10 {
        let out = handle_event(
            &authz,
            certbound::config::HttpApiResponse::Policy,
            with_token(&rotated, Some(&a.pem)),
            None,
        )
        .await
        .unwrap();
        assert_eq!(effect(&out), "Allow");
    }
    assert_eq!(jwt.jwks().fetches(), 2);
    // A flood of made-up kids: no further fetch within the cool-down.
    for i in 0..20 {
        let fake = signing_key("ec", &format!("fake-{i}"));
        let t = sign(&fake, Some("at+jwt"), &issuer.claims(&a.openssl_thumbprint));
        let out = handle_event(
            &authz,
            certbound::config::HttpApiResponse::Policy,
            with_token(&t, Some(&a.pem)),
            None,
        )
        .await
        .unwrap();
        assert_eq!(reason(&out), "token_invalid");
    }
    assert_eq!(
        jwt.jwks().fetches(),
        3,
        "one refetch for the first unknown kid, then the cool-down"
    );
}

#[tokio::test]
async fn concurrent_misses_share_one_fetch() {
    let a = gen_cert("ec-p256", "client-a");
    let issuer = Issuer::start(vec![signing_key("ec", "ec-1")]).await;
    issuer.server.reset().await;
    let jwks = json!({"keys": [issuer.keys[0].jwk.clone()]});
    Mock::given(path("/jwks"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(jwks)
                .set_delay(Duration::from_millis(300)),
        )
        .mount(&issuer.server)
        .await;
    let jwt = backend(&issuer, JwksSettings::default());
    let token = sign(
        &issuer.keys[0],
        Some("at+jwt"),
        &issuer.claims(&a.openssl_thumbprint),
    );
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let (jwt, token) = (jwt.clone(), token.clone());
            tokio::spawn(async move { jwt.verify(&token).await.unwrap().active })
        })
        .collect();
    for t in tasks {
        assert!(t.await.unwrap());
    }
    assert_eq!(issuer.jwks_fetches().await, 1);
}

#[tokio::test]
async fn known_keys_survive_a_jwks_outage_and_unknown_ones_fail_closed() {
    let a = gen_cert("ec-p256", "client-a");
    let issuer = Issuer::start(vec![signing_key("ec", "ec-1"), signing_key("ec", "ec-2")]).await;
    issuer.publish(&[&issuer.keys[0]]).await;
    // Keys expire at once and may be refetched at once: every decision
    // tries the JWKS again.
    let settings = JwksSettings {
        default_ttl: Duration::ZERO,
        min_ttl: Duration::ZERO,
        max_ttl: Duration::ZERO,
        cooldown: Duration::ZERO,
        ..JwksSettings::default()
    };
    let jwt = backend(&issuer, settings);
    let authz = StandardAuthorizer::new(jwt.clone(), Settings::default());
    let known = sign(
        &issuer.keys[0],
        Some("at+jwt"),
        &issuer.claims(&a.openssl_thumbprint),
    );
    let unknown = sign(
        &issuer.keys[1],
        Some("at+jwt"),
        &issuer.claims(&a.openssl_thumbprint),
    );
    let decide = |t: &str| {
        let e = with_token(t, Some(&a.pem));
        let authz = &authz;
        async move {
            handle_event(authz, certbound::config::HttpApiResponse::Policy, e, None)
                .await
                .unwrap()
        }
    };
    assert_eq!(effect(&decide(&known).await), "Allow");
    // The JWKS endpoint goes down.
    issuer.server.reset().await;
    Mock::given(path("/jwks"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&issuer.server)
        .await;
    let out = decide(&known).await;
    assert_eq!(effect(&out), "Allow", "a known key keeps working: {out}");
    let out = decide(&unknown).await;
    assert_eq!((effect(&out), reason(&out)), ("Deny", "as_error"), "{out}");
    assert_eq!(jwt.jwks().fetches(), 3, "one success, two failed refreshes");
}

#[tokio::test]
async fn unreachable_jwks_is_not_a_start_error_and_never_allows() {
    let a = gen_cert("ec-p256", "client-a");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let key = signing_key("ec", "ec-1");
    let mut claims = json!({"iss": base, "sub": "s", "client_id": "c", "aud": "https://api.bank.example",
        "iat": now(), "exp": now() + 60, "jti": "j", "cnf": {"x5t#S256": a.openssl_thumbprint}});
    claims["scope"] = json!("accounts");
    let token = sign(&key, Some("at+jwt"), &claims);
    for policy in ["true", "false"] {
        let env = jwt_env(&base, &[("CERTBOUND_POLICY", policy)]);
        let out = run(&env, with_token(&token, Some(&a.pem))).await;
        match out {
            Ok(v) => assert_eq!((effect(&v), reason(&v)), ("Deny", "as_unavailable")),
            Err(e) => assert_eq!(e, HandlerError::InternalServerError),
        }
    }
}

#[tokio::test]
async fn cognito_access_tokens() {
    let a = gen_cert("ec-p256", "client-a");
    let issuer = Issuer::start(vec![signing_key("rsa", "cog-1")]).await;
    let key = &issuer.keys[0];
    // Both issuer formats, served by the test's JWKS.
    for iss in [
        "https://cognito-idp.eu-west-2.amazonaws.com/eu-west-2_AbCdEf123",
        "https://issuer-cognito-idp.eu-west-2.amazonaws.com/eu-west-2_AbCdEf123",
    ] {
        let env: HashMap<String, String> = [
            ("CERTBOUND_BACKEND", "jwt"),
            ("CERTBOUND_COGNITO_USER_POOL_ID", "eu-west-2_AbCdEf123"),
            ("CERTBOUND_JWT_ISSUER", iss),
            ("CERTBOUND_JWT_JWKS_URI", &format!("{}/jwks", issuer.uri())),
            ("CERTBOUND_JWT_CLIENT_IDS", "app-1,app-2"),
            ("CERTBOUND_JWT_CONTEXT_CLAIMS", "username,cognito:groups"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let claims = json!({"iss": iss, "sub": "0f1e", "client_id": "app-2", "token_use": "access",
            "scope": "accounts", "username": "alice", "cognito:groups": ["tpp", "admins"],
            "auth_time": now(), "iat": now(), "exp": now() + 300, "jti": "j", "origin_jti": "o",
            "event_id": "e", "version": 2, "cnf": {"x5t#S256": a.openssl_thumbprint}});
        let token = sign(key, None, &claims);
        let out = run(&env, with_token(&token, Some(&a.pem))).await.unwrap();
        assert_eq!(effect(&out), "Allow", "{iss}: {out}");
        assert_eq!(out["context"]["username"], "alice");
        assert_eq!(out["context"]["cognito:groups"], "tpp admins");
        for (name, change) in [
            ("id token", json!({"token_use": "id"})),
            ("client not allowed", json!({"client_id": "attacker-app"})),
            (
                "another pool",
                json!({"iss": "https://cognito-idp.eu-west-2.amazonaws.com/eu-west-2_Attacker"}),
            ),
        ] {
            let mut c = claims.clone();
            for (k, v) in change.as_object().unwrap() {
                c[k] = v.clone();
            }
            let out = run(&env, with_token(&sign(key, None, &c), Some(&a.pem)))
                .await
                .unwrap();
            assert_eq!(reason(&out), "token_invalid", "{name}");
        }
        // Unbound (the trigger found no thumbprint): refused with binding on.
        let mut c = claims.clone();
        c.as_object_mut().unwrap().remove("cnf");
        let out = run(&env, with_token(&sign(key, None, &c), Some(&a.pem)))
            .await
            .unwrap();
        assert_eq!(reason(&out), "token_unbound");
    }
}

#[test]
fn configuration_errors_name_the_variable() {
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![("CERTBOUND_BACKEND", "jwt")],
            "CERTBOUND_JWT_ISSUER is not set",
        ),
        (
            vec![
                ("CERTBOUND_BACKEND", "jwt"),
                ("CERTBOUND_JWT_ISSUER", "https://as"),
            ],
            "CERTBOUND_JWT_AUDIENCE is not set",
        ),
        (
            vec![
                ("CERTBOUND_BACKEND", "jwt"),
                ("CERTBOUND_JWT_ISSUER", "http://as.example"),
                ("CERTBOUND_JWT_AUDIENCE", "a"),
            ],
            "CERTBOUND_JWT_ISSUER is invalid",
        ),
        (
            vec![
                ("CERTBOUND_BACKEND", "jwt"),
                ("CERTBOUND_JWT_ISSUER", "https://as"),
                ("CERTBOUND_JWT_AUDIENCE", "a"),
                ("CERTBOUND_JWT_ALGORITHMS", "RS256,HS256"),
            ],
            "CERTBOUND_JWT_ALGORITHMS is invalid",
        ),
        (
            vec![
                ("CERTBOUND_BACKEND", "jwt"),
                ("CERTBOUND_JWT_ISSUER", "https://as"),
                ("CERTBOUND_JWT_AUDIENCE", "a"),
                ("CERTBOUND_JWT_ALGORITHMS", "none"),
            ],
            "CERTBOUND_JWT_ALGORITHMS is invalid",
        ),
        (
            vec![
                ("CERTBOUND_BACKEND", "jwt"),
                ("CERTBOUND_COGNITO_USER_POOL_ID", "eu-west-2_x"),
            ],
            "CERTBOUND_JWT_CLIENT_IDS is not set",
        ),
        (
            vec![
                ("CERTBOUND_BACKEND", "jwt"),
                ("CERTBOUND_COGNITO_USER_POOL_ID", "../evil"),
                ("CERTBOUND_JWT_CLIENT_IDS", "a"),
            ],
            "CERTBOUND_COGNITO_USER_POOL_ID is invalid",
        ),
        (
            vec![
                ("CERTBOUND_BACKEND", "jwt"),
                ("CERTBOUND_JWT_PROFILE", "cognito"),
                ("CERTBOUND_JWT_ISSUER", "https://as"),
                ("CERTBOUND_JWT_CLIENT_IDS", "a"),
                ("CERTBOUND_JWT_AUDIENCE", "x"),
            ],
            "CERTBOUND_JWT_AUDIENCE is invalid",
        ),
        (
            vec![
                ("CERTBOUND_BACKEND", "jwt"),
                ("CERTBOUND_JWT_ISSUER", "https://as"),
                ("CERTBOUND_JWT_AUDIENCE", "a"),
                ("CERTBOUND_LEEWAY_S", "5"),
                ("CERTBOUND_JWT_LEEWAY_S", "60"),
            ],
            "CERTBOUND_JWT_LEEWAY_S is invalid",
        ),
    ];
    for (pairs, want) in cases {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let e = certbound::config::Config::from_env(&certbound::config::Env::from_map(&map))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with(want), "{pairs:?}: {e}");
    }
    // The pool id derives the issuer and the JWKS.
    let map: HashMap<String, String> = [
        ("CERTBOUND_BACKEND", "jwt"),
        ("CERTBOUND_COGNITO_USER_POOL_ID", "eu-west-2_AbCdEf123"),
        ("CERTBOUND_JWT_CLIENT_IDS", "a"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let c = certbound::config::Config::from_env(&certbound::config::Env::from_map(&map)).unwrap();
    match c.backend {
        certbound::config::BackendConfig::Jwt(j) => {
            assert_eq!(
                j.issuer,
                "https://cognito-idp.eu-west-2.amazonaws.com/eu-west-2_AbCdEf123"
            );
            assert_eq!(
                j.jwks,
                JwksLocation::Uri("https://cognito-idp.eu-west-2.amazonaws.com/eu-west-2_AbCdEf123/.well-known/jwks.json".into())
            );
            assert_eq!(j.profile, JwtProfile::Cognito);
        }
        _ => panic!("not jwt"),
    }
}

#[tokio::test]
async fn the_whole_key_acquisition_fits_in_the_timeout() {
    // Discovery that hangs: two metadata URLs and the JWKS, each under the
    // per-request timeout, must still end within CERTBOUND_TIMEOUT_MS.
    let a = gen_cert("ec-p256", "client-a");
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(5)))
        .mount(&server)
        .await;
    let key = signing_key("ec", "ec-1");
    let claims = json!({"iss": server.uri(), "sub": "s", "client_id": "c", "aud": "https://api.bank.example",
        "iat": now(), "exp": now() + 60, "jti": "j", "scope": "accounts",
        "cnf": {"x5t#S256": a.openssl_thumbprint}});
    let token = sign(&key, Some("at+jwt"), &claims);
    let env = jwt_env(&server.uri(), &[("CERTBOUND_TIMEOUT_MS", "400")]);
    let started = std::time::Instant::now();
    let out = run(&env, with_token(&token, Some(&a.pem))).await.unwrap();
    let took = started.elapsed();
    assert_eq!((effect(&out), reason(&out)), ("Deny", "as_unavailable"));
    assert!(took < Duration::from_millis(900), "{took:?}");
}

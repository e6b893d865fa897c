//! Criterion benchmarks of the core, no network: certificate decoding and
//! thumbprint, event → AuthRequest, the whole flow with an in-memory
//! introspector (with and without the answer cache), and the flow with JWT
//! access tokens (RS256, ES256) whose JWKS was fetched once from a loopback
//! server. Run: `make bench`.

mod support;

use std::sync::Arc;

use certbound::cert::{CertFormat, ClientCert};
use certbound::config::HttpApiResponse;
use certbound::fronts::lambda::{handle_event, Event};
use certbound::{Settings, StandardAuthorizer};
use criterion::{criterion_group, criterion_main, Criterion};
use support::EVENT;

fn pem() -> String {
    let event: serde_json::Value = serde_json::from_str(EVENT).unwrap();
    event["requestContext"]["identity"]["clientCert"]["clientCertPem"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn certs(c: &mut Criterion) {
    let pem = pem();
    let escaped =
        percent_encoding::utf8_percent_encode(&pem, percent_encoding::NON_ALPHANUMERIC).to_string();
    c.bench_function("cert: PEM → x5t#S256", |b| {
        b.iter(|| ClientCert::from_format(CertFormat::Pem, std::hint::black_box(&pem)).unwrap())
    });
    c.bench_function("cert: nginx URL-encoded PEM → x5t#S256", |b| {
        b.iter(|| {
            ClientCert::from_format(CertFormat::Nginx, std::hint::black_box(&escaped)).unwrap()
        })
    });
}

fn events(c: &mut Criterion) {
    let raw: serde_json::Value = serde_json::from_str(EVENT).unwrap();
    c.bench_function("event: REST REQUEST → AuthRequest", |b| {
        b.iter(|| {
            Event::parse(std::hint::black_box(&raw))
                .unwrap()
                .into_auth_request()
                .unwrap()
        })
    });
}

fn flow(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let authorizer = support::uncached();
    let raw: serde_json::Value = serde_json::from_str(EVENT).unwrap();
    let allowed = rt
        .block_on(handle_event(
            &authorizer,
            HttpApiResponse::Policy,
            raw.clone(),
            None,
        ))
        .unwrap();
    assert_eq!(allowed["policyDocument"]["Statement"][0]["Effect"], "Allow");
    c.bench_function("flow: event → Allow policy (in-memory AS)", |b| {
        b.iter(|| {
            rt.block_on(handle_event(
                &authorizer,
                HttpApiResponse::Policy,
                raw.clone(),
                None,
            ))
            .unwrap()
        })
    });
    // The same AS answer behind the cache: every iteration after the first
    // is a hit (key = token, certificate, scopes).
    let cached = support::cached();
    let allowed = rt
        .block_on(handle_event(
            &cached,
            HttpApiResponse::Policy,
            raw.clone(),
            None,
        ))
        .unwrap();
    assert_eq!(allowed["policyDocument"]["Statement"][0]["Effect"], "Allow");
    c.bench_function("flow: event JSON bytes → Allow policy, cache hit", |b| {
        b.iter(|| {
            let payload: serde_json::Value =
                serde_json::from_str(std::hint::black_box(EVENT)).unwrap();
            rt.block_on(handle_event(
                &cached,
                HttpApiResponse::Policy,
                payload,
                None,
            ))
            .unwrap()
        })
    });
    c.bench_function("flow: event → Allow policy, cache hit", |b| {
        b.iter(|| {
            rt.block_on(handle_event(
                &cached,
                HttpApiResponse::Policy,
                raw.clone(),
                None,
            ))
            .unwrap()
        })
    });
}

/// A key made by openssl, and its public JWK.
fn jwt_key(
    kind: &str,
    kid: &str,
) -> (
    jsonwebtoken::Algorithm,
    jsonwebtoken::EncodingKey,
    serde_json::Value,
) {
    use jsonwebtoken::{Algorithm, EncodingKey};
    let dir = tempfile::tempdir().unwrap();
    let args: &[&str] = match kind {
        "rsa" => &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            "k.pem",
        ],
        _ => &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "k.pem",
        ],
    };
    assert!(std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir.path())
        .status()
        .unwrap()
        .success());
    let pem = std::fs::read(dir.path().join("k.pem")).unwrap();
    let (alg, key) = match kind {
        "rsa" => (Algorithm::RS256, EncodingKey::from_rsa_pem(&pem).unwrap()),
        _ => (Algorithm::ES256, EncodingKey::from_ec_pem(&pem).unwrap()),
    };
    let mut jwk =
        serde_json::to_value(jsonwebtoken::jwk::Jwk::from_encoding_key(&key, alg).unwrap())
            .unwrap();
    jwk["kid"] = serde_json::json!(kid);
    (alg, key, jwk)
}

fn jwt_flow(c: &mut Criterion) {
    use certbound::backends::jwks::{JwksLocation, JwksSettings};
    use certbound::backends::jwt::{JwtBackend, JwtConfig, JwtProfile, SUPPORTED_ALGORITHMS};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let keys = [jwt_key("rsa", "rsa-1"), jwt_key("ec", "ec-1")];
    let server = rt.block_on(wiremock::MockServer::start());
    let jwks = serde_json::json!({"keys": keys.iter().map(|k| k.2.clone()).collect::<Vec<_>>()});
    rt.block_on(
        wiremock::Mock::given(wiremock::matchers::path("/jwks"))
            .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(jwks))
            .mount(&server),
    );
    let client = certbound::transport::build_client(&Default::default()).unwrap();
    let backend = Arc::new(JwtBackend::new(
        client,
        JwtConfig {
            issuer: "https://as.bank.example".into(),
            jwks: JwksLocation::Uri(format!("{}/jwks", server.uri())),
            profile: JwtProfile::Rfc9068,
            audiences: vec!["https://api.bank.example".into()],
            client_ids: vec![],
            algorithms: SUPPORTED_ALGORITHMS.to_vec(),
            context_claims: vec![],
            jwks_settings: JwksSettings::default(),
        },
    ));
    let authorizer = StandardAuthorizer::new(backend.clone(), Settings::default());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({"iss": "https://as.bank.example", "sub": "alice", "client_id": "tpp",
        "aud": "https://api.bank.example", "iat": now, "exp": now + 86_400, "jti": "j", "scope": "accounts",
        "cnf": {"x5t#S256": "t9i3fFFsi40iaYFo6grXDTsBiCbSEynf5czFoatax44"}});
    for (alg, key, jwk) in &keys {
        let mut header = jsonwebtoken::Header::new(*alg);
        header.typ = Some("at+jwt".into());
        header.kid = jwk["kid"].as_str().map(str::to_owned);
        let token = jsonwebtoken::encode(&header, &claims, key).unwrap();
        let mut raw: serde_json::Value = serde_json::from_str(EVENT).unwrap();
        raw["headers"]["Authorization"] = serde_json::json!(format!("Bearer {token}"));
        raw["multiValueHeaders"]["Authorization"] = serde_json::json!([format!("Bearer {token}")]);
        let out = rt
            .block_on(handle_event(
                &authorizer,
                HttpApiResponse::Policy,
                raw.clone(),
                None,
            ))
            .unwrap();
        assert_eq!(
            out["policyDocument"]["Statement"][0]["Effect"], "Allow",
            "{out}"
        );
        c.bench_function(&format!("flow: event → Allow policy, JWT {alg:?}"), |b| {
            b.iter(|| {
                rt.block_on(handle_event(
                    &authorizer,
                    HttpApiResponse::Policy,
                    raw.clone(),
                    None,
                ))
                .unwrap()
            })
        });
    }
    assert_eq!(
        backend.jwks().fetches(),
        1,
        "one JWKS fetch for every decision"
    );
}

criterion_group!(benches, certs, events, flow, jwt_flow);
criterion_main!(benches);

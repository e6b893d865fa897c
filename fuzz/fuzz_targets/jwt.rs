//! JWT access tokens: the JWT backend's structure/header checks, key
//! choice, signature and claim rules (`certbound::fuzzing::jwt_verify`,
//! the steps of `JwtBackend::verify` over a key set in hand), for both
//! profiles (RFC 9068, Cognito), then the core's decision with a
//! certificate presented.
//!
//! Structure-aware: header and payload are built from fuzzed fields
//! (right, wrong, missing, wrongly typed), signed with a fixed Ed25519 key
//! of the JWKS (or another key, or fuzzed bytes), then optionally edited
//! as text; or a raw token string.
//!
//! Asserts: a token verifies only if this harness signed exactly its
//! `header.payload` with the key its `kid` names; a verified token
//! satisfies every rule of its profile (checked here on the fields this
//! harness chose); `cnf.x5t#S256` is read as sent; and the core never
//! allows a token bound to certificate A with certificate B presented.
#![no_main]

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use arbitrary::Arbitrary;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use certbound::backends::jwks::{parse_jwks, JwksLocation, JwksSettings, Key};
use certbound::backends::jws::Algorithm;
use certbound::backends::jwt::{JwtConfig, JwtProfile};
use certbound::backends::{Action, Answer};
use certbound::cert::{CertFormat, ClientCert};
use certbound::decision::{decide, Facts, Validation};
use certbound::fuzzing::{jwt_parse, jwt_verify};
use certbound::request::{parse_authorization, PresentedCert, Source};
use certbound::AuthRequest;
use certbound_fuzz::{encode, thumbprint, CERT_A, CERT_B};
use libfuzzer_sys::fuzz_target;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::{json, Map, Value};

const ISSUER: &str = "https://as.example";
const AUDIENCE: &str = "https://api.example";
const NOW: i64 = 1_800_000_000;

fn pair(seed: u8) -> Ed25519KeyPair {
    Ed25519KeyPair::from_seed_unchecked(&[seed; 32]).expect("seed")
}

/// k1 (EdDSA, `alg` given), k2 (Ed25519, no `alg`), k3 (an EC P-256 key
/// that is no point), k4 (RSA 2048 with a made-up modulus).
fn keys() -> &'static HashMap<String, Arc<Key>> {
    static KEYS: OnceLock<HashMap<String, Arc<Key>>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let x = |seed| URL_SAFE_NO_PAD.encode(pair(seed).public_key().as_ref());
        let doc = json!({"keys": [
            {"kty": "OKP", "crv": "Ed25519", "kid": "k1", "alg": "EdDSA", "use": "sig", "x": x(1)},
            {"kty": "OKP", "crv": "Ed25519", "kid": "k2", "x": x(2)},
            {"kty": "EC", "crv": "P-256", "kid": "k3", "x": URL_SAFE_NO_PAD.encode([1u8; 32]), "y": URL_SAFE_NO_PAD.encode([2u8; 32])},
            {"kty": "RSA", "kid": "k4", "n": URL_SAFE_NO_PAD.encode([0xc5u8; 256]), "e": "AQAB"},
        ]});
        parse_jwks(&doc, 100).expect("jwks")
    })
}

#[derive(Debug, Arbitrary)]
enum Field<T> {
    Absent,
    Good,
    Wrong(T),
    Null,
    Number(i64),
    Array(Vec<String>),
}

#[derive(Debug, Arbitrary)]
struct Input {
    cognito: bool,
    /// Bit i: algorithm i of `Algorithm::ALL` allowed (0: all).
    algorithms: u16,
    client_ids: bool,
    alg: Field<String>,
    typ: Field<String>,
    kid: u8,
    crit: bool,
    iss: Field<String>,
    exp: Field<String>,
    iat: Field<String>,
    nbf: Option<i64>,
    sub: Field<String>,
    client_id: Field<String>,
    aud: Field<String>,
    jti: Field<String>,
    token_use: Field<String>,
    scope: Field<String>,
    /// 0: A, 1: B, 2: none, 3: jkt, 4: not an object.
    cnf: u8,
    extra: Vec<(String, String)>,
    /// 0: the key `kid` names, 1: another key, 2: `sig` as is.
    signer: u8,
    sig: Vec<u8>,
    edit: Option<(u16, char)>,
    raw: Option<String>,
}

fn put(map: &mut Map<String, Value>, name: &str, f: &Field<String>, good: Value) {
    let v = match f {
        Field::Absent => return,
        Field::Good => good,
        Field::Wrong(s) => Value::String(s.clone()),
        Field::Null => Value::Null,
        Field::Number(n) => json!(n),
        Field::Array(items) => json!(items),
    };
    map.insert(name.to_owned(), v);
}

fn config(input: &Input) -> JwtConfig {
    let algorithms: Vec<Algorithm> = if input.algorithms & 0x1ff == 0 {
        Algorithm::ALL.to_vec()
    } else {
        Algorithm::ALL
            .into_iter()
            .enumerate()
            .filter(|(i, _)| input.algorithms >> i & 1 == 1)
            .map(|(_, a)| a)
            .collect()
    };
    JwtConfig {
        issuer: ISSUER.into(),
        jwks: JwksLocation::Uri("https://as.example/jwks".into()),
        profile: if input.cognito {
            JwtProfile::Cognito
        } else {
            JwtProfile::Rfc9068
        },
        audiences: vec![AUDIENCE.into()],
        client_ids: if input.client_ids || input.cognito {
            vec!["app".into()]
        } else {
            vec![]
        },
        algorithms,
        context_claims: vec!["username".into(), "cognito:groups".into(), "n".into()],
        jwks_settings: JwksSettings::default(),
    }
}

fuzz_target!(|input: Input| {
    let config = config(&input);
    let kid = ["k1", "k2", "k3", "k4", "", "k9"][usize::from(input.kid) % 6];
    let (token, signed) = match &input.raw {
        Some(raw) => (raw.clone(), None),
        None => {
            let mut header = Map::new();
            put(&mut header, "alg", &input.alg, json!("EdDSA"));
            put(&mut header, "typ", &input.typ, json!("at+jwt"));
            if !kid.is_empty() {
                header.insert("kid".into(), json!(kid));
            }
            if input.crit {
                header.insert("crit".into(), json!(["exp"]));
            }
            let mut payload = Map::new();
            put(&mut payload, "iss", &input.iss, json!(ISSUER));
            put(&mut payload, "exp", &input.exp, json!(NOW + 600));
            put(&mut payload, "iat", &input.iat, json!(NOW - 5));
            if let Some(nbf) = input.nbf {
                payload.insert("nbf".into(), json!(nbf));
            }
            put(&mut payload, "sub", &input.sub, json!("alice"));
            put(&mut payload, "client_id", &input.client_id, json!("app"));
            put(&mut payload, "aud", &input.aud, json!([AUDIENCE, "other"]));
            put(&mut payload, "jti", &input.jti, json!("j1"));
            put(&mut payload, "token_use", &input.token_use, json!("access"));
            put(
                &mut payload,
                "scope",
                &input.scope,
                json!("accounts payments"),
            );
            let cnf = match input.cnf % 5 {
                0 => Some(json!({"x5t#S256": thumbprint(CERT_A)})),
                1 => Some(json!({"x5t#S256": thumbprint(CERT_B)})),
                2 => None,
                3 => Some(json!({"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"})),
                _ => Some(json!(thumbprint(CERT_A))),
            };
            if let Some(cnf) = cnf {
                payload.insert("cnf".into(), cnf);
            }
            for (k, v) in input.extra.iter().take(3) {
                payload.entry(k.clone()).or_insert_with(|| json!(v));
            }
            let (header_copy, payload_copy) = (header.clone(), payload.clone());
            let signing_input = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(Value::Object(header).to_string()),
                URL_SAFE_NO_PAD.encode(Value::Object(payload).to_string())
            );
            let (sig, signed) = match input.signer % 3 {
                0 if kid == "k1" || kid == "k2" => {
                    let seed = if kid == "k1" { 1 } else { 2 };
                    (
                        pair(seed).sign(signing_input.as_bytes()).as_ref().to_vec(),
                        true,
                    )
                }
                0 | 1 => (
                    pair(7).sign(signing_input.as_bytes()).as_ref().to_vec(),
                    false,
                ),
                _ => (input.sig.clone(), false),
            };
            let mut token = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig));
            if let Some((p, c)) = input.edit {
                let i = usize::from(p) % (token.len() + 1);
                if token.is_char_boundary(i) {
                    token.insert(i, c);
                }
            }
            (
                token,
                signed.then_some((signing_input, header_copy, payload_copy)),
            )
        }
    };

    let parts = jwt_parse(&token, &config);
    if let Ok(p) = &parts {
        assert!(config.algorithms.contains(&p.alg));
        assert!(!p.kid.is_empty() && !p.signature.is_empty());
        assert!(token.starts_with(&format!("{}.", p.signing_input)));
    }
    let claims = jwt_verify(&token, &config, keys());
    if !claims.active {
        assert!(
            claims.refusal.is_some(),
            "an invalid token without a reason"
        );
        return;
    }
    // Verified: only what this harness signed, with the key kid names.
    let p = parts.expect("a verified token parsed");
    let Some((signing_input, header, payload)) = signed else {
        panic!("a token verified that this harness did not sign");
    };
    assert_eq!(
        p.signing_input, signing_input,
        "verified another signing input"
    );
    // Every rule of the profile holds for what was signed.
    let s = |m: &Map<String, Value>, k: &str| m.get(k).and_then(Value::as_str).map(str::to_owned);
    assert_eq!(s(&header, "alg").as_deref(), Some("EdDSA"));
    assert!(!header.contains_key("crit"));
    assert_eq!(s(&payload, "iss").as_deref(), Some(ISSUER));
    assert!(payload.get("exp").is_some_and(Value::is_number));
    if input.cognito {
        assert_eq!(s(&payload, "token_use").as_deref(), Some("access"));
    } else {
        let typ = s(&header, "typ").unwrap_or_default().to_ascii_lowercase();
        assert!(
            typ == "at+jwt" || typ == "application/at+jwt",
            "typ {typ:?}"
        );
        let aud_ok = match payload.get("aud") {
            Some(Value::String(a)) => a == AUDIENCE,
            Some(Value::Array(items)) => items.iter().any(|a| a == AUDIENCE),
            _ => false,
        };
        assert!(aud_ok, "RFC 9068 token without the audience");
        assert!(s(&payload, "sub").is_some() && s(&payload, "client_id").is_some());
        assert!(s(&payload, "jti").is_some());
        assert!(payload.get("iat").is_some_and(Value::is_number));
    }
    if !config.client_ids.is_empty() {
        assert_eq!(s(&payload, "client_id").as_deref(), Some("app"));
    }
    let sent_cnf = p
        .payload
        .get("cnf")
        .and_then(|c| c.get("x5t#S256"))
        .and_then(Value::as_str);
    assert_eq!(claims.cnf.x5t_s256.as_deref(), sent_cnf);

    // The core, with certificate B presented.
    let b = ClientCert::from_format(
        CertFormat::Rfc9440,
        &encode(CertFormat::Rfc9440, &[CERT_B], Default::default()),
    )
    .expect("certificate B");
    let mut request = AuthRequest::new(Source::Http, "GET", "/x", "GET /x");
    request.credentials = parse_authorization("Bearer t");
    request.client_cert = PresentedCert::Present(b);
    let facts = Facts {
        request: &request,
        scopes: None,
        backend_verifies_dpop: false,
        realm: None,
    };
    let out = decide(
        &facts,
        &Validation::default(),
        Answer::Claims(claims.clone()),
        NOW,
    );
    if out.action == Action::Ok {
        assert_eq!(
            claims.cnf.x5t_s256.as_deref(),
            Some(thumbprint(CERT_B).as_str())
        );
    }
});

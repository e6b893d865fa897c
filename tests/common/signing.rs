//! Signing keys made by openssl and RFC 9068 tokens signed with them by
//! `jsonwebtoken` (an implementation independent of the one that verifies).
#![allow(dead_code)]

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

/// A signing key made by openssl, with its public JWK.
pub struct SigningKey {
    pub alg: Algorithm,
    pub kid: String,
    pub encoding: EncodingKey,
    pub jwk: Value,
}

pub fn signing_key(kind: &str, kid: &str) -> SigningKey {
    let dir = tempfile::tempdir().unwrap();
    let args: Vec<&str> = match kind {
        "rsa" => vec![
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ],
        "ec" => vec![
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ],
        "ed" => vec!["genpkey", "-algorithm", "ED25519"],
        other => panic!("{other}"),
    };
    let out = std::process::Command::new("openssl")
        .args(&args)
        .args(["-out", "k.pem"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let pem = std::fs::read(dir.path().join("k.pem")).unwrap();
    let (alg, encoding) = match kind {
        "rsa" => (Algorithm::RS256, EncodingKey::from_rsa_pem(&pem).unwrap()),
        "ec" => (Algorithm::ES256, EncodingKey::from_ec_pem(&pem).unwrap()),
        _ => (Algorithm::EdDSA, EncodingKey::from_ed_pem(&pem).unwrap()),
    };
    let mut jwk =
        serde_json::to_value(jsonwebtoken::jwk::Jwk::from_encoding_key(&encoding, alg).unwrap())
            .unwrap();
    jwk["kid"] = json!(kid);
    jwk["use"] = json!("sig");
    SigningKey {
        alg,
        kid: kid.into(),
        encoding,
        jwk,
    }
}

pub fn sign(key: &SigningKey, typ: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(key.alg);
    header.kid = Some(key.kid.clone());
    header.typ = typ.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &key.encoding).unwrap()
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

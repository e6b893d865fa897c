//! JWKS documents (JSON bytes) → `parse_jwks`.
//!
//! Asserts, beyond "no panic": a document without a `keys` array is
//! refused; at most `max_keys` keys are kept; every key kept has the `kid`
//! it is filed under, comes from an entry of the document with that `kid`,
//! that entry is not `use` other than `sig`, its `alg` (when given) fits
//! the key type, RSA moduli are at least 2048 bits, EC points and Ed25519
//! keys have their exact lengths, and no symmetric key is ever kept.
#![no_main]

use arbitrary::Arbitrary;
use certbound::backends::jwks::parse_jwks;
use certbound::backends::jws::PublicKey;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

#[derive(Debug, Arbitrary)]
struct Input {
    max_keys: u8,
    json: Vec<u8>,
}

fuzz_target!(|input: Input| {
    let Ok(doc) = serde_json::from_slice::<Value>(&input.json) else {
        return;
    };
    let max_keys = usize::from(input.max_keys % 8) + 1;
    let parsed = parse_jwks(&doc, max_keys);
    let Some(entries) = doc.get("keys").and_then(Value::as_array) else {
        assert!(parsed.is_err(), "a JWKS without a keys array was accepted");
        return;
    };
    let keys = parsed.expect("a keys array is a JWKS");
    assert!(keys.len() <= max_keys);
    for (kid, key) in &keys {
        assert_eq!(kid, &key.kid);
        assert!(!kid.is_empty());
        let entry = entries
            .iter()
            .find(|e| e.get("kid").and_then(Value::as_str) == Some(kid.as_str()))
            .expect("a key from nowhere");
        assert_ne!(entry.get("kty").and_then(Value::as_str), Some("oct"));
        assert!(entry
            .get("use")
            .and_then(Value::as_str)
            .is_none_or(|u| u == "sig"));
        if let Some(alg) = key.alg {
            assert!(key.public.fits(alg));
        }
        match &key.public {
            PublicKey::Rsa { n, .. } => {
                assert!(n.first().is_some_and(|b| *b != 0) && n.len() >= 256)
            }
            PublicKey::P256(p) => assert!(p.len() == 65 && p[0] == 4),
            PublicKey::P384(p) => assert!(p.len() == 97 && p[0] == 4),
            PublicKey::Ed25519(k) => assert_eq!(k.len(), 32),
        }
    }
});

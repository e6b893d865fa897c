//! Entry points for the fuzz targets in `fuzz/` (`cargo fuzz`, see the
//! README's "Fuzzing" section): steps that are private to their modules,
//! exposed here and nowhere else. Not part of the API: hidden from the
//! documentation, and may change at any time.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::backends::jwks::Key;
use crate::backends::jws::Algorithm;
use crate::backends::jwt::{self, JwtConfig};
use crate::backends::Claims;

/// What the JWT backend's structure and header checks read from a token.
#[derive(Debug, Clone)]
pub struct JwtParts {
    /// `alg` (one the configuration allows).
    pub alg: Algorithm,
    /// `kid` (not empty).
    pub kid: String,
    /// `header.payload`, the signed bytes.
    pub signing_input: String,
    /// The decoded signature (not empty).
    pub signature: Vec<u8>,
    /// The decoded payload.
    pub payload: Map<String, Value>,
}

/// The JWT backend's structure and header checks, before any key lookup.
pub fn jwt_parse(token: &str, config: &JwtConfig) -> Result<JwtParts, &'static str> {
    jwt::parse(token, config).map(|p| JwtParts {
        alg: p.alg,
        kid: p.kid,
        signing_input: p.signing_input.to_owned(),
        signature: p.signature,
        payload: p.payload,
    })
}

/// The JWT backend's claim rules (issuer, expiry present, profile rules,
/// allowed clients, scopes, `cnf`, context claims).
pub fn jwt_claims(payload: Map<String, Value>, config: &JwtConfig) -> Result<Claims, &'static str> {
    jwt::claims(payload, config)
}

/// The steps of `JwtBackend::verify`, in its order and with its functions,
/// over a key set in hand (from [`crate::backends::jwks::parse_jwks`])
/// instead of the cached, fetched one: structure and header, key by `kid`,
/// key fits `alg`, signature, claims. Invalid tokens give inactive claims
/// with a `token_invalid` refusal, as there.
pub fn jwt_verify(token: &str, config: &JwtConfig, keys: &HashMap<String, Arc<Key>>) -> Claims {
    let parsed = match jwt::parse(token, config) {
        Ok(p) => p,
        Err(why) => return jwt::invalid(why),
    };
    let Some(key) = keys.get(&parsed.kid) else {
        return jwt::invalid("no key in the issuer's JWKS has this kid");
    };
    if !key.public.fits(parsed.alg) || key.alg.is_some_and(|a| a != parsed.alg) {
        return jwt::invalid("the key named by kid does not fit alg");
    }
    if !key.public.verify(
        parsed.alg,
        parsed.signing_input.as_bytes(),
        &parsed.signature,
    ) {
        return jwt::invalid("signature does not verify");
    }
    jwt::claims(parsed.payload, config).unwrap_or_else(jwt::invalid)
}

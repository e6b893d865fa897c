//! The JWKS of a JWT issuer, fetched once and cached: the way the best
//! verifiers do it (awslabs `aws-jwt-verify`, Envoy `jwt_authn`).
//!
//! - fetched lazily on the first token (an unreachable JWKS is never a
//!   start-up error: decisions are 500 / Deny until keys can be had);
//! - kept for `Cache-Control: max-age` bounded to
//!   [[`JwksSettings::min_ttl`], [`JwksSettings::max_ttl`]] (default
//!   [`JwksSettings::default_ttl`] without one);
//! - an unknown `kid` triggers a refetch; when that fetch does not hold it
//!   either (or fails), no other refetch happens for [`JwksSettings::cooldown`]
//!   (a new signing key is picked up at once, a flood of made-up `kid`s
//!   costs one fetch per cool-down);
//! - refreshes are single-flight: concurrent misses wait for one fetch;
//! - when a refresh fails, the keys already known keep working;
//! - the document is size-capped, keys beyond [`JwksSettings::max_keys`]
//!   are ignored, and keys that cannot verify (`use: enc`, `oct`, unknown
//!   `kty`, RSA under 2048 bits, a JWK without `kid`) are skipped, not fatal
//!   to the rest of the set.
//!
//! The JWKS location is explicit (`CERTBOUND_JWT_JWKS_URI`), or the issuer's
//! metadata (`/.well-known/oauth-authorization-server` per RFC 8414, then
//! `/.well-known/openid-configuration`) → `jwks_uri`, whose `issuer` must be
//! the configured one. Headers such as `jku`/`x5u` are never followed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use serde_json::Value;

use super::jws::{Algorithm, PublicKey};
use crate::transport::{FetchError, HttpClient};

/// Limits and timings of the key cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksSettings {
    /// TTL when the server sends no `max-age`.
    pub default_ttl: Duration,
    /// Lower bound on `max-age`.
    pub min_ttl: Duration,
    /// Upper bound on `max-age`.
    pub max_ttl: Duration,
    /// Least time between two refetches caused by unknown `kid`s or failures.
    pub cooldown: Duration,
    /// Largest JWKS (or metadata) document read.
    pub max_bytes: usize,
    /// Most keys kept from one document.
    pub max_keys: usize,
}

impl Default for JwksSettings {
    fn default() -> Self {
        Self {
            default_ttl: Duration::from_secs(600),
            min_ttl: Duration::from_secs(60),
            max_ttl: Duration::from_secs(86_400),
            cooldown: Duration::from_secs(10),
            max_bytes: 256 * 1024,
            max_keys: 100,
        }
    }
}

/// Where the keys are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksLocation {
    /// A JWKS URL.
    Uri(String),
    /// The issuer's metadata names it.
    Discover {
        /// The issuer (exact).
        issuer: String,
    },
}

/// A verification key from the JWKS, usable for the algorithms of its type.
#[derive(Debug, Clone)]
pub struct Key {
    /// The key id.
    pub kid: String,
    /// The JWK's `alg`, when it names one: then only that algorithm.
    pub alg: Option<Algorithm>,
    /// The public key.
    pub public: PublicKey,
}

#[derive(Deserialize)]
struct JwkDoc {
    kty: Option<String>,
    kid: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    alg: Option<String>,
    n: Option<String>,
    e: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

/// Why a JWK was skipped (logged, never fatal to the set).
fn key_from_jwk(doc: JwkDoc) -> Result<Key, &'static str> {
    let kid = doc.kid.filter(|k| !k.is_empty()).ok_or("no kid")?;
    if doc.use_.as_deref().is_some_and(|u| u != "sig") {
        return Err("use is not sig");
    }
    let alg = match doc.alg.as_deref() {
        None => None,
        Some(a) => Some(
            a.parse::<Algorithm>()
                .map_err(|_| "unknown or unsupported alg")?,
        ),
    };
    let b64 = |v: Option<String>, what: &'static str| -> Result<Vec<u8>, &'static str> {
        URL_SAFE_NO_PAD
            .decode(v.ok_or(what)?.trim_end_matches('='))
            .map_err(|_| what)
    };
    let point = |x: Vec<u8>, y: Vec<u8>, len: usize| -> Result<Vec<u8>, &'static str> {
        if x.len() != len || y.len() != len {
            return Err("EC coordinates of the wrong length");
        }
        Ok([&[4u8][..], &x, &y].concat())
    };
    let public = match (doc.kty.as_deref(), doc.crv.as_deref()) {
        (Some("RSA"), _) => {
            let n = b64(doc.n, "RSA key without a base64url n")?;
            let e = b64(doc.e, "RSA key without a base64url e")?;
            let n: Vec<u8> = n.into_iter().skip_while(|b| *b == 0).collect();
            if n.len() * 8 < 2048 {
                return Err("RSA key shorter than 2048 bits");
            }
            PublicKey::Rsa { n, e }
        }
        (Some("EC"), Some("P-256")) => PublicKey::P256(point(
            b64(doc.x, "EC key without x")?,
            b64(doc.y, "EC key without y")?,
            32,
        )?),
        (Some("EC"), Some("P-384")) => PublicKey::P384(point(
            b64(doc.x, "EC key without x")?,
            b64(doc.y, "EC key without y")?,
            48,
        )?),
        (Some("OKP"), Some("Ed25519")) => {
            let x = b64(doc.x, "OKP key without x")?;
            if x.len() != 32 {
                return Err("Ed25519 key of the wrong length");
            }
            PublicKey::Ed25519(x)
        }
        (Some("oct"), _) => return Err("symmetric key (oct)"),
        _ => return Err("unsupported key type or curve"),
    };
    if alg.is_some_and(|a| !public.fits(a)) {
        return Err("alg does not fit the key type");
    }
    Ok(Key { kid, alg, public })
}

/// Parses a JWKS document: usable keys by `kid`, at most `max_keys`.
pub fn parse_jwks(doc: &Value, max_keys: usize) -> Result<HashMap<String, Arc<Key>>, String> {
    parse_jwks_noting_malformed(doc, max_keys).map(|(keys, _)| keys)
}

/// Whether a JWK is malformed (the AS published junk), as opposed to a key
/// certbound will not use (`use: enc`, `oct`, short RSA, …).
fn malformed(why: &str) -> bool {
    why == "wrong types" || why.contains("without") || why.contains("wrong length")
}

/// [`parse_jwks`], also naming the `kid`s of malformed keys and why.
fn parse_jwks_noting_malformed(
    doc: &Value,
    max_keys: usize,
) -> Result<(KeySet, Malformed), String> {
    let keys = match doc.get("keys") {
        None => return Err("JWKS has no `keys`".into()),
        Some(keys) => keys.as_array().ok_or("at `keys`: wrong types")?,
    };
    let mut bad = HashMap::new();
    let mut out = HashMap::new();
    for (i, raw) in keys.iter().enumerate() {
        if out.len() >= max_keys {
            tracing::warn!(target: "certbound::jwks", kept = max_keys, total = keys.len(), "JWKS holds more keys than kept");
            break;
        }
        let parsed = serde_json::from_value::<JwkDoc>(raw.clone())
            .map_err(|_| "wrong types")
            .and_then(key_from_jwk);
        match parsed {
            Ok(key) => {
                out.insert(key.kid.clone(), Arc::new(key));
            }
            Err(why) => {
                tracing::debug!(target: "certbound::jwks", index = i, why, "JWK skipped");
                if let Some(kid) = raw.get("kid").and_then(Value::as_str) {
                    if malformed(why) && bad.len() < max_keys {
                        bad.insert(kid.to_owned(), why);
                    }
                }
            }
        }
    }
    Ok((out, bad))
}

#[derive(Default)]
struct State {
    keys: HashMap<String, Arc<Key>>,
    /// Set once a fetch succeeded.
    expires: Option<Instant>,
    /// Bumped by every fetch attempt (single flight).
    generation: u64,
    /// No new attempt before this (cool-down after an unknown kid or a failure).
    not_before: Option<Instant>,
    /// The last attempt's failure, while it stands.
    last_error: Option<FetchError>,
    /// `kid`s of the last set whose keys are malformed, and why.
    malformed: HashMap<String, &'static str>,
}

impl State {
    /// A `kid` the current set does not hold: unknown (the token's fault),
    /// or published malformed (the AS's fault).
    fn missing(&self, kid: &str) -> Result<Lookup, FetchError> {
        match self.malformed.get(kid) {
            Some(why) => Err(FetchError::NotJson(format!(
                "the JWKS key with this kid is malformed ({why})"
            ))),
            None => Ok(Lookup::Unknown),
        }
    }
}

/// Usable keys by `kid`.
type KeySet = HashMap<String, Arc<Key>>;

/// The `kid`s of malformed keys, and why.
type Malformed = HashMap<String, &'static str>;

/// What a fetch gives: usable keys, malformed keys' `kid`s, the TTL.
type Fetched = (KeySet, Malformed, Duration);

/// The cached key set of one issuer.
pub struct Jwks {
    client: HttpClient,
    location: JwksLocation,
    resolved: RwLock<Option<String>>,
    settings: JwksSettings,
    state: RwLock<State>,
    refresh: tokio::sync::Mutex<()>,
    fetches: AtomicU64,
}

/// What looking up a `kid` gave.
#[derive(Debug)]
pub enum Lookup {
    /// The key.
    Found(Arc<Key>),
    /// The JWKS (fetched now or recently) has no such key.
    Unknown,
}

impl Jwks {
    /// A key set fetched through `client` (the shared one) on first use.
    pub fn new(client: HttpClient, location: JwksLocation, settings: JwksSettings) -> Self {
        Self {
            client,
            location,
            resolved: RwLock::new(None),
            settings,
            state: RwLock::new(State::default()),
            refresh: tokio::sync::Mutex::new(()),
            fetches: AtomicU64::new(0),
        }
    }

    /// How many JWKS documents were fetched (metadata not counted).
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// The key for `kid`, fetching or refreshing the set when needed.
    pub async fn key(&self, kid: &str) -> Result<Lookup, FetchError> {
        let now = Instant::now();
        let (generation, known, fresh, may_refetch, standing_error) = {
            let s = self.state.read().unwrap_or_else(|e| e.into_inner());
            (
                s.generation,
                s.keys.get(kid).cloned(),
                s.expires.is_some_and(|t| now < t),
                s.not_before.is_none_or(|t| now >= t),
                s.last_error.clone(),
            )
        };
        match (known, fresh, may_refetch) {
            (Some(key), true, _) | (Some(key), false, false) => return Ok(Lookup::Found(key)),
            (None, _, false) => {
                return match standing_error {
                    Some(e) => Err(e),
                    None => self
                        .state
                        .read()
                        .unwrap_or_else(|e| e.into_inner())
                        .missing(kid),
                }
            }
            _ => {}
        }
        let refreshed = self.refresh(generation).await;
        let mut s = self.state.write().unwrap_or_else(|e| e.into_inner());
        match (s.keys.get(kid).cloned(), refreshed) {
            (Some(key), _) => Ok(Lookup::Found(key)),
            (None, Ok(())) => {
                // A fresh set without this kid: no refetch for made-up kids
                // until the cool-down is over.
                s.not_before = Some(Instant::now() + self.settings.cooldown);
                s.missing(kid)
            }
            (None, Err(e)) => Err(e),
        }
    }

    /// Fetches the set unless another task did since `seen` (single flight).
    async fn refresh(&self, seen: u64) -> Result<(), FetchError> {
        let _guard = self.refresh.lock().await;
        {
            let s = self.state.read().unwrap_or_else(|e| e.into_inner());
            if s.generation != seen {
                return match &s.last_error {
                    Some(e) => Err(e.clone()),
                    None => Ok(()),
                };
            }
        }
        let call = crate::telemetry::AsCall::start_jwks();
        let result = self.fetch().await;
        call.finish(
            result
                .as_ref()
                .err()
                .map(|e| super::IntrospectionError::from(e.clone()))
                .as_ref(),
        );
        let now = Instant::now();
        let mut s = self.state.write().unwrap_or_else(|e| e.into_inner());
        s.generation += 1;
        match result {
            Ok((keys, malformed, ttl)) => {
                tracing::info!(target: "certbound::jwks", keys = keys.len(), ttl_s = ttl.as_secs(), "JWKS fetched");
                s.keys = keys;
                s.malformed = malformed;
                s.expires = Some(now + ttl);
                s.last_error = None;
                Ok(())
            }
            Err(e) => {
                tracing::warn!(target: "certbound::jwks", error = %e, known_keys = s.keys.len(), "JWKS fetch failed; known keys stay in use");
                s.not_before = Some(now + self.settings.cooldown);
                s.last_error = Some(e.clone());
                Err(e)
            }
        }
    }

    /// The set, with the `kid`s of malformed keys, and its TTL. Metadata and
    /// JWKS together must come within the client's timeout.
    async fn fetch(&self) -> Result<Fetched, FetchError> {
        let deadline = tokio::time::Instant::now() + self.client.timeout();
        let uri = self.jwks_uri(deadline).await?;
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let request = self
            .client
            .get(&uri)
            .header(reqwest::header::ACCEPT, "application/json");
        let reply = self.client.send_by(request, deadline).await?;
        let ttl = max_age(&reply.headers)
            .map(|s| s.clamp(self.settings.min_ttl, self.settings.max_ttl))
            .unwrap_or(self.settings.default_ttl);
        let doc = reply.json(self.settings.max_bytes).await?;
        let (keys, malformed) = parse_jwks_noting_malformed(&doc, self.settings.max_keys)
            .map_err(FetchError::NotJson)?;
        Ok((keys, malformed, ttl))
    }

    async fn jwks_uri(&self, deadline: tokio::time::Instant) -> Result<String, FetchError> {
        let issuer = match &self.location {
            JwksLocation::Uri(uri) => return Ok(uri.clone()),
            JwksLocation::Discover { issuer } => issuer,
        };
        if let Some(uri) = self
            .resolved
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Ok(uri);
        }
        let mut last = FetchError::NotJson("no metadata".into());
        for url in metadata_urls(issuer) {
            if tokio::time::Instant::now() >= deadline {
                // The step's time is spent: the last failure says why.
                break;
            }
            let answer = match self.client.send_by(self.client.get(&url), deadline).await {
                Ok(reply) => reply.json(self.settings.max_bytes).await,
                Err(e) => Err(e),
            };
            match answer {
                Ok(meta) => {
                    if meta.get("issuer").and_then(Value::as_str) != Some(issuer.as_str()) {
                        last =
                            FetchError::NotJson(format!("metadata at {url} names another issuer"));
                        continue;
                    }
                    let Some(uri) = meta.get("jwks_uri").and_then(Value::as_str) else {
                        last = FetchError::NotJson(format!("metadata at {url} has no jwks_uri"));
                        continue;
                    };
                    if !crate::config::secure_url(uri) {
                        return Err(FetchError::NotJson(format!(
                            "jwks_uri in {url} is not https"
                        )));
                    }
                    *self.resolved.write().unwrap_or_else(|e| e.into_inner()) =
                        Some(uri.to_owned());
                    return Ok(uri.to_owned());
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

/// RFC 8414 (`/.well-known/oauth-authorization-server` inserted before the
/// issuer's path), then OpenID Connect Discovery (appended).
fn metadata_urls(issuer: &str) -> Vec<String> {
    let trimmed = issuer.trim_end_matches('/');
    let mut urls = Vec::new();
    if let Ok(url) = reqwest::Url::parse(trimmed) {
        let path = url.path().trim_end_matches('/');
        let mut base = url.clone();
        base.set_path(&format!("/.well-known/oauth-authorization-server{path}"));
        urls.push(base.to_string());
    }
    urls.push(format!("{trimmed}/.well-known/openid-configuration"));
    urls
}

/// `max-age` of a `Cache-Control` header (`no-store`/`no-cache` read as 0,
/// then raised to the minimum TTL).
fn max_age(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::CACHE_CONTROL)?.to_str().ok()?;
    value.split(',').map(str::trim).find_map(|d| {
        if d.eq_ignore_ascii_case("no-store") || d.eq_ignore_ascii_case("no-cache") {
            return Some(Duration::ZERO);
        }
        let (k, v) = d.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("max-age")
            .then(|| v.trim().trim_matches('"').parse::<u64>().ok())
            .flatten()
            .map(Duration::from_secs)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unusable_keys_are_skipped_not_fatal() {
        let n2048 = URL_SAFE_NO_PAD.encode([0xc5u8; 256]);
        let n1024 = URL_SAFE_NO_PAD.encode([0xc5u8; 128]);
        let padded_1024 = URL_SAFE_NO_PAD.encode([&[0u8; 200][..], &[0xc5u8; 100][..]].concat());
        let doc = json!({"keys": [
            {"kty": "RSA", "kid": "good", "n": n2048, "e": "AQAB", "use": "sig", "alg": "RS256"},
            {"kty": "RSA", "kid": "short", "n": n1024, "e": "AQAB"},
            {"kty": "RSA", "kid": "zero-padded", "n": padded_1024, "e": "AQAB"},
            {"kty": "EC", "kid": "short-x", "crv": "P-256", "x": "AAAA", "y": "AAAA"},
            {"kty": "RSA", "kid": "ps", "n": n2048, "e": "AQAB", "alg": "HS256"},
            {"kty": "RSA", "kid": "enc", "n": n2048, "e": "AQAB", "use": "enc"},
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "RSA", "n": n2048, "e": "AQAB"},
            {"kty": "RSA", "kid": "misfit", "n": n2048, "e": "AQAB", "alg": "ES256"},
            {"kty": "EC", "kid": "k256", "crv": "secp256k1", "x": "AA", "y": "AA"},
            {"kty": "RSA", "kid": 5},
            "not a key"
        ]});
        let keys = parse_jwks(&doc, 100).unwrap();
        assert_eq!(keys.keys().collect::<Vec<_>>(), ["good"]);
        assert!(parse_jwks(&json!({"keys": "x"}), 100).is_err());
        let many = json!({"keys": (0..5).map(|i| json!({"kty": "RSA", "kid": format!("k{i}"), "n": n2048, "e": "AQAB"})).collect::<Vec<_>>()});
        assert_eq!(parse_jwks(&many, 3).unwrap().len(), 3);
    }

    #[test]
    fn malformed_keys_are_told_from_keys_certbound_will_not_use() {
        let n2048 = URL_SAFE_NO_PAD.encode([0xc5u8; 256]);
        let doc = json!({"keys": [
            {"kty": "RSA", "kid": "good", "n": n2048, "e": "AQAB"},
            {"kty": "RSA", "kid": "typed", "n": 5, "e": "AQAB"},
            {"kty": "RSA", "kid": "no-n", "e": "AQAB"},
            {"kty": "EC", "kid": "short", "crv": "P-256", "x": "AAAA", "y": "AAAA"},
            {"kty": "RSA", "kid": "enc", "n": n2048, "e": "AQAB", "use": "enc"},
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}
        ]});
        let (keys, bad) = parse_jwks_noting_malformed(&doc, 100).unwrap();
        assert_eq!(keys.keys().collect::<Vec<_>>(), ["good"]);
        let mut bad: Vec<_> = bad.into_iter().collect();
        bad.sort();
        assert_eq!(
            bad,
            [
                ("no-n".to_owned(), "RSA key without a base64url n"),
                ("short".to_owned(), "EC coordinates of the wrong length"),
                ("typed".to_owned(), "wrong types")
            ]
        );
        assert_eq!(
            parse_jwks(&json!({"keys": "k1"}), 100).unwrap_err(),
            "at `keys`: wrong types"
        );
    }

    #[test]
    fn metadata_urls_follow_rfc8414_then_oidc() {
        assert_eq!(
            metadata_urls("https://as.example/tenant/1"),
            [
                "https://as.example/.well-known/oauth-authorization-server/tenant/1",
                "https://as.example/tenant/1/.well-known/openid-configuration"
            ]
        );
        assert_eq!(
            metadata_urls("https://localhost:8443"),
            [
                "https://localhost:8443/.well-known/oauth-authorization-server",
                "https://localhost:8443/.well-known/openid-configuration"
            ]
        );
    }

    #[test]
    fn cache_control_max_age() {
        let mut h = reqwest::header::HeaderMap::new();
        assert_eq!(max_age(&h), None);
        h.insert("cache-control", "public, max-age=3600".parse().unwrap());
        assert_eq!(max_age(&h), Some(Duration::from_secs(3600)));
        h.insert("cache-control", "no-store".parse().unwrap());
        assert_eq!(max_age(&h), Some(Duration::ZERO));
    }
}

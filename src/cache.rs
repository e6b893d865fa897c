//! A safe answer cache: a decorator in front of any backend
//! (`CERTBOUND_CACHE_TTL_S` > 0), bounded (`moka`, `CERTBOUND_CACHE_MAX_ENTRIES`).
//!
//! What the gateways that cache got wrong, and what this does instead:
//! - **Checks re-run on every request.** Claims backends (RFC 7662, JWT)
//!   are cached per token — key = SHA-256(backend identity, token) — and the
//!   core decides binding, expiry and scopes from the cached claims on every
//!   request, so a hit can never cross a certificate, a route or an expiry
//!   (Oathkeeper CVE-2021-32701 ran scope checks on misses only).
//! - **Deciding backends** (Authlete decides binding and scopes itself) are
//!   cached per request: key = SHA-256(backend identity, token, scheme,
//!   presented certificate thumbprint or none, sorted required scopes).
//! - **The key names the backend** (endpoint, issuer): answers of one server
//!   are never served for another (Oathkeeper GHSA-4mq7-pvjg-xp2r).
//! - **TTL** = min(`CERTBOUND_CACHE_TTL_S`, token expiry − now); negative
//!   answers (inactive, unauthorized, forbidden) only with
//!   `CERTBOUND_CACHE_NEGATIVE_TTL_S` > 0 (default 0, unlike Kong and Tyk).
//! - **Never cached**: requests with a DPoP proof (single-use, bound to one
//!   request), transport failures, timeouts, 5xx, `INTERNAL_SERVER_ERROR`,
//!   anything not understood.
//! - **Never stale**: an expired entry is never used, even when the AS is
//!   down (no "resurrect").
//! - **Single flight**: concurrent misses for one key make one backend call.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use moka::future::Cache;
use moka::Expiry;
use secrecy::ExposeSecret;

use crate::backends::{
    Action, Answer, CacheScope, CacheStatus, IntrospectionError, IntrospectionRequest,
    Introspector, Traced,
};
use crate::request::Scheme;

/// How long answers are kept, and how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSettings {
    /// Positive answers (`0`: no cache at all).
    pub ttl: Duration,
    /// Negative answers (inactive, unauthorized, forbidden); `0`: not kept.
    pub negative_ttl: Duration,
    /// Most entries kept (least recently used evicted first).
    pub max_entries: u64,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            ttl: Duration::ZERO,
            negative_ttl: Duration::ZERO,
            max_entries: 10_000,
        }
    }
}

impl CacheSettings {
    /// Whether a cache is configured.
    pub fn enabled(&self) -> bool {
        !self.ttl.is_zero()
    }
}

type Key = [u8; 32];

#[derive(Clone)]
struct Entry {
    answer: Answer,
    ttl: Duration,
    expires: Instant,
}

struct PerEntryTtl;

impl Expiry<Key, Arc<Entry>> for PerEntryTtl {
    fn expire_after_create(&self, _: &Key, value: &Arc<Entry>, _: Instant) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// Why an answer did not go into the cache (shared with concurrent waiters).
enum Uncached {
    Failed(IntrospectionError),
    Answer(Box<Answer>),
}

/// The caching decorator.
pub struct CachedBackend {
    inner: Arc<dyn Introspector>,
    identity: String,
    scope: CacheScope,
    settings: CacheSettings,
    cache: Cache<Key, Arc<Entry>>,
}

impl CachedBackend {
    /// Puts a cache in front of `inner`.
    pub fn new(inner: Arc<dyn Introspector>, settings: CacheSettings) -> Self {
        let cache = Cache::builder()
            .max_capacity(settings.max_entries)
            .expire_after(PerEntryTtl)
            .build();
        Self {
            identity: inner.identity(),
            scope: inner.cache_scope(),
            inner,
            settings,
            cache,
        }
    }

    /// Entries currently held (approximate, for tests and metrics).
    pub async fn entries(&self) -> u64 {
        self.cache.run_pending_tasks().await;
        self.cache.entry_count()
    }

    fn key(&self, request: &IntrospectionRequest) -> Key {
        let mut h = ring::digest::Context::new(&ring::digest::SHA256);
        let mut field = |bytes: &[u8]| {
            h.update(&(bytes.len() as u64).to_be_bytes());
            h.update(bytes);
        };
        field(self.identity.as_bytes());
        field(request.token.expose_secret().as_bytes());
        if self.scope == CacheScope::PerRequest {
            field(request.scheme.to_string().as_bytes());
            field(
                request
                    .client_cert
                    .as_ref()
                    .map_or("none", |c| c.thumbprint())
                    .as_bytes(),
            );
            match &request.scopes {
                None => field(b"no requirement"),
                Some(scopes) => {
                    let mut sorted: Vec<&str> = scopes.iter().map(String::as_str).collect();
                    sorted.sort_unstable();
                    sorted.dedup();
                    field(b"scopes");
                    for s in sorted {
                        field(s.as_bytes());
                    }
                }
            }
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(h.finish().as_ref());
        key
    }

    /// How long an answer may be kept; `None`: not at all.
    fn ttl(&self, answer: &Answer, now: i64) -> Option<Duration> {
        let until_expiry = |exp_s: Option<i64>| -> Option<Duration> {
            match exp_s {
                None => Some(self.settings.ttl),
                Some(exp) if exp > now => Some(
                    self.settings
                        .ttl
                        .min(Duration::from_secs((exp - now) as u64)),
                ),
                Some(_) => None,
            }
        };
        let negative =
            (!self.settings.negative_ttl.is_zero()).then_some(self.settings.negative_ttl);
        match answer {
            Answer::Claims(c) if c.active => until_expiry(c.exp),
            Answer::Claims(_) => negative,
            Answer::Decided(d) => match d.action {
                Action::Ok => {
                    until_expiry(d.expires_at_ms.filter(|ms| *ms > 0).map(|ms| ms / 1000))
                }
                Action::BadRequest | Action::Unauthorized | Action::Forbidden => negative,
                Action::InternalServerError => None,
            },
        }
    }
}

fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[async_trait]
impl Introspector for CachedBackend {
    async fn introspect(
        &self,
        request: &IntrospectionRequest,
    ) -> Result<Answer, IntrospectionError> {
        self.introspect_traced(request).await.result
    }

    async fn introspect_traced(&self, request: &IntrospectionRequest) -> Traced {
        let traced = self.lookup(request).await;
        crate::telemetry::cache(traced.cache);
        traced
    }

    fn verifies_dpop(&self) -> bool {
        self.inner.verifies_dpop()
    }

    fn identity(&self) -> String {
        self.identity.clone()
    }

    fn cache_scope(&self) -> CacheScope {
        self.scope
    }
}

impl CachedBackend {
    /// The answer, from the cache or the backend, and which it was.
    async fn lookup(&self, request: &IntrospectionRequest) -> Traced {
        if request.dpop.is_some() || request.scheme == Scheme::DPoP {
            return Traced {
                result: self.inner.introspect(request).await,
                cache: CacheStatus::Bypass,
            };
        }
        let key = self.key(request);
        if let Some(entry) = self.cache.get(&key).await {
            if entry.expires > Instant::now() {
                return Traced {
                    result: Ok(entry.answer.clone()),
                    cache: CacheStatus::Hit,
                };
            }
            self.cache.invalidate(&key).await;
        }
        let asked = AtomicBool::new(false);
        let loaded = self
            .cache
            .try_get_with(key, async {
                asked.store(true, Ordering::Relaxed);
                let answer = self
                    .inner
                    .introspect(request)
                    .await
                    .map_err(Uncached::Failed)?;
                match self.ttl(&answer, now_s()) {
                    Some(ttl) if !ttl.is_zero() => Ok(Arc::new(Entry {
                        answer,
                        ttl,
                        expires: Instant::now() + ttl,
                    })),
                    _ => Err(Uncached::Answer(Box::new(answer))),
                }
            })
            .await;
        let cache = if asked.load(Ordering::Relaxed) {
            CacheStatus::Miss
        } else {
            CacheStatus::Hit
        };
        let result = match loaded {
            Ok(entry) => Ok(entry.answer.clone()),
            Err(shared) => match shared.as_ref() {
                Uncached::Failed(e) => Err(e.clone()),
                Uncached::Answer(a) => Ok(a.as_ref().clone()),
            },
        };
        Traced { result, cache }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Named(&'static str, CacheScope);

    #[async_trait]
    impl Introspector for Named {
        async fn introspect(&self, _: &IntrospectionRequest) -> Result<Answer, IntrospectionError> {
            Err(IntrospectionError::Timeout)
        }
        fn identity(&self) -> String {
            self.0.to_owned()
        }
        fn cache_scope(&self) -> CacheScope {
            self.1
        }
    }

    fn request(token: &str, scopes: Option<&[&str]>) -> IntrospectionRequest {
        IntrospectionRequest {
            token: token.into(),
            scheme: Scheme::Bearer,
            scopes: scopes.map(|s| s.iter().map(|x| x.to_string()).collect()),
            client_cert: None,
            dpop: None,
            htm: None,
            htu: None,
        }
    }

    #[test]
    fn keys_separate_backends_tokens_and_for_deciding_backends_scopes() {
        let settings = CacheSettings {
            ttl: Duration::from_secs(60),
            ..CacheSettings::default()
        };
        let cache = |name, scope| CachedBackend::new(Arc::new(Named(name, scope)), settings);
        let a = cache("https://as-1/introspect", CacheScope::PerToken);
        let b = cache("https://as-2/introspect", CacheScope::PerToken);
        let t = request("token", None);
        assert_ne!(a.key(&t), b.key(&t), "another endpoint, another key");
        assert_ne!(a.key(&t), a.key(&request("token2", None)));
        assert_eq!(
            a.key(&t),
            a.key(&request("token", Some(&["x"]))),
            "claims: per token"
        );
        let d = cache("authlete", CacheScope::PerRequest);
        assert_ne!(
            d.key(&request("t", Some(&["a"]))),
            d.key(&request("t", Some(&["b"])))
        );
        assert_eq!(
            d.key(&request("t", Some(&["a", "b"]))),
            d.key(&request("t", Some(&["b", "a"]))),
            "scope order does not matter"
        );
        assert_ne!(d.key(&request("t", None)), d.key(&request("t", Some(&[]))));
        // Length-prefixed fields: no ambiguity between a token and the next field.
        let x = cache("ab", CacheScope::PerToken);
        let y = cache("a", CacheScope::PerToken);
        assert_ne!(x.key(&request("c", None)), y.key(&request("bc", None)));
    }
}

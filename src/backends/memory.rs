//! An in-memory claims backend: tokens you register, nothing else. For
//! tests, benchmarks and your own hook tests; no network.
//!
//! ```
//! use std::sync::Arc;
//! use certbound::backends::memory::MemoryBackend;
//! use certbound::backends::Claims;
//! use certbound::{authorize, AuthRequest, Decision, Settings, StandardAuthorizer};
//! use certbound::decision::BindingPolicy;
//! use certbound::request::{parse_authorization, Source};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let backend = Arc::new(MemoryBackend::new());
//! backend.insert("t0k3n", Claims { active: true, sub: Some("alice".into()), ..Default::default() });
//! let mut settings = Settings::default();
//! settings.validation.binding = BindingPolicy::Off; // this example has no certificate
//! let authorizer = StandardAuthorizer::new(backend.clone(), settings);
//!
//! let mut request = AuthRequest::new(Source::Http, "GET", "/x", "GET /x");
//! request.credentials = parse_authorization("Bearer t0k3n");
//! let verdict = authorize(&authorizer, &request).await;
//! assert_eq!(verdict.decision, Decision::Allow);
//! assert_eq!(verdict.principal_id, "alice");
//! assert_eq!(backend.calls(), 1);
//! # });
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::RwLock;

use async_trait::async_trait;
use secrecy::ExposeSecret;

use super::{Answer, Claims, IntrospectionError, IntrospectionRequest, Introspector};

/// Tokens and their claims, in memory. An unknown token is inactive.
#[derive(Debug, Default)]
pub struct MemoryBackend {
    tokens: RwLock<HashMap<String, Claims>>,
    calls: AtomicUsize,
}

impl MemoryBackend {
    /// An empty backend.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers (or replaces) a token.
    pub fn insert(&self, token: &str, claims: Claims) {
        self.write().insert(token.to_owned(), claims);
    }

    /// Forgets a token (it then reads as inactive, like a revoked one).
    pub fn revoke(&self, token: &str) {
        self.write().remove(token);
    }

    /// How many times the backend was asked.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::Relaxed)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Claims>> {
        self.tokens.write().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl Introspector for MemoryBackend {
    async fn introspect(
        &self,
        request: &IntrospectionRequest,
    ) -> Result<Answer, IntrospectionError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let tokens = self.tokens.read().unwrap_or_else(|e| e.into_inner());
        Ok(Answer::Claims(
            tokens
                .get(request.token.expose_secret())
                .cloned()
                .unwrap_or_default(),
        ))
    }

    fn identity(&self) -> String {
        format!("memory {:p}", self)
    }
}

//! Shared by the benchmarks: the sample event, an Authlete-like in-memory
//! backend, the ready authorizers, and the binary's allocator.
#![allow(dead_code)] // each benchmark uses part of it

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use certbound::backends::CacheScope;
use certbound::cache::{CacheSettings, CachedBackend};
use certbound::{
    Action, Answer, IntrospectionError, IntrospectionRequest, IntrospectionResponse, Introspector,
    Settings, StandardAuthorizer,
};

/// A REST `REQUEST` event with a client certificate.
pub const EVENT: &str = include_str!("../../events/rest-request.json");

/// The allocator the binary uses (`src/main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Answers like Authlete, without a network: a decision per request.
pub struct Fixed(pub Answer);

#[async_trait]
impl Introspector for Fixed {
    async fn introspect(&self, _: &IntrospectionRequest) -> Result<Answer, IntrospectionError> {
        Ok(self.0.clone())
    }
    fn cache_scope(&self) -> CacheScope {
        CacheScope::PerRequest
    }
}

/// Authlete's `OK` for a token bound to the event's certificate.
pub fn authlete_ok() -> Answer {
    let mut ok = IntrospectionResponse::new(Action::Ok);
    ok.result_code = Some("A056001".into());
    ok.subject = Some("john".into());
    ok.client_id = Some("1234".into());
    ok.scopes = Some(vec!["accounts".into()]);
    ok.expires_at_ms = Some(4_102_444_800_000);
    ok.certificate_thumbprint = Some("t9i3fFFsi40iaYFo6grXDTsBiCbSEynf5czFoatax44".into());
    Answer::Decided(ok)
}

/// The standard authorizer over that answer, without a cache.
pub fn uncached() -> StandardAuthorizer {
    StandardAuthorizer::new(Arc::new(Fixed(authlete_ok())), Settings::default())
}

/// The same behind the answer cache: every call after the first is a hit.
pub fn cached() -> StandardAuthorizer {
    StandardAuthorizer::new(
        Arc::new(CachedBackend::new(
            Arc::new(Fixed(authlete_ok())),
            CacheSettings {
                ttl: Duration::from_secs(3600),
                ..Default::default()
            },
        )),
        Settings::default(),
    )
}

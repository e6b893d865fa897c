//! The cache-hit path, N times, for `valgrind --tool=callgrind` (instruction
//! counts are stable on a noisy machine): `make callgrind`. Not a criterion
//! benchmark: `cargo bench --bench hotpath -- N` runs it N times.

use std::sync::Arc;

use async_trait::async_trait;
use certbound::config::HttpApiResponse;
use certbound::fronts::lambda::handle_event;
use certbound::{
    Action, Answer, IntrospectionError, IntrospectionRequest, IntrospectionResponse, Introspector,
    Settings, StandardAuthorizer,
};

const EVENT: &str = include_str!("../../events/rest-request.json");

/// The allocator the binary uses (`src/main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Fixed(Answer);

#[async_trait]
impl Introspector for Fixed {
    async fn introspect(&self, _: &IntrospectionRequest) -> Result<Answer, IntrospectionError> {
        Ok(self.0.clone())
    }
    fn cache_scope(&self) -> certbound::backends::CacheScope {
        certbound::backends::CacheScope::PerRequest
    }
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut ok = IntrospectionResponse::new(Action::Ok);
    ok.subject = Some("john".into());
    ok.client_id = Some("1234".into());
    ok.scopes = Some(vec!["accounts".into()]);
    ok.expires_at_ms = Some(4_102_444_800_000);
    ok.certificate_thumbprint = Some("t9i3fFFsi40iaYFo6grXDTsBiCbSEynf5czFoatax44".into());
    let authorizer = StandardAuthorizer::new(
        Arc::new(certbound::cache::CachedBackend::new(
            Arc::new(Fixed(Answer::Decided(ok))),
            certbound::cache::CacheSettings {
                ttl: std::time::Duration::from_secs(3600),
                ..Default::default()
            },
        )),
        Settings::default(),
    );
    let raw: serde_json::Value = serde_json::from_str(EVENT).unwrap();
    let mut allowed = 0;
    for _ in 0..n {
        let out = rt
            .block_on(handle_event(
                &authorizer,
                HttpApiResponse::Policy,
                raw.clone(),
                None,
            ))
            .unwrap();
        allowed += usize::from(out["policyDocument"]["Statement"][0]["Effect"] == "Allow");
    }
    assert_eq!(allowed, n);
    println!("{n} cache-hit decisions");
}

//! A custom authorizer: `GET /time` needs the `time:query` scope; every
//! other route falls back to the standard rules (`CERTBOUND_SCOPE_RULES`).
//! It also tags the context and logs denials.
//!
//! Build it as your Lambda's `bootstrap` instead of the stock binary:
//! `cargo lambda build --release --example time_scopes`.

use std::sync::Arc;

use async_trait::async_trait;
use certbound::bootstrap::{start_from_process_env, Ready};
use certbound::fronts::lambda;
use certbound::{
    AuthRequest, Authorizer, Context, IntrospectionError, IntrospectionRequest,
    IntrospectionResponse, Introspector, Settings, StandardAuthorizer, Verdict,
};

/// Wraps the ready-made authorizer and replaces two hooks.
pub struct TimeAuthorizer {
    /// Everything not overridden is delegated to it.
    pub inner: StandardAuthorizer,
}

#[async_trait]
impl Authorizer for TimeAuthorizer {
    fn introspector(&self) -> &dyn Introspector {
        self.inner.introspector()
    }

    fn settings(&self) -> &Settings {
        self.inner.settings()
    }

    async fn determine_scopes(&self, request: &AuthRequest) -> Option<Vec<String>> {
        // `path` is normalised (decoded, dot segments resolved, no stage, no
        // query): `/time/`, `/x/../time` and `/%74ime` all read `/time`.
        // HEAD is a GET for access purposes.
        if matches!(request.method.as_str(), "GET" | "HEAD") && request.path == "/time" {
            return Some(vec!["time:query".to_owned()]);
        }
        self.inner.determine_scopes(request).await
    }

    async fn update_policy_context(
        &self,
        _request: &AuthRequest,
        _introspection: &IntrospectionRequest,
        _result: Result<&IntrospectionResponse, &IntrospectionError>,
        context: &mut Context,
    ) {
        context.insert("authorizer".into(), "time-example".into());
    }

    async fn on_deny(&self, request: &AuthRequest, verdict: &Verdict) {
        tracing::info!(path = %request.path, action = ?verdict.action, "time example denied a call");
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    certbound::logging::init();
    let Ready { config, authorizer } = start_from_process_env().await?;
    let authorizer = TimeAuthorizer { inner: authorizer };
    lambda::run(Arc::new(authorizer), config.http_api_response).await
}

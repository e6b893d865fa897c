//! A cap on calls to the authorization server in flight
//! (`CERTBOUND_MAX_INFLIGHT`). Beyond it a call is not sent and not
//! queued: it fails at once with [`IntrospectionError::Overloaded`] (500 /
//! Deny; `certbound serve` answers 503). A slow or dead AS then costs at
//! most `limit` waiting tasks and their sockets, however many requests
//! arrive; answers from the cache (which sits in front of this cap) and
//! local refusals go on unaffected.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::Semaphore;

use super::{Answer, CacheScope, IntrospectionError, IntrospectionRequest, Introspector};

/// A backend behind an in-flight cap.
pub struct InflightLimit {
    inner: Arc<dyn Introspector>,
    permits: Arc<Semaphore>,
    limit: usize,
}

impl InflightLimit {
    /// At most `limit` (≥ 1) calls of `inner` at a time.
    pub fn new(inner: Arc<dyn Introspector>, limit: usize) -> Self {
        let limit = limit.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            inner,
            permits: Arc::new(Semaphore::new(limit)),
            limit,
        }
    }

    /// Calls in flight now.
    pub fn in_flight(&self) -> usize {
        self.limit - self.permits.available_permits()
    }
}

#[async_trait]
impl Introspector for InflightLimit {
    async fn introspect(
        &self,
        request: &IntrospectionRequest,
    ) -> Result<Answer, IntrospectionError> {
        let Ok(_permit) = self.permits.try_acquire() else {
            return Err(IntrospectionError::Overloaded { limit: self.limit });
        };
        self.inner.introspect(request).await
    }

    fn verifies_dpop(&self) -> bool {
        self.inner.verifies_dpop()
    }

    fn identity(&self) -> String {
        self.inner.identity()
    }

    fn cache_scope(&self) -> CacheScope {
        self.inner.cache_scope()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::IntrospectionResponse;
    use std::time::Duration;

    /// Answers after a pause.
    struct Slow;

    #[async_trait]
    impl Introspector for Slow {
        async fn introspect(
            &self,
            _request: &IntrospectionRequest,
        ) -> Result<Answer, IntrospectionError> {
            tokio::time::sleep(Duration::from_millis(200)).await;
            Ok(Answer::Decided(IntrospectionResponse::new(
                crate::backends::Action::Ok,
            )))
        }
    }

    fn request() -> IntrospectionRequest {
        IntrospectionRequest {
            token: "t".to_owned().into(),
            scheme: crate::request::Scheme::Bearer,
            scopes: None,
            client_cert: None,
            dpop: None,
            htm: None,
            htu: None,
        }
    }

    #[tokio::test]
    async fn beyond_the_limit_fails_at_once_and_frees_on_completion() {
        let limited = Arc::new(InflightLimit::new(Arc::new(Slow), 2));
        let r = request();
        let a = tokio::spawn({
            let l = limited.clone();
            let r = request();
            async move { l.introspect(&r).await }
        });
        let b = tokio::spawn({
            let l = limited.clone();
            let r = request();
            async move { l.introspect(&r).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(limited.in_flight(), 2);
        let third = limited.introspect(&r).await;
        assert_eq!(third, Err(IntrospectionError::Overloaded { limit: 2 }));
        // Not queued: refused while the other two are still in flight.
        assert_eq!(limited.in_flight(), 2);
        assert!(a.await.unwrap().is_ok());
        assert!(b.await.unwrap().is_ok());
        assert_eq!(limited.in_flight(), 0);
        assert!(limited.introspect(&r).await.is_ok(), "permits come back");
    }
}

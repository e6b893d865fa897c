//! Hooks: their order on every path, and a custom implementation (the one
//! in `examples/`) changing the decision.

mod common;

#[path = "../examples/time_scopes.rs"]
#[allow(dead_code)]
mod time_scopes;

use std::sync::Mutex;

use async_trait::async_trait;
use certbound::fronts::lambda::handle_event;
use certbound::{
    authorize, Answer, AuthRequest, Authorizer, Context, ContextValue, Decision,
    IntrospectionError, IntrospectionRequest, IntrospectionResponse, Introspector, Settings,
    StandardAuthorizer, Verdict,
};
use common::*;
use serde_json::json;
use wiremock::matchers::{body_partial_json, method};
use wiremock::{Mock, MockServer, ResponseTemplate};

struct Recording {
    inner: StandardAuthorizer,
    calls: Mutex<Vec<&'static str>>,
}

impl Recording {
    fn push(&self, hook: &'static str) {
        self.calls.lock().unwrap().push(hook);
    }
    fn take(&self) -> Vec<&'static str> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }
}

#[async_trait]
impl Authorizer for Recording {
    fn introspector(&self) -> &dyn Introspector {
        self.inner.introspector()
    }
    fn settings(&self) -> &Settings {
        self.inner.settings()
    }
    async fn on_enter(&self, _: &AuthRequest) {
        self.push("on_enter");
    }
    async fn determine_scopes(&self, _: &AuthRequest) -> Option<Vec<String>> {
        self.push("determine_scopes");
        None
    }
    async fn on_introspection(
        &self,
        _: &AuthRequest,
        _: &IntrospectionRequest,
        _: &IntrospectionResponse,
    ) {
        self.push("on_introspection");
    }
    async fn on_introspection_error(
        &self,
        _: &AuthRequest,
        _: &IntrospectionRequest,
        _: &IntrospectionError,
    ) {
        self.push("on_introspection_error");
    }
    async fn update_policy_context(
        &self,
        _: &AuthRequest,
        _: &IntrospectionRequest,
        _: Result<&IntrospectionResponse, &IntrospectionError>,
        ctx: &mut Context,
    ) {
        self.push("update_policy_context");
        ctx.insert("tenant".into(), ContextValue::from("acme"));
        ctx.insert("tier".into(), ContextValue::from(3));
    }
    async fn on_allow(&self, _: &AuthRequest, _: &Verdict) {
        self.push("on_allow");
    }
    async fn on_deny(&self, _: &AuthRequest, _: &Verdict) {
        self.push("on_deny");
    }
    async fn on_unauthorized(&self, _: &AuthRequest, _: &Verdict) {
        self.push("on_unauthorized");
    }
    async fn on_internal_server_error(&self, _: &AuthRequest, _: &Verdict) {
        self.push("on_internal_server_error");
    }
}

#[tokio::test]
async fn hooks_run_in_the_reference_order_on_every_path() {
    let server = MockServer::start().await;
    let cert = gen_cert("ec-p256", "client-a");
    let request = || {
        let event = rest_event(Some(&format!("Bearer {TOKEN}")), Some(&cert.pem));
        certbound::fronts::lambda::Event::parse(&event)
            .unwrap()
            .to_auth_request()
            .unwrap()
    };
    let head = ["on_enter", "determine_scopes"];
    let cases: Vec<(Option<&'static str>, &str, &str, &str)> = vec![
        (Some("OK"), "true", "on_introspection", "on_allow"),
        (Some("FORBIDDEN"), "true", "on_introspection", "on_deny"),
        (
            Some("UNAUTHORIZED"),
            "false",
            "on_introspection",
            "on_unauthorized",
        ),
        (
            Some("INTERNAL_SERVER_ERROR"),
            "false",
            "on_introspection",
            "on_internal_server_error",
        ),
        (
            None,
            "false",
            "on_introspection_error",
            "on_internal_server_error",
        ),
        (None, "true", "on_introspection_error", "on_deny"),
    ];
    for (answer, policy, third, last) in cases {
        server.reset().await;
        match answer {
            Some(action) => mount_authlete(&server, bound(action, &cert)).await,
            None => mount_authlete(&server, ResponseTemplate::new(503)).await,
        }
        let env = authlete_env(&server.uri(), false, &[("CERTBOUND_POLICY", policy)]);
        let (_, inner) = authorizer(&env);
        let rec = Recording {
            inner,
            calls: Mutex::new(Vec::new()),
        };
        let verdict = authorize(&rec, &request()).await;
        let expected = [&head[..], &[third, "update_policy_context", last]].concat();
        assert_eq!(rec.take(), expected, "policy={policy} last={last}");
        assert_eq!(verdict.context["tenant"], ContextValue::from("acme"));
        assert_eq!(verdict.context["tier"], ContextValue::from(3));
    }
}

#[tokio::test]
async fn a_custom_determine_scopes_changes_the_decision() {
    // The double behaves like Authlete: FORBIDDEN when asked for a scope the
    // token does not have (time:query), OK otherwise.
    let cert = gen_cert("ec-p256", "client-a");
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_partial_json(json!({"scopes": ["time:query"]})))
        .respond_with(bound("FORBIDDEN", &cert))
        .with_priority(1)
        .mount(&server)
        .await;
    mount_authlete(&server, bound("OK", &cert)).await;
    let env = authlete_env(&server.uri(), false, &[]);
    let (config, standard) = authorizer(&env);
    let mut event = rest_event(Some(&format!("Bearer {TOKEN}")), Some(&cert.pem));
    event["resource"] = json!("/time");
    event["path"] = json!("/time");
    event["pathParameters"] = json!(null);
    event["methodArn"] =
        json!("arn:aws:execute-api:eu-west-2:123456789012:a1b2c3d4e5/prod/GET/time");

    let out = handle_event(&standard, config.http_api_response, event.clone(), None)
        .await
        .unwrap();
    assert_eq!(effect(&out), "Allow", "stock authorizer requires no scope");

    let custom = time_scopes::TimeAuthorizer {
        inner: certbound::bootstrap::authorizer(&config).unwrap(),
    };
    let out = handle_event(&custom, config.http_api_response, event.clone(), None)
        .await
        .unwrap();
    assert_eq!(effect(&out), "Deny", "GET /time needs time:query");
    assert_eq!(out["context"]["authorizer"], "time-example");
    assert!(out["context"]["challenge"]
        .as_str()
        .unwrap()
        .contains("insufficient_scope"));
    let bodies = received_bodies(&server).await;
    assert!(bodies[0].get("scopes").is_none());
    assert_eq!(bodies[1]["scopes"], json!(["time:query"]));

    // Spellings of the same path cannot slip past the hook: it sees the
    // normalised path (TOKEN events carry only the ARN's concrete path).
    for arn_path in ["time/", "x/../time", "%74ime", "time?q=1"] {
        let token_event = json!({"type": "TOKEN", "authorizationToken": format!("Bearer {TOKEN}"),
            "methodArn": format!("arn:aws:execute-api:eu-west-2:123456789012:a1b2c3d4e5/prod/GET/{arn_path}")});
        let env = authlete_env(
            &server.uri(),
            false,
            &[("CERTBOUND_REQUIRE_BINDING", "false")],
        );
        let (config, _) = authorizer(&env);
        let custom = time_scopes::TimeAuthorizer {
            inner: certbound::bootstrap::authorizer(&config).unwrap(),
        };
        let out = handle_event(&custom, config.http_api_response, token_event, None)
            .await
            .unwrap();
        assert_eq!(effect(&out), "Deny", "/{arn_path} is /time");
    }

    // Other routes keep the standard behaviour.
    event["methodArn"] = json!(ARN);
    event["resource"] = json!("/accounts/{id}/balances");
    event["path"] = json!("/accounts/1234/balances");
    event["pathParameters"] = json!({"id": "1234"});
    let out = handle_event(&custom, config.http_api_response, event, None)
        .await
        .unwrap();
    assert_eq!(effect(&out), "Allow");
}

/// An introspector that must never be reached.
struct Unreachable;

#[async_trait]
impl Introspector for Unreachable {
    async fn introspect(&self, _: &IntrospectionRequest) -> Result<Answer, IntrospectionError> {
        panic!("the AS must not be asked")
    }
}

#[tokio::test]
async fn core_runs_without_network_and_without_a_token_never_asks() {
    let a = StandardAuthorizer::new(std::sync::Arc::new(Unreachable), Settings::default());
    let r = AuthRequest::new(certbound::request::Source::Http, "GET", "/x", "GET /x");
    let v = authorize(&a, &r).await;
    assert_eq!(v.decision, Decision::Deny);
    assert_eq!(
        v.challenge.map(|c| c.to_string()).as_deref(),
        Some("Bearer")
    );
    assert_eq!(v.reason, Some(certbound::Reason::TokenMissing));
}

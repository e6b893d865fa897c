//! API Gateway Lambda authorizer front: event → [`AuthRequest`] →
//! [`authorize`] → IAM policy / simple response / `Unauthorized` error.
//!
//! The event kind is recognised from the event itself: `type: TOKEN`,
//! `type: REQUEST` with `version: "2.0"` (HTTP API payload 2.0), or any
//! other `REQUEST` (REST API, HTTP API payload 1.0).

use std::sync::Arc;

use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerRequest, ApiGatewayCustomAuthorizerRequestTypeRequest,
    ApiGatewayV2CustomAuthorizerV2Request,
};
use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde::Serialize;
use serde_json::{json, Value};

use crate::authorizer::{authorize, Authorizer};
use crate::config::HttpApiResponse;
use crate::request::{
    credentials_from_headers as credentials, header_map, htu, parse_authorization, single_header,
    ArnError, AuthRequest, CredentialsError, MethodArn, PresentedCert, Source,
};
use crate::verdict::{Context, Decision, Verdict};

/// Why an event could not be understood.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// The payload is not a JSON object.
    #[error("event is not a JSON object")]
    NotAnObject,
    /// `type` is neither `TOKEN` nor `REQUEST`.
    #[error("unknown authorizer event type {0:?} (expected TOKEN or REQUEST)")]
    UnknownType(String),
    /// The event does not have the shape of its kind.
    #[error("malformed {kind} event: {reason}")]
    Shape {
        /// Which kind we tried.
        kind: &'static str,
        /// The deserializer's complaint.
        reason: String,
    },
    /// No `methodArn` / `routeArn`.
    #[error("{0} event has no {1}")]
    NoResource(&'static str, &'static str),
    /// The ARN is not an execute-api ARN.
    #[error(transparent)]
    Arn(#[from] ArnError),
}

/// A recognised authorizer event.
#[derive(Debug)]
pub enum Event {
    /// REST API (or HTTP API 1.0) `REQUEST` authorizer.
    Rest(Box<ApiGatewayCustomAuthorizerRequestTypeRequest>),
    /// REST API `TOKEN` authorizer.
    Token(ApiGatewayCustomAuthorizerRequest),
    /// HTTP API payload 2.0 authorizer.
    HttpV2(Box<ApiGatewayV2CustomAuthorizerV2Request>),
}

impl Event {
    /// Recognises and deserializes an event. `clientCert` objects without
    /// `validity` (which `aws_lambda_events` requires but real and test
    /// events sometimes lack) are accepted.
    pub fn parse(mut raw: Value) -> Result<Self, EventError> {
        let obj = raw.as_object().ok_or(EventError::NotAnObject)?;
        let kind = obj.get("type").and_then(Value::as_str).unwrap_or("");
        let v2 = obj.get("version").and_then(Value::as_str) == Some("2.0");
        match (kind.to_ascii_uppercase().as_str(), v2) {
            ("TOKEN", _) => typed("TOKEN", raw).map(Event::Token),
            ("REQUEST", true) | ("", true) => {
                fill_cert_validity(&mut raw, "authentication");
                typed("HTTP API 2.0", raw).map(|e| Event::HttpV2(Box::new(e)))
            }
            ("REQUEST", false) => {
                fill_cert_validity(&mut raw, "identity");
                typed("REQUEST", raw).map(|e| Event::Rest(Box::new(e)))
            }
            _ => Err(EventError::UnknownType(kind.chars().take(40).collect())),
        }
    }

    /// Short name of the kind, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Rest(_) => "REQUEST",
            Event::Token(_) => "TOKEN",
            Event::HttpV2(_) => "HTTP API 2.0",
        }
    }

    /// Extracts token, certificate, method, path and resource.
    pub fn to_auth_request(&self) -> Result<AuthRequest, EventError> {
        match self {
            Event::Token(e) => {
                let arn = e
                    .method_arn
                    .as_deref()
                    .ok_or(EventError::NoResource("TOKEN", "methodArn"))?;
                let parsed = MethodArn::parse(arn)?;
                let mut r = AuthRequest::new(Source::RestToken, &parsed.method, &parsed.path, arn);
                r.credentials = match e.authorization_token.as_deref() {
                    None | Some("") => Err(CredentialsError::Missing),
                    Some(v) => parse_authorization(v),
                };
                Ok(r)
            }
            Event::Rest(e) => {
                let arn = e
                    .method_arn
                    .as_deref()
                    .ok_or(EventError::NoResource("REQUEST", "methodArn"))?;
                let parsed = MethodArn::parse(arn)?;
                let mut r =
                    AuthRequest::new(Source::RestRequest, &parsed.method, &parsed.path, arn);
                r.credentials = credentials(&[&e.headers, &e.multi_value_headers]);
                r.dpop_proof = single_header(&e.headers, "dpop");
                let ctx = &e.request_context;
                let pem = ctx
                    .identity
                    .as_ref()
                    .and_then(|i| i.client_cert.as_ref())
                    .and_then(|c| c.client_cert_pem.as_deref());
                r.client_cert = PresentedCert::from_optional(pem);
                let host = single_header(&e.headers, "host");
                let called = ctx.path.as_deref().or(e.path.as_deref());
                r.htu = htu(host.as_deref(), called.unwrap_or(&r.path));
                r.headers = header_map(&e.headers);
                r.request_id = ctx.request_id.clone();
                Ok(r)
            }
            Event::HttpV2(e) => {
                let arn = e
                    .route_arn
                    .as_deref()
                    .ok_or(EventError::NoResource("HTTP API 2.0", "routeArn"))?;
                let parsed = MethodArn::parse(arn)?;
                let ctx = &e.request_context;
                let method = ctx.http.method.as_str();
                let path = e
                    .raw_path
                    .as_deref()
                    .or(ctx.http.path.as_deref())
                    .unwrap_or(&parsed.path);
                let mut r = AuthRequest::new(Source::HttpApiV2, method, path, arn);
                r.credentials = credentials(&[&e.headers]);
                r.dpop_proof = single_header(&e.headers, "dpop");
                let pem = ctx
                    .authentication
                    .as_ref()
                    .and_then(|a| a.client_cert.as_ref())
                    .and_then(|c| c.client_cert_pem.as_deref());
                r.client_cert = PresentedCert::from_optional(pem);
                let host = ctx
                    .domain_name
                    .clone()
                    .or_else(|| single_header(&e.headers, "host"));
                r.htu = htu(host.as_deref(), path);
                r.headers = header_map(&e.headers);
                r.request_id = ctx.request_id.clone();
                Ok(r)
            }
        }
    }
}

fn typed<T: serde::de::DeserializeOwned>(kind: &'static str, raw: Value) -> Result<T, EventError> {
    serde_json::from_value(raw).map_err(|e| EventError::Shape {
        kind,
        reason: e.to_string(),
    })
}

/// Adds an empty `validity` to `requestContext.<holder>.clientCert` when it
/// is missing, so that the strict `aws_lambda_events` types accept it.
fn fill_cert_validity(raw: &mut Value, holder: &str) {
    if let Some(cert) = raw
        .pointer_mut(&format!("/requestContext/{holder}/clientCert"))
        .and_then(Value::as_object_mut)
    {
        if !cert.get("validity").is_some_and(Value::is_object) {
            cert.insert("validity".into(), json!({}));
        }
    }
}

/// The handler failing: what API Gateway turns into 401 / 500.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandlerError {
    /// → 401.
    #[error("Unauthorized")]
    Unauthorized,
    /// → 500.
    #[error("Internal Server Error")]
    InternalServerError,
    /// The event could not be understood → 500.
    #[error("Internal Server Error")]
    InvalidEvent(String),
    /// The configuration (or the secret it needs) is not usable → 500.
    #[error("Internal Server Error")]
    Configuration(String),
}

impl HandlerError {
    /// Our `errorType` for the runtime.
    pub fn error_type(&self) -> &'static str {
        match self {
            HandlerError::Unauthorized => "Unauthorized",
            HandlerError::InternalServerError => "InternalServerError",
            HandlerError::InvalidEvent(_) => "InvalidEvent",
            HandlerError::Configuration(_) => "ConfigurationError",
        }
    }
}

impl From<HandlerError> for Diagnostic {
    fn from(e: HandlerError) -> Self {
        Diagnostic {
            error_type: e.error_type().to_owned(),
            error_message: e.to_string(),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PolicyResponse<'a> {
    principal_id: &'a str,
    policy_document: PolicyDocument<'a>,
    context: &'a Context,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct PolicyDocument<'a> {
    version: &'static str,
    statement: [Statement<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Statement<'a> {
    action: &'static str,
    effect: &'static str,
    resource: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SimpleResponse<'a> {
    is_authorized: bool,
    context: &'a Context,
}

/// Turns a verdict into what the Lambda returns for this kind of event.
pub fn respond(
    event: &Event,
    verdict: &Verdict,
    http_api: HttpApiResponse,
) -> Result<Value, HandlerError> {
    let effect = match verdict.decision {
        Decision::Allow => "Allow",
        Decision::Deny => "Deny",
        Decision::Unauthorized => return Err(HandlerError::Unauthorized),
        Decision::InternalServerError => return Err(HandlerError::InternalServerError),
    };
    let value = if matches!(event, Event::HttpV2(_)) && http_api == HttpApiResponse::Simple {
        serde_json::to_value(SimpleResponse {
            is_authorized: verdict.decision == Decision::Allow,
            context: &verdict.context,
        })
    } else {
        serde_json::to_value(PolicyResponse {
            principal_id: &verdict.principal_id,
            policy_document: PolicyDocument {
                version: "2012-10-17",
                statement: [Statement {
                    action: "execute-api:Invoke",
                    effect,
                    resource: &verdict.resource,
                }],
            },
            context: &verdict.context,
        })
    };
    value.map_err(|_| HandlerError::InternalServerError)
}

/// One invocation: the whole flow, top to bottom.
pub async fn handle_event<A: Authorizer + ?Sized>(
    authorizer: &A,
    http_api: HttpApiResponse,
    payload: Value,
    request_id: Option<String>,
) -> Result<Value, HandlerError> {
    let event = Event::parse(payload.clone()).map_err(invalid)?;
    let mut request = event.to_auth_request().map_err(invalid)?;
    request.event = Some(payload);
    request.request_id = request_id.or(request.request_id);
    let verdict = authorize(authorizer, &request).await;
    respond(&event, &verdict, http_api)
}

fn invalid(e: EventError) -> HandlerError {
    tracing::warn!(target: "certbound::decision", verdict = "InternalServerError", error = %e, "invalid event");
    HandlerError::InvalidEvent(e.to_string())
}

/// Serves the Lambda Runtime API until the runtime stops us.
pub async fn run<A: Authorizer + 'static>(
    authorizer: Arc<A>,
    http_api: HttpApiResponse,
) -> Result<(), lambda_runtime::Error> {
    run_lazy(move || {
        let authorizer: Arc<dyn Authorizer> = authorizer.clone();
        async move { Ok((authorizer, http_api)) }
    })
    .await
}

/// What [`run_lazy`] builds on first use.
pub type Ready = (Arc<dyn Authorizer>, HttpApiResponse);

/// Serves the Lambda Runtime API, building the authorizer on the first
/// invocation. Needed when start-up must call the AWS Parameters and
/// Secrets extension, which answers only during the INVOKE phase. A failed
/// build answers `Internal Server Error` (never Allow) and is retried on the
/// next invocation.
pub async fn run_lazy<F, Fut>(init: F) -> Result<(), lambda_runtime::Error>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Ready, String>> + Send,
{
    let init = Arc::new(init);
    let cell: Arc<tokio::sync::OnceCell<Ready>> = Arc::new(tokio::sync::OnceCell::new());
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let (init, cell) = (Arc::clone(&init), Arc::clone(&cell));
        async move {
            let (authorizer, http_api) = cell.get_or_try_init(|| init()).await.map_err(|e| {
                tracing::error!(error = %e, "cannot build the authorizer");
                HandlerError::Configuration(e)
            })?;
            handle_event(
                authorizer.as_ref(),
                *http_api,
                event.payload,
                Some(event.context.request_id),
            )
            .await
        }
    }))
    .await
}

//! API Gateway Lambda authorizer front: event → [`AuthRequest`] →
//! [`authorize`] → IAM policy / simple response / `Unauthorized` error.
//!
//! The event kind is recognised from the event itself: `type: TOKEN`,
//! `type: REQUEST` with `version: "2.0"` (HTTP API payload 2.0), or any
//! other `REQUEST` (REST API; HTTP API payload 1.0 with `version: "1.0"`).
//! An event whose fields have the wrong JSON types is refused as invalid,
//! never decided on leniently.

use std::sync::Arc;

use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerRequest, ApiGatewayCustomAuthorizerRequestTypeRequest,
    ApiGatewayV2CustomAuthorizerV2Request,
};
use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde::Serialize;
use serde_json::{json, Value};

use crate::authorizer::{authorize, Authorizer};
use crate::cert::CertFormat;
use crate::config::HttpApiResponse;
use crate::request::{
    credentials_from_headers as credentials, htu, parse_authorization, single_header, ArnError,
    AuthRequest, CredentialsError, Headers, MethodArn, PresentedCert, RawEvent, Source,
};
use crate::verdict::{Context, Decision, Verdict};

/// Why an event could not be understood. Messages name fields, never
/// their values.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// The payload is not a JSON object.
    #[error("event is not a JSON object")]
    NotAnObject,
    /// `type` is neither `TOKEN` nor `REQUEST`.
    #[error("unknown authorizer event type (expected TOKEN or REQUEST)")]
    UnknownType,
    /// A Cognito trigger event sent to the authorizer.
    #[error("a Cognito trigger event: this function is the authorizer (set CERTBOUND_HANDLER=cognito-pre-token for the trigger)")]
    WrongHandler,
    /// The event does not have the shape of its kind.
    #[error("malformed {kind} event: {reason}")]
    Shape {
        /// Which kind we tried.
        kind: &'static str,
        /// Where and what (field path, kind of problem).
        reason: String,
    },
    /// No `methodArn` / `routeArn`.
    #[error("{0} event has no {1}")]
    NoResource(&'static str, &'static str),
    /// The ARN is not an execute-api ARN with a path part.
    #[error(transparent)]
    Arn(#[from] ArnError),
    /// The HTTP method in the event contradicts the one in the ARN.
    #[error("httpMethod does not match the method of the methodArn")]
    MethodMismatch,
    /// A header that must appear once is repeated or not text.
    #[error(transparent)]
    Header(#[from] crate::request::HeaderError),
}

/// A recognised authorizer event. `Debug` shows the kind only (events hold
/// tokens).
pub enum Event {
    /// REST API (or HTTP API 1.0) `REQUEST` authorizer.
    Rest(
        Box<ApiGatewayCustomAuthorizerRequestTypeRequest>,
        Box<RestExtras>,
    ),
    /// REST API `TOKEN` authorizer.
    Token(ApiGatewayCustomAuthorizerRequest),
    /// HTTP API payload 2.0 authorizer.
    HttpV2(Box<ApiGatewayV2CustomAuthorizerV2Request>),
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Event({})", self.kind())
    }
}

/// What REST-shaped events carry beyond `aws_lambda_events`' struct.
#[derive(Default)]
pub struct RestExtras {
    /// `version: "1.0"`: an HTTP API payload 1.0 event.
    http_api_v1: bool,
    /// The client certificate PEM: `requestContext.authentication` first,
    /// then `requestContext.identity` (as the reference reads it).
    cert_pem: Option<String>,
}

impl Event {
    /// Recognises, type-checks and deserializes an event. `clientCert`
    /// objects without `validity` (which `aws_lambda_events` requires but
    /// real and test events sometimes lack) are accepted.
    pub fn parse(mut raw: Value) -> Result<Self, EventError> {
        let obj = raw.as_object().ok_or(EventError::NotAnObject)?;
        if obj.contains_key("triggerSource") && obj.contains_key("userPoolId") {
            return Err(EventError::WrongHandler);
        }
        let kind = match obj.get("type") {
            None | Some(Value::Null) => "",
            Some(Value::String(s)) => s.as_str(),
            Some(_) => return Err(EventError::UnknownType),
        };
        let version = obj
            .get("version")
            .and_then(Value::as_str)
            .map(str::to_owned);
        match (kind.to_ascii_uppercase().as_str(), version.as_deref()) {
            ("TOKEN", _) => {
                check_types("TOKEN", &raw, TOKEN_FIELDS)?;
                typed("TOKEN", raw).map(Event::Token)
            }
            ("REQUEST" | "", Some("2.0")) => {
                check_types("HTTP API 2.0", &raw, V2_FIELDS)?;
                fill_cert_validity(&mut raw, "authentication");
                typed("HTTP API 2.0", raw).map(|e| Event::HttpV2(Box::new(e)))
            }
            ("REQUEST", _) => {
                check_types("REQUEST", &raw, REST_FIELDS)?;
                let extras = RestExtras {
                    http_api_v1: version.as_deref() == Some("1.0"),
                    cert_pem: ["authentication", "identity"].iter().find_map(|holder| {
                        raw.pointer(&format!(
                            "/requestContext/{holder}/clientCert/clientCertPem"
                        ))
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                    }),
                };
                fill_cert_validity(&mut raw, "identity");
                typed("REQUEST", raw).map(|e| Event::Rest(Box::new(e), Box::new(extras)))
            }
            _ => Err(EventError::UnknownType),
        }
    }

    /// Short name of the kind, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Rest(_, x) if x.http_api_v1 => "HTTP API 1.0",
            Event::Rest(..) => "REQUEST",
            Event::Token(_) => "TOKEN",
            Event::HttpV2(_) => "HTTP API 2.0",
        }
    }

    /// Extracts token, certificate, method, route, path and resource.
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
            Event::Rest(e, extras) => {
                let arn = e
                    .method_arn
                    .as_deref()
                    .ok_or(EventError::NoResource("REQUEST", "methodArn"))?;
                let parsed = MethodArn::parse(arn)?;
                let method = match &e.http_method {
                    Some(m) if !arn_method_agrees(&parsed.method, m.as_str()) => {
                        return Err(EventError::MethodMismatch)
                    }
                    Some(m) => m.as_str().to_owned(),
                    None => parsed.method.clone(),
                };
                let source = if extras.http_api_v1 {
                    Source::HttpApiV1
                } else {
                    Source::RestRequest
                };
                let mut r = AuthRequest::new(source, &method, "/", arn);
                // REST `path` has no stage; the ARN path never has one.
                let concrete = match (&e.path, extras.http_api_v1) {
                    (Some(p), false) => p.as_str(),
                    _ => parsed.path.as_str(),
                };
                r.set_path(concrete, e.resource.as_deref(), e.path_parameters.clone());
                r.credentials = credentials(&[&e.headers, &e.multi_value_headers]);
                r.dpop_proof = single_header(&e.headers, "dpop")?;
                r.client_cert =
                    PresentedCert::from_format(CertFormat::Pem, extras.cert_pem.as_deref());
                let host = single_header(&e.headers, "host")?;
                let called = e.request_context.path.as_deref().or(e.path.as_deref());
                r.htu = htu(host.as_deref(), called.unwrap_or(&r.path));
                r.headers = Headers::from_map(&e.headers);
                r.request_id = e.request_context.request_id.clone();
                Ok(r)
            }
            Event::HttpV2(e) => {
                let arn = e
                    .route_arn
                    .as_deref()
                    .ok_or(EventError::NoResource("HTTP API 2.0", "routeArn"))?;
                MethodArn::parse(arn)?;
                let ctx = &e.request_context;
                let method = ctx.http.method.as_str();
                let raw_path = e.raw_path.as_deref().or(ctx.http.path.as_deref()).ok_or(
                    EventError::Shape {
                        kind: "HTTP API 2.0",
                        reason: "no rawPath".into(),
                    },
                )?;
                let path = strip_stage(raw_path, ctx.stage.as_deref());
                let template = e
                    .route_key
                    .as_deref()
                    .and_then(|k| k.split_once(' '))
                    .map(|(_, t)| t);
                let mut r = AuthRequest::new(Source::HttpApiV2, method, "/", arn);
                r.set_path(path, template, e.path_parameters.clone());
                r.credentials = credentials(&[&e.headers]);
                r.dpop_proof = single_header(&e.headers, "dpop")?;
                let pem = ctx
                    .authentication
                    .as_ref()
                    .and_then(|a| a.client_cert.as_ref())
                    .and_then(|c| c.client_cert_pem.as_deref());
                r.client_cert = PresentedCert::from_format(CertFormat::Pem, pem);
                let host = match ctx.domain_name.clone() {
                    Some(d) => Some(d),
                    None => single_header(&e.headers, "host")?,
                };
                r.htu = htu(host.as_deref(), raw_path);
                r.headers = Headers::from_map(&e.headers);
                r.request_id = ctx.request_id.clone();
                Ok(r)
            }
        }
    }
}

/// `*` / `ANY` in an ARN stand for every method.
fn arn_method_agrees(arn_method: &str, method: &str) -> bool {
    arn_method == "*"
        || arn_method.eq_ignore_ascii_case("ANY")
        || arn_method.eq_ignore_ascii_case(method)
}

/// HTTP API `rawPath` starts with `/{stage}` on a named stage.
fn strip_stage<'a>(path: &'a str, stage: Option<&str>) -> &'a str {
    match stage {
        Some(stage) if stage != "$default" && !stage.is_empty() => {
            match path.strip_prefix('/').and_then(|p| p.strip_prefix(stage)) {
                Some("") => "/",
                Some(rest) if rest.starts_with('/') => rest,
                _ => path,
            }
        }
        _ => path,
    }
}

/// The JSON types a kind's fields must have (JSON pointer, type).
#[derive(Clone, Copy)]
enum Ty {
    Str,
    Obj,
    StrMap,
    StrListMap,
}

const TOKEN_FIELDS: &[(&str, Ty)] = &[("/methodArn", Ty::Str), ("/authorizationToken", Ty::Str)];

const REST_FIELDS: &[(&str, Ty)] = &[
    ("/methodArn", Ty::Str),
    ("/resource", Ty::Str),
    ("/path", Ty::Str),
    ("/httpMethod", Ty::Str),
    ("/version", Ty::Str),
    ("/headers", Ty::StrMap),
    ("/multiValueHeaders", Ty::StrListMap),
    ("/pathParameters", Ty::StrMap),
    ("/requestContext", Ty::Obj),
    ("/requestContext/path", Ty::Str),
    ("/requestContext/identity", Ty::Obj),
    ("/requestContext/identity/clientCert", Ty::Obj),
    ("/requestContext/identity/clientCert/clientCertPem", Ty::Str),
    ("/requestContext/authentication", Ty::Obj),
    ("/requestContext/authentication/clientCert", Ty::Obj),
    (
        "/requestContext/authentication/clientCert/clientCertPem",
        Ty::Str,
    ),
];

const V2_FIELDS: &[(&str, Ty)] = &[
    ("/routeArn", Ty::Str),
    ("/routeKey", Ty::Str),
    ("/rawPath", Ty::Str),
    ("/headers", Ty::StrMap),
    ("/pathParameters", Ty::StrMap),
    ("/requestContext", Ty::Obj),
    ("/requestContext/stage", Ty::Str),
    ("/requestContext/http", Ty::Obj),
    ("/requestContext/authentication", Ty::Obj),
    ("/requestContext/authentication/clientCert", Ty::Obj),
    (
        "/requestContext/authentication/clientCert/clientCertPem",
        Ty::Str,
    ),
];

/// Refuses an event whose fields (when present and not null) have another
/// JSON type than their kind documents.
fn check_types(kind: &'static str, raw: &Value, fields: &[(&str, Ty)]) -> Result<(), EventError> {
    for (pointer, ty) in fields {
        let Some(v) = raw.pointer(pointer).filter(|v| !v.is_null()) else {
            continue;
        };
        let ok = match ty {
            Ty::Str => v.is_string(),
            Ty::Obj => v.is_object(),
            Ty::StrMap => v
                .as_object()
                .is_some_and(|m| m.values().all(|x| x.is_string())),
            Ty::StrListMap => v.as_object().is_some_and(|m| {
                m.values().all(|x| {
                    x.as_array()
                        .is_some_and(|items| items.iter().all(Value::is_string))
                })
            }),
        };
        if let (true, Some(map)) = (matches!(ty, Ty::StrMap | Ty::StrListMap), v.as_object()) {
            if pointer.ends_with("eaders") {
                let mut names: Vec<String> = map.keys().map(|k| k.to_ascii_lowercase()).collect();
                names.sort();
                if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
                    return Err(EventError::Shape {
                        kind,
                        reason: format!(
                            "{} holds header {} twice (in different cases)",
                            &pointer[1..],
                            w[0]
                        ),
                    });
                }
            }
        }
        if !ok {
            let expected = match ty {
                Ty::Str => "a string",
                Ty::Obj => "an object",
                Ty::StrMap => "an object of strings",
                Ty::StrListMap => "an object of string lists",
            };
            return Err(EventError::Shape {
                kind,
                reason: format!("{} is not {expected}", &pointer[1..].replace('/', ".")),
            });
        }
    }
    Ok(())
}

fn typed<T: serde::de::DeserializeOwned>(kind: &'static str, raw: Value) -> Result<T, EventError> {
    serde_path_to_error::deserialize(raw).map_err(|e| EventError::Shape {
        kind,
        reason: crate::transport::describe_json_error(&e),
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
#[non_exhaustive]
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
    let event = Event::parse(payload.clone()).map_err(|e| invalid(e, request_id.as_deref()))?;
    let mut request = event
        .to_auth_request()
        .map_err(|e| invalid(e, request_id.as_deref()))?;
    request.event = Some(RawEvent(payload));
    request.request_id = request_id.or(request.request_id);
    let verdict = authorize(authorizer, &request).await;
    respond(&event, &verdict, http_api)
}

fn invalid(e: EventError, request_id: Option<&str>) -> HandlerError {
    tracing::warn!(
        target: "certbound::decision",
        verdict = "InternalServerError",
        reason = "event_invalid",
        request_id,
        error = %e,
        "invalid event"
    );
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
